/* The parts of util/sha256.h that do not depend on the implementation;
 * included by each. */
bool sha256_matches(const void *data, size_t len, const struct sha256 *want)
{
	struct sha256 got;
	uint8_t diff = 0;

	sha256(data, len, &got);
	for (int i = 0; i < SHA256_LEN; i++)
		diff |= (uint8_t)(got.b[i] ^ want->b[i]);
	return diff == 0;
}

void sha256_hex(const struct sha256 *d, char out[2 * SHA256_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < SHA256_LEN; i++) {
		out[2 * i] = hex[d->b[i] >> 4];
		out[2 * i + 1] = hex[d->b[i] & 15];
	}
	out[2 * SHA256_LEN] = '\0';
}
