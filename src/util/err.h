/*
 * err: how library code reports a failure.  Functions return a negative
 * errno and, when given a struct apf_err, put a one-line explanation for the
 * user in it ("image 'x.img' is truncated: ...").  Only main() prints and
 * exits.
 */
#ifndef APFVM_ERR_H
#define APFVM_ERR_H

struct apf_err {
	char msg[512];
};

/* Formats the message into e (if non-NULL) and returns rc (a -errno). */
int apf_fail(struct apf_err *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
