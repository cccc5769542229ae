/*
 * The async-fault core (src/apf/apf_core.c) against a fake VM: every
 * host-side rule of the async page fault protocol, without KVM.  The
 * guest registers through x86's MSRs, whose decoding is the x86 layer's
 * (src/arch/x86/apf_msr_x86.c): those rules are tested here with it.
 */
#include <errno.h>

#include "apfvm/abi_x86.h"
#include "arch/x86/apf_msr_x86.h"
#include "apf_fake.h"
#include "test.h"

#define VEC 0xec
#define EN_VALUE (FAKE_AREA | KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT)
#define THRESHOLD 300000ull
#define SLOW 1000000ull /* expected fetch time above the threshold */

static struct fake_vm fvm;
static struct apf_core core;
static const struct apf_guest_state ring3 = { .irqs_enabled = true, .user_mode = true };

static void setup(unsigned nvcpus)
{
	memset(&fvm, 0, sizeof(fvm));
	apf_core_init(&core, nvcpus, THRESHOLD, &fake_ops, &fvm);
}

/* The guest's part of a page-ready: it clears the token (its ACK goes to
 * KVM, not to the core); then the VMM's retry delivers what waited. */
static void guest_ack(unsigned v)
{
	(void)v;
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	apf_core_retry(&core);
}

/* The guest's driver: vector, then enable; consumes the wake-all. */
static void enable(unsigned v)
{
	REQUIRE(apf_x86_wrmsr(&core, v, MSR_KVM_ASYNC_PF_INT, VEC) == 0);
	REQUIRE(apf_x86_wrmsr(&core, v, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0);
	guest_ack(v);
}

/* A slow fault on `page` that the guest takes as not-present; returns the
 * token.  The guest clears flags as its #PF handler does. */
static uint32_t async_fault(unsigned v, uint64_t page)
{
	if (apf_core_on_fault(&core, (int)v, page, SLOW, false) != APF_ASYNC)
		return 0;
	uint32_t t = apf_core_take_injection(&core, v, &ring3, fake_page_present, &fvm);
	if (t && fake_u32(&fvm, FAKE_AREA) == KVM_PV_REASON_PAGE_NOT_PRESENT)
		fake_set_u32(&fvm, FAKE_AREA, 0);
	return t;
}

TEST(enable_sends_wake_all)
{
	setup(1);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, VEC) == 0);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0);
	CHECK_EQ_U(fvm.raises[0], 1);
	CHECK_EQ_U(fvm.last_vector[0], VEC);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), KVM_APF_WAKE_ALL_TOKEN);
	CHECK_EQ_U(core.stats.wake_all, 1);
	apf_core_destroy(&core);
}

TEST(invalid_msr_writes_get_gp)
{
	setup(1);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, 0x1ec) == -1);    /* reserved */
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, VEC) == 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE | 0x10) == -1);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE | 0x20) == -1);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN,
			     EN_VALUE | KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT) == -1);
	/* Area outside guest memory (its first 8 bytes, as KVM checks). */
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, 0x100000 | 9) == -1);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, 0x10040 | 9) == -1);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, 0x0 | 9) == -1);
	CHECK(apf_x86_wrmsr(&core, 0, 0x4b564d03, 1) == -1); /* not ours */
	CHECK_EQ_U(core.stats.gp_injected, 8);
	CHECK_EQ_U(fvm.raises[0], 0);
	CHECK(!fvm.bad_access);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0);
	apf_core_destroy(&core);
}

/* What KVM accepts, apfvm accepts (it used to #GP these): any vector,
 * enabling before the vector is set, an area whose 64 bytes straddle the
 * end of memory while the 8 bytes KVM maps are inside. */
TEST(msr_writes_kvm_accepts_are_accepted)
{
	setup(1);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0); /* vector 0 */
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, 14) == 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, 0) == 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, 0xff) == 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, 0x10000 | 9) == 0);
	/* ENABLED without DELIVERY_AS_INT: accepted, and stays disabled. */
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, FAKE_AREA | 1) == 0);
	CHECK(apf_core_on_fault(&core, 0, 1, SLOW, false) == APF_SYNC_DISABLED);
	CHECK_EQ_U(core.stats.gp_injected, 0);
	CHECK(!fvm.bad_access);
	apf_core_destroy(&core);
}

TEST(rdmsr_returns_what_the_guest_wrote)
{
	uint64_t v = 1;
	setup(1);
	enable(0);
	CHECK(apf_x86_rdmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, &v) == 0 && v == EN_VALUE);
	CHECK(apf_x86_rdmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, &v) == 0 && v == VEC);
	CHECK(apf_x86_rdmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, &v) == 0 && v == 0);
	CHECK(apf_x86_rdmsr(&core, 0, 0x10, &v) == -1);
	apf_core_destroy(&core);
}

TEST(policy_goes_async_only_above_the_threshold)
{
	setup(1);
	enable(0);
	CHECK(apf_core_on_fault(&core, 0, 1, 0, false) == APF_SYNC_POLICY);
	CHECK(apf_core_on_fault(&core, 0, 2, THRESHOLD, false) == APF_SYNC_POLICY);
	CHECK_EQ_U(fvm.kicks[0], 0);
	CHECK(apf_core_on_fault(&core, 0, 3, THRESHOLD + 1, false) == APF_ASYNC);
	CHECK_EQ_U(fvm.kicks[0], 1);
	CHECK_EQ_U(core.stats.decisions[APF_SYNC_POLICY], 2);
	apf_core_destroy(&core);
}

TEST(disabled_guest_or_non_vcpu_thread_is_sync)
{
	setup(1);
	CHECK(apf_core_on_fault(&core, 0, 1, SLOW, false) == APF_SYNC_DISABLED);
	enable(0);
	CHECK(apf_core_on_fault(&core, -1, 1, SLOW, false) == APF_SYNC_DISABLED);
	CHECK(apf_core_on_fault(&core, 5, 1, SLOW, false) == APF_SYNC_DISABLED);
	CHECK_EQ_U(fvm.kicks[0], 0);
	apf_core_destroy(&core);
}

TEST(full_round_trip)
{
	setup(1);
	enable(0);
	unsigned raises = fvm.raises[0];
	uint32_t t = async_fault(0, 7);
	REQUIRE(t != 0);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 1);
	CHECK_EQ_U(core.stats.not_present, 1);
	apf_core_on_installed(&core, 7);
	CHECK_EQ_U(fvm.raises[0], raises + 1);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 0);
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	CHECK(!apf_core_retry(&core)); /* nothing waits */
	CHECK_EQ_U(core.stats.retries, 0);
	CHECK_EQ_U(core.stats.decisions[APF_ASYNC], 1);
	apf_core_destroy(&core);
}

/* An ACK routed to the core (apfvm leaves them to KVM; an embedder may
 * not) is what it is to KVM: a prompt to look at the queue, which
 * delivers only once the guest has cleared the token. */
TEST(ack_is_a_prompt_to_deliver)
{
	setup(1);
	enable(0);
	uint32_t t1 = async_fault(0, 7), t2 = async_fault(0, 9);
	REQUIRE(t1 && t2);
	unsigned r = fvm.raises[0];
	apf_core_on_installed(&core, 7);
	apf_core_on_installed(&core, 9);
	CHECK_EQ_U(fvm.raises[0], r + 1);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, 1) == 0);
	CHECK_EQ_U(fvm.raises[0], r + 1); /* token not cleared: still waits */
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, 1) == 0);
	CHECK_EQ_U(fvm.raises[0], r + 2);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t2);
	CHECK_EQ_U(core.stats.acks, 2);
	apf_core_destroy(&core);
}

/* A page-ready whose raise fails is neither lost nor half-delivered: the
 * VMM is told (so the run ends with the error instead of the guest's task
 * waiting until --timeout), the token stays queued and the area clear, and
 * a later attempt delivers it.  It used to be dequeued and marked in
 * flight, so no further page-ready could ever be sent. */
TEST(failed_page_ready_is_reported_and_kept)
{
	setup(1);
	enable(0);
	uint32_t t = async_fault(0, 7);
	REQUIRE(t != 0);
	unsigned raises = fvm.raises[0];
	fvm.raise_err = -5;
	apf_core_on_installed(&core, 7);
	CHECK_EQ_U(fvm.fails, 1);
	CHECK(fvm.last_fail == -5);
	CHECK_EQ_U(core.stats.deliver_errors, 1);
	CHECK_EQ_U(core.stats.ready, 0);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), 0); /* no token without its interrupt */
	CHECK_EQ_U(fvm.raises[0], raises);
	/* It stays queued, and the next retry delivers it. */
	fvm.raise_err = 0;
	CHECK(!apf_core_retry(&core));
	CHECK_EQ_U(fvm.raises[0], raises + 1);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t);
	CHECK_EQ_U(core.stats.ready, 1);
	apf_core_destroy(&core);
}

/* Linux enables async PF before it enables its LAPIC: the MSI of the
 * wake-all is refused (KVM_SIGNAL_MSI returns 0).  The wake-all must wait
 * in the core, not leave its token in the area (which would hold every
 * later page-ready forever) nor end the run; a retry once the LAPIC
 * accepts delivers it. */
TEST(wake_all_waits_while_the_lapic_refuses_it)
{
	setup(1);
	fvm.raise_err = -EAGAIN;
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, VEC) == 0);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), 0);
	CHECK_EQ_U(core.stats.wake_all, 0);
	CHECK_EQ_U(core.stats.refused, 1);
	CHECK_EQ_U(fvm.fails, 0);
	CHECK(apf_core_retry(&core)); /* still refused: still queued */
	CHECK_EQ_U(core.stats.refused, 2);
	fvm.raise_err = 0;
	CHECK(!apf_core_retry(&core));
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), KVM_APF_WAKE_ALL_TOKEN);
	CHECK_EQ_U(core.stats.wake_all, 1);
	/* Then page-readies flow as usual. */
	guest_ack(0);
	uint32_t t = async_fault(0, 3);
	REQUIRE(t != 0);
	apf_core_on_installed(&core, 3);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t);
	CHECK_EQ_U(fvm.fails, 0);
	apf_core_destroy(&core);
}

/* With ACKs reaching the core (apfvm run --apf-trap-acks), page-readies
 * are paced by them: the next waits for the ACK of the one before even
 * when the token is clear, so an ACK that finds the token set is the
 * guest's wrong order (Linux clears, then ACKs), never a new raise. */
TEST(ack_paced_delivery_tells_an_early_ack)
{
	setup(1);
	core.ack_paced = true;
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, VEC) == 0);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0);
	/* Linux's order for the wake-all: clear, then ACK. */
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, 1) == 0);
	uint32_t a = async_fault(0, 1), b = async_fault(0, 2);
	REQUIRE(a && b);
	unsigned r = fvm.raises[0];
	apf_core_on_installed(&core, 1);
	apf_core_on_installed(&core, 2);
	CHECK_EQ_U(fvm.raises[0], r + 1);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), a);
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	CHECK(apf_core_retry(&core)); /* cleared but not ACKed: b waits */
	CHECK_EQ_U(fvm.raises[0], r + 1);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, 1) == 0);
	CHECK_EQ_U(fvm.raises[0], r + 2); /* the ACK delivers b */
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), b);
	CHECK_EQ_U(core.stats.acks_early, 0);
	/* A guest that ACKs before clearing is caught. */
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, 1) == 0);
	CHECK_EQ_U(core.stats.acks_early, 1);
	CHECK_EQ_U(core.stats.acks, 3);
	apf_core_destroy(&core);
}

TEST(not_present_needs_a_guest_that_can_take_it)
{
	static const struct apf_guest_state no_if = { .irqs_enabled = false, .user_mode = true };
	static const struct apf_guest_state ring0 = { .irqs_enabled = true, .user_mode = false };
	static const struct apf_guest_state busy = { .irqs_enabled = true, .user_mode = true,
						     .event_pending = true };
	const struct apf_guest_state *cases[] = { &no_if, &ring0, &busy };

	setup(1);
	enable(0);
	for (unsigned i = 0; i < 3; i++) {
		REQUIRE(apf_core_on_fault(&core, 0, 10 + i, SLOW, false) == APF_ASYNC);
		CHECK(apf_core_take_injection(&core, 0, cases[i], fake_page_present, &fvm) == 0);
	}
	/* Previous not-present not consumed yet (flags still set). */
	fake_set_u32(&fvm, FAKE_AREA, KVM_PV_REASON_PAGE_NOT_PRESENT);
	REQUIRE(apf_core_on_fault(&core, 0, 20, SLOW, false) == APF_ASYNC);
	CHECK(apf_core_take_injection(&core, 0, &ring3, fake_page_present, &fvm) == 0);
	fake_set_u32(&fvm, FAKE_AREA, 0);
	CHECK_EQ_U(core.stats.decisions[APF_SYNC_CANNOT_DELIVER], 4);
	CHECK_EQ_U(core.stats.not_present, 0);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 0);
	/* Page-ready only for injected faults: these pages raise nothing. */
	unsigned raises = fvm.raises[0];
	for (unsigned i = 0; i < 3; i++)
		apf_core_on_installed(&core, 10 + i);
	CHECK_EQ_U(fvm.raises[0], raises);
	apf_core_destroy(&core);
}

TEST(send_always_allows_ring0)
{
	static const struct apf_guest_state ring0 = { .irqs_enabled = true, .user_mode = false };
	setup(1);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_INT, VEC) == 0);
	REQUIRE(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN,
			       EN_VALUE | KVM_ASYNC_PF_SEND_ALWAYS) == 0);
	guest_ack(0);
	REQUIRE(apf_core_on_fault(&core, 0, 1, SLOW, false) == APF_ASYNC);
	CHECK(apf_core_take_injection(&core, 0, &ring0, fake_page_present, &fvm) != 0);
	apf_core_destroy(&core);
}

TEST(page_that_arrived_before_injection_is_not_injected)
{
	setup(1);
	enable(0);
	REQUIRE(apf_core_on_fault(&core, 0, 5, SLOW, false) == APF_ASYNC);
	fvm.present[5] = 1;
	apf_core_on_installed(&core, 5);
	CHECK(apf_core_take_injection(&core, 0, &ring3, fake_page_present, &fvm) == 0);
	CHECK_EQ_U(core.stats.decisions[APF_SYNC_RACED], 1);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA), 0);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 0);
	apf_core_destroy(&core);
}

TEST(repeat_fault_on_a_frame_in_flight_waits)
{
	setup(1);
	enable(0);
	REQUIRE(async_fault(0, 9) != 0);
	unsigned kicks = fvm.kicks[0];
	CHECK(apf_core_on_fault(&core, 0, 9, SLOW, true) == APF_SYNC_REPEAT);
	CHECK_EQ_U(fvm.kicks[0], kicks);
	CHECK_EQ_U(core.stats.not_present, 1);
	apf_core_destroy(&core);
}

TEST(at_most_64_outstanding_then_sync)
{
	uint32_t tokens[APF_CORE_MAX_OUTSTANDING];
	setup(2);
	enable(1);
	for (unsigned i = 0; i < APF_CORE_MAX_OUTSTANDING; i++) {
		tokens[i] = async_fault(1, 100 + i);
		REQUIRE(tokens[i] != 0);
		CHECK(tokens[i] != KVM_APF_WAKE_ALL_TOKEN);
		CHECK_EQ_U(tokens[i] & 0xfff, 1); /* id << 12 | vcpu */
		for (unsigned j = 0; j < i; j++)
			CHECK(tokens[i] != tokens[j]);
	}
	CHECK(apf_core_on_fault(&core, 1, 999, SLOW, false) == APF_SYNC_CAP);
	CHECK_EQ_U(core.stats.outstanding_max, APF_CORE_MAX_OUTSTANDING);
	/* One completes: async again. */
	apf_core_on_installed(&core, 100);
	CHECK(async_fault(1, 1000) != 0);
	apf_core_destroy(&core);
}

TEST(one_page_ready_in_flight_until_the_guest_clears_the_token)
{
	uint32_t t1, t2, t3;
	setup(1);
	enable(0);
	t1 = async_fault(0, 1);
	t2 = async_fault(0, 2);
	t3 = async_fault(0, 3);
	REQUIRE(t1 && t2 && t3);
	unsigned r = fvm.raises[0];
	/* Completions out of order: 3, 1, 2. */
	apf_core_on_installed(&core, 3);
	apf_core_on_installed(&core, 1);
	apf_core_on_installed(&core, 2);
	CHECK_EQ_U(fvm.raises[0], r + 1);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t3);
	/* A retry while the guest has not cleared the token: still waits,
	 * and says so (the VMM retries again). */
	CHECK(apf_core_retry(&core));
	CHECK_EQ_U(fvm.raises[0], r + 1);
	/* Once cleared, the next retry delivers the next one. */
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	CHECK(apf_core_retry(&core)); /* t2 still waits behind t1 */
	CHECK_EQ_U(fvm.raises[0], r + 2);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t1);
	apf_core_on_installed(&core, 99); /* unrelated page: nothing */
	CHECK_EQ_U(fvm.raises[0], r + 2);
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	CHECK(!apf_core_retry(&core)); /* t2 delivered, nothing left */
	CHECK_EQ_U(fvm.raises[0], r + 3);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t2);
	CHECK_EQ_U(core.stats.retries, 3);
	apf_core_destroy(&core);
}

TEST(acks_completions_in_any_order_and_ack_floods)
{
	uint32_t t[3];
	setup(1);
	enable(0);
	for (int i = 0; i < 3; i++)
		REQUIRE((t[i] = async_fault(0, (uint64_t)(20 + i))) != 0);
	unsigned r = fvm.raises[0];
	apf_core_on_installed(&core, 22);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t[2]);
	guest_ack(0);
	apf_core_on_installed(&core, 20);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t[0]);
	guest_ack(0);
	apf_core_on_installed(&core, 21);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t[1]);
	guest_ack(0);
	CHECK_EQ_U(fvm.raises[0], r + 3);
	for (int i = 0; i < 1000; i++)
		CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, 1) == 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_ACK, 2) == 0); /* bit 0 clear */
	CHECK_EQ_U(fvm.raises[0], r + 3); /* nothing queued: nothing raised */
	CHECK_EQ_U(core.stats.acks, 1000);
	apf_core_destroy(&core);
}

TEST(disable_with_faults_in_flight_drops_everything)
{
	setup(1);
	enable(0);
	REQUIRE(async_fault(0, 1) && async_fault(0, 2));
	apf_core_on_installed(&core, 1); /* ready raised, token not yet cleared */
	unsigned r = fvm.raises[0];
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, 0) == 0);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 0);
	CHECK_EQ_U(core.stats.dropped, 1);
	apf_core_on_installed(&core, 2);
	CHECK_EQ_U(fvm.raises[0], r);
	CHECK(apf_core_on_fault(&core, 0, 3, SLOW, false) == APF_SYNC_DISABLED);
	/* Re-enable: a wake-all, since parked tasks may hold stale tokens. */
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0);
	CHECK_EQ_U(fvm.raises[0], r + 1);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), KVM_APF_WAKE_ALL_TOKEN);
	apf_core_destroy(&core);
}

TEST(enabling_twice_resends_wake_all)
{
	setup(1);
	enable(0);
	REQUIRE(async_fault(0, 4) != 0);
	CHECK(apf_x86_wrmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, EN_VALUE) == 0);
	CHECK_EQ_U(core.stats.wake_all, 2);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 0);
	apf_core_destroy(&core);
}

TEST(reset_forgets_the_guest_settings)
{
	uint64_t v;
	setup(1);
	enable(0);
	REQUIRE(async_fault(0, 4) != 0);
	REQUIRE(apf_core_on_fault(&core, 0, 5, SLOW, false) == APF_ASYNC); /* kicked */
	apf_core_reset_vcpu(&core, 0);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 0);
	CHECK(apf_core_take_injection(&core, 0, &ring3, fake_page_present, &fvm) == 0);
	CHECK(apf_x86_rdmsr(&core, 0, MSR_KVM_ASYNC_PF_EN, &v) == 0 && v == 0);
	CHECK(apf_core_on_fault(&core, 0, 6, SLOW, false) == APF_SYNC_DISABLED);
	apf_core_destroy(&core);
}

/* Every fault lands in exactly one decision. */
TEST(decisions_account_for_every_fault)
{
	unsigned faults = 0;
	setup(1);
	enable(0);
	for (uint64_t p = 0; p < 200; p++) {
		uint64_t expected = p % 3 ? SLOW : 0;
		enum apf_decision d = apf_core_on_fault(&core, 0, p, expected, p % 7 == 0);
		faults++;
		if (d == APF_ASYNC) {
			if (p % 5 == 0)
				fvm.present[p] = 1;
			uint32_t t = apf_core_take_injection(&core, 0, &ring3, fake_page_present, &fvm);
			if (t)
				fake_set_u32(&fvm, FAKE_AREA, 0);
		}
		if (p % 2) {
			apf_core_on_installed(&core, p - 1);
			guest_ack(0);
		}
	}
	uint64_t sum = 0;
	for (int d = 0; d < APF_DECISIONS; d++)
		sum += core.stats.decisions[d];
	CHECK_EQ_U(sum, faults);
	CHECK(core.stats.decisions[APF_ASYNC] > 0);
	CHECK(core.stats.decisions[APF_SYNC_POLICY] > 0);
	CHECK(core.stats.decisions[APF_SYNC_REPEAT] > 0);
	CHECK(core.stats.decisions[APF_SYNC_RACED] > 0);
	CHECK(!fvm.bad_access);
	apf_core_destroy(&core);
}

/* The registration arm64 uses (an SMCCC call): the whole area must be
 * guest memory, the interrupt is recorded, wake-all goes out on it, and a
 * not-present needs the same guest state as on x86; disable drops what
 * was outstanding and sends nothing more. */
TEST(enable_entry_point_checks_the_whole_area_and_disable_drops_everything)
{
	setup(1);
	/* 64 bytes from 0x10000 straddle the fake memory's end (0x10020). */
	CHECK(apf_core_enable(&core, 0, 0x10000, 64, 48, false) < 0);
	CHECK_EQ_U(fvm.raises[0], 0);
	REQUIRE(apf_core_enable(&core, 0, FAKE_AREA, 64, 48, false) == 0);
	CHECK_EQ_U(fvm.raises[0], 1); /* wake-all */
	CHECK_EQ_U(fvm.last_vector[0], 48);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), APF_WAKE_ALL_TOKEN);
	guest_ack(0);
	/* EL1 (not user mode) without SEND_AT_EL1: synchronous. */
	static const struct apf_guest_state el1 = { .irqs_enabled = true, .user_mode = false };
	REQUIRE(apf_core_on_fault(&core, 0, 3, SLOW, false) == APF_ASYNC);
	CHECK_EQ_U(apf_core_take_injection(&core, 0, &el1, fake_page_present, &fvm), 0);
	uint32_t t = async_fault(0, 4);
	CHECK(t != 0);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 1);
	apf_core_disable(&core, 0);
	CHECK_EQ_U(apf_core_outstanding(&core, 0), 0);
	fvm.present[4] = 1;
	apf_core_on_installed(&core, 4);
	CHECK_EQ_U(fvm.raises[0], 1); /* nothing for the dropped fault */
	CHECK_EQ_U(apf_core_on_fault(&core, 0, 5, SLOW, false), APF_SYNC_DISABLED);
	CHECK(!fvm.bad_access);
}

/* apf_core_ack is the prompt the arm64 ACK call gives: a page-ready that
 * waited for the token slot goes out at once. */
TEST(ack_entry_point_delivers_what_waited)
{
	setup(1);
	REQUIRE(apf_core_enable(&core, 0, FAKE_AREA, 64, 48, true) == 0);
	guest_ack(0);
	uint32_t t1 = async_fault(0, 1), t2 = async_fault(0, 2);
	REQUIRE(t1 && t2);
	fvm.present[1] = fvm.present[2] = 1;
	apf_core_on_installed(&core, 1);
	apf_core_on_installed(&core, 2);
	CHECK_EQ_U(fvm.raises[0], 2); /* wake-all, then t1; t2 waits for the slot */
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t1);
	fake_set_u32(&fvm, FAKE_AREA + 4, 0);
	apf_core_ack(&core, 0);
	CHECK_EQ_U(fvm.raises[0], 3);
	CHECK_EQ_U(fake_u32(&fvm, FAKE_AREA + 4), t2);
	CHECK_EQ_U(core.stats.acks, 1);
}

TEST_MAIN(T(enable_entry_point_checks_the_whole_area_and_disable_drops_everything),
	  T(ack_entry_point_delivers_what_waited), T(enable_sends_wake_all), T(failed_page_ready_is_reported_and_kept),
	  T(wake_all_waits_while_the_lapic_refuses_it), T(ack_paced_delivery_tells_an_early_ack), T(invalid_msr_writes_get_gp), T(msr_writes_kvm_accepts_are_accepted), T(rdmsr_returns_what_the_guest_wrote),
	  T(policy_goes_async_only_above_the_threshold), T(disabled_guest_or_non_vcpu_thread_is_sync),
	  T(full_round_trip), T(ack_is_a_prompt_to_deliver), T(not_present_needs_a_guest_that_can_take_it), T(send_always_allows_ring0),
	  T(page_that_arrived_before_injection_is_not_injected),
	  T(repeat_fault_on_a_frame_in_flight_waits), T(at_most_64_outstanding_then_sync),
	  T(one_page_ready_in_flight_until_the_guest_clears_the_token),
	  T(acks_completions_in_any_order_and_ack_floods),
	  T(disable_with_faults_in_flight_drops_everything), T(enabling_twice_resends_wake_all),
	  T(reset_forgets_the_guest_settings), T(decisions_account_for_every_fault))
