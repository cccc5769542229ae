/*
 * Hypercall handling against a fake machine whose guest memory is a plain
 * buffer: guest console bytes never reach the terminal raw, and blocks are
 * validated as copied, so a second vCPU rewriting a block between the
 * check and the use cannot get an unchecked value past the host.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fake_machine.h"
#include "test.h"
#include "vmm/hcall.h"

enum { MEM = 64 << 10, BLOCK = 0x40, DATA = 0x1000 };

static uint8_t mem[MEM] __attribute__((aligned(64)));
static struct machine m;
static struct vcpu v;

static void fake_machine(void)
{
	fake_machine_init(&m, &v, mem, MEM);
}

static struct apf_hcall *block(void)
{
	return (struct apf_hcall *)(mem + BLOCK);
}

TEST(console_escapes_control_bytes)
{
	static const char text[] = "\x1b[2Jok\n\ttab\a\xff";
	char *out = NULL;
	size_t outlen = 0;

	fake_machine();
	m.console = open_memstream(&out, &outlen);
	REQUIRE(m.console != NULL);
	memcpy(mem + DATA, text, sizeof(text) - 1);
	*block() = (struct apf_hcall){ .nr = APF_HC_CONSOLE, .a0 = DATA, .a1 = sizeof(text) - 1 };
	hcall_handle(&m, &v, BLOCK);
	fclose(m.console);
	CHECK_EQ_U(block()->ret, 0);
	REQUIRE(out != NULL);
	if (strcmp(out, "\\x1b[2Jok\n\ttab\\x07\\xff"))
		TEST_FAIL_("console echo was \"%s\"", out);
	free(out);
}

/* Plays a second vCPU: flips the task id and the console length between a
 * valid and an invalid value as fast as it can. */
static atomic_bool racing;
static void *rewrite_blocks(void *arg)
{
	struct apf_task_result *r = (struct apf_task_result *)(mem + DATA);
	volatile uint32_t *id = &r->id;
	volatile uint64_t *len = &((struct apf_hcall *)(mem + BLOCK + 64))->a1;

	(void)arg;
	while (atomic_load_explicit(&racing, memory_order_relaxed)) {
		*id = 1;
		*len = 16;
		*id = 0x7fffffff;
		*len = 1ull << 30;
	}
	return NULL;
}

TEST(blocks_are_validated_as_copied)
{
	pthread_t t;
	struct timespec start, now;
	unsigned long calls = 0, stored = 0;

	fake_machine();
	m.console = fopen("/dev/null", "w");
	REQUIRE(m.console != NULL);
	struct apf_task_result *r = (struct apf_task_result *)(mem + DATA);
	r->kind = APF_TASK_COMPUTE;
	*block() = (struct apf_hcall){ .nr = APF_HC_RESULT, .a0 = DATA };
	*(struct apf_hcall *)(mem + BLOCK + 64) =
		(struct apf_hcall){ .nr = APF_HC_CONSOLE, .a0 = DATA + 0x100, .a1 = 16 };
	atomic_store(&racing, true);
	REQUIRE(pthread_create(&t, NULL, rewrite_blocks, NULL) == 0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 1000; i++, calls++) {
			m.report.nresults = 0;
			hcall_handle(&m, &v, BLOCK);
			if (m.report.nresults) {
				stored++;
				if (m.report.results[0].id > APF_MAX_TASKS) {
					TEST_FAIL_("stored task id %u, past the checked bound",
						   m.report.results[0].id);
					goto out;
				}
			}
			/* Reads at most 4096 bytes, whatever a1 turns into. */
			hcall_handle(&m, &v, BLOCK + 64);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec < 2);
out:
	atomic_store(&racing, false);
	pthread_join(t, NULL);
	fclose(m.console);
	CHECK(stored > 0); /* the valid id was seen: the race really ran */
	(void)calls;
}

TEST_MAIN(T(console_escapes_control_bytes), T(blocks_are_validated_as_copied))
