#!/bin/bash
# make bench: the side-by-side comparison of the modes (table, CSV, PNG),
# then the pager's service rate.  Runs on /dev/kvm where it works,
# otherwise inside the emulated KVM host (scripts/kvm_where.sh); arguments
# go to `apfvm bench` (see its --help).
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
BENCH_PAGER=${BENCH_PAGER:-build/bench_pager}
. scripts/kvm_where.sh
kvm_place_self "$APFVM" scripts/bench.sh "$@"
mkdir -p build/bench
$APFVM bench --csv build/bench/modes.csv "$@"
bench/plot.sh build/bench/modes.csv build/bench/modes.png
echo
$BENCH_PAGER --csv build/bench/pager.csv
