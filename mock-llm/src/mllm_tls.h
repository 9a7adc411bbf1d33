/*
 * mllm_tls.h - the TLS transport (OpenSSL): HTTPS for mock-llm with a certificate made
 * at start (self-signed, ECDSA P-256, for localhost and 127.0.0.1 and the listen
 * address) or one given. It is one more implementation of mllm_transport.h: the HTTP
 * framing and the API above it do not know it is there.
 *
 * Every call is nonblocking, like the plain transport's: the handshake happens inside
 * the first recv (SSL_accept state), and a TLS session that needs the socket readable
 * to write, or writable to read, says so in t->want. Bytes OpenSSL has already read and
 * decrypted are invisible to epoll, so wait() and peek() look at them first.
 */
#ifndef MLLM_TLS_H
#define MLLM_TLS_H

#include "mllm_transport.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mllm_tls mllm_tls_t;

typedef struct mllm_tls_opts {
    const char *cert_file; /* PEM certificate (chain); NULL: make a self-signed one */
    const char *key_file;  /* its PEM private key (required with cert_file) */
    const char *cert_out;  /* write the certificate in use here (PEM), for clients to
                              trust; NULL: do not */
    const char *host;      /* the listen address, added to the made certificate's names */
    int         keep_buffers; /* nonzero: keep OpenSSL's record buffers on idle
                                 connections (default: released, see mllm_tls.c) */
} mllm_tls_opts_t;

/* Makes the server context. Returns NULL with a message in err. */
mllm_tls_t *mllm_tls_new(const mllm_tls_opts_t *o, char *err, size_t errlen);
void        mllm_tls_free(mllm_tls_t *t);

/* Makes t a TLS transport over the accepted nonblocking socket fd (owned: close closes
 * it). Returns 0, or -1 with errno ENOMEM (fd is then not closed). */
int mllm_tx_tls(mllm_tx_t *t, mllm_tls_t *tls, int fd);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_TLS_H */
