/*
 * A page source for tests of fetch errors: zero pages, except that
 * fetching page `failing_page` fails with EIO (a read error on the device
 * behind it, say).  Completes inside submit(), so the delay wrapper can
 * stand it in for a slow source.  Plus: whether this kernel can poison a
 * userfaultfd page (UFFDIO_POISON, Linux 6.6), which decides how an
 * access to the failed page fails (pager.h, Errors); and a VM run on it.
 */
#ifndef APFVM_TEST_FAILING_SOURCE_H
#define APFVM_TEST_FAILING_SOURCE_H

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apfvm/vmm.h"
#include "source/delay.h"
#include "source/source.h"
#include "test.h"

static uint64_t failing_page;

static int failing_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct source_completion c = { .page = page, .buf = buf, .cookie = cookie,
				       .submit_ns = source_now_ns() };
	if (page == failing_page)
		c.err = -EIO;
	else
		c.zero = true;
	source_complete(s, &c);
	return 0;
}

static uint64_t failing_expected_ns(struct page_source *s, uint64_t page)
{
	(void)s;
	(void)page;
	return 0;
}

static void failing_destroy(struct page_source *s)
{
	(void)s; /* static in the tests */
}

static const struct page_source_ops failing_source_ops = {
	.name = "failing", .submit = failing_submit, .expected_ns = failing_expected_ns,
	.destroy = failing_destroy,
};

/* UFFD_FEATURE_POISON, for kernel headers that predate it. */
static inline bool kernel_can_poison(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	bool yes;

	if (fd < 0)
		return false;
	yes = ioctl(fd, UFFDIO_API, &api) == 0 && (api.features & (1ull << 14));
	close(fd);
	return yes;
}

/* Whether a run's error names failing_page as it must: poisoned, the
 * guest's access failed in KVM (vcpu_loop); else the pager stopped the
 * run. */
static inline bool failed_page_message_ok(const char *msg)
{
	char want[256];

	if (kernel_can_poison())
		snprintf(want, sizeof(want),
			 "the guest accessed page %llu of the lazy region, which could not be fetched "
			 "(cannot fetch page %llu of the lazy region: Input/output error)",
			 (unsigned long long)failing_page, (unsigned long long)failing_page);
	else
		snprintf(want, sizeof(want),
			 "the pager cannot serve the lazy region: cannot fetch page %llu of the lazy "
			 "region: Input/output error",
			 (unsigned long long)failing_page);
	return strstr(msg, want) != NULL;
}

/* Runs c, configured for a compute task and one sequential scan over a
 * 2 MiB lazy region, with that region served by the failing source (page
 * 300 fails), every fetch delayed by delay_ns (0: none), and checks what a
 * user relies on: the run fails naming the page, the scan got every page
 * before it and never wrong data, exactly one page failed.  st keeps the
 * run's stats for checks of the mode. */
static inline void run_with_failing_page(struct apfvm_config *c, uint64_t delay_ns,
					 struct apfvm_stats *st)
{
	static struct page_source inner;
	struct page_source *src = &inner;
	struct apf_err e = { "" };

	failing_page = 300;
	source_init(&inner, &failing_source_ops, 512);
	if (delay_ns && source_delay_wrap(&inner, delay_ns, delay_ns, 1, &src, NULL)) {
		TEST_FAIL_("%s:%d: cannot delay the failing source", __FILE__, __LINE__);
		return;
	}
	c->page_source = src;
	CHECK(apfvm_run(c, st, &e) != 0);
	if (!failed_page_message_ok(e.msg))
		TEST_FAIL_("message '%s'", e.msg);
	CHECK_EQ_U(st->pages_fetched, 300); /* the sequential scan's pages before it */
	CHECK_EQ_U(st->pages_failed, 1);
	for (unsigned i = 0; i < st->ntasks; i++)
		CHECK_EQ_U(st->tasks[i].mismatches, 0);
	if (src != &inner)
		source_close(src);
}

#endif
