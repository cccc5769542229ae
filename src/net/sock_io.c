#include "sock_io.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "util/thread.h"

int sock_wait_until(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = monotonic_ns();
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		uint64_t ms = (deadline_ns - now + 999999) / 1000000;
		int n = poll(&p, 1, ms > 60000 ? 60000 : (int)ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			return 0;
	}
}

int sock_read_by(int fd, void *buf, size_t len, uint64_t first_ns, uint64_t whole_ns)
{
	size_t got = 0;
	uint64_t deadline = first_ns;

	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n == 0)
			return got ? -EPIPE : 1;
		if (n > 0) {
			if (!got && whole_ns)
				deadline = monotonic_ns() + whole_ns;
			got += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int rc = sock_wait_until(fd, POLLIN, deadline);
		if (rc == -ETIMEDOUT)
			return got ? -ETIMEDOUT : -ETIME;
		if (rc)
			return rc;
	}
	return 0;
}

int sock_write_by(int fd, struct iovec *iov, int niov, uint64_t deadline_ns)
{
	while (niov > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)niov };
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = sock_wait_until(fd, POLLOUT, deadline_ns);
			if (rc)
				return rc;
			continue;
		}
		if (n < 0)
			return -errno;
		while (niov > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++, niov--;
		}
		if (niov > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}
