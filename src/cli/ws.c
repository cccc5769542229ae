#include "ws.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "workset/workset.h"

const char ws_usage[] =
	"Usage: apfvm ws show FILE\n"
	"       apfvm ws compare [--csv [--csv-header]] REPLAYED ACTUAL\n"
	"Look at working-set files (--record-ws of 'apfvm restore', 'apfvm run --lazy')\n"
	"without a VM, and compare two of them (docs/working-set.md).\n"
	"\n"
	"Commands:\n"
	"  show      what a working set holds: its pages in each region, when they were\n"
	"            first touched, the memory it was recorded against\n"
	"  compare   how much of a replayed working set (--prefetch) the guest used\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help ('apfvm ws COMMAND --help' for a command's)\n"
	"\n"
	"Exit status: 0 done; 1 a file unreadable or invalid, or two files of different\n"
	"memory; 2 bad usage.\n";

static const char show_usage[] =
	"Usage: apfvm ws show FILE\n"
	"Print what the working-set file FILE holds: its pages in each region (resident,\n"
	"lazy), when the first, half, nine tenths and the last of them were first\n"
	"touched, and the identity of the memory it was recorded against.  FILE is\n"
	"checked whole, as --prefetch checks it, but for no particular snapshot.\n"
	"\n"
	"  -h, --help   this help\n";

static const char compare_usage[] =
	"Usage: apfvm ws compare [--csv [--csv-header]] REPLAYED ACTUAL\n"
	"Compare two working sets of the same memory: REPLAYED, the file a restore\n"
	"prefetched (--prefetch), with ACTUAL, one recorded (--record-ws) by a restore\n"
	"without --prefetch: the pages the guest touched.  (A page installed ahead of the\n"
	"guest never faults, so a recording made while prefetching lists only what the\n"
	"prefetch did not install in time.)  Prints the pages in each, in both\n"
	"(prefetched, then used), only in REPLAYED (prefetched, never used), only in\n"
	"ACTUAL (missed: demand faults in a replay), the overlap as a percentage of\n"
	"ACTUAL and the Jaccard index (pages in both / pages in either).\n"
	"\n"
	"  --csv          one CSV line instead: replayed,actual,both,unused,missed,jaccard\n"
	"  --csv-header   the CSV header line first (implies --csv)\n"
	"  -h, --help     this help\n";

struct ws_opts {
	bool csv, csv_header, help;
};

#define WS(field) OPTIONS_FIELD(struct ws_opts, field)

static const struct options_spec show_spec[] = {
	{ "help", 'h', OPTK_HELP, WS(help) },
	{ 0 },
};

static const struct options_spec compare_spec[] = {
	{ "csv", .kind = OPTK_FLAG, WS(csv) },
	{ "csv-header", .kind = OPTK_FLAG, WS(csv_header) },
	{ "help", 'h', OPTK_HELP, WS(help) },
	{ 0 },
};

/* A subcommand's options (argv[0] is its name; cmd is "ws NAME"), and its
 * nfiles operands into files: -1 to go on, else the exit status (0: the
 * usage printed for --help). */
static int parse(int argc, char **argv, const char *cmd, const struct options_spec *spec,
		 const char *usage, int nfiles, const char **files, struct ws_opts *o)
{
	const struct options_table table = { spec, o };
	struct apf_err e = { "" };

	if (options_parse(argc, argv, cmd, &table, 1, &e)) {
		fprintf(stderr, "apfvm %s: %s\n", cmd, e.msg);
		return 2;
	}
	if (o->help) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc - optind != nfiles) {
		fprintf(stderr, "apfvm %s: expected %s, got %d argument%s (see 'apfvm %s --help')\n",
			cmd, nfiles == 1 ? "one FILE" : "two files, REPLAYED and ACTUAL",
			argc - optind, argc - optind == 1 ? "" : "s", cmd);
		return 2;
	}
	for (int i = 0; i < nfiles; i++)
		files[i] = argv[optind + i];
	return -1;
}

/* Whatever was printed reached stdout: 0, or 1 with the error printed. */
static int flushed(const char *cmd)
{
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "apfvm %s: error writing the output\n", cmd);
		return 1;
	}
	return 0;
}

static int cmd_show(int argc, char **argv)
{
	struct ws_opts o = { 0 };
	struct workset ws;
	struct apf_err e = { "" };
	const char *file;

	int status = parse(argc, argv, "ws show", show_spec, show_usage, 1, &file, &o);
	if (status >= 0)
		return status;
	if (ws_load(file, &ws, &e)) {
		fprintf(stderr, "apfvm ws show: %s\n", e.msg);
		return 1;
	}
	ws_describe(&ws, stdout);
	ws_free(&ws);
	return flushed("ws show");
}

/* Both files loaded and compared into *c: 0, or 1 with the error printed. */
static int compare_files(const char *replayed, const char *actual, struct ws_comparison *c)
{
	struct workset a, b;
	struct apf_err e = { "" };
	int rc = ws_load(replayed, &a, &e);

	if (!rc && (rc = ws_load(actual, &b, &e)) == 0) {
		if ((rc = ws_compare(&a, &b, c, &e)))
			fprintf(stderr, "apfvm ws compare: cannot compare '%s' with '%s': %s\n",
				replayed, actual, e.msg);
		ws_free(&b);
	} else {
		fprintf(stderr, "apfvm ws compare: %s\n", e.msg);
	}
	ws_free(&a);
	return rc ? 1 : 0;
}

static int cmd_compare(int argc, char **argv)
{
	struct ws_opts o = { 0 };
	struct ws_comparison c;
	const char *files[2];

	int status = parse(argc, argv, "ws compare", compare_spec, compare_usage, 2, files, &o);
	if (status >= 0)
		return status;
	if (compare_files(files[0], files[1], &c))
		return 1;
	if (o.csv || o.csv_header)
		ws_comparison_csv(&c, o.csv_header, stdout);
	else
		ws_comparison_print(&c, stdout);
	return flushed("ws compare");
}

int ws_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(ws_usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(ws_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "show"))
		return cmd_show(argc - 1, argv + 1);
	if (!strcmp(argv[1], "compare"))
		return cmd_compare(argc - 1, argv + 1);
	fprintf(stderr, "apfvm ws: unknown command '%s' (see 'apfvm ws --help')\n", argv[1]);
	return 2;
}
