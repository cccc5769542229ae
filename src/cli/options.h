/*
 * options: the command line of `apfvm run` and `apfvm mkimage`, parsed
 * into plain structures without side effects (unit-tested on their own).
 * Every value is validated here, with a message that names the option.
 */
#ifndef APFVM_OPTIONS_H
#define APFVM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "apfvm/vmm.h"
#include "net/page_server.h"
#include "objstore/obj_store.h"
#include "util/err.h"

struct run_options {
	struct apfvm_config cfg;
	const char *guest_path;  /* NULL: the built-in guest */
	const char *kernel_path; /* a Linux bzImage instead, or NULL */
	const char *initrd_path; /* its initrd, or NULL */
	bool workload_given;     /* --workload appeared */
	bool apf_given;          /* --apf appeared (restore: else the snapshot's mode) */
	bool source_given;       /* --source appeared (restore: the memory's source) */
	const char *console_path; /* --console: the guest console's file, or NULL */
	const char *stats_json;  /* NULL: none */
	bool verbose;            /* echo the guest console */
	bool quiet;              /* no summary */
	bool help;
};

struct mkimage_options {
	uint64_t size;
	uint64_t seed;
	const char *path;
	bool help;
};

struct serve_options {
	const char *image;
	const char *snapshot;
	const char *listen;
	struct page_server_config cfg;
	bool help;
};

struct pack_options {
	const char *image, *dest;
	bool snapshot;           /* IMAGE is a snapshot: its memory is packed */
	uint32_t chunk_pages;
	int level;
	struct obj_store_options store;
	bool help;
};

/* Parses "compute:1,scan:2" (KIND[:COUNT], COUNT >= 1, default 1) into
 * cfg->tasks / cfg->ntasks. */
int options_parse_workload(const char *spec, struct apfvm_config *cfg, struct apf_err *e);

/* The first CPU this process may run on (its affinity mask): where "same"
 * pins both threads, and the default.  0 if the mask cannot be read. */
int options_default_cpu(void);

/* Parses "none", "same[:CPU]", "split" or "VCPU,PAGER" (CPU numbers).  A
 * CPU outside this process's set is not caught here: apfvm_run() fails
 * with "cannot pin" when it starts the thread. */
int options_parse_pin(const char *spec, int ncpus, int *vcpu_cpu, int *pager_cpu,
		      struct apf_err *e);

/* argv[0] is "run", "restore" (which takes the snapshot path and refuses
 * what the snapshot fixes) or "mkimage".  Returns 0, or -EINVAL with a
 * message. */
int options_parse_run(int argc, char **argv, struct run_options *o, struct apf_err *e);
int options_parse_mkimage(int argc, char **argv, struct mkimage_options *o, struct apf_err *e);
/* The remote sources' options, shared by run, restore and fetch: their
 * getopt_long codes, table entries and parser (into c's fetch_timeout_ns
 * ... object_cache_dir). */
enum {
	OPT_FETCH_TIMEOUT = 1000, OPT_FETCH_TRIES, OPT_S3_ENDPOINT, OPT_S3_REGION, OPT_CACHE_SIZE,
	OPT_CACHE_DIR, OPT_CACHE_DIR_SIZE,
};
#define OPTIONS_REMOTE_LONGOPTS                                                  \
	{ "fetch-timeout", required_argument, NULL, OPT_FETCH_TIMEOUT },          \
	{ "fetch-tries", required_argument, NULL, OPT_FETCH_TRIES },              \
	{ "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },              \
	{ "s3-region", required_argument, NULL, OPT_S3_REGION },                  \
	{ "cache-size", required_argument, NULL, OPT_CACHE_SIZE },                \
	{ "cache-dir", required_argument, NULL, OPT_CACHE_DIR },                  \
	{ "cache-dir-size", required_argument, NULL, OPT_CACHE_DIR_SIZE }
/* 0, 1 when opt is not one of them, or -EINVAL with a message. */
int options_parse_remote(int opt, const char *arg, struct apfvm_config *c, struct apf_err *e);

int options_parse_serve(int argc, char **argv, struct serve_options *o, struct apf_err *e);
int options_parse_pack(int argc, char **argv, struct pack_options *o, struct apf_err *e);

/* The usage error for the option getopt_long just rejected (opt '?'):
 * names an unknown option, or a flag given a value ("--populate=1"). */
struct option;
int options_unknown(struct apf_err *e, int argc, char **argv, const char *cmd,
		    const struct option *longopts);

extern const char options_run_usage[];
extern const char options_pack_usage[];
extern const char options_mkimage_usage[];
extern const char options_restore_usage[];
extern const char options_serve_usage[];

#endif
