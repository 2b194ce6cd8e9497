/* clock.c: the one clock of the run: CLOCK_MONOTONIC in microseconds, as sd-event counts it. */
#include <time.h>

#include "util.h"

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}
