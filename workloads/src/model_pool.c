/*
 * model_pool.c - a fixed pool of worker threads (25 by default, like Sidekiq's or
 * SolidQueue's default concurrency). Connections and jobs wait in a FIFO until a worker
 * is free: with 25 workers busy on long streams, the 26th user waits for a whole stream
 * to end. That wait is the "slot starvation" the post describes, and it is measured from
 * the moment the user arrived, not from the moment a worker picked the job up.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pool_size(int workers)
{
    return workers > 0 ? workers : WL_POOL_DEFAULT;
}

static int start_workers(pthread_t *t, int n, size_t stack_size, void *(*fn)(void *), void *arg,
                         wl_units_t *u)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    if (stack_size)
        pthread_attr_setstacksize(&a, stack_size);
    int started = 0;
    for (int i = 0; i < n; i++) {
        int e = pthread_create(&t[started], &a, fn, arg);
        if (e != 0) {
            wl__units_fail(u, e);
            continue;
        }
        wl__units_enter(u);
        started++;
    }
    pthread_attr_destroy(&a);
    return started;
}

/* ---- server: an unbounded FIFO of accepted connections -------------------------------- */

struct fdq {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int            *fds;
    size_t          head, len, cap;
    int             closing;
};

struct pool_srv {
    const wl_serve_cfg_t *cfg;
    wl_live_t             live;
    wl_units_t            units;
    struct fdq            q;
};

static void fdq_push(struct fdq *q, int fd)
{
    pthread_mutex_lock(&q->mu);
    if (q->len == q->cap) {
        size_t n = q->cap ? q->cap * 2 : 256;
        int *t = malloc(n * sizeof *t);
        if (!t)
            WL_PANIC("out of memory for the connection queue");
        for (size_t i = 0; i < q->len; i++)
            t[i] = q->fds[(q->head + i) % q->cap];
        free(q->fds);
        q->fds = t;
        q->cap = n;
        q->head = 0;
    }
    q->fds[(q->head + q->len) % q->cap] = fd;
    q->len++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Returns the next fd, or -1 once closing and empty. */
static int fdq_pop(struct fdq *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->len && !q->closing)
        pthread_cond_wait(&q->cv, &q->mu);
    int fd = -1;
    if (q->len) {
        fd = q->fds[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    pthread_mutex_unlock(&q->mu);
    return fd;
}

static void *srv_worker(void *p)
{
    struct pool_srv *s = p;
    int fd;
    while ((fd = fdq_pop(&s->q)) >= 0) {
        s->cfg->handler(fd, s->cfg->arg);
        wl_live_del(&s->live, fd);
        close(fd);
    }
    wl__units_leave(&s->units);
    return NULL;
}

static int pool_serve(const wl_serve_cfg_t *cfg, wl_run_stats_t *st)
{
    int n = pool_size(cfg->workers);
    struct pool_srv *s = calloc(1, sizeof *s);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    if (!s || !t) {
        free(s);
        free(t);
        errno = ENOMEM;
        return -1;
    }
    s->cfg = cfg;
    wl_live_init(&s->live);
    pthread_mutex_init(&s->q.mu, NULL);
    pthread_cond_init(&s->q.cv, NULL);
    int lfd = wl_listen(&cfg->addr, cfg->backlog, 0, 0);
    if (lfd < 0)
        goto error;
    int started = start_workers(t, n, cfg->stack_size, srv_worker, s, &s->units);
    if (cfg->on_ready)
        cfg->on_ready(wl_bound_port(lfd), cfg->arg);
    while (!wl_stop_requested(cfg->stop)) {
        /* Sleeps until a connection or the stop request comes: no timeout to poll at. */
        struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
                               { .fd = cfg->stop->fd, .events = POLLIN } };
        if (poll(p, 2, -1) <= 0 || !(p[0].revents & POLLIN))
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            wl__units_accept_fail(&s->units, errno);
            usleep(1000);
            continue;
        }
        wl__tune_conn(fd);
        wl_live_add(&s->live, fd);
        fdq_push(&s->q, fd);
    }
    close(lfd);
    pthread_mutex_lock(&s->q.mu);
    s->q.closing = 1;
    /* Connections still queued never got a worker: close them unserved. */
    while (s->q.len) {
        int fd = s->q.fds[s->q.head];
        s->q.head = (s->q.head + 1) % s->q.cap;
        s->q.len--;
        wl_live_del(&s->live, fd);
        close(fd);
    }
    pthread_cond_broadcast(&s->q.cv);
    pthread_mutex_unlock(&s->q.mu);
    wl_live_shutdown_all(&s->live);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    wl__units_to_stats(&s->units, st);
    wl_live_destroy(&s->live);
    free(s->q.fds);
    free(s);
    free(t);
    return 0;
error:;
    int e = errno;
    wl_live_destroy(&s->live);
    free(s);
    free(t);
    errno = e;
    return -1;
}

/* ---- jobs: workers take the next index in arrival order ------------------------------ */

struct pool_jobs {
    const wl_jobs_cfg_t *cfg;
    uint64_t             t0;
    atomic_size_t        next;
    wl_res_t            *res;
    wl_units_t           units;
};

static void *job_worker(void *p)
{
    struct pool_jobs *pj = p;
    const wl_jobs_cfg_t *cfg = pj->cfg;
    for (;;) {
        size_t i = atomic_fetch_add(&pj->next, 1);
        if (i >= cfg->n)
            break;
        if (cfg->gap_ns)
            wl_sleep_until(pj->t0 + i * cfg->gap_ns);
        cfg->job(i, pj->res, cfg->arg);
    }
    wl__units_leave(&pj->units);
    return NULL;
}

static int pool_run_jobs(const wl_jobs_cfg_t *cfg, wl_run_stats_t *st)
{
    int n = pool_size(cfg->workers);
    struct pool_jobs pj = { .cfg = cfg };
    pthread_t *t = calloc((size_t)n, sizeof *t);
    if (!t)
        WL_PANIC("out of memory for %d workers", n);
    pj.t0 = cfg->t0_ns ? cfg->t0_ns : wl_now_ns();
    pj.res = cfg->res_k > 0 ? wl_res_new_thread(cfg->res_k) : NULL;
    int started = start_workers(t, n, cfg->stack_size, job_worker, &pj, &pj.units);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    wl__units_to_stats(&pj.units, st);
    /* "started" counts workers here; the jobs all ran unless no worker started. */
    if (pj.res)
        wl_res_stats(pj.res, &st->res_peak, &st->res_wait_ns);
    wl_res_free(pj.res);
    free(t);
    return 0;
}

const wl_model_t wl_model_pool = {
    .name = "pool",
    .kind = "thread",
    .serve = pool_serve,
    .run_jobs = pool_run_jobs,
};
