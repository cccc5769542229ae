#include "pc_devices.h"

#include <string.h>

enum {
	COM1 = 0x3f8,
	I8042_DATA = 0x60,
	I8042_CMD = 0x64,
	I8042_RESET = 0xfe,
	LCR_DLAB = 0x80,
	MCR_LOOP = 0x10,
	LSR_THRE_TEMT = 0x60,
	IIR_NONE = 0x01,
	IIR_FIFO = 0xc0,
	FCR_ENABLE = 0x01,
};

static void uart_out(struct pc_devices *d, unsigned reg, uint8_t v)
{
	switch (reg) {
	case 0:
		if (d->lcr & LCR_DLAB) {
			d->dll = v;
		} else if (!(d->mcr & MCR_LOOP) && d->console) {
			/* Printable text, newlines and tabs as they are; the
			 * rest escaped: the guest decides what reaches a
			 * terminal only within these. */
			if ((v >= 0x20 && v < 0x7f) || v == '\n' || v == '\t')
				fputc(v, d->console);
			else if (v != '\r')
				fprintf(d->console, "\\x%02x", v);
			if (v == '\n')
				fflush(d->console);
			d->console_bytes++;
		}
		break;
	case 1:
		if (d->lcr & LCR_DLAB)
			d->dlm = v;
		else
			d->ier = v & 0x0f;
		break;
	case 2:
		d->fifo = v & FCR_ENABLE;
		break;
	case 3:
		d->lcr = v;
		break;
	case 4:
		d->mcr = v & 0x1f;
		break;
	case 7:
		d->scr = v;
		break;
	default: /* LSR, MSR: read-only */
		break;
	}
}

static uint8_t uart_in(struct pc_devices *d, unsigned reg)
{
	switch (reg) {
	case 0:
		return d->lcr & LCR_DLAB ? d->dll : 0; /* nothing received */
	case 1:
		return d->lcr & LCR_DLAB ? d->dlm : d->ier;
	case 2:
		return (uint8_t)((d->fifo ? IIR_FIFO : 0) | IIR_NONE);
	case 3:
		return d->lcr;
	case 4:
		return d->mcr;
	case 5:
		return LSR_THRE_TEMT; /* transmitter always empty */
	case 6:
		if (d->mcr & MCR_LOOP) /* DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
			return (uint8_t)((d->mcr & 1 ? 0x20 : 0) | (d->mcr & 2 ? 0x10 : 0) |
					 (d->mcr & 4 ? 0x40 : 0) | (d->mcr & 8 ? 0x80 : 0));
		return 0xb0; /* DCD, DSR, CTS */
	default:
		return d->scr;
	}
}

void pc_devices_io(struct pc_devices *d, uint16_t port, bool out, unsigned size, uint8_t *data)
{
	if (port >= COM1 && port < COM1 + 8 && size == 1) {
		if (out)
			uart_out(d, port - COM1, data[0]);
		else
			data[0] = uart_in(d, port - COM1);
		return;
	}
	if ((port == I8042_DATA || port == I8042_CMD) && size == 1) {
		if (out && port == I8042_CMD && data[0] == I8042_RESET)
			d->reset = true;
		else if (!out)
			data[0] = 0; /* both buffers empty */
		return;
	}
	if (!out)
		memset(data, 0xff, size);
}
