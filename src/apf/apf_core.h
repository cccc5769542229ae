/*
 * apf_core: the host side of KVM asynchronous page faults, in userspace.
 *
 * One core per VM owns, for every vCPU, the async-PF state that KVM keeps
 * in the kernel when it is the host side: the guest's registration, the async
 * faults in flight (token, guest frame, state), the queue of completed
 * faults awaiting page-ready, and the decision, per fault, between
 * synchronous service (the vCPU stays blocked in userfaultfd) and async
 * (not-present now, page-ready later).  It speaks the Linux/KVM ABI, so
 * the unchanged reference guest, or a Linux guest, works against it.
 *
 * The core does no I/O itself: it acts through struct apf_core_ops (kick a
 * vCPU, read/write the guest's area, raise the page-ready vector), so every
 * rule is unit-tested without KVM (tests/unit/test_apf_core.c).
 *
 * Rules implemented (docs/async-pf.md, "Host side"):
 *  1. async only for a fault that would block: the page source expects a
 *     wait longer than the async round trip costs the guest (threshold);
 *  2. at most APF_CORE_MAX_OUTSTANDING async faults per vCPU;
 *  3. tokens unique among those outstanding, never 0 or the wake-all token
 *     (Linux's form: id << 12 | vcpu);
 *  4. a fault on a frame already in flight waits (stays synchronous);
 *  5. not-present only when the guest can take it (enabled, interrupts
 *     enabled, in user mode unless registered with send_always, no event
 *     pending), synchronous otherwise;
 *  6. one not-present at a time (the area's flags must be clear);
 *  7. one page-ready in flight: the next only once the guest has cleared
 *     the area's token (KVM's rule: kvm_arch_can_dequeue_async_page_present
 *     checks the token alone; the ACK only prompts KVM to look again); the
 *     rest queue, and the caller retries (apf_core_retry) while any is
 *     queued, so the guest's ACK need not exit to the VMM;
 *  8. page-ready only for faults whose not-present was injected;
 *  9. wake-all on every (re)enable;
 * 11. disable, reset and teardown drop every queued and in-flight record;
 * 12. registrations are validated as KVM validates them (docs/async-pf.md,
 *     "Validation of guest MSR writes"; the decoding is the architecture's:
 *     src/arch/x86/apf_msr_x86.c, src/arch/arm64/apf_arm64.c); the one
 *     difference protects the host: the area must not lie in the lazy
 *     region.
 *
 * Threading: the pager thread calls apf_core_on_fault() and
 * apf_core_on_installed(); each vCPU thread calls the per-vCPU entry points
 * for its own vCPU.  One mutex guards the core; the ops run under it (the
 * kick after it) and must not call back into the core.
 */
#ifndef APFVM_APF_CORE_H
#define APFVM_APF_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "apfvm/abi.h"

#define APF_CORE_MAX_VCPUS       8
#define APF_CORE_MAX_OUTSTANDING 64

struct apf_core_ops {
	/* Brings vCPU v out of KVM_RUN and out of its blocked fault on lazy
	 * page `page` (where a signal cannot, the pager then poisons the
	 * page: pager_config.kick_by_poison).  Called from the pager thread. */
	void (*kick)(void *ctx, unsigned v, uint64_t page);
	/* 32-bit access to the guest's area at `gpa` (validated resident
	 * memory); return 0 or -errno. */
	int (*write_u32)(void *ctx, uint64_t gpa, uint32_t value);
	int (*read_u32)(void *ctx, uint64_t gpa, uint32_t *value);
	/* Raises `vector` on vCPU v (an MSI to its LAPIC).  -EAGAIN: the
	 * guest does not accept interrupts yet (LAPIC software-disabled); the
	 * page-ready then stays queued, as KVM holds it (apf_core_retry). */
	int (*raise)(void *ctx, unsigned v, uint8_t vector);
	/* Whether [gpa, gpa + len) lies in resident guest memory. */
	bool (*gpa_ok)(void *ctx, uint64_t gpa, uint64_t len);
	/* A page-ready could not be delivered to vCPU v (err: -errno of the
	 * write or the raise).  The guest's parked tasks would wait forever:
	 * the VMM must end the run with this error.  The token stays queued. */
	void (*fail)(void *ctx, unsigned v, int err, const char *what);
};

/* Why a fault was served synchronously (or that it went async). */
enum apf_decision {
	APF_ASYNC = 0,          /* kick sent; not-present follows if deliverable */
	APF_SYNC_DISABLED,      /* guest has async PF off, or not a vCPU's fault */
	APF_SYNC_POLICY,        /* expected wait below the threshold */
	APF_SYNC_CAP,           /* 64 async faults already outstanding */
	APF_SYNC_REPEAT,        /* the frame is already in flight: wait for it */
	APF_SYNC_CANNOT_DELIVER, /* guest could not take a not-present (at kick) */
	APF_SYNC_RACED,         /* the page arrived before the not-present */
	APF_DECISIONS
};

struct apf_core_stats {
	uint64_t decisions[APF_DECISIONS]; /* every fault lands in exactly one */
	uint64_t not_present;   /* injected */
	uint64_t ready;         /* page-ready raised (specific tokens) */
	uint64_t wake_all;      /* wake-all raised */
	uint64_t acks;          /* ACK writes seen (where they reach the VMM) */
	uint64_t acks_early;    /* of which: the area's token still set */
	uint64_t retries;       /* per vCPU, apf_core_retry found work queued */
	uint64_t refused;       /* raises the guest's LAPIC refused (retried) */
	uint64_t gp_injected;   /* invalid registrations refused (x86: #GP) */
	uint64_t dropped;       /* records dropped by disable/reset/teardown */
	uint64_t deliver_errors; /* page-readies whose write or raise failed */
	uint64_t outstanding_max;
};

/* What the vCPU loop hands over after a kick: the guest's state as the
 * architecture read it from KVM (arch_apf_guest_state). */
struct apf_guest_state {
	bool irqs_enabled;      /* x86: RFLAGS.IF; arm64: PSTATE.I clear */
	bool user_mode;         /* x86: ring 3; arm64: EL0 */
	bool event_pending;     /* an exception, interrupt or NMI pending/injected */
};

enum apf_fault_state { AF_FREE = 0, AF_KICKED, AF_INJECTED, AF_READY_QUEUED };

struct apf_fault {
	enum apf_fault_state state;
	uint32_t token;
	uint64_t page;          /* page index in the lazy region */
};

struct apf_core_vcpu {
	/* The registration as the guest wrote it, for reads back and
	 * snapshots (x86: MSR_KVM_ASYNC_PF_EN's value; arm64: 0). */
	uint64_t reg_value;
	uint8_t vector;         /* the page-ready interrupt */
	bool enabled;           /* ENABLED and DELIVERY_AS_INT, valid area */
	bool send_always;
	uint64_t area_gpa;
	/* Async faults outstanding (not FREE). */
	struct apf_fault faults[APF_CORE_MAX_OUTSTANDING];
	unsigned outstanding;
	int kicked;             /* index of the AF_KICKED fault, or -1 */
	/* Page-ready queue: fault indices in completion order. */
	uint8_t readyq[APF_CORE_MAX_OUTSTANDING];
	unsigned rq_head, rq_count;
	bool wake_all_pending;  /* a wake-all waits for the ready slot */
	bool ack_owed;          /* ack_paced: a page-ready not yet ACKed */
	uint32_t next_id;
};

struct apf_core {
	pthread_mutex_t lock;
	const struct apf_core_ops *ops;
	void *ctx;
	unsigned nvcpus;
	uint64_t threshold_ns;  /* go async only above this expected wait */
	/* Set by the VMM (before the guest runs) when the guest's ACKs reach
	 * apf_core_ack (x86: --apf-trap-acks): the next page-ready then also waits for the ACK of
	 * the one before, so an ACK that finds the token still set proves the
	 * guest ACKed before clearing it (stats.acks_early).  Off, a raise may
	 * follow the guest's clearing at once, as under KVM. */
	bool ack_paced;
	struct apf_core_vcpu vcpus[APF_CORE_MAX_VCPUS];
	struct apf_core_stats stats;
};

void apf_core_init(struct apf_core *c, unsigned nvcpus, uint64_t threshold_ns,
		   const struct apf_core_ops *ops, void *ctx);
void apf_core_destroy(struct apf_core *c);

/* --- pager thread ----------------------------------------------------- */

/* A fault on lazy page `page` by vCPU v (v < 0: not a vCPU thread).
 * expected_ns: how long the page source expects the page to take (0 =
 * available at once); in_flight: the page was already being fetched.
 * Returns the decision; on APF_ASYNC the vCPU has been kicked. */
enum apf_decision apf_core_on_fault(struct apf_core *c, int v, uint64_t page,
				    uint64_t expected_ns, bool in_flight);

/* Lazy page `page` is now present, or failed for good (pager.h, Errors):
 * queue page-ready for async faults on it and deliver what the ready slot
 * allows.  After a failure the guest task's retried access fails
 * synchronously, as under KVM's own host side. */
void apf_core_on_installed(struct apf_core *c, uint64_t page);

/* Delivers what the ready slots now allow; true while some page-ready is
 * still queued (the guest has not yet cleared the token of the one
 * before).  The caller calls it again, at short intervals, until it
 * returns false: nothing else prompts a queued page-ready.  Any thread. */
bool apf_core_retry(struct apf_core *c);

/* --- vCPU v's thread ---------------------------------------------------- */

/* After a kick: if a not-present is due for v, decide whether the guest can
 * take it.  Returns the token to inject as a pending #PF (payload = token,
 * error code 0) after the core wrote flags = PAGE_NOT_PRESENT, or 0 if
 * nothing is to be injected (the vCPU then retries and waits for the page). */
uint32_t apf_core_take_injection(struct apf_core *c, unsigned v,
				 const struct apf_guest_state *gs,
				 bool (*page_settled)(void *ctx, uint64_t page), void *pctx);

/* Registration, as each architecture's protocol asks for it (x86: the
 * MSRs, src/arch/x86/apf_msr_x86.c; arm64: an SMCCC call).  enable: the area (area_len bytes
 * at area_gpa, which must be resident memory), the interrupt that carries
 * page-ready (x86: the vector; arm64: the PPI), and whether not-present
 * may also be sent for faults in the guest kernel.  Every (re)enable
 * drops what was outstanding and sends wake-all.  0, or -1 for an area
 * outside resident memory. */
int apf_core_enable(struct apf_core *c, unsigned v, uint64_t area_gpa, uint64_t area_len,
		    uint8_t vector, bool send_always);
void apf_core_disable(struct apf_core *c, unsigned v);

/* The guest acknowledged a page-ready (x86: the ACK MSR; arm64: the
 * SMCCC ACK): a prompt to deliver the next queued one. */
void apf_core_ack(struct apf_core *c, unsigned v);

/* The interrupt that will carry page-ready, set before the enable (x86:
 * the vector MSR). */
void apf_core_set_vector(struct apf_core *c, unsigned v, uint8_t vector);

/* The registration's raw value (reg_value), and reading it back with the
 * vector. */
void apf_core_set_reg_value(struct apf_core *c, unsigned v, uint64_t value);
void apf_core_read_reg(struct apf_core *c, unsigned v, uint64_t *value, uint8_t *vector);

/* A registration call the guest made was invalid and refused
 * (stats.gp_injected: x86 answers it with #GP). */
void apf_core_count_refused(struct apf_core *c);

/* vCPU reset: drops v's async state as if the guest disabled the feature. */
void apf_core_reset_vcpu(struct apf_core *c, unsigned v);

/* Number of async faults v has outstanding (for tests and stats). */
unsigned apf_core_outstanding(struct apf_core *c, unsigned v);

#endif
