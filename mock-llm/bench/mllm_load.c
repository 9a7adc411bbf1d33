/*
 * mllm_load.c - the load client of the mock-llm benchmark, on the fiber runtime: opens
 * N streaming chat requests against a running mock-llm, lets them settle, then measures
 * over a window what the server emitted (from its /metrics: events and the histogram of
 * emission lateness) and what the client received, and prints one key=value line.
 *
 *   mllm-load --target 127.0.0.1:PORT --streams N [--warmup S] [--window S]
 *             [--stagger-ms X] [--connect-parallel N] [--rss-pid PID] [--model M]
 *
 * Each stream is one connection with one long request; a stream that ends (its response
 * finished) sends the next request on the same connection, so N stays open.
 */
#define _GNU_SOURCE
#include <fiber.h>

#include <arpa/inet.h>
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
#include <sys/resource.h>
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
} opt = { .streams = 100, .warmup_s = 1, .window_s = 2, .stagger_ms = 0,
          .connect_parallel = 128, .rss_pid = 0, .model = "mock" };

static long opened, failed, finished_reqs;
static uint64_t client_events; /* SSE frames received (each ends with a blank line) */
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

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fiber_connect(fd, (struct sockaddr *)&opt.addr, sizeof opt.addr,
                      fiber_now_ns() + 10000000000ull) != 0) {
        int e = errno;
        fiber_close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void stream_main(void *arg)
{
    (void)arg;
    if (opt.stagger_ms > 0)
        fiber_sleep_ns((uint64_t)((double)(rnd() % 1000000) / 1e6 * opt.stagger_ms * 1e6));
    fiber_sem_acquire(&connect_slots, FIBER_FOREVER);
    int fd = dial();
    fiber_sem_release(&connect_slots);
    if (fd < 0) {
        failed++;
        return;
    }
    int counted = 0;
    while (!stopping) {
        if (fiber_write(fd, request, request_len, FIBER_FOREVER) < 0)
            break;
        /* Count frames by their blank-line terminator; one byte of carry catches a
         * "\n\n" split across reads. Chunked framing adds only "\r\n", never "\n\n". */
        char last = 0;
        int done = 0;
        while (!done && !stopping) {
            ssize_t n = fiber_read(fd, rbuf, sizeof rbuf, FIBER_FOREVER);
            if (n <= 0)
                goto out;
            if (!counted) {
                counted = 1;
                opened++;
            }
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
        }
        finished_reqs++;
    }
out:
    if (!counted)
        failed++;
    else if (!stopping)
        opened--;
    fiber_close(fd);
}

/* GET /metrics; fills the lateness buckets (cumulative) and the events counter. */
static int fetch_metrics(uint64_t bucket[NB], uint64_t *events)
{
    int fd = dial();
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
    return nb == NB ? 0 : -1;
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

/* Keeps the run queue non-empty so the scheduler polls epoll without sleeping: the
 * client core never idles, and the server's writes never pay for waking it (a
 * cross-core wake-up costs ~20 us under this hypervisor, more than the write). */
static void spinner(void *arg)
{
    (void)arg;
    while (!stopping)
        fiber_yield();
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

static void main_fiber(void *arg)
{
    (void)arg;
    uint64_t b0[NB], b1[NB], e0, e1;
    long rss0 = rss_kib(opt.rss_pid);
    uint64_t t_start = fiber_now_ns();
    fiber_attr_t attr = { .stack_size = 16 * 1024, .name = "stream", .detached = 1 };
    long spawned = 0;
    for (; spawned < opt.streams; spawned++)
        if (!fiber_spawn_ex(stream_main, NULL, &attr)) {
            fprintf(stderr, "mllm-load: fiber_spawn: %s after %ld streams\n", strerror(errno),
                    spawned);
            break;
        }
    failed += opt.streams - spawned;
    fiber_attr_t sa = { .stack_size = 16 * 1024, .name = "spin", .detached = 1 };
    if (opt.busy_poll && !fiber_spawn_ex(spinner, NULL, &sa))
        fprintf(stderr, "mllm-load: cannot start the busy-poll fiber\n");
    /* all streams open (or failed), at most 60 s */
    while (opened + failed < opt.streams && fiber_now_ns() - t_start < 60000000000ull)
        fiber_sleep_ns(20000000);
    double open_s = (double)(fiber_now_ns() - t_start) / 1e9;
    fiber_sleep_ns((uint64_t)(opt.warmup_s * 1e9));
    long rss1 = rss_kib(opt.rss_pid);
    long open_at_window = opened;
    if (fetch_metrics(b0, &e0) != 0) {
        fprintf(stderr, "mllm-load: cannot read /metrics\n");
        exit(1);
    }
    uint64_t run0, wait0, run1, wait1;
    schedstat(opt.rss_pid, &run0, &wait0);
    uint64_t c0 = client_events, t0 = fiber_now_ns();
    fiber_sleep_ns((uint64_t)(opt.window_s * 1e9));
    uint64_t c1 = client_events, t1 = fiber_now_ns();
    schedstat(opt.rss_pid, &run1, &wait1);
    if (fetch_metrics(b1, &e1) != 0) {
        fprintf(stderr, "mllm-load: cannot read /metrics\n");
        exit(1);
    }
    double dt = (double)(t1 - t0) / 1e9;
    printf("streams=%ld open=%ld failed=%ld open_s=%.2f window_s=%.3f "
           "server_events_per_s=%.0f client_events_per_s=%.0f "
           "late_p50_us=%.0f late_p99_us=%.0f late_p999_us=%.0f "
           "rss0_kib=%ld rss_kib=%ld requests_finished=%ld server_cpu_pct=%.1f "
           "server_runq_wait_pct=%.1f\n",
           opt.streams, open_at_window, failed, open_s, dt, (double)(e1 - e0) / dt,
           (double)(c1 - c0) / dt, quantile_us(b0, b1, 0.5), quantile_us(b0, b1, 0.99),
           quantile_us(b0, b1, 0.999), rss0, rss1, finished_reqs,
           (double)(run1 - run0) / (double)(t1 - t0) * 100,
           (double)(wait1 - wait0) / (double)(t1 - t0) * 100);
    fflush(stdout);
    stopping = 1;
    /* The connections close with the process; the server sees them go. */
    _exit(0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mllm-load --target ADDR:PORT [--streams N] [--warmup S] [--window S]\n"
               "                 [--stagger-ms X] [--connect-parallel N] [--rss-pid PID]\n"
               "                 [--model M] [--busy-poll]\n"
               "Opens N streaming chat requests against mock-llm and prints one key=value\n"
               "line: what the server emitted (/metrics) and the client received in the\n"
               "window, the emission lateness quantiles, and the server's RSS.\n"
               "--busy-poll keeps the client core spinning instead of sleeping in epoll.\n");
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
        { "rss-pid", 1, 0, 'p' }, { "model", 1, 0, 'm' }, { "busy-poll", 0, 0, 'b' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
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
        case 'h': usage(stdout); return 0;
        case ':': return bad("an option needs a value");
        default: return bad("unknown option");
        }
    }
    if (!have_target)
        return bad("--target is required");
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    connect_slots = (fiber_sem_t)FIBER_SEM_INIT(opt.connect_parallel);
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
    fiber_run();
    return 1;
}
