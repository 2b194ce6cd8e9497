/* accel.h: which accelerator a VM runs under, KVM or TCG, and when KVM is given up for TCG: the
 * decisions only (qemu.c does the opening, the spawning and the watching), so that every branch is
 * unit-tested on machines that have no /dev/kvm. */
#pragma once

#include <stdbool.h>

#include "qemu.h"

typedef struct AccelChoice {
        bool kvm;               /* -accel kvm */
        bool probe;             /* watch the guest's console: silent for kvm_probe_usec, give KVM up */
} AccelChoice;

/* The accelerator for a start of node's VM: requested is its accel, kvm_error what opening
 * /dev/kvm gave (0 when it opened, else a negative errno), start_script whether the user's script
 * runs QEMU (it picks its own accelerator: TCG as far as we are concerned).
 *   tcg:             TCG.
 *   kvm:             KVM; -ENOENT/-EACCES/... (kvm_error) when /dev/kvm cannot be opened, with a
 *                    message in *ret_message naming /dev/kvm and what to do.
 *   auto (KVM_OR_TCG): KVM with the console probe when /dev/kvm opens; else TCG, with a notice
 *                    in *ret_message saying so.
 * *ret_message is NULL when there is nothing to say; free it. */
int accel_choose(QemuAccel requested, int kvm_error, bool start_script, const char *node, AccelChoice *ret,
                 char **ret_message);

/* The console probe fired: whether to kill a QEMU that runs under KVM and is still booting because
 * the guest has printed nothing (nested KVM here does not fail, it crawls). */
bool accel_probe_gives_up(bool kvm, bool booting, bool console_seen);

/* QEMU exited while booting: whether to start it again under TCG. Only for accel auto, only from
 * KVM, and only when the probe gave KVM up or the guest never printed anything (QEMU failing to
 * set KVM up); a guest that printed and then died is a real failure, not KVM's. */
bool accel_falls_back(QemuAccel requested, bool kvm, bool booting, bool probe_gave_up, bool console_seen);
