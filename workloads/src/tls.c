/*
 * tls.c - plain or TLS client connections over wl's model-neutral I/O (wl_tls.h).
 *
 * OpenSSL does the system calls itself, on the socket the model gave us: on a fiber the
 * socket is nonblocking and every WANT_READ/WANT_WRITE parks the fiber until the poller
 * says the socket is ready; on a thread the socket blocks and OpenSSL sleeps in the
 * kernel, which is exactly what thread-per-connection code does with TLS.
 */
#define _GNU_SOURCE
#include "wl_tls.h"
#include "internal.h"

#include "fiber.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct wl_tls {
    SSL_CTX *ctx;
    int      verify;
};

static void ssl_err(char *err, size_t len, const char *what)
{
    if (!err || !len)
        return;
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, len, "%s%s%s", what, e ? ": " : "", buf);
}

wl_tls_t *wl_tls_client_new(const wl_tls_opts_t *o, char *err, size_t errlen)
{
    wl_tls_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        ssl_err(err, errlen, "SSL_CTX_new");
        goto error1;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* A server that closes without close_notify ends the stream like TCP EOF does
     * (mock-llm's injected disconnects, a killed server): the caller sees 0, as on a
     * plain connection, not a protocol error. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_read_ahead(t->ctx, 1);
    long mode = SSL_MODE_AUTO_RETRY;
    if (o && o->release_buffers)
        mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(t->ctx, mode);
    if (o && o->ca_file) {
        if (SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL) != 1) {
            ssl_err(err, errlen, o->ca_file);
            goto error2;
        }
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        t->verify = 1;
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    }
    return t;
error2:
    SSL_CTX_free(t->ctx);
error1:
    free(t);
    return NULL;
}

void wl_tls_free(wl_tls_t *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

int wl_wait_fd(int fd, short ev, int after_eagain, uint64_t deadline_ns)
{
    if (fiber_self()) {
        uint32_t e = (ev & POLLIN ? EPOLLIN : 0) | (ev & POLLOUT ? EPOLLOUT : 0);
        int r = after_eagain ? fiber_wait_fd_after_eagain(fd, e, deadline_ns)
                             : fiber_wait_fd(fd, e, deadline_ns);
        return r < 0 ? -1 : 0;
    }
    return wl__poll_ready(fd, ev, deadline_ns);
}

/* After an OpenSSL call on c returned r <= 0: waits when it wants I/O (returns 1: call
 * again), else returns 0 (clean end of stream) or -1 with errno. */
static int ssl_retry(wl_conn_t *c, int r, uint64_t deadline_ns)
{
    int e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return wl_wait_fd(c->fd, POLLIN, 1, deadline_ns) ? -1 : 1;
    case SSL_ERROR_WANT_WRITE:
        return wl_wait_fd(c->fd, POLLOUT, 1, deadline_ns) ? -1 : 1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == EINTR)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK) /* SO_RCVTIMEO on a thread */
            return wl_wait_fd(c->fd, POLLIN | POLLOUT, 1, deadline_ns) ? -1 : 1;
        if (!errno)
            errno = ECONNRESET;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

int wl_conn_dial(wl_conn_t *c, const struct sockaddr_in *addr, wl_tls_t *tls,
                 uint64_t deadline_ns, char *err, size_t errlen)
{
    c->ssl = NULL;
    c->fd = wl_dial((const struct sockaddr *)addr, sizeof *addr, deadline_ns);
    if (c->fd < 0)
        return -1;
    if (!tls)
        return 0;
    ERR_clear_error();
    SSL *ssl = SSL_new(tls->ctx);
    if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
        ssl_err(err, errlen, "SSL_new");
        SSL_free(ssl);
        errno = ENOMEM;
        goto error1;
    }
    c->ssl = ssl;
    if (tls->verify) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof ip);
        /* the certificate must name the address we dialled (an IP SAN) */
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip);
    }
    for (;;) {
        errno = 0;
        int r = SSL_connect(ssl);
        if (r == 1)
            return 0;
        int k = ssl_retry(c, r, deadline_ns);
        if (k == 1)
            continue;
        if (k == 0 || errno == EPROTO || errno == 0) {
            ssl_err(err, errlen, "TLS handshake");
            errno = EPROTO;
        }
        goto error2;
    }
error2:
    {
        int e = errno;
        SSL_free(c->ssl);
        c->ssl = NULL;
        errno = e;
    }
error1:
    {
        int e = errno;
        wl_close(c->fd);
        c->fd = -1;
        errno = e;
    }
    return -1;
}

ssize_t wl_conn_read(wl_conn_t *c, void *buf, size_t n, uint64_t deadline_ns)
{
    if (!c->ssl)
        return wl_read(c->fd, buf, n, deadline_ns);
    int want = n > INT_MAX ? INT_MAX : (int)n;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_read(c->ssl, buf, want);
        if (r > 0)
            return r;
        int k = ssl_retry(c, r, deadline_ns);
        if (k != 1)
            return k;
    }
}

ssize_t wl_conn_write(wl_conn_t *c, const void *buf, size_t n, uint64_t deadline_ns)
{
    if (!c->ssl)
        return wl_write(c->fd, buf, n, deadline_ns);
    size_t done = 0;
    while (done < n) {
        size_t left = n - done;
        int want = left > INT_MAX ? INT_MAX : (int)left;
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(c->ssl, (const char *)buf + done, want);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        int k = ssl_retry(c, r, deadline_ns);
        if (k == 0)
            errno = EPIPE;
        if (k != 1)
            return -1;
    }
    return (ssize_t)n;
}

void wl_conn_close(wl_conn_t *c)
{
    if (c->ssl) {
        /* One close_notify, not waiting for the peer's: the socket closes next. */
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        wl_close(c->fd);
    c->fd = -1;
}
