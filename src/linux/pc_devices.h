/*
 * pc_devices: the few PC devices an unmodified Linux guest needs from the
 * VMM, at their legacy I/O ports.  The interrupt controllers and the PIT
 * are KVM's (in-kernel); this is the rest:
 *
 *  - COM1, a 16550A UART at 0x3f8-0x3ff: what the guest transmits goes to
 *    the console stream; the receiver is always empty.  Registers read
 *    back, the FIFO identifies as a 16550A, loopback mirrors the modem
 *    lines (Linux's probe checks both).  No interrupt is raised: Linux's
 *    console writes poll the line status, and its tty layer falls back to
 *    a timer when the transmitter interrupt does not come.
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

struct pc_devices {
	FILE *console;       /* the UART's output, or NULL to drop it */
	bool reset;          /* the guest asked for a reset (its exit) */
	uint64_t console_bytes;
	/* 16550A registers */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	bool fifo;
};

/* One port access of `size` bytes (1, 2 or 4); `data` is read or written
 * as the CPU does, little-endian. */
void pc_devices_io(struct pc_devices *d, uint16_t port, bool out, unsigned size, uint8_t *data);

#endif
