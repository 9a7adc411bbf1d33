/* test_http.c - the request parser: complete, partial, limits, smuggling shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mllm_http.h"
#include "mllm_conn.h"
#include "mllm_transport.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mllm_http_limits_t lim = { 64, 256, 1000 };

static const char *last; /* the buffer parse() parsed: spans resolve against it */

static int parse(const char *s, mllm_http_head_t *r)
{
    last = s;
    return mllm_http_parse_head(s, strlen(s), &lim, r);
}

static mllm_str_t S(mllm_span_t sp)
{
    return mllm_span_str(last, sp);
}

static void test_complete(void **st)
{
    (void)st;
    mllm_http_head_t r;
    const char *s = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\n"
                    "Content-Length: 12\r\nX-Thing:  spaced value \r\n\r\nbody";
    assert_int_equal(parse(s, &r), 1);
    assert_true(mllm_str_ieq(S(r.method), "POST"));
    assert_true(mllm_str_ieq(S(r.path), "/v1/chat/completions"));
    assert_int_equal(r.target.n, strlen("/v1/chat/completions?x=1"));
    assert_int_equal(r.content_length, 12);
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(r.head_len, strlen(s) - 4);
    mllm_str_t v = mllm_http_header(&r, s, "x-thing");
    assert_int_equal(v.n, strlen("spaced value"));
    assert_memory_equal(v.p, "spaced value", v.n);
    assert_null(mllm_http_header(&r, s, "absent").p);
}

/* Spans stay right when the buffer moves after parsing (the body is read into the same
 * buffer and realloc may move it): the head of the dangling-pointer bug. */
static void test_spans_survive_a_moved_buffer(void **st)
{
    (void)st;
    const char *s = "POST /v1/messages HTTP/1.1\r\nX-Mock-Inject: 429\r\n"
                    "Content-Length: 2\r\n\r\n{}";
    size_t n = strlen(s);
    char *a = malloc(n);
    memcpy(a, s, n);
    mllm_http_head_t r;
    assert_int_equal(mllm_http_parse_head(a, n, &lim, &r), 1);
    char *b = malloc(1 << 20); /* elsewhere */
    memcpy(b, a, n);
    memset(a, 'x', n);
    free(a);
    assert_true(mllm_str_ieq(mllm_span_str(b, r.path), "/v1/messages"));
    assert_true(mllm_str_ieq(mllm_http_header(&r, b, "x-mock-inject"), "429"));
    free(b);
}

static void test_partial_every_prefix(void **st)
{
    (void)st;
    const char *s = "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    mllm_http_head_t r;
    for (size_t n = 0; n < strlen(s); n++)
        assert_int_equal(mllm_http_parse_head(s, n, &lim, &r), 0);
    assert_int_equal(mllm_http_parse_head(s, strlen(s), &lim, &r), 1);
    assert_int_equal(r.keep_alive, 0);
    assert_int_equal(r.content_length, -1);
}

static void test_bare_lf_and_http10(void **st)
{
    (void)st;
    mllm_http_head_t r;
    assert_int_equal(parse("GET / HTTP/1.0\nHost: a\n\n", &r), 1);
    assert_int_equal(r.minor, 0);
    assert_int_equal(r.keep_alive, 0);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), 1);
    assert_int_equal(r.keep_alive, 1);
}

static void test_errors(void **st)
{
    (void)st;
    mllm_http_head_t r;
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &r), -505);
    assert_int_equal(parse("GET /  HTTP/1.1\r\n\r\n", &r), -400);
    assert_int_equal(parse("G(T / HTTP/1.1\r\n\r\n", &r), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &r), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", &r), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &r), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &r), -400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", &r), -413);
    assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &r), -501);
    assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", &r), -400);
}

static void test_limits_on_partial_input(void **st)
{
    (void)st;
    mllm_http_head_t r;
    char line[200];
    memset(line, 'a', sizeof line);
    memcpy(line, "GET /", 5);
    /* no LF yet, already past the request-line limit */
    assert_int_equal(mllm_http_parse_head(line, sizeof line, &lim, &r), -414);
    char head[400];
    int n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nX: ");
    memset(head + n, 'b', sizeof head - (size_t)n);
    assert_int_equal(mllm_http_parse_head(head, sizeof head, &lim, &r), -431);
    /* too many headers */
    char many[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < MLLM_HTTP_MAX_HEADERS + 1; i++)
        strcat(many, "A:b\r\n");
    strcat(many, "\r\n");
    mllm_http_limits_t big = { 64, 4096, 1000 };
    assert_int_equal(mllm_http_parse_head(many, strlen(many), &big, &r), -431);
}

/* Feeds enc to the incremental decoder `step` bytes at a time, compacting between
 * calls as the server does; returns the final result, the body in out[0..*body). */
static int dechunk_steps(const char *enc, size_t len, size_t step, size_t max_body,
                         size_t max_framing, char *out, size_t *body, size_t *used)
{
    static char buf[1 << 16];
    mllm_dechunk_t d = { 0 };
    size_t have = 0, fed = 0, dropped = 0;
    int rc = 0;
    while (rc == 0) {
        if (fed == len)
            return 0; /* needs more than there is */
        size_t k = len - fed < step ? len - fed : step;
        memcpy(buf + have, enc + fed, k);
        have += k;
        fed += k;
        size_t before = d.pos;
        rc = mllm_http_dechunk(&d, buf, have, max_body, max_framing);
        assert_true(d.pos >= before && d.out <= d.pos && d.pos <= have);
        if (rc == 0) {
            size_t n = mllm_dechunk_compact(&d, buf, have);
            dropped += have - n;
            have = n;
        }
    }
    memcpy(out, buf, d.out);
    *body = d.out;
    *used = d.pos + dropped; /* in the encoded input's terms */
    return rc;
}

static void test_dechunk(void **st)
{
    (void)st;
    char out[4096];
    size_t body, used;
    const char *enc = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    size_t len = strlen(enc);
    /* every way of splitting it gives the same body and stops before NEXT */
    for (size_t step = 1; step <= len; step++) {
        assert_int_equal(dechunk_steps(enc, len, step, 1000, 1000, out, &body, &used), 1);
        assert_int_equal(body, 12);
        assert_memory_equal(out, "hello, world", 12);
        assert_int_equal(used, len - 4);
    }
    /* a prefix is "more, please" */
    for (size_t n = 0; n < len - 4; n++)
        assert_int_equal(dechunk_steps(enc, n, 3, 1000, 1000, out, &body, &used), 0);
    /* the body limit counts decoded bytes, refused once a size line shows it */
    assert_int_equal(dechunk_steps(enc, len, 1, 8, 1000, out, &body, &used), -413);
    assert_int_equal(dechunk_steps("fffff", 5, 1, 1000, 1000, out, &body, &used), -413);
    assert_int_equal(dechunk_steps("zz\r\n", 4, 1, 1000, 1000, out, &body, &used), -400);
    const char *bad = "3\r\nabcX\r\n0\r\n\r\n";
    assert_int_equal(dechunk_steps(bad, strlen(bad), 2, 1000, 1000, out, &body, &used), -400);
    /* bare LFs, CR-less trailers, extensions with whitespace */
    const char *lf = "2 ;a=b\nhi\n1\n!\n0\nX: y\n\n";
    assert_int_equal(dechunk_steps(lf, strlen(lf), 1, 1000, 1000, out, &body, &used), 1);
    assert_int_equal(body, 3);
    assert_memory_equal(out, "hi!", 3);

    /* 1,000 one-byte chunks: 5 bytes of framing per body byte. A body at the body limit
     * is accepted whatever its framing, up to the framing bound. */
    static char big[8192];
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += (size_t)sprintf(big + n, "1\r\n%c\r\n", 'a' + i % 26);
    n += (size_t)sprintf(big + n, "0\r\n\r\n");
    for (size_t step = 1; step < 5000; step = step * 3 + 1) {
        assert_int_equal(dechunk_steps(big, n, step, 1000, 8 * 1000, out, &body, &used), 1);
        assert_int_equal(body, 1000);
        assert_int_equal(out[999], 'a' + 999 % 26);
    }
    assert_int_equal(dechunk_steps(big, n, 64, 1000, 4000, out, &body, &used), -413);
    assert_int_equal(dechunk_steps(big, n, 64, 999, 8000, out, &body, &used), -413);
}


/* mllm_conn_emit_chunk writes the chunk's size header in front of the data, then
 * reserves 3 bytes for the trailing CRLF: a buffer with fewer than 3 bytes free moves
 * there, and the header's pointer must follow it (it pointed into the freed block:
 * ASan's use-after-free, garbage on the wire in the plain build when realloc moves). */
static void test_emit_chunk_when_the_crlf_moves_the_buffer(void **st)
{
    (void)st;
    static mllm_config_t cfg;
    mllm_config_defaults(&cfg);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mllm_conn_t c;
    memset(&c, 0, sizeof c);
    mllm_tx_plain(&c.tx, sv[0]);
    mllm_conn_init(&c, &cfg, 1);
    enum { BODY = 300 };
    mllm_buf_t b = { 0 };
    b.cap = MLLM_CHUNK_HEADROOM + BODY + 2; /* room for "\r\n", not for the NUL */
    b.p = malloc(b.cap);
    assert_non_null(b.p);
    memset(b.p, '#', MLLM_CHUNK_HEADROOM);
    for (int i = 0; i < BODY; i++)
        b.p[MLLM_CHUNK_HEADROOM + i] = (char)('a' + i % 26);
    b.len = MLLM_CHUNK_HEADROOM + BODY;
    char *before = b.p;
    assert_int_equal(mllm_conn_emit_chunk(&c, &b, 1), 0);
    char got[1024];
    ssize_t n = read(sv[1], got, sizeof got);
    char want[1024];
    int h = snprintf(want, sizeof want, "%x\r\n", BODY);
    memcpy(want + h, b.p + MLLM_CHUNK_HEADROOM, BODY);
    memcpy(want + h + BODY, "\r\n", 2);
    assert_int_equal(n, h + BODY + 2);
    assert_memory_equal(got, want, (size_t)n);
    (void)before; /* whether realloc moved it is the allocator's choice (ASan: always) */
    mllm_buf_free(&b);
    close(sv[0]);
    close(sv[1]);
}

/* A stream whose events were all queued within --max-pending is not dropped for the
 * body's 5-byte end ("0\r\n\r\n"): a backlog within 5 bytes of the bound made that last
 * emit go past it, the client was counted as dropped and, after a complete answer,
 * was told it had read too slowly (an error event after message_stop, which the
 * Anthropic SDK throws). The end does not grow the backlog a slow reader builds; it
 * goes out as every byte before it did. */
static void test_body_end_not_an_overrun(void **st)
{
    (void)st;
    static mllm_config_t cfg;
    mllm_config_defaults(&cfg);
    cfg.max_pending = 4096;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int sz = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    mllm_conn_t c;
    memset(&c, 0, sizeof c);
    mllm_tx_plain(&c.tx, sv[0]);
    mllm_conn_init(&c, &cfg, 1);
    /* the reader has read nothing: the socket is full, and 2 bytes under the bound are
     * pending behind it (queued whole: nothing was pending before) */
    static char ev[4096];
    memset(ev, 'x', sizeof ev);
    while (write(sv[0], ev, sizeof ev) > 0)
        ;
    assert_int_equal(mllm_conn_emit(&c, ev, cfg.max_pending - 2), 0);
    assert_int_equal(c.out.len, cfg.max_pending - 2);
    /* then it reads what the kernel holds (mock-llm's backlog stays) */
    char sink[65536];
    ssize_t r;
    while ((r = recv(sv[1], sink, sizeof sink, MSG_DONTWAIT)) > 0)
        ;
    assert_int_equal(mllm_conn_end_body(&c, 1), 0);
    assert_int_equal(c.dead, 0);
    /* the client gets the rest and the end */
    char tail[5] = { 0 };
    size_t rest = 0;
    while ((r = recv(sv[1], sink, sizeof sink, MSG_DONTWAIT)) > 0) {
        rest += (size_t)r;
        if (r >= 5)
            memcpy(tail, sink + r - 5, 5);
    }
    assert_int_equal(rest, cfg.max_pending - 2 + 5);
    assert_memory_equal(tail, "0\r\n\r\n", 5);
    mllm_conn_close(&c);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_emit_chunk_when_the_crlf_moves_the_buffer),
        cmocka_unit_test(test_body_end_not_an_overrun),
        cmocka_unit_test(test_spans_survive_a_moved_buffer),
        cmocka_unit_test(test_partial_every_prefix),
        cmocka_unit_test(test_bare_lf_and_http10),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits_on_partial_input),
        cmocka_unit_test(test_dechunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
