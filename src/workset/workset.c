#include "workset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "util/file.h"

#define WS_LABEL_LAZY "apfvm lazy region" /* and its NUL */

/* Bytes of a file of `count` entries: header, entries, checksum. */
static uint64_t file_bytes(uint64_t count)
{
	return sizeof(struct ws_header) + count * sizeof(struct ws_entry) + SHA256_LEN;
}

/* --- the invariants ----------------------------------------------------- */

static int by_page_then_index(const void *pa, const void *pb)
{
	const struct ws_entry *a = pa, *b = pb;
	if (a->page != b->page)
		return a->page < b->page ? -1 : 1;
	return a->t_us < b->t_us ? -1 : a->t_us > b->t_us;
}

/* A page listed twice: found in a copy sorted by page, each entry's
 * t_us replaced by its index, so that the message names both entries. */
static int check_repeats(const struct workset *ws, const char *who, struct apf_err *e)
{
	struct ws_entry *c;
	int rc = 0;

	if (ws->count < 2)
		return 0;
	c = malloc(ws->count * sizeof(*c));
	if (!c)
		return apf_fail(e, -ENOMEM, "%s: out of memory", who);
	for (uint64_t i = 0; i < ws->count; i++)
		c[i] = (struct ws_entry){ .page = ws->entries[i].page, .t_us = (uint32_t)i };
	qsort(c, ws->count, sizeof(*c), by_page_then_index);
	for (uint64_t i = 1; i < ws->count && !rc; i++)
		if (c[i].page == c[i - 1].page)
			rc = apf_fail(e, -EINVAL, "%s lists page %llu twice (entries %llu and %llu)", who,
				      (unsigned long long)c[i].page, (unsigned long long)c[i - 1].t_us,
				      (unsigned long long)c[i].t_us);
	free(c);
	return rc;
}

/* Every invariant of workset.h; who begins each message ("working-set
 * file 'x'"). */
static int check_workset(const struct workset *ws, const char *who, struct apf_err *e)
{
	if (ws->mem_pages > WS_MAX_PAGES)
		return apf_fail(e, -EINVAL, "%s is for a guest of %llu pages; at most %llu can be named",
				who, (unsigned long long)ws->mem_pages, WS_MAX_PAGES);
	if (ws->resident_pages > ws->mem_pages || ws->count > ws->mem_pages)
		return apf_fail(e, -EINVAL,
				"%s has impossible sizes: %llu entries, %llu resident pages, %llu pages",
				who, (unsigned long long)ws->count, (unsigned long long)ws->resident_pages,
				(unsigned long long)ws->mem_pages);
	if (ws->count && !ws->entries)
		return apf_fail(e, -EINVAL, "%s has %llu entries and no array", who,
				(unsigned long long)ws->count);
	for (uint64_t i = 0; i < ws->count; i++)
		if (ws->entries[i].page >= ws->mem_pages)
			return apf_fail(e, -EINVAL, "%s names page %llu, outside the guest's %llu pages",
					who, (unsigned long long)ws->entries[i].page,
					(unsigned long long)ws->mem_pages);
	int rc = check_repeats(ws, who, e);
	if (rc)
		return rc;
	for (uint64_t i = 1; i < ws->count; i++)
		if (ws->entries[i].t_us < ws->entries[i - 1].t_us)
			return apf_fail(e, -EINVAL,
					"%s goes back in time: entry %llu (page %llu) at %llu us, after "
					"entry %llu at %llu us",
					who, (unsigned long long)i, (unsigned long long)ws->entries[i].page,
					(unsigned long long)ws->entries[i].t_us, (unsigned long long)i - 1,
					(unsigned long long)ws->entries[i - 1].t_us);
	return 0;
}

/* --- writing ------------------------------------------------------------ */

static int write_full(int fd, const unsigned char *p, uint64_t len)
{
	for (uint64_t done = 0; done < len;) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

/* The whole file in one buffer: header, entries, checksum. */
static unsigned char *encode(const struct workset *ws, uint64_t *len)
{
	struct ws_header h = { .version = WS_VERSION, .mem_pages = ws->mem_pages,
			       .resident_pages = ws->resident_pages, .count = ws->count,
			       .identity = ws->identity };
	uint64_t body = file_bytes(ws->count) - SHA256_LEN;
	unsigned char *buf = malloc(file_bytes(ws->count));

	if (!buf)
		return NULL;
	memcpy(h.magic, WS_MAGIC, sizeof(h.magic));
	memcpy(buf, &h, sizeof(h));
	if (ws->count)
		memcpy(buf + sizeof(h), ws->entries, ws->count * sizeof(struct ws_entry));
	struct sha256 d;
	sha256(buf, body, &d);
	memcpy(buf + body, d.b, SHA256_LEN);
	*len = file_bytes(ws->count);
	return buf;
}

int ws_write(const char *path, const struct workset *ws, struct apf_err *e)
{
	char who[600];
	struct file_out o;
	uint64_t len;
	int rc;

	snprintf(who, sizeof(who), "cannot write working-set file '%s': its working set", path);
	if ((rc = check_workset(ws, who, e)))
		return rc;
	unsigned char *buf = encode(ws, &len);
	if (!buf)
		return apf_fail(e, -ENOMEM, "cannot write working-set file '%s': out of memory", path);
	if ((rc = file_out_open(&o, path, 0600))) {
		free(buf);
		return apf_fail(e, rc, "cannot create working-set file '%s': %s", path, strerror(-rc));
	}
	rc = write_full(o.fd, buf, len);
	free(buf);
	if (rc)
		file_out_abort(&o);
	else
		rc = file_out_commit(&o);
	if (rc)
		return apf_fail(e, rc, "cannot write working-set file '%s': %s", path, strerror(-rc));
	return 0;
}

/* --- reading ------------------------------------------------------------ */

/* What ws_read binds a file to: the guest's identity and sizes. */
struct binding {
	const struct sha256 *identity;
	uint64_t mem_pages, resident_pages;
};

/* Up to len bytes at off: how many (fewer at the end of the file), or -errno. */
static int64_t pread_full(int fd, void *buf, uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (uint64_t)n;
	}
	return (int64_t)done;
}

/* The pages a file's count may not exceed: the bound guest's, or with no
 * binding (ws_load) the file's own, once they are known to be nameable
 * (so that no count can overflow file_bytes). */
static int count_limit(const struct ws_header *h, const char *path, const struct binding *b,
		       uint64_t *limit, struct apf_err *e)
{
	if (b) {
		*limit = b->mem_pages;
		return 0;
	}
	if (h->mem_pages > WS_MAX_PAGES)
		return apf_fail(e, -EINVAL, "working-set file '%s' is for a guest of %llu pages; at "
				"most %llu can be named", path, (unsigned long long)h->mem_pages,
				WS_MAX_PAGES);
	*limit = h->mem_pages;
	return 0;
}

/* The header, and what it says of the file's size, checked before the
 * rest is read: size must be exactly that of its count entries, and the
 * count at most the guest's pages (count_limit). */
static int read_header(int fd, const char *path, uint64_t size, const struct binding *b,
		       struct ws_header *h, struct apf_err *e)
{
	int64_t n = pread_full(fd, h, sizeof(*h), 0);
	uint64_t limit = 0;
	int rc;

	if (n < 0)
		return apf_fail(e, (int)n, "cannot read working-set file '%s': %s", path,
				strerror((int)-n));
	if (n < (int64_t)sizeof(h->magic) || memcmp(h->magic, WS_MAGIC, sizeof(h->magic)))
		return apf_fail(e, -EINVAL, "'%s' is not a working-set file", path);
	if (n < (int64_t)sizeof(*h))
		return apf_fail(e, -EINVAL, "working-set file '%s' is truncated: %llu bytes, "
				"shorter than its header", path, (unsigned long long)n);
	if (h->version != WS_VERSION)
		return apf_fail(e, -EINVAL, "working-set file '%s' has format version %llu; this apfvm "
				"reads version %d", path, (unsigned long long)h->version, WS_VERSION);
	if (h->flags)
		return apf_fail(e, -EINVAL, "working-set file '%s' has flags %#llx, which this apfvm "
				"does not know", path, (unsigned long long)h->flags);
	if ((rc = count_limit(h, path, b, &limit, e)))
		return rc;
	if (h->count > limit)
		return apf_fail(e, -EINVAL, "working-set file '%s' lists %llu pages, more than the "
				"guest's %llu", path, (unsigned long long)h->count,
				(unsigned long long)limit);
	if (size < file_bytes(h->count))
		return apf_fail(e, -EINVAL, "working-set file '%s' is truncated: %llu bytes, where "
				"its %llu entries take %llu", path, (unsigned long long)size,
				(unsigned long long)h->count, (unsigned long long)file_bytes(h->count));
	if (size > file_bytes(h->count))
		return apf_fail(e, -EINVAL, "working-set file '%s' has %llu stray byte%s after its "
				"%llu entries and checksum", path,
				(unsigned long long)(size - file_bytes(h->count)),
				size - file_bytes(h->count) == 1 ? "" : "s", (unsigned long long)h->count);
	return 0;
}

/* What binds the file to this guest: its identity and its sizes. */
static int check_binding(const struct ws_header *h, const char *path, const struct binding *b,
			 struct apf_err *e)
{
	if (memcmp(&h->identity, b->identity, sizeof(*b->identity))) {
		char theirs[2 * SHA256_LEN + 1], ours[2 * SHA256_LEN + 1];
		sha256_hex(&h->identity, theirs);
		sha256_hex(b->identity, ours);
		return apf_fail(e, -ESTALE, "working-set file '%s' was recorded for another snapshot "
				"or another memory (identity %.16s..., this guest's %.16s...)",
				path, theirs, ours);
	}
	if (h->mem_pages != b->mem_pages || h->resident_pages != b->resident_pages)
		return apf_fail(e, -ESTALE, "working-set file '%s' was recorded for a guest of %llu "
				"pages (%llu resident); this guest has %llu pages (%llu resident)",
				path, (unsigned long long)h->mem_pages,
				(unsigned long long)h->resident_pages, (unsigned long long)b->mem_pages,
				(unsigned long long)b->resident_pages);
	return 0;
}

/* The rest of an open file whose header read_header accepted: checksum,
 * binding (if any), entries into *ws. */
static int read_body(int fd, const char *path, const struct ws_header *h, const struct binding *b,
		     struct workset *ws, struct apf_err *e)
{
	uint64_t size = file_bytes(h->count), body = size - SHA256_LEN;
	unsigned char *buf = malloc(size);
	int rc = 0;

	if (!buf)
		return apf_fail(e, -ENOMEM, "cannot read working-set file '%s': out of memory", path);
	int64_t n = pread_full(fd, buf, size, 0);
	if (n < 0)
		rc = apf_fail(e, (int)n, "cannot read working-set file '%s': %s", path,
			      strerror((int)-n));
	else if ((uint64_t)n != size)
		rc = apf_fail(e, -EIO, "working-set file '%s' shrank while being read", path);
	else if (!sha256_matches(buf, body, (const struct sha256 *)(buf + body)))
		rc = apf_fail(e, -EBADMSG, "working-set file '%s' is damaged: its checksum does not "
			      "match its contents", path);
	else if (!b || !(rc = check_binding(h, path, b, e))) {
		ws->entries = malloc(h->count ? h->count * sizeof(struct ws_entry) : 1);
		if (!ws->entries)
			rc = apf_fail(e, -ENOMEM, "cannot read working-set file '%s': out of memory",
				      path);
		else
			memcpy(ws->entries, buf + sizeof(*h), h->count * sizeof(struct ws_entry));
	}
	free(buf);
	return rc;
}

/* ws_read with binding b, ws_load with none: every check but the binding
 * is the same. */
static int load(const char *path, const struct binding *b, struct workset *ws, struct apf_err *e)
{
	struct ws_header h;
	struct stat st;
	char who[600];
	int rc, fd;

	fd = file_open_regular(path, &st);
	if (fd == -EINVAL)
		return apf_fail(e, fd, "working-set file '%s' is not a regular file", path);
	if (fd < 0)
		return apf_fail(e, fd, "cannot open working-set file '%s': %s", path, strerror(-fd));
	rc = read_header(fd, path, (uint64_t)st.st_size, b, &h, e);
	if (!rc)
		rc = read_body(fd, path, &h, b, ws, e);
	close(fd);
	if (rc)
		return rc;
	ws->identity = h.identity;
	ws->mem_pages = h.mem_pages;
	ws->resident_pages = h.resident_pages;
	ws->count = h.count;
	snprintf(who, sizeof(who), "working-set file '%s'", path);
	if ((rc = check_workset(ws, who, e)))
		ws_free(ws);
	return rc;
}

int ws_read(const char *path, const struct sha256 *identity, uint64_t mem_pages,
	    uint64_t resident_pages, struct workset *ws, struct apf_err *e)
{
	const struct binding b = { identity, mem_pages, resident_pages };

	memset(ws, 0, sizeof(*ws));
	if (mem_pages > WS_MAX_PAGES)
		return apf_fail(e, -EINVAL, "working-set file '%s': a guest of %llu pages is more than "
				"a working set can name (%llu)", path, (unsigned long long)mem_pages,
				WS_MAX_PAGES);
	return load(path, &b, ws, e);
}

int ws_load(const char *path, struct workset *ws, struct apf_err *e)
{
	memset(ws, 0, sizeof(*ws));
	return load(path, NULL, ws, e);
}

void ws_free(struct workset *ws)
{
	free(ws->entries);
	memset(ws, 0, sizeof(*ws));
}

/* --- building and naming ------------------------------------------------ */

static int by_time_then_page(const void *pa, const void *pb)
{
	const struct ws_entry *a = pa, *b = pb;
	if (a->t_us != b->t_us)
		return a->t_us < b->t_us ? -1 : 1;
	return a->page < b->page ? -1 : a->page > b->page;
}

int ws_sort_by_time(struct workset *ws)
{
	if (ws->count > 1)
		qsort(ws->entries, ws->count, sizeof(*ws->entries), by_time_then_page);
	return 0;
}

void ws_identity_snapshot(const struct snap_image *s, struct sha256 *out)
{
	snap_identity_full(s, out);
}

void ws_identity_lazy(uint64_t lazy_pages, uint32_t pattern, uint64_t seed, struct sha256 *out)
{
	unsigned char buf[sizeof(WS_LABEL_LAZY) + 8 + 4 + 8];
	uint64_t s = pattern == APF_PATTERN_SEEDED ? seed : 0;

	memcpy(buf, WS_LABEL_LAZY, sizeof(WS_LABEL_LAZY));
	memcpy(buf + sizeof(WS_LABEL_LAZY), &lazy_pages, 8);
	memcpy(buf + sizeof(WS_LABEL_LAZY) + 8, &pattern, 4);
	memcpy(buf + sizeof(WS_LABEL_LAZY) + 12, &s, 8);
	sha256(buf, sizeof(buf), out);
}

static void print_ms(FILE *f, uint32_t t_us)
{
	fprintf(f, "%u.%03u ms%s", t_us / 1000, t_us % 1000, t_us == UINT32_MAX ? " or later" : "");
}

int ws_describe(const struct workset *ws, FILE *f)
{
	uint64_t resident = 0;
	char hex[2 * SHA256_LEN + 1];

	for (uint64_t i = 0; i < ws->count; i++)
		resident += ws->entries[i].page < ws->resident_pages;
	fprintf(f, "working set: %llu of %llu pages (%llu of %llu resident, %llu of %llu lazy)\n",
		(unsigned long long)ws->count, (unsigned long long)ws->mem_pages,
		(unsigned long long)resident, (unsigned long long)ws->resident_pages,
		(unsigned long long)(ws->count - resident),
		(unsigned long long)(ws->mem_pages - ws->resident_pages));
	if (ws->count) {
		const struct ws_entry *w = ws->entries;
		fputs("first touches: from ", f);
		print_ms(f, w[0].t_us);
		fputs(" to ", f);
		print_ms(f, w[ws->count - 1].t_us);
		fputs("; half of the pages by ", f);
		print_ms(f, w[(ws->count + 1) / 2 - 1].t_us);
		fputs(", nine tenths by ", f);
		print_ms(f, w[(ws->count * 9 + 9) / 10 - 1].t_us);
		fputc('\n', f);
	}
	sha256_hex(&ws->identity, hex);
	fprintf(f, "identity: %s\n", hex);
	return ferror(f) ? -EIO : 0;
}

/* --- comparing ---------------------------------------------------------- */

static int by_u32(const void *pa, const void *pb)
{
	uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
	return (a > b) - (a < b);
}

/* ws's pages, sorted (malloc'ed), or NULL when out of memory. */
static uint32_t *sorted_pages(const struct workset *ws)
{
	uint32_t *p = malloc(ws->count ? ws->count * sizeof(*p) : 1);

	if (!p)
		return NULL;
	for (uint64_t i = 0; i < ws->count; i++)
		p[i] = ws->entries[i].page;
	qsort(p, ws->count, sizeof(*p), by_u32);
	return p;
}

/* Pages in both sorted lists (each without repeats). */
static uint64_t common_pages(const uint32_t *a, uint64_t na, const uint32_t *b, uint64_t nb)
{
	uint64_t i = 0, k = 0, both = 0;

	while (i < na && k < nb) {
		if (a[i] == b[k])
			both++, i++, k++;
		else if (a[i] < b[k])
			i++;
		else
			k++;
	}
	return both;
}

/* Refuses two working sets of different memory. */
static int same_memory(const struct workset *a, const struct workset *b, struct apf_err *e)
{
	if (memcmp(&a->identity, &b->identity, sizeof(a->identity))) {
		char ha[2 * SHA256_LEN + 1], hb[2 * SHA256_LEN + 1];
		sha256_hex(&a->identity, ha);
		sha256_hex(&b->identity, hb);
		return apf_fail(e, -ESTALE, "the two working sets are for different memory: "
				"identities %.16s... and %.16s...", ha, hb);
	}
	if (a->mem_pages != b->mem_pages || a->resident_pages != b->resident_pages)
		return apf_fail(e, -ESTALE, "the two working sets are for different memory: a guest "
				"of %llu pages (%llu resident) and one of %llu pages (%llu resident)",
				(unsigned long long)a->mem_pages, (unsigned long long)a->resident_pages,
				(unsigned long long)b->mem_pages, (unsigned long long)b->resident_pages);
	return 0;
}

int ws_compare(const struct workset *replayed, const struct workset *actual,
	       struct ws_comparison *out, struct apf_err *e)
{
	int rc = same_memory(replayed, actual, e);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	uint32_t *a = sorted_pages(replayed), *b = sorted_pages(actual);
	if (!a || !b) {
		free(a);
		free(b);
		return apf_fail(e, -ENOMEM, "cannot compare working sets: out of memory");
	}
	out->replayed = replayed->count;
	out->actual = actual->count;
	out->both = common_pages(a, replayed->count, b, actual->count);
	out->unused = out->replayed - out->both;
	out->missed = out->actual - out->both;
	uint64_t either = out->replayed + out->missed;
	out->coverage = out->actual ? (double)out->both / (double)out->actual : 1;
	out->jaccard = either ? (double)out->both / (double)either : 1;
	free(a);
	free(b);
	return 0;
}

/* part of whole (part <= whole) in tenths of a percent, rounded, but
 * never to 0 or 100% unless exactly so; 0 for an empty whole. */
static unsigned permille(uint64_t part, uint64_t whole)
{
	if (!whole)
		return 0;
	unsigned p = (unsigned)(((double)part * 1000 + (double)whole / 2) / (double)whole);
	if (p == 1000 && part < whole)
		return 999;
	return p == 0 && part ? 1 : p;
}

int ws_comparison_print(const struct ws_comparison *c, FILE *f)
{
	unsigned unused = permille(c->unused, c->replayed), used = permille(c->both, c->actual);

	fprintf(f, "replayed: %llu pages (prefetched)\n"
		"actual:   %llu pages (touched by the guest)\n"
		"both:     %llu pages: prefetched, then used\n"
		"unused:   %llu pages: prefetched, never used (%u.%u%% of replayed)\n"
		"missed:   %llu pages: touched, not prefetched (demand faults in a replay)\n",
		(unsigned long long)c->replayed, (unsigned long long)c->actual,
		(unsigned long long)c->both, (unsigned long long)c->unused, unused / 10, unused % 10,
		(unsigned long long)c->missed);
	if (c->actual)
		fprintf(f, "overlap:  %u.%u%% of actual; Jaccard index %.4f\n", used / 10, used % 10,
			c->jaccard);
	else
		fprintf(f, "overlap:  none (actual is empty); Jaccard index %.4f\n", c->jaccard);
	return ferror(f) ? -EIO : 0;
}

int ws_comparison_csv(const struct ws_comparison *c, bool header, FILE *f)
{
	if (header)
		fputs("replayed,actual,both,unused,missed,jaccard\n", f);
	fprintf(f, "%llu,%llu,%llu,%llu,%llu,%.4f\n", (unsigned long long)c->replayed,
		(unsigned long long)c->actual, (unsigned long long)c->both,
		(unsigned long long)c->unused, (unsigned long long)c->missed, c->jaccard);
	return ferror(f) ? -EIO : 0;
}
