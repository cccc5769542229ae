#include "apfvm_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAYLOAD_OFFSET 64u
#define PAYLOAD_MAX    2048u

int apfvm_dev_open(struct apfvm_dev *d, uint64_t info_gpa)
{
	if (info_gpa != APF_LINUX_INFO_GPA) {
		fprintf(stderr, "apfvm-init: %s0x%llx is not where apfvm puts it\n",
			APF_LINUX_INFO_ARG, (unsigned long long)info_gpa);
		return -1;
	}
	d->mem_fd = open("/dev/mem", O_RDWR | O_CLOEXEC);
	if (d->mem_fd < 0) {
		perror("apfvm-init: /dev/mem");
		return -1;
	}
	d->info = mmap(NULL, APF_PAGE_SIZE, PROT_READ, MAP_SHARED, d->mem_fd, (off_t)info_gpa);
	void *page = mmap(NULL, APF_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d->mem_fd,
			  APF_LINUX_HCALL_GPA);
	if (d->info == MAP_FAILED || page == MAP_FAILED) {
		perror("apfvm-init: mapping apfvm's pages from /dev/mem");
		return -1;
	}
	d->hcall_page = page;
	if (d->info->magic != APF_BOOT_MAGIC) {
		fprintf(stderr, "apfvm-init: no apfvm boot info at 0x%llx\n",
			(unsigned long long)info_gpa);
		return -1;
	}
	if (ioperm(APF_HCALL_PORT, 4, 1)) {
		perror("apfvm-init: ioperm");
		return -1;
	}
	return 0;
}

int apfvm_hcall(struct apfvm_dev *d, uint32_t nr, uint64_t a0, uint64_t a1)
{
	volatile struct apf_hcall *h = (volatile struct apf_hcall *)d->hcall_page;

	h->nr = nr;
	h->ret = (uint32_t)-ENOSYS;
	h->a0 = a0;
	h->a1 = a1;
	h->a2 = 0;
	/* The OUT exits to the VMM, which acts and writes ret before the
	 * instruction completes. */
	outl(APF_LINUX_HCALL_GPA, APF_HCALL_PORT);
	return (int32_t)h->ret;
}

int apfvm_hcall_with(struct apfvm_dev *d, uint32_t nr, const void *payload, size_t len)
{
	if (len > PAYLOAD_MAX)
		return -E2BIG;
	memcpy((void *)(d->hcall_page + PAYLOAD_OFFSET), payload, len);
	return apfvm_hcall(d, nr, APF_LINUX_HCALL_GPA + PAYLOAD_OFFSET, 0);
}

const void *apfvm_map_lazy(struct apfvm_dev *d)
{
	void *p = mmap(NULL, d->info->lazy_size, PROT_READ, MAP_SHARED, d->mem_fd,
		       (off_t)d->info->lazy_base);
	if (p == MAP_FAILED) {
		fprintf(stderr, "apfvm-init: mapping the lazy region (%llu KiB at 0x%llx) from /dev/mem: %s\n",
			(unsigned long long)(d->info->lazy_size >> 10),
			(unsigned long long)d->info->lazy_base, strerror(errno));
		return NULL;
	}
	return p;
}
