/*
 * mllm_tls.c - the TLS transport (mllm_tls.h) over OpenSSL 3 from Debian (libssl-dev).
 *
 * Memory: a TLS connection holds an SSL object (~6 KiB here) plus a read and a write
 * record buffer of ~17 KiB each while they are in use. A stream spends its life idle
 * between events, so the buffers are released when empty (SSL_MODE_RELEASE_BUFFERS):
 * at 19,000 streams that is the difference between ~0.1 and ~0.7 GB. The price is a
 * malloc/free of the write buffer per write (glibc serves it from the heap, ~100 ns
 * against a send(2) of microseconds); --tls-keep-buffers measures the other choice.
 */
#define _GNU_SOURCE
#include "mllm_tls.h"
#include "mllm_wheel.h"

#include "mllm_metrics.h"

#include <fiber.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

struct mllm_tls {
    SSL_CTX *ctx;
};

/* Marks a session whose handshake was counted (SSL app data: no allocation of ours). */
#define COUNTED ((void *)1)

static void ssl_err(char *err, size_t len, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, len, "%s%s%s", what, e ? ": " : "", buf);
}

/* ---- the certificate made at start ---- */

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A self-signed ECDSA P-256 certificate valid from an hour ago for 30 days, naming
 * localhost, 127.0.0.1 and host. It is its own trust anchor (CA:TRUE, like the
 * certificates `openssl req -x509` makes), so a client trusts it by loading it as a CA
 * file (curl --cacert, NODE_EXTRA_CA_CERTS, wl-llm --tls-ca). */
static int make_cert(const char *host, X509 **xout, EVP_PKEY **kout)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x)
        goto error;
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1)
        goto error;
    serial[0] &= 0x7f; /* a positive serial */
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    if (!ok || !X509_set_version(x, X509_VERSION_3) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600) || !X509_set_pubkey(x, k))
        goto error;
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                    (const unsigned char *)"mock-llm", -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)"localhost", -1, -1, 0) ||
        !X509_set_issuer_name(x, name))
        goto error;
    char san[160] = "DNS:localhost,IP:127.0.0.1";
    struct in_addr ia;
    if (host && inet_pton(AF_INET, host, &ia) == 1 && strcmp(host, "127.0.0.1") != 0 &&
        ia.s_addr != htonl(INADDR_ANY))
        snprintf(san + strlen(san), sizeof san - strlen(san), ",IP:%s", host);
    if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
        add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
        add_ext(x, NID_ext_key_usage, "serverAuth") ||
        add_ext(x, NID_subject_key_identifier, "hash") ||
        add_ext(x, NID_subject_alt_name, san) || !X509_sign(x, k, EVP_sha256()))
        goto error;
    *xout = x;
    *kout = k;
    return 0;
error:
    X509_free(x);
    EVP_PKEY_free(k);
    return -1;
}

mllm_tls_t *mllm_tls_new(const mllm_tls_opts_t *o, char *err, size_t errlen)
{
    ERR_clear_error();
    mllm_tls_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ctx) {
        ssl_err(err, errlen, "SSL_CTX_new");
        goto error1;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* A client that closes without close_notify ends its input like TCP EOF. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    /* Partial writes and a moving buffer: the framing layer hands OpenSSL what the
     * socket did not take from its own pending buffer, which moves as it grows. */
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
    if (!o->keep_buffers)
        mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(t->ctx, mode);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    if (o->cert_file) {
        if (!o->key_file) {
            snprintf(err, errlen, "--tls-cert needs --tls-key");
            goto error2;
        }
        if (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != 1) {
            ssl_err(err, errlen, o->cert_file);
            goto error2;
        }
        if (SSL_CTX_use_PrivateKey_file(t->ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
            ssl_err(err, errlen, o->key_file);
            goto error2;
        }
    } else {
        if (make_cert(o->host, &x, &k) != 0) {
            ssl_err(err, errlen, "making a self-signed certificate");
            goto error2;
        }
        int ok = SSL_CTX_use_certificate(t->ctx, x) == 1 && SSL_CTX_use_PrivateKey(t->ctx, k) == 1;
        EVP_PKEY_free(k);
        if (!ok) {
            X509_free(x);
            ssl_err(err, errlen, "using the self-signed certificate");
            goto error2;
        }
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) {
        X509_free(x);
        ssl_err(err, errlen, "the key does not match the certificate");
        goto error2;
    }
    if (o->cert_out) {
        FILE *f = fopen(o->cert_out, "w");
        X509 *cur = SSL_CTX_get0_certificate(t->ctx);
        int ok = f && PEM_write_X509(f, cur) == 1;
        if (f && fclose(f) != 0)
            ok = 0;
        if (!ok) {
            X509_free(x);
            snprintf(err, errlen, "cannot write the certificate to %s: %s", o->cert_out,
                     strerror(errno));
            goto error2;
        }
    }
    X509_free(x);
    return t;
error2:
    SSL_CTX_free(t->ctx);
error1:
    free(t);
    return NULL;
}

void mllm_tls_free(mllm_tls_t *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- the transport ---- */

static int clamp(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* After an OpenSSL call returned r <= 0: -1 with errno EAGAIN and t->want set when it
 * needs the socket, 0 at a clean end of stream, -1 with errno otherwise (EPROTO: a TLS
 * failure, e.g. a client that sent something else than a TLS handshake). */
static ssize_t tls_fail(mllm_tx_t *t, int r)
{
    SSL *ssl = t->impl;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        t->want = EPOLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        t->want = EPOLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == EINTR)
            return -1;
        if (!errno || errno == EAGAIN)
            errno = ECONNRESET;
        break;
    default:
        errno = EPROTO;
        break;
    }
    if (!SSL_is_init_finished(ssl) && SSL_get_app_data(ssl) != COUNTED) {
        SSL_set_app_data(ssl, COUNTED);
        mllm_metrics.tls_handshake_failures++;
    }
    ERR_clear_error();
    return -1;
}

static void count_handshake(SSL *ssl)
{
    if (SSL_get_app_data(ssl) != COUNTED) {
        SSL_set_app_data(ssl, COUNTED);
        mllm_metrics.tls_handshakes++;
    }
}

static ssize_t tls_recv(mllm_tx_t *t, void *buf, size_t n)
{
    SSL *ssl = t->impl;
    errno = 0;
    int r = SSL_read(ssl, buf, clamp(n));
    if (r > 0) {
        count_handshake(ssl);
        return r;
    }
    return tls_fail(t, r);
}

static ssize_t tls_send(mllm_tx_t *t, const void *buf, size_t n)
{
    SSL *ssl = t->impl;
    errno = 0;
    int r = SSL_write(ssl, buf, clamp(n));
    if (r > 0)
        return r;
    ssize_t k = tls_fail(t, r);
    /* Rare (a KeyUpdate split across records) and what test_tls t_keyupdate_split
     * needs to see happen: a write waiting for the client. */
    if (k < 0 && errno == EAGAIN && t->want == EPOLLIN)
        mllm_metrics.tls_write_want_read++;
    if (k == 0) {
        errno = EPIPE;
        return -1;
    }
    return k;
}

static int tls_peek(mllm_tx_t *t)
{
    SSL *ssl = t->impl;
    if (SSL_pending(ssl) > 0)
        return 1;
    char b;
    errno = 0;
    int r = SSL_peek(ssl, &b, 1);
    if (r > 0)
        return 1;
    ssize_t k = tls_fail(t, r);
    if (k < 0 && errno == EINTR)
        errno = EAGAIN;
    return (int)k;
}

static int tls_wait(mllm_tx_t *t, uint32_t events, uint64_t deadline_ns, int flags)
{
    MLLM_WHEEL_MAY_PARK("tls_wait");
    /* Decrypted bytes waiting in OpenSSL make no epoll event. (Without read-ahead,
     * which this context does not set, OpenSSL holds no further whole records.) But
     * they are no readiness for a send: an SSL_write that wants a read (a KeyUpdate
     * half read) wants the socket's next record, and a pipelined request decrypted and
     * left unread keeps SSL_pending > 0, so returning EPOLLIN at once would have the
     * stream spin through SSL_write as it did on writability (t_keyupdate_split). A
     * guard: with one record read at a time, OpenSSL 3.0 reads no KeyUpdate behind
     * application data it still holds, and no test reaches both at once. */
    if ((events & EPOLLIN) && !(flags & MLLM_TX_FOR_SEND) && SSL_pending((SSL *)t->impl) > 0)
        return EPOLLIN;
    return (flags & MLLM_TX_AFTER_EAGAIN) ? fiber_wait_fd_after_eagain(t->fd, events, deadline_ns)
                                          : fiber_wait_fd(t->fd, events, deadline_ns);
}

static int tls_shutdown_write(mllm_tx_t *t)
{
    SSL *ssl = t->impl;
    /* One close_notify, without waiting for the client's: then the TCP half-close. The
     * lingering reads that follow may still go through SSL_read. */
    if (SSL_is_init_finished(ssl)) {
        ERR_clear_error();
        SSL_shutdown(ssl);
        ERR_clear_error();
    }
    return shutdown(t->fd, SHUT_WR);
}

static void tls_close(mllm_tx_t *t)
{
    SSL *ssl = t->impl;
    if (ssl) {
        if (SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) {
            ERR_clear_error();
            SSL_shutdown(ssl); /* best effort, nonblocking */
        }
        ERR_clear_error();
        SSL_free(ssl);
        t->impl = NULL;
    }
    if (t->fd >= 0)
        fiber_close(t->fd);
    t->fd = -1;
}

static const mllm_tx_ops_t tls_ops = {
    .recv = tls_recv,
    .send = tls_send,
    .peek = tls_peek,
    .wait = tls_wait,
    .shutdown_write = tls_shutdown_write,
    .close = tls_close,
};

int mllm_tx_tls(mllm_tx_t *t, mllm_tls_t *tls, int fd)
{
    SSL *ssl = SSL_new(tls->ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        errno = ENOMEM;
        return -1;
    }
    SSL_set_accept_state(ssl);
    t->ops = &tls_ops;
    t->fd = fd;
    t->want = 0;
    t->impl = ssl;
    return 0;
}
