/*
 * switch.c - bench_switch: what one context switch costs, in ns per one-way switch.
 *
 * The headline pairs (issue 11): the scheduler-level fiber_yield ping-pong against each
 * thread hand-off - two threads handing a turn back and forth through a futex, a
 * mutex+condvar, a pipe, POSIX semaphores, and sched_yield - on the same clock (wall,
 * CLOCK_MONOTONIC) and pinned the same way: cpu=same puts every thread of the case on
 * one CPU (the benchmark thread that creates the partner included, the partner pinned
 * from its creation), cpu=cross the two threads on two CPUs, cpu=any pins nothing.
 * Every affinity call is checked; a case that cannot pin fails with an error row and
 * the harness exits 1. Fibers never leave their scheduler's thread, so the fiber side
 * of every pair is switch/fiber/yield/cpu=same.
 *
 * Beside them, the raw switches, timed on the thread's CPU time (one thread; other
 * processes' turns on a shared 2-vCPU machine are not switching): the runtime's strict
 * switch (saves MXCSR and the x87 control word) and lean switch (general registers only),
 * both also in their ret-ended form, Boost.Context's jump_fcontext (the peer row), a
 * bare pop+jmp floor, glibc swapcontext, and fiber_yield on the same clock
 * (switch/fiber/yield: the yield/strict ratio of issue 10).
 * Layouts: the raw switches and Boost run inside assembly loops at fixed code layouts
 * (bench/peers/drive_x86_64.S): c0 for the headline rows, and every switcher again at
 * layouts c1-c6 and at stack layouts s1 (peer stack top 0x340 below its page end, the
 * caller 0x1c0 deeper) and s2 (peer stack top at the caller's page offset: the two
 * stacks' frames 4 KiB-aliased), as rows <case>/layout=<code>-<stack> with metric
 * ns_per_switch_layout, then one <case>/layouts row per switcher (median, min and max of
 * its layouts' medians, runs = layouts), switch/ratio/strict-over-boost/layouts (the
 * same over each layout's strict/Boost ratio) and .../worst-layout (the largest of
 * those, its layout named in impl). A layout artefact shows as spread.
 * The scheduler's switch at the same code layouts: switch/fiber/yield/sites=2 (two
 * fibers yielding from two call sites, c0) and its /layout=<code>-s0 rows and /layouts
 * summary; switch/fiber/yield is the one-call-site case (both fibers run one loop).
 * Google Benchmark runs every case with random interleaving of repetitions (drift
 * between batches on a shared VM is larger than within); results/switch.csv.
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
    "ns per one-way context switch: fiber_yield (wall clock, pinned) against thread pairs\n"
    "over futex, mutex+condvar, pipe, POSIX semaphores (same core, cross core, unpinned)\n"
    "and sched_yield (one core); the raw switches (strict, lean, ret-ended), Boost.Context,\n"
    "a pop+jmp floor and ucontext, the raw ones also at several code and stack layouts.";

/* ---- layouts ---- */

enum { STACK_S0, STACK_S1, STACK_S2, N_STACK_LAYOUTS };
static const char *stack_layout_name[N_STACK_LAYOUTS] = {"s0", "s1", "s2"};

/* The peer's stack top, top_off bytes below the page-aligned end of its stack; s2 puts
 * it at the page offset of `here` (an address on the caller's stack). */
static size_t peer_top_off(int stack_layout, uintptr_t here)
{
    switch (stack_layout) {
    case STACK_S1:
        return 0x340;
    case STACK_S2: {
        size_t off = (size_t)(-here & 4095) & ~(size_t)15;
        return off < 512 ? off + 4096 : off;
    }
    default:
        return 0;
    }
}

/* How much deeper the caller's loop runs (s1). */
static size_t self_shift(int stack_layout)
{
    return stack_layout == STACK_S1 ? 0x1c0 : 0;
}

/* Calls fn(arg) with the stack pushed down by shift bytes. */
static __attribute__((noinline)) void call_shifted(size_t shift, void (*fn)(void *), void *arg)
{
    char *pad = __builtin_alloca(shift + 16);
    __asm__ volatile("" : : "r"(pad) : "memory");
    fn(arg);
    __asm__ volatile("" : : "r"(pad) : "memory");
}

/* ---- raw switches, Boost and the floor ---- */

enum raw_kind { RAW_FIBER, RAW_FLOOR, RAW_BOOST };

typedef struct raw_case {
    enum raw_kind  kind;
    peer_switch_fn sw;      /* RAW_FIBER */
    int            code;    /* index into peer_layouts */
    int            stack;   /* STACK_S* */
    const char    *metric;  /* label: ns_per_switch (c0-s0) or ns_per_switch_layout */
    int            flags_differ; /* RAW_BOOST: the peer context made without main's MXCSR flags */
} raw_case_t;

/* The core's speed beside a fiber-side figure (bench_core_adds_per_ns): measured before
 * every 4th batch (a measurement is ~60 us, a raw batch ~20), each batch's CPU time
 * weighted by the last one; reported as the counters core_adds_per_ns (make reproduce
 * moves the figure's accepted range by it), cpu_ns_per_switch and adds_per_switch (the
 * cost in calibration adds, informative). on = 0: nothing is measured. */
typedef struct core_acc {
    int    on;
    long   batches;
    double speed, cpu, adds, units;
} core_acc_t;

static void core_before(core_acc_t *k)
{
    if (k->on && k->batches++ % 4 == 0)
        k->speed = bench_core_adds_per_ns();
}

static void core_after(core_acc_t *k, uint64_t cpu_ns, int64_t units)
{
    if (!k->on)
        return;
    k->cpu += (double)cpu_ns;
    k->adds += (double)cpu_ns * k->speed;
    k->units += (double)units;
}

static void core_report(gb_state_t *st, const core_acc_t *k)
{
    if (!k->on || k->cpu <= 0 || k->units <= 0)
        return;
    gb_counter(st, "cpu_ns_per_switch", k->cpu / k->units, GB_COUNTER_DEFAULT);
    gb_counter(st, "core_adds_per_ns", k->adds / k->cpu, GB_COUNTER_DEFAULT);
    gb_counter(st, "adds_per_switch", k->adds / k->units, GB_COUNTER_DEFAULT);
}

/* One-way switches per timed batch for the user-space switchers: enough that the two
 * clock reads are noise. */
#define FAST_ROUNDS 2000

struct raw_batch {
    const raw_case_t    *c;
    const peer_layout_t *l;
    fiber_context_t     *self, *peer;
};

static void raw_batch_run(void *arg)
{
    struct raw_batch *b = arg;
    switch (b->c->kind) {
    case RAW_FIBER:
        b->l->drive_run(b->self, b->peer, FAST_ROUNDS, b->c->sw);
        break;
    case RAW_FLOOR:
        b->l->floor_run(b->self, b->peer, FAST_ROUNDS);
        break;
    case RAW_BOOST:
        peer_boost_pingpong(FAST_ROUNDS);
        break;
    }
}

static void bm_raw(gb_state_t *st, void *ctx)
{
    const raw_case_t *c = ctx;
    const peer_layout_t *l = &peer_layouts[c->code];
    fiber_stack_t stack = {0};
    fiber_context_t self, peer;
    peer_drive_t d = {.self = &self, .peer = &peer, .sw = c->sw};
    size_t top_off = peer_top_off(c->stack, (uintptr_t)__builtin_frame_address(0));
#if defined(__x86_64__)
    /* The measuring thread's MXCSR as in any program that has computed something: the
     * precision (inexact) flag set. A fiber_context_make() context starts from the
     * psABI's 0x1F80 (no flags); Boost's make_fcontext copies its creator's word, flags
     * included, unless the case asks for the flags to differ (switch_x86_64.S, (2):
     * a ldmxcsr that changes MXCSR is what costs on some CPUs). */
    uint32_t mx_saved;
    __asm__ volatile("stmxcsr %0" : "=m"(mx_saved));
    uint32_t mx_main = (mx_saved & ~0x3Fu) | 0x20u;
    uint32_t mx_make = c->flags_differ ? (mx_saved & ~0x3Fu) : mx_main;
    __asm__ volatile("ldmxcsr %0" : : "m"(mx_make));
#endif
    if (c->kind == RAW_BOOST) {
        if (peer_boost_init(STACK_SIZE, top_off, l) != 0)
            return gb_skip_with_error(st, "peer_boost_init failed");
    } else {
        if (fiber_stack_alloc(&stack, STACK_SIZE, 1) != 0)
            return gb_skip_with_error(st, "fiber_stack_alloc failed");
        char *top = (char *)stack.hi - top_off;
        if (c->kind == RAW_FIBER)
            fiber_context_make(&peer, stack.lo, top, l->drive_entry, &d);
        else
            peer_floor_make(&peer, top, l);
    }
#if defined(__x86_64__)
    __asm__ volatile("ldmxcsr %0" : : "m"(mx_main));
#endif
    struct raw_batch b = {c, l, &self, &peer};
    gb_label(st, c->metric);
    /* the fiber's own switch at the default layout: its cost in calibration adds too */
    core_acc_t k = {.on = c->kind == RAW_FIBER && strcmp(c->metric, "metric=ns_per_switch") == 0};
    while (gb_keep_running_batch(st, 2 * FAST_ROUNDS)) {
        core_before(&k);
        uint64_t t0 = bench_cpu_ns();
        call_shifted(self_shift(c->stack), raw_batch_run, &b);
        uint64_t dt = bench_cpu_ns() - t0;
        gb_set_iteration_time_ns(st, (double)dt);
        core_after(&k, dt, 2 * FAST_ROUNDS);
    }
    core_report(st, &k);
    /* The peer stays suspended inside its loop; nothing on its stack needs unwinding. */
    if (c->kind == RAW_BOOST)
        peer_boost_fini();
    else
        fiber_stack_free(&stack);
#if defined(__x86_64__)
    __asm__ volatile("ldmxcsr %0" : : "m"(mx_saved));
#endif
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

/* ---- pinning ---- */

/* CPUs this process may run on at start: cpu=same uses the first, cpu=cross the first
 * two. Set in main(). */
static int cpu_a = -1, cpu_b = -1;
static int pin_failed; /* some case could not pin: the harness exits 1 */

/* Pins the calling thread to cpu, or fails the case loudly. Returns 0 or -1. */
static int pin_or_fail(gb_state_t *st, int cpu, const char *who)
{
    if (cpu >= 0 && bench_pin_self(cpu) == 0)
        return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "cannot pin the %s thread to CPU %d: %s", who, cpu,
             cpu < 0 ? "no such CPU allowed" : bench_errno_name(errno));
    fprintf(stderr, "switch: %s\n", msg);
    pin_failed = 1;
    gb_skip_with_error(st, msg);
    return -1;
}

/* ---- the scheduler's fiber_yield ---- */

static void yielder(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        fiber_yield();
}

/* Each batch spawns nf fibers that yield round-robin K times each (nf * K = 10,000
 * one-way switches) and joins them. The spawns and joins are inside the timed region,
 * amortised over the switches (under 1%). nf = 2 is the ping-pong, which takes
 * fiber_yield's direct swap (exactly one other fiber ready); nf = 4 has three others
 * ready at every yield, so each goes through the run queue's general path (push, pop,
 * the scheduler's switch): the figure a server with many ready fibers sees. pinned = 0:
 * thread CPU time, unpinned (beside the raw switches); 1: wall clock with the thread
 * pinned (cpu=same, beside the thread pairs). */
typedef struct yield_case {
    int nf, pinned;
} yield_case_t;
enum { YIELD_MAX_FIBERS = 4 };
static const yield_case_t yield_pp = { 2, 0 }, yield_pp_same = { 2, 1 },
                          yield_ring = { 4, 0 }, yield_ring_same = { 4, 1 };

static void bm_yield(gb_state_t *st, void *ctx)
{
    const yield_case_t *c = ctx;
    const long K = 10000 / c->nf;
    cpu_set_t saved;
    if (c->pinned) {
        if (pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) != 0) {
            pin_failed = 1;
            return gb_skip_with_error(st, "pthread_getaffinity_np failed");
        }
        if (pin_or_fail(st, cpu_a, "benchmark") != 0)
            return;
    }
    uint64_t (*clock)(void) = c->pinned ? bench_now_ns : bench_cpu_ns;
    gb_label(st, "metric=ns_per_switch");
    core_acc_t k = {.on = !c->pinned}; /* the thread-CPU-time cases */
    while (gb_keep_running_batch(st, c->nf * K)) {
        core_before(&k);
        uint64_t t0 = clock();
        fiber_t *f[YIELD_MAX_FIBERS];
        int ok = 1;
        for (int i = 0; i < c->nf; i++)
            ok &= (f[i] = fiber_spawn(yielder, (void *)(intptr_t)K)) != NULL;
        if (!ok) {
            gb_skip_with_error(st, "fiber_spawn failed");
            break;
        }
        for (int i = 0; i < c->nf; i++)
            fiber_join(f[i]);
        uint64_t dt = clock() - t0;
        gb_set_iteration_time_ns(st, (double)dt);
        core_after(&k, dt, c->nf * K);
    }
    core_report(st, &k);
    if (c->pinned)
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
}

/* fiber_yield between two fibers that yield from two different call sites, placed at a
 * code layout (bench/peers/drive_x86_64.S): ctx = the layout. Thread CPU time, unpinned,
 * like switch/fiber/yield, whose two fibers run the same loop (one call site). With two
 * sites the scheduler's switch returns into the other fiber's site, which the return
 * stack buffer, holding the suspended fiber's return addresses, cannot predict. */
static void bm_yield_sites(gb_state_t *st, void *ctx)
{
    const peer_layout_t *l = ctx;
    const long K = 5000;
    gb_label(st, l == &peer_layouts[0] ? "metric=ns_per_switch" : "metric=ns_per_switch_layout");
    while (gb_keep_running_batch(st, 2 * K)) {
        uint64_t t0 = bench_cpu_ns();
        fiber_t *a = fiber_spawn(l->yield_run, (void *)(intptr_t)K);
        fiber_t *b = fiber_spawn(l->yield_peer, (void *)(intptr_t)K);
        if (!a || !b) {
            gb_skip_with_error(st, "fiber_spawn failed");
            break;
        }
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
    pthread_attr_t attr;
    int have_attr = 0;
    const char *err = NULL;
    pthread_t th;

    if (pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) != 0) {
        err = "pthread_getaffinity_np failed";
        pin_failed = 1;
        goto error1;
    }
    if (c->place == PLACE_CROSS && cpu_b < 0) {
        err = "cross-core needs 2 CPUs";
        goto error1;
    }
    if (c->kind == PP_PIPE && (pipe2(p->to_partner, O_CLOEXEC) != 0 || pipe2(p->to_main, O_CLOEXEC) != 0)) {
        err = "pipe2 failed";
        goto error1;
    }
    /* The partner is pinned from its creation (never runs elsewhere first), the creating
     * benchmark thread before it creates it. */
    p->partner_cpu = c->place == PLACE_SAME ? cpu_a : c->place == PLACE_CROSS ? cpu_b : -1;
    if (pthread_attr_init(&attr) != 0) {
        err = "pthread_attr_init failed";
        goto error1;
    }
    have_attr = 1;
    if (c->place != PLACE_ANY) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(p->partner_cpu, &set);
        int e = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
        if (e != 0) {
            fprintf(stderr, "switch: cannot pin the partner thread to CPU %d: %s\n", p->partner_cpu,
                    bench_errno_name(e));
            err = "cannot pin the partner thread";
            pin_failed = 1;
            goto error1;
        }
        if (pin_or_fail(st, cpu_a, "benchmark") != 0)
            goto error2;
    }
    int e = pthread_create(&th, &attr, pp_partner, p);
    if (e != 0) {
        if (c->place != PLACE_ANY) /* an affinity the kernel refuses fails here */
            fprintf(stderr, "switch: pthread_create of the pinned partner failed: %s\n",
                    bench_errno_name(e));
        err = "pthread_create failed";
        pin_failed |= c->place != PLACE_ANY && e == EINVAL;
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
    if (have_attr)
        pthread_attr_destroy(&attr);
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

static bench_mode_t g_mode;

static void setup(gb_bench_t *b, bench_mode_t mode)
{
    static const double min_time[] = {0.1, 0.05, 0.002};
    static const int reps[] = {7, 3, 2};
    gb_repetitions(gb_min_time(gb_manual_time(b), min_time[mode]), reps[mode]);
}

/* The layout sweep (every row but c0-s0 of a sweeping switcher, and fiber_yield's other
 * code layouts): 39 cases that feed only the spread rows (ns_per_switch_layout) and the
 * worst-layout ratio, never a README figure. Full mode runs them as quick does (3
 * repetitions of 0.05 s: the same quantity, fewer repetitions), which takes about 30 s
 * off make bench's 20-minute budget; the headline rows keep 7 of 0.1 s. */
static void setup_layout(gb_bench_t *b, bench_mode_t mode)
{
    setup(b, mode == BENCH_FULL ? BENCH_QUICK : mode);
}

/* The raw switchers, each at every layout. name: the headline case (layout c0-s0). */
typedef struct switcher {
    const char    *name;
    enum raw_kind  kind;
    peer_switch_fn sw;
    int            sweep; /* also measured at every other layout */
    int            flags_differ;
} switcher_t;

/* strict first and Boost last (layout_rows' ratio). strict is the switch this CPU gets;
 * mxcsr=always/cmp are its two MXCSR policies, each measured here whatever the CPU
 * picks; boost/.../flags=differ is Boost with its two contexts' MXCSR status flags
 * differing, the situation every fiber_context_make() context is in (switch_x86_64.S). */
static const switcher_t switchers[] = {
    {"switch/fiber/strict", RAW_FIBER, fiber_context_switch_strict, 1, 0},
    {"switch/fiber/lean", RAW_FIBER, fiber_context_switch_lean, 1, 0},
    {"switch/fiber/strict-ret", RAW_FIBER, fiber_context_switch_strict_ret, 0, 0},
    {"switch/fiber/lean-ret", RAW_FIBER, fiber_context_switch_lean_ret, 0, 0},
#if defined(__x86_64__)
    {"switch/fiber/strict/mxcsr=always", RAW_FIBER, fiber_context_switch_strict_always, 0, 0},
    {"switch/fiber/strict/mxcsr=cmp", RAW_FIBER, fiber_context_switch_strict_cmp, 0, 0},
    {"switch/boost/jump_fcontext/flags=differ", RAW_BOOST, NULL, 0, 1},
#endif
    {"switch/floor/pop-jmp", RAW_FLOOR, NULL, 1, 0},
    {"switch/boost/jump_fcontext", RAW_BOOST, NULL, 1, 0},
};
#define N_SWITCHERS (int)(sizeof switchers / sizeof switchers[0])
#define MAX_LAYOUTS 16

/* fiber_yield from two call sites: the headline row (c0) and its layout rows. */
#define YIELD_SITES "switch/fiber/yield/sites=2"

/* The layouts every sweeping switcher runs at: (code, stack), c0-s0 first. */
static int layout_code[MAX_LAYOUTS], layout_stack[MAX_LAYOUTS], n_layouts;

static void layout_name(int i, char *buf, size_t n)
{
    snprintf(buf, n, "%s-%s", peer_layouts[layout_code[i]].name, stack_layout_name[layout_stack[i]]);
}

static void register_raw(void)
{
    n_layouts = 0;
    for (int c = 0; c < peer_nlayouts && n_layouts < MAX_LAYOUTS; c++) {
        layout_code[n_layouts] = c;
        layout_stack[n_layouts++] = STACK_S0;
    }
    for (int sl = STACK_S1; sl < N_STACK_LAYOUTS && n_layouts < MAX_LAYOUTS; sl++) {
        layout_code[n_layouts] = 0;
        layout_stack[n_layouts++] = sl;
    }
    static raw_case_t cases[N_SWITCHERS * MAX_LAYOUTS];
    int nc = 0;
    for (int w = 0; w < N_SWITCHERS; w++) {
        const switcher_t *sw = &switchers[w];
        if (sw->kind == RAW_FLOOR && !peer_layouts[0].floor_run)
            continue;
        for (int i = 0; i < (sw->sweep ? n_layouts : 1); i++) {
            char name[128], ln[32];
            raw_case_t *c = &cases[nc++];
            *c = (raw_case_t){sw->kind, sw->sw, layout_code[i], layout_stack[i],
                              i == 0 ? "metric=ns_per_switch" : "metric=ns_per_switch_layout",
                              sw->flags_differ};
            layout_name(i, ln, sizeof ln);
            if (i == 0)
                snprintf(name, sizeof name, "%s", sw->name);
            else
                snprintf(name, sizeof name, "%s/layout=%s", sw->name, ln);
            (i == 0 ? setup : setup_layout)(gb_register(name, bm_raw, c), g_mode);
        }
    }
    /* The scheduler's switch at every code layout (its stacks come from the pool). */
    if (peer_layouts[0].yield_run)
        for (int c = 0; c < peer_nlayouts; c++) {
            char name[128];
            if (c == 0)
                snprintf(name, sizeof name, "%s", YIELD_SITES);
            else
                snprintf(name, sizeof name, "%s/layout=%s-s0", YIELD_SITES, peer_layouts[c].name);
            (c == 0 ? setup : setup_layout)(gb_register(name, bm_yield_sites, (void *)&peer_layouts[c]),
                                            g_mode);
        }
}

/* After the run: each sweeping switcher's spread over layouts, and strict/Boost at each
 * layout. */
static void layout_rows(const char *out_dir)
{
    double med[N_SWITCHERS][MAX_LAYOUTS];
    int have[N_SWITCHERS];
    for (int w = 0; w < N_SWITCHERS; w++) {
        have[w] = 0;
        if (!switchers[w].sweep)
            continue;
        int ok = 1;
        for (int i = 0; i < n_layouts && ok; i++) {
            char name[128], ln[32];
            double v[3];
            int runs;
            layout_name(i, ln, sizeof ln);
            if (i == 0)
                snprintf(name, sizeof name, "%s", switchers[w].name);
            else
                snprintf(name, sizeof name, "%s/layout=%s", switchers[w].name, ln);
            ok = bench_gb_stats(name, v, &runs) == 0;
            med[w][i] = v[0];
        }
        if (!ok)
            continue;
        have[w] = 1;
        double sorted[MAX_LAYOUTS], v[3];
        memcpy(sorted, med[w], sizeof(double) * (size_t)n_layouts);
        bench_stats(sorted, n_layouts, &v[0], &v[1], &v[2]);
        char case_name[128], impl[64];
        snprintf(case_name, sizeof case_name, "%s/layouts", switchers[w].name);
        const char *model = switchers[w].name + strlen("switch/");
        snprintf(impl, sizeof impl, "%s/layouts", strchr(model, '/') + 1);
        char mod[32];
        snprintf(mod, sizeof mod, "%.*s", (int)(strchr(model, '/') - model), model);
        bench_gb_row("switch", out_dir, case_name, mod, impl, "ns_per_switch_layout", "ns", v,
                     n_layouts);
    }
    /* strict (0) over Boost (last) at each layout; the worst layout on a row of its own
     * (median = min = max = that layout's ratio of medians, impl names the layout) */
    int strict = 0, boost = N_SWITCHERS - 1;
    if (have[strict] && have[boost]) {
        double r[MAX_LAYOUTS], v[3];
        int worst = 0;
        for (int i = 0; i < n_layouts; i++) {
            r[i] = med[strict][i] / med[boost][i];
            if (r[i] > r[worst])
                worst = i;
        }
        double w[3] = {r[worst], r[worst], r[worst]};
        bench_stats(r, n_layouts, &v[0], &v[1], &v[2]);
        bench_gb_row("switch", out_dir, "switch/ratio/strict-over-boost/layouts", "ratio",
                     "fiber-strict/boost/layouts", "ratio", "x", v, n_layouts);
        char impl[96], ln[32];
        layout_name(worst, ln, sizeof ln);
        snprintf(impl, sizeof impl, "fiber-strict/boost/layout=%s", ln);
        bench_gb_row("switch", out_dir, "switch/ratio/strict-over-boost/worst-layout", "ratio", impl,
                     "ratio", "x", w, 1);
    }
    /* fiber_yield from two sites at every code layout */
    double y[MAX_LAYOUTS];
    int ny = 0;
    for (int c = 0; c < peer_nlayouts && peer_layouts[0].yield_run; c++) {
        char name[128];
        double v[3];
        int runs;
        if (c == 0)
            snprintf(name, sizeof name, "%s", YIELD_SITES);
        else
            snprintf(name, sizeof name, "%s/layout=%s-s0", YIELD_SITES, peer_layouts[c].name);
        if (bench_gb_stats(name, v, &runs) != 0)
            break;
        y[ny++] = v[0];
    }
    if (ny == peer_nlayouts && ny > 0) {
        double v[3];
        bench_stats(y, ny, &v[0], &v[1], &v[2]);
        bench_gb_row("switch", out_dir, YIELD_SITES "/layouts", "fiber", "yield/sites=2/layouts",
                     "ns_per_switch_layout", "ns", v, ny);
    }
}

int main(int argc, char **argv)
{
    bench_cli_t cli;
    int rc = bench_cli_parse(&cli, argc, argv, "switch", SUMMARY, NULL);
    if (rc)
        return rc == 1 ? 0 : 2;
    g_mode = cli.mode;

    /* The CPUs the pinned cases use: the first two this process may run on. */
    cpu_set_t allowed;
    char cpus_line[160] = "pinning: cannot read this process's CPU set";
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
        for (int i = 0; i < CPU_SETSIZE; i++)
            if (CPU_ISSET(i, &allowed)) {
                if (cpu_a < 0)
                    cpu_a = i;
                else if (cpu_b < 0)
                    cpu_b = i;
            }
        snprintf(cpus_line, sizeof cpus_line,
                 "pinning: cpu=same: every thread (the creating benchmark thread included) on CPU %d; "
                 "cpu=cross: CPUs %d and %d; cpu=any: unpinned; %d CPUs allowed at start",
                 cpu_a, cpu_a, cpu_b, CPU_COUNT(&allowed));
    } else {
        fprintf(stderr, "switch: sched_getaffinity failed: every pinned case will fail\n");
    }

    register_raw();
    setup(gb_register("switch/ucontext/swapcontext", bm_ucontext, NULL), cli.mode);
    setup(gb_register("switch/fiber/yield", bm_yield, (void *)&yield_pp), cli.mode);
    setup(gb_register("switch/fiber/yield/cpu=same", bm_yield, (void *)&yield_pp_same), cli.mode);
    setup(gb_register("switch/fiber/yield/fibers=4", bm_yield, (void *)&yield_ring), cli.mode);
    setup(gb_register("switch/fiber/yield/fibers=4/cpu=same", bm_yield, (void *)&yield_ring_same),
          cli.mode);

    static pp_case_t cases[16];
    int nc = 0;
    char name[96];
    for (int k = PP_FUTEX; k <= PP_SEM; k++)
        for (int pl = PLACE_SAME; pl <= PLACE_ANY; pl++) {
            if (pl == PLACE_CROSS && cpu_b < 0)
                continue;
            cases[nc] = (pp_case_t){.kind = k, .place = pl};
            snprintf(name, sizeof name, "switch/thread/%s/cpu=%s", pp_kind_name[k], pp_place_name[pl]);
            setup(gb_register(name, bm_threads, &cases[nc]), cli.mode);
            nc++;
        }
    cases[nc] = (pp_case_t){.kind = PP_YIELD, .place = PLACE_SAME};
    setup(gb_register("switch/thread/sched_yield/cpu=same", bm_threads, &cases[nc]), cli.mode);

    char mode_line[64], variant_line[96], layouts_line[256];
    snprintf(mode_line, sizeof mode_line, "mode: %s", bench_mode_name(cli.mode));
    snprintf(variant_line, sizeof variant_line, "fiber_context_switch: %s (MXCSR policy on this CPU: %s)",
             fiber_context_variant(), fiber_context_mxcsr_policy());
    int at = snprintf(layouts_line, sizeof layouts_line, "layouts (code-stack, bench/peers/drive_x86_64.S):");
    for (int i = 0; i < n_layouts && at < (int)sizeof layouts_line - 16; i++) {
        char ln[32];
        layout_name(i, ln, sizeof ln);
        at += snprintf(layouts_line + at, sizeof layouts_line - (size_t)at, " %s", ln);
    }
    const char *extra[] = {mode_line, variant_line, "unit: ns per one-way switch",
                           "clock: thread CPU time for the raw switchers (fiber strict/lean, floor, boost, "
                           "ucontext) and switch/fiber/yield; CLOCK_MONOTONIC for switch/fiber/yield/cpu=same "
                           "and the thread pairs",
                           cpus_line, layouts_line,
                           "repetitions: 7 of 0.1 s per case in full mode (3 of 0.05 s quick); the layout "
                           "rows (ns_per_switch_layout) 3 of 0.05 s in both",
                           NULL};
    bench_progress("switch", "%s run: %d layouts, %d thread pair cases, results in %s/switch.csv",
                   bench_mode_name(cli.mode), n_layouts, nc + 1, cli.out_dir);
    rc = bench_gbrun_cli("switch", &cli, extra);
    if (rc == 0) {
        /* The issues' targets, as ratios within this run (a filter may leave some out). */
        const char *out = cli.out_dir;
        bench_gb_ratio("switch", out, "switch/ratio/lean-over-floor", "fiber-lean/floor",
                       "switch/fiber/lean", "switch/floor/pop-jmp");
        bench_gb_ratio("switch", out, "switch/ratio/strict-over-boost", "fiber-strict/boost",
                       "switch/fiber/strict", "switch/boost/jump_fcontext");
        bench_gb_ratio("switch", out, "switch/ratio/yield-over-strict", "fiber-yield/fiber-strict",
                       "switch/fiber/yield", "switch/fiber/strict");
        bench_gb_ratio("switch", out, "switch/ratio/yield-sites2-over-strict",
                       "fiber-yield-sites2/fiber-strict", YIELD_SITES, "switch/fiber/strict");
        bench_gb_ratio("switch", out, "switch/ratio/futex-same-over-fiber-yield",
                       "thread-futex-same/fiber-yield", "switch/thread/futex/cpu=same", "switch/fiber/yield");
        bench_gb_ratio("switch", out, "switch/ratio/futex-same-over-fiber-strict",
                       "thread-futex-same/fiber-strict", "switch/thread/futex/cpu=same", "switch/fiber/strict");
        /* The like-for-like headline pairs: wall clock, pinned, scheduler against kernel. */
        for (int k = PP_FUTEX; k <= PP_YIELD; k++)
            for (int pl = PLACE_SAME; pl <= PLACE_CROSS; pl++) {
                if (k == PP_YIELD && pl != PLACE_SAME)
                    continue;
                char cname[128], impl[96], num[96];
                snprintf(cname, sizeof cname, "switch/ratio/thread-%s-%s-over-fiber-yield-same",
                         pp_kind_name[k], pp_place_name[pl]);
                snprintf(impl, sizeof impl, "thread-%s-%s/fiber-yield-same", pp_kind_name[k],
                         pp_place_name[pl]);
                snprintf(num, sizeof num, "switch/thread/%s/cpu=%s", pp_kind_name[k], pp_place_name[pl]);
                bench_gb_ratio("switch", out, cname, impl, num, "switch/fiber/yield/cpu=same");
            }
        layout_rows(out);
    }
    if (pin_failed) {
        fprintf(stderr, "switch: !!! some cases could not pin their threads (see above); "
                        "their rows are errors\n");
        rc = 1;
    }
    bench_progress("switch", "done");
    return rc;
}
