#include "desc.h"

#include "kernel.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp0, rsp1, rsp2;
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss) == 104, "TSS layout");

struct gate {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));
_Static_assert(sizeof(struct gate) == 16, "gate layout");

struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

static struct tss tss;
static struct gate idt[256];
static uint64_t gdt[7] = {
	0,
	0x00af9a000000ffffull, /* 0x08 kernel code, 64-bit */
	0x00cf92000000ffffull, /* 0x10 kernel data */
	0x00cff2000000ffffull, /* 0x18 user data, DPL 3 */
	0x00affa000000ffffull, /* 0x20 user code, 64-bit, DPL 3 */
	0, 0,                  /* 0x28 TSS (16 bytes), filled at init */
};

extern char trap_stubs[];
void gdt_load(const struct dtr *d);

void desc_set_gate(unsigned v, int dpl3)
{
	uint64_t off = (uint64_t)trap_stubs + 16u * v;
	struct gate *g = &idt[v];

	g->off_lo = (uint16_t)off;
	g->sel = SEL_KCODE;
	g->ist = 0;
	g->type = dpl3 ? 0xee : 0x8e; /* present interrupt gate, DPL 3 / 0 */
	g->off_mid = (uint16_t)(off >> 16);
	g->off_hi = (uint32_t)(off >> 32);
	g->zero = 0;
}

void desc_set_kernel_stack(uint64_t rsp0)
{
	tss.rsp0 = rsp0;
}

void desc_init(void)
{
	uint64_t base = (uint64_t)&tss;
	uint64_t limit = sizeof(tss) - 1;
	struct dtr gdtr = { sizeof(gdt) - 1, (uint64_t)gdt };
	struct dtr idtr = { sizeof(idt) - 1, (uint64_t)idt };

	tss.iomap_base = sizeof(tss); /* no I/O bitmap: ring 3 has no ports */
	gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
		 ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
	gdt[6] = base >> 32;
	gdt_load(&gdtr);
	__asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
	__asm__ volatile("lidt %0" ::"m"(idtr));
}
