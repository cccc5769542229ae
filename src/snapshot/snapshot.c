#include "snapshot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "util/crc32c.h"

static const unsigned char zero_page[APF_PAGE_SIZE];

/* SHA-256 of APF_PAGE_SIZE zero bytes (tests/unit/test_snapshot.c checks
 * it against sha256()). */
static const struct sha256 zero_digest = { {
	0xad, 0x7f, 0xac, 0xb2, 0x58, 0x6f, 0xc6, 0xe9, 0x66, 0xc0, 0x04, 0xd7, 0xd1, 0xd1, 0x6b, 0x02,
	0x4f, 0x58, 0x05, 0xff, 0x7c, 0xb4, 0x7c, 0x7a, 0x85, 0xda, 0xbd, 0x8b, 0x48, 0x89, 0x2c, 0xa7,
} };

const struct sha256 *snap_zero_page_digest(void)
{
	return &zero_digest;
}

/* Bytes of a zero-page bitmap for n pages. */
static uint64_t zero_bits_len(uint64_t n)
{
	return n / 8 + (n % 8 != 0);
}

static uint32_t header_crc(const struct snap_header *h)
{
	struct snap_header c = *h;
	c.header_crc = 0;
	return crc32c(0, &c, sizeof(c));
}

int snap_write_begin(struct snap_writer *w, const char *path, enum snap_arch arch,
		     uint64_t resident_size, uint64_t lazy_size, struct apf_err *e)
{
	size_t plen = strlen(path);
	char *mpath = malloc(plen + sizeof(SNAP_MEM_SUFFIX));
	int rc, copy = -1;

	memset(w, 0, sizeof(*w));
	w->state.fd = w->mem.fd = -1;
	w->mem_pages = (resident_size + lazy_size) / APF_PAGE_SIZE;
	w->zero_bits = calloc(zero_bits_len(w->mem_pages) ? zero_bits_len(w->mem_pages) : 1, 1);
	if (!mpath || !w->zero_bits) {
		free(mpath);
		free(w->zero_bits);
		w->zero_bits = NULL;
		return apf_fail(e, -ENOMEM, "out of memory");
	}
	memcpy(mpath, path, plen);
	memcpy(mpath + plen, SNAP_MEM_SUFFIX, sizeof(SNAP_MEM_SUFFIX));
	if ((rc = file_out_open(&w->state, path, 0600)) ||
	    (rc = file_out_open(&w->mem, mpath, 0600))) {
		apf_fail(e, rc, "cannot create '%s': %s", w->state.fd < 0 ? path : mpath,
			 strerror(-rc));
		free(mpath);
		snap_write_abort(w);
		return rc;
	}
	free(mpath);
	/* The state through stdio; the header is written again at its end. */
	copy = dup(w->state.fd);
	w->f = copy >= 0 ? fdopen(copy, "w") : NULL;
	if (!w->f) {
		rc = -errno;
		if (copy >= 0)
			close(copy);
		snap_write_abort(w);
		return apf_fail(e, rc, "cannot write '%s': %s", path, strerror(-rc));
	}
	memcpy(w->h.magic, SNAP_MAGIC, 8);
	w->h.version = SNAP_VERSION;
	w->h.arch = arch;
	w->h.resident_size = resident_size;
	w->h.lazy_size = lazy_size;
	w->h.page_size = APF_PAGE_SIZE;
	if (fwrite(&w->h, sizeof(w->h), 1, w->f) != 1) {
		snap_write_abort(w);
		return apf_fail(e, -EIO, "cannot write '%s'", path);
	}
	return 0;
}

int snap_write_section(struct snap_writer *w, uint32_t type, uint32_t index, const void *data,
		       uint64_t len, struct apf_err *e)
{
	static const char pad[8];
	struct snap_section_hdr sh = { .type = type, .index = index, .length = len,
				       .crc = crc32c(0, data, len) };

	if (w->h.nsections == SNAP_MAX_SECTIONS)
		return apf_fail(e, -E2BIG, "snapshot: more than %d sections", SNAP_MAX_SECTIONS);
	if (fwrite(&sh, sizeof(sh), 1, w->f) != 1 || (len && fwrite(data, len, 1, w->f) != 1) ||
	    (len % 8 && fwrite(pad, 8 - len % 8, 1, w->f) != 1))
		return apf_fail(e, -EIO, "cannot write '%s': %s", w->state.path, strerror(errno));
	w->h.nsections++;
	return 0;
}

int snap_write_end(struct snap_writer *w, struct apf_err *e)
{
	int rc = snap_write_section(w, SNAP_SEC_ZERO_PAGES, 0, w->zero_bits,
				    zero_bits_len(w->mem_pages), e);

	if (rc) {
		snap_write_abort(w);
		return rc;
	}
	/* The pages not written (zero) are holes; so is a zero tail. */
	if (ftruncate(w->mem.fd, (off_t)(w->mem_written * APF_PAGE_SIZE)) < 0)
		rc = -errno;
	w->h.header_crc = header_crc(&w->h);
	if (fclose(w->f) != 0 && !rc)
		rc = -errno;
	w->f = NULL;
	if (!rc) {
		ssize_t n = pwrite(w->state.fd, &w->h, sizeof(w->h), 0);
		if (n != (ssize_t)sizeof(w->h))
			rc = n < 0 ? -errno : -EIO;
	}
	if (!rc && !(rc = file_out_commit(&w->mem)))
		rc = file_out_commit(&w->state);
	if (rc) {
		snap_write_abort(w);
		return apf_fail(e, rc, "cannot write the snapshot: %s", strerror(-rc));
	}
	free(w->zero_bits);
	w->zero_bits = NULL;
	return 0;
}

void snap_write_abort(struct snap_writer *w)
{
	if (w->f)
		fclose(w->f);
	w->f = NULL;
	free(w->zero_bits);
	w->zero_bits = NULL;
	file_out_abort(&w->state);
	file_out_abort(&w->mem);
}

/* n pages at page `at` of the memory file. */
static int write_pages(struct snap_writer *w, const unsigned char *p, uint64_t n, uint64_t at,
		       struct apf_err *e)
{
	uint64_t len = n * APF_PAGE_SIZE, off = at * APF_PAGE_SIZE;

	for (uint64_t done = 0; done < len;) {
		ssize_t k = pwrite(w->mem.fd, p + done, len - done, (off_t)(off + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return apf_fail(e, k < 0 ? -errno : -EIO, "cannot write the snapshot's memory: %s",
					k < 0 ? strerror(errno) : "short write");
		done += (uint64_t)k;
	}
	return 0;
}

/* Each page's digest and, for a zero page, its bit (no hashing: the
 * digest of a zero page is known); then every run of non-zero pages in
 * one write, the zero pages between them left as holes. */
int snap_write_memory(struct snap_writer *w, const void *data, uint64_t len,
		      struct sha256 *digests, uint64_t *next_page, struct apf_err *e)
{
	const unsigned char *p = data;
	uint64_t n = len / APF_PAGE_SIZE, base = w->mem_written, run = 0;
	int rc;

	if (len % APF_PAGE_SIZE || n > w->mem_pages - base)
		return apf_fail(e, -EINVAL, "snapshot: %llu bytes of memory at page %llu, beyond the "
				"%llu pages its header describes", (unsigned long long)len,
				(unsigned long long)base, (unsigned long long)w->mem_pages);
	for (uint64_t i = 0; i <= n; i++) {
		bool zero = i < n && !memcmp(p + i * APF_PAGE_SIZE, zero_page, APF_PAGE_SIZE);
		if (i < n && zero) {
			w->zero_bits[(base + i) / 8] |= (uint8_t)(1u << ((base + i) % 8));
			w->zero_pages++;
			digests[(*next_page)++] = zero_digest;
		} else if (i < n) {
			sha256(p + i * APF_PAGE_SIZE, APF_PAGE_SIZE, &digests[(*next_page)++]);
		}
		if (i == n || zero) {
			if (i > run && (rc = write_pages(w, p + run * APF_PAGE_SIZE, i - run, base + run, e)))
				return rc;
			run = i + 1;
		}
	}
	w->mem_written = base + n;
	return 0;
}

/* --- reading ------------------------------------------------------------ */

static int read_state(const char *path, unsigned char **out, uint64_t *len, struct apf_err *e)
{
	struct stat st;
	int fd = file_open_regular(path, &st);

	if (fd == -EINVAL)
		return apf_fail(e, -EINVAL, "snapshot '%s' is not a regular file", path);
	if (fd < 0)
		return apf_fail(e, fd, "cannot open snapshot '%s': %s", path, strerror(-fd));
	if ((uint64_t)st.st_size > SNAP_MAX_STATE) {
		close(fd);
		return apf_fail(e, -EFBIG, "snapshot '%s' is larger than %llu MiB: not an apfvm snapshot",
				path, SNAP_MAX_STATE >> 20);
	}
	*len = (uint64_t)st.st_size;
	*out = malloc(*len ? *len : 1);
	if (!*out) {
		close(fd);
		return apf_fail(e, -ENOMEM, "out of memory");
	}
	for (uint64_t done = 0; done < *len;) {
		ssize_t n = pread(fd, *out + done, *len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			free(*out);
			return apf_fail(e, -EIO, "cannot read snapshot '%s'", path);
		}
		done += (uint64_t)n;
	}
	close(fd);
	return 0;
}

/* Formats the error, then releases what snap_open() holds. */
static int fail_close(struct snap_image *s, struct apf_err *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail_close(struct snap_image *s, struct apf_err *e, int rc, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	snap_close(s);
	return rc;
}

static int open_memory(struct snap_image *s, const char *path, struct apf_err *e);

/* The zero-page bitmap (version 4): exactly mem_pages bits, none beyond
 * the last page, and every page it marks zero has a zero page's digest
 * (else the state was damaged or forged: a restore would map zeros where
 * the digests vouch for something else). */
static int read_zero_bits(struct snap_image *s, const char *path, struct apf_err *e)
{
	const struct snap_section *z = snap_find(s, SNAP_SEC_ZERO_PAGES, 0);
	uint64_t want = zero_bits_len(s->mem_pages);

	if (!z)
		return fail_close(s, e, -EINVAL, "snapshot '%s' has no zero-page bitmap", path);
	if (z->len != want)
		return fail_close(s, e, -EINVAL,
				  "snapshot '%s': the zero-page bitmap holds %llu bytes; its %llu pages "
				  "need %llu", path, (unsigned long long)z->len,
				  (unsigned long long)s->mem_pages, (unsigned long long)want);
	const uint8_t *bits = z->data;
	if (s->mem_pages % 8 && bits[want - 1] >> (s->mem_pages % 8))
		return fail_close(s, e, -EINVAL,
				  "snapshot '%s': the zero-page bitmap marks pages beyond its %llu", path,
				  (unsigned long long)s->mem_pages);
	for (uint64_t i = 0; i < want; i++) {
		for (unsigned b = 0; bits[i] >> b; b++) {
			uint64_t p = i * 8 + b;
			if (!(bits[i] >> b & 1))
				continue;
			if (memcmp(&s->page_digests[p], &zero_digest, sizeof(zero_digest)))
				return fail_close(s, e, -EBADMSG,
						  "snapshot '%s': page %llu is listed as all zero but its "
						  "SHA-256 is not a zero page's (the state is damaged or "
						  "forged)", path, (unsigned long long)p);
			s->zero_pages++;
		}
	}
	s->zero_bits = bits;
	return 0;
}

void snap_identity_full(const struct snap_image *s, struct sha256 *out)
{
	size_t len = sizeof(uint64_t) + s->mem_pages * sizeof(struct sha256);
	unsigned char *buf = malloc(len);

	if (!buf)
		abort(); /* a few MiB at most; nothing sensible to return */
	memcpy(buf, &s->mem_pages, sizeof(uint64_t));
	memcpy(buf + sizeof(uint64_t), s->page_digests, s->mem_pages * sizeof(struct sha256));
	sha256(buf, len, out);
	free(buf);
}

uint64_t snap_identity(const struct snap_image *s)
{
	struct sha256 d;
	uint64_t id;

	snap_identity_full(s, &d);
	memcpy(&id, d.b, sizeof(id));
	return id;
}

int snap_open(struct snap_image *s, const char *path, struct apf_err *e)
{
	int rc = snap_open_state(s, path, e);
	return rc ? rc : open_memory(s, path, e);
}

int snap_open_state(struct snap_image *s, const char *path, struct apf_err *e)
{
	memset(s, 0, sizeof(*s));
	s->mem_fd = -1;
	int rc = read_state(path, &s->state, &s->state_len, e);
	if (rc)
		return rc;
	if (s->state_len < sizeof(s->h) || memcmp(s->state, SNAP_MAGIC, 8))
		return fail_close(s, e, -EINVAL, "'%s' is not an apfvm snapshot", path);
	memcpy(&s->h, s->state, sizeof(s->h));
	if (s->h.version < SNAP_VERSION_MIN)
		return fail_close(s, e, -EINVAL,
				  "snapshot '%s' has format version %llu, whose pages are vouched for "
				  "by crc32c only; this apfvm reads versions %d to %d: take the snapshot "
				  "again", path, (unsigned long long)s->h.version, SNAP_VERSION_MIN,
				  SNAP_VERSION);
	if (s->h.version > SNAP_VERSION)
		return fail_close(s, e, -EINVAL,
				  "snapshot '%s' has format version %llu; this apfvm reads versions %d to %d",
				  path, (unsigned long long)s->h.version, SNAP_VERSION_MIN, SNAP_VERSION);
	if (header_crc(&s->h) != s->h.header_crc)
		return fail_close(s, e, -EBADMSG, "snapshot '%s': header checksum mismatch", path);
	if (s->h.page_size != APF_PAGE_SIZE || s->h.resident_size % APF_PAGE_SIZE ||
	    s->h.lazy_size % APF_PAGE_SIZE || s->h.resident_size > (1ull << 40) ||
	    s->h.lazy_size > (1ull << 40) || s->h.nsections > SNAP_MAX_SECTIONS)
		return fail_close(s, e, -EINVAL,
				  "snapshot '%s': impossible sizes (resident %llu, lazy %llu bytes)", path,
				  (unsigned long long)s->h.resident_size, (unsigned long long)s->h.lazy_size);
	uint64_t off = sizeof(s->h);
	for (uint32_t i = 0; i < s->h.nsections; i++) {
		struct snap_section_hdr sh;
		if (s->state_len - off < sizeof(sh))
			return fail_close(s, e, -EINVAL,
					  "snapshot '%s' is truncated: section %llu of %llu is missing",
					  path, (unsigned long long)i + 1,
					  (unsigned long long)s->h.nsections);
		memcpy(&sh, s->state + off, sizeof(sh));
		off += sizeof(sh);
		uint64_t padded = sh.length + (8 - sh.length % 8) % 8;
		if (sh.length > s->state_len - off || padded > s->state_len - off)
			return fail_close(s, e, -EINVAL,
					  "snapshot '%s' is truncated: section %llu holds %llu bytes beyond its end",
					  path, (unsigned long long)i + 1, (unsigned long long)sh.length);
		if (crc32c(0, s->state + off, sh.length) != sh.crc)
			return fail_close(s, e, -EBADMSG,
					  "snapshot '%s': checksum mismatch in section %llu (type %llu)",
					  path, (unsigned long long)i + 1, (unsigned long long)sh.type);
		s->sections[s->nsections++] = (struct snap_section){
			.type = sh.type, .index = sh.index, .data = s->state + off, .len = sh.length };
		off += padded;
	}
	if (off != s->state_len)
		return fail_close(s, e, -EINVAL, "snapshot '%s' has %llu stray bytes after its %llu sections",
				  path, (unsigned long long)(s->state_len - off),
				  (unsigned long long)s->h.nsections);
	s->mem_pages = (s->h.resident_size + s->h.lazy_size) / APF_PAGE_SIZE;
	const struct snap_section *digests = snap_find(s, SNAP_SEC_PAGE_DIGESTS, 0);
	if (!digests || digests->len != s->mem_pages * sizeof(struct sha256))
		return fail_close(s, e, -EINVAL,
				  "snapshot '%s': the page digests do not cover its %llu pages", path,
				  (unsigned long long)s->mem_pages);
	s->page_digests = (const struct sha256 *)digests->data;
	return s->h.version >= 4 ? read_zero_bits(s, path, e) : 0;
}

/* The memory file: exactly the pages the state describes. */
static int open_memory(struct snap_image *s, const char *path, struct apf_err *e)
{
	size_t plen = strlen(path);
	char *mpath = malloc(plen + sizeof(SNAP_MEM_SUFFIX));
	if (!mpath) {
		snap_close(s);
		return apf_fail(e, -ENOMEM, "out of memory");
	}
	memcpy(mpath, path, plen);
	memcpy(mpath + plen, SNAP_MEM_SUFFIX, sizeof(SNAP_MEM_SUFFIX));
	struct stat st;
	s->mem_fd = file_open_regular(mpath, &st);
	if (s->mem_fd < 0) {
		int err = s->mem_fd;
		apf_fail(e, err, "cannot open the snapshot's memory '%s': %s", mpath,
			 err == -EINVAL ? "not a regular file" : strerror(-err));
		snap_close(s);
		free(mpath);
		return err;
	}
	if ((uint64_t)st.st_size != s->mem_pages * APF_PAGE_SIZE) {
		apf_fail(e, -EINVAL, "the snapshot's memory '%s' is %llu bytes; its state says %llu", mpath,
			 (unsigned long long)st.st_size, (unsigned long long)(s->mem_pages * APF_PAGE_SIZE));
		snap_close(s);
		free(mpath);
		return -EINVAL;
	}
	free(mpath);
	return 0;
}

void snap_close(struct snap_image *s)
{
	if (s->mem_fd >= 0)
		close(s->mem_fd);
	free(s->state);
	memset(s, 0, sizeof(*s));
	s->mem_fd = -1;
}

const struct snap_section *snap_find(const struct snap_image *s, uint32_t type, uint32_t index)
{
	for (unsigned i = 0; i < s->nsections; i++)
		if (s->sections[i].type == type && s->sections[i].index == index)
			return &s->sections[i];
	return NULL;
}

/* --- records ------------------------------------------------------------ */

int snap_blob_put(struct snap_blob *b, uint32_t tag, const void *data, uint32_t len)
{
	uint64_t need = b->len + 8 + len + (8 - len % 8) % 8;
	if (need > b->cap) {
		uint64_t cap = b->cap ? b->cap : 4096;
		while (cap < need)
			cap *= 2;
		unsigned char *n = realloc(b->data, cap);
		if (!n)
			return -ENOMEM;
		b->data = n;
		b->cap = cap;
	}
	memcpy(b->data + b->len, &tag, 4);
	memcpy(b->data + b->len + 4, &len, 4);
	memcpy(b->data + b->len + 8, data, len);
	memset(b->data + b->len + 8 + len, 0, (8 - len % 8) % 8);
	b->len = need;
	return 0;
}

void snap_blob_free(struct snap_blob *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

const void *snap_blob_get(const void *data, uint64_t len, uint32_t tag, uint32_t *out_len)
{
	const unsigned char *p = data;
	uint64_t off = 0;

	while (len - off >= 8) {
		uint32_t t, l;
		memcpy(&t, p + off, 4);
		memcpy(&l, p + off + 4, 4);
		uint64_t padded = (uint64_t)l + (8 - l % 8) % 8;
		if (padded > len - off - 8)
			return NULL; /* malformed: a record past the end */
		if (t == tag) {
			*out_len = l;
			return p + off + 8;
		}
		off += 8 + padded;
	}
	return NULL;
}
