/*
 * wl_tls.h - a client connection that is plain TCP or TLS (OpenSSL), with the same
 * read/write/close on every concurrency model. This header is the manual.
 *
 * TLS runs over the same socket the model would use: nonblocking on a fiber (a
 * WANT_READ/WANT_WRITE from OpenSSL parks the fiber in the runtime's poller), blocking
 * on a thread (OpenSSL blocks in read(2)/write(2); the socket's SO_RCVTIMEO/SO_SNDTIMEO
 * bound it and the exact deadline is then kept with poll(2)). The context reads ahead
 * (one read(2) takes every TLS record the kernel holds, not a header and a body per
 * record), which is what a client that cares about system calls configures.
 */
#ifndef WL_TLS_H
#define WL_TLS_H

#include "wl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A client TLS context (one SSL_CTX), shared by every thread of a run. */
typedef struct wl_tls wl_tls_t;

typedef struct wl_tls_opts {
    const char *ca_file;         /* PEM file of trusted certificates: the server's
                                    certificate is verified against it, and its name
                                    against the address dialled; NULL: not verified */
    int         release_buffers; /* SSL_MODE_RELEASE_BUFFERS: give the 16 KiB+ record
                                    buffers back while a connection is idle */
} wl_tls_opts_t;

/* Makes a client context. Returns NULL with a message in err (OpenSSL's or ours). */
wl_tls_t *wl_tls_client_new(const wl_tls_opts_t *o, char *err, size_t errlen);
void      wl_tls_free(wl_tls_t *t);

/* A connection: fd plus, with TLS, its session. Zero-initialise, then wl_conn_dial. */
typedef struct wl_conn {
    int   fd;
    void *ssl; /* SSL *, NULL on a plain connection */
} wl_conn_t;

#define WL_CONN_NONE { -1, NULL }

/* Connects to addr (wl_dial) and, when tls is not NULL, runs the TLS handshake, all by
 * the deadline. Returns 0, or -1 with errno (EPROTO: the handshake failed; the reason is
 * in the thread's OpenSSL error queue, also written to err when err is not NULL). On
 * failure c->fd is -1. */
int wl_conn_dial(wl_conn_t *c, const struct sockaddr_in *addr, wl_tls_t *tls,
                 uint64_t deadline_ns, char *err, size_t errlen);

/* Like wl_read/wl_write on the connection (TLS records decrypted/encrypted).
 * Read: 1..n bytes, 0 at end of stream (TLS close_notify or TCP EOF), -1 with errno
 * (EPROTO for a TLS failure). Write: n, or -1 with errno. */
ssize_t wl_conn_read(wl_conn_t *c, void *buf, size_t n, uint64_t deadline_ns);
ssize_t wl_conn_write(wl_conn_t *c, const void *buf, size_t n, uint64_t deadline_ns);

/* Sends close_notify without waiting for the peer's (TLS), closes and resets c. */
void wl_conn_close(wl_conn_t *c);

/* Waits until fd is readable (POLLIN) or writable (POLLOUT) or the deadline passes:
 * parks a fiber, polls on a thread. after_eagain: the caller has just seen EAGAIN on fd
 * (a fiber then skips the poll(2) that would only say "not ready"). Returns 0, or -1
 * with errno ETIMEDOUT. */
int wl_wait_fd(int fd, short pollevents, int after_eagain, uint64_t deadline_ns);

#ifdef __cplusplus
}
#endif

#endif /* WL_TLS_H */
