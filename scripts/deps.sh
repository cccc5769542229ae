#!/bin/bash
# Installs what apfvm needs from Debian (and s3rver from the npm registry),
# only what is missing:
#   deps.sh build   the libraries apfvm links: libcurl and zstd (object
#                   storage), libcrypto (SHA-256); `make` runs this
#   deps.sh         the above, and what the tests need: clang with
#                   libFuzzer (the fuzz tier), the arm64 cross compiler (the
#                   arm64 tier's programs), iproute2 (network namespaces,
#                   netem), nginx and s3rver (the object storage tests' real
#                   servers; s3rver into build/node)
#   deps.sh bench   the above, and gnuplot (the plots of make bench*)
set -eu
cd "$(dirname "$0")/.."
mode=${1:-test}
need=()
have_header() { [ -e "/usr/include/$1" ] || [ -e "/usr/include/x86_64-linux-gnu/$1" ] ||
	[ -e "/usr/include/aarch64-linux-gnu/$1" ]; }
have_header curl/curl.h || need+=(libcurl4-openssl-dev)
have_header zstd.h || need+=(libzstd-dev)
have_header openssl/evp.h || need+=(libssl-dev)
if [ "$mode" != build ]; then
	command -v clang >/dev/null || need+=(clang)
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
		need+=(libclang-rt-14-dev)
	# The arm64 tier's test programs, cross-built (static).
	command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
	[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
	# The network tests' namespaces, links and netem (ip, tc).
	{ command -v ip && command -v tc; } >/dev/null || need+=(iproute2)
	# The object storage tests' servers.
	[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx-light)
	command -v node >/dev/null || need+=(nodejs)
	# An independent SigV4 signer for tests/unit/test_sigv4.c.
	/usr/bin/python3 -c 'import botocore' 2>/dev/null || need+=(python3-botocore)
	command -v npm >/dev/null || need+=(npm)
fi
if [ "$mode" = bench ]; then
	command -v gnuplot >/dev/null || need+=(gnuplot-nox)
fi
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: need root to install ${need[*]} (apt-get install ${need[*]})" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
	# Debian's nginx package starts a server on port 80; the tests start
	# their own.
	case " ${need[*]} " in *" nginx-light "*) service nginx stop >/dev/null 2>&1 || true ;; esac
fi
if [ "$mode" != build ] && [ ! -x build/node/node_modules/.bin/s3rver ]; then
	echo "deps: installing s3rver (npm) into build/node"
	mkdir -p build/node
	npm install --prefix build/node --no-audit --no-fund --loglevel=error s3rver@3.7.1 >/dev/null
fi
