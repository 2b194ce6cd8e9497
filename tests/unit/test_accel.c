/* test_accel.c: every branch of the KVM/TCG decision (runner/accel.c), which the integration tests
 * cannot reach on machines without /dev/kvm: strict KVM with and without /dev/kvm, auto with and
 * without it and its fall back to TCG when the guest stays silent, TCG, and a start script. It also
 * says, as a skip, whether this machine could have run the real thing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "accel.h"

static void test_tcg(void **state) {
        (void) state;
        AccelChoice a;
        char *m = (char *) "untouched";
        /* TCG is TCG whatever /dev/kvm does, and says nothing. */
        assert_int_equal(accel_choose(QEMU_ACCEL_TCG, 0, false, "vm", &a, &m), 0);
        assert_false(a.kvm);
        assert_false(a.probe);
        assert_null(m);
        assert_int_equal(accel_choose(QEMU_ACCEL_TCG, -ENOENT, false, "vm", &a, &m), 0);
        assert_false(a.kvm);
        assert_null(m);
}

static void test_kvm_present(void **state) {
        (void) state;
        AccelChoice a;
        char *m = NULL;
        assert_int_equal(accel_choose(QEMU_ACCEL_KVM, 0, false, "vm", &a, &m), 0);
        assert_true(a.kvm);
        assert_false(a.probe);  /* strict: a slow guest under KVM is what was asked for */
        assert_null(m);
}

static void test_kvm_absent(void **state) {
        (void) state;
        AccelChoice a;
        char *m = NULL;
        assert_int_equal(accel_choose(QEMU_ACCEL_KVM, -ENOENT, false, "server", &a, &m), -ENOENT);
        assert_false(a.kvm);
        assert_non_null(m);
        assert_string_equal(m, "node server: accel = \"kvm\" needs /dev/kvm, which cannot be opened (No such file "
                               "or directory): load the kvm module (modprobe kvm_intel or kvm_amd), let moonrig "
                               "open /dev/kvm (root, or the kvm group), or use accel = \"auto\" (KVM, else TCG) "
                               "or \"tcg\"");
        free(m);
        assert_int_equal(accel_choose(QEMU_ACCEL_KVM, -EACCES, false, "server", &a, &m), -EACCES);
        assert_non_null(strstr(m, "/dev/kvm, which cannot be opened (Permission denied)"));
        free(m);
}

static void test_auto_present(void **state) {
        (void) state;
        AccelChoice a;
        char *m = NULL;
        assert_int_equal(accel_choose(QEMU_ACCEL_KVM_OR_TCG, 0, false, "vm", &a, &m), 0);
        assert_true(a.kvm);
        assert_true(a.probe);
        assert_null(m);
}

static void test_auto_absent(void **state) {
        (void) state;
        AccelChoice a;
        char *m = NULL;
        assert_int_equal(accel_choose(QEMU_ACCEL_KVM_OR_TCG, -ENOENT, false, "client", &a, &m), 0);
        assert_false(a.kvm);
        assert_false(a.probe);
        assert_string_equal(m, "node client: /dev/kvm cannot be opened (No such file or directory): running under TCG");
        free(m);
}

static void test_start_script(void **state) {
        (void) state;
        AccelChoice a;
        char *m = NULL;
        /* The script brings its own -accel: ours never goes on its command line, so nothing fails. */
        for (QemuAccel r = QEMU_ACCEL_TCG; r <= QEMU_ACCEL_KVM; r++) {
                assert_int_equal(accel_choose(r, -ENOENT, true, "vm", &a, &m), 0);
                assert_false(a.kvm);
                assert_false(a.probe);
                assert_null(m);
        }
}

/* The probe fires kvm_probe_usec after a KVM start under auto. */
static void test_probe(void **state) {
        (void) state;
        assert_true(accel_probe_gives_up(true, true, false));      /* KVM spins without output */
        assert_false(accel_probe_gives_up(true, true, true));      /* the guest talks: KVM works */
        assert_false(accel_probe_gives_up(true, false, false));    /* booted or stopping already */
        assert_false(accel_probe_gives_up(false, true, false));    /* under TCG already */
}

static void test_fall_back(void **state) {
        (void) state;
        /* auto, KVM, booting: the probe gave up, or QEMU died before the guest said anything */
        assert_true(accel_falls_back(QEMU_ACCEL_KVM_OR_TCG, true, true, true, false));
        assert_true(accel_falls_back(QEMU_ACCEL_KVM_OR_TCG, true, true, true, true));   /* last words after the kill */
        assert_true(accel_falls_back(QEMU_ACCEL_KVM_OR_TCG, true, true, false, false));
        /* a guest that printed and then died failed by itself */
        assert_false(accel_falls_back(QEMU_ACCEL_KVM_OR_TCG, true, true, false, true));
        /* after the boot (a crash, a poweroff), under TCG already, or not auto: no second start */
        assert_false(accel_falls_back(QEMU_ACCEL_KVM_OR_TCG, true, false, false, false));
        assert_false(accel_falls_back(QEMU_ACCEL_KVM_OR_TCG, false, true, true, false));
        assert_false(accel_falls_back(QEMU_ACCEL_KVM, true, true, false, false));
        assert_false(accel_falls_back(QEMU_ACCEL_TCG, false, true, false, false));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tcg),
                cmocka_unit_test(test_kvm_present),
                cmocka_unit_test(test_kvm_absent),
                cmocka_unit_test(test_auto_present),
                cmocka_unit_test(test_auto_absent),
                cmocka_unit_test(test_start_script),
                cmocka_unit_test(test_probe),
                cmocka_unit_test(test_fall_back),
        };

        /* The decision is tested below; whether QEMU really runs under KVM only a machine with
         * /dev/kvm can show (qemu_selftest's "KVM or TCG" group then runs under KVM). */
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                close(fd);
                printf("# /dev/kvm opens: qemu_selftest's \"KVM or TCG\" group runs under KVM here\n");
        } else
                printf("ok - a VM under KVM (accel \"kvm\", and \"auto\" choosing KVM) # SKIP kvm: /dev/kvm %s\n",
                       errno == ENOENT ? "is absent" : "cannot be opened");
        fflush(stdout);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
