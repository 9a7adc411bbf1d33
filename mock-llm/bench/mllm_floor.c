/*
 * mllm_floor.c - the physical floor of the mock-llm benchmark: a server that does only
 * what the kernel must for a token stream, so mock-llm's capacity can be read against it.
 *
 *   mllm-floor [--listen ADDR:PORT] [--tps X] [--pacing arrival|even] [--event-bytes N]
 *              [--busy-poll] [--trace]
 *
 * It speaks just enough HTTP for mllm-load to drive it like mock-llm: a POST gets an SSE
 * response head and then, forever, one write() of an event-sized buffer (a real
 * chat.completion.chunk SSE event in its HTTP chunk, 247 bytes by default) per event; a
 * GET /metrics gets the counters and the lateness histogram in mock-llm's names and
 * buckets. An event's lateness is the time its write() began minus its deadline.
 *
 * --pacing arrival (the default, what the benchmark runs): each stream is timed from its
 * own request's arrival exactly as mock-llm times it (--profile fixed --ttft-ms 0): the
 * arrival is the kernel's receive stamp (SO_TIMESTAMPNS) of the bytes that completed the
 * request, the parse time when there is none; the first event is due then, every further
 * one 1/tps after the stream's previous deadline. So the floor is offered the load
 * mock-llm is offered, bunched wherever the client's requests were: with one global even
 * sequence (below) the floor's busiest millisecond held 1.00-1.02x the mean while
 * mock-llm's held 1.6-2.0x at 10,000 streams (the client sends its requests up to ms
 * late against their turns), and a knee ratio of the two compared different loads
 * (mock-llm/README, "The tail at 10,000 streams"). Every stream has the same period, so
 * once open the streams' deadlines come round in a fixed order, the order of their
 * phases: they are kept in a ring in deadline order and written round-robin, no heap. A
 * new stream's first event is already due (its request arrived before it was parsed) and
 * is written at once, as mock-llm's stream writes it when its fiber first runs; the
 * stream then joins the ring where its next deadline falls.
 *
 * --pacing even (the floor before 3 December): one sequence over the open streams,
 * round-robin, event k due at base + k / (streams x tps), re-based whenever a stream
 * opens or closes: an evenly spaced load, whatever the requests' timing.
 *
 * --tps 0 writes as fast as it can (the maximum rate; lateness is then not counted).
 * --trace prints each event's stream, deadline and write start (CLOCK_MONOTONIC ns) to
 * stderr, for the tests; not for measuring.
 *
 * No timer heap, no formatting, no coalescing: a late event is still its own write(). A
 * write the socket does not take whole (a slow reader) is counted in
 * mllm_floor_short_writes_total and not retried. One thread, one epoll instance, checked
 * for new connections between events; with --busy-poll it never sleeps: it spins on the
 * clock and polls every 25 us, like mock-llm --busy-poll; else it sleeps in epoll_pwait2
 * until the next deadline, like mock-llm.
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
    int      fd;
    uint64_t rx_ns;  /* the kernel's receive stamp of the last read's bytes, 0: none */
    size_t   len;
    char     buf[HEAD_MAX];
} pend_t;

/* An open stream: a member of the ring, in the order its events come due. */
typedef struct stream {
    int            fd;
    uint64_t       due;  /* --pacing arrival: its next event's deadline */
    struct stream *prev, *next;
} stream_t;

enum { PACING_ARRIVAL, PACING_EVEN };

static struct {
    struct sockaddr_in addr;
    double tps;
    long   event_bytes;
    int    busy_poll;
    int    pacing;
    int    trace;
} opt = { .tps = 10, .event_bytes = 0, .pacing = PACING_ARRIVAL };

static volatile sig_atomic_t quit;
static int ep, lfd;
/* The open streams, a ring: `ring` is the one whose event is next (arrival: the earliest
 * deadline; the ring runs in deadline order from it), NULL when none is open. */
static stream_t *ring;
static size_t nstreams;
static uint64_t period;           /* --pacing arrival: ns between a stream's events */
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

/* Puts s into the ring just before `at` (NULL: s is the only one). */
static void ring_link(stream_t *s, stream_t *at)
{
    if (!at) {
        s->prev = s->next = s;
        return;
    }
    s->next = at;
    s->prev = at->prev;
    at->prev->next = s;
    at->prev = s;
}

/* Puts s (not in the ring) where its deadline falls, looked for from the latest deadline
 * back: requests come in time order and a written stream's next deadline is the latest,
 * so that is nearly always at once. Only a deadline more than a period past the head's
 * (a request parsed more than a period after it arrived, or the floor behind by more than
 * a period) walks further, over the streams whose deadlines lie past it. */
static void ring_place(stream_t *s)
{
    stream_t *t = ring->prev;
    while (t != ring && t->due > s->due)
        t = t->prev;
    if (t->due > s->due) { /* earlier than every other: next */
        ring_link(s, ring);
        ring = s;
    } else {
        ring_link(s, t->next);
    }
}

/* A new stream joins the ring. Even pacing: last in the round. Arrival pacing: in
 * deadline order (ring_place). */
static void add_stream(stream_t *s)
{
    nstreams++;
    streams_total++;
    if (!ring) {
        ring_link(s, NULL);
        ring = s;
        return;
    }
    if (opt.pacing == PACING_EVEN)
        ring_link(s, ring);
    else
        ring_place(s);
}

/* Arrival pacing: s, just written (now last in the round, before `ring`), has its next
 * deadline; it stays there unless a stream before it is due later. The ring is only in
 * deadline order round after round if every deadline lies within one period of the
 * head's; a stream that joined past that (parsed more than a period after its request
 * arrived, or the floor behind by more than a period) would otherwise hold a place a
 * round early for good, and the stream after it be written late every round (a request
 * parsed 350 ms after it arrived at 10 events/s: that stream 230 ms late at every event,
 * 3 December). */
static void ring_settle(stream_t *s)
{
    if (s->prev == s || s->prev->due <= s->due)
        return;
    s->prev->next = s->next;
    s->next->prev = s->prev;
    ring_place(s);
}

/* The reader is gone: the stream leaves the ring. */
static void drop_stream(stream_t *s)
{
    close(s->fd);
    if (--nstreams == 0) {
        ring = NULL;
    } else {
        s->prev->next = s->next;
        s->next->prev = s->prev;
        if (ring == s)
            ring = s->next;
    }
    free(s);
}

/* One event's write to s, due at `due`; `now` is when the write begins. Returns 0, or -1
 * when the reader is gone (the caller drops the stream). */
static int emit(stream_t *s, uint64_t due, uint64_t now)
{
    ssize_t w = send(s->fd, event, event_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (opt.tps > 0)
        late(now - due);
    if (opt.trace)
        fprintf(stderr, "event fd=%d due=%" PRIu64 " start=%" PRIu64 "\n", s->fd, due, now);
    if (w == (ssize_t)event_len) {
        events_sent++;
        bytes_sent += (uint64_t)w;
    } else if (w >= 0 || errno == EAGAIN || errno == EINTR) {
        short_writes++;
        if (w > 0)
            bytes_sent += (uint64_t)w;
    } else {
        return -1;
    }
    return 0;
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

/* recv() with the kernel's receive stamp of the bytes, as mock-llm reads a request
 * (mllm_transport.c): SO_TIMESTAMPNS stamps CLOCK_REALTIME, moved onto CLOCK_MONOTONIC by
 * the two clocks' difference now; *rx_ns 0 when there is none (even pacing asks for
 * none). */
static ssize_t recv_stamped(int fd, char *buf, size_t n, uint64_t *rx_ns)
{
    union {
        char           b[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } cb;
    struct iovec iov = { .iov_base = buf, .iov_len = n };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
                        .msg_controllen = sizeof cb.b };
    ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT);
    if (r <= 0)
        return r;
    *rx_ns = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec at, real, mono;
        memcpy(&at, CMSG_DATA(h), sizeof at);
        clock_gettime(CLOCK_REALTIME, &real);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        int64_t ago = ((int64_t)real.tv_sec - at.tv_sec) * 1000000000 +
                      ((int64_t)real.tv_nsec - at.tv_nsec);
        uint64_t now = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
        if (ago >= 0 && (uint64_t)ago < now) /* not a stepped wall clock */
            *rx_ns = now - (uint64_t)ago;
    }
    return r;
}

/* Reads what a connection sent; once its head is complete it becomes a stream (POST)
 * or gets the metrics (GET /metrics). Returns 1 when the set of streams changed. */
static int on_readable(int fd)
{
    pend_t *p = (size_t)fd < pend_cap ? pend_of[fd] : NULL;
    if (!p)
        return 0;
    ssize_t r = recv_stamped(fd, p->buf + p->len, sizeof p->buf - 1 - p->len, &p->rx_ns);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (r > 0)
        p->len += (size_t)r;
    p->buf[p->len] = 0;
    /* Complete with its body (Content-Length), as mock-llm takes a request: the
     * arrival is that of the bytes that completed it. */
    const char *end = strstr(p->buf, "\r\n\r\n");
    int complete = 0;
    if (end) {
        size_t head = (size_t)(end - p->buf) + 4;
        const char *cl = strcasestr(p->buf, "\r\nContent-Length:");
        long body = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
        complete = body <= 0 || p->len >= head + (size_t)body;
    }
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
    uint64_t rx_ns = p->rx_ns;
    free(p);
    if (metrics) {
        serve_metrics(fd);
        return 0;
    }
    stream_t *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return 0;
    }
    s->fd = fd;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; "
                               "charset=utf-8\r\nCache-Control: no-cache\r\n"
                               "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n";
    send_all_blocking(fd, head, sizeof head - 1);
    if (opt.pacing == PACING_ARRIVAL) {
        /* mock-llm's start (mllm_conn.c): the receive stamp, else the parse. The first
         * event is due then (TTFT 0), so already. The ring stays in deadline order, and
         * in one period from its head, only if the stream joins it in the round its
         * deadline belongs to:
         * - ahead of every unwritten event (the floor keeps up): the first event is the
         *   earliest due, written now; the stream joins at its next deadline, before the
         *   streams written since its request arrived (the floor had not seen it yet).
         * - behind an unwritten event (the floor is behind): it joins at its first
         *   deadline, among the due events, and is written in its turn. Written at once
         *   and joining at the next deadline, past the head's by more than a period, it
         *   held its place in the ring while the streams before it came round a period
         *   earlier: out of order for good (a trace at 1,000 streams x 50 events/s, the
         *   floor behind during the requests: 12% of events written after a later
         *   deadline, up to 1.06 ms; knees 54-65k events/s against even pacing's
         *   46-96k and mock-llm's 68-88k, 3 December). */
        uint64_t now = now_ns();
        uint64_t start = rx_ns ? rx_ns : now;
        s->due = start;
        if (!ring || start < ring->due) {
            if (emit(s, start, now) != 0) {
                streams_total++;
                close(fd);
                free(s);
                return 0;
            }
            s->due = start + period;
        }
    }
    add_stream(s);
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
        /* As mock-llm (mllm_tx_plain), and left on as it leaves it: while any socket has
         * it the kernel stamps every packet received, the load client's too. */
        if (opt.pacing == PACING_ARRIVAL)
            setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
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
    fprintf(f, "usage: mllm-floor [--listen ADDR:PORT] [--tps X] [--pacing arrival|even]\n"
               "                  [--event-bytes N] [--busy-poll] [--trace]\n"
               "The floor of the mock-llm benchmark: one write() of an event-sized buffer\n"
               "per event, round-robin over the open streams, X events per second per stream\n"
               "(--tps 0: as fast as possible). Serves GET /metrics like mock-llm.\n"
               "--pacing arrival (default): each stream from its request's arrival, as\n"
               "mock-llm (--profile fixed --ttft-ms 0); even: one evenly spaced sequence\n"
               "over all streams, event k at base + k / (streams x X).\n"
               "--trace: each event's fd, deadline and write start to stderr (tests).\n"
               "--event-bytes: bytes per write, HTTP chunk framing included (default: a real\n"
               "chat.completion.chunk event, 247). --busy-poll: never sleep.\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "listen", 1, 0, 'l' }, { "tps", 1, 0, 't' }, { "event-bytes", 1, 0, 'e' },
        { "busy-poll", 0, 0, 'b' }, { "pacing", 1, 0, 'p' }, { "trace", 0, 0, 'T' },
        { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
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
            /* 0 (flat out) or 1e-6..1e7: below, the period 1e9/tps passes 2^64 ns (an
             * infinite one for 1e-300) and its conversion is undefined behaviour */
            if (*end || end == optarg ||
                !(opt.tps == 0 || (opt.tps >= 1e-6 && opt.tps <= 1e7)))
                return bad("bad --tps (0, or 0.000001 to 10000000 events/s per stream)");
            break;
        case 'e':
            opt.event_bytes = strtol(optarg, &end, 10);
            if (*end || end == optarg || opt.event_bytes < 16 || opt.event_bytes > 65536)
                return bad("bad --event-bytes (16..65536)");
            break;
        case 'b': opt.busy_poll = 1; break;
        case 'p':
            if (!strcmp(optarg, "arrival"))
                opt.pacing = PACING_ARRIVAL;
            else if (!strcmp(optarg, "even"))
                opt.pacing = PACING_EVEN;
            else
                return bad("--pacing wants arrival or even");
            break;
        case 'T': opt.trace = 1; break;
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

    /* mock-llm's gap: 1/tps rounded to the ns (mllm_timing.c secs_to_ns), added to the
     * previous deadline */
    period = opt.tps > 0 ? (uint64_t)(1e9 / opt.tps + 0.5) : 0;
    uint64_t base = now_ns(), k = 0, interval = 0, polled = 0;
    while (!quit) {
        if (!nstreams) {
            poll_once(opt.busy_poll ? 0 : now_ns() + 100000000u);
            base = now_ns();
            k = 0;
            continue;
        }
        /* Even: the pacing restarts whenever the set of streams changes. */
        if (opt.pacing == PACING_EVEN)
            interval = opt.tps > 0 ? (uint64_t)(1e9 / (opt.tps * (double)nstreams)) : 0;
        uint64_t now = now_ns();
        /* Every due event is its own write; the poller is looked at every 64 events so
         * that /metrics and new connections are served while it keeps up. */
        for (int burst = 0; burst < 64 && ring; burst++) {
            uint64_t due = opt.pacing == PACING_EVEN ? base + k * interval : ring->due;
            if (due > now)
                break;
            stream_t *s = ring;
            ring = s->next;
            if (emit(s, due, now) != 0) {
                drop_stream(s); /* the reader is gone */
            } else {
                s->due += period;
                k++;
                /* (--tps 0: no period, every deadline stays its arrival; the walk
                 * would put the stream just written first again: round-robin as is) */
                if (opt.pacing == PACING_ARRIVAL && period > 0)
                    ring_settle(s);
            }
            now = now_ns();
        }
        uint64_t due = !ring ? UINT64_MAX
                       : opt.pacing == PACING_EVEN ? base + k * interval : ring->due;
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
            changed = poll_once(due == UINT64_MAX ? now + 100000000u : due);
        }
        if (changed) {
            base = now_ns();
            k = 0;
        }
    }
    return 0;
}
