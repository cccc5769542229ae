#!/bin/bash
# Installs the Debian packages apfvm's tests and benchmarks need, if
# missing: clang with libFuzzer (the fuzz tier of `make test`) and gnuplot
# (the plot of `make bench`).  Building apfvm itself needs only gcc and make.
set -eu
need=()
command -v clang >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
	need+=(libclang-rt-14-dev)
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
