/*
 * mllm_transport.c - the plain-socket transport, and the parking read every transport
 * shares. The plain calls are the bare system calls the server made before the layers
 * were split: the one indirect call per write is a nanosecond against a send(2) of
 * several hundred.
 */
#define _GNU_SOURCE
#include "mllm_transport.h"
#include "mllm_wheel.h"

#include <fiber.h>

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

/* The bare system calls: EAGAIN (== EWOULDBLOCK on Linux) and EINTR go up as they are,
 * the callers retry EINTR. This is the hot path of every stream (one send per batch of
 * events), so it is kept to the call itself. */
static ssize_t plain_recv(mllm_tx_t *t, void *buf, size_t n)
{
    t->want = EPOLLIN;
    return recv(t->fd, buf, n, MSG_DONTWAIT);
}

static ssize_t plain_send(mllm_tx_t *t, const void *buf, size_t n)
{
    t->want = EPOLLOUT;
    return send(t->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static int plain_peek(mllm_tx_t *t)
{
    char b;
    ssize_t r = recv(t->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 ? -1 : r > 0;
}

static int plain_wait(mllm_tx_t *t, uint32_t events, uint64_t deadline_ns, int flags)
{
    MLLM_WHEEL_MAY_PARK("plain_wait");
    return (flags & MLLM_TX_AFTER_EAGAIN) ? fiber_wait_fd_after_eagain(t->fd, events, deadline_ns)
                                          : fiber_wait_fd(t->fd, events, deadline_ns);
}

static int plain_shutdown_write(mllm_tx_t *t)
{
    return shutdown(t->fd, SHUT_WR);
}

static void plain_close(mllm_tx_t *t)
{
    if (t->fd >= 0)
        fiber_close(t->fd);
    t->fd = -1;
}

static const mllm_tx_ops_t plain_ops = {
    .recv = plain_recv,
    .send = plain_send,
    .peek = plain_peek,
    .wait = plain_wait,
    .shutdown_write = plain_shutdown_write,
    .close = plain_close,
};

void mllm_tx_plain(mllm_tx_t *t, int fd)
{
    t->ops = &plain_ops;
    t->fd = fd;
    t->want = 0;
    t->impl = NULL;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
}

/* plain_recv with the kernel's receive stamp of the bytes (CLOCK_REALTIME, the only
 * clock SO_TIMESTAMPNS has), moved onto CLOCK_MONOTONIC by the two clocks' difference
 * now; 0 when the kernel attached none. */
static ssize_t plain_recv_stamped(mllm_tx_t *t, void *buf, size_t n, uint64_t *rx_ns)
{
    union {
        char           b[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } cb;
    struct iovec iov = { .iov_base = buf, .iov_len = n };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
                        .msg_controllen = sizeof cb.b };
    t->want = EPOLLIN;
    *rx_ns = 0;
    ssize_t r = recvmsg(t->fd, &m, MSG_DONTWAIT);
    if (r <= 0)
        return r;
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
        /* A stamp from the future or from before the clock began (the wall clock was
         * stepped) tells nothing. */
        if (ago >= 0 && (uint64_t)ago < now)
            *rx_ns = now - (uint64_t)ago;
    }
    return r;
}

/* Reads what is there, waiting (up to deadline_ns) while there is nothing; with rx_ns
 * (plain sockets only) through plain_recv_stamped. */
static ssize_t tx_read_wait(mllm_tx_t *t, void *buf, size_t n, uint64_t deadline_ns,
                            uint64_t *rx_ns)
{
    for (;;) {
        ssize_t r = rx_ns ? plain_recv_stamped(t, buf, n, rx_ns) : t->ops->recv(t, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r >= 0 || errno != EAGAIN)
            return r;
        if (t->ops->wait(t, t->want, deadline_ns, MLLM_TX_AFTER_EAGAIN) < 0)
            return -1;
    }
}

ssize_t mllm_tx_read(mllm_tx_t *t, void *buf, size_t n, uint64_t deadline_ns)
{
    return tx_read_wait(t, buf, n, deadline_ns, NULL);
}

ssize_t mllm_tx_read_stamped(mllm_tx_t *t, void *buf, size_t n, uint64_t deadline_ns,
                             uint64_t *rx_ns)
{
    if (t->ops != &plain_ops) {
        *rx_ns = 0;
        return tx_read_wait(t, buf, n, deadline_ns, NULL);
    }
    return tx_read_wait(t, buf, n, deadline_ns, rx_ns);
}
