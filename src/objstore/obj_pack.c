#include "obj_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "apfvm/abi.h"
#include "image/image.h"
#include "objstore/obj_http.h"
#include "objstore/obj_layout.h"
#include "snapshot/snapshot.h"
#include "util/crc32c.h"
#include "util/file.h"

static int write_all(int fd, const void *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p = (const char *)p + n;
		len -= (size_t)n;
	}
	return 0;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* What is packed: an image, or a snapshot's memory (snap open: its
 * zero-page bitmap says which pages need not be read at all). */
struct pack_input {
	int fd;
	struct image_info info;
	uint32_t pattern;
	struct snap_image snap; /* mem_fd -1 and state NULL for an image */
};

/* Chunk i's pages into raw, those the snapshot lists as zero not read;
 * whether every one of them was listed. */
static int read_chunk(const struct pack_input *in, const struct obj_manifest *m, uint64_t i,
		      unsigned char *raw, bool *listed_zero, struct apf_err *e)
{
	uint64_t first = i * m->hdr.chunk_pages;
	uint32_t n = obj_chunk_npages(&m->hdr, i);
	int rc;

	*listed_zero = true;
	for (uint32_t k = 0; k < n; k++) {
		unsigned char *page = raw + (size_t)k * OBJ_PAGE_SIZE;
		if (in->snap.state && snap_page_is_zero(&in->snap, first + k)) {
			memset(page, 0, OBJ_PAGE_SIZE);
			continue;
		}
		*listed_zero = false;
		if ((rc = file_pread_page(in->fd, in->info.data_offset + (first + k) * OBJ_PAGE_SIZE,
					  page)))
			return apf_fail(e, rc, "cannot read the image: %s", strerror(-rc));
	}
	return 0;
}

/* Writes the data object to data_fd and returns the manifest in m.  A
 * chunk of zeros is not stored (OBJ_CHUNK_ZERO); one whose every page
 * the snapshot lists as zero is not even read. */
static int pack_chunks(const struct pack_input *in, uint32_t chunk_pages, int level, int data_fd,
		       struct obj_manifest *m, struct obj_pack_stats *st, struct apf_err *e)
{
	size_t chunk_bytes = (size_t)chunk_pages * OBJ_PAGE_SIZE;
	size_t bound = ZSTD_compressBound(chunk_bytes);
	unsigned char *raw = malloc(chunk_bytes), *z = malloc(bound);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	int rc = 0;

	m->hdr.npages = in->info.data_size / OBJ_PAGE_SIZE;
	m->hdr.nchunks = (m->hdr.npages + chunk_pages - 1) / chunk_pages;
	if (m->hdr.nchunks > OBJ_NCHUNKS_MAX) {
		rc = apf_fail(e, -EINVAL, "%llu chunks of %u pages: at most %llu; pass a larger "
			      "--chunk", (unsigned long long)m->hdr.nchunks, chunk_pages,
			      (unsigned long long)OBJ_NCHUNKS_MAX);
		goto out;
	}
	m->chunks = calloc(m->hdr.nchunks, sizeof(*m->chunks));
	if (!raw || !z || !cctx || !m->chunks) {
		rc = apf_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < m->hdr.nchunks; i++) {
		struct obj_chunk *c = &m->chunks[i];
		size_t len = (size_t)obj_chunk_npages(&m->hdr, i) * OBJ_PAGE_SIZE;
		bool listed_zero;
		if ((rc = read_chunk(in, m, i, raw, &listed_zero, e)))
			goto out;
		c->data_crc = crc32c(0, raw, len);
		if (listed_zero || all_zero(raw, len)) {
			c->flags = OBJ_CHUNK_ZERO;
			st->zero_chunks++;
			continue;
		}
		size_t zl = ZSTD_compressCCtx(cctx, z, bound, raw, len, level);
		const unsigned char *stored = z;
		if (ZSTD_isError(zl) || zl >= len) {
			c->flags = OBJ_CHUNK_RAW;
			stored = raw;
			zl = len;
			st->raw_chunks++;
		}
		c->offset = st->data_bytes;
		c->stored_len = (uint32_t)zl;
		c->stored_crc = crc32c(0, stored, zl);
		sha256(stored, zl, &c->stored_sha256);
		if ((rc = write_all(data_fd, stored, zl))) {
			rc = apf_fail(e, rc, "cannot write the data object: %s", strerror(-rc));
			goto out;
		}
		st->data_bytes += zl;
	}
	m->hdr.data_size = st->data_bytes;
out:
	free(raw);
	free(z);
	ZSTD_freeCCtx(cctx);
	return rc;
}

/* The two outputs: files written whole or not at all beside DEST (see
 * util/file.h), or for an upload unnamed temporary files, stored and
 * gone. */
struct pack_out {
	bool upload;
	struct file_out data, manifest; /* !upload */
	int data_fd, manifest_fd;       /* either way */
};

/* Refuses a destination that is the input (pack IMG IMG would replace
 * the image by its manifest), then creates the outputs. */
static int create_outputs(struct pack_out *o, const char *dest, const char *input, int input_fd,
			  struct apf_err *e)
{
	char dpath[4096 + sizeof(OBJ_DATA_SUFFIX)];
	struct stat in_fd, in_path;
	int rc;

	o->data_fd = o->manifest_fd = -1;
	o->data.fd = o->manifest.fd = -1;
	o->data.path = o->data.tmp = o->manifest.path = o->manifest.tmp = NULL;
	if (o->upload) {
		if ((o->data_fd = file_temp_anonymous()) < 0 ||
		    (o->manifest_fd = file_temp_anonymous()) < 0)
			return apf_fail(e, o->data_fd < 0 ? o->data_fd : o->manifest_fd,
					"cannot make a temporary file: %s",
					strerror(-(o->data_fd < 0 ? o->data_fd : o->manifest_fd)));
		return 0;
	}
	if (strlen(dest) >= 4096)
		return apf_fail(e, -ENAMETOOLONG, "destination path too long");
	snprintf(dpath, sizeof(dpath), "%s%s", dest, OBJ_DATA_SUFFIX);
	bool have_fd = fstat(input_fd, &in_fd) == 0, have_path = stat(input, &in_path) == 0;
	const char *outs[2] = { dest, dpath };
	for (int i = 0; i < 2; i++)
		if ((have_fd && file_is(outs[i], &in_fd)) || (have_path && file_is(outs[i], &in_path)))
			return apf_fail(e, -EINVAL, "%s is what is being packed: pack writes DEST and "
					"DEST%s; choose another DEST", outs[i], OBJ_DATA_SUFFIX);
	if ((rc = file_out_open(&o->data, dpath, 0644)) ||
	    (rc = file_out_open(&o->manifest, dest, 0644)))
		return apf_fail(e, rc, "cannot create %s: %s", o->data.fd < 0 ? dpath : dest,
				strerror(-rc));
	o->data_fd = o->data.fd;
	o->manifest_fd = o->manifest.fd;
	return 0;
}

/* Puts the outputs in place: the data first, so that a reader who finds
 * the manifest finds its chunks. */
static int commit_outputs(struct pack_out *o, const struct obj_target *t, const char *dest,
			  struct apf_err *e)
{
	int rc;

	if (o->upload) {
		if ((rc = obj_put_fd(t, t->data_url, o->data_fd, 600000000000ull, e)))
			return rc;
		return obj_put_fd(t, t->manifest_url, o->manifest_fd, 60000000000ull, e);
	}
	o->data_fd = o->manifest_fd = -1;
	if ((rc = file_out_commit(&o->data)) || (rc = file_out_commit(&o->manifest)))
		return apf_fail(e, rc, "cannot write %s: %s", dest, strerror(-rc));
	return 0;
}

static void close_outputs(struct pack_out *o)
{
	if (o->upload) {
		if (o->data_fd >= 0)
			close(o->data_fd);
		if (o->manifest_fd >= 0)
			close(o->manifest_fd);
		return;
	}
	file_out_abort(&o->data);
	file_out_abort(&o->manifest);
}

/* What is packed: the image at path, or the memory of the snapshot at
 * path (its state kept open for its zero-page bitmap): its fd, where its
 * pages lie, the pattern and seed announced. */
static int open_input(const char *path, bool snapshot, struct pack_input *in, struct apf_err *e)
{
	struct stat sb;
	int rc;

	if (snapshot) {
		if ((rc = snap_open(&in->snap, path, e)))
			return rc;
		in->fd = dup(in->snap.mem_fd);
		in->info.data_offset = 0;
		in->info.data_size = in->snap.mem_pages * OBJ_PAGE_SIZE;
		in->info.seed = snap_identity(&in->snap);
		in->pattern = APF_PATTERN_SNAPSHOT;
		return in->fd < 0 ? apf_fail(e, -errno, "dup: %s", strerror(errno)) : 0;
	}
	in->fd = file_open_regular(path, &sb);
	if (in->fd < 0)
		return apf_fail(e, in->fd, "cannot open image '%s': %s", path,
				in->fd == -EINVAL ? "not a regular file" : strerror(-in->fd));
	in->pattern = APF_PATTERN_SEEDED;
	return image_read_header(in->fd, path, &in->info, e);
}

int obj_pack(const char *image_path, bool snapshot, const char *dest, uint32_t chunk_pages,
	     int level, const struct obj_store_options *o, struct obj_pack_stats *st,
	     struct apf_err *e)
{
	struct obj_manifest m;
	struct obj_target t = { 0 };
	struct pack_input in = { .fd = -1, .snap = { .mem_fd = -1 } };
	void *wire = NULL;
	bool upload = !strncmp(dest, "s3://", 5);
	struct pack_out out = { .upload = upload, .data_fd = -1, .manifest_fd = -1,
				.data.fd = -1, .manifest.fd = -1 };
	int rc;

	memset(&m, 0, sizeof(m));
	memset(st, 0, sizeof(*st));
	if (chunk_pages < 1 || chunk_pages > OBJ_CHUNK_PAGES_MAX || level < 1 || level > 19)
		return apf_fail(e, -EINVAL, "chunk of 1..%u pages, zstd level 1..19",
				OBJ_CHUNK_PAGES_MAX);
	if (!upload && obj_spec_is_remote(dest))
		return apf_fail(e, -EINVAL, "pack writes to files or to s3://BUCKET/KEY, not to "
				"'%s' (serve the files over HTTP instead)", dest);
	if (upload && ((rc = obj_http_init(e)) || (rc = obj_target_parse(dest, o, &t, e))))
		return rc;
	if ((rc = open_input(image_path, snapshot, &in, e)))
		goto out;
	if (in.info.data_size / OBJ_PAGE_SIZE > OBJ_NPAGES_MAX) {
		rc = apf_fail(e, -EINVAL, "image '%s' is larger than 64 GiB", image_path);
		goto out;
	}
	if ((rc = create_outputs(&out, dest, image_path, in.fd, e)))
		goto out;
	memcpy(m.hdr.magic, OBJ_MAGIC, 8);
	m.hdr.version = OBJ_VERSION;
	m.hdr.page_size = OBJ_PAGE_SIZE;
	m.hdr.chunk_pages = chunk_pages;
	m.hdr.pattern = in.pattern;
	m.hdr.seed = in.info.seed;
	if ((rc = pack_chunks(&in, chunk_pages, level, out.data_fd, &m, st, e)))
		goto out;
	st->npages = m.hdr.npages;
	st->nchunks = m.hdr.nchunks;
	size_t wlen = obj_manifest_size(m.hdr.nchunks);
	if (!(wire = malloc(wlen))) {
		rc = apf_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	obj_manifest_encode(&m, wire);
	if ((rc = write_all(out.manifest_fd, wire, wlen))) {
		rc = apf_fail(e, rc, "cannot write the manifest of %s: %s", dest, strerror(-rc));
		goto out;
	}
	rc = commit_outputs(&out, &t, dest, e);
out:
	close_outputs(&out);
	if (in.fd >= 0)
		close(in.fd);
	if (in.snap.state)
		snap_close(&in.snap);
	free(wire);
	obj_manifest_free(&m);
	obj_target_free(&t);
	return rc;
}
