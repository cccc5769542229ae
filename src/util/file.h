/*
 * file: opening files named by users, which may be anything: a FIFO, a
 * device, a directory.  Open must never block (a FIFO without a writer
 * would hang open() forever), and only regular files are accepted.
 */
#ifndef APFVM_FILE_H
#define APFVM_FILE_H

#include <stddef.h>
#include <sys/stat.h>

/* Opens path read-only (close-on-exec, blocking reads) if it is a regular
 * file, filling *st.  Returns the fd, or -errno; -EINVAL when the path is
 * not a regular file (a FIFO, device, directory or socket). */
int file_open_regular(const char *path, struct stat *st);

/* Reads a whole regular file of at most FILE_READ_MAX bytes (a guest
 * kernel, an initrd) into a malloc'ed buffer.  -EFBIG when it is larger
 * or not a regular file, else 0 or -errno. */
#define FILE_READ_MAX (256u << 20)
int file_read_all(const char *path, void **out, size_t *len);

#endif
