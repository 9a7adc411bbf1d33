/*
 * llm.c - a streaming conversation and a non-streaming call against an OpenAI-compatible
 * server, over wl_read/wl_write so that threads and fibers run the same code.
 *
 * Memory per conversation is kept small on purpose, because it is what the 10,000-stream
 * target measures: the read buffer is per thread, not per conversation. That is sound on
 * every model because each read is parsed completely before the next wait, and the
 * parsers copy what they keep; it is the fiber models that gain, since a scheduler has
 * one buffer for all its fibers while a thread per conversation has one each.
 */
#define _GNU_SOURCE
#include "wl_llm.h"
#include "wl_sse.h"
#include "wl_tls.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RBUF_SIZE 16384

/* The per-thread buffers: the decoded delta content (used only between parsing an event
 * and handing it to the sink, with no wait in between) and the read buffer. On the heap,
 * allocated at a thread's first conversation and freed when the thread exits - not
 * _Thread_local arrays: glibc zeroes a thread's static TLS at pthread_create, which made
 * all 20 KiB resident on every conversation thread (thread model, 1,000 streams: 30.9
 * KiB of RSS per conversation), where a heap or stack buffer is resident only where a
 * read writes: a streamed event of a few hundred bytes lands on one page. */
struct tl_bufs {
    char content[4096];
    char rbuf[RBUF_SIZE];
};
static _Thread_local struct tl_bufs *tl_bufs;
static pthread_key_t  tl_bufs_key;
static pthread_once_t tl_bufs_once = PTHREAD_ONCE_INIT;

static void tl_bufs_key_init(void)
{
    if (pthread_key_create(&tl_bufs_key, free) != 0)
        abort(); /* only at PTHREAD_KEYS_MAX keys: a bug, not a load */
}

/* This thread's buffers; NULL with errno ENOMEM. */
static struct tl_bufs *bufs(void)
{
    if (!tl_bufs) {
        pthread_once(&tl_bufs_once, tl_bufs_key_init);
        struct tl_bufs *b = malloc(sizeof *b);
        if (!b)
            return errno = ENOMEM, NULL;
        if (pthread_setspecific(tl_bufs_key, b) != 0) { /* ENOMEM: not freed at exit */
            free(b);
            return errno = ENOMEM, NULL;
        }
        tl_bufs = b;
    }
    return tl_bufs;
}
#define tl_rbuf    (tl_bufs->rbuf)
#define tl_content (tl_bufs->content)

struct conv_state {
    wl_conv_t     *out;
    size_t         index;
    wl_sink_fn     sink;
    void          *sink_arg;
    wl_sse_t       sse;
    int            done, error, proto;
};

static int on_event(const wl_sse_event_t *ev, void *arg)
{
    struct conv_state *s = arg;
    wl_chat_chunk_t c;
    char *content = tl_content;
    if (wl_chat_chunk_parse(ev->data, ev->data_len, &c, content, sizeof tl_content) != 0) {
        s->proto = 1;
        return 1;
    }
    if (c.done) {
        s->done = 1;
        return 1;
    }
    if (c.error) {
        s->error = 1;
        return 1;
    }
    if (wl_conv_note_chunk(s->out, &c) && s->sink)
        s->sink(s->index, content, c.content_len < sizeof tl_content ? c.content_len
                                                                      : sizeof tl_content,
                s->sink_arg);
    return 0;
}

static int on_body(const char *buf, size_t n, void *arg)
{
    struct conv_state *s = arg;
    int r = wl_sse_feed(&s->sse, buf, n, on_event, s);
    if (r < 0)
        s->proto = 1;
    return r != 0;
}

/* Appends s to buf at *at (bounded by cap). */
static void put_str(char *buf, size_t cap, size_t *at, const char *s)
{
    size_t n = strlen(s);
    if (*at + n < cap) {
        memcpy(buf + *at, s, n);
        *at += n;
    }
}

static void put_u64(char *buf, size_t cap, size_t *at, uint64_t v)
{
    char d[24];
    int k = 0;
    do
        d[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < 24);
    while (k && *at + 1 < cap)
        buf[(*at)++] = d[--k];
}

/* Builds the request into a heap buffer (*out, freed by the caller). Plain copies, no
 * printf: printf's own frame would add a page to every fiber stack, and ten thousand
 * conversations make that 40 MB of resident memory.
 * A streaming request carries x-mock-request-index (req_index), so mock-llm draws this
 * conversation's first-token time, speed and length from the index, not from the order
 * in which requests happen to arrive: every model and every run then faces the same
 * draws for conversation i, and a retry (same index) replays the same conversation. It
 * also carries x-stainless-retry-count (attempt - 1), which the official OpenAI SDKs send.
 * The non-streaming upstream call (req_index < 0) sends neither. */
static size_t build_request(char **out, size_t index, int64_t req_index, uint32_t retry,
                            int max_tokens, int stream)
{
    enum { CAP = 768, BODY_AT = 256 };
    char *b = malloc(CAP);
    *out = b;
    if (!b)
        return 0;
    size_t bl = BODY_AT;
    put_str(b, CAP, &bl, "{\"model\":\"mock\",\"stream\":");
    put_str(b, CAP, &bl, stream ? "true,\"stream_options\":{\"include_usage\":true}," : "false,");
    put_str(b, CAP, &bl, "\"max_tokens\":");
    put_u64(b, CAP, &bl, (uint64_t)max_tokens);
    put_str(b, CAP, &bl, ",\"messages\":[{\"role\":\"user\",\"content\":\"Conversation ");
    put_u64(b, CAP, &bl, index);
    put_str(b, CAP, &bl, ": tell me about fibers.\"}]}");
    size_t hl = 0;
    char h[BODY_AT];
    put_str(h, sizeof h, &hl, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Content-Type: application/json\r\nAccept: ");
    put_str(h, sizeof h, &hl, stream ? "text/event-stream" : "application/json");
    put_str(h, sizeof h, &hl, "\r\nContent-Length: ");
    put_u64(h, sizeof h, &hl, bl - BODY_AT);
    if (req_index >= 0) {
        put_str(h, sizeof h, &hl, "\r\nx-mock-request-index: ");
        put_u64(h, sizeof h, &hl, (uint64_t)req_index);
        put_str(h, sizeof h, &hl, "\r\nx-stainless-retry-count: ");
        put_u64(h, sizeof h, &hl, retry);
    }
    put_str(h, sizeof h, &hl, "\r\n\r\n");
    /* the head goes right before the body, so one write sends both */
    memcpy(b + BODY_AT - hl, h, hl);
    memmove(b, b + BODY_AT - hl, hl + bl - BODY_AT);
    return hl + bl - BODY_AT;
}

/* The SDKs' backoff: the server's retry-after (0-60 s) when it gave one, else
 * 0.5 s x 2^attempt capped at 8 s, less up to 25% jitter. */
static uint64_t retry_delay_ns(uint32_t attempt, int64_t retry_after_ms)
{
    if (retry_after_ms >= 0 && retry_after_ms <= 60000)
        return (uint64_t)retry_after_ms * 1000000u;
    double s = 0.5 * (double)(1u << (attempt < 5 ? attempt : 5));
    if (s > 8.0)
        s = 8.0;
    /* jitter from the clock's low bits: no shared generator state between units */
    double j = 1.0 - 0.25 * (double)(wl_now_ns() % 1000u) / 1000.0;
    return (uint64_t)(s * j * 1e9);
}

static int fail(wl_conv_t *out, const char *what, int e)
{
    snprintf(out->cause, sizeof out->cause, "%s: %s", what, wl_errname(e));
    return -1;
}

int wl_conv_run(const wl_conv_cfg_t *cfg, size_t index, wl_res_t *res, wl_sink_fn sink,
                void *sink_arg, wl_conv_t *out)
{
    int rc = -1, held = 0;
    wl_conn_t conn = WL_CONN_NONE;
    out->start_ns = wl_now_ns();
    uint64_t deadline = cfg->timeout_ns ? out->arrival_ns + cfg->timeout_ns : WL_FOREVER;
    struct conv_state s = { .out = out, .index = index, .sink = sink, .sink_arg = sink_arg };
    wl_sse_init(&s.sse, 64 * 1024);

    if (!bufs()) {
        fail(out, "buffers", ENOMEM);
        goto done;
    }
    if (res && cfg->db_hold != WL_DB_NONE) {
        if (wl_res_acquire(res, deadline) != 0) {
            fail(out, "db", errno);
            goto done;
        }
        held = 1;
        if (cfg->db_hold == WL_DB_QUERY) { /* load the conversation, give it back */
            wl_sleep_ns(cfg->db_query_ns);
            wl_res_release(res);
            held = 0;
        }
    }
    wl_http_resp_t resp;
retry:
    /* Reached again only before any byte of a stream arrived: nothing to undo but fd. */
    if (conn.fd >= 0) {
        wl_conn_close(&conn);
        uint64_t delay = retry_delay_ns(out->attempts - 1, resp.retry_after_ms);
        if (wl_now_ns() + delay >= deadline) {
            fail(out, "retry", ETIMEDOUT);
            goto done;
        }
        wl_sleep_ns(delay);
        out->cause[0] = 0;
        /* the error answer's body went through the SSE parser: start it afresh */
        wl_sse_free(&s.sse);
        wl_sse_init(&s.sse, 64 * 1024);
    }
    out->attempts++;
    wl_http_resp_init(&resp);
    if (wl_conn_dial(&conn, &cfg->addr, cfg->tls, deadline, NULL, 0) != 0) {
        int e = errno;
        fail(out, e == EPROTO ? "tls" : "connect", e);
        /* a refused or reset connection is retried; a local limit (EMFILE) is not */
        if ((e == ECONNREFUSED || e == ECONNRESET || e == ETIMEDOUT) &&
            (int)out->attempts <= cfg->retries) {
            wl_sleep_ns(retry_delay_ns(out->attempts - 1, -1));
            goto retry;
        }
        goto done;
    }
    char *req;
    size_t rl = build_request(&req, index, (int64_t)(cfg->index_base + index), out->attempts - 1,
                              cfg->max_tokens, 1);
    if (!rl) {
        fail(out, "request", ENOMEM);
        goto done;
    }
    ssize_t wr = wl_conn_write(&conn, req, rl, deadline);
    free(req);
    if (wr < 0) {
        fail(out, "write", errno);
        goto done;
    }
    for (;;) {
        ssize_t n = wl_conn_read(&conn, tl_rbuf, sizeof tl_rbuf, deadline);
        if (n < 0) {
            fail(out, "read", errno);
            goto done;
        }
        if (n == 0) {
            snprintf(out->cause, sizeof out->cause, "%s", resp.headers_done
                     ? "eof before [DONE]" : "eof before headers");
            goto done;
        }
        int r = wl_http_resp_feed(&resp, tl_rbuf, (size_t)n, on_body, &s);
        if (r < 0 || s.proto) {
            fail(out, "protocol", r < 0 ? errno : EPROTO);
            goto done;
        }
        if (resp.headers_done && resp.status != 200) {
            snprintf(out->cause, sizeof out->cause, "http %d", resp.status);
            int st = resp.status;
            if ((st == 408 || st == 409 || st == 429 || st >= 500) &&
                (int)out->attempts <= cfg->retries)
                goto retry;
            goto done;
        }
        if (s.error) {
            snprintf(out->cause, sizeof out->cause, "stream error event");
            goto done;
        }
        if (s.done)
            break;
        if (resp.done) {
            snprintf(out->cause, sizeof out->cause, "body ended before [DONE]");
            goto done;
        }
    }
    if (!out->tokens)
        out->tokens = out->deltas;
    if (res && cfg->db_hold == WL_DB_QUERY) { /* save the answer */
        if (wl_res_acquire(res, deadline) != 0) {
            fail(out, "db", errno);
            goto done;
        }
        wl_sleep_ns(cfg->db_query_ns);
        wl_res_release(res);
    }
    out->ok = 1;
    rc = 0;
done:
    wl_conn_close(&conn);
    if (held)
        wl_res_release(res);
    wl_sse_free(&s.sse);
    out->end_ns = wl_now_ns();
    if (!out->tokens)
        out->tokens = out->deltas;
    return rc;
}

struct complete_state {
    long content;
    int  proto;
    /* A non-streaming answer is one JSON object; it is gathered whole, within a bound. */
    char  *buf;
    size_t len, cap;
};

static int on_complete_body(const char *b, size_t n, void *arg)
{
    struct complete_state *c = arg;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->len + n + 1)
            cap *= 2;
        if (cap > (1u << 20)) {
            c->proto = 1;
            return 1;
        }
        char *t = realloc(c->buf, cap);
        if (!t) {
            c->proto = 1;
            return 1;
        }
        c->buf = t;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, b, n);
    c->len += n;
    return 0;
}

long wl_llm_complete(int *fd, const struct sockaddr_in *addr, int max_tokens,
                     uint64_t deadline_ns)
{
    char *req;
    if (!bufs())
        return -1;
    size_t rl = build_request(&req, 0, -1, 0, max_tokens, 0);
    if (!rl) {
        errno = ENOMEM;
        return -1;
    }
    struct complete_state c = { 0 };
    wl_http_resp_t resp;
    int e = EPROTO;
    /* A kept-alive connection may have been closed by the server meanwhile: one retry
     * on a fresh connection when the first write or read on an old one fails. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = *fd < 0;
        if (fresh) {
            *fd = wl_dial((const struct sockaddr *)addr, sizeof *addr, deadline_ns);
            if (*fd < 0) {
                e = errno;
                free(req);
                errno = e;
                return -1;
            }
        }
        wl_http_resp_init(&resp);
        c.len = 0;
        c.proto = 0;
        ssize_t n = wl_write(*fd, req, rl, deadline_ns);
        while (n >= 0 && !resp.done) {
            n = wl_read(*fd, tl_rbuf, sizeof tl_rbuf, deadline_ns);
            if (n <= 0)
                break;
            if (wl_http_resp_feed(&resp, tl_rbuf, (size_t)n, on_complete_body, &c) != 0 ||
                c.proto) {
                n = -1;
                errno = EPROTO;
                break;
            }
        }
        if (resp.done)
            break;
        e = n < 0 ? errno : ECONNRESET;
        wl_close(*fd);
        *fd = -1;
        if (fresh || e == ETIMEDOUT || e == EPROTO)
            break;
    }
    free(req);
    if (!resp.done) {
        free(c.buf);
        errno = e;
        return -1;
    }
    if (resp.close) {
        wl_close(*fd);
        *fd = -1;
    }
    long got = -1;
    if (resp.status == 200 && c.buf) {
        c.buf[c.len] = 0;
        wl_chat_chunk_t ch;
        if (wl_chat_chunk_parse(c.buf, c.len, &ch, NULL, 0) == 0 && !ch.error)
            got = (long)ch.content_len;
    }
    free(c.buf);
    if (got < 0)
        errno = EPROTO;
    return got;
}
