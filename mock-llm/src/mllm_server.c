/*
 * mllm_server.c - one scheduler on one thread, one fiber per connection: listening,
 * accepting, signals, and the connection loop that joins the layers (mllm_server.h).
 */
#define _GNU_SOURCE
#include "mllm_server.h"

#include "mllm_conn.h"
#include "mllm_metrics.h"
#include "mllm_route.h"
#include "mllm_tls.h"
#include "mllm_transport.h"

#include <fiber.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

static const mllm_config_t *cfg;
static int listen_fd = -1;
static mllm_tls_t *tls; /* NULL: plain HTTP */

static void conn_main(void *arg)
{
    mllm_conn_t *c = arg;
    int one = 1;
    setsockopt(c->tx.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg->sndbuf > 0)
        setsockopt(c->tx.fd, SOL_SOCKET, SO_SNDBUF, &cfg->sndbuf, sizeof cfg->sndbuf);
    mllm_route_connection(c);
    mllm_metrics.conns_active--;
    free(c);
}

/* Connections past --max-conns are answered 503 by a fiber each, bounded: over TLS
 * the answer needs a handshake first (a plain-text 503 written into a TLS handshake is
 * a protocol error to the client, not a 503), and each one holds a descriptor, a fiber
 * and a TLS session meanwhile. Past BUSY_MAX at once they are closed unanswered (TLS)
 * or get the plain 503 in one nonblocking write (HTTP). */
#define BUSY_MAX     64
#define BUSY_TIME_NS (1000ull * 1000000u)
static int busy_active;

static void busy_main(void *arg)
{
    mllm_conn_t *c = arg;
    mllm_conn_turn_away(c, 503, "max_conns", "mock-llm is at --max-conns.",
                        "retry-after: 1\r\n", fiber_now_ns() + BUSY_TIME_NS);
    mllm_conn_close(c);
    busy_active--;
    free(c);
}

/* A zeroed connection on its own cache lines (mllm_conn_t: a stream event's fields share
 * its first line). NULL when memory is short. */
static mllm_conn_t *conn_new(void)
{
    mllm_conn_t *c = aligned_alloc(_Alignof(mllm_conn_t), sizeof *c);
    if (c)
        memset(c, 0, sizeof *c);
    return c;
}

/* Starts the 503 answer for fd (owned) on its own fiber. Returns 0, or -1 (fd not
 * closed) when BUSY_MAX are under way or memory is short. */
static int busy_spawn(int fd, uint64_t id)
{
    if (busy_active >= BUSY_MAX)
        return -1;
    mllm_conn_t *c = conn_new();
    if (!c)
        return -1;
    if (!tls)
        mllm_tx_plain(&c->tx, fd);
    else if (mllm_tx_tls(&c->tx, tls, fd) != 0)
        goto error1;
    mllm_conn_init(c, cfg, id);
    fiber_attr_t attr = { .stack_size = MLLM_CONN_STACK_SIZE, .name = "busy", .detached = 1 };
    if (!fiber_spawn_ex(busy_main, c, &attr))
        goto error2;
    busy_active++;
    return 0;
error2:
    if (tls) {
        c->tx.fd = -1; /* the caller still owns fd */
        c->tx.ops->close(&c->tx);
    }
error1:
    free(c);
    return -1;
}

static void accept_main(void *arg)
{
    (void)arg;
    static uint64_t next_id;
    fiber_attr_t attr = { .stack_size = MLLM_CONN_STACK_SIZE, .name = "conn", .detached = 1 };
    for (;;) {
        int fd = fiber_accept(listen_fd, NULL, NULL, FIBER_FOREVER);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: leave the rest in the backlog and try again once
                 * some connection has had time to close. */
                if (mllm_metrics.accept_emfile++ == 0)
                    mllm_log(MLLM_LOG_WARN, "accept: %s; backing off", strerror(errno));
                fiber_sleep_ns(10 * 1000000u);
                continue;
            }
            if (errno == EBADF)
                return; /* shutting down */
            mllm_log(MLLM_LOG_ERROR, "accept: %s", strerror(errno));
            fiber_sleep_ns(10 * 1000000u);
            continue;
        }
        mllm_metrics.conns_total++;
        if ((long)mllm_metrics.conns_active >= cfg->max_conns) {
            mllm_metrics.conns_refused_max++;
            if (busy_spawn(fd, ++next_id) == 0)
                continue;
            if (!tls) {
                static const char body[] =
                    "{\"error\":{\"message\":\"mock-llm is at --max-conns.\",\"type\":"
                    "\"server_error\",\"param\":null,\"code\":\"max_conns\"}}";
                char busy[512];
                int bl = snprintf(busy, sizeof busy,
                                  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                  "application/json\r\nContent-Length: %zu\r\nConnection: "
                                  "close\r\nretry-after: 1\r\n\r\n%s", sizeof body - 1, body);
                if (send(fd, busy, (size_t)bl, MSG_NOSIGNAL | MSG_DONTWAIT) == bl)
                    mllm_metrics_status(503);
            }
            close(fd);
            continue;
        }
        mllm_conn_t *c = conn_new();
        if (!c) {
            close(fd);
            continue;
        }
        if (!tls) {
            mllm_tx_plain(&c->tx, fd);
        } else if (mllm_tx_tls(&c->tx, tls, fd) != 0) {
            close(fd);
            free(c);
            continue;
        }
        mllm_conn_init(c, cfg, ++next_id);
        c->accepted_ns = fiber_now_ns();
        mllm_metrics.conns_active++;
        if (!fiber_spawn_ex(conn_main, c, &attr)) {
            mllm_log(MLLM_LOG_WARN, "fiber_spawn: %s; connection refused", strerror(errno));
            mllm_metrics.conns_active--;
            c->tx.ops->close(&c->tx);
            free(c);
            fiber_sleep_ns(1000000u);
        }
    }
}

/* With --busy-poll the scheduler never lets the CPU halt while a deadline is pending
 * (fiber_sched_spin): it spins on the clock and its timers, so a due stream runs within
 * a spin's turn instead of after a halted vCPU's wake-up (tens of microseconds under a
 * hypervisor, all of a 1 ms lateness budget at high rates). While it spins or is busy it
 * polls the sockets every BUSY_IO_INTERVAL_NS, not between every two rounds: at the
 * knee a round is the ticker and one or two streams, and an epoll_wait per round was a
 * system call per event beside the event's one send (a spinning fiber in the run queue,
 * the earlier way, also cost 255 switches per round). New connections, /metrics and a
 * backed-up reader's drain are then noticed up to this much later. */
#define BUSY_IO_INTERVAL_NS (25u * 1000u)

static void signal_main(void *arg)
{
    int sfd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;
    /* Only a signal ends the server. A failed wait (the poller out of descriptors or
     * memory) is retried: exiting 0 then would look like a clean shutdown. */
    while (fiber_read(sfd, &si, sizeof si, FIBER_FOREVER) != (ssize_t)sizeof si) {
        mllm_log(MLLM_LOG_WARN, "waiting for signals: %s; retrying", strerror(errno));
        fiber_sleep_ns(10 * 1000000u);
    }
    mllm_log(MLLM_LOG_INFO, "signal %d: shutting down (%" PRIu64 " connections open, %" PRIu64
          " tokens sent)", (int)si.ssi_signo, mllm_metrics.conns_active,
          mllm_metrics.tokens_sent);
    fflush(stdout);
    fflush(stderr);
    /* Open streams end with the process: their clients see the connection close, as
     * with any server that is stopped. */
    exit(0);
}

int mllm_server_run(const mllm_config_t *c)
{
    cfg = c;
    mllm_log_level = c->log_level;
    mllm_route_init(c);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("mock-llm: signalfd");
        return 1;
    }
    if (c->tls) {
        char err[512];
        mllm_tls_opts_t to = { .cert_file = c->tls_cert, .key_file = c->tls_key,
                               .cert_out = c->tls_cert_out, .host = c->host,
                               .keep_buffers = c->tls_keep_buffers };
        tls = mllm_tls_new(&to, err, sizeof err);
        if (!tls) {
            fprintf(stderr, "mock-llm: TLS: %s\n", err);
            return 2;
        }
    }
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) {
        perror("mock-llm: socket");
        return 1;
    }
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* Plain connections inherit it: the kernel stamps a packet on arrival only while
     * some socket on the machine asks (a global switch, turned on with a delay), so
     * asked by the accepted sockets alone, a request that came before the server's
     * first accept, or after every connection had closed, had no stamp and started
     * when parsed, its wait for accept() counted nowhere (mllm_conn_next). TLS reads
     * no stamps. A failure is ignored, as in mllm_tx_plain. */
    if (!tls)
        (void)setsockopt(listen_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
    inet_pton(AF_INET, c->host, &a.sin_addr);
    if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "mock-llm: cannot listen on %s:%d: %s\n", c->host, c->port,
                strerror(errno));
        return 1;
    }
    /* The kernel caps the backlog at net.core.somaxconn; ask for plenty so a burst of
     * thousands of connects waits in the queue instead of being retried by SYN timers. */
    if (listen(listen_fd, 65535) != 0) {
        perror("mock-llm: listen");
        return 1;
    }
    socklen_t al = sizeof a;
    getsockname(listen_fd, (struct sockaddr *)&a, &al);
    printf("mock-llm listening on %s:%d\n", c->host, ntohs(a.sin_port));
    fflush(stdout);
    mllm_log(MLLM_LOG_INFO, "profile %s (ttft %.3f s, %.1f tok/s) time-scale %g seed %" PRIu64,
          c->profile.name, c->profile.ttft_s, c->profile.speed_tps, c->time_scale, c->seed);
    /* The signal fiber runs first: its wait creates the runtime's epoll instance before
     * the first accept, so a burst of connections cannot take the last descriptor the
     * poller needs. */
    fiber_attr_t small = { .stack_size = 32 * 1024, .name = "signal", .detached = 1 };
    fiber_t *sig = fiber_spawn_ex(signal_main, (void *)(intptr_t)sfd, &small);
    small.name = "accept";
    small.detached = 0;
    fiber_t *acc = sig ? fiber_spawn_ex(accept_main, NULL, &small) : NULL;
    if (c->busy_poll) {
        fiber_sched_spin(FIBER_FOREVER);
        fiber_sched_io_interval(BUSY_IO_INTERVAL_NS);
    }
    if (!acc) {
        perror("mock-llm: fiber_spawn");
        return 1;
    }
    if (fiber_join(acc) != 0) {
        perror("mock-llm: scheduler");
        return 1;
    }
    return 0;
}
