/*
 * units: parsing of the sizes and durations users type on the command line.
 * Pure functions, no allocation; each returns 0 or -EINVAL (malformed) /
 * -ERANGE (does not fit 64 bits) and leaves *out untouched on error.
 * Fractions ("1.5ms") take at most 9 digits after the point.
 */
#ifndef APFVM_UNITS_H
#define APFVM_UNITS_H

#include <stdint.h>

/* "4096", "64K", "64M", "1G" (binary multiples, case-insensitive, optional
 * trailing "B" or "iB": "64MiB").  Bytes out. */
int units_parse_size(const char *s, uint64_t *out);

/* "0", "250us", "1ms", "1.5ms", "2s" (also "ns").  A unit is required for
 * nonzero values.  Nanoseconds out. */
int units_parse_duration(const char *s, uint64_t *out_ns);

/* A duration, or a uniform range "MIN-MAX" ("200us-5ms") with MIN <= MAX. */
int units_parse_duration_range(const char *s, uint64_t *min_ns, uint64_t *max_ns);

/* Unsigned decimal or 0x-hex integer, whole string. */
int units_parse_u64(const char *s, uint64_t *out);

/* Formats n bytes as "64M"/"4K"/"123" into buf (at least 32 bytes). */
void units_format_size(uint64_t n, char *buf, unsigned long len);

#endif
