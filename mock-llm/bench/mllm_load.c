/*
 * mllm_load.c - the load client of the mock-llm benchmark, on the fiber runtime: opens
 * N streaming chat requests against a running mock-llm, lets them settle, then measures
 * over a window what the server emitted (from its /metrics: events and the histogram of
 * emission lateness) and what the client received, and prints one key=value line.
 *
 *   mllm-load --target 127.0.0.1:PORT --streams N [--warmup S] [--window S]
 *             [--stagger-ms X | --period-ms P] [--connect-parallel N] [--rss-pid PID]
 *             [--model M] [--busy-poll] [--series FILE [--series-ms MS]]
 *             [--phases FILE]
 *
 * Each stream is one connection with one long request; a stream that ends (its response
 * finished) sends the next request on the same connection, so N stays open.
 *
 * --period-ms P (the streams' event period) opens every connection first, then sends the
 * requests at evenly spaced phases of P: stream i asks at T + i*k*P/N with k coprime to N
 * and k*P/N >= 25 us, so the N schedules (which start when each request arrives at the
 * server) tile the period evenly, as the floor's round-robin does, without a burst of N
 * requests at once. The first requests are sent by whichever fiber runs when one falls
 * due (send_due(): every reader checks the clock after each read, and a sender fiber
 * sleeps to the next turn for when no reader runs), not by each stream's own fiber
 * sleeping to its turn: a fiber woken by its timer runs only once the scheduler's
 * current round of readers is over.
 *
 * The load generator must not be the hidden ceiling: besides its CPU, it reports how
 * busy it was (client_busy_pct: with --busy-poll the core always spins, so the CPU time
 * says nothing; the share of the window spent in read() and counting is a lower bound of
 * how close to saturation the reader ran), how far it trailed the server (client vs
 * server events/s) and what it left unread in its sockets when the window ended
 * (client_backlog_events: about 0 for a reader that keeps up).
 */
#define _GNU_SOURCE
#include <fiber.h>

#include "mllm_phase.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define NB 23 /* lateness buckets incl. +Inf, as the server exposes them */

static struct {
    struct sockaddr_in addr;
    long   streams;
    double warmup_s, window_s, stagger_ms;
    long   connect_parallel;
    int    rss_pid;
    const char *model;
    int    busy_poll;
    double period_ms;
    const char *series;  /* --series FILE: a line per --series-ms from the first connect */
    double series_ms;
    const char *phases;  /* --phases FILE: each stream's turn, request and first bytes */
} opt = { .series_ms = 100, .streams = 100, .warmup_s = 1, .window_s = 2, .stagger_ms = 0,
          .connect_parallel = 128, .rss_pid = 0, .model = "mock" };

static long opened, failed, finished_reqs;
static uint64_t send_t0, send_spacing_ns;
static long spawned;
/* --period-ms: the streams in turn order (slot -> stream), how many, the next to send,
 * its turn (UINT64_MAX: none left), and each stream's connection. */
static long *send_order, send_slots, next_send;
static uint64_t next_turn_ns = UINT64_MAX;
/* Turns missed by more than send_late_max_ns (the client's thread stalled: another
 * process on its CPU, the kernel) move one period on, where their phase is the same:
 * a FIFO of (stream, turn), in turn order (each is a missed turn + P, missed in order),
 * never moved twice; send_deferred counts them. 100 us with --busy-poll; 2 ms without,
 * where a timer's wake-up from a halted CPU alone takes ~0.2 ms (up to 2 ms) here. */
static uint64_t send_late_max_ns;
static long *defer_idx, defer_head, defer_tail, send_deferred;
static uint64_t *defer_turn, period_ns;
static int *conn_fd;
static long connected;                /* --period-ms: streams connected so far */
static int dial_errno;                /* the first failed connection's errno (0: none) */
static fiber_waitq_t all_connected = FIBER_WAITQ_INIT;
/* The reader's work: time in read() and in counting what it returned (with --busy-poll
 * the thread's CPU time is always the whole window, so it says nothing). */
static uint64_t work_ns, client_bytes;
static int *stream_fds; /* by stream, -1 when not open: for the backlog at the window's end */
static uint64_t client_events; /* SSE frames received (each ends with a blank line) */
/* When each stream's first response bytes came (0: not yet): with a zero TTFT that is
 * its first event, so the streams' phases modulo the event period show whether the
 * server kept the even tiling the requests were sent with (phase_peak_ratio). */
static uint64_t *first_byte_ns;
/* The opening of each stream, stage by stage (where a slow ramp waits): the connect
 * slot taken, connected, its turn to send (--period-ms; else connected), request written. */
static uint64_t *turn_ns, *slot_ns, *conn_ns, *sent_ns;
static fiber_sem_t metrics_lock = FIBER_SEM_INIT(1); /* fetch_metrics' static buffers */
static int stopping;
static fiber_sem_t connect_slots;
static char rbuf[1 << 16]; /* shared: a read's bytes are counted before anyone parks */
static char request[1024];
static size_t request_len;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Connections per loopback source address (below). */
#define PER_SOURCE 8192

/* A connection to the target; stream idx (-1: not a stream) picks its source address. */
static int dial(long idx)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Linux (6.x here) gives connect() the even ports of the local range first: once
     * ~14,100 of them (the even half of 32768-60999) are taken by connections to one
     * address and port, every further connect() scans all of them before it takes an
     * odd one, ~1.5 ms of kernel time each on this VM (19,000 streams opened in 10 s,
     * 5,000 x 1.5 ms of that in the last 5,000 connects). The port need only be unique
     * per source address, so over loopback each 8,192 streams take their own source
     * (127.0.0.1, .2, ...), the port still chosen at connect() (IP_BIND_ADDRESS_NO_PORT):
     * 18-28 us per connect() up to 19,000. */
    if (idx >= PER_SOURCE && (ntohl(opt.addr.sin_addr.s_addr) >> 24) == 127) {
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl((127u << 24) + 1u + (uint32_t)(idx / PER_SOURCE));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    /* Close with a reset: a probe that leaves 10,000 sockets in TIME_WAIT (60 s) would
     * leave the next probes short of loopback ports. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (fiber_connect(fd, (struct sockaddr *)&opt.addr, sizeof opt.addr,
                      fiber_now_ns() + 10000000000ull) != 0) {
        int e = errno;
        fiber_close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Sends every first request whose turn has come by now (--period-ms): called by the
 * reader after each read and by the sender fiber. A turn's slot is taken before its
 * write, so a fiber that parks in a (rare) short write leaves the next turns to the
 * others. A turn missed by more than send_late_max_ns (the thread had no CPU) goes one
 * period on instead (once): sent late, the missed turns would start their schedules
 * together, the bunch the even phases are there to avoid. The request is one write into
 * an empty socket buffer; a failed one shuts the connection, so its stream ends as
 * failed. */
static void send_due(uint64_t now)
{
    while (now >= next_turn_ns) {
        long idx;
        uint64_t turn;
        uint64_t main_turn = next_send < send_slots
                                 ? send_t0 + (uint64_t)next_send * send_spacing_ns : UINT64_MAX;
        if (defer_head < defer_tail && defer_turn[defer_head] <= main_turn) {
            idx = defer_idx[defer_head];
            turn = defer_turn[defer_head++];
        } else {
            idx = send_order[next_send++];
            turn = main_turn;
            if (now - turn > send_late_max_ns) {
                defer_idx[defer_tail] = idx;
                defer_turn[defer_tail++] = turn + period_ns;
                send_deferred++;
                idx = -1;
            }
        }
        main_turn = next_send < send_slots
                        ? send_t0 + (uint64_t)next_send * send_spacing_ns : UINT64_MAX;
        next_turn_ns = defer_head < defer_tail && defer_turn[defer_head] < main_turn
                           ? defer_turn[defer_head] : main_turn;
        if (idx < 0)
            continue;
        int fd = conn_fd[idx];
        turn_ns[idx] = turn;
        ssize_t n = send(fd, request, request_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            n = 0;
        if (n >= 0 && (size_t)n < request_len &&
            fiber_write(fd, request + n, request_len - (size_t)n, FIBER_FOREVER) >= 0)
            n = (ssize_t)request_len;
        if (n == (ssize_t)request_len)
            sent_ns[idx] = fiber_now_ns();
        else
            shutdown(fd, SHUT_RDWR);
        now = fiber_now_ns();
    }
}

/* --period-ms: sends the turns that fall due while no reader runs to notice them. */
static void sender_main(void *arg)
{
    (void)arg;
    while (next_turn_ns != UINT64_MAX && !stopping) {
        fiber_sleep_until(next_turn_ns);
        send_due(fiber_now_ns());
    }
}

static void stream_main(void *arg)
{
    long idx = (long)(intptr_t)arg;
    if (opt.stagger_ms > 0 && opt.period_ms <= 0)
        fiber_sleep_ns((uint64_t)((double)(rnd() % 1000000) / 1e6 * opt.stagger_ms * 1e6));
    fiber_sem_acquire(&connect_slots, FIBER_FOREVER);
    slot_ns[idx] = fiber_now_ns();
    int fd = dial(idx);
    if (fd < 0 && !dial_errno)
        dial_errno = errno ? errno : EIO;
    conn_ns[idx] = fiber_now_ns();
    fiber_sem_release(&connect_slots);
    if (opt.period_ms > 0) {
        /* Even phases: every stream connects first, then the requests go out in turn,
         * one slot apart. Connecting in the same turns let the phases bunch: a connect
         * completed up to 0.3-0.5 s after its turn (19,000 streams; the port scan in
         * dial() blocked this one thread for ~1.5 ms per connect, and 128 connects
         * were under way at once), so the requests left in clumps, and with a fixed
         * gap a clump of schedules stays one for the whole run (a burst of events every
         * period). A request is one write, which the reader does close to its turn. */
        conn_fd[idx] = fd;
        if (fd < 0)
            failed++;
        else
            connected++;
        if (connected + failed >= opt.streams) {
            for (long i = 0; i < opt.streams; i++)
                if (conn_fd[i] >= 0)
                    send_order[send_slots++] = i;
            send_t0 = fiber_now_ns() + 1000000;
            if (send_slots) {
                next_turn_ns = send_t0;
                fiber_attr_t sa = { .stack_size = 64 * 1024, .name = "sender", .detached = 1 };
                if (!fiber_spawn_ex(sender_main, NULL, &sa)) {
                    fprintf(stderr, "mllm-load: fiber_spawn (sender): %s\n", strerror(errno));
                    exit(1);
                }
            }
            fiber_waitq_wake_all(&all_connected);
        } else {
            while (!send_t0)
                fiber_waitq_wait(&all_connected, FIBER_FOREVER);
        }
        if (fd < 0)
            return;
    } else if (fd < 0) {
        failed++;
        return;
    } else {
        turn_ns[idx] = conn_ns[idx];
    }
    int counted = 0;
    stream_fds[idx] = fd;
    /* --period-ms: the first request goes out at its turn from send_due() */
    int first_sent = opt.period_ms > 0;
    while (!stopping) {
        if (!first_sent && fiber_write(fd, request, request_len, FIBER_FOREVER) < 0)
            break;
        if (!sent_ns[idx] && !first_sent)
            sent_ns[idx] = fiber_now_ns();
        first_sent = 0;
        /* Count frames by their blank-line terminator; one byte of carry catches a
         * "\n\n" split across reads. Chunked framing adds only "\r\n", never "\n\n". */
        char last = 0;
        int done = 0;
        while (!done && !stopping) {
            /* read() first and park only on EAGAIN, so the work can be timed: from
             * before the read to after the count (two clock reads per read). */
            uint64_t w0 = fiber_now_ns();
            ssize_t n = read(fd, rbuf, sizeof rbuf);
            if (n < 0 && errno == EAGAIN) {
                uint64_t w1 = fiber_now_ns();
                work_ns += w1 - w0;
                if (w1 >= next_turn_ns)
                    send_due(w1);
                if (fiber_wait_fd_after_eagain(fd, EPOLLIN, FIBER_FOREVER) < 0)
                    goto out;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                goto out;
            if (!counted) {
                counted = 1;
                opened++;
                first_byte_ns[idx] = w0;
            }
            client_bytes += (uint64_t)n;
            const char *p = rbuf, *end = rbuf + n;
            if (last == '\n' && *p == '\n')
                client_events++;
            while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
                if (p + 1 < end && p[1] == '\n')
                    client_events++;
                p++;
            }
            last = rbuf[n - 1];
            /* the end of a chunked body: "0\r\n\r\n" */
            if (n >= 5 && memcmp(end - 5, "0\r\n\r\n", 5) == 0)
                done = 1;
            uint64_t w1 = fiber_now_ns();
            work_ns += w1 - w0;
            if (w1 >= next_turn_ns)
                send_due(w1);
        }
        finished_reqs++;
    }
out:
    stream_fds[idx] = -1;
    if (!counted)
        failed++;
    else if (!stopping)
        opened--;
    fiber_close(fd);
}

typedef struct extra {
    double short_writes, parse_sum_s, parse_count, parse_max_s, writes, event_bytes;
    double server_now_s; /* the server's CLOCK_MONOTONIC at the snapshot (0: absent) */
    double conns_total, ticker_late, ticker_parks, streams_active;
    int    have_parse;
    uint64_t a2r[NB]; /* accept-to-request buckets, cumulative (0 when absent) */
} extra_t;

static double metric(const char *buf, const char *name, int *found)
{
    char key[96];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *e = strstr(buf, key);
    if (found)
        *found = e != NULL;
    return e ? strtod(e + strlen(key), NULL) : 0;
}

static extra_t extra_now;

/* GET /metrics; fills the lateness buckets (cumulative) and the events counter. */
static int fetch_metrics_locked(uint64_t bucket[NB], uint64_t *events)
{
    int fd = dial(-1);
    if (fd < 0)
        return -1;
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n";
    static char buf[1 << 16];
    size_t len = 0;
    if (fiber_write(fd, req, sizeof req - 1, fiber_now_ns() + 5000000000ull) < 0) {
        fiber_close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n = fiber_read(fd, buf + len, sizeof buf - 1 - len, fiber_now_ns() + 5000000000ull);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    fiber_close(fd);
    buf[len] = 0;
    int nb = 0;
    for (char *p = buf; (p = strstr(p, "mllm_emit_lateness_seconds_bucket{le=")); p++) {
        char *sp = strchr(p, ' ');
        if (!sp || nb >= NB)
            break;
        bucket[nb++] = strtoull(sp + 1, NULL, 10);
    }
    char *e = strstr(buf, "\nmllm_events_sent_total ");
    *events = e ? strtoull(e + 24, NULL, 10) : 0;
    extra_now.short_writes = metric(buf, "mllm_floor_short_writes_total", NULL);
    extra_now.writes = metric(buf, "mllm_writes_total", NULL);
    extra_now.event_bytes = metric(buf, "mllm_floor_event_bytes", NULL);
    extra_now.server_now_s = metric(buf, "mllm_monotonic_seconds", NULL);
    extra_now.conns_total = metric(buf, "mllm_connections_total", NULL);
    extra_now.ticker_late = metric(buf, "mllm_ticker_late_writes_total", NULL);
    extra_now.ticker_parks = metric(buf, "mllm_ticker_parks_total", NULL);
    extra_now.streams_active = metric(buf, "mllm_streams_active", NULL);
    extra_now.parse_sum_s = metric(buf, "mllm_accept_to_request_seconds_sum", &extra_now.have_parse);
    extra_now.parse_count = metric(buf, "mllm_accept_to_request_seconds_count", NULL);
    extra_now.parse_max_s = metric(buf, "mllm_accept_to_request_seconds_max", NULL);
    int na = 0;
    memset(extra_now.a2r, 0, sizeof extra_now.a2r);
    for (char *p = buf; (p = strstr(p, "mllm_accept_to_request_seconds_bucket{le=")); p++) {
        char *sp = strchr(p, ' ');
        if (!sp || na >= NB)
            break;
        extra_now.a2r[na++] = strtoull(sp + 1, NULL, 10);
    }
    return nb == NB ? 0 : -1;
}

/* The same, with the series fiber and the main fiber taking turns (static buffers);
 * the caller reads extra_now before it parks again. */
static int fetch_metrics(uint64_t bucket[NB], uint64_t *events)
{
    fiber_sem_acquire(&metrics_lock, FIBER_FOREVER);
    int rc = fetch_metrics_locked(bucket, events);
    fiber_sem_release(&metrics_lock);
    return rc;
}

static const double bounds_us[NB - 1] = {
    10, 25, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000,
    5000, 10000, 25000, 50000, 100000, 250000, 1000000, 10000000,
};

/* The upper bound of the bucket that holds quantile q: conservative (never under). */
static double quantile_us(const uint64_t a[NB], const uint64_t b[NB], double q)
{
    uint64_t total = b[NB - 1] - a[NB - 1];
    if (!total)
        return NAN;
    uint64_t want = (uint64_t)ceil(q * (double)total);
    for (int i = 0; i < NB; i++)
        if (b[i] - a[i] >= want)
            return i < NB - 1 ? bounds_us[i] : INFINITY;
    return INFINITY;
}

/* Bytes queued unread in the reader's sockets (FIONREAD over every open stream). */
static uint64_t unread_bytes(void)
{
    uint64_t unread = 0;
    for (long i = 0; i < opt.streams; i++) {
        int q = 0;
        if (stream_fds[i] >= 0 && ioctl(stream_fds[i], FIONREAD, &q) == 0 && q > 0)
            unread += (uint64_t)q;
    }
    return unread;
}

static long rss_kib(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = atol(line + 6);
    fclose(f);
    return v;
}

/* utime and stime of a process, in clock ticks, from /proc/PID/stat. */
static void cputimes(int pid, uint64_t *ut, uint64_t *st)
{
    *ut = *st = 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (!f)
        return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long u = 0, s = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &u, &s) == 2) {
        *ut = u;
        *st = s;
    }
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* From /proc/PID/schedstat: nanoseconds on the CPU and waiting on a run queue. The
 * wait tells how much of the lateness is the machine's other load, not the server. */
static void schedstat(int pid, uint64_t *run, uint64_t *wait)
{
    *run = *wait = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (!f)
        return;
    if (fscanf(f, "%" SCNu64 " %" SCNu64, run, wait) != 2)
        *run = *wait = 0;
    fclose(f);
}

/* Steal and total jiffies of one CPU (/proc/stat "cpuN" line): the hypervisor's share. */
static void cpu_steal(int cpu, uint64_t *steal, uint64_t *total)
{
    *steal = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    char line[512], want[16];
    snprintf(want, sizeof want, "cpu%d ", cpu);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)))
            continue;
        unsigned long long v[8] = { 0 };
        if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
            for (int i = 0; i < 8; i++)
                *total += v[i];
            *steal = v[7];
        }
        break;
    }
    fclose(f);
}

/* The pid of the kernel thread ksoftirqd/0 (0: not found): softirq work the kernel defers
 * there competes with the server for cpu0 (a series column). */
static int ksoftirqd0_pid(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        char path[300], comm[64] = "";
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f) && !strcmp(comm, "ksoftirqd/0\n"))
                found = atoi(e->d_name);
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* The upper bound of the highest bucket that gained an event (the window's max). */
static double max_us(const uint64_t a[NB], const uint64_t b[NB])
{
    double m = NAN;
    for (int i = 0; i < NB; i++) {
        uint64_t here = (b[i] - a[i]) - (i ? b[i - 1] - a[i - 1] : 0);
        if (here)
            m = i < NB - 1 ? bounds_us[i] : INFINITY;
    }
    return m;
}

/* --series FILE: from the first connect to the end, every --series-ms a line of what the
 * server did in that slice (from /metrics): events and their lateness p50/p99/max (bucket
 * upper bounds), connections accepted, requests parsed and their accept-to-request p99,
 * the ticker's late writes and parks, the server's CPU and run-queue wait, and the
 * hypervisor's steal on the server's CPU (cpu0, where the benchmark pins it). */
static FILE *series_file; /* opened before the run: a path that cannot be written fails it */
static FILE *phases_file; /* --phases, likewise */

static void series_main(void *arg)
{
    (void)arg;
    FILE *f = series_file;
    fprintf(f, "t_s,opened,events,late_p50_us,late_p99_us,late_max_us,accepted,parsed,"
               "a2r_p50_us,a2r_p99_us,ticker_late_writes,ticker_parks,server_cpu_pct,"
               "runq_wait_pct,steal_cpu0_pct,ksoftirqd0_ms\n");
    uint64_t b0[NB], b1[NB], e0, e1, r0, w0, r1, w1, s0, j0, s1, j1, k0, k1, kw;
    int kpid = ksoftirqd0_pid();
    uint64_t t_start = fiber_now_ns();
    if (fetch_metrics(b0, &e0) != 0) {
        fclose(f);
        return;
    }
    extra_t x0 = extra_now;
    schedstat(opt.rss_pid, &r0, &w0);
    schedstat(kpid, &k0, &kw);
    cpu_steal(0, &s0, &j0);
    uint64_t t0 = fiber_now_ns(), step = (uint64_t)(opt.series_ms * 1e6);
    for (uint64_t next = t0 + step; !stopping; next += step) {
        if (next < fiber_now_ns())
            next = fiber_now_ns() + step / 4; /* a slow /metrics: no burst of catch-up */
        fiber_sleep_until(next);
        if (fetch_metrics(b1, &e1) != 0)
            break;
        extra_t x1 = extra_now;
        uint64_t t1 = fiber_now_ns();
        schedstat(opt.rss_pid, &r1, &w1);
        schedstat(kpid, &k1, &kw);
        cpu_steal(0, &s1, &j1);
        double dt = (double)(t1 - t0);
        fprintf(f, "%.3f,%ld,%" PRIu64 ",%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.1f,%.1f,"
                   "%.1f,%.2f\n",
                (double)(t1 - t_start) / 1e9, opened, e1 - e0, quantile_us(b0, b1, 0.5),
                quantile_us(b0, b1, 0.99), max_us(b0, b1), x1.conns_total - x0.conns_total,
                x1.parse_count - x0.parse_count, quantile_us(x0.a2r, x1.a2r, 0.5),
                quantile_us(x0.a2r, x1.a2r, 0.99), x1.ticker_late - x0.ticker_late,
                x1.ticker_parks - x0.ticker_parks, 100.0 * (double)(r1 - r0) / dt,
                100.0 * (double)(w1 - w0) / dt,
                j1 > j0 ? 100.0 * (double)(s1 - s0) / (double)(j1 - j0) : 0.0,
                (double)(k1 - k0) / 1e6);
        fflush(f);
        memcpy(b0, b1, sizeof b0);
        e0 = e1;
        x0 = x1;
        r0 = r1;
        w0 = w1;
        s0 = s1;
        j0 = j1;
        t0 = t1;
        k0 = k1;
    }
    fclose(f);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Prints p50, p99 and max in ms of b[i] - a[i] over the streams that have both, and
 * leaves them in q[3] (microseconds; NAN when none). */
static void stage(const char *name, const uint64_t *a, const uint64_t *b, double q[3])
{
    uint64_t *d = malloc((size_t)opt.streams * sizeof *d);
    long n = 0;
    q[0] = q[1] = q[2] = NAN;
    if (!d)
        return;
    for (long i = 0; i < opt.streams; i++)
        if (a[i] && b[i] && b[i] >= a[i])
            d[n++] = b[i] - a[i];
    if (n) {
        qsort(d, (size_t)n, sizeof *d, cmp_u64);
        q[0] = (double)d[n / 2] / 1e3;
        q[1] = (double)d[(n * 99) / 100] / 1e3;
        q[2] = (double)d[n - 1] / 1e3;
        printf("open_%s_p50_ms=%.3f open_%s_p99_ms=%.3f open_%s_max_ms=%.3f ", name,
               q[0] / 1e3, name, q[1] / 1e3, name, q[2] / 1e3);
    }
    free(d);
}

/* How evenly the streams' first events fell over the event period: the fullest ~1 ms of
 * phase (first-byte time modulo the period) against the mean (mllm_phase.h). 1 is an
 * even tiling (what --period-ms sends); a server that parsed a backlog of requests in
 * one go starts their schedules together, and with a fixed gap they stay together: a
 * burst every period. */
static double phase_peak_ratio(const uint64_t *t_ns)
{
    return mllm_phase_peak_ratio(t_ns, opt.streams, opt.period_ms);
}

static void main_fiber(void *arg)
{
    (void)arg;
    uint64_t b0[NB], b1[NB], e0, e1, bs[NB], es, bo[NB], eo;
    long rss0 = rss_kib(opt.rss_pid);
    /* Before the first connect: the ramp's lateness (this snapshot to the window's start:
     * opening, the requests' turns, the warm-up) and the whole run's, beside the held
     * window's. */
    if (fetch_metrics(bs, &es) != 0) {
        fprintf(stderr, "mllm-load: cannot read /metrics\n");
        exit(1);
    }
    uint64_t t_start = fiber_now_ns();
    fiber_attr_t attr = { .stack_size = 16 * 1024, .name = "stream", .detached = 1 };
    if (opt.series) {
        fiber_attr_t sa = { .stack_size = 64 * 1024, .name = "series", .detached = 1 };
        fiber_spawn_ex(series_main, NULL, &sa);
    }
    for (spawned = 0; spawned < opt.streams; spawned++)
        if (!fiber_spawn_ex(stream_main, (void *)(intptr_t)spawned, &attr)) {
            fprintf(stderr, "mllm-load: fiber_spawn: %s after %ld streams\n", strerror(errno),
                    spawned);
            break;
        }
    failed += opt.streams - spawned;
    /* all streams open (or failed), at most 60 s */
    while (opened + failed < opt.streams && fiber_now_ns() - t_start < 60000000000ull)
        fiber_sleep_ns(20000000);
    /* Why streams failed to connect (bind's EADDRNOTAVAIL for a 127.0.0.x source, EMFILE
     * at the open-file limit, ...): the key=value line only counts them. */
    if (dial_errno)
        fprintf(stderr, "mllm-load: a connection failed: %s (streams failed so far: %ld)\n",
                strerror(dial_errno), failed);
    double open_s = (double)(fiber_now_ns() - t_start) / 1e9;
    /* The ramp split where every stream is open: the opening (connects, the requests'
     * turns, the first events) and the warm-up after it. With a warm-up of 1 s at 5
     * tokens/s the warm-up holds ~90% of the ramp's events, so the ramp's p99 alone
     * says little about the opening. */
    int have_open = fetch_metrics(bo, &eo) == 0;
    fiber_sleep_ns((uint64_t)(opt.warmup_s * 1e9));
    long rss1 = rss_kib(opt.rss_pid);
    long open_at_window = opened;
    /* What the reader has not read yet, at both ends of the window (outside the server's
     * interval between its two /metrics snapshots: 10,000 ioctls take milliseconds): a
     * reader that keeps up holds about one round's worth at each end; one that is the
     * ceiling ends with more than it began with. */
    uint64_t unread0 = unread_bytes();
    if (fetch_metrics(b0, &e0) != 0) {
        fprintf(stderr, "mllm-load: cannot read /metrics\n");
        exit(1);
    }
    extra_t x0 = extra_now;
    uint64_t run0, wait0, run1, wait1, ut0, st0, ut1, st1;
    uint64_t steal0, jif0, steal1, jif1;
    cpu_steal(0, &steal0, &jif0);
    schedstat(opt.rss_pid, &run0, &wait0);
    cputimes(opt.rss_pid, &ut0, &st0);
    double self0 = self_cpu_s();
    uint64_t work0 = work_ns;
    uint64_t c0 = client_events, t0 = fiber_now_ns();
    fiber_sleep_ns((uint64_t)(opt.window_s * 1e9));
    uint64_t c1 = client_events, t1 = fiber_now_ns();
    uint64_t work1 = work_ns;
    double self1 = self_cpu_s();
    schedstat(opt.rss_pid, &run1, &wait1);
    cputimes(opt.rss_pid, &ut1, &st1);
    cpu_steal(0, &steal1, &jif1);
    if (fetch_metrics(b1, &e1) != 0) {
        fprintf(stderr, "mllm-load: cannot read /metrics\n");
        exit(1);
    }
    extra_t x1 = extra_now;
    uint64_t unread = unread_bytes();
    static const uint64_t zero_b[NB];
    double dt = (double)(t1 - t0) / 1e9;
    /* The server's events are counted between its two snapshots: divide by the server's
     * own interval between them when it says (it is the client's window plus the two
     * /metrics round trips, ms under load), else by the client's window. */
    double server_dt = x0.server_now_s > 0 && x1.server_now_s > x0.server_now_s
                           ? x1.server_now_s - x0.server_now_s : dt;
    /* Server CPU per event: schedstat's run time (ns), split into user and kernel by the
     * ratio of utime to stime (clock ticks: coarse, but the ratio is all we take). */
    double run_us = (double)(run1 - run0) / 1e3;
    double ev = (double)(e1 - e0);
    double ticks = (double)(ut1 - ut0) + (double)(st1 - st0);
    double sys_share = ticks > 0 ? (double)(st1 - st0) / ticks : NAN;
    /* Busy: the share of the window in read() and counting (a lower bound: epoll and
     * the switches are not in it); without --busy-poll the thread's CPU share. */
    double busy_pct = opt.busy_poll ? 100.0 * (double)(work1 - work0) / (double)(t1 - t0)
                                    : 100.0 * (self1 - self0) / dt;
    double bytes_per_event = client_events ? (double)client_bytes / (double)client_events : 0;
    printf("server_cpu_us_per_event=%.3f server_sys_share=%.3f client_cpu_pct=%.1f "
           "client_busy_pct=%.1f short_writes=%.0f writes_per_event=%.3f "
           "accept_to_request_us=%.1f accept_to_request_max_us=%.1f "
           "accept_to_request_p50_us=%.0f accept_to_request_p99_us=%.0f "
           "client_backlog_events=%.0f client_backlog_growth_events=%.0f "
           "phase_peak_ratio=%.2f sent_phase_peak_ratio=%.2f ",
           ev > 0 ? run_us / ev : NAN, sys_share, 100.0 * (self1 - self0) / dt, busy_pct,
           x1.short_writes - x0.short_writes,
           ev > 0 && x1.writes > 0 ? (x1.writes - x0.writes) / ev : NAN,
           x1.have_parse && x1.parse_count > 0 ? x1.parse_sum_s / x1.parse_count * 1e6 : NAN,
           x1.have_parse ? x1.parse_max_s * 1e6 : NAN,
           x1.have_parse ? quantile_us(zero_b, x1.a2r, 0.5) : NAN,
           x1.have_parse ? quantile_us(zero_b, x1.a2r, 0.99) : NAN,
           bytes_per_event > 0 ? (double)unread / bytes_per_event : 0.0,
           bytes_per_event > 0 ? ((double)unread - (double)unread0) / bytes_per_event : 0.0,
           phase_peak_ratio(first_byte_ns), phase_peak_ratio(sent_ns));
    double qc[3], qs[3], qf[3];
    stage("connect", slot_ns, conn_ns, qc);
    stage("send", turn_ns, sent_ns, qs);
    /* --period-ms: each request's turn to its write's return (the write itself included:
     * ~10-14 us over loopback here); a turn moved one period on counts from its new turn,
     * and send_deferred says how many were */
    printf("send_late_p50_us=%.1f send_late_p99_us=%.1f send_late_max_us=%.1f "
           "send_deferred=%ld ", qs[0], qs[1], qs[2], send_deferred);
    stage("firstbyte", sent_ns, first_byte_ns, qf);
    /* The request's write to its first event's bytes (a zero TTFT: the server's queue
     * before the request is parsed, the parse, the write, and this reader's own lag). */
    printf("req_to_first_p50_us=%.1f req_to_first_p99_us=%.1f req_to_first_max_us=%.1f "
           "late_ramp_p50_us=%.0f late_ramp_p99_us=%.0f late_ramp_max_us=%.0f "
           "late_full_p99_us=%.0f late_max_us=%.0f steal_cpu0_pct=%.2f ", qf[0], qf[1], qf[2],
           quantile_us(bs, b0, 0.5), quantile_us(bs, b0, 0.99), max_us(bs, b0),
           quantile_us(bs, b1, 0.99), max_us(b0, b1),
           jif1 > jif0 ? 100.0 * (double)(steal1 - steal0) / (double)(jif1 - jif0) : 0.0);
    printf("late_open_p99_us=%.0f late_warmup_p99_us=%.0f ",
           have_open ? quantile_us(bs, bo, 0.99) : NAN, have_open ? quantile_us(bo, b0, 0.99) : NAN);
    printf("streams=%ld open=%ld failed=%ld open_s=%.2f window_s=%.3f "
           "server_events_per_s=%.0f client_events_per_s=%.0f "
           "late_p50_us=%.0f late_p99_us=%.0f late_p999_us=%.0f "
           "rss0_kib=%ld rss_kib=%ld requests_finished=%ld server_cpu_pct=%.1f "
           "server_runq_wait_pct=%.1f server_window_s=%.4f window_t0_ns=%" PRIu64
           " window_t1_ns=%" PRIu64 "\n",
           opt.streams, open_at_window, failed, open_s, dt, (double)(e1 - e0) / server_dt,
           (double)(c1 - c0) / dt, quantile_us(b0, b1, 0.5), quantile_us(b0, b1, 0.99),
           quantile_us(b0, b1, 0.999), rss0, rss1, finished_reqs,
           (double)(run1 - run0) / (double)(t1 - t0) * 100,
           (double)(wait1 - wait0) / (double)(t1 - t0) * 100, server_dt, t0, t1);
    fflush(stdout);
    if (phases_file) {
        /* ns since the first connect; 0: did not happen */
        fprintf(phases_file, "stream,turn_ns,sent_ns,first_byte_ns\n");
        for (long i = 0; i < opt.streams; i++)
            fprintf(phases_file, "%ld,%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n", i,
                    turn_ns[i] ? turn_ns[i] - t_start : 0, sent_ns[i] ? sent_ns[i] - t_start : 0,
                    first_byte_ns[i] ? first_byte_ns[i] - t_start : 0);
        fclose(phases_file);
    }
    stopping = 1;
    /* The connections close with the process; the server sees them go. */
    _exit(0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mllm-load --target ADDR:PORT [--streams N] [--warmup S] [--window S]\n"
               "                 [--stagger-ms X] [--connect-parallel N] [--rss-pid PID]\n"
               "                 [--model M] [--busy-poll] [--period-ms P]\n"
               "                 [--series FILE [--series-ms MS]] [--phases FILE]\n"
               "Opens N streaming chat requests against mock-llm and prints one key=value\n"
               "line: what the server emitted (/metrics) and the client received in the\n"
               "window, the emission lateness quantiles, and the server's RSS.\n"
               "--busy-poll keeps the client core spinning instead of sleeping in epoll.\n"
               "--period-ms P: connect all, then send the requests at evenly spaced phases\n"
               "of the streams' event period P (instead of --stagger-ms's random delays).\n"
               "--series FILE [--series-ms 100]: a CSV line per slice from the first connect:\n"
               "the server's events, lateness p50/p99/max, accepts, parsed requests, CPU,\n"
               "run-queue wait and cpu0's steal in that slice.\n"
               "--phases FILE: a CSV line per stream: its turn, its request's write and its\n"
               "first response bytes (ns from the first connect; 0: did not happen).\n");
}

static int bad(const char *what)
{
    fprintf(stderr, "mllm-load: %s (see --help)\n", what);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "target", 1, 0, 't' }, { "streams", 1, 0, 'n' }, { "warmup", 1, 0, 'w' },
        { "window", 1, 0, 'W' }, { "stagger-ms", 1, 0, 's' }, { "connect-parallel", 1, 0, 'c' },
        { "rss-pid", 1, 0, 'p' }, { "model", 1, 0, 'm' }, { "busy-poll", 0, 0, 'b' },
        { "period-ms", 1, 0, 'P' }, { "series", 1, 0, 'S' }, { "series-ms", 1, 0, 'T' },
        { "phases", 1, 0, 'F' },
        { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
    };
    int o, have_target = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 't': {
            char host[64];
            const char *c = strrchr(optarg, ':');
            if (!c || (size_t)(c - optarg) >= sizeof host)
                return bad("--target wants ADDR:PORT");
            memcpy(host, optarg, (size_t)(c - optarg));
            host[c - optarg] = 0;
            opt.addr.sin_family = AF_INET;
            long port = strtol(c + 1, &end, 10);
            if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1 || *end || port < 1 ||
                port > 65535)
                return bad("--target wants an IPv4 ADDR:PORT");
            opt.addr.sin_port = htons((uint16_t)port);
            have_target = 1;
            break;
        }
        case 'n': opt.streams = strtol(optarg, &end, 10);
            if (*end || opt.streams < 1 || opt.streams > 1000000) return bad("bad --streams");
            break;
        case 'w': opt.warmup_s = strtod(optarg, &end);
            if (*end || opt.warmup_s < 0 || opt.warmup_s > 600) return bad("bad --warmup");
            break;
        case 'W': opt.window_s = strtod(optarg, &end);
            if (*end || opt.window_s <= 0 || opt.window_s > 600) return bad("bad --window");
            break;
        case 's': opt.stagger_ms = strtod(optarg, &end);
            if (*end || opt.stagger_ms < 0 || opt.stagger_ms > 60000) return bad("bad --stagger-ms");
            break;
        case 'c': opt.connect_parallel = strtol(optarg, &end, 10);
            if (*end || opt.connect_parallel < 1) return bad("bad --connect-parallel");
            break;
        case 'p': opt.rss_pid = atoi(optarg); break;
        case 'm': opt.model = optarg; break;
        case 'b': opt.busy_poll = 1; break;
        case 'P': opt.period_ms = strtod(optarg, &end);
            if (*end || end == optarg || opt.period_ms < 0 || opt.period_ms > 600000)
                return bad("bad --period-ms");
            break;
        case 'S': opt.series = optarg; break;
        case 'F': opt.phases = optarg; break;
        case 'T': opt.series_ms = strtod(optarg, &end);
            if (*end || end == optarg || opt.series_ms < 1 || opt.series_ms > 60000)
                return bad("bad --series-ms");
            break;
        case 'h': usage(stdout); return 0;
        case ':': return bad("an option needs a value");
        default: return bad("unknown option");
        }
    }
    if (!have_target)
        return bad("--target is required");
    if (opt.series && !(series_file = fopen(opt.series, "w"))) {
        fprintf(stderr, "mllm-load: --series %s: %s\n", opt.series, strerror(errno));
        return 2;
    }
    if (opt.phases && !(phases_file = fopen(opt.phases, "w"))) {
        fprintf(stderr, "mllm-load: --phases %s: %s\n", opt.phases, strerror(errno));
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    connect_slots = (fiber_sem_t)FIBER_SEM_INIT(opt.connect_parallel);
    stream_fds = malloc((size_t)opt.streams * sizeof *stream_fds);
    if (!stream_fds)
        return 1;
    first_byte_ns = calloc((size_t)opt.streams, sizeof *first_byte_ns);
    turn_ns = calloc((size_t)opt.streams, sizeof *turn_ns);
    slot_ns = calloc((size_t)opt.streams, sizeof *slot_ns);
    conn_ns = calloc((size_t)opt.streams, sizeof *conn_ns);
    sent_ns = calloc((size_t)opt.streams, sizeof *sent_ns);
    send_order = calloc((size_t)opt.streams, sizeof *send_order);
    defer_idx = calloc((size_t)opt.streams, sizeof *defer_idx);
    defer_turn = calloc((size_t)opt.streams, sizeof *defer_turn);
    conn_fd = calloc((size_t)opt.streams, sizeof *conn_fd);
    if (!first_byte_ns || !turn_ns || !slot_ns || !conn_ns || !sent_ns || !send_order || !conn_fd ||
        !defer_idx || !defer_turn)
        return 1;
    for (long i = 0; i < opt.streams; i++)
        stream_fds[i] = -1;
    if (opt.period_ms > 0) {
        /* k coprime to N (odd, not a multiple of 5 covers N = 2^a 5^b; checked anyway)
         * and spacing k*P/N >= 25 us: request i lands at phase (i*k mod N)/N of P. */
        double slot = opt.period_ms * 1e6 / (double)opt.streams;
        uint64_t k = 1;
        for (;; k++) {
            uint64_t a = k, b = (uint64_t)opt.streams;
            while (b) { uint64_t t = a % b; a = b; b = t; }
            if (a == 1 && (double)k * slot >= 25000.0)
                break;
        }
        send_spacing_ns = (uint64_t)((double)k * slot);
        period_ns = (uint64_t)llround(opt.period_ms * 1e6);
        send_late_max_ns = opt.busy_poll ? 100000u : 2000000u;
    }
    char body[256];
    int bl = snprintf(body, sizeof body, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
                                         "\"content\":\"load\"}],\"stream\":true}", opt.model);
    request_len = (size_t)snprintf(request, sizeof request,
                                   "POST /v1/chat/completions HTTP/1.1\r\nHost: load\r\n"
                                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                                   bl, body);
    fiber_attr_t a = { .stack_size = 64 * 1024, .name = "main" };
    if (!fiber_spawn_ex(main_fiber, NULL, &a))
        return 1;
    /* --busy-poll spins in the scheduler (as mock-llm's does): an epoll_wait(0) every
     * turn while a timer is pending (the main fiber's always is), never a halted core
     * for the server's writes to wake. Before, a fiber yielded for ever to keep the run
     * queue non-empty: a switch and a clock read per round beside the poll. */
    if (opt.busy_poll)
        fiber_sched_spin(FIBER_FOREVER);
    fiber_run();
    return 1;
}
