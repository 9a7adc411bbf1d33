/*
 * mllm_server.c - one scheduler on one thread, one fiber per connection.
 *
 * A streaming response is a loop over the request's schedule: sleep until the next
 * event's absolute deadline (start + TTFT + the sum of the gaps), then write every event
 * that is due by now in one write(), and record how late each was. Sleeping to absolute
 * deadlines means a late wake-up is not carried into the next token: the schedule never
 * drifts, late events are coalesced instead.
 *
 * Writes are nonblocking and never park the stream: what the kernel does not take goes
 * to a per-connection pending buffer, bounded by --max-pending, and the stream keeps its
 * schedule while it waits for the socket to drain. A reader too slow for the bound is
 * dropped. So a slow or vanished client costs its own buffer and nothing else.
 */
#define _GNU_SOURCE
#include "mllm_server.h"

#include "mllm_api.h"
#include "mllm_http.h"
#include "mllm_metrics.h"

#include <fiber.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A stream that waits longer than this for its next token waits on the socket too, so
 * a client that hangs up during a long TTFT is noticed at once. Shorter waits are plain
 * timer sleeps: the extra poll() would cost more than the late notice (one gap). */
#define WATCH_PEER_NS (20u * 1000000u)
/* Events formatted per write at most; more due at once (a very late wake-up) are
 * written in several batches. */
#define MAX_BATCH_EVENTS 256
/* Usable stack of a connection fiber. Parsing a request (cJSON, strtod, vsnprintf)
 * reaches ~10 KiB deep; a stream in progress needs ~1 KiB below its loop. */
#define CONN_STACK_SIZE (64u * 1024u)
/* Non-streaming answers are built whole in memory; longer ones are refused. */
#define MAX_WHOLE_TOKENS 1000000
/* Room left at the front of the scratch buffer for the chunked-encoding size line. */
#define CHUNK_HDR 10

static const mllm_config_t *cfg;
static uint64_t request_counter;
static int listen_fd = -1;

/* One scratch buffer for the whole scheduler: formatting never parks, so no two fibers
 * use it at once, and one buffer instead of one per stream keeps RSS per stream low. */
static mllm_buf_t scratch;

static void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(int level, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    if (level > cfg->log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mock-llm %s: ", names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

typedef struct conn {
    int        fd;
    uint64_t   id;
    char      *in;          /* received bytes not yet consumed */
    size_t     in_len, in_cap;
    mllm_buf_t out;         /* bytes the kernel has not taken yet */
    int        peer_data;   /* the client sent more while we stream (pipelining) */
    int        dead;        /* write failed: the client is gone */
} conn_t;

/* ---- output ---- */

/* Writes what the kernel takes now, without parking. Returns 0, or -1 when the client
 * is gone (c->dead set). */
static int flush_nb(conn_t *c)
{
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t w = send(c->fd, c->out.p + off, c->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        mllm_metrics.writes++;
        if (w > 0) {
            off += (size_t)w;
            mllm_metrics.bytes_sent += (uint64_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        c->dead = 1;
        return -1;
    }
    if (off) {
        memmove(c->out.p, c->out.p + off, c->out.len - off);
        c->out.len -= off;
    }
    return 0;
}

/* Queues p[0..n) behind what is pending and writes what the kernel takes. Returns 0, or
 * -1 when the client is gone or has more than --max-pending unread. */
static int emit(conn_t *c, const char *p, size_t n)
{
    if (c->out.len == 0) {
        while (n) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            mllm_metrics.writes++;
            if (w > 0) {
                p += w;
                n -= (size_t)w;
                mllm_metrics.bytes_sent += (uint64_t)w;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            c->dead = 1;
            return -1;
        }
        if (!n)
            return 0;
    }
    if (c->out.len + n > cfg->max_pending) {
        mllm_metrics.clients_dropped_slow++;
        logf_(MLLM_LOG_INFO, "conn %" PRIu64 ": dropped, %zu bytes unread", c->id,
              c->out.len + n);
        c->dead = 1;
        return -1;
    }
    mllm_buf_add(&c->out, p, n);
    if (c->out.oom) {
        c->dead = 1;
        return -1;
    }
    return flush_nb(c);
}

/* Parks until every pending byte is written or the write timeout passes. */
static int flush_all(conn_t *c)
{
    uint64_t deadline = fiber_now_ns() + cfg->write_timeout_ns;
    while (c->out.len) {
        if (flush_nb(c))
            return -1;
        if (!c->out.len)
            break;
        if (fiber_wait_fd(c->fd, EPOLLOUT, deadline) < 0) {
            c->dead = 1;
            return -1;
        }
    }
    return 0;
}

/* A whole response with a body and Content-Length. extra: more header lines, each
 * ending in \r\n, or NULL. */
static int send_simple(conn_t *c, int status, const char *ctype, const char *body,
                       size_t n, const char *extra, int keep_alive)
{
    mllm_buf_t h = { 0 };
    mllm_buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Connection: %s\r\n%s\r\n", status, mllm_http_reason(status), ctype, n,
                    keep_alive ? "keep-alive" : "close", extra ? extra : "");
    mllm_buf_add(&h, body, n);
    mllm_metrics_status(status);
    int rc = h.oom ? -1 : emit(c, h.p, h.len);
    mllm_buf_free(&h);
    if (rc == 0)
        rc = flush_all(c);
    return rc;
}

static int send_error(conn_t *c, const mllm_err_t *e, int anthropic, const char *extra,
                      int keep_alive)
{
    mllm_buf_t b = { 0 };
    if (anthropic)
        mllm_fmt_error_anthropic(&b, e);
    else
        mllm_fmt_error_openai(&b, e);
    logf_(MLLM_LOG_DEBUG, "conn %" PRIu64 ": %d %s", c->id, e->status, e->message);
    int rc = send_simple(c, e->status, "application/json", b.p ? b.p : "", b.len, extra,
                         keep_alive);
    mllm_buf_free(&b);
    return rc;
}

/* ---- streaming ---- */

/* Wraps scratch[CHUNK_HDR..len) as one HTTP chunk (when chunked) and emits it. */
static int emit_scratch(conn_t *c, int chunked)
{
    size_t body = scratch.len - CHUNK_HDR;
    char *start = scratch.p + CHUNK_HDR;
    size_t n = body;
    if (chunked) {
        /* "<hex size>\r\n" written backwards in front of the data (printf showed up
         * in profiles at 300,000 writes per second). */
        static const char hex[] = "0123456789abcdef";
        *--start = '\n';
        *--start = '\r';
        size_t v = body;
        do {
            *--start = hex[v & 15];
            v >>= 4;
        } while (v);
        mllm_buf_add(&scratch, "\r\n", 2);
        n = (size_t)(scratch.p + scratch.len - start);
    }
    return scratch.oom ? -1 : emit(c, start, n);
}

static void scratch_reset(void)
{
    scratch.len = 0;
    mllm_buf_reserve(&scratch, 64 << 10);
    if (!scratch.oom) {
        scratch.len = CHUNK_HDR;
        memset(scratch.p, ' ', CHUNK_HDR);
    }
}

/* Has the client closed while we wait? A peek tells EOF (0) from early pipelined data. */
static int peer_gone(conn_t *c)
{
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0)
        return 1;
    if (r < 0)
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    c->peer_data = 1; /* a pipelined request: stop watching, it waits for its turn */
    return 0;
}

enum inject { INJ_NONE, INJ_429, INJ_500, INJ_503, INJ_MIDSTREAM, INJ_DISCONNECT };

typedef struct gen {
    mllm_gen_req_t    req;
    int               anthropic, chunked, keep_alive;
    uint64_t          index;
    enum inject       inject;
    mllm_stream_fmt_t fmt;
} gen_t;

/* Waits until deadline while keeping the connection served: pending output is flushed
 * as the socket drains, and a client that hangs up is noticed during long waits.
 * Returns 0 at the deadline, -1 when the client is gone. */
static int wait_until_(conn_t *c, uint64_t deadline);
static int wait_until(conn_t *c, uint64_t deadline)
{
    int rc = wait_until_(c, deadline);
    if (rc)
        c->dead = 1;
    return rc;
}

static int wait_until_(conn_t *c, uint64_t deadline)
{
    for (;;) {
        uint64_t now = fiber_now_ns();
        if (now >= deadline)
            return 0;
        if (c->out.len) {
            int r = fiber_wait_fd(c->fd, EPOLLOUT | (c->peer_data ? 0 : EPOLLIN), deadline);
            if (r < 0)
                return errno == ETIMEDOUT ? 0 : -1;
            if ((r & (EPOLLIN | EPOLLHUP | EPOLLERR)) && peer_gone(c))
                return -1;
            if (flush_nb(c))
                return -1;
            continue;
        }
        if (deadline - now > WATCH_PEER_NS && !c->peer_data) {
            int r = fiber_wait_fd(c->fd, EPOLLIN, deadline);
            if (r < 0)
                return errno == ETIMEDOUT ? 0 : -1;
            if (peer_gone(c))
                return -1;
            continue;
        }
        fiber_sleep_until(deadline);
    }
}

static int stream_headers(conn_t *c, const gen_t *g)
{
    mllm_buf_t h = { 0 };
    mllm_buf_printf(&h, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                        "Cache-Control: no-cache\r\nx-request-id: req_mock%016" PRIx64 "\r\n"
                        "openai-processing-ms: 0\r\n%s",
                    g->index, g->chunked ? "Transfer-Encoding: chunked\r\n" : "");
    mllm_buf_printf(&h, "Connection: %s\r\n\r\n", g->keep_alive ? "keep-alive" : "close");
    mllm_metrics_status(200);
    int rc = h.oom ? -1 : emit(c, h.p, h.len);
    mllm_buf_free(&h);
    return rc;
}

/* Appends the k token texts of one event to text[] (NUL-terminated); returns length. */
static size_t event_text(mllm_rng_t *trng, int k, int *first, char *text, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < k; i++) {
        const char *t = mllm_token_text(trng, *first);
        *first = 0;
        size_t l = strlen(t);
        if (n + l >= cap)
            break;
        memcpy(text + n, t, l);
        n += l;
    }
    text[n] = 0;
    return n;
}

/*
 * Returns to the kernel the stack pages below the caller's frame that parsing the
 * request dirtied: a stream then waits for minutes holding two pages of stack instead
 * of three (measured: 13.2 -> 9.2 KiB RSS per open stream). The pages are zero-filled
 * again if a deeper call touches them later (the final usage chunk's printf does, once).
 * Only whole pages from 768 bytes to 34 KiB below this frame are dropped: that is below
 * the red zone and everything live, the stream loop's own calls (send, the timer wait,
 * the context switch) stay within the page it keeps, and 34 KiB stays inside the stack.
 */
static void __attribute__((noinline)) stack_trim(void)
{
    _Static_assert(CONN_STACK_SIZE >= 48u * 1024u, "stack_trim assumes 48 KiB of stack");
    char here;
    uintptr_t sp = (uintptr_t)&here;
    uintptr_t hi = (sp - 768) & ~(uintptr_t)4095;
    uintptr_t lo = (sp - 34 * 1024 + 4095) & ~(uintptr_t)4095;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static int serve_stream(conn_t *c, gen_t *g, uint64_t start)
{
    mllm_schedule_t s;
    mllm_schedule_init(&s, &cfg->profile, cfg->seed, g->index, g->req.prompt_tokens,
                       g->req.max_tokens, cfg->tokens_per_event, cfg->time_scale);
    mllm_rng_t trng;
    mllm_rng_seed(&trng, cfg->seed ^ 0x7e47u, g->index);
    int cut_at = g->inject == INJ_MIDSTREAM || g->inject == INJ_DISCONNECT ? s.total / 2 : -1;
    mllm_metrics.streams_active++;
    mllm_metrics.streams_total++;
    int rc = stream_headers(c, g);
    stack_trim();
    uint64_t off;
    int k, first_tok = 1, sent = 0, started = 0;
    int more = mllm_schedule_next(&s, &off, &k);
    /* Static, like scratch: both are filled and used between two parks, never across
     * one. On the stack they would cost every open stream another resident page. */
    static uint64_t deadlines[MAX_BATCH_EVENTS];
    static char text[4096]; /* 200 tokens per event (the flag's cap) x 11 bytes at most */
    while (rc == 0 && (more || !started)) {
        uint64_t deadline = start + off;
        if (!more)
            deadline = start + s.ttft_ns; /* zero tokens cannot happen; be safe anyway */
        if ((rc = wait_until(c, deadline)))
            break;
        scratch_reset();
        if (!started) {
            if (g->anthropic) {
                mllm_anth_message_start(&scratch, &g->fmt, g->req.model, g->req.prompt_tokens);
                mllm_anth_block_start(&scratch);
                mllm_anth_ping(&scratch);
            } else {
                mllm_chunk_role(&scratch, &g->fmt);
            }
            started = 1;
        }
        uint64_t now = fiber_now_ns();
        int nev = 0;
        while (more && start + off <= now && nev < MAX_BATCH_EVENTS) {
            if (cut_at >= 0 && sent >= cut_at)
                break;
            size_t n = event_text(&trng, k, &first_tok, text, sizeof text);
            if (g->anthropic)
                mllm_anth_delta(&scratch, text, n);
            else
                mllm_chunk_content(&scratch, &g->fmt, text, n);
            deadlines[nev++] = start + off;
            sent += k;
            more = mllm_schedule_next(&s, &off, &k);
        }
        int cut = cut_at >= 0 && sent >= cut_at;
        if (cut && g->inject == INJ_MIDSTREAM) {
            mllm_err_t e;
            mllm_err_set(&e, 500, "server_error", NULL, NULL,
                         "The server had an error while processing your request (injected "
                         "by mock-llm).");
            if (g->anthropic)
                mllm_anth_error(&scratch, &e);
            else
                mllm_chunk_error(&scratch, &e);
        } else if (!more && !cut) {
            const char *reason = s.capped ? (g->anthropic ? "max_tokens" : "length")
                                          : (g->anthropic ? "end_turn" : "stop");
            if (g->anthropic) {
                mllm_anth_block_stop(&scratch);
                mllm_anth_message_delta(&scratch, reason, sent);
                mllm_anth_message_stop(&scratch);
            } else {
                mllm_chunk_finish(&scratch, &g->fmt, reason);
                if (g->req.include_usage)
                    mllm_chunk_usage(&scratch, &g->fmt, g->req.model, g->req.prompt_tokens,
                                     sent);
                mllm_chunk_done(&scratch);
            }
        }
        if (cut && g->inject == INJ_DISCONNECT) {
            /* What was due goes out properly framed, then the connection is cut without
             * the terminating chunk: the client sees a stream that stops mid-answer. */
            emit_scratch(c, g->chunked);
            rc = -1;
            c->dead = 1;
            break;
        }
        int had_pending = c->out.len > 0;
        uint64_t wrote_at = fiber_now_ns();
        rc = emit_scratch(c, g->chunked);
        for (int i = 0; i < nev; i++)
            mllm_metrics_late(wrote_at > deadlines[i] ? wrote_at - deadlines[i] : 0);
        mllm_metrics.events_sent += (uint64_t)nev;
        if (had_pending)
            mllm_metrics.events_backlogged += (uint64_t)nev;
        if (cut) {
            rc = -1; /* after an error frame the stream is over and so is the connection */
            flush_all(c);
            break;
        }
        if (!more)
            break;
        /* A stream whose next event is already due (no gaps, or far behind) would loop
         * without ever parking and starve every other connection: let them run. */
        if (start + off <= fiber_now_ns())
            fiber_yield();
    }
    mllm_metrics.tokens_sent += (uint64_t)sent;
    if (rc == 0 && g->chunked) {
        /* the last chunk of the HTTP body */
        rc = emit(c, "0\r\n\r\n", 5);
    }
    if (rc == 0)
        rc = flush_all(c);
    if (c->dead && g->inject != INJ_MIDSTREAM && g->inject != INJ_DISCONNECT)
        mllm_metrics.streams_aborted++;
    mllm_metrics.streams_active--;
    if (!g->chunked)
        rc = -1; /* HTTP/1.0: the end of the body is the end of the connection */
    return rc;
}

static int serve_whole(conn_t *c, gen_t *g, uint64_t start)
{
    mllm_schedule_t s;
    mllm_schedule_init(&s, &cfg->profile, cfg->seed, g->index, g->req.prompt_tokens,
                       g->req.max_tokens, cfg->tokens_per_event, cfg->time_scale);
    if (s.total > MAX_WHOLE_TOKENS) {
        /* The whole answer is built in memory before it is sent. */
        mllm_err_t e;
        mllm_err_set(&e, 400, "invalid_request_error", "invalid_value", "max_tokens",
                     "mock-llm builds non-streaming answers in memory: at most %d tokens "
                     "(this one would have %d); set max_tokens or stream.", MAX_WHOLE_TOKENS,
                     s.total);
        return send_error(c, &e, g->anthropic, NULL, g->keep_alive);
    }
    mllm_rng_t trng;
    mllm_rng_seed(&trng, cfg->seed ^ 0x7e47u, g->index);
    uint64_t off = 0, last = 0;
    int k, first = 1;
    mllm_buf_t text = { 0 };
    static char ev[4096]; /* used before the wait only, like scratch */
    while (mllm_schedule_next(&s, &off, &k)) {
        size_t n = event_text(&trng, k, &first, ev, sizeof ev);
        mllm_buf_add(&text, ev, n);
        last = off;
    }
    /* A non-streaming answer arrives when the last token would have. */
    int rc = wait_until(c, start + last);
    if (rc == 0) {
        mllm_buf_t b = { 0 };
        const char *reason = s.capped ? (g->anthropic ? "max_tokens" : "length")
                                      : (g->anthropic ? "end_turn" : "stop");
        if (g->anthropic)
            mllm_fmt_anth_message(&b, &g->fmt, g->req.model, text.p ? text.p : "", text.len,
                                  reason, g->req.prompt_tokens, s.total);
        else
            mllm_fmt_completion(&b, &g->fmt, g->req.model, text.p ? text.p : "", text.len,
                                reason, g->req.prompt_tokens, s.total);
        char extra[64];
        snprintf(extra, sizeof extra, "x-request-id: req_mock%016" PRIx64 "\r\n", g->index);
        rc = b.oom ? -1 : send_simple(c, 200, "application/json", b.p, b.len, extra,
                                      g->keep_alive);
        mllm_metrics.tokens_sent += (uint64_t)s.total;
        mllm_buf_free(&b);
    }
    mllm_buf_free(&text);
    return rc;
}

static int model_served(const char *m)
{
    for (int i = 0; i < cfg->nmodels; i++)
        if (!strcmp(cfg->models[i], m))
            return 1;
    return 0;
}

static enum inject parse_inject(mllm_str_t v)
{
    if (mllm_str_ieq(v, "429"))
        return INJ_429;
    if (mllm_str_ieq(v, "500"))
        return INJ_500;
    if (mllm_str_ieq(v, "503"))
        return INJ_503;
    if (mllm_str_ieq(v, "midstream"))
        return INJ_MIDSTREAM;
    if (mllm_str_ieq(v, "disconnect"))
        return INJ_DISCONNECT;
    return INJ_NONE;
}

/* The chaos draw of a request: its own generator, so it does not shift the timing. */
static enum inject draw_inject(uint64_t index, int stream)
{
    if (cfg->error_rate <= 0 && cfg->midstream_error_rate <= 0 && cfg->disconnect_rate <= 0)
        return INJ_NONE;
    mllm_rng_t r;
    mllm_rng_seed(&r, cfg->seed ^ 0xc4a05u, index);
    if (mllm_rng_uniform(&r) < cfg->error_rate) {
        int s = cfg->error_statuses[mllm_rng_next(&r) % (uint64_t)cfg->nerror_statuses];
        return s == 429 ? INJ_429 : s == 500 ? INJ_500 : INJ_503;
    }
    double u = mllm_rng_uniform(&r);
    if (stream && u < cfg->midstream_error_rate)
        return INJ_MIDSTREAM;
    if (stream && u < cfg->midstream_error_rate + cfg->disconnect_rate)
        return INJ_DISCONNECT;
    return INJ_NONE;
}

static int serve_generate(conn_t *c, const mllm_http_req_t *hr, const char *body,
                          size_t blen, int anthropic, uint64_t start)
{
    gen_t g;
    memset(&g, 0, sizeof g);
    g.anthropic = anthropic;
    g.keep_alive = hr->keep_alive;
    g.chunked = hr->minor >= 1;
    mllm_err_t e;
    int rc = anthropic ? mllm_parse_messages(body, blen, &g.req, &e)
                       : mllm_parse_chat(body, blen, &g.req, &e);
    if (rc)
        return send_error(c, &e, anthropic, NULL, hr->keep_alive);
    if (!model_served(g.req.model)) {
        mllm_err_set(&e, 404, anthropic ? "not_found_error" : "invalid_request_error",
                     "model_not_found", NULL,
                     "The model `%.100s` does not exist or you do not have access to it.",
                     g.req.model);
        return send_error(c, &e, anthropic, NULL, hr->keep_alive);
    }
    mllm_str_t idx = mllm_http_header(hr, "x-mock-request-index");
    if (idx.p) {
        char tmp[24];
        size_t n = idx.n < sizeof tmp - 1 ? idx.n : sizeof tmp - 1;
        memcpy(tmp, idx.p, n);
        tmp[n] = 0;
        g.index = strtoull(tmp, NULL, 10);
    } else {
        g.index = request_counter++;
    }
    mllm_str_t inj = mllm_http_header(hr, "x-mock-inject");
    g.inject = inj.p ? parse_inject(inj) : draw_inject(g.index, g.req.stream);
    if (g.inject == INJ_429 || g.inject == INJ_500 || g.inject == INJ_503) {
        char extra[320] = "";
        if (g.inject == INJ_429) {
            mllm_err_set(&e, 429, anthropic ? "rate_limit_error" : "requests",
                         "rate_limit_exceeded", NULL,
                         "Rate limit reached for requests (injected by mock-llm). Please try "
                         "again in %dms.", cfg->retry_after_ms);
            snprintf(extra, sizeof extra,
                     "retry-after: %d\r\nretry-after-ms: %d\r\n"
                     "x-ratelimit-limit-requests: 10000\r\n"
                     "x-ratelimit-remaining-requests: 0\r\n"
                     "x-ratelimit-reset-requests: %dms\r\n",
                     (cfg->retry_after_ms + 999) / 1000, cfg->retry_after_ms,
                     cfg->retry_after_ms);
        } else if (g.inject == INJ_503) {
            mllm_err_set(&e, 503, anthropic ? "overloaded_error" : "server_error",
                         NULL, NULL, "The engine is currently overloaded, please try again "
                         "later (injected by mock-llm).");
            snprintf(extra, sizeof extra, "retry-after: %d\r\nretry-after-ms: %d\r\n",
                     (cfg->retry_after_ms + 999) / 1000, cfg->retry_after_ms);
        } else {
            mllm_err_set(&e, 500, anthropic ? "api_error" : "server_error", NULL, NULL,
                         "The server had an error while processing your request (injected "
                         "by mock-llm).");
        }
        return send_error(c, &e, anthropic, extra, hr->keep_alive);
    }
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    mllm_stream_fmt_init(&g.fmt, g.req.model, cfg->seed * 1000003u + g.index,
                         (uint64_t)rt.tv_sec);
    logf_(MLLM_LOG_DEBUG, "conn %" PRIu64 ": %s model=%s stream=%d index=%" PRIu64
          " prompt_tokens=%d max_tokens=%d", c->id, anthropic ? "messages" : "chat",
          g.req.model, g.req.stream, g.index, g.req.prompt_tokens, g.req.max_tokens);
    return g.req.stream ? serve_stream(c, &g, start) : serve_whole(c, &g, start);
}

static int serve_models(conn_t *c, const mllm_http_req_t *hr, const char *one)
{
    mllm_buf_t b = { 0 };
    if (one) {
        if (!model_served(one)) {
            mllm_err_t e;
            mllm_err_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                         "The model `%.100s` does not exist or you do not have access to it.",
                         one);
            return send_error(c, &e, 0, NULL, hr->keep_alive);
        }
        mllm_buf_adds(&b, "{\"id\":\"");
        mllm_buf_json_str(&b, one, strlen(one));
        mllm_buf_adds(&b, "\",\"object\":\"model\",\"created\":1700000000,"
                          "\"owned_by\":\"mock-llm\"}");
    } else {
        mllm_buf_adds(&b, "{\"object\":\"list\",\"data\":[");
        for (int i = 0; i < cfg->nmodels; i++) {
            mllm_buf_adds(&b, i ? ",{\"id\":\"" : "{\"id\":\"");
            mllm_buf_json_str(&b, cfg->models[i], strlen(cfg->models[i]));
            mllm_buf_adds(&b, "\",\"object\":\"model\",\"created\":1700000000,"
                              "\"owned_by\":\"mock-llm\"}");
        }
        mllm_buf_adds(&b, "]}");
    }
    int rc = b.oom ? -1 : send_simple(c, 200, "application/json", b.p, b.len, NULL,
                                      hr->keep_alive);
    mllm_buf_free(&b);
    return rc;
}

/* Routes one complete request. Returns 0 to keep the connection, -1 to close it. */
static int route(conn_t *c, const mllm_http_req_t *hr, const char *body, size_t blen,
                 uint64_t start)
{
    mllm_str_t m = hr->method, p = hr->path;
    int get = mllm_str_ieq(m, "GET");
    int post = mllm_str_ieq(m, "POST");
    int anth_path = mllm_str_ieq(p, "/v1/messages");
    mllm_err_t e;
    int rc;
    if (mllm_str_ieq(p, "/v1/chat/completions") || anth_path) {
        if (post)
            return serve_generate(c, hr, body, blen, anth_path, start);
        mllm_err_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                     "Method %.*s is not allowed on %.*s; use POST.", (int)m.n, m.p,
                     (int)p.n, p.p);
        return send_error(c, &e, anth_path, "Allow: POST\r\n", hr->keep_alive);
    }
    int health = mllm_str_ieq(p, "/health"), metrics = mllm_str_ieq(p, "/metrics");
    int models = mllm_str_ieq(p, "/v1/models");
    int one_model = p.n > 11 && !memcmp(p.p, "/v1/models/", 11);
    if (health || metrics || models || one_model) {
        if (!get) {
            mllm_err_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                         "Method %.*s is not allowed on %.*s; use GET.", (int)m.n, m.p,
                         (int)p.n, p.p);
            return send_error(c, &e, 0, "Allow: GET\r\n", hr->keep_alive);
        }
        if (health)
            return send_simple(c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL,
                               hr->keep_alive);
        if (metrics) {
            mllm_buf_t b = { 0 };
            mllm_metrics_format(&b);
            rc = b.oom ? -1 : send_simple(c, 200, "text/plain; version=0.0.4", b.p, b.len,
                                          NULL, hr->keep_alive);
            mllm_buf_free(&b);
            return rc;
        }
        if (models)
            return serve_models(c, hr, NULL);
        char id[128];
        size_t n = p.n - 11 < sizeof id - 1 ? p.n - 11 : sizeof id - 1;
        memcpy(id, p.p + 11, n);
        id[n] = 0;
        return serve_models(c, hr, id);
    }
    mllm_err_set(&e, 404, "invalid_request_error", "unknown_url", NULL,
                 "Unknown request URL: %.*s %.*s. Please check the URL for typos.", (int)m.n,
                 m.p, (int)p.n > 200 ? 200 : (int)p.n, p.p);
    return send_error(c, &e, 0, NULL, hr->keep_alive);
}

/* ---- connection ---- */

/* Makes room for at least `want` more input bytes, up to `limit` in total. */
static int in_grow(conn_t *c, size_t want, size_t limit)
{
    if (c->in_cap - c->in_len >= want)
        return 0;
    /* Start small: a typical request is a few hundred bytes, and malloc keeps freed
     * chunks resident, so 19,000 connections x the first size is RSS that stays. */
    size_t cap = c->in_cap ? c->in_cap : 1024;
    while (cap - c->in_len < want && cap < limit)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    if (cap <= c->in_len)
        return -1;
    char *p = realloc(c->in, cap);
    if (!p)
        return -1;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Reads more into c->in. Returns bytes read, 0 at EOF, -1 on error or timeout. */
static ssize_t in_read(conn_t *c, size_t limit, uint64_t deadline)
{
    if (in_grow(c, c->in_cap ? 1024 : 512, limit))
        return -1;
    ssize_t r = fiber_read(c->fd, c->in + c->in_len, c->in_cap - c->in_len, deadline);
    if (r > 0)
        c->in_len += (size_t)r;
    return r;
}

static void refuse(conn_t *c, int status, const char *msg)
{
    mllm_err_t e;
    mllm_err_set(&e, status, "invalid_request_error", NULL, NULL, "%s", msg);
    send_error(c, &e, 0, NULL, 0);
}

static void conn_main(void *arg)
{
    conn_t *c = arg;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    mllm_http_limits_t lim = {
        .max_request_line = cfg->max_request_line,
        .max_head = cfg->max_head,
        .max_body = cfg->max_body,
    };
    for (;;) {
        /* Idle keep-alive wait for the first byte; once a request has started its head
         * must be complete within the header timeout (slow-header clients). */
        mllm_http_req_t hr;
        uint64_t deadline = fiber_now_ns() + cfg->idle_timeout_ns;
        int started = c->in_len > 0, rc;
        if (started)
            deadline = fiber_now_ns() + cfg->header_timeout_ns;
        while ((rc = mllm_http_parse_head(c->in, c->in_len, &lim, &hr)) == 0) {
            ssize_t r = in_read(c, cfg->max_head + 1024, deadline);
            if (r <= 0) {
                if (r < 0 && errno == ETIMEDOUT && started)
                    refuse(c, 408, "The request head did not arrive in time.");
                goto out;
            }
            if (!started) {
                started = 1;
                deadline = fiber_now_ns() + cfg->header_timeout_ns;
            }
        }
        if (rc < 0) {
            const char *why = rc == -414   ? "The request line is too long."
                              : rc == -431 ? "The request headers are too large."
                              : rc == -413 ? "The request body is too large."
                              : rc == -501 ? "Only Transfer-Encoding: chunked is supported."
                              : rc == -505 ? "Only HTTP/1.0 and HTTP/1.1 are supported."
                                           : "The request is malformed.";
            refuse(c, -rc, why);
            goto out;
        }
        uint64_t start = fiber_now_ns();
        size_t head = hr.head_len, body_len = 0, consumed = 0;
        if (hr.expect_continue && (hr.chunked || hr.content_length > 0) &&
            c->in_len == head) {
            if (emit(c, "HTTP/1.1 100 Continue\r\n\r\n", 25))
                goto out;
        }
        /* The body: bounded by max_body, due within the header timeout too. */
        uint64_t body_deadline = fiber_now_ns() + cfg->header_timeout_ns;
        if (hr.chunked) {
            for (;;) {
                rc = mllm_http_dechunk(c->in + head, c->in_len - head, cfg->max_body,
                                       &body_len, &consumed);
                if (rc)
                    break;
                if (c->in_len - head > cfg->max_body * 2 + 65536) {
                    rc = -413;
                    break;
                }
                if (in_read(c, head + cfg->max_body * 2 + 65536 + 1024, body_deadline) <= 0)
                    goto out;
            }
            if (rc < 0) {
                refuse(c, -rc, rc == -413 ? "The request body is too large."
                                          : "The chunked request body is malformed.");
                goto out;
            }
        } else {
            body_len = consumed = hr.content_length > 0 ? (size_t)hr.content_length : 0;
            while (c->in_len - head < body_len) {
                if (in_grow(c, head + body_len - c->in_len, head + body_len + 1024))
                    goto out;
                ssize_t r = fiber_read(c->fd, c->in + c->in_len,
                                       head + body_len - c->in_len, body_deadline);
                if (r <= 0)
                    goto out;
                c->in_len += (size_t)r;
            }
        }
        /* The strings of hr point into c->in, which does not move until consumed. */
        rc = route(c, &hr, c->in + head, body_len, start);
        size_t used = head + consumed;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (c->in_len == 0) {
            /* An idle or streaming connection keeps no input buffer: at 19,000 streams
             * every kilobyte per connection is 19 MB. */
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        c->peer_data = 0;
        if (rc || c->dead || !hr.keep_alive)
            break;
    }
out:
    fiber_close(c->fd);
    free(c->in);
    mllm_buf_free(&c->out);
    mllm_metrics.conns_active--;
    free(c);
}

static void accept_main(void *arg)
{
    (void)arg;
    static uint64_t next_id;
    fiber_attr_t attr = { .stack_size = CONN_STACK_SIZE, .name = "conn", .detached = 1 };
    for (;;) {
        int fd = fiber_accept(listen_fd, NULL, NULL, FIBER_FOREVER);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: leave the rest in the backlog and try again once
                 * some connection has had time to close. */
                if (mllm_metrics.accept_emfile++ == 0)
                    logf_(MLLM_LOG_WARN, "accept: %s; backing off", strerror(errno));
                fiber_sleep_ns(10 * 1000000u);
                continue;
            }
            if (errno == EBADF)
                return; /* shutting down */
            logf_(MLLM_LOG_ERROR, "accept: %s", strerror(errno));
            fiber_sleep_ns(10 * 1000000u);
            continue;
        }
        mllm_metrics.conns_total++;
        if ((long)mllm_metrics.conns_active >= cfg->max_conns) {
            static const char body[] =
                "{\"error\":{\"message\":\"mock-llm is at --max-conns.\",\"type\":"
                "\"server_error\",\"param\":null,\"code\":\"max_conns\"}}";
            char busy[512];
            int bl = snprintf(busy, sizeof busy,
                              "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                              "application/json\r\nContent-Length: %zu\r\nConnection: "
                              "close\r\nretry-after: 1\r\n\r\n%s", sizeof body - 1, body);
            ssize_t w = send(fd, busy, (size_t)bl, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            mllm_metrics.conns_refused_max++;
            mllm_metrics_status(503);
            close(fd);
            continue;
        }
        conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->id = ++next_id;
        mllm_metrics.conns_active++;
        if (!fiber_spawn_ex(conn_main, c, &attr)) {
            logf_(MLLM_LOG_WARN, "fiber_spawn: %s; connection refused", strerror(errno));
            mllm_metrics.conns_active--;
            close(fd);
            free(c);
            fiber_sleep_ns(1000000u);
        }
    }
}

/* With --busy-poll: keeps the run queue non-empty, so the scheduler checks its timers
 * and polls epoll without a timeout on every round instead of sleeping until the next
 * deadline. Waking from a short sleep costs tens of microseconds under a hypervisor
 * (timer interrupt, VM exit), which is all of a 1 ms lateness budget at high rates. */
static void spin_main(void *arg)
{
    (void)arg;
    for (;;)
        fiber_yield();
}

static void signal_main(void *arg)
{
    int sfd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;
    /* Only a signal ends the server. A failed wait (the poller out of descriptors or
     * memory) is retried: exiting 0 then would look like a clean shutdown. */
    while (fiber_read(sfd, &si, sizeof si, FIBER_FOREVER) != (ssize_t)sizeof si) {
        logf_(MLLM_LOG_WARN, "waiting for signals: %s; retrying", strerror(errno));
        fiber_sleep_ns(10 * 1000000u);
    }
    logf_(MLLM_LOG_INFO, "signal %d: shutting down (%" PRIu64 " connections open, %" PRIu64
          " tokens sent)", (int)si.ssi_signo, mllm_metrics.conns_active,
          mllm_metrics.tokens_sent);
    fflush(stdout);
    fflush(stderr);
    /* Open streams end with the process: their clients see the connection close, as
     * with any server that is stopped. */
    exit(0);
}

int mllm_server_run(const mllm_config_t *c)
{
    cfg = c;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("mock-llm: signalfd");
        return 1;
    }
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) {
        perror("mock-llm: socket");
        return 1;
    }
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
    inet_pton(AF_INET, c->host, &a.sin_addr);
    if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "mock-llm: cannot listen on %s:%d: %s\n", c->host, c->port,
                strerror(errno));
        return 1;
    }
    /* The kernel caps the backlog at net.core.somaxconn; ask for plenty so a burst of
     * thousands of connects waits in the queue instead of being retried by SYN timers. */
    if (listen(listen_fd, 65535) != 0) {
        perror("mock-llm: listen");
        return 1;
    }
    socklen_t al = sizeof a;
    getsockname(listen_fd, (struct sockaddr *)&a, &al);
    printf("mock-llm listening on %s:%d\n", c->host, ntohs(a.sin_port));
    fflush(stdout);
    logf_(MLLM_LOG_INFO, "profile %s (ttft %.3f s, %.1f tok/s) time-scale %g seed %" PRIu64,
          c->profile.name, c->profile.ttft_s, c->profile.speed_tps, c->time_scale, c->seed);
    /* The signal fiber runs first: its wait creates the runtime's epoll instance before
     * the first accept, so a burst of connections cannot take the last descriptor the
     * poller needs. */
    fiber_attr_t small = { .stack_size = 32 * 1024, .name = "signal", .detached = 1 };
    fiber_t *sig = fiber_spawn_ex(signal_main, (void *)(intptr_t)sfd, &small);
    small.name = "accept";
    small.detached = 0;
    fiber_t *acc = sig ? fiber_spawn_ex(accept_main, NULL, &small) : NULL;
    small.name = "spin";
    small.detached = 1;
    if (acc && c->busy_poll && !fiber_spawn_ex(spin_main, NULL, &small))
        acc = NULL;
    if (!acc) {
        perror("mock-llm: fiber_spawn");
        return 1;
    }
    if (fiber_join(acc) != 0) {
        perror("mock-llm: scheduler");
        return 1;
    }
    return 0;
}
