/* test_load.c - the open-loop load generator (wl-load) against small in-process servers:
 * it sends on the schedule (never early, every request of rate x duration), it measures
 * latency from each request's due time so a server that stalls shows the stall in p99
 * where a closed-loop view (service time) does not, a server that never answers still
 * ends the run within its bounds with every request counted, and bad flags exit 2. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- a tiny keep-alive server on one thread, with a stall and a silent mode ---------- */

#define MAXC   16
#define MAXREQ 8192

static struct {
    int         lfd, port;
    atomic_int  stop;
    int         silent;        /* read requests, never answer */
    uint64_t    stall_after;   /* stall once, this long after the first request... */
    uint64_t    stall_ns;      /* ...for this long (the whole server: it sleeps) */
    uint64_t    arrival[MAXREQ];
    atomic_long nreq;
    pthread_t   t;
} srv;

static void *serve(void *arg)
{
    (void)arg;
    struct pollfd p[MAXC + 1];
    char   buf[MAXC + 1][2048];
    size_t have[MAXC + 1];
    int    n = 1, stalled = 0;
    p[0].fd = srv.lfd;
    p[0].events = POLLIN;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    while (!atomic_load(&srv.stop)) {
        if (poll(p, (nfds_t)n, 20) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n <= MAXC) {
            int fd = accept(srv.lfd, NULL, NULL);
            if (fd >= 0) {
                p[n].fd = fd;
                p[n].events = POLLIN;
                have[n++] = 0;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(p[i].fd, buf[i] + have[i], sizeof buf[i] - 1 - have[i]);
            if (r <= 0) {
                close(p[i].fd);
                p[i] = p[--n];
                memcpy(buf[i], buf[n], have[n]);
                have[i] = have[n];
                i--;
                continue;
            }
            have[i] += (size_t)r;
            buf[i][have[i]] = 0;
            char *end;
            while ((end = strstr(buf[i], "\r\n\r\n"))) {
                uint64_t t = now_ns();
                long k = atomic_fetch_add(&srv.nreq, 1);
                if (k < MAXREQ)
                    srv.arrival[k] = t;
                if (srv.stall_ns && !stalled && t - srv.arrival[0] >= srv.stall_after) {
                    stalled = 1;
                    struct timespec ts = { (time_t)(srv.stall_ns / 1000000000u),
                                           (long)(srv.stall_ns % 1000000000u) };
                    nanosleep(&ts, NULL);
                }
                if (!srv.silent)
                    (void)!write(p[i].fd, ok, sizeof ok - 1);
                size_t used = (size_t)(end + 4 - buf[i]);
                memmove(buf[i], end + 4, have[i] - used + 1);
                have[i] -= used;
            }
        }
    }
    for (int i = 1; i < n; i++)
        close(p[i].fd);
    return NULL;
}

static void srv_start(int silent, uint64_t stall_after, uint64_t stall_ns)
{
    memset(&srv, 0, sizeof srv);
    srv.silent = silent;
    srv.stall_after = stall_after;
    srv.stall_ns = stall_ns;
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(srv.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(srv.lfd, 64), 0);
    socklen_t len = sizeof a;
    getsockname(srv.lfd, (struct sockaddr *)&a, &len);
    srv.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&srv.t, NULL, serve, NULL), 0);
}

static void srv_stop(void)
{
    atomic_store(&srv.stop, 1);
    pthread_join(srv.t, NULL);
    close(srv.lfd);
}

/* ---- running wl-load ------------------------------------------------------------------ */

static char g_out[8192];

/* Runs wl-load with the given arguments (NULL-terminated); returns its exit status,
 * its stdout in g_out. */
static int run_load(const char *const *args)
{
    const char *bin = getenv("WL_BIN");
    char path[4096];
    snprintf(path, sizeof path, "%s/wl-load", bin ? bin : ".");
    if (!bin || access(path, X_OK) != 0)
        fail_msg("wl-load not found (WL_BIN=%s)", bin ? bin : "unset");
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        close(out[0]);
        const char *argv[32] = { path };
        for (int i = 0; args[i] && i < 30; i++)
            argv[1 + i] = args[i];
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    size_t have = 0;
    ssize_t r;
    while (have < sizeof g_out - 1 && (r = read(out[0], g_out + have, sizeof g_out - 1 - have)) > 0)
        have += (size_t)r;
    g_out[have] = 0;
    close(out[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static double field(const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = strstr(g_out, key);
    if (!p)
        fail_msg("no %s in wl-load's output: %s", name, g_out);
    return atof(p + strlen(key));
}

/* ---- tests ------------------------------------------------------------------------------ */

/* 1,000 requests/s for 0.6 s on 4 connections; the server stalls for 300 ms, 100 ms in.
 * Every one of the 600 requests is sent and answered, never before its due time; the
 * ones due during the stall count their wait from their due time, so p99 shows the
 * stall (~300 ms) although only 4 requests (one per connection) were in the server while
 * it slept: their service time alone would put the stall below p99. */
static void t_schedule_and_stall(void **state)
{
    (void)state;
    srv_start(0, 100000000, 300000000);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", srv.port);
    const char *args[] = { "--target", target, "--rate", "1000", "--conns", "4", "--duration",
                           "0.6", "--timeout", "5", NULL };
    uint64_t t_spawn = now_ns();
    int rc = run_load(args);
    srv_stop();
    fprintf(stderr, "  %s", g_out);
    assert_int_equal(rc, 0);
    assert_int_equal((long)field("requests"), 600);
    assert_int_equal((long)field("completed"), 600);
    assert_int_equal((long)field("errors"), 0);
    assert_int_equal((long)field("incomplete"), 0);
    assert_int_equal(atomic_load(&srv.nreq), 600);
    /* on schedule, never early: request k is due 1 ms + k ms after the start, so the
     * k-th arrival (in time order) cannot precede t_spawn + k ms */
    for (long k = 0; k < 600; k++)
        if (srv.arrival[k] < t_spawn + (uint64_t)k * 1000000u)
            fail_msg("request %ld arrived %.3f ms after the start, due no earlier than %ld ms",
                     k, (double)(srv.arrival[k] - t_spawn) / 1e6, k);
    /* the stall, seen from the due times: about 300 requests were due during it */
    assert_true(field("p99_ms") >= 200.0);
    assert_true(field("p90_ms") >= 100.0);
    assert_true(field("max_ms") >= 250.0);
}

/* A server that reads and never answers: every request is counted, none hangs the tool,
 * and the latencies are lower bounds as large as the wait (at least the timeout). */
static void t_silent_server(void **state)
{
    (void)state;
    srv_start(1, 0, 0);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", srv.port);
    const char *args[] = { "--target", target, "--rate", "200", "--conns", "2", "--duration",
                           "0.3", "--timeout", "0.4", NULL };
    uint64_t t0 = now_ns();
    int rc = run_load(args);
    uint64_t took = now_ns() - t0;
    srv_stop();
    fprintf(stderr, "  %s", g_out);
    assert_int_equal(rc, 0);
    assert_int_equal((long)field("requests"), 60);
    assert_int_equal((long)field("completed"), 0);
    assert_true(field("timeouts") >= 2);
    /* timed out in flight, or never sent because its connection was stuck: all 60 */
    assert_int_equal((long)field("incomplete") + (long)field("timeouts"), 60);
    assert_true(field("p50_ms") >= 100.0);
    assert_true(field("max_ms") >= 400.0);
    /* not a speed limit: the bounds are 0.3 s + 0.4 s; a tool that waited for answers
     * forever would hang here until CTest's 60 s */
    assert_true(took < 30000000000ull);
}

static void t_bad_flags(void **state)
{
    (void)state;
    static const char *const bad[][12] = {
        { "--rate", "100", NULL },                                      /* no target */
        { "--target", "127.0.0.1:9", NULL },                            /* no rate */
        { "--target", "127.0.0.1:9", "--rate", "0", NULL },
        { "--target", "127.0.0.1:9", "--rate", "abc", NULL },
        { "--target", "127.0.0.1:9", "--rate", "100", "--conns", "0", NULL },
        { "--target", "127.0.0.1:9", "--rate", "100", "--conns", "1.5", NULL },
        { "--target", "127.0.0.1:9", "--rate", "100", "--duration", "-1", NULL },
        { "--target", "127.0.0.1:9", "--rate", "100", "--timeout", "nan", NULL },
        { "--target", "127.0.0.1:9", "--rate", "1e8", "--duration", "3600", NULL }, /* count */
        { "--target", "127.0.0.1:9", "--rate", "100", "--path", "no-slash", NULL },
        { "--target", "10.1.2.3:80", "--rate", "100", NULL },           /* not loopback */
        { "--target", "localhost", "--rate", "100", NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run_load(bad[i]);
        if (rc != 2)
            fail_msg("case %zu (%s %s ...) exited %d, want 2", i, bad[i][0], bad[i][1], rc);
    }
    static const char *const unknown[] = { "--target", "127.0.0.1:9", "--rate", "1", "--nope",
                                           NULL };
    assert_int_equal(run_load(unknown), 2);
    static const char *const extra[] = { "--target", "127.0.0.1:9", "--rate", "1", "stray",
                                         NULL };
    assert_int_equal(run_load(extra), 2);
}

/* Nobody listens: no connection can be opened, a clear exit 1, no hang. */
static void t_refused(void **state)
{
    (void)state;
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(probe, (struct sockaddr *)&a, &len);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(a.sin_port));
    close(probe);
    const char *args[] = { "--target", target, "--rate", "100", "--duration", "0.1", NULL };
    assert_int_equal(run_load(args), 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_schedule_and_stall),
        cmocka_unit_test(t_silent_server),
        cmocka_unit_test(t_bad_flags),
        cmocka_unit_test(t_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
