#!/bin/bash
# End-to-end tests of memory in object storage (docs/object-storage.md)
# against real servers in another network namespace behind a netem link
# (scripts/netlab.sh): s3rver, an S3-compatible server, for s3://, and
# nginx for http://.  An image packed with apfvm pack (uploaded to s3rver
# with SigV4-signed requests) serves the reference guest's scan with every
# word verified, in each async mode; nginx's real throttling (limit_req,
# 429) is retried through; S3's and HTTP's errors end the run with a clear
# message naming the object, or the chunk and its pages, and the cause:
# 404 and 403 before any guest runs, 503, a stalled server or one that
# dies mid-run within the fetch timeouts; a damaged data object is never
# mapped.  Needs root.  Prints "ok NAME" / "FAIL NAME: why".
set -u
APFVM=${APFVM:-build/apfvm}
S3RVER=${S3RVER:-build/node/node_modules/.bin/s3rver}
export S3RVER
tmp=$(mktemp -d /tmp/apfvm-objstore.XXXXXX)
. scripts/netlab.sh
nginx_pid=
cleanup() {
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
	netlab_down
	rm -rf "$tmp"
}
trap cleanup EXIT

. tests/e2e/lib_net.sh

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP objstore_tests: network namespaces need root"
	exit 0
fi
for tool in "$S3RVER" /usr/sbin/nginx node; do
	command -v "$tool" >/dev/null || { fail objstore_setup "$tool is missing (make deps)"; exit 0; }
done
$APFVM mkimage --size 8M --seed 11 "$tmp/img" >/dev/null || { fail objstore_setup "mkimage"; exit 0; }
netlab_up || { fail objstore_setup "cannot make the namespace and veth pair"; exit 0; }
IP=$NETLAB_SERVER_IP

# ---- s3rver ----------------------------------------------------------------
netlab_s3rver || { fail objstore_setup "s3rver did not start"; exit 0; }

# Its temporary files are unnamed: symlinks planted for the next PIDs
# under any name apfvm could pick are never written through, and nothing
# is left behind.
mkdir "$tmp/tmpdir"
echo keep >"$tmp/victim"
for pid in $(seq $((BASHPID + 1)) $((BASHPID + 400))); do
	ln -s "$tmp/victim" "$tmp/tmpdir/apfvm-pack-$pid"
done
if TMPDIR="$tmp/tmpdir" $APFVM pack "$tmp/img" s3://apfvm/vm/mem >"$tmp/out" 2>"$tmp/err" &&
	grep -q "2048 pages in 32 chunks of 64 pages" "$tmp/out"; then
	ok pack_uploads_an_image_to_s3
else
	fail pack_uploads_an_image_to_s3 "$(cat "$tmp/err" "$tmp/out" | head -c 400)"
fi
if [ "$(cat "$tmp/victim")" = keep ] && [ "$(find "$tmp/tmpdir" ! -type l | wc -l)" -eq 1 ]; then
	ok pack_to_s3_writes_no_predictable_temporary_file
else
	fail pack_to_s3_writes_no_predictable_temporary_file \
		"victim: $(head -c 40 "$tmp/victim"); left: $(find "$tmp/tmpdir" ! -type l | head -3)"
fi

netlab_link delay 1ms
for mode in off kernel user; do
	scan_ok "s3_scan_at_1ms_apf_${mode}_sees_every_word" s3://apfvm/vm/mem --apf $mode &&
		ok "s3_scan_at_1ms_apf_${mode}_sees_every_word"
done

# expect_refused NAME PATTERN ARGS...: apfvm run fails with PATTERN on
# stderr before any guest runs.
expect_refused() {
	local name=$1 pattern=$2
	shift 2
	timeout 120 $APFVM run --workload scan --lazy 8M "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then
		fail "$name" "exit status $rc: $(head -c 300 "$tmp/err")"
	elif ! grep -qE -- "$pattern" "$tmp/err"; then
		fail "$name" "message '$(head -c 300 "$tmp/err")' does not match /$pattern/"
	elif grep -q "task " "$tmp/out"; then
		fail "$name" "a guest ran"
	else
		ok "$name"
	fi
}
expect_refused s3_missing_object_is_refused_with_404 "s3://apfvm/vm/none: cannot read .*HTTP 404" \
	--source s3://apfvm/vm/none
AWS_ACCESS_KEY_ID=NOBODY expect_refused s3_unknown_credentials_are_refused_with_403 \
	"s3://apfvm/vm/mem: cannot read .*HTTP 403 Forbidden" --source s3://apfvm/vm/mem
expect_refused s3_missing_bucket_is_refused_with_404 "HTTP 404" --source s3://nobucket/vm/mem

# A snapshot's memory packed into the store (apfvm pack --snapshot): the
# restore reads its chunks, checks every page against the snapshot's
# checksums, and the scan ends with every word verified.
if $APFVM run --workload compute,scan --lazy 8M --source file:"$tmp/img" --latency 1ms \
	--snapshot-after-pages 1024 --snapshot "$tmp/snap" -q 2>"$tmp/err" &&
	$APFVM pack --snapshot "$tmp/snap" s3://apfvm/vm/snap >/dev/null 2>"$tmp/err"; then
	if $APFVM restore --source s3://apfvm/vm/snap --stats-json "$tmp/r.json" "$tmp/snap" \
		>"$tmp/out" 2>"$tmp/err" &&
		[ "$(scan_field "$tmp/r.json" pages)" = 2048 ] &&
		[ "$(scan_field "$tmp/r.json" mismatches)" = 0 ]; then
		ok s3_restore_of_a_packed_snapshot_finishes_the_scan
	else
		fail s3_restore_of_a_packed_snapshot_finishes_the_scan \
			"$(cat "$tmp/err" "$tmp/r.json" 2>/dev/null | tr '\n' ' ' | head -c 400)"
	fi
	expect_refused s3_snapshot_memory_is_refused_to_a_booting_guest \
		"serves a snapshot's memory: restore that snapshot" --source s3://apfvm/vm/snap
else
	fail s3_restore_of_a_packed_snapshot_finishes_the_scan "snapshot or pack: $(head -c 300 "$tmp/err")"
fi

S3CHUNK="s3://apfvm/vm/mem: chunk [0-9]+ \\(pages [0-9]+-[0-9]+\\)"
# The link then stalls for 5 s, longer than the 3 s timeout; the timeout
# is not shorter because s3rver in the emulated host, on a loaded machine,
# may take more than a second to answer a healthy request.
stall() { netlab_link delay 5s; }
run_mid s3_stalling_mid_run_times_out_naming_chunk_and_cause s3://apfvm/vm/mem \
	"$S3CHUNK: Timeout was reached \(2 tries\)" stall --fetch-timeout 3s --fetch-tries 2
run_mid s3_server_dying_mid_run_fails_naming_chunk_and_cause s3://apfvm/vm/mem \
	"$S3CHUNK: (Couldn't connect to server|Failure when receiving data from the peer|Server returned nothing).* \(3 tries\)" \
	netlab_stop_s3rver --fetch-timeout 3s
netlab_link none

# ---- nginx ----------------------------------------------------------------
www=$tmp/www
mkdir -p "$www/ng"
chmod 755 "$tmp" "$www" # nginx's worker is not root
$APFVM pack "$tmp/img" "$www/mem" >/dev/null
cp "$www/mem" "$www/throttled" && cp "$www/mem.data" "$www/throttled.data"
cp "$www/mem" "$www/broken" # its data answers 503
cp "$www/mem" "$www/damaged" && cp "$www/mem.data" "$www/damaged.data"
printf '\x55' | dd of="$www/damaged.data" bs=1 seek=300000 conv=notrunc status=none
cat >"$www/ng/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $www/ng/nginx.pid;
error_log $www/ng/error.log;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path $www/ng; proxy_temp_path $www/ng; fastcgi_temp_path $www/ng;
	uwsgi_temp_path $www/ng; scgi_temp_path $www/ng;
	limit_req_zone \$binary_remote_addr zone=slow:1m rate=2r/s;
	server {
		listen $IP:8080;
		root $www;
		location = /throttled.data { limit_req zone=slow; limit_req_status 429; }
		location = /broken.data { return 503; }
	}
}
EOF
ip netns exec "$NETLAB_NS" /usr/sbin/nginx -c "$www/ng/nginx.conf" -p "$www/ng" \
	>"$tmp/nginx.log" 2>&1 &
nginx_pid=$!
netlab_wait_port 8080 || { fail objstore_setup "nginx did not start: $(tail -3 "$tmp/nginx.log" "$www/ng/error.log")"; exit 0; }
H=http://$IP:8080

netlab_link delay 1ms
scan_ok http_scan_at_1ms_sees_every_word $H/mem --apf user && ok http_scan_at_1ms_sees_every_word
snapshot_ok http_run_snapshotted_midway_restores_and_finishes_the_scan $H/mem

# Throttled (2 requests/s, the rest 429): retried with backoff until done.
if scan_ok http_throttled_requests_are_retried_to_the_end $H/throttled --apf user --fetch-tries 50; then
	retries=$(json_num "$tmp/s.json" source_retries)
	if [ "${retries:-0}" -gt 0 ]; then
		ok http_throttled_requests_are_retried_to_the_end
	else
		fail http_throttled_requests_are_retried_to_the_end "no request was throttled"
	fi
fi

# run_fails NAME REGEX ARGS...: the run starts, then fails (check_failed).
run_fails() {
	local name=$1 regex=$2
	shift 2
	timeout 120 $APFVM run --workload compute,scan --lazy 8M --apf user "$@" >"$tmp/out" 2>"$tmp/err"
	check_failed "$name" $? "$regex"
}
run_fails http_server_errors_fail_the_run_naming_chunk_and_cause \
	"$H/broken: chunk 0 \(pages 0-63\): HTTP 503 [^(]*\(or S3 SlowDown: throttled\) \(3 tries\)" \
	--source $H/broken
# Byte 300000 is in chunk 1 (pages 64-127): its checksum fails each time.
run_fails http_damaged_chunk_is_never_mapped \
	"$H/damaged: chunk 1 \(pages 64-127\): corrupt (or forged )?chunk \((stored checksum|SHA-256) mismatch\) \(2 tries\)" \
	--source $H/damaged --fetch-tries 2
netlab_link none
