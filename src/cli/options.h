/*
 * options: the command lines of `apfvm run`, `restore`, `mkimage`, `serve`
 * and `pack` (and fetch.c's), parsed into plain structures without side
 * effects (unit-tested on their own).
 * Every value is validated here, with a message that names the option.
 */
#ifndef APFVM_OPTIONS_H
#define APFVM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
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
	bool per_peer_given;     /* --max-per-peer appeared (else at most --max-clients) */
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

/* A fraction ("0.25", "1", ".5") or a percentage ("25%", "12.5%") into
 * millionths (*ppm; 1 is 1000000).  Digits and at most one point, nothing
 * else (no sign, exponent or space), no finer than a millionth.  0, or
 * -EINVAL; the caller checks the range. */
int options_parse_fraction(const char *s, uint64_t *ppm);

/* --scan-fraction and --scan-drift together (apf_scan_params_ok: the
 * replaced pages must fit outside the undrifted set); each alone is
 * checked when parsed.  0, or -EINVAL with a message naming both. */
int options_check_scan(const struct apfvm_config *c, struct apf_err *e);
#define OPTIONS_SCAN_FRACTION_WANT "a fraction in (0, 1] such as 0.25, or a percentage such as 25%"
#define OPTIONS_SCAN_DRIFT_WANT "a fraction in [0, 1] such as 0.3, or a percentage such as 30%"

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
int options_parse_serve(int argc, char **argv, struct serve_options *o, struct apf_err *e);
int options_parse_pack(int argc, char **argv, struct pack_options *o, struct apf_err *e);

/*
 * The option tables every parser here is made of (fetch.c's too).  A
 * table lists, per option, its names, the kind of its value and the field
 * of the table's base structure it goes to; options_parse() reads argv
 * with getopt_long against one or more tables, in the order they list.
 */
enum options_kind {
	OPTK_FLAG,     /* no value: the bool field becomes true */
	OPTK_HELP,     /* no value: the bool field becomes true, and parsing stops */
	OPTK_STRING,   /* a const char * field: the value itself (argv's) */
	OPTK_SIZE,     /* bytes (units_parse_size: K, M, G), in [min, max] */
	OPTK_DURATION, /* ns (units_parse_duration: ns, us, ms, s), in [min, max] */
	OPTK_UINT,     /* an unsigned integer, in [min, max] */
	OPTK_ENUM,     /* one of names: an int or enum field becomes its value */
	OPTK_FRACTION, /* millionths (options_parse_fraction: 0.25, 25%), in [min, max] */
	OPTK_CUSTOM,   /* parse() reads it */
	OPTK_FLAG_WORD, /* no value, or one of names as the next argument
			 * ("--populate background"): parse() gets it or NULL */
};

struct options_name {
	const char *name;
	int value;
};

struct options_spec {
	const char *name;  /* the long name, without "--"; NULL ends a table */
	char short_name;   /* also -X, or 0 */
	enum options_kind kind;
	size_t off, size;  /* the field: offset in the base, size (numbers: 4 or 8 bytes) */
	size_t given;      /* 1 + the offset of a bool set when the option appears; 0: none */
	uint64_t min, max; /* SIZE, DURATION, UINT: the accepted range, bounds included */
	uint64_t align;    /* SIZE: the value is a multiple of it (0: any) */
	const struct options_name *names; /* ENUM, FLAG_WORD: the values, ended by a NULL name */
	/* CUSTOM: 0 or -EINVAL with a message (which may use want). */
	int (*parse)(const struct options_spec *s, const char *arg, void *base, struct apf_err *e);
	const char *want;  /* a bad value's message: "--NAME: invalid value 'ARG' (WANT)" */
};

#define OPTIONS_FIELD(type, field) .off = offsetof(type, field), .size = sizeof(((type *)0)->field)
#define OPTIONS_GIVEN(type, field) .given = offsetof(type, field) + 1

struct options_table {
	const struct options_spec *spec;
	void *base;        /* where the spec's fields are */
};

/* The remote sources' options (--fetch-timeout, --fetch-tries,
 * --s3-endpoint, --s3-region, --cache-size, --cache-dir,
 * --cache-dir-size), shared by run, restore and fetch: a table whose base
 * is a struct apfvm_config (its fetch_timeout_ns ... object_cache_dir). */
extern const struct options_spec options_remote[];

/* Reads the options of argv[1..] (argv[0] is the command; cmd names it in
 * messages) against the ntables tables, each value checked and stored,
 * until the end or an OPTK_HELP option.  getopt_long moves the operands
 * last: optind is then the first of them.  0, or -EINVAL with a message
 * naming the option: a usage error as options_unknown() or "option '...'
 * needs a value", a bad value as the spec's want says. */
int options_parse(int argc, char **argv, const char *cmd, const struct options_table *tables,
		  size_t ntables, struct apf_err *e);

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
