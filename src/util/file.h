/*
 * file: opening files named by users, which may be anything: a FIFO, a
 * device, a directory, a symlink planted by someone else.  An input's open
 * must never block (a FIFO without a writer would hang open() forever),
 * and only regular files are accepted.  An output is written whole or not
 * at all: to a new file beside it, renamed over it once complete, so that
 * a failure leaves what was there, a reader never sees half a file, and a
 * symlink at the path is replaced, never written through.
 */
#ifndef APFVM_FILE_H
#define APFVM_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Opens path read-only (close-on-exec, blocking reads) if it is a regular
 * file, filling *st.  Returns the fd, or -errno; -EINVAL when the path is
 * not a regular file (a FIFO, device, directory or socket). */
int file_open_regular(const char *path, struct stat *st);

/* One page (APF_PAGE_SIZE bytes) at byte `offset` of fd into buf: 0, or
 * -errno (-EIO when the file ends first: it shrank under us).  For the
 * readers of page files: the file sources, the page server, apfvm pack. */
int file_pread_page(int fd, uint64_t offset, void *buf);

/* len bytes at byte `offset` of fd into buf, with one pread (more only if
 * the kernel returns less): 0, or -errno (-EIO when the file ends first). */
int file_pread_full(int fd, uint64_t offset, void *buf, size_t len);

/* n pages (1..FILE_PAGES_MAX) at byte `offset` of fd, page i into bufs[i]
 * (separate buffers), with one preadv (more only if the kernel returns
 * less).  Returns the pages read whole before the first that was not
 * (n when all were), and in *err 0, or why that page and those after it
 * were not read: -errno, -EIO when the file ends first. */
#define FILE_PAGES_MAX 64
unsigned file_preadv_pages(int fd, uint64_t offset, void *const *bufs, unsigned n, int *err);

/* Reads a whole regular file of at most FILE_READ_MAX bytes (a guest
 * kernel, an initrd) into a malloc'ed buffer.  -EFBIG when it is larger
 * or not a regular file, else 0 or -errno. */
#define FILE_READ_MAX (256u << 20)
int file_read_all(const char *path, void **out, size_t *len);

/* An output being written: fd is a new file beside path, created with
 * O_EXCL and O_NOFOLLOW under a random name (mode, less the umask). */
struct file_out {
	int fd;     /* -1 once committed or aborted */
	char *path; /* the target */
	char *tmp;  /* the new file, until renamed or removed */
};

/* 0, or -errno (fd -1: abort and commit are then no-ops). */
int file_out_open(struct file_out *o, const char *path, mode_t mode);
/* Flushes the new file to disk, closes it and renames it over path: 0 or
 * -errno (the new file removed). */
int file_out_commit(struct file_out *o);
/* Removes the new file (if not committed). */
void file_out_abort(struct file_out *o);

/* Whether path names the file st describes (following symlinks): an output
 * that is also an input. */
bool file_is(const char *path, const struct stat *st);

/* An unnamed temporary file in $TMPDIR (or /tmp), gone when closed:
 * nothing to predict, plant or leave behind.  fd or -errno. */
int file_temp_anonymous(void);

#endif
