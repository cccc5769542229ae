/* The zero source: every page is zeros, available at once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apfvm/abi.h"
#include "source/zero.h"

static int zero_submit(struct page_source *s, uint64_t page, void *buf, void *cookie)
{
	struct source_completion c = {
		.page = page, .buf = buf, .cookie = cookie, .zero = true,
		.submit_ns = source_now_ns(),
	};
	if (page >= s->npages)
		return -ERANGE;
	source_complete(s, &c);
	return 0;
}

static uint64_t zero_expected_ns(struct page_source *s, uint64_t page)
{
	(void)s;
	(void)page;
	return 0;
}

static void zero_destroy(struct page_source *s)
{
	free(s);
}

static const struct page_source_ops zero_ops = {
	.name = "zero",
	.submit = zero_submit,
	.expected_ns = zero_expected_ns,
	.destroy = zero_destroy,
};

int source_zero_open(uint64_t npages, struct page_source **out, struct apf_err *e)
{
	struct page_source *s = malloc(sizeof(*s));
	if (!s)
		return apf_fail(e, -ENOMEM, "out of memory");
	source_init(s, &zero_ops, npages);
	s->pattern = APF_PATTERN_ZERO;
	strcpy(s->desc, "zero");
	*out = s;
	return 0;
}
