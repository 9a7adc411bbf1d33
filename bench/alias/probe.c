/*
 * probe.c - one process of the 4K-aliasing probe (issue 10): the pooled spawn+join loop
 * of bench/alloc.c (group 1), pinned, timed in thread CPU time, with the addresses that
 * could alias printed beside the time. Run by bench/alias/run.sh in many processes.
 *
 *   probe [ALLOCA_BYTES [BATCHES [ITERS]]]
 *
 * ALLOCA_BYTES (default -1: none) lowers main's stack by that many bytes before the
 * loop, to move the joiner's frame against the fiber's stack at will.
 * Prints one line: ns (median of batches), ns_min, the calibration loops' medians (adds
 * per ns over 4 independent chains; GHz from one dependent chain), the CPU, then each
 * address mod 4096.
 */
#define _GNU_SOURCE
#include "../../fiber/src/internal.h"
#include "fiber.h"

#include <alloca.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uintptr_t rec_addr, fib_sp;

static void work(void *arg)
{
    (void)arg;
    __asm__ volatile("" ::: "memory");
}

static void probe_fn(void *arg)
{
    (void)arg;
    rec_addr = (uintptr_t)fiber__rec(fiber_self());
    fib_sp = (uintptr_t)__builtin_frame_address(0);
}

static double thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The co-measured calibration: register adds in 4 independent chains, ns per add. It
 * touches no memory and calls nothing, so no address of this process can change it;
 * it moves only with what the core gives this thread (clock, issue slots). */
static double cal_adds(long n)
{
    unsigned long a = 1, b = 2, c = 3, d = 4;
    double t0 = thread_ns();
    for (long i = 0; i < n; i++)
        __asm__ volatile("add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3\n\t"
                         "add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3"
                         : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
    return (thread_ns() - t0) / (n * 8.0);
}

/* The same, one dependent chain: one add per cycle, so ns per add is the clock period. */
static double cal_dep(long n)
{
    unsigned long x = 1;
    double t0 = thread_ns();
    for (long i = 0; i < n; i++)
        __asm__ volatile("add %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0" : "+r"(x));
    return (thread_ns() - t0) / (n * 4.0);
}

static __attribute__((noinline)) void loop(long iters, int batches, uintptr_t *loop_sp)
{
    double t[64], ca[64], cd[64];
    *loop_sp = (uintptr_t)__builtin_frame_address(0);
    for (long i = 0; i < iters; i++) /* warm */
        fiber_join(fiber_spawn(work, NULL));
    for (int b = 0; b < batches; b++) {
        ca[b] = cal_adds(100000);
        cd[b] = cal_dep(100000);
        double t0 = thread_ns();
        for (long i = 0; i < iters; i++) {
            fiber_t *f = fiber_spawn(work, NULL);
            fiber_join(f);
        }
        t[b] = (thread_ns() - t0) / iters;
    }
    qsort(t, batches, sizeof t[0], cmpd);
    qsort(ca, batches, sizeof ca[0], cmpd);
    qsort(cd, batches, sizeof cd[0], cmpd);
    printf("%.2f %.2f adds_per_ns=%.2f ghz=%.2f", t[batches / 2], t[0], 1 / ca[batches / 2],
           1 / cd[batches / 2]);
}

int main(int argc, char **argv)
{
    long off = argc > 1 ? atol(argv[1]) : -1;
    int batches = argc > 2 ? atoi(argv[2]) : 7;
    long iters = argc > 3 ? atol(argv[3]) : 200000;
    if (batches > 64)
        batches = 64;
    cpu_set_t cs;
    CPU_ZERO(&cs);
    int cpu = getenv("PROBE_CPU") ? atoi(getenv("PROBE_CPU")) : sched_getcpu();
    CPU_SET(cpu, &cs);
    sched_setaffinity(0, sizeof cs, &cs);
    volatile char *pad = off >= 0 ? alloca((size_t)off + 1) : NULL;
    if (pad)
        pad[0] = 0;
    fiber_join(fiber_spawn(probe_fn, NULL));
    struct fiber *r = (struct fiber *)rec_addr;
    struct sched *s = r->sched;
    uintptr_t lsp;
    loop(iters, batches, &lsp);
    /* main_ctx.sp: the joiner's saved frame of the last join (stale, still its value) */
    printf(" cpu=%d loopfp=%lu save=%lu rec=%lu fibfp=%lu sched=%lu rec_page_off=%lu\n",
           sched_getcpu(), (unsigned long)(lsp & 4095), (unsigned long)((uintptr_t)s->main_ctx.sp & 4095),
           (unsigned long)(rec_addr & 4095), (unsigned long)(fib_sp & 4095),
           (unsigned long)((uintptr_t)s & 4095),
           (unsigned long)((uintptr_t)r->stack.hi - rec_addr));
    return 0;
}
