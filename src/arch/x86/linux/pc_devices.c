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
	IIR_THRE = 0x02,
	IER_THRI = 0x02,
	IIR_FIFO = 0xc0,
	FCR_ENABLE = 0x01,
};

/* IRQ 4 follows "THRE interrupt enabled and pending". */
static void uart_update_irq(struct pc_devices *d)
{
	bool level = (d->ier & IER_THRI) && d->thre_pending;
	if (level != d->irq_level && d->irq)
		d->irq(d->irq_ctx, PC_COM1_IRQ, level);
	d->irq_level = level;
}

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
		if (!(d->lcr & LCR_DLAB))
			d->thre_pending = true; /* sent at once: empty again */
		break;
	case 1:
		if (d->lcr & LCR_DLAB) {
			d->dlm = v;
		} else {
			/* Enabling it while the transmitter is empty raises it. */
			if ((v & IER_THRI) && !(d->ier & IER_THRI))
				d->thre_pending = true;
			d->ier = v & 0x0f;
		}
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
		if ((d->ier & IER_THRI) && d->thre_pending) {
			d->thre_pending = false; /* reading IIR acknowledges it */
			return (uint8_t)((d->fifo ? IIR_FIFO : 0) | IIR_THRE);
		}
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
		uart_update_irq(d);
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
