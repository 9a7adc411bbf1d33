/* fiber-million: keeps N fibers (default 1,000,000) alive at once, each parked on its own
 * guard-paged stack, and reports time and memory per fiber.
 *   fiber-million [N] */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fiber.h"

static fiber_waitq_t gate = FIBER_WAITQ_INIT;
static size_t parked;

static void park_here(void *arg)
{
    (void)arg;
    parked++;
    fiber_waitq_wait(&gate, FIBER_FOREVER);
}

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void opener(void *arg)
{
    size_t n = *(size_t *)arg;
    while (parked < n)
        fiber_yield();
    /* Every fiber is alive and parked now: measure, then release them all. */
    printf("live fibers: %zu (guard pages via %s)\n", fiber_live_count() - 1, fiber_guard_mode());
    long rss = status_kib("VmRSS");
    printf("VmRSS: %ld KiB, %.0f bytes per fiber\n", rss, rss * 1024.0 / (double)n);
    fiber_waitq_wake_all(&gate);
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    if (argc > 2 || (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))) {
        fprintf(stderr, "usage: fiber-million [N]  (default 1000000)\n");
        return argc == 2 ? 0 : 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(argv[1], &end, 10);
        if (errno || *end || v == 0 || v > 100000000ull) {
            fprintf(stderr, "fiber-million: N must be a whole number from 1 to 100000000, not '%s'\n", argv[1]);
            return 2;
        }
        n = (size_t)v;
    }
    long rss0 = status_kib("VmRSS");
    uint64_t t0 = fiber_now_ns();
    fiber_attr_t at = { .detached = 1 };
    for (size_t i = 0; i < n; i++) {
        if (!fiber_spawn_ex(park_here, NULL, &at)) {
            fprintf(stderr, "fiber-million: spawn %zu failed: %s\n", i, strerror(errno));
            n = i;
            break;
        }
    }
    fiber_spawn_ex(opener, &n, &at);
    uint64_t t1 = fiber_now_ns();
    int rc = fiber_run();
    uint64_t t2 = fiber_now_ns();
    printf("spawn: %.0f ns per fiber (fresh stacks); run to the end: %.2f s; baseline RSS %ld KiB\n",
           (double)(t1 - t0) / (double)n, (double)(t2 - t1) / 1e9, rss0);
    return rc == 0 && parked == n ? 0 : 1;
}
