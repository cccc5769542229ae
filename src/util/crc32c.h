/* crc32c: the Castagnoli CRC (iSCSI, ext4), for snapshot checksums. */
#ifndef APFVM_CRC32C_H
#define APFVM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC of len bytes, continuing from crc (0 to start). */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
