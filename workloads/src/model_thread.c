/*
 * model_thread.c - a thread per connection or job: the model a blocking-I/O program gets
 * for free. Each unit is a pthread with default attributes (an 8 MiB stack reservation
 * from ulimit -s, a guard page, a kernel stack and a task_struct), which is exactly what
 * the comparison is about. pid_max and RLIMIT_NPROC bound how many can live at once;
 * pthread_create then fails with EAGAIN, which is counted, not fatal.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int thread_attr(pthread_attr_t *a, size_t stack_size, int detached)
{
    pthread_attr_init(a);
    if (detached)
        pthread_attr_setdetachstate(a, PTHREAD_CREATE_DETACHED);
    if (stack_size && pthread_attr_setstacksize(a, stack_size) != 0)
        return -1;
    return 0;
}

/* ---- server ---------------------------------------------------------------------- */

struct conn {
    const wl_serve_cfg_t *cfg;
    wl_live_t            *live;
    wl_units_t           *units;
    int                   fd;
};

static void *conn_main(void *p)
{
    struct conn c = *(struct conn *)p;
    free(p);
    c.cfg->handler(c.fd, c.cfg->arg);
    wl_live_del(c.live, c.fd);
    close(c.fd);
    wl__units_leave(c.units);
    return NULL;
}

static int thread_serve(const wl_serve_cfg_t *cfg, wl_run_stats_t *st)
{
    wl_units_t units = { 0 };
    wl_live_t live;
    pthread_attr_t attr;
    int lfd = wl_listen(&cfg->addr, cfg->backlog, 0, 0);
    if (lfd < 0)
        return -1;
    if (thread_attr(&attr, cfg->stack_size, 1) != 0) {
        close(lfd);
        errno = EINVAL;
        return -1;
    }
    wl_live_init(&live);
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
            wl__units_accept_fail(&units, errno);
            usleep(1000); /* EMFILE: the pending connection stays queued; back off */
            continue;
        }
        wl__tune_conn(fd);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            wl__units_fail(&units, ENOMEM);
            close(fd);
            continue;
        }
        *c = (struct conn){ cfg, &live, &units, fd };
        wl_live_add(&live, fd);
        wl__units_enter(&units);
        pthread_t t;
        int e = pthread_create(&t, &attr, conn_main, c);
        if (e != 0) {
            wl__units_leave(&units);
            atomic_fetch_sub(&units.started, 1);
            wl__units_fail(&units, e);
            wl_live_del(&live, fd);
            close(fd);
            free(c);
        }
    }
    close(lfd);
    /* Detached threads cannot be joined: wake them with end of file and wait for the
     * count to drop, giving up after 10 s rather than hanging a harness. */
    for (int i = 0; i < 10000 && atomic_load(&units.live); i++) {
        wl_live_shutdown_all(&live);
        usleep(1000);
    }
    wl__units_to_stats(&units, st);
    pthread_attr_destroy(&attr);
    if (!atomic_load(&units.live))
        wl_live_destroy(&live); /* else leaked on purpose: stuck threads still use it */
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------ */

/* Detached, like the server's connection threads: a finished job's thread gives its stack
 * back at once (to glibc's stack cache, for a later thread, or unmapped), as a finished
 * fiber's goes back to the pool. Joining them only after the last one is spawned kept
 * every finished thread's stack mapped and resident until then: with arrivals spread over
 * 10 s, half of the stacks held at the peak belonged to jobs already over (wl-curl,
 * 10,000 arriving: 9,474 stacks of 40 KiB resident for 4,750 live threads), charged to
 * the live ones. run_jobs waits for the count of jobs not yet returned to reach 0. */
struct jobs_wait {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    size_t          remaining;
};

struct job {
    const wl_jobs_cfg_t *cfg;
    wl_units_t          *units;
    wl_res_t            *res;
    struct jobs_wait    *wait;
    size_t               index;
};

static void *job_main(void *p)
{
    struct job *j = p;
    struct jobs_wait *w = j->wait;
    j->cfg->job(j->index, j->res, j->cfg->arg);
    wl__units_leave(j->units);
    pthread_mutex_lock(&w->mu);
    if (--w->remaining == 0)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu); /* the last touch of anything run_jobs owns */
    return NULL;
}

static int thread_run_jobs(const wl_jobs_cfg_t *cfg, wl_run_stats_t *st)
{
    wl_units_t units = { 0 };
    struct jobs_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    pthread_attr_t attr;
    struct job *jobs = calloc(cfg->n ? cfg->n : 1, sizeof *jobs);
    wl_res_t *res = cfg->res_k > 0 ? wl_res_new_thread(cfg->res_k) : NULL;
    if (!jobs || (cfg->res_k > 0 && !res))
        WL_PANIC("out of memory for %zu jobs", cfg->n);
    if (thread_attr(&attr, cfg->stack_size, 1) != 0)
        WL_PANIC("bad thread stack size %zu", cfg->stack_size);
    uint64_t t0 = cfg->t0_ns ? cfg->t0_ns : wl_now_ns();
    for (size_t i = 0; i < cfg->n; i++) {
        if (cfg->gap_ns)
            wl_sleep_until(t0 + i * cfg->gap_ns);
        jobs[i] = (struct job){ cfg, &units, res, &w, i };
        wl__units_enter(&units);
        pthread_mutex_lock(&w.mu);
        w.remaining++;
        pthread_mutex_unlock(&w.mu);
        pthread_t tid;
        int e = pthread_create(&tid, &attr, job_main, &jobs[i]);
        if (e != 0) {
            pthread_mutex_lock(&w.mu);
            w.remaining--;
            pthread_mutex_unlock(&w.mu);
            wl__units_leave(&units);
            atomic_fetch_sub(&units.started, 1);
            wl__units_fail(&units, e);
        }
    }
    pthread_mutex_lock(&w.mu);
    while (w.remaining)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    wl__units_to_stats(&units, st);
    if (res)
        wl_res_stats(res, &st->res_peak, &st->res_wait_ns);
    wl_res_free(res);
    pthread_attr_destroy(&attr);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    free(jobs);
    return 0;
}

const wl_model_t wl_model_thread = {
    .name = "thread",
    .kind = "thread",
    .serve = thread_serve,
    .run_jobs = thread_run_jobs,
};
