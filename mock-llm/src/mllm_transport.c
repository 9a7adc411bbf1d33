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
#include <sys/epoll.h>
#include <sys/socket.h>

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
}

ssize_t mllm_tx_read(mllm_tx_t *t, void *buf, size_t n, uint64_t deadline_ns)
{
    for (;;) {
        ssize_t r = t->ops->recv(t, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r >= 0 || errno != EAGAIN)
            return r;
        if (t->ops->wait(t, t->want, deadline_ns, MLLM_TX_AFTER_EAGAIN) < 0)
            return -1;
    }
}
