/*
 * wl-load - an open-loop HTTP/1.1 load generator: requests go out at a constant arrival
 * rate whatever the server does, and latency is measured from the time each request was
 * *meant* to be sent, as wrk2 does (Debian has no wrk2). A closed-loop tool like wrk
 * sends the next request only when the previous answer came back, so a server that
 * stalls for 300 ms delays one request per connection and the requests that should
 * have been sent meanwhile are never counted: its p99 hides the queueing (coordinated
 * omission). Here, request k is due at t0 + k/rate; a connection whose answer is late
 * sends its backlog as soon as it is free, and each request's latency still runs from
 * its own due time.
 *
 * One thread, epoll, keep-alive connections opened before the clock starts. Loopback
 * only; the count (rate x duration) and the time (duration + --timeout to drain) are
 * bounded, and it stops by itself. Prints one JSON object on stdout.
 */
#define _GNU_SOURCE
#include "wl.h"
#include "wl_report.h"
#include "wl_sse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUESTS 20000000L /* 160 MB of latencies at most */
#define UNSET        UINT64_MAX

static struct {
    const char *target;
    double      rate;       /* requests per second, all connections together */
    long        conns;
    double      duration_s; /* the schedule's length */
    double      timeout_s;  /* per request, and the drain after the schedule */
    double      connect_timeout_s;
    const char *path;
} opt = {
    .target            = NULL,
    .rate              = 0,
    .conns             = 10,
    .duration_s        = 1,
    .timeout_s         = 2,
    .connect_timeout_s = 10,
    .path              = "/",
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: wl-load --target HOST:PORT --rate R [options]\n"
        "Open-loop HTTP/1.1 load: request k is due at k/R seconds after the start, on\n"
        "connection k mod C; latency runs from that due time (not from the actual send),\n"
        "so a server that stalls shows its full queueing delay.\n"
        "  --target H:P          the server, loopback IPv4 (127.x.x.x)\n"
        "  --rate R              requests per second, all connections together (required)\n"
        "  --conns C             keep-alive connections, opened before the clock starts\n"
        "                        (default 10)\n"
        "  --duration S          the schedule's length: rate x S requests (default 1)\n"
        "  --timeout S           a request unanswered S seconds after it was sent fails\n"
        "                        and its connection is reopened; also how long answers are\n"
        "                        awaited after the schedule ends (default 2)\n"
        "  --connect-timeout S   to open the connections (default 10)\n"
        "  --path P              the request path (default /)\n"
        "  --help\n"
        "Requests that never completed (timed out, failed, or still due when the drain\n"
        "ended) count in the latency percentiles with the time they had waited when given\n"
        "up: a lower bound, so a stalled server cannot look fast. Output: one JSON object\n"
        "(latencies in ms; service_*: from the actual send, what a closed-loop tool sees;\n"
        "send_lag_*: how late the tool itself sent requests whose connection was free,\n"
        "its own share of the latency; cpu_s: this process's user+system time).\n"
        "Bad flags exit 2; no connection at all exits 1.\n");
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "target", 1, 0, 't' },  { "rate", 1, 0, 'r' },    { "conns", 1, 0, 'c' },
        { "duration", 1, 0, 'd' }, { "timeout", 1, 0, 'T' }, { "connect-timeout", 1, 0, 'C' },
        { "path", 1, 0, 'p' },    { "help", 0, 0, 'h' },    { 0, 0, 0, 0 },
    };
    int c, idx = 0;
    double v;
    while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (c) {
        case 't': opt.target = optarg; break;
        case 'r': if (wl_parse_double(optarg, 0.001, 1e8, &opt.rate)) goto bad; break;
        case 'c': if (wl_parse_double(optarg, 1, 100000, &v) || v != floor(v)) goto bad;
                  opt.conns = (long)v; break;
        case 'd': if (wl_parse_double(optarg, 0.001, 3600, &opt.duration_s)) goto bad; break;
        case 'T': if (wl_parse_double(optarg, 0.001, 600, &opt.timeout_s)) goto bad; break;
        case 'C': if (wl_parse_double(optarg, 0.001, 600, &opt.connect_timeout_s)) goto bad; break;
        case 'p':
            if (optarg[0] != '/' || strlen(optarg) > 1024 || strpbrk(optarg, " \r\n"))
                goto bad;
            opt.path = optarg;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        continue;
    bad:
        fprintf(stderr, "wl-load: bad value for --%s: '%s' (see --help)\n", lo[idx].name, optarg);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "wl-load: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!opt.target || opt.rate <= 0) {
        fprintf(stderr, "wl-load: --target and --rate are required (see --help)\n");
        return -1;
    }
    double n = floor(opt.rate * opt.duration_s);
    if (n < 1 || n > MAX_REQUESTS) {
        fprintf(stderr, "wl-load: rate x duration = %.0f requests; want 1..%ld\n", n,
                MAX_REQUESTS);
        return -1;
    }
    return 0;
}

/* ---- connections ------------------------------------------------------------------- */

typedef struct conn {
    int             fd;
    int             connecting; /* nonblocking connect() in progress */
    int             inflight;   /* a request sent (or being sent), its answer not complete */
    long            k;          /* the request in flight */
    long            next;       /* the next request of this connection: k = id + j*C */
    size_t          wrote;      /* bytes of the request written so far */
    uint64_t        sent_ns;
    uint64_t        free_ns;    /* when it last became free to send (answer, connect) */
    int             want_out;   /* EPOLLOUT watched: a write is unfinished */
    wl_http_resp_t  resp;
} conn_t;

static struct {
    struct sockaddr_in addr;
    int                ep;
    conn_t            *c;
    long               nconns, n; /* connections; requests in the schedule */
    uint64_t           t0;
    double             ns_per_req;
    char               req[1200];
    size_t             req_len;
    uint64_t          *lat;       /* per request: completion (or give-up) - due, ns */
    uint64_t          *svc;       /* completed requests: completion - actual send */
    long               nsvc;
    uint64_t          *lag;       /* sends on a free connection: actual send - due */
    long               nlag;
    long               completed, errors, timeouts, reconnects, connect_failed, closed_early;
    long               settled;   /* requests with a latency: completed or given up */
    uint64_t           last_done_ns;
} g;

static uint64_t due(long k)
{
    return g.t0 + (uint64_t)((double)k * g.ns_per_req);
}

static int ep_set(conn_t *c, int op, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };
    return epoll_ctl(g.ep, op, c->fd, &e);
}

/* Opens (or reopens) the connection, nonblocking; 0, or -1 when the socket cannot be
 * made (EMFILE...). */
static int conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->connecting = 1;
    c->inflight = 0;
    c->wrote = 0;
    c->want_out = 1;
    if (connect(c->fd, (struct sockaddr *)&g.addr, sizeof g.addr) == 0)
        c->connecting = 0;
    else if (errno != EINPROGRESS) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    if (ep_set(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT) != 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->connecting = 0;
}

/* EPOLLOUT only while connecting or while a write is unfinished: level-triggered, it
 * would otherwise wake the loop for every idle connection all the time. */
static void want_out(conn_t *c, int on)
{
    if (c->want_out != on && ep_set(c, EPOLL_CTL_MOD, EPOLLIN | (on ? EPOLLOUT : 0)) == 0)
        c->want_out = on;
}

/* The request in flight on c is given up (error, timeout, connection lost): its latency
 * so far is kept as a lower bound, and the connection moves on to its next request. */
static void give_up(conn_t *c, uint64_t now)
{
    if (!c->inflight)
        return;
    if (g.lat[c->k] == UNSET) {
        g.lat[c->k] = now - due(c->k);
        g.settled++;
    }
    c->inflight = 0;
}

static void reopen(conn_t *c, uint64_t now)
{
    give_up(c, now);
    c->free_ns = now;
    conn_close(c);
    g.reconnects++;
    if (conn_open(c) != 0)
        g.connect_failed++;
}

/* Sends c's next request if it is due and c is free (or finishes a partial write). */
static void try_send(conn_t *c, uint64_t now)
{
    if (c->fd < 0 || c->connecting || !g.t0) /* t0 = 0: the clock has not started */
        return;
    if (!c->inflight) {
        if (c->next >= g.n || due(c->next) > now)
            return;
        c->k = c->next;
        c->next += g.nconns;
        c->inflight = 1;
        c->wrote = 0;
        c->sent_ns = now;
        wl_http_resp_init(&c->resp);
        /* the tool's own lateness, when nothing but the tool held the request back:
         * the connection was free before the request was due */
        if (c->free_ns <= due(c->k))
            g.lag[g.nlag++] = now - due(c->k);
    }
    if (c->wrote >= g.req_len)
        return;
    ssize_t w = write(c->fd, g.req + c->wrote, g.req_len - c->wrote);
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            want_out(c, 1); /* finish on the next wake-up */
            return;
        }
        g.errors++;
        reopen(c, now);
        return;
    }
    c->wrote += (size_t)w;
    want_out(c, c->wrote < g.req_len);
}

static int ignore_body(const char *b, size_t n, void *arg)
{
    (void)b;
    (void)n;
    (void)arg;
    return 0;
}

static void on_readable(conn_t *c, uint64_t now)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (c->inflight)
                g.errors++;
            reopen(c, now);
            return;
        }
        if (n == 0) {
            /* the server closed: between requests (keep-alive ended) just reconnect; in
             * the middle of one, that request failed */
            if (c->inflight) {
                g.errors++;
                g.closed_early++;
            }
            reopen(c, now);
            return;
        }
        if (!c->inflight || wl_http_resp_feed(&c->resp, buf, (size_t)n, ignore_body, NULL) < 0) {
            g.errors++; /* bytes nobody asked for, or not HTTP */
            reopen(c, now);
            return;
        }
        if (c->resp.done) {
            g.lat[c->k] = now - due(c->k);
            g.settled++;
            g.svc[g.nsvc++] = now - c->sent_ns;
            if (c->resp.status >= 200 && c->resp.status < 400)
                g.completed++;
            else
                g.errors++;
            g.last_done_ns = now;
            c->inflight = 0;
            c->free_ns = now;
            if (c->resp.close) {
                reopen(c, now);
                g.reconnects--; /* asked for, not a failure */
                return;
            }
            try_send(c, now); /* its backlog, if the answer came late */
            return;
        }
    }
}

static void on_event(conn_t *c, uint32_t ev, uint64_t now)
{
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            g.connect_failed++;
            conn_close(c);
            return;
        }
        if (!(ev & (EPOLLOUT | EPOLLIN)))
            return;
        c->connecting = 0;
        c->free_ns = now;
        want_out(c, 0);
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c, now);
    if (c->fd >= 0 && (ev & EPOLLOUT))
        try_send(c, now);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v[0..n) in ms (nearest rank), 0 when empty. */
static double q_ms(const uint64_t *v, long n, double q)
{
    if (n <= 0)
        return 0;
    long r = (long)ceil(q * (double)n) - 1;
    if (r < 0)
        r = 0;
    if (r >= n)
        r = n - 1;
    return (double)v[r] / 1e6;
}

static uint64_t ns_of(double s)
{
    return (uint64_t)(s * 1e9);
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    if (wl_parse_addr(opt.target, &g.addr) != 0) {
        fprintf(stderr, "wl-load: bad --target '%s' (want 127.x.x.x:PORT: loopback only)\n",
                opt.target);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* wake-ups on time: the default 50 us timer slack would delay every due send */
    prctl(PR_SET_TIMERSLACK, 1UL);
    long nofile = wl_raise_nofile();
    if (opt.conns + 16 > nofile) {
        fprintf(stderr, "wl-load: --conns %ld needs more open files than the limit %ld\n",
                opt.conns, nofile);
        return 2;
    }
    int rc = 1;
    g.nconns = opt.conns;
    g.n = (long)floor(opt.rate * opt.duration_s);
    g.ns_per_req = 1e9 / opt.rate;
    int hl = snprintf(g.req, sizeof g.req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", opt.path,
                      opt.target);
    g.req_len = (size_t)hl;
    g.c = calloc((size_t)g.nconns, sizeof *g.c);
    g.lat = malloc((size_t)g.n * sizeof *g.lat);
    g.svc = malloc((size_t)g.n * sizeof *g.svc);
    g.lag = malloc((size_t)g.n * sizeof *g.lag);
    struct epoll_event *evs = malloc(1024 * sizeof *evs);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!g.c || !g.lat || !g.svc || !g.lag || !evs || g.ep < 0) {
        fprintf(stderr, "wl-load: out of memory for %ld requests\n", g.n);
        goto out;
    }
    for (long k = 0; k < g.n; k++)
        g.lat[k] = UNSET;

    /* open every connection before the clock starts */
    long open = 0;
    for (long i = 0; i < g.nconns; i++) {
        g.c[i].fd = -1;
        g.c[i].next = i;
        if (conn_open(&g.c[i]) != 0) {
            fprintf(stderr, "wl-load: connection %ld: %s\n", i, strerror(errno));
            g.connect_failed++;
        }
    }
    uint64_t cdl = wl_now_ns() + ns_of(opt.connect_timeout_s);
    for (;;) {
        open = 0;
        long pending = 0;
        for (long i = 0; i < g.nconns; i++) {
            pending += g.c[i].fd >= 0 && g.c[i].connecting;
            open += g.c[i].fd >= 0 && !g.c[i].connecting;
        }
        uint64_t now = wl_now_ns();
        if (!pending || now >= cdl)
            break;
        int ms = (int)((cdl - now) / 1000000) + 1;
        int ne = epoll_wait(g.ep, evs, 1024, ms);
        for (int i = 0; i < ne; i++)
            on_event(evs[i].data.ptr, evs[i].events, now);
    }
    if (open == 0) {
        fprintf(stderr, "wl-load: no connection to %s could be opened\n", opt.target);
        goto out;
    }
    for (long i = 0; i < g.nconns; i++)
        if (g.c[i].fd >= 0 && g.c[i].connecting) { /* still not open: give up on it */
            g.connect_failed++;
            conn_close(&g.c[i]);
        }

    double cpu0 = wl_cpu_seconds();
    g.t0 = wl_now_ns() + 1000000; /* 1 ms from now */
    uint64_t sched_end = due(g.n - 1), drain_end = sched_end + ns_of(opt.timeout_s);
    uint64_t tmo = ns_of(opt.timeout_s);
    long next_due = 0; /* the earliest request the timer has not yet reached */
    uint64_t next_check = 0;
    uint64_t now = wl_now_ns();
    while (g.settled < g.n && now < drain_end) {
        /* every request now due: its connection sends it if free; a busy one sends it
         * when its answer arrives */
        while (next_due < g.n && due(next_due) <= now) {
            conn_t *c = &g.c[next_due % g.nconns];
            if (c->fd < 0 && !c->connecting) {
                /* a connection that could not be reopened: retry it; meanwhile its
                 * requests wait (and count their waiting) */
                g.reconnects++;
                if (conn_open(c) != 0)
                    g.connect_failed++;
            }
            try_send(c, now);
            next_due++;
        }
        /* timeouts, checked every 10 ms at most (a scan of every connection) */
        if (now >= next_check) {
            for (long i = 0; i < g.nconns; i++) {
                conn_t *c = &g.c[i];
                if (c->inflight && now - c->sent_ns >= tmo) {
                    g.timeouts++;
                    g.errors++;
                    reopen(c, now);
                }
            }
            next_check = now + 10000000;
        }
        uint64_t wake = next_due < g.n ? due(next_due) : drain_end;
        if (wake > next_check)
            wake = next_check;
        struct timespec ts = { 0, 0 };
        if (wake > now) {
            ts.tv_sec = (time_t)((wake - now) / 1000000000u);
            ts.tv_nsec = (long)((wake - now) % 1000000000u);
        }
        int ne = epoll_pwait2(g.ep, evs, 1024, &ts, NULL);
        if (ne < 0 && errno != EINTR) {
            fprintf(stderr, "wl-load: epoll_pwait2: %s\n", strerror(errno));
            goto out;
        }
        now = wl_now_ns();
        for (int i = 0; i < ne; i++)
            on_event(evs[i].data.ptr, evs[i].events, now);
    }
    double cpu = wl_cpu_seconds() - cpu0;
    uint64_t t_end = wl_now_ns();
    double wall = (double)(t_end - g.t0) / 1e9;
    /* what is left was never answered: it waited at least until now */
    long incomplete = 0;
    for (long k = 0; k < g.n; k++)
        if (g.lat[k] == UNSET) {
            g.lat[k] = t_end > due(k) ? t_end - due(k) : 0;
            incomplete++;
        }
    qsort(g.lat, (size_t)g.n, sizeof *g.lat, cmp_u64);
    qsort(g.svc, (size_t)g.nsvc, sizeof *g.svc, cmp_u64);
    qsort(g.lag, (size_t)g.nlag, sizeof *g.lag, cmp_u64);
    double span = g.last_done_ns > g.t0 ? (double)(g.last_done_ns - g.t0) / 1e9 : 0;
    double sched_s = (double)(sched_end - g.t0) / 1e9 + g.ns_per_req / 1e9;
    printf("{\"target\":\"%s\",\"rate\":%.3f,\"conns\":%ld,\"duration_s\":%.6f,"
           "\"requests\":%ld,\"completed\":%ld,\"errors\":%ld,\"timeouts\":%ld,"
           "\"incomplete\":%ld,\"closed_early\":%ld,\"reconnects\":%ld,\"connect_failed\":%ld,"
           "\"achieved_rps\":%.3f,\"wall_s\":%.6f,"
           "\"p50_ms\":%.6f,\"p90_ms\":%.6f,\"p99_ms\":%.6f,\"p999_ms\":%.6f,\"max_ms\":%.6f,"
           "\"service_p50_ms\":%.6f,\"service_p99_ms\":%.6f,"
           "\"send_lag_p50_ms\":%.6f,\"send_lag_p99_ms\":%.6f,\"send_lag_n\":%ld,"
           "\"cpu_s\":%.6f,\"cpu_percent\":%.3f}\n",
           opt.target, opt.rate, g.nconns, sched_s, g.n, g.completed, g.errors, g.timeouts,
           incomplete, g.closed_early, g.reconnects, g.connect_failed,
           span > 0 ? (double)g.completed / (span > sched_s ? span : sched_s) : 0, wall,
           q_ms(g.lat, g.n, 0.5), q_ms(g.lat, g.n, 0.9), q_ms(g.lat, g.n, 0.99),
           q_ms(g.lat, g.n, 0.999), q_ms(g.lat, g.n, 1.0), q_ms(g.svc, g.nsvc, 0.5),
           q_ms(g.svc, g.nsvc, 0.99), q_ms(g.lag, g.nlag, 0.5), q_ms(g.lag, g.nlag, 0.99),
           g.nlag, cpu, wall > 0 ? 100.0 * cpu / wall : 0);
    rc = 0;
out:
    if (g.c)
        for (long i = 0; i < g.nconns; i++)
            if (g.c[i].fd >= 0)
                close(g.c[i].fd);
    if (g.ep >= 0)
        close(g.ep);
    free(evs);
    free(g.lag);
    free(g.svc);
    free(g.lat);
    free(g.c);
    return rc;
}
