#include "page_server.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "net_addr.h"
#include "page_proto.h"
#include "snapshot/snapshot.h"
#include "source/source.h"
#include "util/crc32c.h"

/* One connection: its socket, its own handle on the image, its slot. */
struct conn {
	struct page_server *s;
	int fd, image_fd, slot;
	char peer[64];
};

/* The snapshot at path: its memory file, and what identifies it. */
static int open_snapshot(struct page_server *s, const char *path, struct apf_err *e)
{
	struct snap_image snap;
	int rc = snap_open(&snap, path, e);

	if (rc)
		return rc;
	s->image_fd = dup(snap.mem_fd);
	s->npages = snap.mem_pages;
	s->data_offset = 0;
	s->pattern = APF_PATTERN_SNAPSHOT;
	s->seed = snap_identity(&snap);
	snap_close(&snap);
	if (s->image_fd < 0)
		return apf_fail(e, -errno, "dup: %s", strerror(errno));
	return 0;
}

int page_server_open(struct page_server *s, const char *path, bool snapshot,
		     const char *listen_addr, uint32_t max_count, struct apf_err *e)
{
	struct image_info info;
	int rc;

	memset(s, 0, sizeof(*s));
	s->listen_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	for (int i = 0; i < PAGE_SERVER_MAX_CLIENTS; i++)
		s->conn_fd[i] = -1;
	if (max_count < 1 || max_count > PGS_MAX_COUNT)
		return apf_fail(e, -EINVAL, "--max-count %u: 1..%u", max_count, PGS_MAX_COUNT);
	s->max_count = max_count;
	if (snapshot) {
		if ((rc = open_snapshot(s, path, e)))
			goto fail;
	} else {
		s->image_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->image_fd < 0)
			return apf_fail(e, -errno, "cannot open image '%s': %s", path, strerror(errno));
		if ((rc = image_read_header(s->image_fd, path, &info, e)))
			goto fail;
		s->npages = info.data_size / PGS_PAGE_SIZE;
		s->data_offset = info.data_offset;
		s->pattern = APF_PATTERN_SEEDED;
		s->seed = info.seed;
	}
	struct sockaddr_storage addr;
	socklen_t alen = 0;
	if ((rc = net_addr_parse(listen_addr, "--listen", 1, &addr, &alen, e)))
		goto fail;
	s->listen_fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (s->listen_fd < 0 ||
	    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s->listen_fd, (struct sockaddr *)&addr, alen) || listen(s->listen_fd, 64)) {
		rc = apf_fail(e, -errno, "cannot listen on '%s': %s", listen_addr, strerror(errno));
		goto fail;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							: ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
fail:
	page_server_close(s);
	return rc;
}

/* Reads exactly len bytes: 0, 1 at a clean end of stream before any
 * byte, or -errno (-EPIPE: the stream ended inside the message). */
static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n == 0)
			return got ? -EPIPE : 1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	return 0;
}

/* Sends every byte of iov; a client gone mid-reply is an error of this
 * connection (-EPIPE), never a SIGPIPE for the process. */
static int write_all(int fd, struct iovec *iov, int niov)
{
	while (niov > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)niov };
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
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

/* Answers one checked READ: the pages and their CRCs, or a status. */
static int answer(struct conn *c, const struct pgs_read *req, int check_rc, void *pages,
		  uint32_t *crcs)
{
	struct pgs_reply rep;
	enum pgs_status st = check_rc == -ERANGE ? PGS_RANGE : PGS_OK;

	for (uint32_t i = 0; st == PGS_OK && i < req->count; i++) {
		char *p = (char *)pages + (size_t)i * PGS_PAGE_SIZE;
		if (source_pread_page(c->image_fd, c->s->data_offset + (req->page + i) * PGS_PAGE_SIZE, p))
			st = PGS_IO;
		else
			crcs[i] = crc32c(0, p, PGS_PAGE_SIZE);
	}
	pgs_reply_init(&rep, req, st);
	struct iovec iov[3] = {
		{ &rep, sizeof(rep) },
		{ crcs, (size_t)req->count * sizeof(*crcs) },
		{ pages, (size_t)req->count * PGS_PAGE_SIZE },
	};
	return write_all(c->fd, iov, st == PGS_OK ? 3 : 1);
}

static void serve(struct conn *c)
{
	struct page_server *s = c->s;
	struct pgs_hello hello;
	struct pgs_welcome w;
	struct pgs_read req;
	struct apf_err e = { { 0 } };
	uint32_t crcs[PGS_MAX_COUNT];
	void *pages = malloc((size_t)PGS_MAX_COUNT * PGS_PAGE_SIZE);
	int rc;

	if (!pages)
		return;
	struct timeval hello_to = { .tv_sec = PAGE_SERVER_HELLO_TIMEOUT_S };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &hello_to, sizeof(hello_to));
	rc = read_full(c->fd, &hello, sizeof(hello));
	if (rc) {
		fprintf(stderr, "apfvm serve: %s: no hello (%s)\n", c->peer,
			rc == -EAGAIN ? "timed out" : rc > 0 ? "closed" : strerror(-rc));
		goto out;
	}
	if (pgs_hello_check(&hello, &e)) {
		fprintf(stderr, "apfvm serve: %s: %s\n", c->peer, e.msg);
		goto out;
	}
	struct timeval none = { 0 };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none)); /* clients idle at will */
	pgs_welcome_init(&w, s->npages, s->max_count, s->pattern, s->seed);
	struct iovec iov = { &w, sizeof(w) };
	if (write_all(c->fd, &iov, 1))
		goto out;
	while ((rc = read_full(c->fd, &req, sizeof(req))) == 0) {
		int chk = pgs_read_check(&req, s->npages, s->max_count, &e);
		if (chk && chk != -ERANGE) {
			fprintf(stderr, "apfvm serve: %s: %s; closing\n", c->peer, e.msg);
			break;
		}
		if (answer(c, &req, chk, pages, crcs))
			break;
	}
	if (rc < 0)
		fprintf(stderr, "apfvm serve: %s: %s\n", c->peer, strerror(-rc));
out:
	free(pages);
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;

	serve(c);
	/* Last touch of the server: page_server_close may free it after. */
	pthread_mutex_lock(&c->s->lock);
	c->s->conn_fd[c->slot] = -1;
	c->s->clients--;
	pthread_cond_broadcast(&c->s->idle);
	pthread_mutex_unlock(&c->s->lock);
	close(c->fd);
	close(c->image_fd);
	free(c);
	return NULL;
}

/* Starts serving an accepted connection in its own thread, or refuses it
 * (closes it) when PAGE_SERVER_MAX_CLIENTS are being served. */
static void start_conn(struct page_server *s, int fd, const struct sockaddr_storage *ss)
{
	struct conn *c = calloc(1, sizeof(*c));
	char peer[64];
	pthread_t t;
	pthread_attr_t a;

	net_addr_format(ss, peer, sizeof(peer));
	int slot = -1;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; c && slot < 0 && i < PAGE_SERVER_MAX_CLIENTS; i++)
		if (s->conn_fd[i] < 0)
			slot = i;
	if (slot >= 0) {
		s->conn_fd[slot] = fd;
		s->clients++;
	}
	pthread_mutex_unlock(&s->lock);
	if (slot < 0) {
		fprintf(stderr, "apfvm serve: %s refused: %d clients already\n", peer,
			PAGE_SERVER_MAX_CLIENTS);
		free(c);
		close(fd);
		return;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->s = s;
	c->fd = fd;
	c->slot = slot;
	c->image_fd = dup(s->image_fd);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval send_to = { .tv_sec = PAGE_SERVER_SEND_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_to, sizeof(send_to));
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (c->image_fd < 0 || pthread_create(&t, &a, conn_thread, c)) {
		fprintf(stderr, "apfvm serve: %s refused: cannot start its thread\n", c->peer);
		if (c->image_fd >= 0)
			close(c->image_fd);
		pthread_mutex_lock(&s->lock);
		s->conn_fd[slot] = -1;
		s->clients--;
		pthread_mutex_unlock(&s->lock);
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&a);
}

int page_server_run(struct page_server *s, const atomic_int *stop, struct apf_err *e)
{
	struct pollfd p = { .fd = s->listen_fd, .events = POLLIN };

	while (!atomic_load(stop)) {
		int n = poll(&p, 1, 200);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return apf_fail(e, -errno, "poll: %s", strerror(errno));
		if (n == 0)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue; /* this client's problem */
			if (errno == EMFILE || errno == ENFILE) {
				poll(NULL, 0, 100); /* out of descriptors: let connections end */
				continue;
			}
			return apf_fail(e, -errno, "accept: %s", strerror(errno));
		}
		start_conn(s, fd, &ss);
	}
	return 0;
}

void page_server_close(struct page_server *s)
{
	/* Wake every connection's thread (its read or write fails), then wait
	 * until each has let go of the server. */
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < PAGE_SERVER_MAX_CLIENTS; i++)
		if (s->conn_fd[i] >= 0)
			shutdown(s->conn_fd[i], SHUT_RDWR);
	while (s->clients > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->image_fd >= 0)
		close(s->image_fd);
	s->listen_fd = s->image_fd = -1;
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
}
