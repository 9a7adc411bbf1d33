/*
 * model_fiber.c - a fiber per connection or job, all on one scheduler (one thread).
 * Every wait parks the fiber in the runtime's epoll poller or timer heap; the thread only
 * sleeps when every fiber waits. Fiber stacks are 64 KiB by default (pooled, MAP_NORESERVE,
 * so only touched pages cost memory).
 */
#define _GNU_SOURCE
#include "internal.h"

#include "fiber.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* ---- server ---------------------------------------------------------------------- */

struct fconn {
    const wl_serve_cfg_t *cfg;
    wl_live_t            *live;
    wl_units_t           *units;
    int                   fd;
};

static void fconn_main(void *p)
{
    struct fconn c = *(struct fconn *)p;
    free(p);
    c.cfg->handler(c.fd, c.cfg->arg);
    wl_live_del(c.live, c.fd);
    fiber_close(c.fd);
    wl__units_leave(c.units);
}

struct acceptor {
    int                   lfd;
    const wl_serve_cfg_t *cfg;
    wl_live_t            *live;
    wl_units_t           *units;
    int                   stopping;
};

/* Waits in this scheduler's poller for the stop request (set from a signal handler or
 * another thread: its eventfd turns readable), then wakes the acceptor parked in
 * fiber_accept by making the poller forget the listener (the accept fails with EBADF). */
static void stop_watcher(void *p)
{
    struct acceptor *a = p;
    while (fiber_wait_fd(a->cfg->stop->fd, EPOLLIN, FIBER_FOREVER) < 0 &&
           !wl_stop_requested(a->cfg->stop))
        fiber_sleep_ns(1000000); /* cannot wait on it (ENOMEM): try again */
    a->stopping = 1;
    fiber_fd_forget(a->lfd);
}

static void acceptor_main(void *p)
{
    struct acceptor *a = p;
    fiber_attr_t attr = { .stack_size = a->cfg->stack_size, .name = "conn", .detached = 1 };
    fiber_attr_t wattr = { .name = "stop-watcher" };
    fiber_t *watcher = fiber_spawn_ex(stop_watcher, a, &wattr);
    if (!watcher)
        WL_PANIC("cannot spawn the stop watcher fiber: %s", strerror(errno));
    while (!a->stopping) {
        int fd = fiber_accept(a->lfd, NULL, NULL, FIBER_FOREVER);
        if (fd < 0) {
            if (a->stopping)
                break;
            wl__units_accept_fail(a->units, errno);
            fiber_sleep_ns(1000000); /* EMFILE: leave the connection queued, back off */
            continue;
        }
        wl__tune_conn(fd);
        struct fconn *c = malloc(sizeof *c);
        if (!c) {
            wl__units_fail(a->units, ENOMEM);
            close(fd);
            continue;
        }
        *c = (struct fconn){ a->cfg, a->live, a->units, fd };
        wl_live_add(a->live, fd);
        wl__units_enter(a->units);
        if (!fiber_spawn_ex(fconn_main, c, &attr)) {
            int e = errno;
            wl__units_leave(a->units);
            atomic_fetch_sub(&a->units->started, 1);
            wl__units_fail(a->units, e);
            wl_live_del(a->live, fd);
            close(fd);
            free(c);
        }
    }
    fiber_join(watcher);
    fiber_close(a->lfd);
    /* Every connection fiber is parked in this scheduler's poller: a shutdown makes its
     * fd readable (end of file), so each one wakes, returns and is reclaimed. */
    wl_live_shutdown_all(a->live);
}

void wl__fiber_serve_on(int lfd, const wl_serve_cfg_t *cfg, wl_live_t *live, wl_units_t *u)
{
    struct acceptor a = { lfd, cfg, live, u, 0 };
    fiber_attr_t attr = { .name = "acceptor" };
    fiber_t *f = fiber_spawn_ex(acceptor_main, &a, &attr);
    if (!f)
        WL_PANIC("cannot spawn the acceptor fiber: %s", strerror(errno));
    fiber_join(f);
    fiber_run(); /* the connection fibers still winding down */
}

static int fiber_serve(const wl_serve_cfg_t *cfg, wl_run_stats_t *st)
{
    wl_units_t units = { 0 };
    wl_live_t live;
    int lfd = wl_listen(&cfg->addr, cfg->backlog, 0, 1);
    if (lfd < 0)
        return -1;
    wl_live_init(&live);
    if (cfg->on_ready)
        cfg->on_ready(wl_bound_port(lfd), cfg->arg);
    wl__fiber_serve_on(lfd, cfg, &live, &units);
    wl__units_to_stats(&units, st);
    wl_live_destroy(&live);
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------ */

struct slice {
    const wl_jobs_cfg_t *cfg;
    size_t               first, stride;
    uint64_t             t0;
    wl_res_t            *res;
    wl_units_t          *units;
    size_t               remaining; /* jobs not yet returned; the spawner waits for 0 */
    fiber_waitq_t        done;
};

struct fjob {
    struct slice *s;
    size_t        index;
};

static void fjob_main(void *p)
{
    struct fjob *j = p;
    j->s->cfg->job(j->index, j->s->res, j->s->cfg->arg);
    wl__units_leave(j->s->units);
    if (--j->s->remaining == 0)
        fiber_waitq_wake_all(&j->s->done);
}

/* Spawns the jobs of a slice at their arrival times. It is a fiber itself, so spawned
 * jobs start running while later ones have not arrived yet. */
static void spawner_main(void *p)
{
    struct slice *s = p;
    const wl_jobs_cfg_t *cfg = s->cfg;
    size_t count = cfg->n > s->first ? (cfg->n - s->first + s->stride - 1) / s->stride : 0;
    struct fjob *jobs = calloc(count ? count : 1, sizeof *jobs);
    if (!jobs)
        WL_PANIC("out of memory for %zu jobs", count);
    fiber_attr_t attr = { .stack_size = cfg->stack_size, .name = "job", .detached = 1 };
    s->remaining = count;
    for (size_t k = 0; k < count; k++) {
        size_t i = s->first + k * s->stride;
        if (cfg->gap_ns)
            fiber_sleep_until(s->t0 + i * cfg->gap_ns);
        jobs[k] = (struct fjob){ s, i };
        wl__units_enter(s->units);
        if (!fiber_spawn_ex(fjob_main, &jobs[k], &attr)) {
            wl__units_leave(s->units);
            atomic_fetch_sub(&s->units->started, 1);
            wl__units_fail(s->units, errno);
            s->remaining--;
        }
    }
    /* The job records must outlive the jobs: wait until this slice's jobs are done. */
    while (s->remaining)
        fiber_waitq_wait(&s->done, FIBER_FOREVER);
    free(jobs);
}

void wl__fiber_jobs_slice(const wl_jobs_cfg_t *cfg, size_t first, size_t stride, long res_k,
                          wl_units_t *u, long *res_peak, uint64_t *res_wait_ns)
{
    struct slice s = { cfg, first, stride, cfg->t0_ns ? cfg->t0_ns : wl_now_ns(), NULL, u, 0,
                       FIBER_WAITQ_INIT };
    if (res_k > 0) {
        s.res = wl_res_new_fiber(res_k);
        if (!s.res)
            WL_PANIC("out of memory");
    }
    fiber_attr_t attr = { .name = "spawner", .detached = 1 };
    if (!fiber_spawn_ex(spawner_main, &s, &attr))
        WL_PANIC("cannot spawn the spawner fiber: %s", strerror(errno));
    if (fiber_run() != 0)
        WL_PANIC("fiber_run: %s", strerror(errno));
    *res_peak = 0;
    *res_wait_ns = 0;
    if (s.res)
        wl_res_stats(s.res, res_peak, res_wait_ns);
    wl_res_free(s.res);
}

static int fiber_run_jobs(const wl_jobs_cfg_t *cfg, wl_run_stats_t *st)
{
    wl_units_t units = { 0 };
    wl__fiber_jobs_slice(cfg, 0, 1, cfg->res_k, &units, &st->res_peak, &st->res_wait_ns);
    wl__units_to_stats(&units, st);
    return 0;
}

const wl_model_t wl_model_fiber = {
    .name = "fiber",
    .kind = "fiber",
    .serve = fiber_serve,
    .run_jobs = fiber_run_jobs,
};
