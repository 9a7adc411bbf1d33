/*
 * test_tls.c - mock-llm --tls over loopback with an OpenSSL client that verifies the
 * server's own certificate: long prompts (64 KiB, just under the 1 MiB body limit),
 * a readable 413 over TLS, a reader that stalls and then drains (OpenSSL's write retry
 * through the pending buffer), clients that vanish mid-stream, clients that do not
 * speak TLS, the certificate flags, a KeyUpdate split across two records (OpenSSL
 * wants a read before it writes) and one OpenSSL's client requests mid-stream. Registered against mock-llm and, when the
 * sanitizer tests are on, against a mock-llm built with ASan+UBSan.
 *   mockllm_test_tls PATH/TO/mock-llm
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *server_path;
static char cert_path[64];
static pid_t srv_pid;
static int srv_port;
static SSL_CTX *cctx; /* the client: trusts only the server's written certificate */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts the server with extra flags; returns its port, or -exit_status when it exited
 * before printing its listening line (with err: its stderr captured there). */
static int start(const char *const *extra, pid_t *pid, char *err, size_t errlen)
{
    int out[2], er[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(er), 0);
    const char *argv[32] = { server_path, "--listen", "127.0.0.1:0" };
    int n = 3;
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    *pid = fork();
    assert_true(*pid >= 0);
    if (*pid == 0) {
        /* a failing test longjmps past its stop: the server must not outlive us */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        /* A server expected to run keeps the test's stderr (an ASan report must be
         * seen); one expected to refuse its flags tells why through the pipe. */
        if (err)
            dup2(er[1], 2);
        close(out[0]);
        close(er[0]);
        execv(server_path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(er[1]);
    char line[128] = { 0 };
    size_t got = 0;
    while (got < sizeof line - 1) {
        struct pollfd pf = { out[0], POLLIN, 0 };
        if (poll(&pf, 1, 10000) != 1 || read(out[0], line + got, 1) != 1)
            break;
        if (line[got++] == '\n')
            break;
    }
    close(out[0]);
    int port = 0;
    if (sscanf(line, "mock-llm listening on 127.0.0.1:%d\n", &port) == 1) {
        close(er[0]);
        return port;
    }
    char sink[512];
    if (!err) {
        err = sink;
        errlen = sizeof sink;
    }
    ssize_t k = read(er[0], err, errlen - 1);
    err[k > 0 ? k : 0] = 0;
    close(er[0]);
    int st = 0;
    waitpid(*pid, &st, 0);
    return WIFEXITED(st) ? -WEXITSTATUS(st) : -128;
}

static int tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* A verified TLS connection to the server on port (its certificate, its IP SAN). */
/* The call that returned r on s failed only because a stop and SIGCONT interrupted a
 * socket read or write: tcp() sets SO_RCVTIMEO, and Linux then fails an interrupted
 * read with EINTR even when no handler ran (signal(7)); OpenSSL reports it as a want
 * to retry. A process freezer (scripts/stopcont.py, a quiet benchmark window) does that
 * to the test; the call is simply made again. A timeout (EAGAIN) is not retried. */
static int tls_interrupted(SSL *s, int r)
{
    int e = errno, k = SSL_get_error(s, r);
    return e == EINTR && (k == SSL_ERROR_WANT_READ || k == SSL_ERROR_WANT_WRITE);
}

static SSL *tls_open_to(SSL_CTX *ctx, int port, int *fdp)
{
    int fd = tcp(port);
    SSL *s = SSL_new(ctx);
    assert_non_null(s);
    SSL_set_fd(s, fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), "127.0.0.1");
    int r, tries = 0;
    while ((r = SSL_connect(s)) != 1 && tls_interrupted(s, r) && ++tries < 1000) {}
    if (r != 1) {
        char e[256];
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        fail_msg("TLS handshake: %s (verify: %s)", e,
                 X509_verify_cert_error_string(SSL_get_verify_result(s)));
    }
    assert_int_equal(SSL_get_verify_result(s), X509_V_OK);
    *fdp = fd;
    return s;
}

static SSL *tls_open(int *fdp)
{
    return tls_open_to(cctx, srv_port, fdp);
}

static SSL_CTX *client_ctx(const char *ca)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    assert_non_null(c);
    assert_int_equal(SSL_CTX_load_verify_locations(c, ca, NULL), 1);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    return c;
}

static void tls_send_all(SSL *s, const char *p, size_t n)
{
    while (n) {
        int w = SSL_write(s, p, n > (1 << 20) ? 1 << 20 : (int)n);
        if (w <= 0 && tls_interrupted(s, w))
            continue;
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Reads until the end of the response (Content-Length reached, or the last chunk
 * "0\r\n\r\n"), EOF, or 20 s. */
static char *tls_read_response(SSL *s, size_t *len)
{
    size_t cap = 1 << 16, n = 0, head = 0;
    long clen = -1;
    char *b = malloc(cap);
    double end = now_s() + 20;
    while (now_s() < end) {
        if (n + 4096 > cap)
            b = realloc(b, cap *= 2);
        int r = SSL_read(s, b + n, (int)(cap - n - 1));
        if (r <= 0 && tls_interrupted(s, r))
            continue;
        if (r <= 0) {
            if (getenv("MLLM_TLS_TEST_DEBUG"))
                fprintf(stderr, "SSL_read: %d, error %d, errno %d after %zu bytes\n", r,
                        SSL_get_error(s, r), errno, n);
            break;
        }
        n += (size_t)r;
        b[n] = 0;
        if (!head) {
            char *e = strstr(b, "\r\n\r\n");
            if (e) {
                head = (size_t)(e + 4 - b);
                *e = 0;
                char *cl = strcasestr(b, "\r\nContent-Length:");
                clen = cl ? atol(cl + 17) : -1;
                *e = '\r';
            }
        }
        if (head && clen >= 0 && n - head >= (size_t)clen)
            break;
        if (head && clen < 0 && n >= 5 && !memcmp(b + n - 5, "0\r\n\r\n", 5))
            break;
    }
    b[n] = 0;
    *len = n;
    return b;
}

/* A chat request whose user message has `prompt` bytes. */
static char *chat_request(size_t prompt, int stream, int max_tokens, size_t *len)
{
    size_t cap = prompt + 1024;
    char *body = malloc(cap);
    int h = snprintf(body, cap, "{\"model\":\"mock\",\"stream\":%s,\"max_tokens\":%d,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"",
                     stream ? "true" : "false", max_tokens);
    for (size_t i = 0; i < prompt; i++)
        body[h + i] = "abcdefgh "[i % 9];
    size_t bl = (size_t)h + prompt;
    bl += (size_t)snprintf(body + bl, cap - bl, "\"}]}");
    char *req = malloc(bl + 256);
    int hl = snprintf(req, 256, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", bl);
    memcpy(req + hl, body, bl);
    free(body);
    *len = (size_t)hl + bl;
    return req;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2;
}

static long metric_at(SSL_CTX *ctx, int port, const char *name)
{
    int fd;
    SSL *s = tls_open_to(ctx, port, &fd);
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    tls_send_all(s, req, strlen(req));
    size_t n;
    char *b = tls_read_response(s, &n);
    SSL_free(s);
    close(fd);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    char *p = strstr(b, key);
    long v = p ? atol(p + strlen(key)) : -1;
    free(b);
    return v;
}

static long metric(const char *name)
{
    return metric_at(cctx, srv_port, name);
}

static int setup(void **state)
{
    (void)state;
    snprintf(cert_path, sizeof cert_path, "/tmp/mllm-tls-test-%d.pem", (int)getpid());
    const char *args[] = { "--profile", "fixed", "--time-scale", "0.02", "--output-tokens", "1500", "--tls",
                           "--tls-cert-out", cert_path, "--max-pending", "1048576",
                           "--write-timeout", "5", NULL };
    srv_port = start(args, &srv_pid, NULL, 0);
    if (srv_port <= 0)
        fail_msg("mock-llm --tls did not start (%d)", srv_port);
    cctx = client_ctx(cert_path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int st = 0;
    kill(srv_pid, SIGTERM);
    waitpid(srv_pid, &st, 0);
    SSL_CTX_free(cctx);
    unlink(cert_path);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* and, under ASan, no report */
    return 0;
}

/* Prompts of 1 KiB, 64 KiB and just under the 1 MiB body limit, streamed back over TLS. */
static void t_long_prompts(void **state)
{
    (void)state;
    size_t sizes[] = { 1024, 64 * 1024, (1 << 20) - 200 };
    for (size_t i = 0; i < 3; i++) {
        int fd;
        SSL *s = tls_open(&fd);
        size_t rl, n;
        char *req = chat_request(sizes[i], 1, 6, &rl);
        tls_send_all(s, req, rl);
        char *resp = tls_read_response(s, &n);
        if (strncmp(resp, "HTTP/1.1 200", 12) != 0)
            fail_msg("prompt of %zu bytes: %.200s", sizes[i], resp);
        assert_int_equal(count(resp, "\"content\":\"") - 1, 6); /* role chunk has "" */
        assert_non_null(strstr(resp, "data: [DONE]"));
        assert_true(n >= 5 && !memcmp(resp + n - 5, "0\r\n\r\n", 5));
        free(req);
        free(resp);
        SSL_shutdown(s);
        SSL_free(s);
        close(fd);
    }
}

/* Over the limit: the 413 arrives readable over TLS (answer, then lingering close). */
static void t_413_over_tls(void **state)
{
    (void)state;
    int fd;
    SSL *s = tls_open(&fd);
    size_t rl, n;
    char *req = chat_request((1 << 20) + 4096, 1, 6, &rl);
    tls_send_all(s, req, rl);
    char *resp = tls_read_response(s, &n);
    if (strncmp(resp, "HTTP/1.1 413", 12) != 0)
        fail_msg("oversized body: %.200s", resp);
    free(req);
    free(resp);
    SSL_free(s);
    close(fd);
}

/* Ends a test with a server of its own: frees the client's context; the server must
 * stop cleanly on SIGTERM. */
static void server_stop(SSL_CTX *ctx, pid_t pid)
{
    SSL_CTX_free(ctx);
    int st = 0;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A reader that stalls while a long instant stream piles up beyond what the kernel
 * buffers (the server's pending buffer fills and OpenSSL's WANT_WRITE retries go
 * through it, the buffer moving as it grows), then drains: every byte arrives, in
 * order, as valid SSE. */
static void t_stalled_reader_gets_everything(void **state)
{
    (void)state;
    char cert2[64];
    snprintf(cert2, sizeof cert2, "/tmp/mllm-tls-test-%d-2.pem", (int)getpid());
    const char *args[] = { "--profile", "fixed", "--time-scale", "0", "--output-tokens",
                           "40000", "--tls", "--tls-cert-out", cert2, "--max-pending",
                           "67108864", NULL };
    pid_t pid;
    int port = start(args, &pid, NULL, 0);
    if (port <= 0)
        fail_msg("mock-llm did not start (%d)", port);
    SSL_CTX *ctx = client_ctx(cert2);
    unlink(cert2);
    int fd;
    SSL *s = tls_open_to(ctx, port, &fd);
    const char *body = "{\"model\":\"mock\",\"stream\":true,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}";
    char req[512];
    int rl = snprintf(req, sizeof req, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    tls_send_all(s, req, (size_t)rl);
    usleep(1000 * 1000); /* ~10 MB due at once; the kernel holds a few */
    size_t n;
    char *resp = tls_read_response(s, &n);
    if (n < 5 || memcmp(resp + n - 5, "0\r\n\r\n", 5) != 0)
        fail_msg("stalled reader: %zu bytes, %d events, ends with '%s'", n,
                 count(resp, "\"content\":\""), n > 80 ? resp + n - 80 : resp);
    assert_int_equal(count(resp, "\"content\":\"") - 1, 40000);
    assert_int_equal(count(resp, "data: [DONE]"), 1);
    free(resp);
    SSL_free(s);
    close(fd);
    /* the pending path ran */
    assert_true(metric_at(ctx, port, "mllm_events_backlogged_total") > 0);
    server_stop(ctx, pid);
}

/* Clients that vanish mid-stream, with and without close_notify, leave nothing behind. */
static void t_vanishing_clients(void **state)
{
    (void)state;
    int base = open_fds(srv_pid);
    for (int i = 0; i < 20; i++) {
        int fd;
        SSL *s = tls_open(&fd);
        size_t rl;
        char *req = chat_request(100, 1, 200, &rl);
        tls_send_all(s, req, rl);
        free(req);
        char b[512];
        int r, tries = 0;
        while ((r = SSL_read(s, b, sizeof b)) <= 0 && tls_interrupted(s, r) && ++tries < 1000) {}
        assert_true(r > 0);
        if (i % 2)
            SSL_shutdown(s);
        if (i % 3 == 0) {
            struct linger lg = { 1, 0 }; /* a reset */
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        SSL_free(s);
        close(fd);
    }
    double end = now_s() + 5;
    while (now_s() < end && open_fds(srv_pid) > base)
        usleep(20000);
    assert_int_equal(open_fds(srv_pid), base);
    assert_int_equal(metric("mllm_streams_active"), 0);
}

/* Garbage, plain HTTP and a half handshake: each closed, the server serves on. */
static void t_not_tls(void **state)
{
    (void)state;
    long before = metric("mllm_tls_handshake_failures_total");
    const char *plain = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    char garbage[3000];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(i * 131 + 7);
    const char *inputs[] = { garbage, plain };
    size_t lens[] = { sizeof garbage, strlen(plain) };
    for (int i = 0; i < 2; i++) {
        int fd = tcp(srv_port);
        ssize_t w = send(fd, inputs[i], lens[i], MSG_NOSIGNAL);
        assert_true(w > 0);
        char b[4096];
        ssize_t r;
        double t0 = now_s();
        /* a TLS alert at most, then the close (EINTR: a stop under tcp()'s SO_RCVTIMEO) */
        while ((r = read(fd, b, sizeof b)) > 0 || (r < 0 && errno == EINTR)) {}
        assert_true(now_s() - t0 < 5);
        close(fd);
    }
    assert_true(metric("mllm_tls_handshake_failures_total") >= before + 2);
    /* and a real client right after */
    int fd;
    SSL *s = tls_open(&fd);
    size_t rl, n;
    char *req = chat_request(10, 0, 3, &rl);
    tls_send_all(s, req, rl);
    char *resp = tls_read_response(s, &n);
    assert_int_equal(strncmp(resp, "HTTP/1.1 200", 12), 0);
    free(req);
    free(resp);
    SSL_free(s);
    close(fd);
}

/* A certificate and key given on the command line, and bad ones refused with exit 2. */
static void t_cert_flags(void **state)
{
    (void)state;
    char err[512];
    pid_t pid;
    const char *missing[] = { "--tls-cert", "/nonexistent/cert.pem", "--tls-key",
                              "/nonexistent/key.pem", NULL };
    assert_int_equal(start(missing, &pid, err, sizeof err), -2);
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    const char *alone[] = { "--tls-cert", cert_path, NULL };
    assert_int_equal(start(alone, &pid, err, sizeof err), -2);
    /* the written certificate has no key beside it: a key that does not match fails */
    const char *nokey[] = { "--tls-cert", cert_path, "--tls-key", cert_path, NULL };
    assert_int_equal(start(nokey, &pid, err, sizeof err), -2);
    const char *outonly[] = { "--tls-cert-out", "/tmp/x.pem", NULL };
    assert_int_equal(start(outonly, &pid, err, sizeof err), -2);

    /* A pair of our own (made here with OpenSSL) is served and verifies. */
    char kpath[64], cpath[64];
    snprintf(kpath, sizeof kpath, "/tmp/mllm-tls-test-%d.key", (int)getpid());
    snprintf(cpath, sizeof cpath, "/tmp/mllm-tls-test-%d.crt", (int)getpid());
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"given", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(kpath, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    f = fopen(cpath, "w");
    PEM_write_X509(f, x);
    fclose(f);
    const char *given[] = { "--tls-cert", cpath, "--tls-key", kpath, NULL };
    int port = start(given, &pid, err, sizeof err);
    if (port <= 0)
        fail_msg("mock-llm with a given certificate: %s", err);
    SSL_CTX *c2 = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(c2, cpath, NULL);
    SSL_CTX_set_verify(c2, SSL_VERIFY_PEER, NULL);
    int fd = tcp(port);
    SSL *s = SSL_new(c2);
    SSL_set_fd(s, fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), "127.0.0.1");
    assert_int_equal(SSL_connect(s), 1);
    X509 *peer = SSL_get1_peer_certificate(s);
    assert_int_equal(X509_cmp(peer, x), 0);
    X509_free(peer);
    SSL_free(s);
    close(fd);
    SSL_CTX_free(c2);
    X509_free(x);
    EVP_PKEY_free(k);
    unlink(kpath);
    unlink(cpath);
    int st = 0;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- a KeyUpdate split across two records, written by the test itself ----
 *
 * TLS 1.3 lets a handshake message span records (RFC 8446 5.1; a KeyUpdate only has to
 * end at a record boundary). When the server has read a post-handshake message's header
 * and not yet its body, OpenSSL is back "in init": SSL_write must read the rest first
 * and returns SSL_ERROR_WANT_READ. The stream's wait for its pending output then has to
 * wait for readability. It waited for writability, which a socket nobody fills always
 * has: the stream spun through SSL_write until the body came (before the fix: ~10^5
 * write calls and all of a CPU for the 300 ms the body was held back). OpenSSL's own
 * client never splits a KeyUpdate, so the client writes its records itself from the
 * traffic secret the key log gives (TLS_AES_128_GCM_SHA256). */
static unsigned char ku_secret[32];
static int ku_have_secret;

static void ku_keylog(const SSL *ssl, const char *line)
{
    (void)ssl;
    const char *tag = "CLIENT_TRAFFIC_SECRET_0 ";
    if (strncmp(line, tag, strlen(tag)) != 0)
        return;
    const char *hex = strchr(line + strlen(tag), ' ');
    if (!hex || strlen(hex + 1) < 64)
        return;
    for (int i = 0; i < 32; i++)
        sscanf(hex + 1 + 2 * i, "%2hhx", &ku_secret[i]);
    ku_have_secret = 1;
}

/* HKDF-Expand-Label(secret, label, "", n) for SHA-256 and n <= 32: one HMAC block. */
static void ku_expand_label(const unsigned char *secret, const char *label, unsigned char *out,
                            size_t n)
{
    unsigned char info[64];
    size_t ll = 6 + strlen(label), k = 0;
    info[k++] = 0;
    info[k++] = (unsigned char)n;
    info[k++] = (unsigned char)ll;
    memcpy(info + k, "tls13 ", 6);
    memcpy(info + k + 6, label, strlen(label));
    k += ll;
    info[k++] = 0; /* no context */
    info[k++] = 1; /* T(1) */
    unsigned char t[EVP_MAX_MD_SIZE];
    unsigned int tl = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, 32, info, k, t, &tl));
    memcpy(out, t, n);
}

typedef struct ku_writer {
    int           fd;
    unsigned char key[16], iv[12];
    uint64_t      seq;
} ku_writer_t;

/* Writes one TLS 1.3 record: data of inner content type `type`, AES-128-GCM. */
static void ku_record(ku_writer_t *w, unsigned char type, const void *data, size_t n)
{
    unsigned char inner[1024], rec[1100], nonce[12];
    assert_true(n + 1 <= sizeof inner);
    memcpy(inner, data, n);
    inner[n] = type;
    size_t len = n + 1 + 16;
    rec[0] = 23; /* application_data, as every protected record says */
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (unsigned char)(len >> 8);
    rec[4] = (unsigned char)len;
    memcpy(nonce, w->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (unsigned char)(w->seq >> (8 * i));
    w->seq++;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ol = 0;
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, w->key, nonce), 1);
    assert_int_equal(EVP_EncryptUpdate(c, NULL, &ol, rec, 5), 1);
    assert_int_equal(EVP_EncryptUpdate(c, rec + 5, &ol, inner, (int)(n + 1)), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, rec + 5 + ol, &ol), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, rec + 5 + n + 1), 1);
    EVP_CIPHER_CTX_free(c);
    assert_int_equal(write(w->fd, rec, 5 + len), (ssize_t)(5 + len));
}

static long cpu_ticks(pid_t pid)
{
    char path[64], b[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    char *p = strrchr(b, ')'); /* the name may hold spaces */
    assert_non_null(p);
    long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut,
                            &st), 2);
    return ut + st;
}

/* The KeyUpdate tests' request: a 20-token chat stream; returns its length. */
static int ku_request(char *req, size_t cap)
{
    const char *body = "{\"model\":\"mock\",\"stream\":true,\"max_tokens\":20,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}";
    return snprintf(req, cap, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
}

/* The KeyUpdate tests' server: TLS 1.3 only, a 400 ms TTFT (over 250 ms: the server
 * reads while it waits, so it meets what the client sends then) and 20 events 20 ms
 * apart; its certificate file is read into the client's context and removed. */
static SSL_CTX *ku_server(int tag, pid_t *pid, int *port)
{
    char cert[64];
    snprintf(cert, sizeof cert, "/tmp/mllm-tls-test-%d-%d.pem", (int)getpid(), tag);
    const char *args[] = { "--profile", "fixed", "--ttft-ms", "400", "--tps", "50", "--tls",
                           "--tls-cert-out", cert, NULL };
    *port = start(args, pid, NULL, 0);
    if (*port <= 0)
        fail_msg("mock-llm did not start (%d)", *port);
    SSL_CTX *ctx = client_ctx(cert);
    unlink(cert);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    return ctx;
}

static void t_keyupdate_split(void **state)
{
    (void)state;
    pid_t pid;
    int port;
    SSL_CTX *ctx = ku_server(3, &pid, &port);
    assert_int_equal(SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256"), 1);
    SSL_CTX_set_keylog_callback(ctx, ku_keylog);
    ku_have_secret = 0;
    int fd;
    SSL *s = tls_open_to(ctx, port, &fd);
    assert_true(ku_have_secret);
    ku_writer_t w = { .fd = fd };
    ku_expand_label(ku_secret, "key", w.key, 16);
    ku_expand_label(ku_secret, "iv", w.iv, 12);
    long wr0 = metric_at(ctx, port, "mllm_tls_write_want_read_total");
    assert_true(wr0 >= 0);
    char req[512];
    int rl = ku_request(req, sizeof req);
    ku_record(&w, 23, req, (size_t)rl); /* the request, as application data */
    /* KeyUpdate (24), length 1: the header in one record, the body in the next. The
     * header goes right behind the request, so it already waits in the socket when the
     * server starts watching the TTFT and is read then. The body is held back until the
     * server says (mllm_tls_write_want_read_total) that the first event's SSL_write found
     * the message half read - the precondition, waited for rather than left to timing -
     * and then for 300 ms more, during which the stream has only the socket to wait on. */
    static const unsigned char ku_head[4] = { 24, 0, 0, 1 }, ku_body[1] = { 0 };
    ku_record(&w, 22, ku_head, sizeof ku_head);
    long want_read = 0;
    for (int i = 0; i < 200 && want_read < 1; i++) { /* 10 s */
        usleep(50 * 1000);
        want_read = metric_at(ctx, port, "mllm_tls_write_want_read_total") - wr0;
    }
    if (want_read < 1)
        fail_msg("split KeyUpdate: no SSL_write wanted a read in 10 s (the precondition)");
    long writes0 = metric_at(ctx, port, "mllm_writes_total");
    long cpu0 = cpu_ticks(pid);
    usleep(300 * 1000);
    ku_record(&w, 22, ku_body, sizeof ku_body); /* update_not_requested */
    size_t n;
    char *resp = tls_read_response(s, &n);
    long cpu = cpu_ticks(pid) - cpu0;
    long writes = metric_at(ctx, port, "mllm_writes_total") - writes0;
    long want_read_at_go = want_read;
    want_read = metric_at(ctx, port, "mllm_tls_write_want_read_total") - wr0;
    if (getenv("MLLM_TLS_TEST_DEBUG"))
        fprintf(stderr, "keyupdate split: %ld write calls and %ld CPU ticks in the last 300 ms, "
                "%zu bytes; writes that wanted a read: %ld seen first, %ld in all\n", writes,
                cpu, n, want_read_at_go, want_read);
    if (n < 5 || memcmp(resp + n - 5, "0\r\n\r\n", 5) != 0)
        fail_msg("split KeyUpdate: %zu bytes, ends with '%s'", n, n > 80 ? resp + n - 80 : resp);
    assert_int_equal(count(resp, "\"content\":\"") - 1, 20);
    assert_int_equal(count(resp, "data: [DONE]"), 1);
    free(resp);
    /* Waiting for the socket, the stream tries SSL_write once per event that falls due
     * while the body is held back (at most 20); the spin tried once per turn of the
     * scheduler (~10^5). The writes and CPU ticks of the last 300 ms are only reported:
     * the spin need not last into them (the old code spun 0 of them in some runs, after
     * ~250,000 calls before). */
    if (want_read > 100)
        fail_msg("split KeyUpdate: %ld writes wanted a read (%ld write calls, %ld CPU ticks "
                 "in the last 300 ms) for a 20-event stream", want_read, writes, cpu);
    SSL_free(s); /* no close_notify: our write key is the test's now */
    close(fd);
    server_stop(ctx, pid);
}

/* The ordinary KeyUpdate: OpenSSL's client asks for one (update_requested) during a
 * watched TTFT, so the server answers with its own from inside its read; the stream
 * and a second request on the connection, under the new keys both ways, complete
 * without a spin. */
static void t_keyupdate_requested(void **state)
{
    (void)state;
    pid_t pid;
    int port;
    SSL_CTX *ctx = ku_server(4, &pid, &port);
    int fd;
    SSL *s = tls_open_to(ctx, port, &fd);
    long writes0 = metric_at(ctx, port, "mllm_writes_total");
    long wr0 = metric_at(ctx, port, "mllm_tls_write_want_read_total");
    assert_true(wr0 >= 0);
    char req[512];
    int rl = ku_request(req, sizeof req);
    for (int round = 0; round < 2; round++) {
        tls_send_all(s, req, (size_t)rl);
        if (round == 0) {
            usleep(100 * 1000);
            assert_int_equal(SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED), 1);
            assert_int_equal(SSL_do_handshake(s), 1); /* sends it */
        }
        size_t n;
        char *resp = tls_read_response(s, &n);
        if (n < 5 || memcmp(resp + n - 5, "0\r\n\r\n", 5) != 0)
            fail_msg("KeyUpdate, request %d: %zu bytes, ends with '%s'", round + 1, n,
                     n > 80 ? resp + n - 80 : resp);
        assert_int_equal(count(resp, "\"content\":\"") - 1, 20);
        free(resp);
    }
    long writes = metric_at(ctx, port, "mllm_writes_total") - writes0;
    if (getenv("MLLM_TLS_TEST_DEBUG"))
        fprintf(stderr, "keyupdate requested: %ld write calls\n", writes);
    if (writes > 300)
        fail_msg("KeyUpdate: %ld write calls for two 20-event streams", writes);
    SSL_shutdown(s);
    SSL_free(s);
    close(fd);
    server_stop(ctx, pid);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/mock-llm\n", argv[0]);
        return 2;
    }
    server_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_long_prompts),
        cmocka_unit_test(t_413_over_tls),
        cmocka_unit_test(t_stalled_reader_gets_everything),
        cmocka_unit_test(t_vanishing_clients),
        cmocka_unit_test(t_not_tls),
        cmocka_unit_test(t_cert_flags),
        cmocka_unit_test(t_keyupdate_split),
        cmocka_unit_test(t_keyupdate_requested),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
