/* clockshift: moves the wall clock of one process tree (LD_PRELOAD), leaving its monotonic clock alone,
 * which is what a real clock jump does (an NTP step, an administrator's `date -s`). bench/faults.py
 * compiles it, points CLOCKSHIFT_FILE at 8 bytes holding the shift in seconds (a little-endian int64),
 * and rewrites those bytes in place to jump: the preloaded processes read them through a shared mapping.
 * (libfaketime 0.9.10 with DONT_FAKE_MONOTONIC makes every clock_nanosleep fail with EINVAL.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile const long long *shift;
static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int (*real_gettimeofday)(struct timeval *, void *);

static void __attribute__((constructor)) clockshift_init(void) {
    real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    real_gettimeofday = dlsym(RTLD_NEXT, "gettimeofday");
    const char *path = getenv("CLOCKSHIFT_FILE");
    if (path == NULL)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    void *p = mmap(NULL, sizeof(long long), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED)
        shift = p;
}

static long long offset(void) { return shift ? *shift : 0; }

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (real_clock_gettime == NULL)
        clockshift_init();
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec += offset();
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    if (real_gettimeofday == NULL)
        clockshift_init();
    int rc = real_gettimeofday(tv, tz);
    if (rc == 0 && tv != NULL)
        tv->tv_sec += offset();
    return rc;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t != NULL)
        *t = ts.tv_sec;
    return ts.tv_sec;
}
