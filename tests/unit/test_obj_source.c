/*
 * Object storage (src/objstore): the manifest's checks, apfvm pack's
 * layout, and the object page source against an HTTP server in a thread
 * here (Range GETs of files, keep-alive), which can also misbehave on
 * purpose: the chunks come back zero, compressed or raw with the image's
 * content; a damaged chunk is fetched again and never delivered; 503 and
 * 429 answers are retried, 404 fails at once; a server ignoring Range is
 * refused; every failure names the chunk, its pages and the cause.  A
 * snapshot's zero pages: a chunk of them is not stored, and none is ever
 * fetched through the checked window.  Runs
 * of pages (submit_run) take one Range request for adjacent chunks, and
 * demand pages overtake bulk ones: the server logs every data request's
 * range, and can hold its answers behind a gate the test opens, so that
 * what starts first is seen, not timed.  The real servers (nginx,
 * s3rver) are tests/e2e/test_objstore.sh's.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "objstore/obj_layout.h"
#include "objstore/obj_store.h"
#include "snapshot/snapshot.h"
#include "source/open.h"
#include "source/source.h"
#include "source/window.h"
#include "crc_forge.h"
#include "test.h"
#include "util/crc32c.h"

#define NPAGES        200 /* 4 chunks of 64 pages, the last of 8 */
#define SEED          77
#define WAIT_LIMIT_NS (30ull * 1000000000ull)

static char dir[64];

/* ---- an HTTP server: GET with Range, from files in dir -------------------- */

enum misbehave { NORMAL, CORRUPT_ONCE, CORRUPT_ALWAYS, UNAVAILABLE_TWICE, THROTTLE_ALWAYS,
		 NO_RANGE, DATA_404, FORGED_ALWAYS, MANIFEST_404_HUGE, DATA_503_HUGE };

static struct {
	int listen_fd;
	uint16_t port;
	pthread_t thread;
	atomic_int stop;
	enum misbehave how;
	atomic_int data_gets; /* GETs of the data object */
	atomic_int conns;     /* connections accepted */
	/* Every data GET's byte range, in the order they arrived. */
	pthread_mutex_t lock;
	struct { unsigned long long a, b; } ranges[8192];
	unsigned nranges;
	/* The gate: while `hold`, data GETs wait for gate_open before their
	 * answer, but those starting at one of pass[]; each one held counts
	 * in `held` and signals held_fd (an eventfd the test polls);
	 * `release` lets that many held answers through before the gate
	 * opens. */
	bool hold, gate_open;
	unsigned release;
	unsigned long long pass[4];
	unsigned npass, held;
	pthread_cond_t gate;
	int held_fd;
	/* Byte corrupt_at of the data object is flipped in the next
	 * corrupt_left answers that carry it. */
	long long corrupt_at;
	unsigned corrupt_left;
} http = { .lock = PTHREAD_MUTEX_INITIALIZER, .gate = PTHREAD_COND_INITIALIZER, .held_fd = -1,
	   .corrupt_at = -1 };

/* Logs a data GET of [a, b], then waits at the gate if it is to be held. */
static void data_request(unsigned long long a, unsigned long long b)
{
	pthread_mutex_lock(&http.lock);
	if (http.nranges < sizeof(http.ranges) / sizeof(http.ranges[0])) {
		http.ranges[http.nranges].a = a;
		http.ranges[http.nranges++].b = b;
	}
	bool pass = !http.hold;
	for (unsigned i = 0; i < http.npass; i++)
		pass |= http.pass[i] == a;
	if (!pass) {
		uint64_t one = 1;
		http.held++;
		if (write(http.held_fd, &one, sizeof(one)) < 0)
			printf("# cannot signal a held request\n");
		while (!http.gate_open && !http.release && !atomic_load(&http.stop))
			pthread_cond_wait(&http.gate, &http.lock);
		if (!http.gate_open && http.release)
			http.release--;
	}
	pthread_mutex_unlock(&http.lock);
}

/* Lets one held answer go (whichever). */
static void gate_release_one(void)
{
	pthread_mutex_lock(&http.lock);
	http.release++;
	pthread_cond_broadcast(&http.gate);
	pthread_mutex_unlock(&http.lock);
}

static void gate_open(void)
{
	pthread_mutex_lock(&http.lock);
	http.gate_open = true;
	pthread_cond_broadcast(&http.gate);
	pthread_mutex_unlock(&http.lock);
}

static void reply(int fd, const char *status, const void *body, size_t len, const char *extra)
{
	char h[256];
	int n = snprintf(h, sizeof(h), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s\r\n", status, len,
			 extra ? extra : "");
	/* Header and body in one segment where they fit (MSG_MORE; the
	 * socket is TCP_NODELAY): else the body's first write would wait for
	 * the client's delayed ACK of the header, 40 ms an answer. */
	send(fd, h, (size_t)n, MSG_NOSIGNAL | (len ? MSG_MORE : 0));
	if (len)
		send(fd, body, len, MSG_NOSIGNAL);
}

/* Serves requests on one connection until it closes. */
static void serve_conn(int fd)
{
	char req[4096];
	size_t have = 0;

	for (;;) {
		char *end;
		while (!(end = memmem(req, have, "\r\n\r\n", 4))) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (atomic_load(&http.stop) || have == sizeof(req))
				return;
			if (poll(&p, 1, 50) <= 0)
				continue;
			ssize_t n = recv(fd, req + have, sizeof(req) - have, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		*end = '\0';
		char path[256], file[512];
		unsigned long long a = 0, b = 0;
		bool ranged = false;
		if (sscanf(req, "GET %255s", path) != 1)
			return;
		const char *r = strstr(req, "\r\nRange: bytes=");
		if (r && sscanf(r, "\r\nRange: bytes=%llu-%llu", &a, &b) == 2)
			ranged = true;
		size_t used = (size_t)(end + 4 - req);
		memmove(req, req + used, have - used);
		have -= used;

		bool data = strstr(path, ".data") != NULL;
		int gets = data ? atomic_fetch_add(&http.data_gets, 1) : 0;
		if (data)
			data_request(a, b);
		snprintf(file, sizeof(file), "%s%s", dir, path);
		if ((!data && http.how == MANIFEST_404_HUGE) || (data && http.how == DATA_503_HUGE)) {
			/* An error page that says it is 400 MB, 64 KiB of it sent,
			 * then nothing: the client must not wait for the rest. */
			static char junk[65536];
			char h[128];
			int n = snprintf(h, sizeof(h), "HTTP/1.1 %s\r\nContent-Length: 400000000\r\n\r\n",
					 data ? "503 Slow Down" : "404 Not Found");
			send(fd, h, (size_t)n, MSG_NOSIGNAL);
			send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
			while (!atomic_load(&http.stop)) {
				struct pollfd p = { .fd = fd, .events = POLLIN };
				char c;
				if (poll(&p, 1, 50) > 0 && recv(fd, &c, 1, 0) <= 0)
					break;
			}
			return;
		}
		if ((data && http.how == UNAVAILABLE_TWICE && gets < 2) ||
		    (data && http.how == THROTTLE_ALWAYS)) {
			reply(fd, http.how == THROTTLE_ALWAYS ? "429 Too Many Requests"
							       : "503 Slow Down", "", 0, NULL);
			continue;
		}
		int f = open(file, O_RDONLY);
		struct stat st;
		if (f < 0 || fstat(f, &st) || (data && http.how == DATA_404)) {
			if (f >= 0)
				close(f);
			reply(fd, "404 Not Found", "", 0, NULL);
			continue;
		}
		if (!ranged || http.how == NO_RANGE)
			a = 0, b = (unsigned long long)st.st_size - 1;
		size_t len = (size_t)(b - a + 1);
		char *body = malloc(len);
		if (!body || pread(f, body, len, (off_t)a) != (ssize_t)len) {
			free(body);
			close(f);
			return;
		}
		close(f);
		if (data && ((http.how == CORRUPT_ONCE && gets == 0) || http.how == CORRUPT_ALWAYS))
			body[len / 2] ^= 0x40;
		pthread_mutex_lock(&http.lock);
		if (data && http.corrupt_left && http.corrupt_at >= (long long)a &&
		    http.corrupt_at <= (long long)b) {
			body[http.corrupt_at - (long long)a] ^= 0x40;
			http.corrupt_left--;
		}
		pthread_mutex_unlock(&http.lock);
		if (data && http.how == FORGED_ALWAYS) {
			/* Changed on the way, its crc32c kept by an attacker. */
			uint32_t crc = crc32c(0, body, len);
			body[len / 2] ^= 0x40;
			forge_crc32c((unsigned char *)body, len, crc);
		}
		char extra[96];
		snprintf(extra, sizeof(extra), "Content-Range: bytes %llu-%llu/%llu\r\n", a, b,
			 (unsigned long long)st.st_size);
		reply(fd, ranged && http.how != NO_RANGE ? "206 Partial Content" : "200 OK", body, len,
		      ranged && http.how != NO_RANGE ? extra : NULL);
		free(body);
	}
}

static void *conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	serve_conn(fd);
	close(fd);
	return NULL;
}

/* Each connection in its own thread (curl opens up to 32), joined when the
 * server stops. */
static void *http_thread(void *arg)
{
	pthread_t conns[256];
	unsigned nconns = 0;

	(void)arg;
	while (!atomic_load(&http.stop)) {
		struct pollfd p = { .fd = http.listen_fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(http.listen_fd, NULL, NULL), one = 1;
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		atomic_fetch_add(&http.conns, 1);
		if (nconns == 256 ||
		    pthread_create(&conns[nconns], NULL, conn_thread, (void *)(intptr_t)fd)) {
			close(fd);
			continue;
		}
		nconns++;
	}
	for (unsigned i = 0; i < nconns; i++)
		pthread_join(conns[i], NULL);
	return NULL;
}

static bool http_start(enum misbehave how)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	http.how = how;
	atomic_store(&http.stop, 0);
	atomic_store(&http.data_gets, 0);
	pthread_mutex_lock(&http.lock);
	http.nranges = http.npass = http.held = 0;
	http.hold = http.gate_open = false;
	http.release = 0;
	http.corrupt_at = -1;
	http.corrupt_left = 0;
	pthread_mutex_unlock(&http.lock);
	if (http.held_fd < 0 && (http.held_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return false;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	http.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (http.listen_fd < 0 || bind(http.listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(http.listen_fd, 64) || getsockname(http.listen_fd, (struct sockaddr *)&a, &len))
		return false;
	http.port = ntohs(a.sin_port);
	return pthread_create(&http.thread, NULL, http_thread, NULL) == 0;
}

static void http_stop(void)
{
	atomic_store(&http.stop, 1);
	gate_open(); /* no answer stays held */
	pthread_join(http.thread, NULL);
	close(http.listen_fd);
}

/* ---- an image with zero, compressible and random chunks, packed ----------- */

static uint64_t want[NPAGES][512];

/* The test's folder, made once (by the first test that needs it). */
static bool make_dir(void)
{
	if (dir[0])
		return true;
	snprintf(dir, sizeof(dir), "/tmp/apfvm-obj-test.XXXXXX");
	if (mkdtemp(dir))
		return true;
	dir[0] = '\0';
	return false;
}

static bool make_packed(void)
{
	char img[128], dest[128];
	struct apf_err e;
	struct obj_pack_stats st;

	if (!make_dir())
		return false;
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(dest, sizeof(dest), "%s/mem", dir);
	if (image_create(img, NPAGES * 4096ull, SEED, &e))
		return false;
	image_fill(SEED, 0, &want[0][0], NPAGES * 512ull);
	/* Chunk 0: zeros; chunk 1: one repeated word (compresses); 2 and 3:
	 * the seeded words (random: stored raw). */
	for (unsigned p = 0; p < 128; p++)
		for (unsigned w = 0; w < 512; w++)
			want[p][w] = p < 64 ? 0 : 0x0123456789abcdefull;
	int fd = open(img, O_WRONLY);
	if (fd < 0 || pwrite(fd, want, 128 * 4096, IMAGE_HEADER_SIZE) != 128 * 4096)
		return false;
	close(fd);
	if (obj_pack(img, false, dest, 64, 3, NULL, &st, &e)) {
		fprintf(stderr, "pack: %s\n", e.msg);
		return false;
	}
	return st.nchunks == 4 && st.zero_chunks == 1 && st.raw_chunks == 2 &&
	       st.data_bytes < 3 * 64 * 4096ull;
}

/* ---- the client ------------------------------------------------------------- */

struct result {
	int err[NPAGES];
	char why[NPAGES][400];
	unsigned done, bad_content;
};

static uint64_t bufs[64][512];

static bool fetch_all(struct page_source *s, unsigned inflight, struct result *r)
{
	unsigned free_list[64], nfree = 0, next = 0;
	uint64_t deadline = source_now_ns() + WAIT_LIMIT_NS;
	struct source_completion c;

	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < inflight; i++)
		free_list[nfree++] = i;
	while (r->done < NPAGES) {
		while (next < NPAGES && nfree) {
			unsigned b = free_list[--nfree];
			if (source_submit(s, next, bufs[b], (void *)(uintptr_t)b))
				return false;
			next++;
		}
		bool any = false;
		while (source_reap(s, &c)) {
			unsigned b = (unsigned)(uintptr_t)c.cookie;
			any = true;
			free_list[nfree++] = b;
			r->done++;
			r->err[c.page] = c.err;
			if (c.err)
				snprintf(r->why[c.page], sizeof(r->why[c.page]), "%s", c.why ? c.why : "");
			else if (c.zero ? memcmp(want[c.page], (uint64_t[512]){ 0 }, 4096)
					: memcmp(bufs[b], want[c.page], 4096))
				r->bad_content++;
		}
		if (any || r->done == NPAGES || s->error)
			continue;
		uint64_t now = source_now_ns();
		if (now >= deadline) {
			printf("# %u of %u pages within the limit\n", r->done, NPAGES);
			return false;
		}
		source_wait(s, (int)((deadline - now) / 1000000) + 1);
	}
	return !s->error;
}

static const char *cache_dir; /* the disk tier, or NULL */

static int open_http(struct page_source **s, unsigned tries, struct apf_err *e)
{
	char spec[96];
	struct source_net_options net = { .timeout_ns = 2000000000ull, .tries = tries,
					   .store = { .cache_dir = cache_dir } };
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/mem", http.port);
	return source_open(spec, NPAGES * 4096ull, &net, s, e);
}

/* Runs a fetch of every page against the server misbehaving as `how`. */
static bool run(enum misbehave how, unsigned tries, unsigned inflight, struct result *r,
		struct page_source **keep)
{
	struct page_source *s;
	struct apf_err e;

	if (!http_start(how))
		return false;
	if (open_http(&s, tries, &e)) {
		printf("# open: %s\n", e.msg);
		http_stop();
		return false;
	}
	bool ok = fetch_all(s, inflight, r);
	if (keep)
		*keep = s;
	else
		source_close(s);
	http_stop();
	return ok;
}

TEST(pack_then_every_page_arrives_zero_compressed_or_raw)
{
	static struct result r;
	struct page_source *s;

	REQUIRE(make_packed());
	REQUIRE(run(NORMAL, 3, 64, &r, &s));
	CHECK_EQ_U(r.done, NPAGES);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(s->pattern, APF_PATTERN_SEEDED);
	CHECK_EQ_U(s->seed, SEED);
	CHECK_EQ_U(atomic_load(&http.data_gets), 3); /* one Range GET per stored chunk */
	/* A cached chunk is at hand: the async policy hears "no wait". */
	CHECK_EQ_U(s->ops->expected_ns(s, 199), 0);
	source_close(s);
	REQUIRE(run(NORMAL, 3, 1, &r, NULL)); /* one at a time, too */
	CHECK_EQ_U(r.bad_content, 0);
}

TEST(a_damaged_chunk_is_fetched_again_and_never_delivered)
{
	static struct result r;

	REQUIRE(run(CORRUPT_ONCE, 3, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 4);

	REQUIRE(run(CORRUPT_ALWAYS, 2, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(r.err[0], 0); /* the zero chunk needs no GET */
	CHECK_EQ_U(r.err[100], -EIO);
	CHECK(strstr(r.why[100], "chunk 1 (pages 64-127)") && strstr(r.why[100], "corrupt chunk") &&
	      strstr(r.why[100], "2 tries"));
}

TEST(a_chunk_with_a_forged_crc32c_is_refused_by_its_sha256)
{
	static struct result r;

	REQUIRE(run(FORGED_ALWAYS, 2, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(r.err[0], 0); /* the zero chunk needs no GET */
	CHECK_EQ_U(r.err[100], -EIO);
	CHECK(strstr(r.why[100], "forged chunk (SHA-256 mismatch)") && strstr(r.why[100], "2 tries"));
}

TEST(an_error_page_is_named_not_read)
{
	static struct result r;
	REQUIRE(run(DATA_503_HUGE, 2, 64, &r, NULL));
	CHECK_EQ_U(r.err[100], -EIO);
	CHECK(strstr(r.why[100], "HTTP 503") && strstr(r.why[100], "(2 tries)") &&
	      !strstr(r.why[100], "Timeout"));

	struct page_source *s;
	struct apf_err e;

	REQUIRE(http_start(MANIFEST_404_HUGE));
	uint64_t t0 = source_now_ns();
	CHECK_EQ_U(open_http(&s, 3, &e), -EIO);
	printf("# %s (%.2f s)\n", e.msg, (source_now_ns() - t0) / 1e9);
	CHECK(strstr(e.msg, "HTTP 404 Not Found") != NULL);
	CHECK(strstr(e.msg, "larger than") == NULL);
	http_stop();
}

TEST(server_errors_and_throttling_are_retried_404_is_not)
{
	static struct result r;

	REQUIRE(run(UNAVAILABLE_TWICE, 3, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK_EQ_U(r.err[p], 0);

	REQUIRE(run(THROTTLE_ALWAYS, 2, 64, &r, NULL));
	CHECK_EQ_U(r.err[150], -EIO);
	CHECK(strstr(r.why[150], "HTTP 429") && strstr(r.why[150], "throttled") &&
	      strstr(r.why[150], "2 tries"));

	REQUIRE(run(DATA_404, 3, 64, &r, NULL));
	CHECK_EQ_U(r.err[150], -ENOENT);
	CHECK(strstr(r.why[150], "HTTP 404") && strstr(r.why[150], "(1 try)"));
	CHECK_EQ_U(atomic_load(&http.data_gets), 3); /* once per chunk: no retry */
}

TEST(a_server_ignoring_range_is_refused)
{
	static struct result r;

	REQUIRE(run(NO_RANGE, 3, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(r.err[150], -EIO);
	CHECK(strstr(r.why[150], "ignored the Range request") != NULL);
}

TEST(missing_manifests_and_bad_specs_are_errors_at_open)
{
	struct page_source *s;
	struct apf_err e;
	char spec[96];

	REQUIRE(http_start(NORMAL));
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/none", http.port);
	CHECK_EQ_U(source_open(spec, 4096, NULL, &s, &e), -EIO);
	CHECK(strstr(e.msg, "HTTP 404") != NULL);
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/img", http.port); /* not a manifest */
	CHECK_EQ_U(source_open(spec, 4096, NULL, &s, &e), -EPROTO);
	CHECK(strstr(e.msg, "not an apfvm manifest") != NULL);
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/mem", http.port);
	CHECK_EQ_U(source_open(spec, 2 * NPAGES * 4096ull, NULL, &s, &e), -EINVAL);
	CHECK(strstr(e.msg, "less than the 1638400 asked for") != NULL);
	http_stop();
	static const char *const bad[] = { "s3://", "s3://Bucket/key", "s3://bucket", "s3://b/key",
					   "s3://bucket/key with space", "http://host",
					   "https://host/a%20b",
					   /* segments a client or server would resolve
					    * into another object's path */
					   "s3://bucket/../ok/img", "s3://bucket/a/./img",
					   "s3://bucket/a//img", "http://host/a/../b", "http://host/.." };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		CHECK_EQ_U(source_open(bad[i], 4096, NULL, &s, &e), -EINVAL);
		CHECK(e.msg[0] != '\0');
	}
	/* A URL longer than apfvm keeps is refused, never cut short (a cut
	 * URL names another object). */
	static char longkey[1100];
	struct obj_store_options so = { .s3_endpoint = "http://127.0.0.1:1/a-long-prefix-of-the-"
							"endpoint-that-with-the-key-makes-the-url-"
							"longer-than-1023-characters" };
	struct source_net_options net = { .timeout_ns = 1000000000ull, .tries = 1, .store = so };
	memcpy(longkey, "s3://bucket/", 12);
	memset(longkey + 12, 'k', 950 - 12);
	CHECK_EQ_U(source_open(longkey, 4096, &net, &s, &e), -EINVAL);
	CHECK(strstr(e.msg, "longer than") != NULL);
	/* A plain key with dots inside its names is fine. */
	CHECK(source_open("s3://bucket/v1.2/..img/mem.x", 4096, &net, &s, &e) == -EIO);
}

TEST(the_manifest_check_refuses_every_damage)
{
	struct obj_manifest m, back;
	struct obj_chunk c[3] = {
		{ .offset = 0, .stored_len = 100, .data_crc = 1, .stored_crc = 2 },
		{ .flags = OBJ_CHUNK_ZERO },
		{ .offset = 100, .stored_len = 8192, .flags = OBJ_CHUNK_RAW },
	};
	static unsigned char wire[4096], bad[4096];
	struct apf_err e;

	memset(&m, 0, sizeof(m));
	memcpy(m.hdr.magic, OBJ_MAGIC, 8);
	m.hdr.version = OBJ_VERSION;
	m.hdr.page_size = OBJ_PAGE_SIZE;
	m.hdr.npages = 10;
	m.hdr.chunk_pages = 4;
	m.hdr.nchunks = 3;
	m.hdr.pattern = APF_PATTERN_SEEDED;
	m.hdr.data_size = 8292;
	m.chunks = c;
	size_t len = obj_manifest_size(3);
	obj_manifest_encode(&m, wire);
	REQUIRE(obj_manifest_parse(wire, len, "m", &back, &e) == 0);
	CHECK_EQ_U(back.chunks[2].stored_len, 8192);
	obj_manifest_free(&back);
	/* Every single-byte change is refused (each byte is under a crc), as
	 * is every length but the right one. */
	unsigned accepted = 0;
	for (size_t i = 0; i < len; i++) {
		memcpy(bad, wire, len);
		bad[i] ^= 0x10;
		if (!obj_manifest_parse(bad, len, "m", &back, &e)) {
			accepted++;
			obj_manifest_free(&back);
		}
	}
	CHECK_EQ_U(accepted, 0);
	CHECK_EQ_U(obj_manifest_parse(wire, len - 1, "m", &back, &e), -EPROTO);
	CHECK_EQ_U(obj_manifest_parse(wire, len + 4, "m", &back, &e), -EPROTO);
	/* Well sealed but out of range: a chunk past the data object, a raw
	 * chunk of the wrong size. */
	c[2].stored_len = 8193;
	obj_manifest_encode(&m, wire);
	CHECK_EQ_U(obj_manifest_parse(wire, len, "m", &back, &e), -EPROTO);
	CHECK(strstr(e.msg, "chunk 2 out of range") != NULL);
	c[2].stored_len = 4096;
	obj_manifest_encode(&m, wire);
	CHECK_EQ_U(obj_manifest_parse(wire, len, "m", &back, &e), -EPROTO);
	c[2].stored_len = 8192;
	m.hdr.nchunks = 2;
	obj_manifest_encode(&m, wire);
	CHECK_EQ_U(obj_manifest_parse(wire, obj_manifest_size(2), "m", &back, &e), -EPROTO);
	CHECK(strstr(e.msg, "chunks for") != NULL);
	/* A header that claims more chunks than any manifest holds is
	 * refused before its table is asked for. */
	struct obj_manifest_hdr h = m.hdr;
	static const uint32_t zero;
	h.npages = OBJ_NPAGES_MAX;
	h.chunk_pages = 1;
	h.nchunks = OBJ_NPAGES_MAX;
	h.hdr_crc = crc32c(crc32c(0, &h, sizeof(h) - 4), &zero, 4); /* sealed */
	CHECK_EQ_U(obj_manifest_hdr_check(&h, "m", &e), -EPROTO);
	CHECK(strstr(e.msg, "16777216 chunks (at most 1048576)") != NULL);
	/* A manifest of the version before: its chunks vouched for by crc32c
	 * only. */
	m.hdr.npages = 10;
	m.hdr.chunk_pages = 4;
	m.hdr.nchunks = 3;
	m.hdr.version = 1;
	obj_manifest_encode(&m, wire);
	CHECK_EQ_U(obj_manifest_parse(wire, len, "m", &back, &e), -EPROTO);
	CHECK(strstr(e.msg, "crc32c only") && strstr(e.msg, "pack the image again"));
}

TEST(the_disk_tier_serves_a_later_run_and_a_damaged_file_is_fetched_again)
{
	static struct result r;
	char cdir[96], chunk2[256];

	snprintf(cdir, sizeof(cdir), "%s/cache", dir);
	cache_dir = cdir;
	REQUIRE(run(NORMAL, 3, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 3);
	/* A later run: every stored chunk from the disk, none from a store
	 * that now answers nothing but 429. */
	REQUIRE(run(THROTTLE_ALWAYS, 1, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 0);
	/* A damaged file is checked like a damaged reply: fetched again. */
	DIR *d = opendir(cdir);
	struct dirent *de;
	bool damaged = false;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') { /* the one <identity> folder */
			snprintf(chunk2, sizeof(chunk2), "%s/%.64s/2", cdir, de->d_name);
			int fd = open(chunk2, O_WRONLY);
			damaged = fd >= 0 && pwrite(fd, "x", 1, 100) == 1;
			if (fd >= 0)
				close(fd);
		}
	if (d)
		closedir(d);
	REQUIRE(damaged);
	REQUIRE(run(NORMAL, 3, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 1);
	cache_dir = NULL;
}

/* Names of the folders under a cache directory, space-separated. */
static unsigned count_folders(const char *cdir)
{
	DIR *d = opendir(cdir);
	struct dirent *de;
	unsigned n = 0;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* Bytes of the regular files in the folders under cdir. */
static uint64_t cache_bytes_used(const char *cdir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "find '%s' -type f -printf '%%s\\n' | awk '{ s += $1 } END { print s + 0 }'",
		 cdir);
	FILE *p = popen(cmd, "r");
	unsigned long long n = 0;
	if (!p || fscanf(p, "%llu", &n) != 1)
		n = UINT64_MAX;
	if (p)
		pclose(p);
	return n;
}

TEST(the_disk_tier_is_private_bounded_and_keyed_by_the_manifest)
{
	static struct result r;
	char cdir[128], cmd[512], link[160];
	struct stat st;
	struct page_source *s;
	struct apf_err e;

	/* Made 0700, whatever the umask; a folder per manifest (its SHA-256):
	 * another image with a manifest of the same length gets its own. */
	snprintf(cdir, sizeof(cdir), "%s/cache-private", dir);
	cache_dir = cdir;
	REQUIRE(run(NORMAL, 3, 64, &r, NULL));
	REQUIRE(stat(cdir, &st) == 0);
	CHECK_EQ_U(st.st_mode & 0777, 0700);
	CHECK_EQ_U(count_folders(cdir), 1);
	char img2[128], dest2[128];
	struct obj_pack_stats ps;
	snprintf(img2, sizeof(img2), "%s/img2", dir);
	snprintf(dest2, sizeof(dest2), "%s/mem2", dir);
	REQUIRE(image_create(img2, NPAGES * 4096ull, SEED + 1, &e) == 0);
	REQUIRE(obj_pack(img2, false, dest2, 64, 3, NULL, &ps, &e) == 0);
	REQUIRE(http_start(NORMAL));
	char spec[96];
	struct source_net_options net = { .timeout_ns = 2000000000ull, .tries = 3,
					   .store = { .cache_dir = cdir } };
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/mem2", http.port);
	REQUIRE(source_open(spec, NPAGES * 4096ull, &net, &s, &e) == 0);
	source_close(s);
	http_stop();
	CHECK_EQ_U(count_folders(cdir), 2);

	/* Writable by others: refused, as is a symlink in its place. */
	REQUIRE(http_start(NORMAL));
	REQUIRE(chmod(cdir, 0777) == 0);
	CHECK_EQ_U(open_http(&s, 3, &e), -EPERM);
	CHECK(strstr(e.msg, "writable by others") != NULL);
	REQUIRE(chmod(cdir, 0700) == 0);
	snprintf(link, sizeof(link), "%s/cache-link", dir);
	REQUIRE(symlink(cdir, link) == 0);
	cache_dir = link;
	CHECK(open_http(&s, 3, &e) < 0);
	CHECK(strstr(e.msg, "not a directory") != NULL);
	cache_dir = cdir;
	http_stop();

	/* A chunk file planted as a symlink is not followed: the chunk is
	 * fetched. */
	snprintf(cmd, sizeof(cmd), "cd '%s' && for f in */2; do rm \"$f\"; ln -s ../../img \"$f\"; "
		 "done", cdir);
	REQUIRE(system(cmd) == 0);
	REQUIRE(run(NORMAL, 3, 64, &r, NULL));
	CHECK_EQ_U(r.bad_content, 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 1);

	/* Bounded: with room for less than its three stored chunks, a run
	 * leaves at most that. */
	net.store.cache_dir_bytes = 270000;
	uint64_t before = cache_bytes_used(cdir);
	CHECK(before > 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cdir);
	REQUIRE(system(cmd) == 0);
	REQUIRE(http_start(NORMAL));
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/mem", http.port);
	REQUIRE(source_open(spec, NPAGES * 4096ull, &net, &s, &e) == 0);
	CHECK(fetch_all(s, 64, &r));
	source_close(s);
	http_stop();
	uint64_t used = cache_bytes_used(cdir);
	printf("# chunk files: %llu of %llu bytes with a 270000-byte bound\n",
	       (unsigned long long)used, (unsigned long long)before);
	CHECK(used > 0 && used <= 270000 && used < before);
	cache_dir = NULL;
}

/* ---- many small chunks: the pending queue and the disk tier together ------ */

/* Fetches pages [from, to) of s, all submitted before any is reaped (the
 * first OBJ_FETCHES_MAX chunks take the transfers, the rest queue), and
 * checks each against expect.  false if they did not all come. */
static bool fetch_pages(struct page_source *s, unsigned from, unsigned to,
			const uint64_t (*expect)[512], struct result *r)
{
	static uint64_t pages[NPAGES][512];
	uint64_t deadline = source_now_ns() + WAIT_LIMIT_NS;
	struct source_completion c;
	unsigned n = to - from;

	memset(r, 0, sizeof(*r));
	for (unsigned p = from; p < to; p++)
		if (source_submit(s, p, pages[p], NULL))
			return false;
	while (r->done < n && !s->error) {
		while (source_reap(s, &c)) {
			r->done++;
			r->err[c.page] = c.err;
			if (c.err)
				snprintf(r->why[c.page], sizeof(r->why[c.page]), "%s", c.why ? c.why : "");
			if (c.err && r->done == 1)
				printf("# page %llu: %s\n", (unsigned long long)c.page, r->why[c.page]);
			if (!c.err && (c.zero ? memcmp(expect[c.page], (uint64_t[512]){ 0 }, 4096)
					      : memcmp(pages[c.page], expect[c.page], 4096)))
				r->bad_content++;
		}
		uint64_t now = source_now_ns();
		if (r->done == n || now >= deadline)
			break;
		source_wait(s, (int)((deadline - now) / 1000000) + 1);
	}
	return r->done == n && !s->error;
}

/* The same, checked against the image. */
static bool fetch_range(struct page_source *s, unsigned from, unsigned to, struct result *r)
{
	return fetch_pages(s, from, to, (const uint64_t (*)[512])want, r);
}

static int open_small_chunks(struct page_source **s, const char *cdir, struct apf_err *e)
{
	char spec[96];
	/* 4 chunks in memory: fewer than a run of queued disk hits. */
	struct source_net_options net = { .timeout_ns = 2000000000ull, .tries = 3,
					   .store = { .cache_dir = cdir, .cache_bytes = 4 * 4096 } };
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/small", http.port);
	return source_open(spec, NPAGES * 4096ull, &net, s, e);
}

/* One page per chunk, 4 of them cached in memory, the disk tier holding
 * pages 100 and up.  Pages 64..127 at once: the first 32 chunks take
 * every transfer, the rest wait, and most of those are on the disk.  Each
 * transfer's end starts the next waiting chunk; a run of disk hits longer
 * than the memory cache must not evict a chunk before its pages are out. */
TEST(queued_disk_hits_beyond_the_memory_cache_are_all_delivered)
{
	static struct result r;
	char img[128], dest[128], cdir[128];
	struct obj_pack_stats st;
	struct page_source *s;
	struct apf_err e;

	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(dest, sizeof(dest), "%s/small", dir);
	snprintf(cdir, sizeof(cdir), "%s/cache-small", dir);
	REQUIRE(obj_pack(img, false, dest, 1, 3, NULL, &st, &e) == 0);
	REQUIRE(http_start(NORMAL));
	REQUIRE(open_small_chunks(&s, cdir, &e) == 0);
	CHECK(fetch_range(s, 100, NPAGES, &r));
	CHECK_EQ_U(r.bad_content, 0);
	source_close(s);
	REQUIRE(open_small_chunks(&s, cdir, &e) == 0);
	CHECK(fetch_range(s, 64, 128, &r));
	CHECK_EQ_U(r.done, 64);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 64; p < 128; p++)
		CHECK_EQ_U(r.err[p], 0);
	source_close(s);
	http_stop();
}

/* ---- a snapshot's memory: its zero pages neither stored nor fetched ------ */

static uint64_t snap_want[NPAGES][512];

/* The snapshot's pages: zeros but for chunk 1 (pages 64-127) and page
 * 150 (in chunk 2); chunks 0 and 3 all zero. */
static bool snap_has_data(unsigned p)
{
	return (p >= 64 && p < 128) || p == 150;
}

static bool write_snapshot(const char *path)
{
	static struct sha256 digests[NPAGES];
	struct snap_writer w;
	struct apf_err e;
	uint64_t next = 0;

	for (unsigned p = 0; p < NPAGES; p++)
		for (unsigned i = 0; i < 512; i++)
			snap_want[p][i] = snap_has_data(p) ? (p + 1) * 0x9e3779b97f4a7c15ull ^ i : 0;
	if (snap_write_begin(&w, path, SNAP_ARCH_X86_64, 128 * 4096, (NPAGES - 128) * 4096, &e))
		return false;
	if (snap_write_memory(&w, snap_want, sizeof(snap_want), digests, &next, &e) ||
	    snap_write_section(&w, SNAP_SEC_PAGE_DIGESTS, 0, digests, sizeof(digests), &e)) {
		snap_write_abort(&w);
		return false;
	}
	return snap_write_end(&w, &e) == 0;
}

TEST(a_snapshots_zero_pages_are_neither_stored_nor_fetched)
{
	static struct result r;
	char spath[128], mpath[140], dest[128];
	struct obj_pack_stats st;
	struct snap_image snap;
	struct page_source *inner, *w;
	struct apf_err e;

	REQUIRE(dir[0]);
	snprintf(spath, sizeof(spath), "%s/snap", dir);
	snprintf(mpath, sizeof(mpath), "%s/snap.mem", dir);
	snprintf(dest, sizeof(dest), "%s/snapmem", dir);
	REQUIRE(write_snapshot(spath));
	/* Pages the state lists as zero are not even read: garbage planted
	 * in their holes (page 10 of chunk 0, page 140 of chunk 2) is never
	 * packed. */
	int fd = open(mpath, O_WRONLY);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, "garbage", 7, 10 * 4096 + 100) == 7);
	REQUIRE(pwrite(fd, "garbage", 7, 140 * 4096 + 100) == 7);
	close(fd);
	REQUIRE(obj_pack(spath, true, dest, 64, 3, NULL, &st, &e) == 0);
	CHECK_EQ_U(st.nchunks, 4);
	CHECK_EQ_U(st.zero_chunks, 2); /* chunks 0 and 3: not stored */
	/* The manifest says so: no bytes in the data object for them. */
	static unsigned char wire[1 << 16];
	fd = open(dest, O_RDONLY);
	REQUIRE(fd >= 0);
	ssize_t wl = read(fd, wire, sizeof(wire));
	close(fd);
	struct obj_manifest m;
	REQUIRE(wl > 0 && obj_manifest_parse(wire, (size_t)wl, "snapmem", &m, &e) == 0);
	CHECK_EQ_U(m.hdr.pattern, APF_PATTERN_SNAPSHOT);
	CHECK(m.chunks[0].flags == OBJ_CHUNK_ZERO && m.chunks[0].stored_len == 0);
	CHECK(m.chunks[3].flags == OBJ_CHUNK_ZERO && m.chunks[3].stored_len == 0);
	CHECK(m.chunks[1].stored_len > 0 && m.chunks[2].stored_len > 0);
	CHECK_EQ_U(m.hdr.data_size, m.chunks[1].stored_len + m.chunks[2].stored_len);
	obj_manifest_free(&m);

	/* Restored through the checked window, as apfvm restore --source
	 * reads it: the zero pages of chunk 2 ask nothing of the store... */
	char spec[96];
	struct source_net_options net = { .timeout_ns = 2000000000ull, .tries = 3 };
	REQUIRE(http_start(NORMAL));
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/snapmem", http.port);
	REQUIRE(snap_open_state(&snap, spath, &e) == 0);
	REQUIRE(source_open(spec, 0, &net, &inner, &e) == 0);
	CHECK_EQ_U(inner->seed, snap_identity(&snap));
	REQUIRE(source_window_wrap(inner, &snap, 0, NPAGES, &w, &e) == 0);
	CHECK(fetch_pages(w, 128, 150, (const uint64_t (*)[512])snap_want, &r));
	CHECK(fetch_pages(w, 151, 192, (const uint64_t (*)[512])snap_want, &r));
	CHECK_EQ_U(atomic_load(&http.data_gets), 0);
	/* ... and every page comes right, with one GET per chunk that has
	 * data (1 and 2), none for the zero chunks. */
	CHECK(fetch_pages(w, 0, NPAGES, (const uint64_t (*)[512])snap_want, &r));
	CHECK_EQ_U(r.done, NPAGES);
	CHECK_EQ_U(r.bad_content, 0);
	for (unsigned p = 0; p < NPAGES; p++)
		CHECK_EQ_U(r.err[p], 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 2);
	source_close(w);
	snap_close(&snap);
	http_stop();
}

/* ---- runs of pages and priorities ------------------------------------------- */

/* The image in chunks of one page ("runs"): 64 zero chunks, 64
 * compressed, 72 raw, stored back to back. */
static struct obj_manifest runs_m;

static bool read_manifest_file(const char *name, struct obj_manifest *m)
{
	char path[128];
	static char wire[1 << 20];
	struct apf_err e;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, wire, sizeof(wire)) : -1;
	if (fd >= 0)
		close(fd);
	return n > 0 && obj_manifest_parse(wire, (size_t)n, name, m, &e) == 0;
}

static bool pack_runs(void)
{
	char img[128], dest[128];
	struct obj_pack_stats st;
	struct apf_err e;

	if (runs_m.chunks)
		return true;
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(dest, sizeof(dest), "%s/runs", dir);
	return obj_pack(img, false, dest, 1, 3, NULL, &st, &e) == 0 && st.zero_chunks == 64 &&
	       read_manifest_file("runs", &runs_m);
}

static int open_named(const char *name, uint64_t npages, unsigned tries, struct page_source **s,
		      struct apf_err *e)
{
	char spec[96];
	struct source_net_options net = { .timeout_ns = 20000000000ull, .tries = tries };
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/%s", http.port, name);
	return source_open(spec, npages * 4096ull, &net, s, e);
}

static unsigned long long chunk_at(const struct obj_manifest *m, uint64_t chunk)
{
	return m->chunks[chunk].offset;
}

static unsigned long long chunk_last(const struct obj_manifest *m, uint64_t chunk)
{
	return m->chunks[chunk].offset + m->chunks[chunk].stored_len - 1;
}

/* Data requests logged that start at byte a (and end at b, unless b is
 * ~0). */
static unsigned requests_for(unsigned long long a, unsigned long long b)
{
	unsigned n = 0;
	pthread_mutex_lock(&http.lock);
	for (unsigned i = 0; i < http.nranges; i++)
		n += http.ranges[i].a == a && (b == ~0ull || http.ranges[i].b == b);
	pthread_mutex_unlock(&http.lock);
	return n;
}

/* Forgets the requests counted and logged so far. */
static void http_recount(void)
{
	atomic_store(&http.data_gets, 0);
	atomic_store(&http.conns, 0);
	pthread_mutex_lock(&http.lock);
	http.nranges = 0;
	pthread_mutex_unlock(&http.lock);
}

static unsigned held_now(void)
{
	pthread_mutex_lock(&http.lock);
	unsigned n = http.held;
	pthread_mutex_unlock(&http.lock);
	return n;
}

/* Completions in the order they came, each checked against the image. */
struct tally {
	unsigned n, bad_content, failed;
	uint64_t order[2 * NPAGES];
	int err[NPAGES];
	char why[NPAGES][400];
};

static void reap_all(struct page_source *s, struct tally *t)
{
	struct source_completion c;

	while (source_reap(s, &c)) {
		if (t->n < 2 * NPAGES)
			t->order[t->n] = c.page;
		t->n++;
		t->err[c.page] = c.err;
		if (c.err) {
			t->failed++;
			snprintf(t->why[c.page], sizeof(t->why[c.page]), "%s", c.why ? c.why : "");
		} else if (c.zero ? memcmp(want[c.page], (uint64_t[512]){ 0 }, 4096)
				  : memcmp(c.buf, want[c.page], 4096)) {
			t->bad_content++;
		}
	}
}

/* Lets s and the server work until `held` answers are held and `done`
 * pages completed, within WAIT_LIMIT_NS: it waits on the source's fd and
 * on the server's signal of a held request, never on a clock. */
static bool drive(struct page_source *s, struct tally *t, unsigned held, unsigned done,
		  const char *what)
{
	uint64_t deadline = source_now_ns() + WAIT_LIMIT_NS;

	for (;;) {
		reap_all(s, t);
		if (held_now() >= held && t->n >= done)
			return true;
		uint64_t now = source_now_ns();
		if (now >= deadline || s->error) {
			printf("# %s: not within %llu s (%u pages done, %u answers held)%s%s\n", what,
			       WAIT_LIMIT_NS / 1000000000ull, t->n, held_now(),
			       s->error ? ": " : "", s->error ? s->error_what : "");
			return false;
		}
		struct pollfd p[2] = { { .fd = s->event_fd, .events = POLLIN },
				       { .fd = http.held_fd, .events = POLLIN } };
		uint64_t v;
		if (poll(p, 2, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		if ((p[1].revents & POLLIN) && read(http.held_fd, &v, sizeof(v)) < 0)
			continue;
		if (p[0].revents & POLLIN)
			s->ops->on_event(s);
	}
}

static uint64_t page_bufs[NPAGES][512], extra_bufs[16][512];

/* Pages [from, to) as runs of `len` (the last may be shorter) at prio. */
static bool submit_runs(struct page_source *s, unsigned from, unsigned to, unsigned len,
			enum source_prio prio)
{
	for (unsigned p = from; p < to; p += len) {
		void *rb[SOURCE_RUN_MAX], *cookies[SOURCE_RUN_MAX] = { 0 };
		unsigned n = to - p < len ? to - p : len, started;
		for (unsigned i = 0; i < n; i++)
			rb[i] = page_bufs[p + i];
		if (source_submit_run(s, p, n, rb, cookies, prio, &started))
			return false;
	}
	return true;
}

TEST(a_run_of_adjacent_chunks_is_one_range_request)
{
	static struct tally t;
	struct obj_manifest m;
	struct page_source *s;
	struct apf_err e;

	/* Chunks of 64 pages: pages 100..163 need chunks 1 and 2, one
	 * request; 164..199 then need chunk 3 alone (2 is cached). */
	REQUIRE(read_manifest_file("mem", &m));
	REQUIRE(http_start(NORMAL));
	REQUIRE(open_named("mem", NPAGES, 3, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 100, 164, 64, SOURCE_BULK));
	REQUIRE(drive(s, &t, 0, 64, "a run over chunks 1 and 2"));
	CHECK_EQ_U(atomic_load(&http.data_gets), 1);
	CHECK_EQ_U(requests_for(chunk_at(&m, 1), chunk_last(&m, 2)), 1);
	REQUIRE(submit_runs(s, 0, 100, 50, SOURCE_DEMAND)); /* zeros, chunk 1 cached */
	REQUIRE(submit_runs(s, 164, NPAGES, 64, SOURCE_BULK));
	REQUIRE(drive(s, &t, 0, NPAGES, "every page"));
	CHECK_EQ_U(atomic_load(&http.data_gets), 2);
	CHECK_EQ_U(requests_for(chunk_at(&m, 3), chunk_last(&m, 3)), 1);
	CHECK_EQ_U(t.n, NPAGES);
	CHECK_EQ_U(t.bad_content, 0);
	CHECK_EQ_U(t.failed, 0);
	source_close(s);
	obj_manifest_free(&m);

	/* Chunks of one page: a run of 64 takes 8 requests of 8 chunks. */
	REQUIRE(pack_runs());
	http_recount();
	REQUIRE(open_named("runs", NPAGES, 3, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 128, 192, 64, SOURCE_BULK));
	REQUIRE(submit_runs(s, 64, 128, 64, SOURCE_DEMAND));
	REQUIRE(drive(s, &t, 0, 128, "two runs of 64 one-page chunks"));
	CHECK_EQ_U(t.bad_content, 0);
	CHECK_EQ_U(t.failed, 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 16);
	for (unsigned c = 64; c < 192; c += 8)
		CHECK_EQ_U(requests_for(chunk_at(&runs_m, c), chunk_last(&runs_m, c + 7)), 1);
	source_close(s);
	http_stop();
}

TEST(a_damaged_chunk_in_a_range_is_fetched_again_alone_never_delivered)
{
	static struct tally t;
	struct page_source *s;
	struct apf_err e;

	/* Chunk 131 damaged in the reply for 128..135: the others are
	 * installed, 131 alone asked for again. */
	REQUIRE(pack_runs());
	REQUIRE(http_start(NORMAL));
	http.corrupt_at = (long long)chunk_at(&runs_m, 131) + 100;
	http.corrupt_left = 1;
	REQUIRE(open_named("runs", NPAGES, 3, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 128, 136, 8, SOURCE_BULK));
	REQUIRE(drive(s, &t, 0, 8, "a run with a damaged chunk"));
	CHECK_EQ_U(t.bad_content, 0);
	CHECK_EQ_U(t.failed, 0);
	CHECK_EQ_U(s->corrupt, 1);
	CHECK_EQ_U(atomic_load(&http.data_gets), 2);
	CHECK_EQ_U(requests_for(chunk_at(&runs_m, 128), chunk_last(&runs_m, 135)), 1);
	CHECK_EQ_U(requests_for(chunk_at(&runs_m, 131), chunk_last(&runs_m, 131)), 1);
	source_close(s);

	/* Damaged every time: its page fails, named, the others arrive. */
	http.corrupt_left = 100;
	REQUIRE(open_named("runs", NPAGES, 2, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 128, 136, 8, SOURCE_BULK));
	REQUIRE(drive(s, &t, 0, 8, "a run with a chunk damaged every time"));
	CHECK_EQ_U(t.bad_content, 0);
	CHECK_EQ_U(t.failed, 1);
	CHECK_EQ_U(t.err[131], -EIO);
	CHECK(strstr(t.why[131], "chunk 131 (pages 131-131)") && strstr(t.why[131], "corrupt chunk") &&
	      strstr(t.why[131], "(2 tries)"));
	source_close(s);
	http_stop();
}

/* With the disk tier holding chunks 128 and 131, a run over 128..135
 * reads them from the disk and asks for the rest in one request:
 * 129..135's bytes, 131's among them skipped. */
TEST(a_run_takes_the_disk_tiers_chunks_and_one_request_for_the_rest)
{
	static struct tally t;
	char spec[96], cdir[128];
	struct page_source *s;
	struct apf_err e;

	REQUIRE(pack_runs());
	snprintf(cdir, sizeof(cdir), "%s/cache-runs", dir);
	struct source_net_options net = { .timeout_ns = 20000000000ull, .tries = 3,
					   .store = { .cache_dir = cdir } };
	REQUIRE(http_start(NORMAL));
	snprintf(spec, sizeof(spec), "http://127.0.0.1:%u/runs", http.port);
	REQUIRE(source_open(spec, NPAGES * 4096ull, &net, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 128, 129, 1, SOURCE_BULK));
	REQUIRE(submit_runs(s, 131, 132, 1, SOURCE_BULK));
	REQUIRE(drive(s, &t, 0, 2, "chunks 128 and 131"));
	source_close(s); /* their disk writes done */
	http_recount();
	REQUIRE(source_open(spec, NPAGES * 4096ull, &net, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 128, 136, 8, SOURCE_BULK));
	REQUIRE(drive(s, &t, 0, 8, "a run, two chunks of it on the disk"));
	CHECK_EQ_U(t.bad_content, 0);
	CHECK_EQ_U(t.failed, 0);
	CHECK_EQ_U(atomic_load(&http.data_gets), 1);
	CHECK_EQ_U(requests_for(chunk_at(&runs_m, 129), chunk_last(&runs_m, 135)), 1);
	source_close(s);
	http_stop();
}

/* 128 bulk runs of one page (64..191) against a server that holds their
 * answers: 24 start, the rest queue.  Then demand pages: 195 (asked for
 * by no one) and 150 (queued as bulk: promoted) start in the slots bulk
 * may not take, and are answered while every bulk answer is still held;
 * 64 (being fetched in bulk) joins that fetch. */
TEST(a_demand_page_overtakes_every_bulk_fetch)
{
	static struct tally t;
	struct page_source *s;
	struct apf_err e;

	REQUIRE(pack_runs());
	REQUIRE(http_start(NORMAL));
	http.hold = true;
	http.pass[http.npass++] = chunk_at(&runs_m, 195);
	http.pass[http.npass++] = chunk_at(&runs_m, 150);
	REQUIRE(open_named("runs", NPAGES, 3, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 64, 192, 1, SOURCE_BULK));
	REQUIRE(drive(s, &t, 24, 0, "24 bulk requests"));
	CHECK_EQ_U(held_now(), 24);
	CHECK_EQ_U(t.n, 0);
	REQUIRE(source_submit(s, 195, extra_bufs[0], NULL) == 0);
	REQUIRE(source_submit(s, 150, extra_bufs[1], NULL) == 0);
	REQUIRE(source_submit(s, 64, extra_bufs[2], NULL) == 0);
	/* 150's chunk also serves the bulk page 150 waiting on it. */
	REQUIRE(drive(s, &t, 0, 3, "demand pages behind 128 bulk ones"));
	CHECK_EQ_U(t.n, 3);
	unsigned p150 = 0, p195 = 0;
	for (unsigned i = 0; i < 3; i++)
		p150 += t.order[i] == 150, p195 += t.order[i] == 195;
	CHECK(p150 == 2 && p195 == 1);
	CHECK_EQ_U(held_now(), 24); /* every bulk answer still held */
	gate_open();
	REQUIRE(drive(s, &t, 0, 128 + 3, "every page once the answers go"));
	CHECK_EQ_U(t.n, 128 + 3);
	CHECK_EQ_U(t.bad_content, 0);
	CHECK_EQ_U(t.failed, 0);
	CHECK_EQ_U(requests_for(chunk_at(&runs_m, 64), ~0ull), 1);  /* joined */
	CHECK_EQ_U(requests_for(chunk_at(&runs_m, 150), chunk_last(&runs_m, 150)), 1);
	source_close(s);
	http_stop();
}

/* Every slot busy and held (24 bulk, 8 demand), 40 bulk chunks queued,
 * then a demand page.  One answer goes, so one slot frees: the request
 * that takes it is the demand page's. */
TEST(a_queued_demand_chunk_starts_before_every_queued_bulk_one)
{
	static struct tally t;
	struct page_source *s;
	struct apf_err e;

	REQUIRE(pack_runs());
	REQUIRE(http_start(NORMAL));
	http.hold = true;
	REQUIRE(open_named("runs", NPAGES, 3, &s, &e) == 0);
	memset(&t, 0, sizeof(t));
	REQUIRE(submit_runs(s, 64, 128, 1, SOURCE_BULK));
	for (unsigned i = 0; i < 8; i++)
		REQUIRE(source_submit(s, 130 + 2 * i, extra_bufs[i], NULL) == 0);
	REQUIRE(drive(s, &t, 32, 0, "32 requests"));
	REQUIRE(source_submit(s, 160, extra_bufs[8], NULL) == 0);
	CHECK_EQ_U(held_now(), 32);
	gate_release_one();
	REQUIRE(drive(s, &t, 33, 1, "one answer, then the next request"));
	pthread_mutex_lock(&http.lock);
	bool first = http.nranges == 33 && http.ranges[32].a == chunk_at(&runs_m, 160) &&
		     http.ranges[32].b == chunk_last(&runs_m, 160);
	for (unsigned i = 0; !first && i < http.nranges; i++)
		printf("# request %u: bytes %llu-%llu (chunk 160: %llu)\n", i, http.ranges[i].a,
		       http.ranges[i].b, chunk_at(&runs_m, 160));
	pthread_mutex_unlock(&http.lock);
	CHECK(first);
	gate_open();
	REQUIRE(drive(s, &t, 0, 64 + 9, "every page once the answers go"));
	CHECK_EQ_U(t.bad_content, 0);
	CHECK_EQ_U(t.failed, 0);
	source_close(s);
	http_stop();
}

/* ---- 4096 pages: single submits and runs, side by side -------------------- */

#define BIG_PAGES    4096
#define BIG_INFLIGHT 256
static uint64_t big_bufs[BIG_INFLIGHT][512];

/* Every page of s, in runs of run_len (1: source_submit) at most
 * BIG_INFLIGHT pages in flight, each checked against the image of seed. */
static bool fetch_big(struct page_source *s, unsigned run_len, enum source_prio prio,
		      uint64_t seed, unsigned *bad)
{
	unsigned free_list[BIG_INFLIGHT], nfree = 0, next = 0, done = 0;
	uint64_t deadline = source_now_ns() + WAIT_LIMIT_NS, expect[512];
	struct source_completion c;

	*bad = 0;
	for (unsigned i = 0; i < BIG_INFLIGHT; i++)
		free_list[nfree++] = i;
	while (done < BIG_PAGES) {
		while (next < BIG_PAGES && nfree >= run_len) {
			void *rb[SOURCE_RUN_MAX], *cookies[SOURCE_RUN_MAX];
			unsigned started;
			for (unsigned i = 0; i < run_len; i++) {
				unsigned b = free_list[--nfree];
				rb[i] = big_bufs[b];
				cookies[i] = (void *)(uintptr_t)b;
			}
			if (run_len == 1 ? source_submit(s, next, rb[0], cookies[0])
					 : source_submit_run(s, next, run_len, rb, cookies, prio, &started))
				return false;
			next += run_len;
		}
		bool any = false;
		while (source_reap(s, &c)) {
			any = true;
			free_list[nfree++] = (unsigned)(uintptr_t)c.cookie;
			done++;
			image_fill(seed, c.page * 512, expect, 512);
			if (c.err && !*bad)
				printf("# page %llu: %s\n", (unsigned long long)c.page, c.why ? c.why : strerror(-c.err));
			*bad += c.err || memcmp(c.buf, expect, 4096);
		}
		uint64_t now = source_now_ns();
		if (done == BIG_PAGES || s->error || now >= deadline)
			break;
		if (!any) /* else buffers came back: submit first */
			source_wait(s, (int)((deadline - now) / 1000000) + 1);
	}
	return done == BIG_PAGES && !s->error;
}

/* Times 4096 pages from the test server as single submits and as runs of
 * 64 at bulk priority, for chunks of 1 and of 64 pages: the figures go to
 * the log; the checks are the counts of requests and every page right. */
TEST(four_thousand_pages_single_submits_and_runs_side_by_side)
{
	char img[128], dest[128], name[16];
	static const uint32_t chunk_pages[] = { 1, 64 };
	struct obj_pack_stats st;
	struct page_source *s;
	struct apf_err e;
	unsigned bad;

	REQUIRE(make_dir());
	snprintf(img, sizeof(img), "%s/big", dir);
	REQUIRE(image_create(img, BIG_PAGES * 4096ull, SEED + 2, &e) == 0);
	for (unsigned k = 0; k < 2; k++) {
		double secs[2];
		unsigned gets[2], conns[2], max_len = 0;
		snprintf(name, sizeof(name), "big%u", chunk_pages[k]);
		snprintf(dest, sizeof(dest), "%s/%s", dir, name);
		REQUIRE(obj_pack(img, false, dest, chunk_pages[k], 3, NULL, &st, &e) == 0);
		REQUIRE(http_start(NORMAL));
		for (unsigned way = 0; way < 2; way++) {
			http_recount();
			REQUIRE(open_named(name, BIG_PAGES, 3, &s, &e) == 0);
			uint64_t t0 = source_now_ns();
			CHECK(fetch_big(s, way ? 64 : 1, SOURCE_BULK, SEED + 2, &bad));
			secs[way] = (double)(source_now_ns() - t0) / 1e9;
			gets[way] = (unsigned)atomic_load(&http.data_gets);
			conns[way] = (unsigned)atomic_load(&http.conns);
			CHECK_EQ_U(bad, 0);
			source_close(s);
		}
		pthread_mutex_lock(&http.lock);
		for (unsigned i = 0; i < http.nranges; i++)
			if (http.ranges[i].b - http.ranges[i].a + 1 > max_len)
				max_len = (unsigned)(http.ranges[i].b - http.ranges[i].a + 1);
		pthread_mutex_unlock(&http.lock);
		http_stop();
		printf("# %u pages, chunks of %u: single submits %u requests (%u connections) "
		       "%.3f s; runs of 64 (bulk) %u requests (%u connections) %.3f s, the largest "
		       "%u bytes\n", BIG_PAGES, chunk_pages[k], gets[0], conns[0], secs[0], gets[1],
		       conns[1], secs[1], max_len);
		/* Connections are kept between requests: about one a slot (32),
		 * and the manifest's. */
		CHECK(conns[0] <= 40 && conns[1] <= 40);
		CHECK(gets[1] < gets[0] || chunk_pages[k] == 64);
		CHECK(max_len <= (1u << 20));
		if (chunk_pages[k] == 1)
			CHECK_EQ_U(gets[1], BIG_PAGES / 8); /* 8 chunks a request */
		unlink(dest);
		snprintf(dest, sizeof(dest), "%s/%s.data", dir, name);
		unlink(dest);
	}
	unlink(img);
}

static void cleanup(void)
{
	char cmd[160];
	obj_manifest_free(&runs_m);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (dir[0] && system(cmd))
		printf("# could not remove %s\n", dir);
}

TEST(cleanup_files)
{
	cleanup();
}

TEST_MAIN(T(pack_then_every_page_arrives_zero_compressed_or_raw),
	  T(a_damaged_chunk_is_fetched_again_and_never_delivered),
	  T(server_errors_and_throttling_are_retried_404_is_not),
	  T(a_chunk_with_a_forged_crc32c_is_refused_by_its_sha256), T(an_error_page_is_named_not_read),
	  T(a_server_ignoring_range_is_refused), T(missing_manifests_and_bad_specs_are_errors_at_open),
	  T(the_manifest_check_refuses_every_damage),
	  T(the_disk_tier_serves_a_later_run_and_a_damaged_file_is_fetched_again),
	  T(the_disk_tier_is_private_bounded_and_keyed_by_the_manifest),
	  T(queued_disk_hits_beyond_the_memory_cache_are_all_delivered),
	  T(a_snapshots_zero_pages_are_neither_stored_nor_fetched),
	  T(a_run_of_adjacent_chunks_is_one_range_request),
	  T(a_damaged_chunk_in_a_range_is_fetched_again_alone_never_delivered),
	  T(a_run_takes_the_disk_tiers_chunks_and_one_request_for_the_rest),
	  T(a_demand_page_overtakes_every_bulk_fetch),
	  T(a_queued_demand_chunk_starts_before_every_queued_bulk_one),
	  T(four_thousand_pages_single_submits_and_runs_side_by_side), T(cleanup_files))
