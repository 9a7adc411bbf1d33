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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NJOBS 300

/* A latch that jobs on different threads meet at: the first `need` arrivals wait until
 * all `need` have arrived. It holds units live on purpose, so a test sees the overlap a
 * model promises whatever the OS does with its threads, instead of hoping that they ran
 * together. The wait is bounded (LATCH_TIMEOUT_S) so a model that never runs them together
 * fails with a message instead of hanging; the jobs go on then, and the test body reports. */
#define LATCH_TIMEOUT_S 30

struct latch {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             need, arrived, timed_out;
};

static void latch_init(struct latch *l, int need)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, &a);
    pthread_condattr_destroy(&a);
    l->need = need;
    l->arrived = 0;
    l->timed_out = 0;
}

static void latch_destroy(struct latch *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

/* Blocks the calling thread (not just its fiber) until `need` have arrived. */
static void latch_arrive(struct latch *l)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += LATCH_TIMEOUT_S;
    pthread_mutex_lock(&l->mu);
    if (++l->arrived >= l->need)
        pthread_cond_broadcast(&l->cv);
    while (l->arrived < l->need && !l->timed_out)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT)
            l->timed_out = 1;
    pthread_mutex_unlock(&l->mu);
}

struct jobs_rec {
    atomic_int ran[NJOBS];
    uint64_t   start[NJOBS];
    pid_t      tid[NJOBS];
    atomic_int holding, max_holding;
    int        use_res;
    uint64_t   hold_ns;
    /* run_all_once: jobs 0..latch_jobs-1 meet at the latch (none when 0); with
     * latch_first_per_thread, instead the first job to run on each thread does */
    struct latch    latch;
    int             latch_jobs, latch_first_per_thread;
    pthread_mutex_t seen_mu;
    pid_t           seen[64];
    int             nseen;
};

/* True for the first job that runs on the calling thread in this run. */
static int first_on_thread(struct jobs_rec *r, pid_t me)
{
    pthread_mutex_lock(&r->seen_mu);
    int first = 1;
    for (int k = 0; k < r->nseen && first; k++)
        first = r->seen[k] != me;
    if (first && r->nseen < (int)(sizeof r->seen / sizeof r->seen[0]))
        r->seen[r->nseen++] = me;
    pthread_mutex_unlock(&r->seen_mu);
    return first;
}

static void job(size_t i, wl_res_t *res, void *arg)
{
    struct jobs_rec *r = arg;
    r->start[i] = wl_now_ns();
    r->tid[i] = gettid();
    atomic_fetch_add(&r->ran[i], 1);
    if (r->latch_first_per_thread ? first_on_thread(r, r->tid[i]) : (int)i < r->latch_jobs)
        latch_arrive(&r->latch);
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

/* Every job runs exactly once, and as many are live at once as the model promises. The
 * overlap is made certain with a latch rather than hoped for from timing (20 ms jobs on
 * two schedulers overlapped only when the OS started both threads together: at load 50 on
 * the CI VM fiber-mt's peak was 150, not 300):
 *   thread   - one thread per job, no bound: all NJOBS meet at the latch, so all are live;
 *   pool     - WL_POOL_DEFAULT workers: jobs 0..24 meet, each holding its own worker;
 *   fiber    - every job is spawned before any runs (one thread, no latch needed);
 *   fiber-mt - jobs dealt round-robin to one scheduler thread each: the first job to run on
 *              each scheduler blocks that thread at the latch until every scheduler has
 *              one there. A scheduler's first job runs only after its spawner fiber has
 *              spawned all of its slice, and none of the slice can end while its thread
 *              is held: when the last scheduler arrives, all NJOBS are live. */
static void run_all_once(const wl_model_t *m)
{
    static struct jobs_rec r;
    memset(&r, 0, sizeof r);
    r.hold_ns = 20 * 1000000;
    int fiber_mt = strcmp(m->name, "fiber-mt") == 0, pool = strcmp(m->name, "pool") == 0;
    int fiber_kind = strcmp(m->kind, "fiber") == 0;
    int nsched = wl_cpus();
    if (fiber_mt) {
        r.latch_first_per_thread = 1;
        latch_init(&r.latch, nsched < NJOBS ? nsched : NJOBS);
    } else if (!fiber_kind) {
        r.latch_jobs = pool ? WL_POOL_DEFAULT : NJOBS;
        latch_init(&r.latch, r.latch_jobs);
    } else {
        latch_init(&r.latch, 0);
    }
    pthread_mutex_init(&r.seen_mu, NULL);
    wl_jobs_cfg_t c = { .n = NJOBS, .workers = 0, .job = job, .arg = &r };
    wl_run_stats_t st = { 0 };
    assert_int_equal(m->run_jobs(&c, &st), 0);
    pthread_mutex_destroy(&r.seen_mu);
    latch_destroy(&r.latch);
    if (r.latch.timed_out)
        fail_msg("%s: after %d s only %d of the %d jobs that must be live together had "
                 "started", m->name, LATCH_TIMEOUT_S, r.latch.arrived, r.latch.need);
    for (int i = 0; i < NJOBS; i++)
        assert_int_equal(atomic_load(&r.ran[i]), 1);
    assert_int_equal(st.spawn_failed, 0);
    if (pool) {
        assert_int_equal(st.peak_live, WL_POOL_DEFAULT);
        return;
    }
    assert_int_equal(st.peak_live, NJOBS);
    assert_int_equal(st.started, NJOBS);
    if (fiber_mt) {
        /* each scheduler ran its round-robin share, on its own thread, not the caller's */
        int want = nsched < NJOBS ? nsched : NJOBS;
        if (r.nseen != want)
            fail_msg("fiber-mt: jobs ran on %d threads, want one per scheduler (%d)", r.nseen,
                     want);
        for (int i = 0; i < NJOBS; i++) {
            assert_int_not_equal(r.tid[i], gettid());
            if (r.tid[i] != r.tid[i % want])
                fail_msg("fiber-mt: job %d ran on thread %d, job %d (same scheduler) on %d", i,
                         (int)r.tid[i], i % want, (int)r.tid[i % want]);
        }
        for (int a = 0; a < want; a++)
            for (int b = a + 1; b < want; b++)
                assert_int_not_equal(r.tid[a], r.tid[b]);
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
    /* idle connections left open must not keep serve() from returning. Each is echoed
     * once first, so the server has surely accepted it and its handler waits in a read:
     * a 50 ms nap stood in for that, and at load 50 the stop came before the server had
     * accepted them all (started 202, want 205). */
    int idle[5];
    for (int i = 0; i < 5; i++) {
        idle[i] = dial(port);
        char c = 'i';
        assert_int_equal(write(idle[i], &c, 1), 1);
        assert_int_equal(read(idle[i], &c, 1), 1);
        assert_int_equal(c, 'i');
    }
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

/* Voluntary context switches of each thread of this process but the calling one. */
#define MAX_TASKS 256
struct wakeups {
    int  n;
    int  tid[MAX_TASKS];
    long count[MAX_TASKS];
};

static void others_wakeups(struct wakeups *w)
{
    char path[64], line[128];
    pid_t me = gettid();
    w->n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && w->n < MAX_TASKS) {
        int tid = atoi(e->d_name);
        if (tid <= 0 || tid == me)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) {
                w->tid[w->n] = tid;
                w->count[w->n++] = atol(line + 24);
            }
        fclose(f);
    }
    closedir(d);
}

/* An idle server sleeps until it is stopped: no thread of it wakes up to look at a stop
 * flag (they used to, every 100 ms: 10 times a thread in the 1 s watched here). Counted
 * per thread, and a thread fails at 4 wake-ups, not the server at 3 in all: a loaded
 * machine delays threads settling into their first wait past any settling nap (at load
 * 38 the pool's 25 threads woke 3 times between them in 600 ms, after a 100 ms nap),
 * but it cannot make a thread wake more often, only less. */
static void idle_server_sleeps(const wl_model_t *m)
{
    static struct srv s;
    static struct wakeups w0, w1;
    pthread_t t;
    start(&s, m, &t);
    usleep(100000); /* most threads settle into their wait; stragglers are allowed for */
    others_wakeups(&w0);
    usleep(1000000);
    others_wakeups(&w1);
    stop_within(&s, t, 10);
    for (int i = 0; i < w1.n; i++)
        for (int j = 0; j < w0.n; j++)
            if (w0.tid[j] == w1.tid[i] && w1.count[i] - w0.count[j] >= 4)
                fail_msg("%s: an idle server's thread (%d) woke %ld times in 1 s", m->name,
                         w1.tid[i], w1.count[i] - w0.count[j]);
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
 * 9,474 stacks mapped for 4,750 live threads).
 * What is asserted is how: every job's thread is detached, so glibc takes its stack back
 * when it exits, with no join to wait for. How many stacks the run used is only printed:
 * reuse needs a job's thread to exit before a later one is created, and load decides
 * that (2-3 stacks on a quiet machine; 6 and 11 at load 30, all 20 at load 58, where no
 * job thread got the CPU in the 190 ms between the first arrival and the last). */
static uintptr_t job_stack[20];
static int       job_detached[20];

static void note_stack(size_t i, wl_res_t *res, void *arg)
{
    (void)res;
    (void)arg;
    char here;
    job_stack[i] = (uintptr_t)&here >> 16;
    pthread_attr_t a;
    int ds = -1;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getdetachstate(&a, &ds);
        pthread_attr_destroy(&a);
    }
    job_detached[i] = ds == PTHREAD_CREATE_DETACHED;
}

static void t_thread_jobs_free_stacks(void **state)
{
    (void)state;
    memset(job_stack, 0, sizeof job_stack);
    memset(job_detached, 0, sizeof job_detached);
    wl_jobs_cfg_t c = { .n = 20, .gap_ns = 10000000, .job = note_stack };
    wl_run_stats_t st = { 0 };
    assert_int_equal(wl_model_thread.run_jobs(&c, &st), 0);
    assert_int_equal(st.started, 20);
    size_t distinct = 0;
    for (size_t i = 0; i < 20; i++) {
        assert_true(job_stack[i] != 0);
        if (!job_detached[i])
            fail_msg("job %zu ran on a joinable thread: its stack stays taken until a join, "
                     "not given back when the job returns", i);
        size_t k = 0;
        while (k < i && job_stack[k] != job_stack[i])
            k++;
        distinct += k == i;
    }
    print_message("20 jobs 10 ms apart ran on %zu different stacks\n", distinct);
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

/* wl_dial's source addresses (common.c): past ~14,100 connections from one source to one
 * address, Linux scans every even port on each connect() (1.4 ms each here), so each
 * 8,192 connections dialled take their own loopback source. 9,000 dials on each path
 * (blocking connect() on a thread, fiber_connect() on a fiber) are held open together;
 * no source may carry more than 8,192 of them. Before, all came from 127.0.0.1. */
#define DIAL_N 9000
static int g_dial_lfd;
static struct sockaddr_in g_dial_to;
static int g_dial_fds[DIAL_N];
static uint32_t g_dial_src[DIAL_N];
static int g_dial_done;

static void dial_many(void *p)
{
    (void)p;
    for (int i = 0; i < DIAL_N; i++) {
        int fd = wl_dial((const struct sockaddr *)&g_dial_to, sizeof g_dial_to, WL_FOREVER);
        if (fd < 0)
            fprintf(stderr, "dial %d: %s\n", i, strerror(errno));
        assert_true(fd >= 0);
        struct sockaddr_in me;
        socklen_t ml = sizeof me;
        assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
        g_dial_fds[i] = fd;
        g_dial_src[i] = ntohl(me.sin_addr.s_addr);
        /* the handshake is done: the server's end waits in the accept queue */
        int sfd = accept(g_dial_lfd, NULL, NULL);
        assert_true(sfd >= 0);
        close(sfd);
    }
    g_dial_done = 1;
}

static void dial_sources(int on_fiber)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < DIAL_N + 200) {
        fprintf(stderr, "skipped: the open-file limit %lu is below %d\n",
                (unsigned long)rl.rlim_cur, DIAL_N + 200);
        skip();
    }
    g_dial_lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(g_dial_lfd >= 0);
    memset(&g_dial_to, 0, sizeof g_dial_to);
    g_dial_to.sin_family = AF_INET;
    g_dial_to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(g_dial_lfd, (struct sockaddr *)&g_dial_to, sizeof g_dial_to), 0);
    socklen_t tl = sizeof g_dial_to;
    assert_int_equal(getsockname(g_dial_lfd, (struct sockaddr *)&g_dial_to, &tl), 0);
    assert_int_equal(listen(g_dial_lfd, 64), 0);
    g_dial_done = 0;
    if (on_fiber) {
        fiber_attr_t a = { .detached = 1 };
        assert_non_null(fiber_spawn_ex(dial_many, NULL, &a));
        assert_int_equal(fiber_run(), 0);
    } else {
        dial_many(NULL);
    }
    assert_true(g_dial_done);
    /* count the connections per source (at most a few sources) */
    uint32_t src[64];
    int cnt[64], ns = 0;
    for (int i = 0; i < DIAL_N; i++) {
        assert_int_equal(g_dial_src[i] >> 24, 127);
        int k = 0;
        while (k < ns && src[k] != g_dial_src[i])
            k++;
        if (k == ns) {
            assert_true(ns < 64);
            src[ns] = g_dial_src[i];
            cnt[ns++] = 0;
        }
        cnt[k]++;
    }
    for (int k = 0; k < ns; k++) {
        if (cnt[k] > 8192)
            fprintf(stderr, "%u connections from 127.0.0.%u\n", (unsigned)cnt[k],
                    (unsigned)(src[k] & 255));
        assert_true(cnt[k] <= 8192);
    }
    assert_true(ns >= 2);
    struct linger lg = { .l_onoff = 1, .l_linger = 0 }; /* reset: no TIME_WAIT left */
    for (int i = 0; i < DIAL_N; i++) {
        setsockopt(g_dial_fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(g_dial_fds[i]);
    }
    close(g_dial_lfd);
}

static void t_dial_sources_thread(void **state)
{
    (void)state;
    dial_sources(0);
}

static void t_dial_sources_fiber(void **state)
{
    (void)state;
    dial_sources(1);
}

int main(int argc, char **argv)
{
    if (argc > 1) /* a test name pattern: run only the tests it matches */
        cmocka_set_test_filter(argv[1]);
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
        cmocka_unit_test(t_dial_sources_thread),
        cmocka_unit_test(t_dial_sources_fiber),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
