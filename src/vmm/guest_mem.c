#include "guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int gmem_init(struct guest_mem *gm, uint64_t resident_size, uint64_t lazy_size,
	      struct apf_err *e)
{
	memset(gm, 0, sizeof(*gm));
	gm->resident = mmap(NULL, resident_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (gm->resident == MAP_FAILED) {
		gm->resident = NULL;
		return apf_fail(e, -errno, "cannot map %llu bytes of guest memory: %s",
				(unsigned long long)resident_size, strerror(errno));
	}
	gm->resident_size = resident_size;
	if (lazy_size) {
		gm->lazy = mmap(NULL, lazy_size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (gm->lazy == MAP_FAILED) {
			gm->lazy = NULL;
			gmem_destroy(gm);
			return apf_fail(e, -errno, "cannot map the %llu-byte lazy region: %s",
					(unsigned long long)lazy_size, strerror(errno));
		}
		/* The guest sees 4 KiB granules; keep the host at 4 KiB too so
		 * every guest page is its own userfault. */
		madvise(gm->lazy, lazy_size, MADV_NOHUGEPAGE);
		gm->lazy_size = lazy_size;
	}
	return 0;
}

void gmem_destroy(struct guest_mem *gm)
{
	if (gm->resident)
		munmap(gm->resident, gm->resident_size);
	if (gm->lazy)
		munmap(gm->lazy, gm->lazy_size);
	memset(gm, 0, sizeof(*gm));
}

void *gmem_ptr(const struct guest_mem *gm, gpa_t gpa, uint64_t len)
{
	if (gpa >= gm->resident_size || len > gm->resident_size - gpa)
		return NULL;
	return (char *)gm->resident + gpa;
}

int gmem_read(const struct guest_mem *gm, gpa_t gpa, void *buf, uint64_t len)
{
	const volatile uint8_t *p = gmem_ptr(gm, gpa, len);
	uint8_t *out = buf;

	if (!p)
		return -EFAULT;
	for (uint64_t i = 0; i < len; i++) /* volatile: exactly one read per byte */
		out[i] = p[i];
	return 0;
}

int gmem_read_str(const struct guest_mem *gm, gpa_t gpa, char *buf, size_t max)
{
	const char *p;
	uint64_t avail;
	size_t n;

	if (!max || gpa >= gm->resident_size)
		return -EFAULT;
	p = (const char *)gm->resident + gpa;
	avail = gm->resident_size - gpa;
	for (n = 0; n < max - 1 && n < avail; n++) {
		if (!p[n])
			break;
		buf[n] = p[n];
	}
	buf[n] = '\0';
	if (n == avail)
		return -EFAULT;
	if (n == max - 1 && p[n])
		return -E2BIG;
	return (int)n;
}
