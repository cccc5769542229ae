/* console: hypercalls (made by the architecture: arch_hcall), the console
 * and failures. */
#include <stdarg.h>

#include "kernel.h"

/* One block: the kernel is single-threaded with interrupts off. */
static struct apf_hcall block;

void hcall(uint32_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	block.nr = nr;
	block.ret = 0;
	block.a0 = a0;
	block.a1 = a1;
	block.a2 = a2;
	arch_hcall(&block);
}

static uint64_t kstrlen(const char *s)
{
	uint64_t n = 0;
	while (s[n])
		n++;
	return n;
}

void kputs(const char *s)
{
	hcall(APF_HC_CONSOLE, (uint64_t)s, kstrlen(s), 0);
}

static char *put_u64(char *p, char *end, uint64_t v, unsigned base)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && p < end)
		*p++ = tmp[--n];
	return p;
}

/* Minimal printf: %s %c %d %u %x %lu %lx %ld %llu %llx %p. Boot-time only. */
void kprintf(const char *fmt, ...)
{
	char buf[256], *p = buf, *end = buf + sizeof(buf) - 1;
	va_list ap;

	va_start(ap, fmt);
	for (; *fmt && p < end; fmt++) {
		if (*fmt != '%') {
			*p++ = *fmt;
			continue;
		}
		fmt++;
		int longs = 0;
		while (*fmt == 'l') {
			longs++;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s && p < end)
				*p++ = *s++;
			break;
		}
		case 'c':
			*p++ = (char)va_arg(ap, int);
			break;
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				*p++ = '-';
				v = -v;
			}
			p = put_u64(p, end, (uint64_t)v, 10);
			break;
		}
		case 'u':
			p = put_u64(p, end, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10);
			break;
		case 'x':
			p = put_u64(p, end, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16);
			break;
		case 'p':
			p = put_u64(p, end, (uint64_t)va_arg(ap, void *), 16);
			break;
		case '%':
			*p++ = '%';
			break;
		default:
			*p++ = '?';
			break;
		}
	}
	va_end(ap);
	*p = '\0';
	kputs(buf);
}

void kassert_fail(const char *file, int line, const char *expr)
{
	hcall(APF_HC_ASSERT, (uint64_t)file, (uint64_t)line, (uint64_t)expr);
	arch_stop();
}

void kdone(uint64_t status)
{
	hcall(APF_HC_DONE, status, 0, 0);
	arch_stop();
}
