/*
 * The pager's userfaultfd operations (pager_uffd.h): the descriptor and
 * its registration, installing, waking, poisoning, unregistering.
 */
#include "pager_uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apfvm/abi.h"
#include "pager/pager_bulk.h"

static int open_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 || errno != EPERM)
		return fd;
	/* Unprivileged userfaultfd may be disabled; the device node still
	 * works for users allowed to open it. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd;
}

/* Creates the uffd and registers the region (MISSING mode, thread ids);
 * notes whether the kernel can poison a page. */
int pager_uffd_register(struct pager *p, struct apf_err *e)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID };
	struct uffdio_register reg;

	p->uffd = open_uffd();
	if (p->uffd < 0)
		return apf_fail(e, -errno,
				"userfaultfd: %s (needs root, or vm.unprivileged_userfaultfd=1, or access to /dev/userfaultfd)",
				strerror(errno));
	if (ioctl(p->uffd, UFFDIO_API, &api) < 0)
		return apf_fail(e, -errno, "UFFDIO_API: %s", strerror(errno));
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)p->cfg.host_base;
	reg.range.len = p->cfg.size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0)
		return apf_fail(e, -errno, "UFFDIO_REGISTER: %s", strerror(errno));
	p->can_poison = (api.features & UFFD_FEATURE_POISON) &&
			(reg.ioctls & (1ull << _UFFDIO_POISON));
	return 0;
}

/* A userfaultfd ioctl on the region, retried while the kernel reports the
 * address space changing under it (EAGAIN), at most UFFD_RETRIES times.
 * 0 or -errno. */
#define UFFD_RETRIES 1000
int pager_uffd_ioctl(struct pager *p, unsigned long req, void *arg)
{
	for (unsigned tries = 0; tries < UFFD_RETRIES; tries++) {
		if (ioctl(p->uffd, req, arg) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
	return -EAGAIN;
}

int pager_uffd_poison(struct pager *p, uint64_t page)
{
	struct uffdio_poison po = {
		.range = { .start = (uintptr_t)p->cfg.host_base + page * APF_PAGE_SIZE,
			   .len = APF_PAGE_SIZE },
	};
	return pager_uffd_ioctl(p, UFFDIO_POISON, &po);
}

void pager_uffd_wake(struct pager *p, uint64_t page)
{
	struct uffdio_range r = {
		.start = (uintptr_t)p->cfg.host_base + page * APF_PAGE_SIZE,
		.len = APF_PAGE_SIZE,
	};
	ioctl(p->uffd, UFFDIO_WAKE, &r);
}


/* pager_uffd.h.  A page a fault was read on wakes every thread blocked
 * on it.  -EEXIST: the page was already mapped, by something other than
 * this pager (in MISSING mode only the pager maps pages of the region), so
 * its content is unknown: an error, never "present". */
int pager_install(struct pager *p, const struct source_completion *c)
{
	uint64_t dst = (uintptr_t)p->cfg.host_base + c->page * APF_PAGE_SIZE;
	/* No fault read on it: nobody to wake (a thread that faulted since
	 * is woken when its fault is read: a spurious fault). */
	bool dontwake = !(p->flags[c->page] & PAGE_F_FAULTED);

	/* UFFDIO_ZEROPAGE does not replace a kick's poison marker (its
	 * target must be empty); UFFDIO_COPY does. */
	if (c->zero && !__atomic_load_n(&p->kick_poisoned[c->page], __ATOMIC_RELAXED)) {
		struct uffdio_zeropage z = { .range = { .start = dst, .len = APF_PAGE_SIZE },
					     .mode = dontwake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0 };
		return pager_uffd_ioctl(p, UFFDIO_ZEROPAGE, &z);
	}
	static const unsigned char zeros[APF_PAGE_SIZE] __attribute__((aligned(APF_PAGE_SIZE)));
	struct uffdio_copy cp = { .dst = dst, .src = (uintptr_t)(c->zero ? zeros : c->buf),
				  .len = APF_PAGE_SIZE,
				  .mode = dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0 };
	return pager_uffd_ioctl(p, UFFDIO_COPY, &cp);
}

int pager_poison_for_kick(struct pager *p, uint64_t page)
{
	if (page >= p->npages || p->state[page] != PAGE_FETCHING)
		return -EINVAL;
	if (!p->can_poison)
		return -EOPNOTSUPP;
	/* Marked first: the vCPU thread's SIGBUS may come before the ioctl
	 * returns. */
	__atomic_store_n(&p->kick_poisoned[page], 1, __ATOMIC_RELEASE);
	return pager_uffd_poison(p, page);
}

bool pager_page_kick_poisoned(const struct pager *p, uint64_t page)
{
	return page < p->npages && __atomic_load_n(&p->kick_poisoned[page], __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&p->state[page], __ATOMIC_ACQUIRE) != PAGE_FAILED;
}

void pager_release(struct pager *p)
{
	struct uffdio_range r = { .start = (uintptr_t)p->cfg.host_base, .len = p->cfg.size };
	ioctl(p->uffd, UFFDIO_UNREGISTER, &r);
}

