# apfvm: one non-recursive Makefile.  `make` builds build/apfvm with the
# reference guest kernel embedded; `make test` builds and runs every test
# tier; `make demo` runs the demo; `make bench` the benchmarks.
# V=1 shows the commands.

# ARCH: the architecture apfvm and its reference guest are built for:
# x86 (default on x86-64) or arm64 (default on aarch64).  `make ARCH=arm64`
# on an x86-64 machine cross-builds with Debian's gcc-aarch64-linux-gnu
# into build/arm64/, statically linked (copy build/arm64/apfvm to the arm64
# machine as it is); the test tiers run from an x86-64 build.
HOST_MACHINE := $(shell uname -m)
ARCH ?= $(if $(filter aarch64 arm64,$(HOST_MACHINE)),arm64,x86)
ifeq ($(filter x86 arm64,$(ARCH)),)
$(error ARCH=$(ARCH): apfvm builds for x86 or arm64)
endif
Q        := $(if $(V),,@)
ifeq ($(ARCH)-$(HOST_MACHINE),arm64-x86_64)
CC       := aarch64-linux-gnu-gcc
BUILD    := build/arm64
STATIC   := -static
else
CC       ?= gcc
BUILD    := build$(if $(filter arm64,$(ARCH)),/arm64)
STATIC   :=
endif

# Host code: strict C11, warnings are errors.
HOST_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow \
	-Wmissing-prototypes -Wstrict-prototypes -Wformat=2 -Wno-format-nonliteral \
	-Iinclude -Isrc -Isrc/arch/$(ARCH) -MMD -MP -pthread
# Object storage (s3://, http(s):// sources, apfvm pack) needs libcurl and
# zstd (Debian: libcurl4-openssl-dev, libzstd-dev; make deps); the static
# arm64 cross build goes without (src/objstore/obj_none.c says so).
ifeq ($(ARCH)-$(HOST_MACHINE),arm64-x86_64)
OBJSTORE := no
else
OBJSTORE ?= yes
endif
OBJSTORE_SRCS.yes = $(filter-out src/objstore/obj_none.c,$(wildcard src/objstore/*.c))
OBJSTORE_SRCS.no = src/objstore/obj_none.c
OBJSTORE_LIBS.yes := -lcurl -lzstd -lcrypto
# SHA-256 (util/sha256.h): libcrypto's where it is linked, else portable C.
SHA256_SRC.yes = src/util/sha256/libcrypto.c
SHA256_SRC.no = src/util/sha256/portable.c
HOST_LDFLAGS := -pthread $(STATIC) $(OBJSTORE_LIBS.$(OBJSTORE))
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer

# Guest code: freestanding, general-purpose registers only (the emulated
# ring 0 on some hosts has no SSE/AVX; the arm64 kernel saves no FP/SIMD
# state), no red zone (interrupts share the kernel stack), no CET or
# branch-protection instrumentation.
GUEST_ARCH_CFLAGS.x86 := -mno-red-zone -fcf-protection=none -mcmodel=small
GUEST_ARCH_CFLAGS.arm64 := -mbranch-protection=none -mcmodel=small -mstrict-align
GUEST_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror -ffreestanding -nostdlib \
	-mgeneral-regs-only -fno-pic -fno-pie -fno-stack-protector \
	-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns \
	$(GUEST_ARCH_CFLAGS.$(ARCH)) -Iinclude -iquote guest/core -iquote guest/arch/$(ARCH) -MMD -MP
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=4096 \
	-Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

# ---- sources -----------------------------------------------------------
# The architecture layer: src/arch/$(ARCH) (and its subfolders).
LIB_SRCS := $(wildcard src/util/*.c src/image/*.c src/source/*.c src/net/*.c src/pager/*.c src/apf/*.c src/snapshot/*.c src/workset/*.c src/vmm/*.c) \
	$(OBJSTORE_SRCS.$(OBJSTORE)) $(SHA256_SRC.$(OBJSTORE)) \
	$(wildcard src/arch/$(ARCH)/*.c src/arch/$(ARCH)/*/*.c)
CLI_SRCS := src/cli/options.c src/cli/bench.c src/cli/fetch.c src/cli/kvm_hint.c src/cli/ws.c
MAIN_SRC := src/cli/main.c
GUEST_KSRCS := $(wildcard guest/core/*.c guest/arch/$(ARCH)/*.c guest/arch/$(ARCH)/*.S)
GUEST_USRCS := $(wildcard guest/user/*.c guest/user/*.S guest/workloads/*.c)

hobj = $(patsubst %.c,$(BUILD)/host/%.o,$(1))
sobj = $(patsubst %.c,$(BUILD)/asan/%.o,$(1))
tobj = $(patsubst %.c,$(BUILD)/tsan/%.o,$(1))
gobj = $(patsubst %,$(BUILD)/%.o,$(1))

LIB_OBJS  := $(call hobj,$(LIB_SRCS)) $(BUILD)/host/guest_blob.o
CLI_OBJS  := $(call hobj,$(CLI_SRCS))
GUEST_OBJS := $(call gobj,$(GUEST_KSRCS) $(GUEST_USRCS))
GUEST_ELF := $(BUILD)/guest/kernel.elf

APFVM   := $(BUILD)/apfvm
LIBAPF  := $(BUILD)/libapfvm.a
BENCH_PAGER := $(BUILD)/bench_pager
SERVE_ATTACK := $(BUILD)/serve_attack

.PHONY: all test demo bench bench-linux bench-arm64 bench-restore bench-net bench-prefetch bench-serve clean fuzz deps deps-build deps-bench
# Keep intermediate objects (the sanitizer builds link them directly).
.SECONDARY:
# The benchmark programs too, so that a change that breaks them shows at once.
all: $(APFVM) $(BENCH_PAGER) $(SERVE_ATTACK)

# ---- guest -------------------------------------------------------------
$(BUILD)/guest/%.c.o: guest/%.c
	@mkdir -p $(dir $@)
	@echo "  CC [guest] $<"
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@
$(BUILD)/guest/%.S.o: guest/%.S
	@mkdir -p $(dir $@)
	@echo "  AS [guest] $<"
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@
$(GUEST_ELF): $(GUEST_OBJS) guest/arch/$(ARCH)/guest.ld
	@echo "  LD [guest] $@"
	$(Q)$(CC) $(GUEST_LDFLAGS) -T guest/arch/$(ARCH)/guest.ld -o $@ $(GUEST_OBJS)

# ---- host --------------------------------------------------------------
# The object storage code includes libcurl's and zstd's headers.
ifeq ($(OBJSTORE),yes)
$(call hobj,$(OBJSTORE_SRCS.yes)) $(call sobj,$(OBJSTORE_SRCS.yes)) $(call tobj,$(OBJSTORE_SRCS.yes)): | deps-build
endif
$(BUILD)/host/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	$(Q)$(CC) $(HOST_CFLAGS) -c $< -o $@
$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC [asan] $<"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN_FLAGS) -c $< -o $@
$(BUILD)/tsan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC [tsan] $<"
	$(Q)$(CC) $(HOST_CFLAGS) $(TSAN_FLAGS) -c $< -o $@
# The Linux guest's built-in /init (x86-64 Linux guests): a static
# program, with the workloads.
ifeq ($(ARCH),x86)
LINUX_INIT := $(BUILD)/linux/init
LINUX_INIT_SRCS := $(wildcard guest/linux/*.c guest/workloads/*.c)
$(LINUX_INIT): $(LINUX_INIT_SRCS) $(wildcard guest/linux/*.h guest/workloads/*.h) include/apfvm/abi.h include/apfvm/abi_x86.h
	@mkdir -p $(dir $@)
	@echo "  CC [linux init] $(LINUX_INIT_SRCS)"
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude -iquote guest/arch/x86 -static -s \
		$(LINUX_INIT_SRCS) -o $@
endif
$(BUILD)/host/guest_blob.o: src/vmm/guest_blob.S $(GUEST_ELF) $(LINUX_INIT)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -c -DGUEST_ELF='"$(GUEST_ELF)"' $(if $(LINUX_INIT),-DLINUX_INIT='"$(LINUX_INIT)"') $< -o $@
$(BUILD)/asan/guest_blob.o $(BUILD)/tsan/guest_blob.o: $(BUILD)/host/guest_blob.o
	@mkdir -p $(dir $@)
	$(Q)cp $< $@
$(LIBAPF): $(LIB_OBJS)
	@echo "  AR $@"
	$(Q)rm -f $@ && ar rcs $@ $^
$(APFVM): $(call hobj,$(MAIN_SRC)) $(CLI_OBJS) $(LIBAPF)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^ $(HOST_LDFLAGS)

# ---- tests -------------------------------------------------------------
# Unit tests (no KVM) and VM tests run under ASan/UBSan; every test binary
# prints "ok NAME" / "FAIL NAME" / "SKIP NAME: why" lines that
# tests/run.sh counts.
# Guest code with no hardware access, unit-tested on the host.
GUEST_HOST_SRCS := guest/core/apf_sleepers.c
ASAN_LIB_OBJS := $(call sobj,$(LIB_SRCS) $(CLI_SRCS) $(GUEST_HOST_SRCS)) $(BUILD)/asan/guest_blob.o
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
VM_TESTS   := $(patsubst tests/vm/%.c,$(BUILD)/tests/%,$(wildcard tests/vm/test_*.c))
GUEST_HOST_INC := -iquote guest/core -iquote guest/user -iquote guest/workloads -iquote guest/arch/$(ARCH)

# ThreadSanitizer builds of the tests whose threads share state: the pager
# thread with faulting threads, and the vCPU thread with the pager thread
# and the async-fault core.  (test_hcall races on guest memory on purpose,
# as a second vCPU would; it stays out.)
TSAN_LIB_OBJS := $(call tobj,$(LIB_SRCS) $(CLI_SRCS)) $(BUILD)/tsan/guest_blob.o
TSAN_UNIT_TESTS := $(BUILD)/tsan-tests/test_pager $(BUILD)/tsan-tests/test_pager_bulk $(BUILD)/tsan-tests/test_page_server \
	$(BUILD)/tsan-tests/test_tcp_source $(BUILD)/tsan-tests/test_obj_source
TSAN_VM_TESTS := $(BUILD)/tsan-tests/test_vm $(BUILD)/tsan-tests/test_apf_user $(BUILD)/tsan-tests/test_apf_kernel
$(BUILD)/tsan-tests/%: tests/unit/%.c $(TSAN_LIB_OBJS) tests/test.h
	@mkdir -p $(dir $@)
	@echo "  CC [tsan test] $<"
	$(Q)$(CC) $(HOST_CFLAGS) $(TSAN_FLAGS) -Itests $(GUEST_HOST_INC) -o $@ $< $(TSAN_LIB_OBJS) $(HOST_LDFLAGS)
$(BUILD)/tsan-tests/%: tests/vm/%.c $(TSAN_LIB_OBJS) tests/test.h
	@mkdir -p $(dir $@)
	@echo "  CC [tsan test] $<"
	$(Q)$(CC) $(HOST_CFLAGS) $(TSAN_FLAGS) -Itests -o $@ $< $(TSAN_LIB_OBJS) $(HOST_LDFLAGS)

$(BUILD)/tests/%: tests/unit/%.c $(ASAN_LIB_OBJS) tests/test.h
	@mkdir -p $(dir $@)
	@echo "  CC [test] $<"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN_FLAGS) -Itests $(GUEST_HOST_INC) -o $@ $< $(ASAN_LIB_OBJS) $(HOST_LDFLAGS)
$(BUILD)/tests/%: tests/vm/%.c $(ASAN_LIB_OBJS) tests/test.h
	@mkdir -p $(dir $@)
	@echo "  CC [test] $<"
	$(Q)$(CC) $(HOST_CFLAGS) $(SAN_FLAGS) -Itests -o $@ $< $(ASAN_LIB_OBJS) $(HOST_LDFLAGS)

# Fuzz targets: clang's libFuzzer with ASan/UBSan.  `make test` runs each
# briefly; `make fuzz` for FUZZ_SECONDS (default 300).
FUZZ_CC := clang
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_SECONDS ?= 300
FUZZ_OBJS := $(patsubst %.c,$(BUILD)/fuzz/%.o,$(LIB_SRCS) $(CLI_SRCS))
FUZZ_LIB_OBJS := $(FUZZ_OBJS) $(BUILD)/host/guest_blob.o
FUZZ_TARGETS := $(BUILD)/fuzz_guest_input $(BUILD)/fuzz_options $(BUILD)/fuzz_image_header $(BUILD)/fuzz_bzimage $(BUILD)/fuzz_snapshot \
	$(BUILD)/fuzz_obj_manifest $(BUILD)/fuzz_page_proto $(BUILD)/fuzz_tcp_source $(BUILD)/fuzz_workset

$(BUILD)/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC [fuzz] $<"
	$(Q)$(FUZZ_CC) $(HOST_CFLAGS) -Wno-unused-command-line-argument $(FUZZ_FLAGS) -c $< -o $@
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	@echo "  LD [fuzz] $@"
	$(Q)$(FUZZ_CC) $(HOST_CFLAGS) -Itests -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_LIB_OBJS) $(HOST_LDFLAGS)

# Debian packages the test and bench tiers need, installed if missing.
deps:
	$(Q)scripts/deps.sh
deps-build:
	$(Q)scripts/deps.sh build
deps-bench:
	$(Q)scripts/deps.sh bench

$(FUZZ_OBJS) $(FUZZ_TARGETS): | deps

# arm64: test programs cross-built (static) with Debian's
# gcc-aarch64-linux-gnu (make deps) and run in the emulated arm64 host.
ARM64_CC := aarch64-linux-gnu-gcc
ARM64_TESTS := $(patsubst tests/arm64/%.c,$(BUILD)/arm64-tests/%,$(wildcard tests/arm64/test_*.c)) \
	$(wildcard tests/arm64/test_*.sh)
$(BUILD)/arm64-tests/%: tests/arm64/%.c tests/arm64/arm64_vm.h | deps
	@mkdir -p $(dir $@)
	@echo "  CC [arm64] $<"
	$(Q)$(ARM64_CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -static -pthread $< -o $@

# apfvm itself for arm64 (build/arm64/apfvm), for the arm64 test tier.
.PHONY: arm64
arm64: | deps
	$(Q)$(MAKE) --no-print-directory ARCH=arm64

fuzz: $(FUZZ_TARGETS)
	$(Q)for t in $(FUZZ_TARGETS); do tests/fuzz/run_fuzz.sh $$t $(FUZZ_SECONDS) || exit 1; done

# Hostile page server clients: tests/e2e/test_serve.sh, make bench-serve.
$(SERVE_ATTACK): bench/serve_attack.c $(LIBAPF)
	@echo "  CC [bench] $<"
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $< $(LIBAPF) $(HOST_LDFLAGS)

# Tiers that need KVM run on /dev/kvm where it works, otherwise inside the
# emulated KVM host (scripts/emuhost/emuhost); KVM=native|emulated forces
# one (tests/all.sh, scripts/kvm_where.sh).
KVM ?= auto
export KVM
test: $(APFVM) $(BENCH_PAGER) $(SERVE_ATTACK) $(UNIT_TESTS) $(VM_TESTS) $(TSAN_UNIT_TESTS) $(TSAN_VM_TESTS) $(FUZZ_TARGETS) $(ARM64_TESTS) arm64
	$(Q)UNIT_TESTS="$(UNIT_TESTS) $(TSAN_UNIT_TESTS)" VM_TESTS="$(VM_TESTS) $(TSAN_VM_TESTS)" \
		CLI_TESTS="tests/e2e/test_cli.sh tests/e2e/test_snapshot.sh tests/e2e/test_working_set.sh tests/e2e/test_net.sh tests/e2e/test_objstore.sh tests/e2e/test_serve.sh tests/e2e/test_files.sh" ARM64_TESTS="$(ARM64_TESTS)" \
		FUZZ_TESTS="tests/fuzz/fuzz_briefly.sh" \
		HOST_TESTS="tests/emuhost/test_emuhost.sh tests/linux/test_linux_guest.sh tests/linux/test_linux_snapshot.sh" tests/all.sh

# ---- demo and benchmarks ----------------------------------------------
demo: $(APFVM)
	$(Q)scripts/demo.sh

$(BENCH_PAGER): bench/bench_pager.c bench/bench_bulk.c bench/bench_bulk.h $(LIBAPF)
	@echo "  CC [bench] $<"
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ bench/bench_pager.c bench/bench_bulk.c $(LIBAPF) $(HOST_LDFLAGS)

# The side-by-side comparison (table, CSV, PNG), then the pager's service
# rate.  BENCH_ARGS passes options to `apfvm bench` (see its --help).
bench: $(APFVM) $(BENCH_PAGER) deps-bench
	$(Q)scripts/bench.sh $(BENCH_ARGS)
bench-linux: $(APFVM) deps-bench
	$(Q)scripts/bench_linux.sh $(BENCH_ARGS)
bench-restore: $(APFVM)
	$(Q)scripts/bench_restore.sh
# Memory over a netem link: the tcp: source's pages/s by requests in flight,
# and the compute rate per mode (needs root: network namespaces).
bench-net: $(APFVM) deps-bench
	$(Q)scripts/bench_net.sh
# Working-set replay against demand paging in each mode and an eager load,
# the reference guest and a restored Linux, memory over the netem link
# (needs root: network namespaces; docs/working-set.md).
bench-prefetch: $(APFVM) deps-bench
	$(Q)scripts/bench_prefetch.sh
# apfvm serve under attack: a fetch's time with 64 hostile clients against
# its time alone (loopback; no KVM, no root).
bench-serve: $(APFVM) $(SERVE_ATTACK)
	$(Q)scripts/bench_serve.sh
bench-arm64: arm64 deps-bench
	$(Q)scripts/bench_arm64.sh $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -path $(BUILD)/arm64 -prune -o -name '*.d' -print 2>/dev/null)
