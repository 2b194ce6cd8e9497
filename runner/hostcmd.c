/* hostcmd.c: host commands (see hostcmd.h). */
#define _GNU_SOURCE
#include <spawn.h>

#include "hostcmd.h"

int hostcmd_spawn(char *const argv[], pid_t *ret_pid) {
        extern char **environ;

        return -posix_spawnp(ret_pid, argv[0], NULL, NULL, argv, environ);
}

int hostcmd_status(const siginfo_t *si) {
        return si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
}
