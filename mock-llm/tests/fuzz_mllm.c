/*
 * fuzz_mllm.c - libFuzzer target (clang -fsanitize=fuzzer,address,undefined) for what
 * reads untrusted bytes. Half the runs drive the server's whole request path: the
 * input is what a client sends on one connection (any number of pipelined requests,
 * bodies up to the 1 MiB limit), served by the real framing and API layers
 * (mllm_route_connection) on a fiber, over an in-memory transport that hands the input
 * over in pieces of a size the input picks; everything the server writes back is then
 * checked as HTTP: well-framed responses, JSON bodies that parse, SSE frames that
 * parse, errors in their API's shape. The other half targets the parts alone: the head
 * parser, the chunked decoder (at once against in pieces), the JSON validators, and the JSON string escaper (a
 * round trip). The first byte picks the part ('0'-'4' alone: head, chat JSON, messages
 * JSON, escaper, responses JSON; '5'-'7' the whole path).
 */
#include "mllm_api.h"
#include "mllm_conn.h"
#include "mllm_http.h"
#include "mllm_route.h"
#include "mllm_transport.h"

#include <fiber.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void fuzz_http(const char *d, size_t n)
{
    static const mllm_http_limits_t lim = { 512, 2048, 4096 };
    mllm_http_head_t r;
    int rc = mllm_http_parse_head(d, n, &lim, &r);
    CHECK(rc == 0 || rc == 1 || rc == -400 || rc == -413 || rc == -414 || rc == -431 ||
          rc == -501 || rc == -505);
    if (rc != 1)
        return;
    CHECK(r.head_len <= n && r.head_len <= lim.max_head);
    CHECK((size_t)r.method.off + r.method.n <= r.head_len);
    CHECK(r.path.off == r.target.off && r.path.n <= r.target.n && r.path.n > 0);
    CHECK((size_t)r.target.off + r.target.n <= r.head_len);
    for (size_t i = 0; i < r.nheaders; i++) {
        CHECK((size_t)r.hname[i].off + r.hname[i].n <= r.head_len);
        CHECK((size_t)r.hvalue[i].off + r.hvalue[i].n <= r.head_len);
    }
    CHECK(!(r.chunked && r.content_length >= 0));
    if (r.chunked) {
        /* Decoded at once and in pieces of a size the input picks (compacting between
         * pieces, as the server does): the same verdict and the same body. */
        size_t rest = n - r.head_len, step = 1 + (unsigned char)d[0] % 64;
        const size_t max_framing = 4 * lim.max_body;
        char *once = malloc(rest ? rest : 1), *inc = malloc(rest ? rest : 1);
        memcpy(once, d + r.head_len, rest);
        mllm_dechunk_t a = { 0 }, b = { 0 };
        int c = mllm_http_dechunk(&a, once, rest, lim.max_body, max_framing);
        CHECK(c == 0 || c == 1 || c == -400 || c == -413);
        if (c == 1)
            CHECK(a.out <= lim.max_body && a.pos <= rest && a.out <= a.pos &&
                  a.framing <= max_framing && a.out + a.framing == a.pos);
        size_t have = 0, fed = 0, dropped = 0;
        int ci = 0;
        while (ci == 0 && fed < rest) {
            size_t k = rest - fed < step ? rest - fed : step;
            memcpy(inc + have, d + r.head_len + fed, k);
            have += k;
            fed += k;
            ci = mllm_http_dechunk(&b, inc, have, lim.max_body, max_framing);
            if (ci == 0) {
                size_t m = mllm_dechunk_compact(&b, inc, have);
                dropped += have - m;
                have = m;
            }
        }
        CHECK(ci == c);
        if (c == 1)
            CHECK(b.out == a.out && !memcmp(inc, once, a.out) && b.pos + dropped == a.pos);
        free(once);
        free(inc);
    }
}

static void fuzz_json(const char *d, size_t n, int api)
{
    mllm_gen_req_t g;
    mllm_err_t e;
    int rc = api == 1   ? mllm_parse_messages(d, n, &g, &e)
             : api == 2 ? mllm_parse_responses(d, n, &g, &e)
                        : mllm_parse_chat(d, n, &g, &e);
    if (rc == 0) {
        /* the tool rule on whatever tools parsed: arguments are always a JSON object */
        mllm_rng_t r;
        mllm_rng_seed(&r, 1, n);
        mllm_tool_call_t call;
        if (mllm_tool_call(&g, &r, 1.0, 1, &call)) {
            cJSON *a = cJSON_ParseWithLength(call.args.p, call.args.len);
            CHECK(a != NULL && cJSON_IsObject(a));
            cJSON_Delete(a);
            mllm_buf_free(&call.args);
        }
        mllm_gen_req_free(&g);
        CHECK(g.model[0] && strlen(g.model) < sizeof g.model);
        CHECK(g.max_tokens >= 0 && g.prompt_tokens > 0);
        /* what the server then formats must be valid JSON */
        mllm_stream_fmt_t f;
        mllm_stream_fmt_init(&f, g.model, 1, 2);
        mllm_buf_t b = { 0 };
        mllm_chunk_content(&b, &f, d, n);
        CHECK(!b.oom);
        cJSON *j = cJSON_ParseWithLength(b.p + 6, b.len - 8);
        CHECK(j != NULL);
        cJSON_Delete(j);
        mllm_buf_free(&b);
    } else {
        CHECK(e.status == 400 && e.type && e.message[0]);
        mllm_buf_t b = { 0 };
        mllm_fmt_error_openai(&b, &e);
        cJSON *j = cJSON_Parse(b.p);
        CHECK(j != NULL);
        cJSON_Delete(j);
        mllm_buf_free(&b);
    }
}

/* Escaping then parsing gives the bytes back (for inputs without NUL, which a C
 * string cannot carry). */
static void fuzz_escape(const char *d, size_t n)
{
    if (memchr(d, 0, n))
        return;
    mllm_buf_t b = { 0 };
    mllm_buf_add(&b, "\"", 1);
    mllm_buf_json_str(&b, d, n);
    mllm_buf_add(&b, "\"", 1);
    cJSON *j = cJSON_ParseWithLength(b.p, b.len);
    CHECK(j && cJSON_IsString(j));
    CHECK(strlen(j->valuestring) == n && memcmp(j->valuestring, d, n) == 0);
    cJSON_Delete(j);
    mllm_buf_free(&b);
}

/* ---- the whole path: an in-memory transport ---- */

typedef struct mem {
    const char *in;
    size_t      in_len, in_off, piece; /* recv hands over at most `piece` bytes */
    mllm_buf_t  out;
    int         shut;                  /* shutdown_write called: no more output */
} mem_t;

static ssize_t mem_recv(mllm_tx_t *t, void *buf, size_t n)
{
    mem_t *m = t->impl;
    size_t k = m->in_len - m->in_off;
    if (k > n)
        k = n;
    if (k > m->piece)
        k = m->piece;
    memcpy(buf, m->in + m->in_off, k);
    m->in_off += k;
    return (ssize_t)k; /* 0 at the end: the client closed */
}

static ssize_t mem_send(mllm_tx_t *t, const void *buf, size_t n)
{
    mem_t *m = t->impl;
    CHECK(!m->shut); /* nothing may follow a lingering close's shutdown */
    mllm_buf_add(&m->out, buf, n);
    CHECK(!m->out.oom);
    return (ssize_t)n;
}

static int mem_peek(mllm_tx_t *t)
{
    mem_t *m = t->impl;
    return m->in_off < m->in_len;
}

static int mem_wait(mllm_tx_t *t, uint32_t events, uint64_t deadline, int after_eagain)
{
    (void)t;
    (void)deadline;
    (void)after_eagain;
    return (int)(events & (EPOLLIN | EPOLLOUT));
}

static int mem_shutdown_write(mllm_tx_t *t)
{
    ((mem_t *)t->impl)->shut = 1;
    return 0;
}

static void mem_close(mllm_tx_t *t)
{
    t->fd = -1;
}

static const mllm_tx_ops_t mem_ops = {
    mem_recv, mem_send, mem_peek, mem_wait, mem_shutdown_write, mem_close,
};

static mllm_config_t fcfg;

static void conn_fiber(void *arg)
{
    mllm_route_connection(arg);
}

static const char *find(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    for (; p + n <= end; p++)
        if (!memcmp(p, lit, n))
            return p;
    return NULL;
}

/* Is p[0..n) well-formed UTF-8 (RFC 3629)? Every JSON body must be (RFC 8259 8.1): error
 * messages quote request bytes, and every echoed string comes from the request. */
static int utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i], len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2
                                 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!len || n - i < len)
            return 0;
        unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        if (len > 1 && (p[i + 1] < lo || p[i + 1] > hi))
            return 0;
        for (unsigned k = 2; k < len; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf)
                return 0;
        i += len;
    }
    return 1;
}

static void check_json_error(cJSON *j)
{
    cJSON *e = cJSON_GetObjectItem(j, "error");
    CHECK(cJSON_IsObject(e));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "type")));
}

/* One SSE body: every data: payload is JSON or [DONE]. */
static void check_sse(const char *p, const char *end)
{
    while ((p = find(p, end, "data: ")) != NULL) {
        const char *e = find(p, end, "\n\n");
        if (!e)
            return; /* a stream cut by an injected disconnect */
        p += 6;
        if ((size_t)(e - p) != 6 || memcmp(p, "[DONE]", 6)) {
            cJSON *j = cJSON_ParseWithLength(p, (size_t)(e - p));
            CHECK(j != NULL);
            cJSON_Delete(j);
        }
        p = e + 2;
    }
}

/* Everything the server wrote on one connection: a sequence of HTTP/1.1 responses. */
static void check_output(const char *o, size_t n)
{
    const char *p = o, *end = o + n;
    while (p < end) {
        CHECK(end - p >= 12 && !memcmp(p, "HTTP/1.1 ", 9));
        int status = atoi(p + 9);
        CHECK(status >= 100 && status <= 599);
        const char *he = find(p, end, "\r\n\r\n");
        CHECK(he != NULL);
        const char *body = he + 4;
        if (status == 100) {
            p = body;
            continue;
        }
        long clen = -1;
        int chunked = 0, json = 0, sse = 0;
        for (const char *l = find(p, he + 2, "\r\n") + 2; l < he; l = find(l, he + 2, "\r\n") + 2) {
            if (!strncasecmp(l, "content-length: ", 16))
                clen = atol(l + 16);
            else if (!strncasecmp(l, "transfer-encoding: chunked", 26))
                chunked = 1;
            else if (!strncasecmp(l, "content-type: application/json", 30))
                json = 1;
            else if (!strncasecmp(l, "content-type: text/event-stream", 31))
                sse = 1;
        }
        const char *bend;
        mllm_buf_t dec = { 0 };
        if (clen >= 0) {
            CHECK(end - body >= clen);
            bend = body + clen;
            p = bend;
        } else if (chunked) {
            /* a stream may be cut mid-chunk by an injected disconnect: decode what came */
            const char *q = body;
            for (;;) {
                char *ne;
                unsigned long sz = strtoul(q, &ne, 16);
                if (ne == q || end - ne < 2 || memcmp(ne, "\r\n", 2))
                    break;
                q = ne + 2;
                if (sz == 0) {
                    CHECK(end - q >= 2 && !memcmp(q, "\r\n", 2));
                    q += 2;
                    break;
                }
                if ((unsigned long)(end - q) < sz + 2) {
                    q = end;
                    break;
                }
                mllm_buf_add(&dec, q, sz);
                q += sz + 2;
            }
            p = q;
            body = dec.p ? dec.p : "";
            bend = body + dec.len;
        } else {
            bend = end; /* HTTP/1.0: the body ends with the connection */
            p = end;
        }
        if (json || sse)
            CHECK(utf8_valid((const unsigned char *)body, (size_t)(bend - body)));
        if (json) {
            cJSON *j = cJSON_ParseWithLength(body, (size_t)(bend - body));
            CHECK(j != NULL);
            if (status >= 400)
                check_json_error(j);
            cJSON_Delete(j);
        }
        if (sse)
            check_sse(body, bend);
        mllm_buf_free(&dec);
    }
}

static void fuzz_server(const char *d, size_t n)
{
    static const size_t pieces[8] = { SIZE_MAX, 1, 7, 100, 1000, 4096, 65536, 3 };
    if (!fcfg.max_body) {
        mllm_config_defaults(&fcfg);
        char *argv[] = { "fuzz", "--profile", "fixed", "--time-scale", "0", "--max-header",
                         "4096", "--log-level", "error", NULL };
        CHECK(mllm_config_parse(&fcfg, 9, argv) == 0);
        mllm_log_level = fcfg.log_level;
        mllm_route_init(&fcfg);
    }
    if (n < 1)
        return;
    mem_t m = { .in = d + 1, .in_len = n - 1, .piece = pieces[(unsigned char)d[0] % 8] };
    mllm_conn_t c;
    c.tx = (mllm_tx_t){ .ops = &mem_ops, .fd = -1, .impl = &m };
    mllm_conn_init(&c, &fcfg, 1);
    fiber_attr_t attr = { .stack_size = MLLM_CONN_STACK_SIZE, .name = "conn" };
    fiber_t *f = fiber_spawn_ex(conn_fiber, &c, &attr);
    CHECK(f != NULL);
    CHECK(fiber_join(f) == 0);
    if (getenv("MLLM_FUZZ_DUMP")) /* to see what an input made the server answer */
        fprintf(stderr, "--- %zu of %zu bytes read, %zu written:\n%.*s\n", m.in_off, m.in_len,
                m.out.len, (int)(m.out.len > 6000 ? 6000 : m.out.len), m.out.p ? m.out.p : "");
    check_output(m.out.p ? m.out.p : "", m.out.len);
    mllm_buf_free(&m.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 8) {
    case 0: fuzz_http(d, n); break;
    case 1: fuzz_json(d, n, 0); break;
    case 2: fuzz_json(d, n, 1); break;
    case 3: fuzz_escape(d, n); break;
    case 4: fuzz_json(d, n, 2); break;
    default: fuzz_server(d, n); break;
    }
    return 0;
}
