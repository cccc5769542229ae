/*
 * obj_http: where a memory image in object storage lives, and how apfvm
 * speaks to it: URLs of its two objects (obj_layout.h) and libcurl handles
 * set up to fetch or store them, signed with AWS Signature V4 for s3://.
 *
 *   s3://BUCKET/KEY      S3 or an S3-compatible store.  Endpoint: the
 *                        --s3-endpoint option, else AWS_ENDPOINT_URL_S3 or
 *                        AWS_ENDPOINT_URL, else AWS
 *                        (https://BUCKET.s3.REGION.amazonaws.com/KEY);
 *                        other endpoints are addressed path-style
 *                        (ENDPOINT/BUCKET/KEY).  Region: --s3-region, else
 *                        AWS_REGION or AWS_DEFAULT_REGION, else us-east-1.
 *                        Credentials: AWS_ACCESS_KEY_ID and
 *                        AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN);
 *                        none: unsigned requests (a public bucket).
 *   http(s)://HOST/PATH  any HTTP server with Range requests (nginx over
 *                        files written by apfvm pack): PATH and PATH.data.
 *
 * Keys and paths are limited to unreserved characters and '/', so that a
 * URL needs no escaping and the signature covers exactly what is sent.
 */
#ifndef APFVM_OBJ_HTTP_H
#define APFVM_OBJ_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "objstore/obj_store.h"
#include "util/err.h"

struct obj_target {
	char desc[256];          /* "s3://bucket/key" or the URL, for messages */
	char manifest_url[1024];
	char data_url[1040];
	bool signed_requests;
	char sigv4[96];          /* CURLOPT_AWS_SIGV4 */
	char userpwd[512];       /* KEY:SECRET */
	struct curl_slist *headers; /* x-amz-content-sha256, the session token */
};

/* Whether spec names an object store ("s3://", "http://", "https://"). */
bool obj_spec_is_remote(const char *spec);

/* Parses spec into t (the environment read now).  0 or -EINVAL. */
int obj_target_parse(const char *spec, const struct obj_store_options *o, struct obj_target *t,
		     struct apf_err *e);
void obj_target_free(struct obj_target *t);

/* Sets up h for a request to url of t: signing, headers, no signals, TCP
 * keepalive, the timeout.  The caller adds the method and its data. */
void obj_target_setup(const struct obj_target *t, CURL *h, const char *url, uint64_t timeout_ns);

/* The outcome of one request in words ("HTTP 404 Not Found",
 * "Timeout was reached"), into buf; returns whether it is worth retrying
 * (timeouts, connection failures, 429 throttling, 5xx). */
bool obj_result(CURLcode cc, long http, char *buf, size_t size);

/* GET of an object, or of its first max_len bytes with `first` (a Range
 * request; a server that ignores the Range is cut off there), into a
 * malloc'd buffer; the whole object longer than max_len is an error.
 * Only a 200 or 206 answer's body is kept: an error's is dropped unread
 * and the error named ("HTTP 404 Not Found").  Tried up to `tries` times
 * on retriable failures.  0 or -errno. */
int obj_get(const struct obj_target *t, const char *url, size_t max_len, bool first,
	    uint64_t timeout_ns, unsigned tries, void **out, size_t *out_len, struct apf_err *e);

/* PUT of the whole file fd (borrowed; read from its start) as the object
 * at url.  0 or -errno. */
int obj_put_fd(const struct obj_target *t, const char *url, int fd, uint64_t timeout_ns,
	       struct apf_err *e);

/* curl_global_init once per process (thread-safe). */
int obj_http_init(struct apf_err *e);

#endif
