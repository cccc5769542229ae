/*
 * ws: `apfvm ws`, working-set files looked at without a VM: `show` prints
 * what one holds (ws_describe), `compare` how much of a replayed working
 * set (--prefetch) a guest then used, against one recorded without a
 * prefetch (ws_compare).  Files are read with ws_load: every check of a
 * restore's --prefetch but the binding to a snapshot, which compare
 * replaces by refusing two files of different memory.
 * Exit status: 0 done; 1 a file unreadable or invalid, or two of different
 * memory; 2 bad usage.
 */
#ifndef APFVM_WS_H
#define APFVM_WS_H

/* argv[0] is "ws", argv[1] the subcommand. */
int ws_main(int argc, char **argv);

extern const char ws_usage[];

#endif
