/*
 * alloc.c - bench_alloc: what creating, running and reclaiming one unit of concurrency
 * costs, in ns per unit, all on CLOCK_MONOTONIC (a create+join waits, so both sides of
 * every pair are timed on the wall clock).
 *
 * The like-for-like pairs, each both pinned (cpu=same: the creating/joining thread and
 * every thread it creates on one CPU) and unpinned (cpu=any):
 *   warm: fiber_spawn + fiber_join with the runtime's stack pool, against pthread_create
 *         + pthread_join with glibc's default stack (glibc reuses cached stacks: warm);
 *   cold: a fiber on a freshly mapped 64 KiB guarded stack (raw context: map, first
 *         touch, switch in and out, unmap), against a thread on a freshly mapped 64 KiB
 *         stack with a guard page (pthread_attr_setstack: glibc cannot reuse it).
 * Beside them: 100 fibers spawned before any is joined, the raw context on a reused
 * stack (the floor under the runtime's bookkeeping), a fresh fiber stack without a
 * guard, 64 KiB thread stacks, and a job handed to a pre-started thread pool (the fair
 * thread alternative: no creation at all).
 *
 * Each repetition is a fixed number of units in 10 batches (the same in quick and full
 * mode: only the number of repetitions differs, so both measure the same quantity);
 * besides the mean over the repetition, counters report the first batch (cold_create_ns:
 * the pool is emptied before each repetition, so it pays for fresh stacks and cold
 * caches) and the last (warm_create_ns), as the post's cache-warming table does.
 * results/alloc.csv.
 */
#define _GNU_SOURCE
#include "bench_gbrun.h"
#include "bench_util.h"
#include "fiber.h"
#include "fiber_context.h"
#include "gb.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char SUMMARY[] =
    "ns per create+run+reclaim: pooled fiber vs pthread create+join and fresh-stack fiber vs\n"
    "fresh-stack thread, each pinned to one CPU (creator included) and unpinned; raw context,\n"
    "64 KiB thread stacks, and a job handed to a pre-started thread pool beside them. Cold\n"
    "(first batch) and warm (last batch) as counters.";

#define BATCHES 10
/* The CPU of the cpu=same cases. */
#define SAME_CPU 0
/* The fresh stacks of the cold pair: the runtime's default size, a guard page below. */
#define FRESH_STACK (64 * 1024)
static int64_t units_fiber, units_thread; /* per repetition, set by the mode */

static volatile long sink;

static void work(void *arg)
{
    (void)arg;
    sink++;
}

/* Times BATCHES batches through one_batch; reports manual time and cold/warm.
 * A fiber-side case (core = 1: all its work runs on this thread) also reports its CPU
 * time per create (cpu_ns_per_create: wall time less the turns the hypervisor or other
 * processes took; what make reproduce judges), the core's speed measured before and
 * after each batch (core_adds_per_ns, bench_core_adds_per_ns; make reproduce moves the
 * accepted range by it), and their product per batch summed: adds_per_create, the cost
 * in calibration adds (informative: a memory-bound figure does not follow the core). */
typedef int (*batch_fn)(void *ctx, int64_t n); /* returns 0 or an errno */

/* A fiber-side case's best repetition (least CPU time per create) and the core's speed
 * read in that repetition: make reproduce judges the pooled create by its best
 * repetition, so the speed it moves the accepted range by must be that repetition's,
 * not the median over the runs (review item F4). Written after the run as the case's
 * core_adds_per_ns_at_best row (write_at_best). */
struct at_best {
    const char *name; /* the case, as registered */
    double      cpu_ns, speed;
    int         reps;
};

static void run_batches(gb_state_t *st, batch_fn fn, void *ctx, int64_t per_rep,
                        struct at_best *best)
{
    int core = best != NULL;
    int64_t batch = per_rep / BATCHES, done = 0;
    double first = -1, last = 0, cpu = 0, adds = 0;
    while (gb_keep_running_batch(st, batch)) {
        double speed = core ? bench_core_adds_per_ns() : 0;
        uint64_t c0 = core ? bench_cpu_ns() : 0;
        uint64_t t0 = bench_now_ns();
        int e = fn(ctx, batch);
        uint64_t dt = bench_now_ns() - t0;
        uint64_t dc = core ? bench_cpu_ns() - c0 : 0;
        if (core) /* the speed before and after the batch, averaged */
            speed = (speed + bench_core_adds_per_ns()) / 2;
        if (e) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s after a partial batch", bench_errno_name(e));
            gb_skip_with_error(st, msg);
            return;
        }
        gb_set_iteration_time_ns(st, (double)dt);
        last = (double)dt / (double)batch;
        if (first < 0)
            first = last;
        cpu += (double)dc;
        adds += (double)dc * speed;
        done += batch;
    }
    gb_counter(st, "cold_create_ns", first, GB_COUNTER_DEFAULT);
    gb_counter(st, "warm_create_ns", last, GB_COUNTER_DEFAULT);
    if (core && done > 0 && cpu > 0) {
        gb_counter(st, "cpu_ns_per_create", cpu / (double)done, GB_COUNTER_DEFAULT);
        gb_counter(st, "core_adds_per_ns", adds / cpu, GB_COUNTER_DEFAULT);
        gb_counter(st, "adds_per_create", adds / (double)done, GB_COUNTER_DEFAULT);
        if (best->reps++ == 0 || cpu / (double)done < best->cpu_ns) {
            best->cpu_ns = cpu / (double)done;
            best->speed = adds / cpu;
        }
    }
    gb_label(st, "metric=ns_per_create");
}

/* ---- fibers through the runtime ---- */

static int spawn_join_batch(void *ctx, int64_t n)
{
    long group = (long)(intptr_t)ctx;
    fiber_t *fs[128];
    if (group == 1) {
        /* one at a time: nothing between the two calls but the check, as in the
         * create+join loop of the thread side */
        for (int64_t i = 0; i < n; i++) {
            fiber_t *f = fiber_spawn(work, NULL);
            if (!f)
                return errno;
            fiber_join(f);
        }
        return 0;
    }
    for (int64_t i = 0; i < n; i += group) {
        long k = group;
        if (k > n - i)
            k = (long)(n - i);
        for (long j = 0; j < k; j++)
            if (!(fs[j] = fiber_spawn(work, NULL))) {
                int e = errno;
                while (j--)
                    fiber_join(fs[j]);
                return e;
            }
        for (long j = 0; j < k; j++)
            fiber_join(fs[j]);
    }
    return 0;
}

/* A case's placement: pin the benchmark thread (and with it every thread it creates)
 * to one CPU for the repetition, or leave it where the scheduler puts it. */
typedef struct place {
    int  pinned;
    long arg; /* the case's own parameter */
    struct at_best *best; /* a fiber case: its best repetition (NULL: a thread case) */
} place_t;

static void place_enter(const place_t *p)
{
    if (p->pinned)
        bench_pin_self(SAME_CPU);
}

static void place_leave(const place_t *p)
{
    if (p->pinned)
        bench_pin_self(-1);
}

static void bm_pooled(gb_state_t *st, void *ctx)
{
    const place_t *p = ctx;
    place_enter(p);
    fiber_pool_trim(); /* the first batch pays for its stacks: cold */
    run_batches(st, spawn_join_batch, (void *)(intptr_t)p->arg, units_fiber, p->best);
    place_leave(p);
}

/* ---- the raw context layer ---- */

static fiber_context_t raw_main, raw_unit;

static void raw_entry(void *arg)
{
    (void)arg;
    sink++;
    fiber_context_switch(&raw_unit, &raw_main); /* never resumed: the unit is done */
    abort();
}

struct raw_ctx {
    int             fresh, guard, pinned;
    fiber_stack_t   stack;
    struct at_best *best;
};

static int raw_batch(void *ctx, int64_t n)
{
    struct raw_ctx *r = ctx;
    for (int64_t i = 0; i < n; i++) {
        if (r->fresh && fiber_stack_alloc(&r->stack, FIBER_DEFAULT_STACK_SIZE, r->guard) != 0)
            return errno;
        fiber_context_make(&raw_unit, r->stack.lo, r->stack.hi, raw_entry, NULL);
        fiber_context_switch(&raw_main, &raw_unit);
        if (r->fresh)
            fiber_stack_free(&r->stack);
    }
    return 0;
}

static void bm_raw(gb_state_t *st, void *ctx)
{
    struct raw_ctx r = *(struct raw_ctx *)ctx;
    place_t p = {.pinned = r.pinned};
    if (!r.fresh && fiber_stack_alloc(&r.stack, FIBER_DEFAULT_STACK_SIZE, 1) != 0)
        return gb_skip_with_error(st, "fiber_stack_alloc failed");
    place_enter(&p);
    /* Fresh stacks cost a system call or two each: fewer of them. */
    run_batches(st, raw_batch, &r, r.fresh ? units_thread : units_fiber, r.best);
    place_leave(&p);
    if (!r.fresh)
        fiber_stack_free(&r.stack);
}

/* ---- threads ---- */

static void *thread_work(void *arg)
{
    (void)arg;
    sink++;
    return NULL;
}

/* The thread cases' stack: glibc's default, a size (glibc still caches and reuses it),
 * or a fresh mapping per thread (STACK_FRESH: mapped, guarded and unmapped around each
 * create+join, as the cold fiber's stack is). */
#define STACK_FRESH ((size_t)-1)

typedef struct cj {
    pthread_attr_t attr;
    int            fresh;
} cj_t;

static int create_join_batch(void *ctx, int64_t n)
{
    cj_t *c = ctx;
    for (int64_t i = 0; i < n; i++) {
        pthread_t t;
        char *map = NULL;
        size_t len = FRESH_STACK + (size_t)sysconf(_SC_PAGESIZE);
        if (c->fresh) {
            /* The guard is the mapping's lowest page, as glibc lays out its own stacks. */
            map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (map == MAP_FAILED)
                return errno;
            if (mprotect(map, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) != 0) {
                int e = errno;
                munmap(map, len);
                return e;
            }
            int e = pthread_attr_setstack(&c->attr, map + sysconf(_SC_PAGESIZE), FRESH_STACK);
            if (e) {
                munmap(map, len);
                return e;
            }
        }
        int e = pthread_create(&t, &c->attr, thread_work, NULL);
        if (!e)
            pthread_join(t, NULL);
        if (map)
            munmap(map, len);
        if (e)
            return e;
    }
    return 0;
}

static void bm_create_join(gb_state_t *st, void *ctx)
{
    const place_t *p = ctx;
    size_t stack = (size_t)p->arg;
    cj_t c = {.fresh = stack == STACK_FRESH};
    pthread_attr_init(&c.attr);
    if (stack && !c.fresh)
        pthread_attr_setstacksize(&c.attr, stack);
    if (p->pinned)
        bench_pin_attr(&c.attr, SAME_CPU); /* inherited anyway; said, and checked */
    place_enter(p);
    run_batches(st, create_join_batch, &c, units_thread, NULL);
    place_leave(p);
    pthread_attr_destroy(&c.attr);
}

/* A pre-started pool: a job counter under a mutex, workers that take jobs and count
 * them done; the submitter hands over n jobs one at a time and waits for each, so a
 * unit is one hand-over and one completion, like a create+join. */
typedef struct tpool {
    pthread_mutex_t mu;
    pthread_cond_t  have_job, job_done;
    long            queued, done;
    int             stop, nworkers;
    pthread_t       workers[8];
} tpool_t;

static void *pool_worker(void *arg)
{
    tpool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->queued && !p->stop)
            pthread_cond_wait(&p->have_job, &p->mu);
        if (p->stop)
            break;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        thread_work(NULL);
        pthread_mutex_lock(&p->mu);
        p->done++;
        pthread_cond_signal(&p->job_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int pool_batch(void *ctx, int64_t n)
{
    tpool_t *p = ctx;
    pthread_mutex_lock(&p->mu);
    for (int64_t i = 0; i < n; i++) {
        long target = p->done + 1;
        p->queued++;
        pthread_cond_signal(&p->have_job);
        while (p->done < target)
            pthread_cond_wait(&p->job_done, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void bm_pool(gb_state_t *st, void *ctx)
{
    (void)ctx;
    tpool_t *p = calloc(1, sizeof *p);
    if (!p)
        return gb_skip_with_error(st, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->have_job, NULL);
    pthread_cond_init(&p->job_done, NULL);
    int want = bench_ncpus() < 8 ? bench_ncpus() : 8;
    for (p->nworkers = 0; p->nworkers < want; p->nworkers++)
        if (pthread_create(&p->workers[p->nworkers], NULL, pool_worker, p) != 0)
            break;
    if (p->nworkers == 0)
        gb_skip_with_error(st, "pthread_create failed");
    else
        run_batches(st, pool_batch, p, units_thread, NULL);
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->have_job);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->job_done);
    pthread_cond_destroy(&p->have_job);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Appends a fiber case's core_adds_per_ns_at_best row to <out_dir>/alloc.csv (unit
 * adds/ns, median = min = max, runs = the repetitions it is the best of), its model,
 * impl, param and value split from the case name as scripts/gbench2csv.py splits them
 * (the part after the harness is the model; a last "k=<number>" part the param and
 * value; the rest the impl). 0 or -1. */
static int write_at_best(const char *out_dir, const struct at_best *b)
{
    char name[256], impl[256] = "", param[64] = "", value[64] = "";
    snprintf(name, sizeof name, "%s", b->name);
    char *save = NULL, *part = strtok_r(name, "/", &save); /* "alloc" */
    const char *model = part ? strtok_r(NULL, "/", &save) : NULL;
    if (!model)
        return -1;
    while ((part = strtok_r(NULL, "/", &save)) != NULL) {
        char *eq = strchr(part, '='), *end = NULL;
        if (eq && eq != part && eq[1] && (strtod(eq + 1, &end), *end == '\0')) {
            snprintf(param, sizeof param, "%.*s", (int)(eq - part), part);
            snprintf(value, sizeof value, "%s", eq + 1);
        } else {
            size_t n = strlen(impl);
            snprintf(impl + n, sizeof impl - n, "%s%s", n ? "/" : "", part);
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/alloc.csv", out_dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    fprintf(f, "alloc,%s,%s,%s,%s,%s,core_adds_per_ns_at_best,adds/ns,%.6g,%.6g,%.6g,%d\n", b->name,
            model, impl[0] ? impl : model, param, value, b->speed, b->speed, b->speed, b->reps);
    return fclose(f) == 0 ? 0 : -1;
}

static void setup(gb_bench_t *b, int64_t units, bench_mode_t mode)
{
    static const int reps[] = {7, 3, 2};
    gb_repetitions(gb_iterations(gb_manual_time(b), units), reps[mode]);
}

int main(int argc, char **argv)
{
    bench_cli_t cli;
    int rc = bench_cli_parse(&cli, argc, argv, "alloc", SUMMARY, NULL);
    if (rc)
        return rc == 1 ? 0 : 2;
    /* The same units per repetition in full and quick mode: the first batch (cold) and the
     * mean over the repetition then mean the same thing; quick runs fewer repetitions. */
    static const int64_t fiber_units[] = {200000, 200000, 2000};
    static const int64_t thread_units[] = {10000, 10000, 200};
    units_fiber = fiber_units[cli.mode];
    units_thread = thread_units[cli.mode];

    /* The fiber cases, each with its best repetition (struct at_best). */
    static struct at_best best[] = {
        {.name = "alloc/fiber/pooled/cpu=same/batch=1"}, {.name = "alloc/fiber/pooled/cpu=any/batch=1"},
        {.name = "alloc/fiber/pooled/cpu=any/batch=100"}, {.name = "alloc/fiber/raw-context/stack=reused"},
        {.name = "alloc/fiber/fresh-stack/cpu=same/guard=1"}, {.name = "alloc/fiber/fresh-stack/cpu=any/guard=1"},
        {.name = "alloc/fiber/fresh-stack/cpu=any/guard=0"}};
    static place_t pooled_same = {1, 1, &best[0]}, pooled_any = {0, 1, &best[1]},
                   pooled100_any = {0, 100, &best[2]};
    static place_t cj_same = {1, 0, NULL}, cj_any = {0, 0, NULL}, cj64_any = {0, 64 * 1024, NULL},
                   cjfresh_same = {1, (long)STACK_FRESH, NULL}, cjfresh_any = {0, (long)STACK_FRESH, NULL};
    static struct raw_ctx raw_pooled = {0, 1, 0, {0}, &best[3]}, fresh_same = {1, 1, 1, {0}, &best[4]},
                          fresh_any = {1, 1, 0, {0}, &best[5]}, fresh_noguard = {1, 0, 0, {0}, &best[6]};
    /* The warm pair. */
    setup(gb_register(best[0].name, bm_pooled, &pooled_same), units_fiber, cli.mode);
    setup(gb_register("alloc/thread/create-join/cpu=same/stack=default", bm_create_join, &cj_same),
          units_thread, cli.mode);
    setup(gb_register(best[1].name, bm_pooled, &pooled_any), units_fiber, cli.mode);
    setup(gb_register("alloc/thread/create-join/cpu=any/stack=default", bm_create_join, &cj_any),
          units_thread, cli.mode);
    /* The cold pair. */
    setup(gb_register(best[4].name, bm_raw, &fresh_same), units_thread, cli.mode);
    setup(gb_register("alloc/thread/create-join/cpu=same/stack=fresh", bm_create_join, &cjfresh_same),
          units_thread, cli.mode);
    setup(gb_register(best[5].name, bm_raw, &fresh_any), units_thread, cli.mode);
    setup(gb_register("alloc/thread/create-join/cpu=any/stack=fresh", bm_create_join, &cjfresh_any),
          units_thread, cli.mode);
    /* Beside them. */
    setup(gb_register(best[2].name, bm_pooled, &pooled100_any), units_fiber, cli.mode);
    setup(gb_register(best[3].name, bm_raw, &raw_pooled), units_fiber, cli.mode);
    setup(gb_register(best[6].name, bm_raw, &fresh_noguard), units_thread, cli.mode);
    setup(gb_register("alloc/thread/create-join/cpu=any/stack=64K", bm_create_join, &cj64_any),
          units_thread, cli.mode);
    setup(gb_register("alloc/thread/pool-handoff/workers=ncpu", bm_pool, NULL), units_thread, cli.mode);

    char mode_line[64], units_line[96], guard_line[64];
    snprintf(mode_line, sizeof mode_line, "mode: %s", bench_mode_name(cli.mode));
    snprintf(units_line, sizeof units_line, "units per repetition: fibers %lld, threads %lld, %d batches",
             (long long)units_fiber, (long long)units_thread, BATCHES);
    /* One fiber first, so that the machine file can say which guard mode the kernel
     * allowed (it is settled by the first guarded stack). */
    fiber_t *probe = fiber_spawn(work, NULL);
    if (probe)
        fiber_join(probe);
    fiber_pool_trim();
    snprintf(guard_line, sizeof guard_line, "fiber guard mode: %s", fiber_guard_mode());
    const char *extra[] = {mode_line, units_line, guard_line, "unit: ns per create+run+reclaim",
                           "clock: CLOCK_MONOTONIC for every case",
                           "placement: cpu=same pins the benchmark thread (the creator and joiner) and the "
                           "threads it creates to CPU 0; cpu=any leaves every thread unpinned",
                           NULL};
    bench_progress("alloc", "%s run, results in %s/alloc.csv", bench_mode_name(cli.mode), cli.out_dir);
    rc = bench_gbrun_cli("alloc", &cli, extra);
    if (rc == 0) {
        /* The headline pairs, like for like, then the rest. */
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/thread-over-fiber-pooled/cpu=same",
                       "thread-create-join/fiber-pooled", "alloc/thread/create-join/cpu=same/stack=default",
                       "alloc/fiber/pooled/cpu=same/batch=1");
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/thread-over-fiber-pooled/cpu=any",
                       "thread-create-join/fiber-pooled", "alloc/thread/create-join/cpu=any/stack=default",
                       "alloc/fiber/pooled/cpu=any/batch=1");
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/thread-over-fiber-fresh/cpu=same",
                       "thread-fresh-stack/fiber-fresh-stack", "alloc/thread/create-join/cpu=same/stack=fresh",
                       "alloc/fiber/fresh-stack/cpu=same/guard=1");
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/thread-over-fiber-fresh/cpu=any",
                       "thread-fresh-stack/fiber-fresh-stack", "alloc/thread/create-join/cpu=any/stack=fresh",
                       "alloc/fiber/fresh-stack/cpu=any/guard=1");
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/thread-pool-over-fiber-pooled",
                       "thread-pool-handoff/fiber-pooled", "alloc/thread/pool-handoff/workers=ncpu",
                       "alloc/fiber/pooled/cpu=any/batch=1");
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/fiber-pooled-over-raw-context",
                       "fiber-pooled/raw-context", "alloc/fiber/pooled/cpu=any/batch=1",
                       "alloc/fiber/raw-context/stack=reused");
        for (size_t i = 0; i < sizeof best / sizeof best[0]; i++)
            if (best[i].reps && write_at_best(cli.out_dir, &best[i]) != 0)
                rc = 1;
    }
    bench_progress("alloc", "done");
    return rc;
}
