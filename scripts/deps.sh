#!/bin/bash
# Installs the Debian packages apfvm's tests and benchmarks need, if
# missing: clang with libFuzzer (the fuzz tier of `make test`), the arm64
# cross compiler (the arm64 tier's programs), iproute2 (the network
# tests) and gnuplot (the plot of
# `make bench`).  Building apfvm itself needs only gcc and make.
set -eu
need=()
command -v clang >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
	need+=(libclang-rt-14-dev)
# The arm64 tier's test programs, cross-built (static).
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
# The network tests' namespaces, links and netem (ip, tc).
{ command -v ip && command -v tc; } >/dev/null || need+=(iproute2)
if [ "${1:-}" = bench ]; then
	command -v gnuplot >/dev/null || need+=(gnuplot-nox)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "deps: installing ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: need root to install ${need[*]} (apt-get install ${need[*]})" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
