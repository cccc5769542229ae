/*
 * config: struct apfvm_config (apfvm/vmm.h): its defaults, its checks
 * before anything is built, and the settings it gives the page sources.
 */
#ifndef APFVM_CONFIG_H
#define APFVM_CONFIG_H

#include "apfvm/vmm.h"
#include "source/source.h"

/* Every bound apfvm_run() puts on c; the first one broken, with a message
 * in the command line's terms. */
int config_check(const struct apfvm_config *c, struct apf_err *e);

#endif
