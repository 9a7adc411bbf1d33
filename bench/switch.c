/*
 * switch.c - bench_switch: what one context switch costs, in ns per one-way switch.
 *
 * Fibers: the runtime's raw switch (strict: saves MXCSR and the x87 control word; lean:
 * general registers only), the scheduler's fiber_yield between two fibers, and beside
 * them, in the same run, a bare pop+jmp assembly floor, glibc swapcontext and
 * Boost.Context jump_fcontext. Threads: two threads handing a turn back and forth
 * through a futex, a mutex+condvar, a pipe and POSIX semaphores, each with both threads
 * pinned to one core (cpu=same), to two cores (cpu=cross) and unpinned (cpu=any), and
 * a sched_yield pair pinned to one core.
 * Google Benchmark runs every case with random interleaving of repetitions (drift
 * between batches on a shared VM is larger than within); results/switch.csv.
 * The raw switches and Boost run inside assembly loops with a fixed code layout
 * (bench/peers/drive_x86_64.S: with C loops, an unrelated edit that moved code by a few
 * bytes doubled the measured cost of the pop+jmp switch).
 * Clocks: the switchers that run on one thread are timed with that thread's CPU time,
 * so the turns other processes take on a shared 2-vCPU machine are not counted as
 * switching; thread pairs are timed on CLOCK_MONOTONIC, since their cost is the wait.
 */
#define _GNU_SOURCE
#include "bench_gbrun.h"
#include "bench_util.h"
#include "fiber.h"
#include "fiber_context.h"
#include "gb.h"
#include "peers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STACK_SIZE (64u * 1024u)

static const char SUMMARY[] =
    "ns per one-way context switch: fiber switch (strict, lean), fiber_yield, a pop+jmp\n"
    "floor, ucontext, Boost.Context, and thread pairs over futex, mutex+condvar, pipe,\n"
    "POSIX semaphores (same core, cross core, unpinned) and sched_yield (one core).";

/* ---- raw fiber switch ---- */

typedef struct raw_case {
    void (*sw)(fiber_context_t *, fiber_context_t *);
    void (*entry)(void *);
} raw_case_t;

/* One-way switches per timed batch for the user-space switchers: enough that the two
 * clock reads are noise. */
#define FAST_ROUNDS 2000

static void bm_raw(gb_state_t *st, void *ctx)
{
    const raw_case_t *c = ctx;
    fiber_stack_t stack;
    if (fiber_stack_alloc(&stack, STACK_SIZE, 1) != 0)
        return gb_skip_with_error(st, "fiber_stack_alloc failed");
    fiber_context_t self, peer;
    peer_drive_t d = {.self = &self, .peer = &peer, .sw = c->sw};
    fiber_context_make(&peer, stack.lo, stack.hi, c->entry, &d);
    gb_label(st, "metric=ns_per_switch");
    while (gb_keep_running_batch(st, 2 * FAST_ROUNDS)) {
        uint64_t t0 = bench_cpu_ns();
        peer_drive_run(&self, &peer, FAST_ROUNDS, c->sw);
        gb_set_iteration_time_ns(st, (double)(bench_cpu_ns() - t0));
    }
    /* The peer stays suspended inside its loop; nothing on its stack needs unwinding. */
    fiber_stack_free(&stack);
}

static void bm_floor(gb_state_t *st, void *ctx)
{
    (void)ctx;
    static char stack[4096] __attribute__((aligned(64)));
    fiber_context_t self, peer;
    peer_floor_make(&peer, stack + sizeof stack);
    gb_label(st, "metric=ns_per_switch");
    while (gb_keep_running_batch(st, 2 * FAST_ROUNDS)) {
        uint64_t t0 = bench_cpu_ns();
        peer_floor_pingpong(&self, &peer, FAST_ROUNDS);
        gb_set_iteration_time_ns(st, (double)(bench_cpu_ns() - t0));
    }
}

static void bm_boost(gb_state_t *st, void *ctx)
{
    (void)ctx;
    if (peer_boost_init(STACK_SIZE) != 0)
        return gb_skip_with_error(st, "peer_boost_init failed");
    gb_label(st, "metric=ns_per_switch");
    while (gb_keep_running_batch(st, 2 * FAST_ROUNDS)) {
        uint64_t t0 = bench_cpu_ns();
        peer_boost_pingpong(FAST_ROUNDS);
        gb_set_iteration_time_ns(st, (double)(bench_cpu_ns() - t0));
    }
    peer_boost_fini();
}

static void bm_ucontext(gb_state_t *st, void *ctx)
{
    (void)ctx;
    if (peer_uc_init(STACK_SIZE) != 0)
        return gb_skip_with_error(st, "peer_uc_init failed");
    gb_label(st, "metric=ns_per_switch");
    while (gb_keep_running_batch(st, 200)) {
        uint64_t t0 = bench_cpu_ns();
        peer_uc_pingpong(100);
        gb_set_iteration_time_ns(st, (double)(bench_cpu_ns() - t0));
    }
    peer_uc_fini();
}

/* ---- the scheduler's fiber_yield ---- */

static void yielder(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        fiber_yield();
}

/* Each batch spawns two fibers that yield to each other K times and runs them: 2K
 * one-way switches through the run queue. The two spawns and joins are inside the timed
 * region, amortised over the 2K switches (under 1%). */
static void bm_yield(gb_state_t *st, void *ctx)
{
    (void)ctx;
    const long K = 5000;
    gb_label(st, "metric=ns_per_switch");
    while (gb_keep_running_batch(st, 2 * K)) {
        uint64_t t0 = bench_cpu_ns();
        fiber_t *a = fiber_spawn(yielder, (void *)(intptr_t)K);
        fiber_t *b = fiber_spawn(yielder, (void *)(intptr_t)K);
        if (!a || !b)
            return gb_skip_with_error(st, "fiber_spawn failed");
        fiber_join(a);
        fiber_join(b);
        gb_set_iteration_time_ns(st, (double)(bench_cpu_ns() - t0));
    }
}

/* ---- thread pairs ---- */

enum pp_kind { PP_FUTEX, PP_CONDVAR, PP_PIPE, PP_SEM, PP_YIELD };
enum pp_place { PLACE_SAME, PLACE_CROSS, PLACE_ANY };

typedef struct pp_case {
    enum pp_kind  kind;
    enum pp_place place;
} pp_case_t;

/* One pair's shared state. turn says whose move it is (0 = the benchmark thread,
 * 1 = the partner); stop ends the partner. */
typedef struct pp {
    enum pp_kind    kind;
    _Atomic int     turn;
    _Atomic int     stop;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             to_partner[2], to_main[2];
    sem_t           sem_partner, sem_main;
    int             partner_cpu;
} pp_t;

static long futex(_Atomic int *addr, int op, int val)
{
    return syscall(SYS_futex, (int *)addr, op, val, NULL, NULL, 0);
}

/* Waits until it is side me's turn. */
static void pp_wait(pp_t *p, int me)
{
    char c;
    switch (p->kind) {
    case PP_FUTEX:
        while (atomic_load_explicit(&p->turn, memory_order_acquire) != me)
            futex(&p->turn, FUTEX_WAIT_PRIVATE, !me);
        break;
    case PP_CONDVAR:
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->turn, memory_order_relaxed) != me)
            pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        break;
    case PP_PIPE:
        if (read(me ? p->to_partner[0] : p->to_main[0], &c, 1) != 1)
            atomic_store(&p->stop, 1);
        break;
    case PP_SEM:
        while (sem_wait(me ? &p->sem_partner : &p->sem_main) != 0 && errno == EINTR)
            ;
        break;
    case PP_YIELD:
        while (atomic_load_explicit(&p->turn, memory_order_acquire) != me)
            sched_yield();
        break;
    }
}

/* Hands the turn from side me to the other side. */
static void pp_give(pp_t *p, int me)
{
    char c = 1;
    switch (p->kind) {
    case PP_FUTEX:
        atomic_store_explicit(&p->turn, !me, memory_order_release);
        futex(&p->turn, FUTEX_WAKE_PRIVATE, 1);
        break;
    case PP_CONDVAR:
        pthread_mutex_lock(&p->mu);
        atomic_store_explicit(&p->turn, !me, memory_order_relaxed);
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        break;
    case PP_PIPE:
        if (write(me ? p->to_main[1] : p->to_partner[1], &c, 1) != 1)
            atomic_store(&p->stop, 1);
        break;
    case PP_SEM:
        sem_post(me ? &p->sem_main : &p->sem_partner);
        break;
    case PP_YIELD:
        atomic_store_explicit(&p->turn, !me, memory_order_release);
        break;
    }
}

static void *pp_partner(void *arg)
{
    pp_t *p = arg;
    if (p->partner_cpu >= 0)
        bench_pin_self(p->partner_cpu);
    for (;;) {
        pp_wait(p, 1);
        if (atomic_load(&p->stop))
            break;
        pp_give(p, 1);
    }
    return NULL;
}

static const char *pp_kind_name[] = {"futex", "condvar", "pipe", "sem", "sched_yield"};
static const char *pp_place_name[] = {"same", "cross", "any"};

static void bm_threads(gb_state_t *st, void *ctx)
{
    const pp_case_t *c = ctx;
    pp_t *p = calloc(1, sizeof *p);
    if (!p)
        return gb_skip_with_error(st, "out of memory");
    p->kind = c->kind;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    sem_init(&p->sem_partner, 0, 0);
    sem_init(&p->sem_main, 0, 0);
    p->to_partner[0] = p->to_partner[1] = p->to_main[0] = p->to_main[1] = -1;
    cpu_set_t saved;
    pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
    int ncpu = bench_ncpus();
    const char *err = NULL;
    pthread_t th;

    if (c->place == PLACE_CROSS && ncpu < 2) {
        err = "cross-core needs 2 CPUs";
        goto error1;
    }
    if (c->kind == PP_PIPE && (pipe2(p->to_partner, O_CLOEXEC) != 0 || pipe2(p->to_main, O_CLOEXEC) != 0)) {
        err = "pipe2 failed";
        goto error1;
    }
    p->partner_cpu = c->place == PLACE_SAME ? 0 : c->place == PLACE_CROSS ? 1 : -1;
    if (c->place != PLACE_ANY)
        bench_pin_self(0);
    if (pthread_create(&th, NULL, pp_partner, p) != 0) {
        err = "pthread_create failed";
        goto error2;
    }
    gb_label(st, "metric=ns_per_switch");
    /* Cross-core hand-overs cost ~20 us on this VM: small batches keep the run short. */
    const int rounds = c->place == PLACE_SAME && c->kind != PP_PIPE ? 200 : 50;
    while (gb_keep_running_batch(st, 2 * rounds)) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < rounds; i++) {
            pp_give(p, 0);
            pp_wait(p, 0);
        }
        gb_set_iteration_time_ns(st, (double)(bench_now_ns() - t0));
    }
    atomic_store(&p->stop, 1);
    pp_give(p, 0);
    pthread_join(th, NULL);
error2:
    pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
error1:
    for (int i = 0; i < 2; i++) {
        if (p->to_partner[i] >= 0)
            close(p->to_partner[i]);
        if (p->to_main[i] >= 0)
            close(p->to_main[i]);
    }
    sem_destroy(&p->sem_partner);
    sem_destroy(&p->sem_main);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    if (err)
        gb_skip_with_error(st, err);
}

/* ---- registration ---- */

static void setup(gb_bench_t *b, bench_mode_t mode)
{
    static const double min_time[] = {0.1, 0.05, 0.002};
    static const int reps[] = {7, 3, 2};
    gb_repetitions(gb_min_time(gb_manual_time(b), min_time[mode]), reps[mode]);
}

int main(int argc, char **argv)
{
    bench_cli_t cli;
    int rc = bench_cli_parse(&cli, argc, argv, "switch", SUMMARY, NULL);
    if (rc)
        return rc == 1 ? 0 : 2;

    static raw_case_t strict = {fiber_context_switch_strict, peer_drive_entry_apart},
                      lean = {fiber_context_switch_lean, peer_drive_entry_apart};
    setup(gb_register("switch/fiber/strict", bm_raw, &strict), cli.mode);
    setup(gb_register("switch/fiber/lean", bm_raw, &lean), cli.mode);
    if (peer_floor_available())
        setup(gb_register("switch/floor/pop-jmp", bm_floor, NULL), cli.mode);
    setup(gb_register("switch/boost/jump_fcontext", bm_boost, NULL), cli.mode);
    setup(gb_register("switch/ucontext/swapcontext", bm_ucontext, NULL), cli.mode);
    setup(gb_register("switch/fiber/yield", bm_yield, NULL), cli.mode);

    static pp_case_t cases[16];
    int nc = 0;
    char name[96];
    for (int k = PP_FUTEX; k <= PP_SEM; k++)
        for (int pl = PLACE_SAME; pl <= PLACE_ANY; pl++) {
            if (pl == PLACE_CROSS && bench_ncpus() < 2)
                continue;
            cases[nc] = (pp_case_t){.kind = k, .place = pl};
            snprintf(name, sizeof name, "switch/thread/%s/cpu=%s", pp_kind_name[k], pp_place_name[pl]);
            setup(gb_register(name, bm_threads, &cases[nc]), cli.mode);
            nc++;
        }
    cases[nc] = (pp_case_t){.kind = PP_YIELD, .place = PLACE_SAME};
    setup(gb_register("switch/thread/sched_yield/cpu=same", bm_threads, &cases[nc]), cli.mode);


    char mode_line[64], variant_line[64];
    snprintf(mode_line, sizeof mode_line, "mode: %s", bench_mode_name(cli.mode));
    snprintf(variant_line, sizeof variant_line, "fiber_context_switch: %s", fiber_context_variant());
    const char *extra[] = {mode_line, variant_line, "unit: ns per one-way switch",
                           "clock: thread CPU time for one-thread switchers (fiber, floor, boost, ucontext), "
                           "CLOCK_MONOTONIC for thread pairs",
                           NULL};
    bench_progress("switch", "%s run: %d thread pair cases, results in %s/switch.csv",
                   bench_mode_name(cli.mode), nc + 1, cli.out_dir);
    rc = bench_gbrun_cli("switch", &cli, extra);
    if (rc == 0) {
        /* The targets, as ratios within this run (a filter may leave some out). */
        bench_gb_ratio("switch", cli.out_dir, "switch/ratio/lean-over-floor", "fiber-lean/floor",
                       "switch/fiber/lean", "switch/floor/pop-jmp");
        bench_gb_ratio("switch", cli.out_dir, "switch/ratio/strict-over-boost", "fiber-strict/boost",
                       "switch/fiber/strict", "switch/boost/jump_fcontext");
        bench_gb_ratio("switch", cli.out_dir, "switch/ratio/futex-same-over-fiber-yield",
                       "thread-futex-same/fiber-yield", "switch/thread/futex/cpu=same", "switch/fiber/yield");
        bench_gb_ratio("switch", cli.out_dir, "switch/ratio/futex-same-over-fiber-strict",
                       "thread-futex-same/fiber-strict", "switch/thread/futex/cpu=same", "switch/fiber/strict");
    }
    bench_progress("switch", "done");
    return rc;
}
