/*
 * AWS Signature V4 (src/objstore/obj_http.c, signed by libcurl): the
 * requests apfvm sends to S3 (the manifest's header with a Range request,
 * a whole object, a PUT of pack's, with and without a session token) are
 * captured by a server in this test and their signatures recomputed by
 * botocore's signer (tests/tools/sigv4_check.py; Debian's python3-botocore,
 * make deps): an independent implementation must agree on every one.
 * s3rver, the tests' S3 server, does not check signatures.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "objstore/obj_http.h"
#include "test.h"
#include "util/file.h"

#define KEY    "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define REGION "eu-west-3"
#define TOKEN  "IQoJb3JpZ2luX2VjEBoaCXVzLWVhc3QtMSJHMEUCIQD-session-token"

static struct {
	int listen_fd;
	uint16_t port;
	pthread_t thread;
	atomic_int stop;
	FILE *log;       /* the requests, as sigv4_check.py reads them */
} srv;

/* Serves one connection: each request logged, answered 200 or 206. */
static void serve(int fd)
{
	static char buf[65536];
	size_t have = 0;

	for (;;) {
		char *end;
		while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (atomic_load(&srv.stop) || have == sizeof(buf) - 1 || poll(&p, 1, 50) < 0)
				return;
			if (!(p.revents & POLLIN))
				continue;
			ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		*end = '\0';
		size_t used = (size_t)(end + 4 - buf);
		/* The request line and headers, CRLF to LF, one block. */
		for (char *line = buf, *next; line; line = next) {
			next = strstr(line, "\r\n");
			if (next)
				*next = '\0', next += 2;
			if (!strncmp(line, "GET ", 4) || !strncmp(line, "PUT ", 4)) {
				char *sp = strrchr(line, ' '); /* " HTTP/1.1" */
				if (sp)
					*sp = '\0';
			}
			fprintf(srv.log, "%s\n", line);
		}
		fprintf(srv.log, "\n");
		fflush(srv.log);
		bool put = !strncmp(buf, "PUT ", 4), ranged = strstr(buf, "\nRange:") ||
							    strstr(buf, "\nrange:");
		const char *cl = strstr(buf, "Content-Length: ");
		size_t body = cl ? (size_t)atol(cl + 16) : 0;
		if (strstr(buf, "Expect: 100-continue"))
			send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL);
		memmove(buf, buf + used, have - used);
		have -= used;
		while (have < body) { /* the PUT's bytes */
			ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		memmove(buf, buf + body, have - body);
		have -= body;
		static const char data[64] = "sixty-four bytes of an object, any will do for the signature";
		char h[160];
		int n = snprintf(h, sizeof(h), "HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n",
				 put ? "200 OK" : ranged ? "206 Partial Content" : "200 OK",
				 put ? 0 : 64, ranged ? "Content-Range: bytes 0-63/1000\r\n" : "");
		send(fd, h, (size_t)n, MSG_NOSIGNAL);
		if (!put)
			send(fd, data, sizeof(data), MSG_NOSIGNAL);
	}
}

static void *server(void *arg)
{
	(void)arg;
	while (!atomic_load(&srv.stop)) {
		struct pollfd p = { .fd = srv.listen_fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(srv.listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		serve(fd);
		close(fd);
	}
	return NULL;
}

static bool start(const char *log_path)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	srv.log = fopen(log_path, "w");
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	srv.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	atomic_store(&srv.stop, 0);
	if (!srv.log || srv.listen_fd < 0 || bind(srv.listen_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(srv.listen_fd, 8) || getsockname(srv.listen_fd, (struct sockaddr *)&a, &len))
		return false;
	srv.port = ntohs(a.sin_port);
	return pthread_create(&srv.thread, NULL, server, NULL) == 0;
}

static void stop(void)
{
	atomic_store(&srv.stop, 1);
	pthread_join(srv.thread, NULL);
	close(srv.listen_fd);
	fclose(srv.log);
}

/* apfvm's requests of a run and of pack, signed, then checked. */
static void sign_and_check(bool with_token)
{
	char log_path[] = "/tmp/apfvm-sigv4.XXXXXX", endpoint[64], cmd[512];
	struct obj_target t;
	struct apf_err e;
	void *out;
	size_t len;

	int lfd = mkstemp(log_path);
	REQUIRE(lfd >= 0);
	close(lfd);
	REQUIRE(start(log_path));
	setenv("AWS_ACCESS_KEY_ID", KEY, 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	if (with_token)
		setenv("AWS_SESSION_TOKEN", TOKEN, 1);
	else
		unsetenv("AWS_SESSION_TOKEN");
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", srv.port);
	struct obj_store_options so = { .s3_endpoint = endpoint, .s3_region = REGION };
	REQUIRE(obj_http_init(&e) == 0);
	REQUIRE(obj_target_parse("s3://apfvm-bucket/vms/snap-1.2/mem", &so, &t, &e) == 0);
	CHECK(t.signed_requests);
	/* The manifest's header (a Range request), then a whole object. */
	REQUIRE(obj_get(&t, t.manifest_url, 64, true, 5000000000ull, 1, &out, &len, &e) == 0);
	free(out);
	REQUIRE(obj_get(&t, t.data_url, 64, false, 5000000000ull, 1, &out, &len, &e) == 0);
	free(out);
	/* pack's upload. */
	int fd = file_temp_anonymous();
	REQUIRE(fd >= 0 && write(fd, "manifest bytes", 14) == 14);
	REQUIRE(obj_put_fd(&t, t.manifest_url, fd, 5000000000ull, &e) == 0);
	close(fd);
	obj_target_free(&t);
	stop();
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/tools/sigv4_check.py '%s' '%s' '%s' '%s' %s%s%s",
		 log_path, KEY, SECRET, REGION, with_token ? "'" : "", with_token ? TOKEN : "",
		 with_token ? "'" : "");
	fflush(stdout);
	int rc = system(cmd);
	if (rc)
		TEST_FAIL_("botocore's signer disagrees, or cannot run (python3-botocore: make deps); "
			   "status %d", rc);
	/* The check can fail: with another secret, botocore disagrees. */
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/tools/sigv4_check.py '%s' '%s' 'another-secret' "
		 "'%s' %s%s%s >/dev/null", log_path, KEY, REGION, with_token ? "'" : "",
		 with_token ? TOKEN : "", with_token ? "'" : "");
	CHECK(system(cmd) != 0);
	unlink(log_path);
}

TEST(signatures_agree_with_botocore)
{
	sign_and_check(false);
}

TEST(signatures_with_a_session_token_agree_with_botocore)
{
	sign_and_check(true);
}

TEST_MAIN(T(signatures_agree_with_botocore), T(signatures_with_a_session_token_agree_with_botocore))
