#!/bin/bash
# End-to-end tests of the apfvm command line: help, mkimage, a real run
# with --stats-json, and bad input.  Bad input must give a clear message on
# stderr and exit status 1 or 2: never success, a crash (>= 128) or a hang.
# Prints "ok NAME" / "FAIL NAME: why" / "SKIP NAME: why" lines.
set -u
APFVM=${APFVM:-build/apfvm}
tmp=$(mktemp -d /tmp/apfvm-e2e.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
have_kvm=1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || have_kvm=0

. tests/e2e/lib_cli.sh

# json_num FILE KEY: the first number after "KEY":
json_num() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | sed 's/.*: *//'; }

# --- help and usage --------------------------------------------------
if $APFVM --help | grep -q "Usage: apfvm COMMAND"; then ok help; else fail help "no usage"; fi
if $APFVM run --help | grep -q -- "--stats-json"; then ok run_help; else fail run_help "no options"; fi
if $APFVM mkimage --help | grep -q -- "--size"; then ok mkimage_help; else fail mkimage_help "no options"; fi
# Where /dev/kvm is, the KVM behind it; where not, that it is missing (a
# module alone is no KVM to run on).
if { [ -e /dev/kvm ] && $APFVM platform | grep -qE '^x86-64, (PVM|AMD SVM|Intel VMX|KVM)'; } ||
	{ [ ! -e /dev/kvm ] && $APFVM platform | grep -qE '^x86-64, no /dev/kvm'; }; then
	ok platform_named
else
	fail platform_named "'$($APFVM platform)' names no platform"
fi
expect_error platform_extra_argument "Usage: apfvm platform" $APFVM platform --frob
expect_error no_command "Usage" $APFVM
expect_error unknown_command "unknown command 'frob'" $APFVM frob
expect_error unknown_option "unknown option '--frobnicate'" $APFVM run --frobnicate

# --- mkimage ---------------------------------------------------------
if $APFVM mkimage --size 8M --seed 42 "$tmp/img" >/dev/null &&
	[ "$(stat -c %s "$tmp/img")" -eq $((8 * 1024 * 1024 + 4096)) ]; then
	ok mkimage_writes_header_and_data
else
	fail mkimage_writes_header_and_data "wrong size or failure"
fi
expect_error mkimage_needs_size "--size is required" $APFVM mkimage "$tmp/x"
expect_error mkimage_bad_size "--size" $APFVM mkimage --size 1000 "$tmp/x"
expect_error mkimage_unwritable "cannot create image" $APFVM mkimage --size 4K /nonexistent/dir/img

# --- bad run input ---------------------------------------------------
expect_error missing_image "cannot open image.*No such file" $APFVM run --lazy 2M --source file:$tmp/none --workload scan:1
head -c 100000 "$tmp/img" >"$tmp/trunc"
expect_error truncated_image "truncated" $APFVM run --lazy 2M --source file:$tmp/trunc --workload scan:1
expect_error image_smaller_than_lazy "less than the 16777216 asked for" $APFVM run --lazy 16M --source file:$tmp/img --workload scan:1
echo "just some text, not an image" >"$tmp/text"
expect_error not_an_image "not an apfvm image" $APFVM run --lazy 2M --source file:$tmp/text --workload scan:1
expect_error unknown_source "unknown page source 'nfs:x'" $APFVM run --lazy 2M --source nfs:x
expect_error malformed_mem "--mem: invalid value '12Q'" $APFVM run --mem 12Q
expect_error malformed_lazy "--lazy: invalid value '3M'" $APFVM run --lazy 3M
expect_error malformed_latency "--latency: invalid value '5'" $APFVM run --latency 5
expect_error inverted_latency "--latency" $APFVM run --latency 5ms-1ms
expect_error malformed_duration "--duration: invalid value '2 s'" $APFVM run --duration "2 s"
expect_error bad_workload "unknown task kind 'sleep'" $APFVM run --workload sleep:1
expect_error scan_without_lazy "needs a lazy region" $APFVM run --workload scan:1
expect_error bad_apf_mode "--apf" $APFVM run --apf sometimes
expect_error guest_not_elf "not an ELF" $APFVM run --guest "$tmp/text"
expect_error guest_missing "cannot read guest" $APFVM run --guest "$tmp/none"
expect_error guest_directory "cannot read guest" $APFVM run --guest "$tmp"
expect_error bench_bad_runs "--runs" $APFVM bench --runs 0
expect_error bench_bad_mode "--modes: invalid item 'sideways'" $APFVM bench --modes sideways
expect_error bench_bad_latency "--latencies: invalid item '5'" $APFVM bench --latencies 5
expect_error bench_latency_too_long "--latencies: invalid item '61s'" $APFVM bench --latencies 61s
expect_error latency_full_range "--latency: invalid value '0-18446744073709551615ns'" \
	$APFVM run --lazy 2M --workload scan:1 --latency 0-18446744073709551615ns
mkfifo "$tmp/fifo"
expect_error image_fifo "cannot open image.*not a regular file" \
	$APFVM run --lazy 2M --workload scan:1 --source file:"$tmp/fifo"
expect_error guest_fifo "cannot read guest.*not a regular file" $APFVM run --guest "$tmp/fifo"
expect_error flag_with_value "option '--populate' takes no value" $APFVM run --populate=1
# --kernel: the file is checked before any KVM work.
expect_error kernel_not_a_bzimage "not a Linux bzImage" $APFVM run --kernel "$tmp/img"
expect_error kernel_missing "cannot read '$tmp/none'" $APFVM run --kernel "$tmp/none"
expect_error kernel_and_guest "--kernel and --guest exclude each other" \
	$APFVM run --kernel "$tmp/img" --guest "$tmp/img"
expect_error initrd_without_kernel "--initrd needs --kernel" $APFVM run --initrd "$tmp/img"
expect_error initrd_with_workload "--workload with --initrd: the workloads run from apfvm's own initramfs" \
	$APFVM run --kernel "$tmp/img" --initrd "$tmp/img" --workload scan:1 --lazy 2M
expect_error kernel_with_trace "--trace with --kernel" $APFVM run --kernel "$tmp/img" --trace
expect_error console_unwritable "cannot write '$tmp/none/c'" $APFVM run --console "$tmp/none/c"

# --- real runs -------------------------------------------------------
if [ $have_kvm -eq 0 ]; then
	echo "SKIP run_file_source_stats_json: /dev/kvm is not available"
	echo "SKIP run_zero_source: /dev/kvm is not available"
	echo "SKIP console_goes_to_a_file: /dev/kvm is not available"
	echo "SKIP guest_crash_exit_status: /dev/kvm is not available"
	echo "SKIP run_apf_kernel_stats_json: /dev/kvm is not available"
	echo "SKIP bench_writes_table_and_csv: /dev/kvm is not available"
	echo "SKIP probe_exits_reports_round_trips: /dev/kvm is not available"
	exit 0
fi

if timeout 120 $APFVM run --lazy 8M --source file:"$tmp/img" --workload compute:1,scan:1 \
	--stats-json "$tmp/s.json" >"$tmp/out" 2>"$tmp/err"; then
	pages=$(grep -o '"pages": [0-9]*' "$tmp/s.json" | sed 's/.*: //')
	mism=$(grep -o '"mismatches": [0-9]*' "$tmp/s.json" | sed 's/.*: //')
	fetched=$(json_num "$tmp/s.json" pages_fetched)
	if [ "$pages" = 2048 ] && [ "$mism" = 0 ] && [ "$fetched" = 2048 ] &&
		grep -q '"mode": "off"' "$tmp/s.json" && grep -q '"name": "compute"' "$tmp/s.json" &&
		grep -q "\"platform\": \"$($APFVM platform)\"" "$tmp/s.json" &&
		grep -q '"faults": {"total": ' "$tmp/s.json" && grep -q "task .* scan" "$tmp/out"; then
		ok run_file_source_stats_json
	else
		fail run_file_source_stats_json "pages=$pages mismatches=$mism fetched=$fetched: $(cat "$tmp/s.json")"
	fi
else
	fail run_file_source_stats_json "run failed: $(cat "$tmp/err")"
fi

if timeout 120 $APFVM run -q --lazy 4M --source zero --workload scan:2 --stats-json - >"$tmp/z.json" 2>"$tmp/err" &&
	[ "$(grep -c '"mismatches": 0' "$tmp/z.json")" = 2 ]; then
	ok run_zero_source
else
	fail run_zero_source "$(cat "$tmp/err" "$tmp/z.json")"
fi

# --console FILE: the guest's console there, not on stdout or stderr.
if timeout 120 $APFVM run -q --duration 10ms --console "$tmp/console" >"$tmp/out" 2>"$tmp/err" &&
	grep -q "^apfvm guest: 1 tasks" "$tmp/console" && ! grep -q "apfvm guest" "$tmp/out" "$tmp/err"; then
	ok console_goes_to_a_file
else
	fail console_goes_to_a_file "$(cat "$tmp/err" "$tmp/console" 2>/dev/null)"
fi

if timeout 120 $APFVM run -q --apf kernel --lazy 2M --source file:"$tmp/img" --latency 2ms \
	--workload compute:1,scan:1 --stats-json "$tmp/k.json" 2>"$tmp/err" &&
	grep -q '"apf": {"enabled": true' "$tmp/k.json" &&
	[ "$(json_num "$tmp/k.json" not_present)" -gt 0 ] &&
	[ "$(json_num "$tmp/k.json" ready)" = "$(json_num "$tmp/k.json" not_present)" ] &&
	grep -q '"mismatches": 0' "$tmp/k.json"; then
	ok run_apf_kernel_stats_json
else
	fail run_apf_kernel_stats_json "$(cat "$tmp/err" "$tmp/k.json" 2>/dev/null)"
fi

if timeout 120 $APFVM bench --latencies 2ms --modes off,user --runs 1 --lazy 2M --csv "$tmp/b.csv" \
	>"$tmp/out" 2>"$tmp/err" && [ "$(wc -l <"$tmp/b.csv")" -eq 3 ] &&
	grep -q '^2ms,2000.000,user,1,' "$tmp/b.csv" && grep -q "^2ms *user" "$tmp/out" &&
	grep -q ",\"$($APFVM platform)\"\$" "$tmp/b.csv" && grep -q "^Platform: $($APFVM platform)" "$tmp/out"; then
	ok bench_writes_table_and_csv
else
	fail bench_writes_table_and_csv "$(cat "$tmp/err" "$tmp/b.csv" 2>/dev/null | head -5)"
fi

# The guest's exit probe: three round trips, each a positive number of ns.
if timeout 120 $APFVM run -v -q --cmdline probe-exits --workload compute:1 --duration 10ms \
	>"$tmp/out" 2>"$tmp/err" &&
	grep -qE '^apfvm guest: exit round trips \(mean of 256\): CPUID [1-9][0-9]* ns, EOI [1-9][0-9]* ns, to the VMM [1-9][0-9]* ns$' "$tmp/err"; then
	ok probe_exits_reports_round_trips
else
	fail probe_exits_reports_round_trips "$(grep -i exit "$tmp/err" | head -3)"
fi

expect_error guest_crash_exit_status "guest exception #UD" $APFVM run --cmdline crash=ud2
