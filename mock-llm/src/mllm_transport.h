/*
 * mllm_transport.h - how one connection's bytes move: the lowest of mock-llm's layers.
 *
 * Everything above (HTTP framing, the API) reads, writes, waits and closes through
 * these calls and never learns whether a plain socket or a TLS session is underneath.
 * The calls are nonblocking and say what they are waiting for, so the layer above can
 * keep one fiber per connection and decide itself when to park: a TLS session may need
 * the socket writable to make a read progress (and the other way round), which is why
 * a would-block result carries the readiness to wait for in `want`.
 */
#ifndef MLLM_TRANSPORT_H
#define MLLM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mllm_tx mllm_tx_t;

/* mllm_tx_ops_t.wait's flags */
#define MLLM_TX_AFTER_EAGAIN 1
#define MLLM_TX_FOR_SEND     2

typedef struct mllm_tx_ops {
    /* Nonblocking. recv: 1..n bytes, 0 at end of stream, -1 with errno; send: 1..n bytes
     * taken, or -1 with errno. errno EAGAIN (the same value as EWOULDBLOCK on Linux)
     * means "not now": t->want then holds the epoll events (EPOLLIN, EPOLLOUT) that let
     * the call progress. EINTR: call again. send never raises SIGPIPE. */
    ssize_t (*recv)(mllm_tx_t *t, void *buf, size_t n);
    ssize_t (*send)(mllm_tx_t *t, const void *buf, size_t n);
    /* Nonblocking look at the input without consuming it: 1 when bytes are waiting, 0
     * when the peer has closed, -1 with errno (EAGAIN: nothing yet and still open;
     * EINTR counts as EAGAIN). */
    int (*peek)(mllm_tx_t *t);
    /* Parks the calling fiber until the connection is ready for events or deadline_ns
     * (CLOCK_MONOTONIC) passes. flags: MLLM_TX_AFTER_EAGAIN, the caller has just seen
     * EAGAIN from this transport, so no readiness check is needed before parking;
     * MLLM_TX_FOR_SEND, the wait is for a send, so input the transport holds already
     * read (TLS's decrypted bytes) does not make EPOLLIN ready - only the socket does.
     * Returns the ready events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP bits) or -1 with
     * errno (ETIMEDOUT, ...). */
    int (*wait)(mllm_tx_t *t, uint32_t events, uint64_t deadline_ns, int flags);
    /* Ends the output direction after what was sent (the peer reads end of stream) and
     * keeps the input open: the first half of a lingering close. Returns 0 or -1. */
    int (*shutdown_write)(mllm_tx_t *t);
    /* Releases everything the transport holds, the descriptor included. */
    void (*close)(mllm_tx_t *t);
} mllm_tx_ops_t;

struct mllm_tx {
    const mllm_tx_ops_t *ops;
    int      fd;   /* the connection's socket, or -1 */
    uint32_t want; /* after EAGAIN: the readiness to wait for */
    void    *impl; /* the implementation's own state (a TLS session); NULL for plain */
};

/* Makes t a plain-socket transport over fd (nonblocking, owned: close closes it), and
 * asks the kernel to stamp what fd receives (SO_TIMESTAMPNS; a failure is ignored: the
 * reads then carry no stamp). */
void mllm_tx_plain(mllm_tx_t *t, int fd);

/* Reads 1..n bytes, parking until some arrive. Returns the count, 0 at end of stream,
 * or -1 with errno (ETIMEDOUT when deadline_ns passed first). */
ssize_t mllm_tx_read(mllm_tx_t *t, void *buf, size_t n, uint64_t deadline_ns);

/* mllm_tx_read, also telling when the returned bytes arrived: *rx_ns is the kernel's
 * receive time of the last of them on CLOCK_MONOTONIC (a plain socket's SO_TIMESTAMPNS
 * stamp, converted), or 0 when the transport cannot tell (TLS) or the read returned
 * nothing. Costs a recvmsg instead of a recv and two clock reads: for requests, not for
 * the stream's writes. */
ssize_t mllm_tx_read_stamped(mllm_tx_t *t, void *buf, size_t n, uint64_t deadline_ns,
                             uint64_t *rx_ns);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_TRANSPORT_H */
