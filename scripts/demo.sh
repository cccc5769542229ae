#!/bin/bash
# apfvm demo: one lazily served VM, three ways to serve its page faults, side
# by side.  A compute task shares the guest with a scan of a 2 MiB lazy
# region served from an image with 10 ms per page (remote or slow storage).
# Under a minute on /dev/kvm, about two inside the emulated host.
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
. scripts/kvm_where.sh
kvm_place_self "$APFVM" scripts/demo.sh "$@"
out=${DEMO_DIR:-build/demo}
mkdir -p "$out"

printf '\033[1m%s\033[0m\n' "apfvm demo: compute:1 next to a scan of a 2 MiB lazy region, 10 ms per page fetch"
echo "Each mode runs the same guest and workload; 'compute/alone' is the compute task's"
echo "rate relative to running with nothing else, 'scan s' is how long the scan took."
echo
$APFVM bench --latencies 10ms --modes off,kernel,user --runs 1 --lazy 2M --csv "$out/demo.csv"

printf '\n\033[1m%s\033[0m\n' "What each row means"
awk -F, 'NR > 1 {
	pct = 100 * $5; scan = $8; faults = $11; async = $12; rt = $14
	if ($3 == "off")
		printf "  off:    every one of the %d faults blocks the whole vCPU for the fetch, so compute\n          keeps only %.0f%% of its rate and the scan needs %.1f s.\n", faults, pct, scan
	else if ($3 == "kernel")
		printf "  kernel: the host kernel'"'"'s KVM tells the guest \"not present\" and later \"ready\" (%d async\n          faults); the guest runs compute meanwhile: %.0f%% of its rate, scan %.1f s.\n", async, pct, scan
	else if ($3 == "user")
		printf "  user:   apfvm itself is the host side, same guest ABI, deciding per fault (%d of %d\n          async): %.0f%% of its rate, scan %.1f s; each async round trip costs the guest ~%.0f us in its handlers.\n", async, faults, pct, scan, rt
}' "$out/demo.csv"
echo
echo "Platform: $($APFVM platform). Figures from another platform are not comparable;"
echo "compare the rows of one run.  Reproduce any row with 'apfvm run'; full comparison:"
echo "'make bench'.  CSV: $out/demo.csv"
