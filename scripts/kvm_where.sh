# Sourced by the scripts that need KVM (tests/all.sh, scripts/demo.sh,
# scripts/bench.sh): decides where KVM work runs.
#
#   kvm_where APFVM     sets KVM_WHERE and KVM_WHY:
#     native    /dev/kvm exists and a probe run of the reference guest works
#     emulated  inside scripts/emuhost/emuhost (the emulated SVM host)
#     none      neither is possible; KVM_WHY says why
#
# The variable KVM chooses: auto (default; native if it works, else
# emulated), native (never emulate), emulated (even where /dev/kvm works).
# KVM_WHY also explains a fallback from native to emulated.

EMUHOST=${EMUHOST:-scripts/emuhost/emuhost}

# kvm_native_works APFVM: 0 if a tiny guest runs on this machine's /dev/kvm;
# otherwise 1 with the reason in KVM_WHY.
kvm_native_works() {
	local err
	if [ ! -e /dev/kvm ]; then
		KVM_WHY="this machine has no /dev/kvm"
		return 1
	fi
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		KVM_WHY="/dev/kvm is not readable and writable by $(id -un)"
		return 1
	fi
	if ! err=$("$1" run --lazy 2M --workload scan:1 --timeout 60s --quiet 2>&1 >/dev/null); then
		KVM_WHY="/dev/kvm exists but a probe run failed: $(echo "$err" | tail -1)"
		return 1
	fi
	return 0
}

kvm_where() {
	KVM_WHY=
	case ${KVM:-auto} in
	native)
		if kvm_native_works "$1"; then KVM_WHERE=native; else KVM_WHERE=none; fi
		KVM_WHY=${KVM_WHY:+KVM=native: $KVM_WHY}
		;;
	emulated)
		KVM_WHERE=emulated KVM_WHY="KVM=emulated"
		;;
	auto)
		if kvm_native_works "$1"; then
			KVM_WHERE=native
		elif [ "$(uname -m)" != x86_64 ]; then
			KVM_WHERE=none KVM_WHY="$KVM_WHY, and the emulated host needs an x86-64 machine"
		else
			KVM_WHERE=emulated
		fi
		;;
	*)
		KVM_WHERE=none KVM_WHY="KVM='$KVM' is not one of auto, native, emulated"
		;;
	esac
}

# kvm_emuhost_setup: installs and downloads what the emulated host needs
# (scripts/emuhost/emuhost --setup).  On failure KVM_WHERE=none and KVM_WHY
# carries the tool's message.
kvm_emuhost_setup() {
	local err
	if ! err=$("$EMUHOST" --setup 2>&1); then
		KVM_WHY="${KVM_WHY:+$KVM_WHY; }the emulated host cannot be set up: $(echo "$err" | tail -1)"
		KVM_WHERE=none
		return 1
	fi
	return 0
}

# kvm_place_self APFVM SCRIPT [ARG...]: for scripts whose whole work needs
# KVM (demo, bench).  Returns where the work can run right here (native
# KVM, or already inside the emulated host); otherwise re-runs SCRIPT with
# its arguments inside the emulated host and exits with its status, or
# exits 1 with the reason when KVM cannot be had at all.
kvm_place_self() {
	local apfvm=$1
	shift
	[ -z "${EMUHOST_INSIDE:-}" ] || return 0
	kvm_where "$apfvm"
	[ "$KVM_WHERE" != emulated ] || kvm_emuhost_setup
	case $KVM_WHERE in
	native) return 0 ;;
	emulated)
		echo "$(basename "$1"): running inside the emulated KVM host ($KVM_WHY)" >&2
		exec "$EMUHOST" -- "$@"
		;;
	*)
		echo "$(basename "$1"): cannot run: $KVM_WHY" >&2
		exit 1
		;;
	esac
}
