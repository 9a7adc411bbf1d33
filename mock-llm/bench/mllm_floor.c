/*
 * mllm_floor.c - the physical floor of the mock-llm benchmark: a server that does only
 * what the kernel must for a token stream, so mock-llm's capacity can be read against it.
 *
 *   mllm-floor [--listen ADDR:PORT] [--tps X] [--event-bytes N] [--busy-poll]
 *
 * It speaks just enough HTTP for mllm-load to drive it like mock-llm: a POST gets an SSE
 * response head and then, forever, one write() of an event-sized buffer (a real
 * chat.completion.chunk SSE event in its HTTP chunk, 247 bytes by default) per event; a
 * GET /metrics gets the counters and the lateness histogram in mock-llm's names and
 * buckets. Events go round-robin over the open streams, evenly paced at --tps per stream
 * (offered rate = streams x tps): event k is due at base + k / (streams x tps), and its
 * lateness is the time its write() began minus that deadline. --tps 0 writes as fast as
 * it can (the maximum rate; lateness is then not meaningful).
 *
 * No timer heap, no per-stream state beyond the descriptor, no formatting, no coalescing:
 * a late event is still its own write(). A write the socket does not take whole (a slow
 * reader) is counted in mllm_floor_short_writes_total and not retried. One thread, one
 * epoll instance, checked for new connections between events; with --busy-poll it never
 * sleeps: it spins on the clock and polls every 25 us, like mock-llm --busy-poll; else it
 * sleeps in epoll_pwait2 until the next deadline, like mock-llm.
 * Prints "mllm-floor listening on ADDR:PORT"; SIGINT/SIGTERM exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NB 22 /* lateness bounds, as mock-llm's; a +Inf bucket follows */
static const double bounds_us[NB] = {
    10, 25, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000,
    5000, 10000, 25000, 50000, 100000, 250000, 1000000, 10000000,
};

/* With --busy-poll, how often the sockets are polled: mock-llm's interval. */
#define BUSY_IO_INTERVAL_NS 25000u

/* A connection that has not finished its request head: at most this much is kept. */
#define HEAD_MAX 4096

typedef struct pend {
    int    fd;
    size_t len;
    char   buf[HEAD_MAX];
} pend_t;

static struct {
    struct sockaddr_in addr;
    double tps;
    long   event_bytes;
    int    busy_poll;
} opt = { .tps = 10, .event_bytes = 0 };

static volatile sig_atomic_t quit;
static int ep, lfd;
static int *streams;              /* fds of the open streams, in round-robin order */
static size_t nstreams, cap_streams;
static pend_t **pend_of;          /* by fd: a connection still sending its request */
static size_t pend_cap;
static uint64_t events_sent, short_writes, bytes_sent, streams_total;
static uint64_t late_bucket[NB + 1];
static char *event;               /* the buffer written per event */
static size_t event_len;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int s)
{
    (void)s;
    quit = 1;
}

static void late(uint64_t ns)
{
    double us = (double)ns / 1000.0;
    int i = 0;
    while (i < NB && us > bounds_us[i])
        i++;
    late_bucket[i]++;
}

/* The event: mock-llm's chunk for one token, then padded or cut to --event-bytes. */
static int make_event(void)
{
    static const char data[] =
        "data: {\"id\":\"chatcmpl-mock000000000280defe\",\"object\":\"chat.completion.chunk\","
        "\"created\":1796183479,\"model\":\"mock\",\"system_fingerprint\":\"fp_mockllm\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" because\"},\"logprobs\":null,"
        "\"finish_reason\":null}]}\n\n";
    size_t dl = sizeof data - 1;
    size_t want = opt.event_bytes > 0 ? (size_t)opt.event_bytes : 0;
    /* framing: "<hex>\r\n" + data + "\r\n" */
    char hex[16];
    if (want) {
        size_t body = want > 12 ? want - 8 : 4; /* close enough: solve for the hex length */
        for (int it = 0; it < 3; it++) {
            int hl = snprintf(hex, sizeof hex, "%zx", body);
            body = want > (size_t)hl + 4 ? want - (size_t)hl - 4 : 1;
        }
        dl = body;
    }
    int hl = snprintf(hex, sizeof hex, "%zx\r\n", dl);
    event_len = (size_t)hl + dl + 2;
    event = malloc(event_len);
    if (!event)
        return -1;
    memcpy(event, hex, (size_t)hl);
    for (size_t i = 0; i < dl; i++) /* pad a longer event with the data repeated */
        event[hl + i] = data[i % (sizeof data - 1)];
    if (dl >= 2) {
        event[hl + dl - 2] = '\n';
        event[hl + dl - 1] = '\n';
    }
    memcpy(event + hl + dl, "\r\n", 2);
    return 0;
}

static void add_stream(int fd)
{
    if (nstreams == cap_streams) {
        size_t cap = cap_streams ? cap_streams * 2 : 1024;
        int *p = realloc(streams, cap * sizeof *p);
        if (!p) {
            close(fd);
            return;
        }
        streams = p;
        cap_streams = cap;
    }
    streams[nstreams++] = fd;
    streams_total++;
}

static void drop_stream(size_t i)
{
    close(streams[i]);
    streams[i] = streams[--nstreams];
}

static void send_all_blocking(int fd, const char *p, size_t n)
{
    /* Only for the response heads and /metrics: a few hundred bytes into an empty socket. */
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void serve_metrics(int fd)
{
    char body[4096];
    size_t n = 0;
    n += (size_t)snprintf(body + n, sizeof body - n,
                          "# HELP mllm_events_sent_total events written (mllm-floor)\n"
                          "mllm_events_sent_total %" PRIu64 "\n"
                          "mllm_floor_short_writes_total %" PRIu64 "\n"
                          "mllm_bytes_sent_total %" PRIu64 "\n"
                          "mllm_streams_active %zu\nmllm_streams_total %" PRIu64 "\n"
                          "mllm_floor_event_bytes %zu\n"
                          "mllm_monotonic_seconds %.9f\n",
                          events_sent, short_writes, bytes_sent, nstreams, streams_total,
                          event_len, (double)now_ns() / 1e9);
    uint64_t cum = 0;
    for (int i = 0; i < NB; i++) {
        cum += late_bucket[i];
        n += (size_t)snprintf(body + n, sizeof body - n,
                              "mllm_emit_lateness_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                              bounds_us[i] / 1e6, cum);
    }
    cum += late_bucket[NB];
    n += (size_t)snprintf(body + n, sizeof body - n,
                          "mllm_emit_lateness_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    char head[256];
    int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
                      "version=0.0.4\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", n);
    send_all_blocking(fd, head, (size_t)hl);
    send_all_blocking(fd, body, n);
    close(fd);
}

/* Reads what a connection sent; once its head is complete it becomes a stream (POST)
 * or gets the metrics (GET /metrics). Returns 1 when the set of streams changed. */
static int on_readable(int fd)
{
    pend_t *p = (size_t)fd < pend_cap ? pend_of[fd] : NULL;
    if (!p)
        return 0;
    ssize_t r = recv(fd, p->buf + p->len, sizeof p->buf - 1 - p->len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (r > 0)
        p->len += (size_t)r;
    p->buf[p->len] = 0;
    int complete = strstr(p->buf, "\r\n\r\n") != NULL;
    if (r <= 0 || (!complete && p->len >= sizeof p->buf - 1)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        pend_of[fd] = NULL;
        free(p);
        return 0;
    }
    if (!complete)
        return 0;
    /* The stream is never read again: it leaves the poller. */
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    pend_of[fd] = NULL;
    int metrics = !strncmp(p->buf, "GET /metrics", 12);
    free(p);
    if (metrics) {
        serve_metrics(fd);
        return 0;
    }
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; "
                               "charset=utf-8\r\nCache-Control: no-cache\r\n"
                               "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n";
    send_all_blocking(fd, head, sizeof head - 1);
    add_stream(fd);
    return 1;
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if ((size_t)fd >= pend_cap) {
            size_t cap = pend_cap ? pend_cap : 1024;
            while (cap <= (size_t)fd)
                cap *= 2;
            pend_t **q = realloc(pend_of, cap * sizeof *q);
            if (!q) {
                close(fd);
                continue;
            }
            memset(q + pend_cap, 0, (cap - pend_cap) * sizeof *q);
            pend_of = q;
            pend_cap = cap;
        }
        pend_t *p = calloc(1, sizeof *p);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
        if (!p || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            free(p);
            close(fd);
            continue;
        }
        p->fd = fd;
        pend_of[fd] = p;
    }
}

/* Handles what the poller has; waits at most until `until` (0: do not wait).
 * Returns 1 when the set of streams changed. */
static int poll_once(uint64_t until)
{
    struct epoll_event evs[64];
    struct timespec ts = { 0, 0 }, *tsp = &ts;
    if (until == UINT64_MAX) {
        tsp = NULL;
    } else if (until) {
        uint64_t now = now_ns();
        uint64_t d = until > now ? until - now : 0;
        ts.tv_sec = (time_t)(d / 1000000000u);
        ts.tv_nsec = (long)(d % 1000000000u);
    }
    int n = epoll_pwait2(ep, evs, 64, tsp, NULL);
    int changed = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == lfd)
            on_accept();
        else
            changed |= on_readable(evs[i].data.fd);
    }
    return changed;
}

static int bad(const char *what)
{
    fprintf(stderr, "mllm-floor: %s (see --help)\n", what);
    return 2;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mllm-floor [--listen ADDR:PORT] [--tps X] [--event-bytes N] "
               "[--busy-poll]\n"
               "The floor of the mock-llm benchmark: one write() of an event-sized buffer\n"
               "per event, round-robin over the open streams, paced to streams x X events\n"
               "per second (--tps 0: as fast as possible). Serves GET /metrics like mock-llm.\n"
               "--event-bytes: bytes per write, HTTP chunk framing included (default: a real\n"
               "chat.completion.chunk event, 247). --busy-poll: never sleep.\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "listen", 1, 0, 'l' }, { "tps", 1, 0, 't' }, { "event-bytes", 1, 0, 'e' },
        { "busy-poll", 0, 0, 'b' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
    };
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 'l': {
            char host[64];
            const char *c = strrchr(optarg, ':');
            if (!c || (size_t)(c - optarg) >= sizeof host)
                return bad("--listen wants ADDR:PORT");
            memcpy(host, optarg, (size_t)(c - optarg));
            host[c - optarg] = 0;
            long port = strtol(c + 1, &end, 10);
            if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1 || *end || end == c + 1 ||
                port < 0 || port > 65535)
                return bad("--listen wants an IPv4 ADDR:PORT");
            opt.addr.sin_port = htons((uint16_t)port);
            break;
        }
        case 't':
            opt.tps = strtod(optarg, &end);
            if (*end || end == optarg || !(opt.tps >= 0 && opt.tps <= 1e7))
                return bad("bad --tps");
            break;
        case 'e':
            opt.event_bytes = strtol(optarg, &end, 10);
            if (*end || end == optarg || opt.event_bytes < 16 || opt.event_bytes > 65536)
                return bad("bad --event-bytes (16..65536)");
            break;
        case 'b': opt.busy_poll = 1; break;
        case 'h': usage(stdout); return 0;
        case ':': return bad("an option needs a value");
        default: return bad("unknown option");
        }
    }
    if (optind < argc)
        return bad("unexpected argument");
    if (make_event() != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&opt.addr, sizeof opt.addr) != 0 ||
        listen(lfd, 65535) != 0) {
        perror("mllm-floor: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.fd = lfd };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0) {
        perror("mllm-floor: epoll");
        return 1;
    }
    socklen_t al = sizeof opt.addr;
    getsockname(lfd, (struct sockaddr *)&opt.addr, &al);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &opt.addr.sin_addr, host, sizeof host);
    printf("mllm-floor listening on %s:%d\n", host, ntohs(opt.addr.sin_port));
    fflush(stdout);

    uint64_t base = now_ns(), k = 0, interval = 0, polled = 0;
    size_t next = 0;
    while (!quit) {
        if (!nstreams) {
            poll_once(opt.busy_poll ? 0 : now_ns() + 100000000u);
            base = now_ns();
            k = 0;
            continue;
        }
        /* The pacing restarts whenever the set of streams changes (before the window). */
        interval = opt.tps > 0 ? (uint64_t)(1e9 / (opt.tps * (double)nstreams)) : 0;
        uint64_t now = now_ns();
        /* Every due event is its own write; the poller is looked at every 64 events so
         * that /metrics and new connections are served while it keeps up. */
        for (int burst = 0; burst < 64; burst++) {
            uint64_t due = base + k * interval;
            if (due > now)
                break;
            if (next >= nstreams)
                next = 0;
            ssize_t w = send(streams[next], event, event_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (interval)
                late(now - due);
            if (w == (ssize_t)event_len) {
                events_sent++;
                bytes_sent += (uint64_t)w;
                next++;
            } else if (w >= 0 || errno == EAGAIN) {
                short_writes++;
                if (w > 0)
                    bytes_sent += (uint64_t)w;
                next++;
            } else if (errno != EINTR) {
                drop_stream(next); /* the reader is gone */
                if (!nstreams)
                    break;
            }
            k++;
            now = now_ns();
        }
        uint64_t due = base + k * interval;
        int changed = 0;
        if (opt.busy_poll) {
            /* Spin on the clock and poll the sockets at most every BUSY_IO_INTERVAL_NS,
             * as mock-llm --busy-poll does (fiber_sched_io_interval): an epoll_pwait2 on
             * every turn was ~6 system calls per event at 50,000 events/s (perf stat),
             * none of which a token stream needs. */
            if (now - polled >= BUSY_IO_INTERVAL_NS) {
                changed = poll_once(0);
                polled = now;
            }
        } else if (due <= now) {
            changed = poll_once(0);
        } else {
            changed = poll_once(due);
        }
        if (changed) {
            base = now_ns();
            k = 0;
        }
    }
    return 0;
}
