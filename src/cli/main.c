/*
 * apfvm: command-line front end.  Parses options, calls the library
 * (apfvm/vmm.h) and is the only place that prints errors and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apfvm/vmm.h"
#include "image/image.h"
#include "image/initramfs.h"
#include "net/page_server.h"
#include "arch/platform.h"
#include "util/file.h"
#include "bench.h"
#include "fetch.h"
#include "kvm_hint.h"
#include "objstore/obj_store.h"
#include "options.h"
#include "util/units.h"
#include "ws.h"

static const char main_usage[] =
	"Usage: apfvm COMMAND [OPTIONS]\n"
	"Run VMs whose memory is served lazily, with and without async page faults.\n"
	"\n"
	"Commands:\n"
	"  run       boot the guest kernel and run workloads on lazily served memory\n"
	"  restore   go on with a snapshot's guest, its memory served lazily\n"
	"  mkimage   write a deterministic memory image for --source file:PATH\n"
	"  serve     serve an image's pages over TCP (the page server protocol)\n"
	"  pack      lay an image out for object storage (S3, HTTP): chunks, zstd, manifest\n"
	"  fetch     read a page source without a VM: pages/s, latency, content checked\n"
	"  ws        show a working-set file, or compare a replayed one with what was used\n"
	"  bench     compare the async page fault modes side by side\n"
	"  platform  name this machine's KVM (the platform figures come from)\n"
	"\n"
	"Options:\n"
	"  -h, --help      this help ('apfvm COMMAND --help' for a command's options)\n"
	"  --version       print the version\n";

#define APFVM_VERSION "0.1.0"

/* This program as it was typed (main's argv[0]), for the hint. */
static const char *self = "apfvm";

/* Debian's busybox-static: the shell of apfvm's initramfs, when present. */
#define LINUX_BUSYBOX "/bin/busybox"

/* An output of the run (the snapshot and its memory, the console, the
 * statistics) that is one of its inputs (the guest, kernel, initrd, the
 * image of --source file:, the snapshot restored) would replace or
 * truncate it: refused before anything is read or written. */
static int outputs_over_inputs(const struct run_options *o, struct apf_err *e)
{
	const char *in[5] = { o->guest_path, o->kernel_path, o->initrd_path,
			      o->cfg.source && !strncmp(o->cfg.source, "file:", 5) ? o->cfg.source + 5
										  : NULL,
			      o->cfg.restore_path };
	char mem[4200] = "";
	if (o->cfg.snapshot_path)
		snprintf(mem, sizeof(mem), "%s.mem", o->cfg.snapshot_path);
	const char *out[4] = { o->cfg.snapshot_path, mem[0] ? mem : NULL, o->console_path,
			       o->stats_json && strcmp(o->stats_json, "-") ? o->stats_json : NULL };
	for (int i = 0; i < 5; i++) {
		struct stat st;
		if (!in[i] || stat(in[i], &st))
			continue;
		for (int k = 0; k < 4; k++)
			if (out[k] && file_is(out[k], &st))
				return apf_fail(e, -EINVAL, "'%s' is an input of the run ('%s'); it "
						"would be overwritten: write elsewhere", out[k], in[i]);
	}
	return 0;
}

/* The options of run or restore, checked against the snapshot and the
 * files they name: -1 to go on, else the exit status (0: help printed). */
static int run_options_get(int argc, char **argv, struct run_options *o)
{
	struct apf_err e = { "" };

	if (options_parse_run(argc, argv, o, &e)) {
		fprintf(stderr, "apfvm %s: %s\n", argv[0], e.msg);
		return 2;
	}
	if (o->help) {
		fputs(strcmp(argv[0], "restore") ? options_run_usage : options_restore_usage, stdout);
		return 0;
	}
	if (o->cfg.restore_path && !o->apf_given &&
	    apfvm_snapshot_mode(o->cfg.restore_path, &o->cfg.apf, &e)) {
		fprintf(stderr, "apfvm %s: %s\n", argv[0], e.msg);
		return 1;
	}
	if (outputs_over_inputs(o, &e)) {
		fprintf(stderr, "apfvm %s: %s\n", argv[0], e.msg);
		return 2;
	}
	return -1;
}

/* What a run reads into memory before it starts, freed after it. */
struct run_inputs {
	void *elf, *kernel, *initrd, *busybox;
};

static void run_inputs_free(struct run_inputs *in)
{
	free(in->elf);
	free(in->kernel);
	free(in->initrd);
	free(in->busybox);
}

static const char *read_error(int rc)
{
	return rc == -EFBIG ? "not a regular file of at most 256 MiB" : strerror(-rc);
}

/* --guest, or --kernel (with --initrd, or busybox for apfvm's initramfs),
 * read into in and handed to o->cfg.  0, or -1 with the error printed. */
static int run_inputs_read(const char *cmd, struct run_options *o, struct run_inputs *in)
{
	int rc;

	if (o->guest_path) {
		rc = file_read_all(o->guest_path, &in->elf, &o->cfg.guest_elf_len);
		if (rc) {
			fprintf(stderr, "apfvm %s: cannot read guest '%s': %s\n", cmd, o->guest_path,
				read_error(rc));
			return -1;
		}
		o->cfg.guest_elf = in->elf;
		o->cfg.guest_name = o->guest_path;
	}
	if (!o->kernel_path)
		return 0;
	rc = file_read_all(o->kernel_path, &in->kernel, &o->cfg.linux_kernel_len);
	if (!rc && o->initrd_path)
		rc = file_read_all(o->initrd_path, &in->initrd, &o->cfg.linux_initrd_len);
	if (rc) {
		const char *path = in->kernel && o->initrd_path ? o->initrd_path : o->kernel_path;
		fprintf(stderr, "apfvm %s: cannot read '%s': %s\n", cmd, path, read_error(rc));
		return -1;
	}
	o->cfg.linux_kernel = in->kernel;
	o->cfg.linux_initrd = in->initrd;
	/* Debian's busybox-static, if installed, gives apfvm's initramfs a
	 * shell (apfvm.sh=...); without it, no shell. */
	if (!in->initrd && file_read_all(LINUX_BUSYBOX, &in->busybox, &o->cfg.linux_busybox_len) == 0) {
		if (initramfs_static_elf(in->busybox, o->cfg.linux_busybox_len))
			o->cfg.linux_busybox = in->busybox;
	}
	o->cfg.console = stdout; /* the Linux console is the run's output */
	return 0;
}

/* The summary on stdout: the snapshot written, or the statistics (also
 * those of a run that failed once its tasks had started). */
static void run_summary(const struct run_options *o, int rc, const struct apfvm_stats *st)
{
	if (o->quiet)
		return;
	if (!rc && st->snapshot_taken)
		printf("apfvm: snapshot of the guest at %.3f s written to %s and %s.mem\n",
		       st->snapshot_at_s, o->cfg.snapshot_path, o->cfg.snapshot_path);
	else if (rc == 0 || st->ntasks)
		apfvm_stats_print(stdout, st);
}

/* --stats-json: the exit status, 0 or 1. */
static int run_stats_json(const char *cmd, const char *path, const struct apfvm_stats *st)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
	if (!f) {
		fprintf(stderr, "apfvm %s: cannot write '%s': %s\n", cmd, path, strerror(errno));
		return 1;
	}
	int rc = apfvm_stats_write_json(f, st);
	if (f != stdout && fclose(f))
		rc = -1;
	if (rc) {
		fprintf(stderr, "apfvm %s: error writing '%s'\n", cmd, path);
		return 1;
	}
	return 0;
}

/* After a failed run: on a machine whose /dev/kvm is missing or not
 * usable, the same command line inside the emulated KVM host (x86-64: the
 * emulated host of arm64 runs only static arm64 programs). */
static void run_kvm_hint(int argc, char **argv)
{
#if defined(__x86_64__)
	char emuhost[4200];
	int err = kvm_hint_probe();

	if (err && !getenv("EMUHOST_INSIDE"))
		kvm_hint_print(stderr, err, kvm_hint_emuhost(emuhost, sizeof(emuhost)), self, argc,
			       argv);
#else
	(void)argc;
	(void)argv;
#endif
}

static int cmd_run(int argc, char **argv)
{
	struct run_options o;
	struct run_inputs in = { 0 };
	struct apfvm_stats st;
	struct apf_err e = { "" };
	FILE *console = NULL;

	int status = run_options_get(argc, argv, &o);
	if (status >= 0)
		return status;
	if (run_inputs_read(argv[0], &o, &in)) {
		run_inputs_free(&in);
		return 2;
	}
	if (o.verbose)
		o.cfg.console = stderr;
	if (o.console_path) {
		console = fopen(o.console_path, "w");
		if (!console) {
			fprintf(stderr, "apfvm %s: cannot write '%s': %s\n", argv[0], o.console_path,
				strerror(errno));
			run_inputs_free(&in);
			return 2;
		}
		o.cfg.console = console;
	}
	const char *caveat = o.cfg.apf == APFVM_APF_USER ? platform_apf_user_caveat() : NULL;
	if (caveat)
		fprintf(stderr, "apfvm %s: warning: %s\n", argv[0], caveat);
	int rc = apfvm_run(&o.cfg, &st, &e);
	bool console_lost = console && fclose(console);
	run_inputs_free(&in);
	if (console_lost) {
		fprintf(stderr, "apfvm %s: error writing '%s'\n", argv[0], o.console_path);
		if (!rc)
			return 1;
	}
	run_summary(&o, rc, &st);
	if (rc) {
		fprintf(stderr, "apfvm %s: %s\n", argv[0], e.msg);
		run_kvm_hint(argc, argv);
		return 1;
	}
	return o.stats_json ? run_stats_json(argv[0], o.stats_json, &st) : 0;
}

static int cmd_mkimage(int argc, char **argv)
{
	struct mkimage_options o;
	struct apf_err e = { "" };
	char sz[32];

	if (options_parse_mkimage(argc, argv, &o, &e)) {
		fprintf(stderr, "apfvm mkimage: %s\n", e.msg);
		return 2;
	}
	if (o.help) {
		fputs(options_mkimage_usage, stdout);
		return 0;
	}
	if (image_create(o.path, o.size, o.seed, &e)) {
		fprintf(stderr, "apfvm mkimage: %s\n", e.msg);
		return 1;
	}
	units_format_size(o.size, sz, sizeof(sz));
	printf("apfvm mkimage: wrote %s (%s of data, seed %llu)\n", o.path, sz,
	       (unsigned long long)o.seed);
	return 0;
}

static atomic_int serve_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	atomic_store(&serve_stop, 1);
}

static int cmd_serve(int argc, char **argv)
{
	struct serve_options o;
	struct page_server s;
	struct apf_err e = { "" };
	struct sigaction sa = { .sa_handler = on_stop_signal };

	if (options_parse_serve(argc, argv, &o, &e)) {
		fprintf(stderr, "apfvm serve: %s\n", e.msg);
		return 2;
	}
	if (o.help) {
		fputs(options_serve_usage, stdout);
		return 0;
	}
	const char *what = o.image ? o.image : o.snapshot;
	if (page_server_open(&s, what, !o.image, o.listen, &o.cfg, &e)) {
		fprintf(stderr, "apfvm serve: %s\n", e.msg);
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("apfvm serve: %s%s, %llu pages, on port %u\n", o.image ? "" : "the memory of ", what,
	       (unsigned long long)s.npages, s.port);
	fflush(stdout);
	int rc = page_server_run(&s, &serve_stop, &e);
	struct page_server_stats ss;
	page_server_stats(&s, &ss);
	page_server_close(&s);
	printf("apfvm serve: stopped; %llu READs answered, %llu pages sent, %llu connections "
	       "answered busy\n", (unsigned long long)ss.reads, (unsigned long long)ss.pages,
	       (unsigned long long)ss.refusals);
	if (rc) {
		fprintf(stderr, "apfvm serve: %s\n", e.msg);
		return 1;
	}
	return 0;
}

static int cmd_pack(int argc, char **argv)
{
	struct pack_options o;
	struct obj_pack_stats st;
	struct apf_err e = { "" };

	if (options_parse_pack(argc, argv, &o, &e)) {
		fprintf(stderr, "apfvm pack: %s\n", e.msg);
		return 2;
	}
	if (o.help) {
		fputs(options_pack_usage, stdout);
		return 0;
	}
	if (obj_pack(o.image, o.snapshot, o.dest, o.chunk_pages, o.level, &o.store, &st, &e)) {
		fprintf(stderr, "apfvm pack: %s\n", e.msg);
		return 1;
	}
	printf("apfvm pack: %s -> %s: %llu pages in %llu chunks of %u pages (%llu all-zero, %llu "
	       "stored raw); %s.data holds %llu bytes (%.1f%% of the pages)\n",
	       o.image, o.dest, (unsigned long long)st.npages, (unsigned long long)st.nchunks,
	       o.chunk_pages, (unsigned long long)st.zero_chunks, (unsigned long long)st.raw_chunks,
	       o.dest, (unsigned long long)st.data_bytes,
	       st.npages ? 100.0 * (double)st.data_bytes / ((double)st.npages * 4096) : 0);
	return 0;
}

int main(int argc, char **argv)
{
	self = argv[0];
	if (argc < 2) {
		fputs(main_usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(main_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("apfvm %s\n", APFVM_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run") || !strcmp(argv[1], "restore"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mkimage"))
		return cmd_mkimage(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "platform")) {
		char name[96];
		if (argc > 2) {
			fputs("Usage: apfvm platform\nPrints the platform: architecture, the KVM "
			      "implementation behind /dev/kvm,\nand whether this machine is itself "
			      "emulated or a guest.\n", strcmp(argv[2], "--help") ? stderr : stdout);
			return strcmp(argv[2], "--help") ? 2 : 0;
		}
		puts(platform_describe(name, sizeof(name)));
		return 0;
	}
	if (!strcmp(argv[1], "bench"))
		return bench_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "pack"))
		return cmd_pack(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fetch"))
		return fetch_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ws"))
		return ws_main(argc - 1, argv + 1);
	fprintf(stderr, "apfvm: unknown command '%s' (try 'apfvm --help')\n", argv[1]);
	return 2;
}
