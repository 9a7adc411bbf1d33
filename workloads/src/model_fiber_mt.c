/*
 * model_fiber_mt.c - fibers on N schedulers, one per thread (one per core by default).
 * The server gives each scheduler its own SO_REUSEPORT listener, so the kernel spreads
 * connections over the threads and no connection ever moves between them; jobs are dealt
 * round-robin. Fibers never cross threads (the runtime forbids it), so the shared
 * resource is split into one share per scheduler.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int nsched(int workers)
{
    return workers > 0 ? workers : wl_cpus();
}

/* ---- server ---------------------------------------------------------------------- */

struct srv_thread {
    const wl_serve_cfg_t *cfg;
    int                   lfd;
    wl_live_t            *live;
    wl_units_t           *units;
};

static void *srv_thread_main(void *p)
{
    struct srv_thread *t = p;
    wl__fiber_serve_on(t->lfd, t->cfg, t->live, t->units);
    return NULL;
}

static int fiber_mt_serve(const wl_serve_cfg_t *cfg, wl_run_stats_t *st)
{
    int n = nsched(cfg->workers);
    wl_units_t units = { 0 };
    wl_live_t live;
    struct srv_thread *th = calloc((size_t)n, sizeof *th);
    pthread_t *tid = calloc((size_t)n, sizeof *tid);
    if (!th || !tid) {
        free(th);
        free(tid);
        errno = ENOMEM;
        return -1;
    }
    wl_live_init(&live);
    /* The first listener picks the port (when 0 was asked); the others join it. */
    struct sockaddr_in addr = cfg->addr;
    int opened = 0;
    for (; opened < n; opened++) {
        th[opened] = (struct srv_thread){ cfg, wl_listen(&addr, cfg->backlog, 1, 1), &live, &units };
        if (th[opened].lfd < 0)
            goto error;
        addr.sin_port = htons(wl_bound_port(th[opened].lfd));
    }
    if (cfg->on_ready)
        cfg->on_ready(ntohs(addr.sin_port), cfg->arg);
    int started = 0;
    for (; started < n; started++)
        if (pthread_create(&tid[started], NULL, srv_thread_main, &th[started]) != 0)
            break;
    if (started < n) { /* a listener without a scheduler would strand its connections */
        wl_stop_request(cfg->stop);
        for (int i = started; i < n; i++)
            close(th[i].lfd);
    }
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    wl__units_to_stats(&units, st);
    wl_live_destroy(&live);
    free(th);
    free(tid);
    return 0;
error:;
    int e = errno;
    for (int i = 0; i < opened; i++)
        close(th[i].lfd);
    wl_live_destroy(&live);
    free(th);
    free(tid);
    errno = e;
    return -1;
}

/* ---- jobs ------------------------------------------------------------------------ */

struct jobs_thread {
    const wl_jobs_cfg_t *cfg;
    size_t               first, stride;
    long                 res_k;
    wl_units_t          *units;
    long                 res_peak;
    uint64_t             res_wait_ns;
};

static void *jobs_thread_main(void *p)
{
    struct jobs_thread *t = p;
    wl__fiber_jobs_slice(t->cfg, t->first, t->stride, t->res_k, t->units, &t->res_peak,
                         &t->res_wait_ns);
    return NULL;
}

static int fiber_mt_run_jobs(const wl_jobs_cfg_t *cfg, wl_run_stats_t *st)
{
    int n = nsched(cfg->workers);
    wl_units_t units = { 0 };
    wl_jobs_cfg_t c = *cfg;
    if (!c.t0_ns) /* one arrival clock for every scheduler */
        c.t0_ns = wl_now_ns();
    struct jobs_thread *th = calloc((size_t)n, sizeof *th);
    pthread_t *tid = calloc((size_t)n, sizeof *tid);
    if (!th || !tid)
        WL_PANIC("out of memory for %d schedulers", n);
    long share = cfg->res_k > 0 ? (cfg->res_k / n > 0 ? cfg->res_k / n : 1) : 0;
    int started = 0;
    for (int i = 0; i < n; i++) {
        th[i] = (struct jobs_thread){ &c, (size_t)i, (size_t)n, share, &units, 0, 0 };
        if (pthread_create(&tid[i], NULL, jobs_thread_main, &th[i]) != 0) {
            /* this slice runs on the calling thread instead, so no job is lost */
            jobs_thread_main(&th[i]);
            tid[i] = 0;
            continue;
        }
        started++;
    }
    st->res_peak = 0;
    st->res_wait_ns = 0;
    for (int i = 0; i < n; i++) {
        if (tid[i])
            pthread_join(tid[i], NULL);
        st->res_peak += th[i].res_peak;
        st->res_wait_ns += th[i].res_wait_ns;
    }
    long rp = st->res_peak;
    uint64_t rw = st->res_wait_ns;
    wl__units_to_stats(&units, st);
    st->res_peak = rp;
    st->res_wait_ns = rw;
    free(th);
    free(tid);
    return 0;
}

const wl_model_t wl_model_fiber_mt = {
    .name = "fiber-mt",
    .kind = "fiber",
    .serve = fiber_mt_serve,
    .run_jobs = fiber_mt_run_jobs,
};
