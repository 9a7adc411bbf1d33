/* test_sse.c - the SSE parser, the HTTP response decoder and the chat-chunk reader on
 * split, CR-only, CRLF, commented and oversized input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "wl_sse.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Collects dispatched events as "event|data" lines. */
struct got {
    char   log[4096];
    size_t n;
    int    stop_after;
};

static int collect(const wl_sse_event_t *ev, void *arg)
{
    struct got *g = arg;
    size_t l = strlen(g->log);
    snprintf(g->log + l, sizeof g->log - l, "%.*s|%.*s;", (int)ev->event_len, ev->event,
             (int)ev->data_len, ev->data);
    g->n++;
    return g->stop_after && (int)g->n >= g->stop_after;
}

/* Feeds text in pieces of `step` bytes (0 = all at once). */
static int feed(wl_sse_t *p, const char *text, size_t step, struct got *g)
{
    size_t n = strlen(text);
    if (!step)
        step = n;
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        int r = wl_sse_feed(p, text + i, k, collect, g);
        if (r)
            return r;
    }
    return 0;
}

static const char *k_stream =
    ": comment first\r\n"
    "data: one\r\n\r\n"
    "event: delta\n"
    "data: two\n"
    "data:three\n\n"
    "data\r"          /* field without colon: empty data line */
    "\r"
    "id: 7\r\n"
    "retry: 100\n"
    "data:  lead\r\r" /* only one leading space is dropped; CR-only line ends */
    "data: {\"a\":\n"
    "data: 1}\n\n"
    "event: ignored-without-data\n\n"
    "data: last\r\n\r\n";

static const char *k_expect = "|one;delta|two\nthree;|;| lead;|{\"a\":\n1};|last;";

static void t_sse_whole_and_split(void **state)
{
    (void)state;
    for (size_t step = 0; step <= 7; step++) {
        wl_sse_t p;
        struct got g = { 0 };
        wl_sse_init(&p, 0);
        assert_int_equal(feed(&p, k_stream, step, &g), 0);
        assert_string_equal(g.log, k_expect);
        assert_int_equal(p.events, 6);
        wl_sse_free(&p);
    }
}

static void t_sse_crlf_split_between_cr_and_lf(void **state)
{
    (void)state;
    wl_sse_t p;
    struct got g = { 0 };
    wl_sse_init(&p, 0);
    /* The LF of a CRLF arriving in the next read must not count as a blank line: that
     * would dispatch "a" alone and then "b" as a second event. */
    assert_int_equal(wl_sse_feed(&p, "data: a\r", 8, collect, &g), 0);
    assert_int_equal(wl_sse_feed(&p, "\ndata: b\r", 10, collect, &g), 0);
    assert_int_equal(wl_sse_feed(&p, "\n\r", 2, collect, &g), 0);
    assert_int_equal(wl_sse_feed(&p, "\n", 1, collect, &g), 0);
    assert_string_equal(g.log, "|a\nb;");
    wl_sse_free(&p);
}

static void t_sse_stop_and_limit(void **state)
{
    (void)state;
    wl_sse_t p;
    struct got g = { .stop_after = 1 };
    wl_sse_init(&p, 0);
    assert_int_equal(feed(&p, "data: a\n\ndata: b\n\n", 0, &g), 1);
    assert_string_equal(g.log, "|a;");
    wl_sse_free(&p);

    char big[300];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    wl_sse_init(&p, 128);
    memset(&g, 0, sizeof g);
    errno = 0;
    assert_int_equal(wl_sse_feed(&p, big, sizeof big, collect, &g), -1);
    assert_int_equal(errno, EMSGSIZE);
    wl_sse_free(&p);
}

/* ---- HTTP ---------------------------------------------------------------------------- */

struct body { char buf[4096]; size_t n; };

static int body_cb(const char *b, size_t n, void *arg)
{
    struct body *o = arg;
    memcpy(o->buf + o->n, b, n);
    o->n += n;
    o->buf[o->n] = 0;
    return 0;
}

static const char *k_chunked =
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream\r\n"
    "transfer-encoding: Chunked\r\n\r\n"
    "5\r\nhello\r\n"
    "A;ext=1\r\n, chunked!\r\n"
    "0\r\nX-Trailer: 1\r\n\r\n";

static void t_http_chunked_split(void **state)
{
    (void)state;
    size_t n = strlen(k_chunked);
    for (size_t step = 1; step <= n; step = step < 4 ? step + 1 : step * 3) {
        wl_http_resp_t r;
        struct body b = { .n = 0 };
        wl_http_resp_init(&r);
        for (size_t i = 0; i < n; i += step)
            assert_int_equal(wl_http_resp_feed(&r, k_chunked + i, n - i < step ? n - i : step,
                                               body_cb, &b), 0);
        assert_int_equal(r.status, 200);
        assert_true(r.chunked);
        assert_true(r.done);
        assert_string_equal(b.buf, "hello, chunked!");
        assert_string_equal(r.content_type, "text/event-stream");
    }
}

static void t_http_length_close_and_errors(void **state)
{
    (void)state;
    wl_http_resp_t r;
    struct body b = { .n = 0 };
    const char *cl = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\n"
                     "Connection: close\r\n\r\nbodyEXTRA";
    wl_http_resp_init(&r);
    assert_int_equal(wl_http_resp_feed(&r, cl, strlen(cl), body_cb, &b), 0);
    assert_int_equal(r.status, 429);
    assert_true(r.close);
    assert_true(r.done);
    assert_string_equal(b.buf, "body"); /* bytes past Content-Length are not body */

    const char *bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    wl_http_resp_init(&r);
    errno = 0;
    assert_int_equal(wl_http_resp_feed(&r, bad, strlen(bad), body_cb, &b), -1);
    assert_int_equal(errno, EPROTO);

    wl_http_resp_init(&r);
    errno = 0;
    assert_int_equal(wl_http_resp_feed(&r, "SSH-2.0\r\n\r\n", 11, body_cb, &b), -1);
    assert_int_equal(errno, EPROTO);
}

/* ---- chat chunks ---------------------------------------------------------------------- */

static void t_chat_chunks(void **state)
{
    (void)state;
    wl_chat_chunk_t c;
    char out[64];
    const char *d1 = "{\"id\":\"x\",\"note\":\"\\\"content\\\": fake\",\"choices\":[{\"index\":0,"
                     "\"delta\":{\"content\":\"a\\u00e9\\\"\\n\\u20ac\"},\"finish_reason\":null}]}";
    assert_int_equal(wl_chat_chunk_parse(d1, strlen(d1), &c, out, sizeof out), 0);
    assert_true(c.has_content);
    assert_int_equal(c.content_len, 1 + 2 + 1 + 1 + 3);
    assert_memory_equal(out, "a\xc3\xa9\"\n\xe2\x82\xac", 8);
    assert_string_equal(c.finish, "");
    assert_false(c.done);

    const char *d2 = "{\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}";
    assert_int_equal(wl_chat_chunk_parse(d2, strlen(d2), &c, NULL, 0), 0);
    assert_false(c.has_content);
    assert_string_equal(c.finish, "length");

    const char *d3 = "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":42}}";
    assert_int_equal(wl_chat_chunk_parse(d3, strlen(d3), &c, NULL, 0), 0);
    assert_int_equal(c.usage_completion_tokens, 42);

    assert_int_equal(wl_chat_chunk_parse(" [DONE] ", 8, &c, NULL, 0), 0);
    assert_true(c.done);

    const char *d4 = "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}";
    assert_int_equal(wl_chat_chunk_parse(d4, strlen(d4), &c, NULL, 0), 0);
    assert_true(c.error);

    /* a string ending in an escaped backslash, then one with an escaped quote: the
     * scanner must see where each string really ends */
    const char *d5 = "{\"x\":\"a\\\\\",\"y\":\"q\\\"content\\\":\\\\\\\"\",\"delta\":"
                     "{\"content\":\"ok\"}}";
    assert_int_equal(wl_chat_chunk_parse(d5, strlen(d5), &c, out, sizeof out), 0);
    assert_true(c.has_content);
    assert_int_equal(c.content_len, 2);
    assert_memory_equal(out, "ok", 2);

    errno = 0;
    assert_int_equal(wl_chat_chunk_parse("hello", 5, &c, NULL, 0), -1);
    assert_int_equal(errno, EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_sse_whole_and_split),
        cmocka_unit_test(t_sse_crlf_split_between_cr_and_lf),
        cmocka_unit_test(t_sse_stop_and_limit),
        cmocka_unit_test(t_http_chunked_split),
        cmocka_unit_test(t_http_length_close_and_errors),
        cmocka_unit_test(t_chat_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
