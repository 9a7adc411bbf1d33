/* test_models.c - every concurrency model runs every job exactly once, honours arrival
 * times and the shared resource's bound, serves N connections, and stops with idle
 * connections still open. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "wl.h"
#include "fiber.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <stdlib.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NJOBS 300

struct jobs_rec {
    atomic_int ran[NJOBS];
    uint64_t   start[NJOBS];
    atomic_int holding, max_holding;
    int        use_res;
    uint64_t   hold_ns;
};

static void job(size_t i, wl_res_t *res, void *arg)
{
    struct jobs_rec *r = arg;
    r->start[i] = wl_now_ns();
    atomic_fetch_add(&r->ran[i], 1);
    if (r->use_res) {
        assert_non_null(res);
        assert_int_equal(wl_res_acquire(res, WL_FOREVER), 0);
        int h = atomic_fetch_add(&r->holding, 1) + 1;
        int m = atomic_load(&r->max_holding);
        while (h > m && !atomic_compare_exchange_weak(&r->max_holding, &m, h)) {}
        wl_sleep_ns(r->hold_ns);
        atomic_fetch_sub(&r->holding, 1);
        wl_res_release(res);
    } else {
        wl_sleep_ns(r->hold_ns);
    }
}

static void run_all_once(const wl_model_t *m)
{
    static struct jobs_rec r;
    memset(&r, 0, sizeof r);
    r.hold_ns = 20 * 1000000;
    wl_jobs_cfg_t c = { .n = NJOBS, .workers = 0, .job = job, .arg = &r };
    wl_run_stats_t st = { 0 };
    assert_int_equal(m->run_jobs(&c, &st), 0);
    for (int i = 0; i < NJOBS; i++)
        assert_int_equal(atomic_load(&r.ran[i]), 1);
    assert_int_equal(st.spawn_failed, 0);
    if (strcmp(m->name, "pool") == 0) {
        assert_int_equal(st.peak_live, WL_POOL_DEFAULT);
    } else if (strcmp(m->kind, "fiber") == 0) {
        /* every job is spawned before any runs: all are alive at once */
        assert_int_equal(st.peak_live, NJOBS);
        assert_int_equal(st.started, NJOBS);
    } else {
        assert_true(st.peak_live > WL_POOL_DEFAULT);
        assert_int_equal(st.started, NJOBS);
    }
}

static void run_resource_bound(const wl_model_t *m)
{
    static struct jobs_rec r;
    memset(&r, 0, sizeof r);
    r.use_res = 1;
    r.hold_ns = 1000000;
    wl_jobs_cfg_t c = { .n = 60, .workers = 2, .res_k = 4, .job = job, .arg = &r };
    wl_run_stats_t st = { 0 };
    assert_int_equal(m->run_jobs(&c, &st), 0);
    for (int i = 0; i < 60; i++)
        assert_int_equal(atomic_load(&r.ran[i]), 1);
    /* pool of 2 workers: at most 2 hold at once; others: at most k = 4 */
    int bound = strcmp(m->name, "pool") == 0 ? 2 : 4;
    assert_true(atomic_load(&r.max_holding) <= bound);
    assert_true(st.res_peak >= 1 && st.res_peak <= bound);
    if (strcmp(m->name, "pool") != 0)
        assert_true(st.res_wait_ns > 0); /* 60 jobs on 4 units must have waited */
}

static void run_arrivals(const wl_model_t *m)
{
    static struct jobs_rec r;
    memset(&r, 0, sizeof r);
    uint64_t gap = 2000000, t0 = wl_now_ns() + 1000000;
    wl_jobs_cfg_t c = { .n = 20, .t0_ns = t0, .gap_ns = gap, .job = job, .arg = &r };
    wl_run_stats_t st = { 0 };
    assert_int_equal(m->run_jobs(&c, &st), 0);
    for (size_t i = 0; i < 20; i++) {
        assert_int_equal(atomic_load(&r.ran[i]), 1);
        assert_true(r.start[i] >= t0 + i * gap);
    }
}

/* ---- serving ------------------------------------------------------------------------- */

static void echo(int fd, void *arg)
{
    (void)arg;
    char buf[64];
    ssize_t n;
    while ((n = wl_read(fd, buf, sizeof buf, WL_FOREVER)) > 0)
        if (wl_write(fd, buf, (size_t)n, WL_FOREVER) < 0)
            break;
}

struct srv {
    const wl_model_t *m;
    wl_serve_cfg_t    cfg;
    wl_stop_t         stop;
    atomic_int        port;
    wl_run_stats_t    st;
    int               rc;
};

static void on_ready(uint16_t port, void *arg)
{
    (void)arg;
    (void)port;
}

static void *serve_main(void *p)
{
    struct srv *s = p;
    s->rc = s->m->serve(&s->cfg, &s->st);
    return NULL;
}

static void ready_port(uint16_t port, void *arg);

static struct srv *g_srv;
static void ready_port(uint16_t port, void *arg)
{
    (void)arg;
    atomic_store(&g_srv->port, port);
}

static int dial(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void start(struct srv *s, const wl_model_t *m, pthread_t *t)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->cfg.addr.sin_family = AF_INET;
    s->cfg.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->cfg.workers = strcmp(m->name, "fiber-mt") == 0 ? 2 : 0;
    s->cfg.handler = echo;
    assert_int_equal(wl_stop_init(&s->stop), 0);
    s->cfg.stop = &s->stop;
    s->cfg.on_ready = ready_port;
    g_srv = s;
    assert_int_equal(pthread_create(t, NULL, serve_main, s), 0);
    for (int i = 0; i < 2000 && !atomic_load(&s->port); i++)
        usleep(1000);
    assert_true(atomic_load(&s->port) > 0);
}

static void stop_within(struct srv *s, pthread_t t, int seconds)
{
    wl_stop_request(&s->stop);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* pthread_timedjoin_np takes CLOCK_REALTIME */
    ts.tv_sec += seconds;
    assert_int_equal(pthread_timedjoin_np(t, NULL, &ts), 0);
    wl_stop_destroy(&s->stop);
    assert_int_equal(s->rc, 0);
}

#define NCONN 200

static void serve_n(const wl_model_t *m)
{
    static struct srv s;
    pthread_t t;
    start(&s, m, &t);
    int port = atomic_load(&s.port);
    static int fds[NCONN];
    for (int i = 0; i < NCONN; i++) {
        fds[i] = dial(port);
        char msg[32];
        int l = snprintf(msg, sizeof msg, "ping %d", i);
        assert_int_equal(write(fds[i], msg, (size_t)l), l);
    }
    /* read in order, closing each: a pool serves the 26th only once one closes */
    for (int i = 0; i < NCONN; i++) {
        char want[32], got[32] = { 0 };
        int l = snprintf(want, sizeof want, "ping %d", i);
        size_t have = 0;
        while (have < (size_t)l) {
            ssize_t n = read(fds[i], got + have, sizeof got - 1 - have);
            assert_true(n > 0);
            have += (size_t)n;
        }
        assert_string_equal(got, want);
        close(fds[i]);
    }
    /* idle connections left open must not keep serve() from returning */
    int idle[5];
    for (int i = 0; i < 5; i++)
        idle[i] = dial(port);
    usleep(50000);
    stop_within(&s, t, 10);
    for (int i = 0; i < 5; i++)
        close(idle[i]);
    if (strcmp(m->name, "pool") == 0)
        assert_int_equal(s.st.started, WL_POOL_DEFAULT);
    else
        assert_int_equal(s.st.started, NCONN + 5);
    assert_int_equal(s.st.spawn_failed, 0);
}

#define FOR_EACH_MODEL(fn)                                                                 \
    static void t_##fn(void **state)                                                       \
    {                                                                                      \
        (void)state;                                                                       \
        for (size_t i = 0; wl_models[i]; i++) {                                            \
            fprintf(stderr, "  %s on %s\n", #fn, wl_models[i]->name);                       \
            fn(wl_models[i]);                                                              \
        }                                                                                  \
    }

/* Voluntary context switches of every thread of this process but the calling one. */
static long others_wakeups(void)
{
    char path[64], line[128];
    long total = 0;
    pid_t me = gettid();
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int tid = atoi(e->d_name);
        if (tid <= 0 || tid == me)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                total += atol(line + 24);
        fclose(f);
    }
    closedir(d);
    return total;
}

/* An idle server sleeps until it is stopped: no thread of it wakes up to look at a stop
 * flag (they used to, every 100 ms). */
static void idle_server_sleeps(const wl_model_t *m)
{
    static struct srv s;
    pthread_t t;
    start(&s, m, &t);
    usleep(100000); /* let every thread settle into its wait */
    long before = others_wakeups();
    usleep(600000);
    long woke = others_wakeups() - before;
    stop_within(&s, t, 10);
    if (woke > 2)
        fail_msg("%s: the idle server's threads woke %ld times in 600 ms", m->name, woke);
}

FOR_EACH_MODEL(run_all_once)
FOR_EACH_MODEL(run_resource_bound)
FOR_EACH_MODEL(run_arrivals)
FOR_EACH_MODEL(serve_n)
FOR_EACH_MODEL(idle_server_sleeps)

/* A job's thread gives its stack back when the job returns, not when the whole run ends:
 * jobs arriving one after another then run on a few reused stacks (glibc's cache). Held
 * to the end (joined only after the last spawn), every thread took a fresh stack and the
 * finished ones stayed resident, charged to the live ones (wl-curl, 10,000 arriving:
 * 9,474 stacks mapped for 4,750 live threads). */
static uintptr_t job_stack[20];

static void note_stack(size_t i, wl_res_t *res, void *arg)
{
    (void)res;
    (void)arg;
    char here;
    job_stack[i] = (uintptr_t)&here >> 16;
}

static void t_thread_jobs_free_stacks(void **state)
{
    (void)state;
    memset(job_stack, 0, sizeof job_stack);
    wl_jobs_cfg_t c = { .n = 20, .gap_ns = 10000000, .job = note_stack };
    wl_run_stats_t st = { 0 };
    assert_int_equal(wl_model_thread.run_jobs(&c, &st), 0);
    assert_int_equal(st.started, 20);
    size_t distinct = 0;
    for (size_t i = 0; i < 20; i++) {
        assert_true(job_stack[i] != 0);
        size_t k = 0;
        while (k < i && job_stack[k] != job_stack[i])
            k++;
        distinct += k == i;
    }
    if (distinct > 5)
        fail_msg("20 jobs 10 ms apart ran on %zu different stacks: finished threads keep "
                 "theirs", distinct);
}

/* A unit held elsewhere: a timed acquire must give up at its deadline (ETIMEDOUT) and
 * leave the queue intact, so the next release still reaches a later waiter. */
struct res_case {
    wl_res_t *r;
    int       got_late;
};

static void *late_waiter(void *p)
{
    struct res_case *c = p;
    c->got_late = wl_res_acquire(c->r, WL_FOREVER) == 0;
    wl_res_release(c->r);
    return NULL;
}

static void t_resource_timeouts_thread(void **state)
{
    (void)state;
    struct res_case c = { wl_res_new_thread(1), 0 };
    assert_int_equal(wl_res_acquire(c.r, WL_FOREVER), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_waiter, &c), 0);
    usleep(20000); /* the late waiter queues first */
    errno = 0;
    uint64_t dl = wl_now_ns() + 30000000;
    assert_int_equal(wl_res_acquire(c.r, dl), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(wl_now_ns() >= dl);
    wl_res_release(c.r); /* handed to the late waiter, past the one that timed out */
    pthread_join(t, NULL);
    assert_true(c.got_late);
    long peak;
    uint64_t waited;
    wl_res_stats(c.r, &peak, &waited);
    assert_int_equal(peak, 1);
    wl_res_free(c.r);
}

static wl_res_t *g_fres;
static int       g_fres_result = -2, g_fres_errno;

static void fiber_timed(void *p)
{
    (void)p;
    g_fres_result = wl_res_acquire(g_fres, wl_now_ns() + 20000000);
    g_fres_errno = errno;
}

static void fiber_holder(void *p)
{
    (void)p;
    assert_int_equal(wl_res_acquire(g_fres, WL_FOREVER), 0);
    fiber_attr_t a = { .detached = 1 };
    assert_non_null(fiber_spawn_ex(fiber_timed, NULL, &a));
    wl_sleep_ns(60000000);
    wl_res_release(g_fres);
}

static void t_resource_timeouts_fiber(void **state)
{
    (void)state;
    g_fres = wl_res_new_fiber(1);
    fiber_attr_t a = { .detached = 1 };
    assert_non_null(fiber_spawn_ex(fiber_holder, NULL, &a));
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(g_fres_result, -1);
    assert_int_equal(g_fres_errno, ETIMEDOUT);
    wl_res_free(g_fres);
}

static void t_registry(void **state)
{
    (void)state;
    assert_ptr_equal(wl_model_find("fiber-mt"), &wl_model_fiber_mt);
    assert_null(wl_model_find("goroutine"));
    struct sockaddr_in a;
    assert_int_equal(wl_parse_addr("127.0.0.1:8080", &a), 0);
    assert_int_equal(ntohs(a.sin_port), 8080);
    assert_int_equal(wl_parse_addr("127.0.0.1:99999", &a), -1);
    assert_int_equal(wl_parse_addr("localhost:80", &a), -1);
    assert_int_equal(wl_parse_addr("8080", &a), -1);
    errno = 0;
    assert_int_equal(wl_parse_addr("10.0.0.1:80", &a), -1); /* loopback only */
    assert_int_equal(errno, EADDRNOTAVAIL);
    assert_int_equal(wl_parse_addr("127.0.0.2:80", &a), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    (void)on_ready;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_registry),
        cmocka_unit_test(t_resource_timeouts_thread),
        cmocka_unit_test(t_resource_timeouts_fiber),
        cmocka_unit_test(t_run_all_once),
        cmocka_unit_test(t_run_resource_bound),
        cmocka_unit_test(t_run_arrivals),
        cmocka_unit_test(t_thread_jobs_free_stacks),
        cmocka_unit_test(t_serve_n),
        cmocka_unit_test(t_idle_server_sleeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
