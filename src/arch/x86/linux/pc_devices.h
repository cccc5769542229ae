/*
 * pc_devices: the few PC devices an unmodified Linux guest needs from the
 * VMM, at their legacy I/O ports.  The interrupt controllers and the PIT
 * are KVM's (in-kernel); this is the rest:
 *
 *  - COM1, a 16550A UART at 0x3f8-0x3ff: what the guest transmits goes to
 *    the console stream; the receiver is always empty.  Registers read
 *    back, the FIFO identifies as a 16550A, loopback mirrors the modem
 *    lines (Linux's probe checks both).  The transmitter-empty interrupt
 *    (IRQ 4) is raised, as a level on the `irq` callback, while it is
 *    enabled and pending; reading IIR or writing THR acknowledges it (the
 *    16550's rules), and a byte "sent" makes it pending again: Linux's tty
 *    layer sends userspace output on it.
 *  - the i8042 keyboard controller at 0x60/0x64: empty buffers; the reset
 *    command (0xfe to 0x64, Linux's `reboot=k`) ends the run;
 *  - every other port: reads return all ones, writes are ignored (an
 *    empty ISA bus), so probes for absent hardware find nothing.
 *
 * Everything the guest writes is untrusted and only ever changes this
 * state or the console output.
 */
#ifndef APFVM_PC_DEVICES_H
#define APFVM_PC_DEVICES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PC_COM1_IRQ 4

struct pc_devices {
	FILE *console;       /* the UART's output, or NULL to drop it */
	/* Sets interrupt line `line` to `level` (KVM_IRQ_LINE); NULL: none. */
	void (*irq)(void *ctx, unsigned line, bool level);
	void *irq_ctx;
	bool reset;          /* the guest asked for a reset (its exit) */
	uint64_t console_bytes;
	/* 16550A registers */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	bool fifo;
	bool thre_pending;   /* transmitter-empty interrupt not yet acknowledged */
	bool irq_level;      /* the level last set on PC_COM1_IRQ */
};

/* One port access of `size` bytes (1, 2 or 4); `data` is read or written
 * as the CPU does, little-endian. */
void pc_devices_io(struct pc_devices *d, uint16_t port, bool out, unsigned size, uint8_t *data);

#endif
