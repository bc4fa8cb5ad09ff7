/* clockstep_shim.c - LD_PRELOAD for test_clockstep.py: the wall clock
 * (CLOCK_REALTIME and its coarse form, time(), gettimeofday()) is stepped
 * by the signed number of seconds in the file named by CLOCKSTEP_FILE
 * (none, or no file: no step), as NTP steps an edge box's clock while the
 * daemon runs.  CLOCK_MONOTONIC is left alone.  The file is read again at
 * most every 20 ms (monotonic).  Built by the test. */
#include "shim.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>

static _Atomic int64_t offset_s, read_at_ms = -1000000;

static int raw_gettime(clockid_t id, struct timespec *ts)
{
        return (int)syscall(SYS_clock_gettime, id, ts);
}

static int64_t step_s(void)
{
        struct timespec m;
        raw_gettime(CLOCK_MONOTONIC, &m);
        int64_t now = (int64_t)m.tv_sec * 1000 + m.tv_nsec / 1000000;
        if (now - atomic_load(&read_at_ms) >= 20) {
                atomic_store(&read_at_ms, now);
                const char *path = getenv("CLOCKSTEP_FILE");
                long long v = 0;
                FILE *f = path ? fopen(path, "re") : NULL;
                if (f) {
                        if (fscanf(f, "%lld", &v) != 1)
                                v = 0;
                        fclose(f);
                }
                atomic_store(&offset_s, (int64_t)v);
        }
        return atomic_load(&offset_s);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
        int rc = raw_gettime(id, ts);
        if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
                ts->tv_sec += (time_t)step_s();
        return rc;
}

time_t time(time_t *t)
{
        struct timespec ts;
        raw_gettime(CLOCK_REALTIME, &ts);
        time_t v = ts.tv_sec + (time_t)step_s();
        if (t)
                *t = v;
        return v;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
        (void)tz;
        struct timespec ts;
        raw_gettime(CLOCK_REALTIME, &ts);
        if (tv) {
                tv->tv_sec = ts.tv_sec + (time_t)step_s();
                tv->tv_usec = ts.tv_nsec / 1000;
        }
        return 0;
}
