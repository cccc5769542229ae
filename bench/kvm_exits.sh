#!/bin/bash
# Where the vCPU's time goes outside guest mode, from KVM's tracepoints:
# for each apfvm binary and --apf mode, one run of
#   apfvm run --apf MODE --lazy 2M --latency 1ms --workload compute:1,scan:1
# (512 faults) with kvm_exit/kvm_entry traced, then per exit reason the
# count and the time from the exit to the next entry.  Needs root (tracefs);
# runs in the emulated host where /dev/kvm does not work (scripts/kvm_where.sh).
#
# Usage: bench/kvm_exits.sh [APFVM_BINARY...]     (default: build/apfvm)
# Example (before/after a change): bench/kvm_exits.sh build/apfvm.old build/apfvm
# Produces the table "The host's share" in docs/async-pf.md.
set -eu
cd "$(dirname "$0")/.."
APFVM=${APFVM:-build/apfvm}
. scripts/kvm_where.sh
kvm_place_self "$APFVM" bench/kvm_exits.sh "$@"
[ $# -gt 0 ] || set -- "$APFVM"

T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs nodev $T
out=${KVM_EXITS_DIR:-build/kvm_exits}
mkdir -p "$out"
echo "Platform: $($APFVM platform)"
for bin in "$@"; do
	for mode in kernel user; do
		echo 0 > $T/tracing_on
		echo 32768 > $T/buffer_size_kb
		for e in $T/events/*/enable; do echo 0 > "$e" 2>/dev/null || true; done
		echo > $T/trace
		for e in kvm_exit kvm_entry; do echo 1 > $T/events/kvm/$e/enable; done
		echo 1 > $T/tracing_on
		echo "== $bin --apf $mode"
		"$bin" run --apf "$mode" --lazy 2M --latency 1ms --workload compute:1,scan:1 2>&1 |
			grep -E "kvm  |compute  *runtime"
		echo 0 > $T/tracing_on
		f="$out/$(basename "$bin")-$mode.txt"
		cat $T/trace > "$f"
		awk '
		{ match($0, /[0-9]+\.[0-9]+:/); t = substr($0, RSTART, RLENGTH - 1) + 0 }
		/kvm_exit: vcpu 0 reason/ {
			match($0, /reason [A-Za-z_0-9]+/); r = substr($0, RSTART + 7, RLENGTH - 7)
			if (entry) guest += t - entry
			exit_t = t; cur = r; n[r]++
		}
		/kvm_entry: vcpu 0/ {
			if (exit_t) { out[cur] += t - exit_t; total += t - exit_t }
			entry = t; exit_t = 0
		}
		END {
			printf "  in guest mode %.3f s, out %.3f s\n", guest, total
			for (r in out)
				printf "  %-10s %6d exits %9.1f us out each %8.3f s\n", r, n[r], out[r] / n[r] * 1e6, out[r]
		}' "$f"
	done
done
