/*
 * machine_ws: the machine's working sets (docs/working-set.md).  With
 * --prefetch, the file is read and checked against the memory it must
 * describe (the snapshot's, or the lazy region's source) before any pager
 * starts, and split into one prefetch list per region; with --record-ws,
 * each region's pager keeps its first faults and, after a run that ended
 * well, they are merged in first-touch order and written.
 *
 * Pages are numbered as a snapshot's memory file orders them: resident
 * memory first, then the lazy region.  A boot (apfvm run) serves only the
 * lazy region lazily: its working set has no resident pages.
 */
#ifndef APFVM_MACHINE_WS_H
#define APFVM_MACHINE_WS_H

#include "machine.h"

/* Notes the memory a working set describes (with --prefetch or
 * --record-ws) and reads --prefetch's file into m->ws.  Before the pagers
 * are made; the regions' sizes and sources are known. */
int machine_ws_load(struct machine *m, struct apf_err *e);

/* Writes --record-ws's file from the stopped pagers' first faults. */
int machine_ws_record(struct machine *m, struct apf_err *e);

void machine_ws_free(struct machine *m);

#endif
