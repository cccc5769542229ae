#include "obj_http.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

bool obj_spec_is_remote(const char *spec)
{
	return !strncmp(spec, "s3://", 5) || !strncmp(spec, "http://", 7) ||
	       !strncmp(spec, "https://", 8);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int obj_http_init(struct apf_err *e)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc)
		return apf_fail(e, -EIO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
	return 0;
}

/* Unreserved URL characters and '/': nothing to escape; and no empty,
 * "." or ".." segment, which a client or server would resolve into
 * another object's path ("s3://b/../other/img" would read /other/img). */
static bool plain_path(const char *s)
{
	const char *seg = s;
	for (const char *p = s;; p++) {
		if (*p == '/' || !*p) {
			size_t n = (size_t)(p - seg);
			if ((p != s && n == 0 && *p) || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return false;
			if (!*p)
				return true;
			seg = p + 1;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("-._~", *p)))
			return false;
	}
}

/* snprintf into a URL buffer; false when it would not fit (a URL cut
 * short names another object). */
__attribute__((format(printf, 3, 4)))
static bool url_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < size;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int obj_target_parse(const char *spec, const struct obj_store_options *o, struct obj_target *t,
		     struct apf_err *e)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->desc, sizeof(t->desc), "%s", spec);
	if (strlen(spec) >= sizeof(t->manifest_url) - 64)
		return apf_fail(e, -EINVAL, "source '%.60s...': too long", spec);
	if (strncmp(spec, "s3://", 5)) {
		/* http(s)://HOST[:PORT]/PATH */
		const char *host = strstr(spec, "://") + 3;
		const char *path = strchr(host, '/');
		if (!*host || !path || !path[1] || !plain_path(path + 1))
			return apf_fail(e, -EINVAL, "source '%s': expected http(s)://HOST[:PORT]/PATH "
					"(PATH of letters, digits and -._~/, no . or .. segment)", spec);
		if (!url_fmt(t->manifest_url, sizeof(t->manifest_url), "%s", spec) ||
		    !url_fmt(t->data_url, sizeof(t->data_url), "%s.data", spec))
			return apf_fail(e, -EINVAL, "source '%.60s...': longer than %zu characters", spec,
					sizeof(t->manifest_url) - 1);
		return 0;
	}
	const char *bucket = spec + 5, *slash = strchr(bucket, '/');
	size_t blen = slash ? (size_t)(slash - bucket) : 0;
	if (!slash || blen < 3 || blen > 63 || !slash[1] || !plain_path(slash + 1))
		return apf_fail(e, -EINVAL, "source '%s': expected s3://BUCKET/KEY (KEY of letters, "
				"digits and -._~/, no . or .. segment)", spec);
	for (size_t i = 0; i < blen; i++)
		if (!((bucket[i] >= 'a' && bucket[i] <= 'z') || (bucket[i] >= '0' && bucket[i] <= '9') ||
		      bucket[i] == '-' || bucket[i] == '.'))
			return apf_fail(e, -EINVAL, "source '%s': '%.*s' is not a bucket name "
					"(lower-case letters, digits, '-' and '.')", spec, (int)blen,
					bucket);
	const char *region = o && o->s3_region ? o->s3_region : env("AWS_REGION");
	if (!region)
		region = env("AWS_DEFAULT_REGION");
	if (!region)
		region = "us-east-1";
	if (strlen(region) > 32 || !plain_path(region) || strchr(region, '/'))
		return apf_fail(e, -EINVAL, "S3 region '%.40s' is not a region name", region);
	bool ok_url;
	const char *endpoint = o && o->s3_endpoint ? o->s3_endpoint : env("AWS_ENDPOINT_URL_S3");
	if (!endpoint)
		endpoint = env("AWS_ENDPOINT_URL");
	if (endpoint) {
		size_t el = strlen(endpoint);
		while (el && endpoint[el - 1] == '/')
			el--;
		if ((strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) || el > 256)
			return apf_fail(e, -EINVAL, "S3 endpoint '%.60s': expected http(s)://HOST[:PORT]",
					endpoint);
		ok_url = url_fmt(t->manifest_url, sizeof(t->manifest_url), "%.*s/%.*s/%s", (int)el,
				 endpoint, (int)blen, bucket, slash + 1);
	} else {
		ok_url = url_fmt(t->manifest_url, sizeof(t->manifest_url),
				 "https://%.*s.s3.%s.amazonaws.com/%s", (int)blen, bucket, region,
				 slash + 1);
	}
	if (!ok_url || !url_fmt(t->data_url, sizeof(t->data_url), "%s.data", t->manifest_url))
		return apf_fail(e, -EINVAL, "source '%.60s...': its URL is longer than %zu characters",
				spec, sizeof(t->manifest_url) - 1);
	const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
	if (!!id != !!secret)
		return apf_fail(e, -EINVAL, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together");
	if (id) {
		if (strlen(id) + strlen(secret) + 2 > sizeof(t->userpwd) || strchr(id, ':'))
			return apf_fail(e, -EINVAL, "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY malformed");
		t->signed_requests = true;
		snprintf(t->sigv4, sizeof(t->sigv4), "aws:amz:%s:s3", region);
		snprintf(t->userpwd, sizeof(t->userpwd), "%s:%s", id, secret);
		/* S3 wants the payload's hash; reads have none, writes are
		 * checked by the layout's own crc32c. */
		t->headers = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
		const char *token = env("AWS_SESSION_TOKEN");
		if (token) {
			char h[2048];
			if (strlen(token) > sizeof(h) - 32)
				return apf_fail(e, -EINVAL, "AWS_SESSION_TOKEN too long");
			snprintf(h, sizeof(h), "x-amz-security-token: %s", token);
			t->headers = curl_slist_append(t->headers, h);
		}
		if (!t->headers)
			return apf_fail(e, -ENOMEM, "out of memory");
	}
	return 0;
}

void obj_target_free(struct obj_target *t)
{
	curl_slist_free_all(t->headers);
	t->headers = NULL;
}

void obj_target_setup(const struct obj_target *t, CURL *h, const char *url, uint64_t timeout_ns)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ns / 1000000));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ns / 1000000));
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (t->signed_requests) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, t->sigv4);
		curl_easy_setopt(h, CURLOPT_USERPWD, t->userpwd);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->headers);
	}
}

bool obj_result(CURLcode cc, long http, char *buf, size_t size)
{
	if (cc != CURLE_OK) {
		snprintf(buf, size, "%s", curl_easy_strerror(cc));
		return cc != CURLE_URL_MALFORMAT && cc != CURLE_UNSUPPORTED_PROTOCOL &&
		       cc != CURLE_OUT_OF_MEMORY && cc != CURLE_WRITE_ERROR;
	}
	const char *what = http == 403   ? " Forbidden (credentials or permissions)"
			   : http == 404 ? " Not Found"
			   : http == 416 ? " Range Not Satisfiable"
			   : http == 429 ? " Too Many Requests (throttled)"
			   : http == 503 ? " Service Unavailable (or S3 SlowDown: throttled)"
			   : http >= 500 ? " (server error)"
					 : "";
	snprintf(buf, size, "HTTP %ld%s", http, what);
	return http == 429 || http == 408 || http >= 500;
}

struct membuf {
	CURL *h;
	char *p;
	size_t len, cap, max;
	bool first;      /* only the first max bytes are wanted */
	bool error_body; /* the answer was not a 200/206: its body was refused */
	bool too_long;
};

/* Grows as the body arrives (the bound, not the usual size, is large). */
static size_t mem_write(char *data, size_t sz, size_t n, void *arg)
{
	struct membuf *m = arg;
	size_t len = sz * n;
	long http = 0;

	curl_easy_getinfo(m->h, CURLINFO_RESPONSE_CODE, &http);
	if (http != 200 && http != 206) {
		m->error_body = true;
		return 0; /* an error's body is not read: the status says it */
	}
	if (len > m->max - m->len) {
		if (m->first && m->len < m->max) {
			len = m->max - m->len; /* what was asked for, then stop */
		} else {
			m->too_long = !m->first;
			return 0; /* larger than allowed: the transfer fails */
		}
	}
	if (m->len + len > m->cap) {
		size_t cap = m->cap ? m->cap : 65536;
		while (cap < m->len + len)
			cap *= 2;
		if (cap > m->max)
			cap = m->max;
		char *p = realloc(m->p, cap);
		if (!p)
			return 0;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, data, len);
	m->len += len;
	return len == sz * n ? len : 0;
}

static void backoff(unsigned attempt)
{
	uint64_t ms = 100ull << (attempt < 4 ? attempt : 4);
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

int obj_get(const struct obj_target *t, const char *url, size_t max_len, bool first,
	    uint64_t timeout_ns, unsigned tries, void **out, size_t *out_len, struct apf_err *e)
{
	struct membuf m = { .max = max_len, .first = first };
	char why[160] = "", range[48];
	CURL *h = curl_easy_init();

	if (!h)
		return apf_fail(e, -ENOMEM, "out of memory");
	m.h = h;
	snprintf(range, sizeof(range), "0-%zu", max_len ? max_len - 1 : 0);
	for (unsigned a = 0; a < tries; a++) {
		long http = 0;
		if (a)
			backoff(a - 1);
		curl_easy_reset(h);
		obj_target_setup(t, h, url, timeout_ns);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
		if (first)
			curl_easy_setopt(h, CURLOPT_RANGE, range);
		m.len = 0;
		m.error_body = m.too_long = false;
		CURLcode cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
		bool cut = first && cc == CURLE_WRITE_ERROR && m.len == max_len && !m.error_body;
		if ((cc == CURLE_OK || cut) &&
		    (http == 200 || (first && http == 206))) {
			curl_easy_cleanup(h);
			*out = m.p;
			*out_len = m.len;
			return 0;
		}
		if (cc == CURLE_WRITE_ERROR && m.too_long) {
			snprintf(why, sizeof(why), "larger than %zu bytes", max_len);
			break; /* it will not shrink */
		}
		if (!obj_result(m.error_body ? CURLE_OK : cc, http, why, sizeof(why)))
			break;
	}
	curl_easy_cleanup(h);
	free(m.p);
	if (!strcmp(t->desc, url))
		return apf_fail(e, -EIO, "cannot read %s: %s", url, why);
	return apf_fail(e, -EIO, "%s: cannot read %s: %s", t->desc, url, why);
}

int obj_put_fd(const struct obj_target *t, const char *url, int fd, uint64_t timeout_ns,
	       struct apf_err *e)
{
	int copy = dup(fd);
	FILE *f = copy >= 0 ? fdopen(copy, "rb") : NULL;
	struct stat st;
	char why[160];
	long http = 0;

	if (!f || fstat(fileno(f), &st) || fseek(f, 0, SEEK_SET)) {
		int err = errno;
		if (f)
			fclose(f);
		else if (copy >= 0)
			close(copy);
		return apf_fail(e, -err, "cannot read what to store as %s: %s", url, strerror(err));
	}
	CURL *h = curl_easy_init();
	if (!h) {
		fclose(f);
		return apf_fail(e, -ENOMEM, "out of memory");
	}
	obj_target_setup(t, h, url, timeout_ns);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READDATA, f);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	CURLcode cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	curl_easy_cleanup(h);
	fclose(f);
	if (cc == CURLE_OK && http >= 200 && http < 300)
		return 0;
	obj_result(cc, http, why, sizeof(why));
	return apf_fail(e, -EIO, "cannot store %s: %s", url, why);
}
