/*
 * sock_io: whole messages over a non-blocking socket, each bounded by a
 * deadline (CLOCK_MONOTONIC ns, util/thread.h's monotonic_ns), so that a peer that trickles bytes or
 * stops reading costs the caller at most the time it allowed.
 */
#ifndef APFVM_SOCK_IO_H
#define APFVM_SOCK_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Reads exactly len bytes.  Its first byte must come by first_ns, the
 * whole message by the first byte's time + whole_ns (whole_ns 0: by
 * first_ns too).  0; 1 at a clean end of stream before any byte; -ETIME
 * when no byte came by first_ns; -ETIMEDOUT when the message began but
 * did not end in time; -EPIPE when the stream ended inside it; -errno. */
int sock_read_by(int fd, void *buf, size_t len, uint64_t first_ns, uint64_t whole_ns);

/* Sends every byte of iov (modified) by deadline_ns: 0, -ETIMEDOUT, or
 * -errno (-EPIPE: the peer is gone; never a SIGPIPE). */
int sock_write_by(int fd, struct iovec *iov, int niov, uint64_t deadline_ns);

/* Waits until fd is ready for events (POLLIN, POLLOUT) or deadline_ns:
 * 0, -ETIMEDOUT, or -errno. */
int sock_wait_until(int fd, short events, uint64_t deadline_ns);


#endif
