/*
 * file: opening files named by users, which may be anything: a FIFO, a
 * device, a directory.  Open must never block (a FIFO without a writer
 * would hang open() forever), and only regular files are accepted.
 */
#ifndef APFVM_FILE_H
#define APFVM_FILE_H

#include <sys/stat.h>

/* Opens path read-only (close-on-exec, blocking reads) if it is a regular
 * file, filling *st.  Returns the fd, or -errno; -EINVAL when the path is
 * not a regular file (a FIFO, device, directory or socket). */
int file_open_regular(const char *path, struct stat *st);

#endif
