#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int units_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return -EINVAL;
	}
	for (; *s; s++) {
		unsigned d;
		if (isdigit((unsigned char)*s))
			d = (unsigned)(*s - '0');
		else if (base == 16 && isxdigit((unsigned char)*s))
			d = (unsigned)(tolower((unsigned char)*s) - 'a' + 10);
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

/* Parses "DIGITS[.DIGITS]" (at most 9 fraction digits) at *sp into an
 * integer mantissa and a count of fraction digits; advances *sp past it. */
static int parse_decimal(const char **sp, uint64_t *mant, unsigned *frac_digits)
{
	const char *s = *sp;
	uint64_t v = 0;
	unsigned frac = 0, ndig = 0;
	int seen_dot = 0;

	for (;; s++) {
		if (*s == '.' && !seen_dot) {
			seen_dot = 1;
			continue;
		}
		if (!isdigit((unsigned char)*s))
			break;
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		ndig++;
		if (seen_dot && ++frac > 9)
			return -EINVAL; /* finer than a nanosecond of a second */
	}
	if (ndig == 0 || (seen_dot && frac == 0))
		return -EINVAL;
	*mant = v;
	*frac_digits = frac;
	*sp = s;
	return 0;
}

/* value = mant / 10^frac * mult, exact integer required. */
static int scale(uint64_t mant, unsigned frac, uint64_t mult, uint64_t *out)
{
	uint64_t div = 1;
	for (unsigned i = 0; i < frac; i++)
		div *= 10;
	if (mult && mant > UINT64_MAX / mult)
		return -ERANGE;
	uint64_t v = mant * mult;
	if (v % div)
		return -EINVAL; /* e.g. "1.5" bytes or "0.5ns" */
	*out = v / div;
	return 0;
}

int units_parse_size(const char *s, uint64_t *out)
{
	uint64_t mant, mult = 1;
	unsigned frac;
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse_decimal(&s, &mant, &frac);
	if (rc)
		return rc;
	switch (toupper((unsigned char)*s)) {
	case 'K': mult = 1ull << 10; s++; break;
	case 'M': mult = 1ull << 20; s++; break;
	case 'G': mult = 1ull << 30; s++; break;
	case 'T': mult = 1ull << 40; s++; break;
	default: break;
	}
	if (mult > 1 && (s[0] == 'i' || s[0] == 'I') && (s[1] == 'B' || s[1] == 'b'))
		s += 2;
	else if (*s == 'B' || *s == 'b')
		s++;
	if (*s)
		return -EINVAL;
	return scale(mant, frac, mult, out);
}

int units_parse_duration(const char *s, uint64_t *out_ns)
{
	uint64_t mant, mult;
	unsigned frac;
	int rc;

	if (!s)
		return -EINVAL;
	rc = parse_decimal(&s, &mant, &frac);
	if (rc)
		return rc;
	if (!strcmp(s, "ns"))
		mult = 1;
	else if (!strcmp(s, "us"))
		mult = 1000;
	else if (!strcmp(s, "ms"))
		mult = 1000000;
	else if (!strcmp(s, "s"))
		mult = 1000000000;
	else if (!*s && mant == 0)
		mult = 1;
	else
		return -EINVAL;
	return scale(mant, frac, mult, out_ns);
}

int units_parse_duration_range(const char *s, uint64_t *min_ns, uint64_t *max_ns)
{
	char buf[64];
	const char *dash;
	uint64_t lo, hi;
	int rc;

	if (!s)
		return -EINVAL;
	dash = strchr(s, '-');
	if (!dash) {
		rc = units_parse_duration(s, &lo);
		if (rc)
			return rc;
		*min_ns = *max_ns = lo;
		return 0;
	}
	if ((size_t)(dash - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, (size_t)(dash - s));
	buf[dash - s] = '\0';
	rc = units_parse_duration(buf, &lo);
	if (!rc)
		rc = units_parse_duration(dash + 1, &hi);
	if (rc)
		return rc;
	if (lo > hi)
		return -EINVAL;
	*min_ns = lo;
	*max_ns = hi;
	return 0;
}

void units_format_size(uint64_t n, char *buf, unsigned long len)
{
	static const char suffix[] = "KMGT";
	int i = -1;

	while (n && n % 1024 == 0 && i < 3) {
		n /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%llu", (unsigned long long)n);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)n, suffix[i]);
}
