/*
 * kvm_hint: what the command line adds when a run cannot have KVM: on a
 * machine without a usable /dev/kvm, the way to run apfvm anyway, inside
 * the emulated KVM host (scripts/emuhost/emuhost, docs/emulated-host.md).
 */
#ifndef APFVM_KVM_HINT_H
#define APFVM_KVM_HINT_H

#include <stddef.h>
#include <stdio.h>

/* 0 if /dev/kvm opens for reading and writing here and answers as KVM,
 * else -errno (-ENOENT: there is none). */
int kvm_hint_probe(void);

/* The emulated host's script as the user can type it from the current
 * folder: "scripts/emuhost/emuhost" in the checkout this program was
 * built in, else its absolute path; NULL when it is not found next to
 * this program (an installed copy).  Written into buf. */
const char *kvm_hint_emuhost(char *buf, size_t len);

/* One line on f, "apfvm CMD: hint: ...", for a run that failed where
 * /dev/kvm is not usable (err, from kvm_hint_probe()): the command line
 * prog argv[0..argc) again (argv[0] is the command), shell-quoted, inside
 * the emulated host emuhost (NULL: named as the source tree's). */
void kvm_hint_print(FILE *f, int err, const char *emuhost, const char *prog, int argc,
		    char **argv);

#endif
