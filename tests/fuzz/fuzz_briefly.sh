#!/bin/bash
# The fuzz tier of `make test`: every fuzz target for a short while.
cd "$(dirname "$0")/../.."
status=0
for t in build/fuzz_guest_input build/fuzz_options build/fuzz_image_header build/fuzz_bzimage build/fuzz_snapshot \
	build/fuzz_obj_manifest build/fuzz_page_proto build/fuzz_tcp_source build/fuzz_workset; do
	tests/fuzz/run_fuzz.sh "$t" "${FUZZ_TEST_SECONDS:-10}" || status=1
done
exit $status
