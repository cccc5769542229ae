/*
 * libFuzzer target: the command lines of `apfvm run` and `apfvm mkimage`.
 * The input is split at NUL bytes into arguments.  Whatever the bytes, the
 * parser returns 0 or -EINVAL with a message, never crashes, and a command
 * line it accepts is within every documented bound (so nothing downstream
 * can overflow on it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "cli/options.h"
#include "source/source.h"

enum { MAX_ARGS = 24 };

static void check_run(int argc, char **argv)
{
	struct run_options o;
	struct apf_err e = { "" };
	int rc = options_parse_run(argc, argv, &o, &e);

	CHECK_OR_DIE(rc == 0 || rc == -EINVAL);
	if (rc) {
		CHECK_OR_DIE(e.msg[0] != '\0');
		return;
	}
	if (o.help)
		return;
	const struct apfvm_config *c = &o.cfg;
	CHECK_OR_DIE(c->mem_size >= (16ull << 20) && c->mem_size <= (2ull << 30));
	CHECK_OR_DIE(c->lazy_size % APF_LAZY_ALIGN == 0 && c->lazy_size <= (64ull << 30));
	CHECK_OR_DIE(c->latency_min_ns <= c->latency_max_ns);
	CHECK_OR_DIE(c->latency_max_ns <= APFVM_MAX_LATENCY_NS);
	CHECK_OR_DIE(c->apf_threshold_ns <= APFVM_MAX_THRESHOLD_NS);
	CHECK_OR_DIE(c->duration_ns <= APFVM_MAX_DURATION_NS);
	CHECK_OR_DIE(c->timeout_ns <= APFVM_MAX_DURATION_NS);
	CHECK_OR_DIE(c->ntasks >= 1 && c->ntasks <= APF_MAX_TASKS);
	CHECK_OR_DIE(c->timer_hz >= 10 && c->timer_hz <= 1000);
	CHECK_OR_DIE(c->max_inflight >= 1 && c->max_inflight <= SOURCE_QUEUE_MAX);
	CHECK_OR_DIE(strlen(c->cmdline) < APF_CMDLINE_MAX);
}

static void check_mkimage(int argc, char **argv)
{
	struct mkimage_options o;
	struct apf_err e = { "" };
	int rc = options_parse_mkimage(argc, argv, &o, &e);

	CHECK_OR_DIE(rc == 0 || rc == -EINVAL);
	if (rc)
		CHECK_OR_DIE(e.msg[0] != '\0');
	else if (!o.help)
		CHECK_OR_DIE(o.path && o.size && o.size % APF_PAGE_SIZE == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	char *argv[MAX_ARGS + 2];
	int argc = 1;

	if (!buf || !size) {
		free(buf);
		return 0;
	}
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	argv[0] = (data[0] & 1) ? "mkimage" : "run";
	for (size_t i = 0; i < size - 1 && argc <= MAX_ARGS; argc++) {
		argv[argc] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	if (data[0] & 1)
		check_mkimage(argc, argv);
	else
		check_run(argc, argv);
	free(buf);
	return 0;
}
