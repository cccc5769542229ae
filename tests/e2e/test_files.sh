#!/bin/bash
# End-to-end tests of the files apfvm reads and writes, as a user may name
# anything: a FIFO where an image, a snapshot or its memory is expected is
# refused at once (open never waits for a writer); pack and run refuse to write
# over their inputs; outputs (mkimage, pack) replace a symlink at their
# path instead of writing through it.  No KVM needed.
# Prints "ok NAME" / "FAIL NAME: why" lines.
set -u
APFVM=${APFVM:-build/apfvm}
tmp=$(mktemp -d /tmp/apfvm-files.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

EXPECT_TIMEOUT=20
. tests/e2e/lib_cli.sh

"$APFVM" mkimage --size 4M --seed 3 "$tmp/img" >/dev/null
cp "$tmp/img" "$tmp/img.orig"
mkfifo "$tmp/fifo" "$tmp/fifo.mem"

# --- FIFOs --------------------------------------------------------------
expect_error restore_of_a_fifo_is_refused "not a regular file" \
	"$APFVM" restore "$tmp/fifo"
expect_error serve_of_a_fifo_image_is_refused "not a regular file" \
	"$APFVM" serve --image "$tmp/fifo" --listen 127.0.0.1:0
expect_error serve_of_a_fifo_snapshot_is_refused "not a regular file" \
	"$APFVM" serve --snapshot "$tmp/fifo" --listen 127.0.0.1:0
expect_error pack_of_a_fifo_snapshot_is_refused "not a regular file" \
	"$APFVM" pack --snapshot "$tmp/fifo" "$tmp/packed"
expect_error pack_of_a_fifo_image_is_refused "not a regular file|not an apfvm image" \
	"$APFVM" pack "$tmp/fifo" "$tmp/packed"
expect_error fetch_of_a_fifo_image_is_refused "not a regular file|cannot open" \
	"$APFVM" fetch --source "file:$tmp/fifo" --size 4K

# --- pack's outputs ------------------------------------------------------
expect_error pack_over_its_own_input_is_refused "is what is being packed" \
	"$APFVM" pack "$tmp/img" "$tmp/img"
ln -s img "$tmp/link"
expect_error pack_over_a_link_to_its_input_is_refused "is what is being packed" \
	"$APFVM" pack "$tmp/img" "$tmp/link"
ln "$tmp/img" "$tmp/y.data"
expect_error pack_over_its_input_as_data_is_refused "y.data is what is being packed" \
	"$APFVM" pack "$tmp/img" "$tmp/y"
if cmp -s "$tmp/img" "$tmp/img.orig"; then ok pack_leaves_its_input_whole
else fail pack_leaves_its_input_whole "the image changed"; fi

echo keep >"$tmp/victim"
ln -s victim "$tmp/packed"
ln -s victim2 "$tmp/packed.data"
echo keep >"$tmp/victim2"
if "$APFVM" pack "$tmp/img" "$tmp/packed" >/dev/null 2>"$tmp/err" &&
	[ "$(cat "$tmp/victim")" = keep ] && [ "$(cat "$tmp/victim2")" = keep ] &&
	[ -f "$tmp/packed" ] && [ ! -L "$tmp/packed" ] && [ ! -L "$tmp/packed.data" ]; then
	ok pack_replaces_a_symlink_at_its_output
else
	fail pack_replaces_a_symlink_at_its_output "$(head -c 300 "$tmp/err"); victim: $(cat "$tmp/victim")"
fi
ln -s victim "$tmp/img2"
if "$APFVM" mkimage --size 4K "$tmp/img2" >/dev/null 2>"$tmp/err" &&
	[ "$(cat "$tmp/victim")" = keep ] && [ ! -L "$tmp/img2" ]; then
	ok mkimage_replaces_a_symlink_at_its_output
else
	fail mkimage_replaces_a_symlink_at_its_output "$(head -c 300 "$tmp/err")"
fi
if [ -z "$(find "$tmp" -name '*.tmp-*')" ]; then ok outputs_leave_no_temporary_files
else fail outputs_leave_no_temporary_files "$(find "$tmp" -name '*.tmp-*' | head -3)"; fi

# --- run's outputs over its inputs -------------------------------------
expect_error run_snapshot_over_its_image_is_refused "is an input of the run" \
	"$APFVM" run --lazy 4M --source "file:$tmp/img" --workload scan --snapshot "$tmp/img" \
	--snapshot-at 1s
expect_error run_console_over_its_guest_is_refused "is an input of the run" \
	"$APFVM" run --guest "$tmp/img" --console "$tmp/img"
if cmp -s "$tmp/img" "$tmp/img.orig"; then ok run_leaves_its_inputs_whole
else fail run_leaves_its_inputs_whole "the image changed"; fi
