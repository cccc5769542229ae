#include "page_server.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
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
#include "sock_io.h"
#include "util/crc32c.h"
#include "util/file.h"
#include "util/thread.h"

#define NS_PER_S          1000000000ull
#define CONN_STACK_SIZE   (256u * 1024u) /* serve() keeps its pages on the heap */
#define REFUSED_LINGER_NS (2ull * NS_PER_S)

/* One connection: its socket, its own handle on the image, its slot. */
struct conn {
	struct page_server *s;
	int fd, image_fd;
	unsigned slot;
	char peer[64];
};

void page_server_config_default(struct page_server_config *c)
{
	c->max_count = 16;
	c->max_clients = 256;
	c->max_per_peer = 32;
	c->io_timeout_ns = 10 * NS_PER_S;
	c->idle_timeout_ns = 60 * NS_PER_S;
}

int page_server_config_check(const struct page_server_config *c, struct apf_err *e)
{
	if (c->max_count < 1 || c->max_count > PGS_MAX_COUNT)
		return apf_fail(e, -EINVAL, "--max-count %u: 1..%u", c->max_count, PGS_MAX_COUNT);
	if (c->max_clients < 1 || c->max_clients > 4096)
		return apf_fail(e, -EINVAL, "--max-clients %u: 1..4096", c->max_clients);
	if (c->max_per_peer < 1 || c->max_per_peer > c->max_clients)
		return apf_fail(e, -EINVAL, "--max-per-peer %u: 1..--max-clients (%u)",
				c->max_per_peer, c->max_clients);
	if (c->io_timeout_ns < 1000000ull || c->io_timeout_ns > 3600 * NS_PER_S)
		return apf_fail(e, -EINVAL, "--io-timeout: 1ms..1h");
	if (c->idle_timeout_ns < 1000000ull || c->idle_timeout_ns > 24 * 3600 * NS_PER_S)
		return apf_fail(e, -EINVAL, "--idle-timeout: 1ms..24h");
	return 0;
}

/* One line on stderr, at most PAGE_SERVER_LOG_PER_S a second: a flood of
 * hostile connections must not become a flood of output.  The lines left
 * out are counted, and the count said with the next line let through. */
__attribute__((format(printf, 2, 3)))
static void say(struct page_server *s, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	uint64_t dropped = 0;
	bool print = false;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->lock);
	uint64_t second = monotonic_ns() / NS_PER_S;
	if (second != s->log_second) {
		s->log_second = second;
		s->log_lines = 0;
	}
	if (s->log_lines < PAGE_SERVER_LOG_PER_S) {
		s->log_lines++;
		print = true;
		dropped = s->log_dropped;
		s->log_dropped = 0;
	} else {
		s->log_dropped++;
	}
	pthread_mutex_unlock(&s->lock);
	if (!print)
		return;
	if (dropped)
		fprintf(stderr, "apfvm serve: (%llu messages left out)\n", (unsigned long long)dropped);
	fprintf(stderr, "apfvm serve: %s\n", line);
}

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

static int open_image(struct page_server *s, const char *path, struct apf_err *e)
{
	struct image_info info;
	struct stat st;
	int rc;

	s->image_fd = file_open_regular(path, &st);
	if (s->image_fd < 0)
		return apf_fail(e, s->image_fd, "cannot open image '%s': %s", path,
				s->image_fd == -EINVAL ? "not a regular file" : strerror(-s->image_fd));
	if ((rc = image_read_header(s->image_fd, path, &info, e)))
		return rc;
	s->npages = info.data_size / PGS_PAGE_SIZE;
	s->data_offset = info.data_offset;
	s->pattern = APF_PATTERN_SEEDED;
	s->seed = info.seed;
	return 0;
}

static int start_listening(struct page_server *s, const char *listen_addr, struct apf_err *e)
{
	struct sockaddr_storage addr, ss;
	socklen_t alen = 0, sl = sizeof(ss);
	int one = 1, rc;

	if ((rc = net_addr_parse(listen_addr, "--listen", 1, &addr, &alen, e)))
		return rc;
	s->listen_fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0 ||
	    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s->listen_fd, (struct sockaddr *)&addr, alen) || listen(s->listen_fd, 128))
		return apf_fail(e, -errno, "cannot listen on '%s': %s", listen_addr, strerror(errno));
	if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							: ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

int page_server_open(struct page_server *s, const char *path, bool snapshot,
		     const char *listen_addr, const struct page_server_config *cfg,
		     struct apf_err *e)
{
	int rc;

	memset(s, 0, sizeof(*s));
	atomic_init(&s->reads, 0);
	atomic_init(&s->pages, 0);
	s->listen_fd = s->image_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	for (int i = 0; i < PAGE_SERVER_REFUSED_MAX; i++)
		s->refused[i].fd = -1;
	if (cfg)
		s->cfg = *cfg;
	else
		page_server_config_default(&s->cfg);
	if ((rc = page_server_config_check(&s->cfg, e)))
		goto fail;
	s->slots = calloc(s->cfg.max_clients, sizeof(*s->slots));
	if (!s->slots) {
		rc = apf_fail(e, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < s->cfg.max_clients; i++)
		s->slots[i].fd = -1;
	rc = snapshot ? open_snapshot(s, path, e) : open_image(s, path, e);
	if (rc || (rc = start_listening(s, listen_addr, e)))
		goto fail;
	return 0;
fail:
	page_server_close(s);
	return rc;
}

/* Answers one checked READ with the pages, read with one pread, and their
 * CRCs; or a status.  The reply must leave within the io timeout. */
static int answer(struct conn *c, const struct pgs_read *req, int check_rc, void *pages,
		  uint32_t *crcs)
{
	struct pgs_reply rep;
	enum pgs_status st = check_rc == -ERANGE ? PGS_RANGE : PGS_OK;

	if (st == PGS_OK && file_pread_full(c->image_fd,
					    c->s->data_offset + req->page * PGS_PAGE_SIZE, pages,
					    (size_t)req->count * PGS_PAGE_SIZE))
		st = PGS_IO;
	for (uint32_t i = 0; st == PGS_OK && i < req->count; i++)
		crcs[i] = crc32c(0, (char *)pages + (size_t)i * PGS_PAGE_SIZE, PGS_PAGE_SIZE);
	pgs_reply_init(&rep, req, st);
	struct iovec iov[3] = {
		{ &rep, sizeof(rep) },
		{ crcs, (size_t)req->count * sizeof(*crcs) },
		{ pages, (size_t)req->count * PGS_PAGE_SIZE },
	};
	/* Counted before it leaves: a client that has the reply sees it counted. */
	atomic_fetch_add_explicit(&c->s->reads, 1, memory_order_relaxed);
	if (st == PGS_OK)
		atomic_fetch_add_explicit(&c->s->pages, req->count, memory_order_relaxed);
	return sock_write_by(c->fd, iov, st == PGS_OK ? 3 : 1, monotonic_ns() + c->s->cfg.io_timeout_ns);
}

/* Why a read of a message failed, in words. */
static const char *read_failure(int rc)
{
	return rc == -ETIME ? "nothing within the timeout" : rc == -ETIMEDOUT ? "too slow (timeout)"
	       : rc == -EPIPE ? "closed inside a message" : rc > 0 ? "closed" : strerror(-rc);
}

static void serve(struct conn *c)
{
	struct page_server *s = c->s;
	const struct page_server_config *cfg = &s->cfg;
	struct pgs_hello hello;
	struct pgs_welcome w;
	struct pgs_read req;
	struct apf_err e = { { 0 } };
	uint32_t crcs[PGS_MAX_COUNT];
	void *pages = malloc((size_t)PGS_MAX_COUNT * PGS_PAGE_SIZE);
	int rc;

	if (!pages)
		return;
	rc = sock_read_by(c->fd, &hello, sizeof(hello), monotonic_ns() + cfg->io_timeout_ns, 0);
	if (rc) {
		say(s, "%s: no hello (%s)", c->peer, read_failure(rc));
		goto out;
	}
	if (pgs_hello_check(&hello, &e)) {
		say(s, "%s: %s", c->peer, e.msg);
		goto out;
	}
	pgs_welcome_init(&w, s->npages, cfg->max_count, s->pattern, s->seed);
	struct iovec iov = { &w, sizeof(w) };
	if ((rc = sock_write_by(c->fd, &iov, 1, monotonic_ns() + cfg->io_timeout_ns))) {
		say(s, "%s: cannot send the welcome (%s)", c->peer, strerror(-rc));
		goto out;
	}
	for (;;) {
		rc = sock_read_by(c->fd, &req, sizeof(req), monotonic_ns() + cfg->idle_timeout_ns,
				  cfg->io_timeout_ns);
		if (rc == 1)
			break; /* the client is done */
		if (rc) {
			say(s, "%s: %s; closing", c->peer,
			    rc == -ETIME ? "idle too long" : read_failure(rc));
			break;
		}
		int chk = pgs_read_check(&req, s->npages, cfg->max_count, &e);
		if (chk && chk != -ERANGE) {
			say(s, "%s: %s; closing", c->peer, e.msg);
			break;
		}
		if ((rc = answer(c, &req, chk, pages, crcs))) {
			say(s, "%s: cannot send a reply (%s); closing", c->peer,
			    rc == -ETIMEDOUT ? "not read within the timeout" : strerror(-rc));
			break;
		}
	}
out:
	free(pages);
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;

	serve(c);
	/* Last touch of the server: page_server_close may free it after. */
	pthread_mutex_lock(&c->s->lock);
	c->s->slots[c->slot].fd = -1;
	c->s->clients--;
	pthread_cond_broadcast(&c->s->idle);
	pthread_mutex_unlock(&c->s->lock);
	close(c->fd);
	close(c->image_fd);
	free(c);
	return NULL;
}

/* The address of ss without its port: what a per-peer limit counts. */
static struct sockaddr_storage host_of(const struct sockaddr_storage *ss)
{
	struct sockaddr_storage h = *ss;
	if (h.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&h)->sin6_port = 0;
	else
		((struct sockaddr_in *)&h)->sin_port = 0;
	return h;
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
	return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
	       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/* A slot for a connection from host, taken under the lock; or -1 with the
 * reason the connection must be refused. */
static int take_slot(struct page_server *s, int fd, const struct sockaddr_storage *host,
		     enum pgs_busy_reason *why)
{
	int slot = -1;
	unsigned same = 0;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->cfg.max_clients; i++) {
		if (s->slots[i].fd < 0) {
			if (slot < 0)
				slot = (int)i;
		} else if (same_host(&s->slots[i].peer, host)) {
			same++;
		}
	}
	if (same >= s->cfg.max_per_peer) {
		*why = PGS_BUSY_PEER;
		slot = -1;
	} else if (slot < 0) {
		*why = PGS_BUSY_FULL;
	} else {
		s->slots[slot].fd = fd;
		s->slots[slot].peer = *host;
		s->clients++;
	}
	if (slot < 0)
		s->refusals++;
	pthread_mutex_unlock(&s->lock);
	return slot;
}

static void give_back_slot(struct page_server *s, unsigned slot)
{
	pthread_mutex_lock(&s->lock);
	s->slots[slot].fd = -1;
	s->clients--;
	pthread_mutex_unlock(&s->lock);
}

/* Answers BUSY without waiting (a fresh socket has room for 32 bytes),
 * ends the sending side, and keeps the socket a while: closing it with the
 * client's HELLO unread would reset the connection, and the client could
 * lose the BUSY.  It is closed when the client closes, or after
 * REFUSED_LINGER_NS, or to make room for a newer one. */
static void refuse(struct page_server *s, int fd, const char *peer, enum pgs_busy_reason why)
{
	struct pgs_busy b;
	unsigned oldest = 0;

	say(s, "%s refused: %s", peer, why == PGS_BUSY_FULL ? "as many clients as it takes"
							    : "as many from its address as it takes");
	pgs_busy_init(&b, why, why == PGS_BUSY_FULL ? s->cfg.max_clients : s->cfg.max_per_peer);
	if (send(fd, &b, sizeof(b), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(b)) {
		close(fd);
		return;
	}
	shutdown(fd, SHUT_WR);
	for (unsigned i = 0; i < PAGE_SERVER_REFUSED_MAX; i++) {
		if (s->refused[i].fd < 0) {
			oldest = i;
			break;
		}
		if (s->refused[i].until_ns < s->refused[oldest].until_ns)
			oldest = i;
	}
	if (s->refused[oldest].fd >= 0)
		close(s->refused[oldest].fd);
	s->refused[oldest].fd = fd;
	s->refused[oldest].until_ns = monotonic_ns() + REFUSED_LINGER_NS;
}

/* Starts serving an accepted connection in its own thread, or refuses it. */
static void start_conn(struct page_server *s, int fd, const struct sockaddr_storage *ss)
{
	struct sockaddr_storage host = host_of(ss);
	enum pgs_busy_reason why;
	char peer[64];
	pthread_t t;
	pthread_attr_t a;

	net_addr_format(ss, peer, sizeof(peer));
	int slot = take_slot(s, fd, &host, &why);
	if (slot < 0) {
		refuse(s, fd, peer, why);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		give_back_slot(s, (unsigned)slot);
		close(fd);
		return;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->s = s;
	c->fd = fd;
	c->slot = (unsigned)slot;
	c->image_fd = dup(s->image_fd);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, CONN_STACK_SIZE);
	if (c->image_fd < 0 || pthread_create(&t, &a, conn_thread, c)) {
		say(s, "%s refused: cannot start its thread", c->peer);
		if (c->image_fd >= 0)
			close(c->image_fd);
		give_back_slot(s, (unsigned)slot);
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&a);
}

/* The refused connections: closed once their client closed or their time
 * is up.  Fills p[1..] with those still open; returns how many. */
static int tend_refused(struct page_server *s, struct pollfd *p)
{
	uint64_t now = monotonic_ns();
	int n = 0;

	for (unsigned i = 0; i < PAGE_SERVER_REFUSED_MAX; i++) {
		struct page_server_refused *r = &s->refused[i];
		char drain[256];
		if (r->fd < 0)
			continue;
		ssize_t got;
		while ((got = recv(r->fd, drain, sizeof(drain), MSG_DONTWAIT)) > 0)
			;
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) || now >= r->until_ns) {
			close(r->fd);
			r->fd = -1;
			continue;
		}
		p[1 + n].fd = r->fd;
		p[1 + n].events = POLLIN;
		n++;
	}
	return n;
}

int page_server_run(struct page_server *s, const atomic_int *stop, struct apf_err *e)
{
	struct pollfd p[1 + PAGE_SERVER_REFUSED_MAX];

	while (!atomic_load(stop)) {
		int lingering = tend_refused(s, p);
		p[0].fd = s->listen_fd;
		p[0].events = POLLIN;
		int n = poll(p, (nfds_t)(1 + lingering), 200);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return apf_fail(e, -errno, "poll: %s", strerror(errno));
		if (!(p[0].revents & POLLIN))
			continue;
		/* Every connection waiting, so that a burst is taken at once. */
		for (;;) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl,
					 SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd >= 0) {
				start_conn(s, fd, &ss);
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR || errno == ECONNABORTED)
				continue; /* this client's problem */
			if (errno == EMFILE || errno == ENFILE) {
				poll(NULL, 0, 100); /* out of descriptors: let connections end */
				break;
			}
			return apf_fail(e, -errno, "accept: %s", strerror(errno));
		}
	}
	return 0;
}

void page_server_close(struct page_server *s)
{
	/* Wake every connection's thread (its read or write fails), then wait
	 * until each has let go of the server. */
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; s->slots && i < s->cfg.max_clients; i++)
		if (s->slots[i].fd >= 0)
			shutdown(s->slots[i].fd, SHUT_RDWR);
	while (s->clients > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < PAGE_SERVER_REFUSED_MAX; i++)
		if (s->refused[i].fd >= 0)
			close(s->refused[i].fd);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->image_fd >= 0)
		close(s->image_fd);
	s->listen_fd = s->image_fd = -1;
	free(s->slots);
	s->slots = NULL;
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
}

void page_server_stats(struct page_server *s, struct page_server_stats *out)
{
	out->reads = atomic_load_explicit(&s->reads, memory_order_relaxed);
	out->pages = atomic_load_explicit(&s->pages, memory_order_relaxed);
	pthread_mutex_lock(&s->lock);
	out->clients = s->clients;
	out->refusals = s->refusals;
	pthread_mutex_unlock(&s->lock);
}
