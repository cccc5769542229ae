/*
 * What the libFuzzer targets share: an invariant that, when broken,
 * aborts so that libFuzzer records the input.
 */
#ifndef APFVM_TEST_FUZZ_H
#define APFVM_TEST_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK_OR_DIE(c)                                                                  \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "invariant failed: %s (line %d)\\n", #c, __LINE__); \
			abort();                                                         \
		}                                                                        \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
