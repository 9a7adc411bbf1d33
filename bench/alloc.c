/*
 * alloc.c - bench_alloc: what creating, running and reclaiming one unit of concurrency
 * costs, in ns per unit.
 *
 * Fibers: fiber_spawn + fiber_join with the runtime's stack pool (one at a time, and
 * 100 spawned before any is joined); the raw context layer on a reused stack (the floor
 * under the runtime's bookkeeping); a fresh mmap'd stack per fiber, with and without a
 * guard page. Threads: pthread_create + pthread_join with glibc's default stack and with
 * 64 KiB; and handing a job to a pre-started pool of threads and waiting for it (the
 * fair thread alternative: no creation at all).
 *
 * Each repetition is a fixed number of units in 10 batches; besides the mean over the
 * repetition, counters report the first batch (cold_create_ns: the pool is emptied
 * before each repetition, so it pays for fresh stacks and cold caches) and the last
 * (warm_create_ns), as the post's cache-warming table does. results/alloc.csv.
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

static const char SUMMARY[] =
    "ns per create+run+reclaim: fibers (pooled stack, raw context, fresh stack with and\n"
    "without guard), pthread create+join (default and 64 KiB stacks), and a job handed to\n"
    "a pre-started thread pool. Cold (first batch) and warm (last batch) as counters.";

#define BATCHES 10
static int64_t units_fiber, units_thread; /* per repetition, set by the mode */

static volatile long sink;

static void work(void *arg)
{
    (void)arg;
    sink++;
}

/* Times BATCHES batches through one_batch; reports manual time and cold/warm. */
typedef int (*batch_fn)(void *ctx, int64_t n); /* returns 0 or an errno */

static void run_batches(gb_state_t *st, batch_fn fn, void *ctx, int64_t per_rep)
{
    int64_t batch = per_rep / BATCHES;
    double first = -1, last = 0;
    while (gb_keep_running_batch(st, batch)) {
        uint64_t t0 = bench_now_ns();
        int e = fn(ctx, batch);
        uint64_t dt = bench_now_ns() - t0;
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
    }
    gb_counter(st, "cold_create_ns", first, GB_COUNTER_DEFAULT);
    gb_counter(st, "warm_create_ns", last, GB_COUNTER_DEFAULT);
    gb_label(st, "metric=ns_per_create");
}

/* ---- fibers through the runtime ---- */

static int spawn_join_batch(void *ctx, int64_t n)
{
    long group = (long)(intptr_t)ctx;
    fiber_t *fs[128];
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

static void bm_pooled(gb_state_t *st, void *ctx)
{
    fiber_pool_trim(); /* the first batch pays for its stacks: cold */
    run_batches(st, spawn_join_batch, ctx, units_fiber);
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
    int           fresh, guard;
    fiber_stack_t stack;
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
    if (!r.fresh && fiber_stack_alloc(&r.stack, FIBER_DEFAULT_STACK_SIZE, 1) != 0)
        return gb_skip_with_error(st, "fiber_stack_alloc failed");
    /* Fresh stacks cost a system call or two each: fewer of them. */
    run_batches(st, raw_batch, &r, r.fresh ? units_thread : units_fiber);
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

static int create_join_batch(void *ctx, int64_t n)
{
    pthread_attr_t *attr = ctx;
    for (int64_t i = 0; i < n; i++) {
        pthread_t t;
        int e = pthread_create(&t, attr, thread_work, NULL);
        if (e)
            return e;
        pthread_join(t, NULL);
    }
    return 0;
}

static void bm_create_join(gb_state_t *st, void *ctx)
{
    size_t stack = (size_t)(intptr_t)ctx;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (stack)
        pthread_attr_setstacksize(&attr, stack);
    run_batches(st, create_join_batch, &attr, units_thread);
    pthread_attr_destroy(&attr);
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
        run_batches(st, pool_batch, p, units_thread);
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
    static const int64_t fiber_units[] = {200000, 50000, 2000};
    static const int64_t thread_units[] = {10000, 2000, 200};
    units_fiber = fiber_units[cli.mode];
    units_thread = thread_units[cli.mode];

    static struct raw_ctx raw_pooled = {0, 1, {0}}, fresh_guard = {1, 1, {0}},
                          fresh_noguard = {1, 0, {0}};
    setup(gb_register("alloc/fiber/pooled/batch=1", bm_pooled, (void *)1), units_fiber, cli.mode);
    setup(gb_register("alloc/fiber/pooled/batch=100", bm_pooled, (void *)100), units_fiber, cli.mode);
    setup(gb_register("alloc/fiber/raw-context/stack=reused", bm_raw, &raw_pooled), units_fiber, cli.mode);
    setup(gb_register("alloc/fiber/fresh-stack/guard=1", bm_raw, &fresh_guard), units_thread, cli.mode);
    setup(gb_register("alloc/fiber/fresh-stack/guard=0", bm_raw, &fresh_noguard), units_thread, cli.mode);
    setup(gb_register("alloc/thread/create-join/stack=default", bm_create_join, (void *)0),
          units_thread, cli.mode);
    setup(gb_register("alloc/thread/create-join/stack=64K", bm_create_join, (void *)(intptr_t)(64 * 1024)),
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
    const char *extra[] = {mode_line, units_line, guard_line, "unit: ns per create+run+reclaim", NULL};
    bench_progress("alloc", "%s run, results in %s/alloc.csv", bench_mode_name(cli.mode), cli.out_dir);
    rc = bench_gbrun_cli("alloc", &cli, extra);
    if (rc == 0) {
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/thread-over-fiber-pooled",
                       "thread-create-join/fiber-pooled", "alloc/thread/create-join/stack=default",
                       "alloc/fiber/pooled/batch=1");
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/thread-pool-over-fiber-pooled",
                       "thread-pool-handoff/fiber-pooled", "alloc/thread/pool-handoff/workers=ncpu",
                       "alloc/fiber/pooled/batch=1");
        bench_gb_ratio("alloc", cli.out_dir, "alloc/ratio/fiber-pooled-over-raw-context",
                       "fiber-pooled/raw-context", "alloc/fiber/pooled/batch=1",
                       "alloc/fiber/raw-context/stack=reused");
    }
    bench_progress("alloc", "done");
    return rc;
}
