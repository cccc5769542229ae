/* The PC devices a Linux guest probes: the 16550A as Linux's 8250 driver
 * identifies it, the console output, the i8042 reset, absent ports. */
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "arch/x86/linux/pc_devices.h"

static uint8_t in8(struct pc_devices *d, uint16_t port)
{
	uint8_t v = 0x5a;
	pc_devices_io(d, port, false, 1, &v);
	return v;
}

static void out8(struct pc_devices *d, uint16_t port, uint8_t v)
{
	pc_devices_io(d, port, true, 1, &v);
}

TEST(uart_answers_linux_8250_probe_as_a_16550a)
{
	struct pc_devices d;
	memset(&d, 0, sizeof(d));
	out8(&d, 0x3f9, 0x0f);                  /* IER reads back */
	CHECK_EQ_U(in8(&d, 0x3f9), 0x0f);
	out8(&d, 0x3fa, 0x01);                  /* FIFO on: IIR bits 7-6 = 3 */
	CHECK_EQ_U(in8(&d, 0x3fa) >> 6, 3);
	CHECK_EQ_U(in8(&d, 0x3fa) & 1, 1);      /* no interrupt pending */
	CHECK_EQ_U(in8(&d, 0x3fd) & 0x60, 0x60); /* transmitter empty */
	out8(&d, 0x3fc, 0x1a);                  /* loopback, OUT2, RTS */
	CHECK_EQ_U(in8(&d, 0x3fe) & 0xf0, 0x90); /* DCD and CTS mirror them */
	out8(&d, 0x3ff, 0xa5);                  /* scratch */
	CHECK_EQ_U(in8(&d, 0x3ff), 0xa5);
	out8(&d, 0x3fb, 0x80);                  /* DLAB: divisor latch */
	out8(&d, 0x3f8, 0x01);
	out8(&d, 0x3f9, 0x00);
	CHECK_EQ_U(in8(&d, 0x3f8), 0x01);
	CHECK_EQ_U(d.console_bytes, 0);         /* latch writes are not output */
}

TEST(uart_output_reaches_the_console_escaped)
{
	struct pc_devices d;
	char buf[64] = "";
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	REQUIRE(f != NULL);
	memset(&d, 0, sizeof(d));
	d.console = f;
	const char *s = "ok\r\n\x1b[";
	for (size_t i = 0; i < strlen(s); i++)
		out8(&d, 0x3f8, (uint8_t)s[i]);
	out8(&d, 0x3fc, 0x10);                  /* loopback: nothing leaves */
	out8(&d, 0x3f8, 'x');
	fclose(f);
	CHECK(strcmp(buf, "ok\n\\x1b[") == 0);
	CHECK_EQ_U(d.console_bytes, 6);
}

TEST(i8042_reset_ends_the_run_and_absent_ports_read_all_ones)
{
	struct pc_devices d;
	uint8_t w[4];
	memset(&d, 0, sizeof(d));
	CHECK_EQ_U(in8(&d, 0x64), 0);           /* buffers empty */
	out8(&d, 0x64, 0xaa);                   /* another command: nothing */
	CHECK(!d.reset);
	out8(&d, 0x64, 0xfe);
	CHECK(d.reset);
	CHECK_EQ_U(in8(&d, 0x2f8), 0xff);       /* COM2 is absent */
	memset(w, 0, sizeof(w));
	pc_devices_io(&d, 0xcfc, false, 4, w);  /* no PCI either */
	CHECK(w[0] == 0xff && w[3] == 0xff);
	pc_devices_io(&d, 0x3f8, false, 2, w);  /* a 16-bit access to the UART: absent */
	CHECK(w[0] == 0xff && w[1] == 0xff);
}

static int levels[8], nlevels;

static void record_irq(void *ctx, unsigned line, bool level)
{
	(void)ctx;
	CHECK_EQ_U(line, PC_COM1_IRQ);
	if (nlevels < 8)
		levels[nlevels++] = level;
}

/* The transmitter-empty interrupt, as Linux's tty layer uses it: raised
 * when enabled with the transmitter empty, acknowledged by reading IIR,
 * raised again by each byte sent, dropped when disabled. */
TEST(uart_raises_the_transmitter_empty_interrupt)
{
	struct pc_devices d;
	memset(&d, 0, sizeof(d));
	d.irq = record_irq;
	nlevels = 0;
	out8(&d, 0x3f9, 0x02);                  /* IER.THRI */
	REQUIRE(nlevels == 1);
	CHECK_EQ_U(levels[0], 1);
	CHECK_EQ_U(in8(&d, 0x3fa) & 0x0f, 0x02); /* IIR: THRE, acknowledged */
	CHECK_EQ_U(levels[1], 0);
	CHECK_EQ_U(in8(&d, 0x3fa) & 0x0f, 0x01); /* nothing pending now */
	out8(&d, 0x3f8, 'a');                   /* a byte sent: empty again */
	CHECK_EQ_U(levels[2], 1);
	out8(&d, 0x3f9, 0x00);                  /* disabled: line drops */
	CHECK_EQ_U(levels[3], 0);
	out8(&d, 0x3f8, 'b');                   /* not enabled: no interrupt */
	CHECK_EQ_U(nlevels, 4);
}

TEST_MAIN(T(uart_answers_linux_8250_probe_as_a_16550a), T(uart_output_reaches_the_console_escaped),
	  T(uart_raises_the_transmitter_empty_interrupt),
	  T(i8042_reset_ends_the_run_and_absent_ports_read_all_ones))
