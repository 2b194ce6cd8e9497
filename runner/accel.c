/* accel.c: KVM or TCG, and when to give KVM up (see accel.h). No I/O: the caller opens /dev/kvm. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* asprintf */
#endif
#include "accel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int accel_choose(QemuAccel requested, int kvm_error, bool start_script, const char *node, AccelChoice *ret,
                 char **ret_message) {
        char *m = NULL;

        *ret = (AccelChoice) { .kvm = false };
        *ret_message = NULL;
        if (start_script)
                return 0;       /* the script picks its accelerator */

        switch (requested) {
        case QEMU_ACCEL_TCG:
                return 0;
        case QEMU_ACCEL_KVM:
                if (kvm_error < 0) {
                        if (asprintf(&m, "node %s: accel = \"kvm\" needs /dev/kvm, which cannot be opened (%s): load "
                                     "the kvm module (modprobe kvm_intel or kvm_amd), let moonrig open /dev/kvm "
                                     "(root, or the kvm group), or use accel = \"auto\" (KVM, else TCG) or \"tcg\"",
                                     node, strerror(-kvm_error)) >= 0)
                                *ret_message = m;
                        return kvm_error;
                }
                ret->kvm = true;
                return 0;
        case QEMU_ACCEL_KVM_OR_TCG:
                if (kvm_error < 0) {
                        if (asprintf(&m, "node %s: /dev/kvm cannot be opened (%s): running under TCG", node,
                                     strerror(-kvm_error)) >= 0)
                                *ret_message = m;
                        return 0;
                }
                *ret = (AccelChoice) { .kvm = true, .probe = true };
                return 0;
        }
        return -EINVAL;
}

bool accel_probe_gives_up(bool kvm, bool booting, bool console_seen) {
        return kvm && booting && !console_seen;
}

bool accel_falls_back(QemuAccel requested, bool kvm, bool booting, bool probe_gave_up, bool console_seen) {
        return requested == QEMU_ACCEL_KVM_OR_TCG && kvm && booting && (probe_gave_up || !console_seen);
}
