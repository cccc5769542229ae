/*
 * fetch: `apfvm fetch`, a page source read as a pager reads it (pipelined,
 * --inflight at once) but without a VM: pages per second, fetch latency,
 * and every page checked against the content the source announces.  For
 * sizing a page server and the network before a run, and the source
 * throughput benchmark (make bench-net).
 */
#ifndef APFVM_FETCH_H
#define APFVM_FETCH_H

int fetch_main(int argc, char **argv);

extern const char fetch_usage[];

#endif
