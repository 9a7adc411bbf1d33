/*
 * mllm_conn.c - HTTP framing of one connection: complete requests up, framed responses
 * down, refusals answered and closed lingering.
 *
 * Writes never park a stream: what the transport does not take goes to the pending
 * buffer, bounded by --max-pending, and the stream keeps its schedule while it waits
 * for the socket to drain. A reader too slow for the bound is dropped. So a slow or
 * vanished client costs its own buffer and nothing else.
 */
#define _GNU_SOURCE
#include "mllm_conn.h"

#include "mllm_metrics.h"
#include "mllm_wheel.h"

#include <fiber.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

void mllm_conn_init(mllm_conn_t *c, const mllm_config_t *cfg, uint64_t id)
{
    c->id = id;
    c->cfg = cfg;
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    memset(&c->out, 0, sizeof c->out);
    c->peer_data = 0;
    c->dead = 0;
    c->rx_ns = 0;
}

void mllm_conn_close(mllm_conn_t *c)
{
    c->tx.ops->close(&c->tx);
    mllm_metrics.pending_bytes -= c->out.len;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    mllm_buf_free(&c->out);
}

/* ---- output ---- */

/* Sends from *p until the transport would block or *n bytes are sent, without parking,
 * advancing *p and *n past what was sent. Returns 0, or -1 when the client is gone
 * (c->dead set). Inline: mllm_conn_emit calls it per event. */
static inline int send_nb(mllm_conn_t *c, const char **p, size_t *n)
{
    while (*n) {
        ssize_t w = c->tx.ops->send(&c->tx, *p, *n);
        mllm_metrics.writes++;
        if (w > 0) {
            *p += w;
            *n -= (size_t)w;
            mllm_metrics.bytes_sent += (uint64_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        c->dead = 1;
        return -1;
    }
    return 0;
}

/* Writes what the transport takes now of the buffered output, without parking. Returns
 * 0, or -1 when the client is gone (c->dead set). */
static int flush_nb(mllm_conn_t *c)
{
    const char *p = c->out.p;
    size_t left = c->out.len;
    if (send_nb(c, &p, &left))
        return -1;
    size_t off = c->out.len - left;
    if (off) {
        memmove(c->out.p, c->out.p + off, c->out.len - off);
        c->out.len -= off;
        mllm_metrics.pending_bytes -= off;
        /* Drained after a backlog: a stream that was slow once does not keep up to
         * --max-pending of buffer for the rest of its life. */
        if (!c->out.len && c->out.cap > (64u << 10))
            mllm_buf_free(&c->out);
    }
    return 0;
}

/* c->dead while mllm_conn_overrun_end queues its frame past the bound. */
#define FINAL_FRAME 3

/* mllm_conn_emit; bounded 0: queued past --max-pending (the body's end). */
static int emit_(mllm_conn_t *c, const char *p, size_t n, int bounded)
{
    int had = c->out.len > 0;
    if (!had) {
        if (send_nb(c, &p, &n))
            return -1;
        if (!n)
            return 0;
    }
    /* Dropped when a backlog grows past the bound. A write that found nothing pending
     * is queued whole even above it: one event can be larger than --max-pending (n: 128
     * with top_logprobs: 20 and 40 tokens per event is ~10 MB; emit_due bounds a batch
     * of them) and a reader that had kept up is not a slow one. */
    if (bounded && had && c->out.len + n > c->cfg->max_pending && c->dead != FINAL_FRAME) {
        mllm_metrics.clients_dropped_slow++;
        mllm_log(MLLM_LOG_INFO, "conn %" PRIu64 ": dropped, %zu bytes unread", c->id,
                 c->out.len + n);
        c->dead = MLLM_CONN_OVERRUN;
        return -1;
    }
    mllm_buf_add(&c->out, p, n);
    if (!c->out.oom)
        mllm_metrics.pending_bytes += n;
    if (c->out.oom) {
        c->dead = 1;
        return -1;
    }
    return flush_nb(c);
}

int mllm_conn_emit(mllm_conn_t *c, const char *p, size_t n)
{
    return emit_(c, p, n, 1);
}

static int flush_until(mllm_conn_t *c, uint64_t deadline)
{
    while (c->out.len) {
        if (flush_nb(c))
            return -1;
        if (!c->out.len)
            break;
        if (c->tx.ops->wait(&c->tx, c->tx.want, deadline,
                            MLLM_TX_AFTER_EAGAIN | MLLM_TX_FOR_SEND) < 0) {
            c->dead = 1;
            return -1;
        }
    }
    return 0;
}

int mllm_conn_flush(mllm_conn_t *c)
{
    return flush_until(c, fiber_now_ns() + c->cfg->write_timeout_ns);
}

int mllm_conn_respond(mllm_conn_t *c, int status, const char *ctype, const char *body,
                      size_t n, const char *extra, int keep_alive)
{
    mllm_buf_t h = { 0 };
    mllm_buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Connection: %s\r\n%s\r\n", status, mllm_http_reason(status), ctype, n,
                    keep_alive ? "keep-alive" : "close", extra ? extra : "");
    /* The head and the body's first slice in one write (a small answer is one write,
     * one TLS record, as a client reading the head and body in one recv expects), the
     * rest in slices of at most --max-pending, each queued after the last has drained: a
     * whole answer larger than the socket's buffer plus --max-pending (n > 1 with
     * logprobs reaches tens of MB) goes out to a reader that keeps reading instead of
     * dropping it as a slow one; a stalled reader is still dropped after --write-timeout
     * (mllm_conn_flush). */
    size_t slice = c->cfg->max_pending ? c->cfg->max_pending : 1;
    size_t first = n < slice ? n : slice;
    mllm_buf_add(&h, body, first);
    mllm_metrics_status(status);
    int rc = h.oom ? -1 : mllm_conn_emit(c, h.p, h.len);
    mllm_buf_free(&h);
    for (size_t off = first; rc == 0 && off < n; off += slice) {
        rc = mllm_conn_flush(c);
        if (rc == 0)
            rc = mllm_conn_emit(c, body + off, n - off < slice ? n - off : slice);
    }
    if (rc == 0)
        rc = mllm_conn_flush(c);
    return rc;
}

int mllm_conn_begin_body(mllm_conn_t *c, int status, const char *ctype, const char *extra,
                         int chunked, int keep_alive)
{
    mllm_buf_t h = { 0 };
    mllm_buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s", status,
                    mllm_http_reason(status), ctype, extra ? extra : "",
                    chunked ? "Transfer-Encoding: chunked\r\n" : "");
    /* A body that is not chunked ends with the connection (RFC 9112 6.3), whatever the
     * client asked for. */
    mllm_buf_printf(&h, "Connection: %s\r\n\r\n", keep_alive && chunked ? "keep-alive"
                                                                         : "close");
    mllm_metrics_status(status);
    int rc = h.oom ? -1 : mllm_conn_emit(c, h.p, h.len);
    mllm_buf_free(&h);
    return rc;
}

int mllm_conn_emit_chunk(mllm_conn_t *c, mllm_buf_t *b, int chunked)
{
    size_t body = b->len - MLLM_CHUNK_HEADROOM;
    char *start = b->p + MLLM_CHUNK_HEADROOM;
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
        /* mllm_buf_add's work, inline: a call and a memcpy call per event; the reserve
         * may move the buffer, and the size header with it */
        size_t off = (size_t)(start - b->p);
        mllm_buf_reserve(b, 3);
        start = b->p + off;
        if (!b->oom) {
            memcpy(b->p + b->len, "\r\n", 3); /* and the NUL mllm_buf_add keeps */
            b->len += 2;
        }
        n = (size_t)(b->p + b->len - start);
    }
    return b->oom ? -1 : mllm_conn_emit(c, start, n);
}

int mllm_conn_emit_chunk_final(mllm_conn_t *c, mllm_buf_t *b, int chunked)
{
    if (c->dead)
        return -1;
    c->dead = FINAL_FRAME;
    int rc = mllm_conn_emit_chunk(c, b, chunked);
    if (c->dead == FINAL_FRAME)
        c->dead = 0;
    return rc;
}

/*
 * A reader that fell behind by more than --max-pending gets, after what it has not read
 * yet, one frame saying so and the body's end, written within --write-timeout; then the
 * connection closes. A bare close (what mock-llm did before) left a client with a
 * stream cut short and nothing to tell that from a crash or a network fault: the
 * SDKs reported "terminated" or a premature close. The frame is small (one error), so
 * going past the bound by it costs nothing the bound is for.
 */
int mllm_conn_overrun_end(mllm_conn_t *c, mllm_buf_t *b, int chunked)
{
    if (c->dead != MLLM_CONN_OVERRUN)
        return -1;
    c->dead = FINAL_FRAME;
    if (mllm_conn_emit_chunk(c, b, chunked) == 0)
        mllm_conn_end_body(c, chunked);
    c->dead = 1;
    return -1;
}

/* The terminating chunk is queued past --max-pending: every event was queued within
 * it, so the answer is complete, and 5 bytes more do not grow the backlog the bound is
 * for. Bounded, a backlog within 5 bytes of it dropped a reader that had the whole
 * answer queued, and told it so with the slow_reader error after the answer's end. */
int mllm_conn_end_body(mllm_conn_t *c, int chunked)
{
    int rc = chunked ? emit_(c, "0\r\n\r\n", 5, 0) : 0;
    if (rc == 0)
        rc = mllm_conn_flush(c);
    return rc;
}

/* Has the client closed while we wait? A peek tells EOF (0) from early pipelined data. */
static int peer_gone(mllm_conn_t *c)
{
    int r = c->tx.ops->peek(&c->tx);
    if (r == 0)
        return 1;
    if (r < 0)
        return errno != EAGAIN && errno != EINTR;
    c->peer_data = 1; /* a pipelined request: stop watching, it waits for its turn */
    return 0;
}

static int wait_until_(mllm_conn_t *c, uint64_t deadline)
{
    for (;;) {
        uint64_t now = fiber_now_ns();
        if (now >= deadline)
            return 0;
        if (c->out.len) {
            /* What the pending output waits for is the transport's to say (the last
             * send's EAGAIN set it; a peek below may change it, and the flush after
             * the peek sets it again). TLS may need to read before it can write: with
             * a post-handshake message half read (a KeyUpdate split across records)
             * OpenSSL is back in its handshake and SSL_write wants the rest. Waiting
             * for writability then came back at once on a socket nobody fills, and
             * the stream spun through SSL_write until the rest arrived (test_tls:
             * t_keyupdate_split, ~80,000 write calls in 300 ms before). */
            uint32_t ev = c->tx.want ? c->tx.want : EPOLLOUT;
            /* Once a pipelined request is known (peer_data) EPOLLIN here is only the
             * send's: its decrypted bytes must not count (MLLM_TX_FOR_SEND). Before,
             * they tell peer_gone about the request, once. */
            int r = c->tx.ops->wait(&c->tx, ev | (c->peer_data ? 0 : EPOLLIN), deadline,
                                    c->peer_data ? MLLM_TX_FOR_SEND : 0);
            if (r < 0)
                return errno == ETIMEDOUT ? 0 : -1;
            if ((r & (EPOLLIN | EPOLLHUP | EPOLLERR)) && peer_gone(c))
                return -1;
            if (flush_nb(c))
                return -1;
            continue;
        }
        if (!mllm_conn_wait_is_sleep(c, deadline, now)) {
            int r = c->tx.ops->wait(&c->tx, EPOLLIN, deadline, 0);
            if (r < 0)
                return errno == ETIMEDOUT ? 0 : -1;
            if (peer_gone(c))
                return -1;
            continue;
        }
        mllm_wheel_sleep_from(deadline, now);
        return 0; /* the wheel returns at or after the deadline */
    }
}

int mllm_conn_wait_until(mllm_conn_t *c, uint64_t deadline_ns)
{
    int rc = wait_until_(c, deadline_ns);
    if (rc)
        c->dead = 1;
    return rc;
}

/* ---- input ---- */

/* Makes room for at least `want` more input bytes, up to `limit` in total. Returns 0, or
 * -1 with errno ENOMEM (no memory) or EMSGSIZE (the limit is reached). */
static int in_grow(mllm_conn_t *c, size_t want, size_t limit)
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
    if (cap <= c->in_len) {
        errno = EMSGSIZE;
        return -1;
    }
    char *p = realloc(c->in, cap);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Reads up to `max` more bytes (0 = as many as fit) into c->in, growing it up to limit.
 * Returns bytes read, 0 at EOF, -1 with errno (ETIMEDOUT, ENOMEM, ...). */
static ssize_t in_read(mllm_conn_t *c, size_t max, size_t limit, uint64_t deadline)
{
    if (in_grow(c, max ? max : (c->in_cap ? 1024 : 512), limit))
        return -1;
    size_t room = c->in_cap - c->in_len;
    if (max && room > max)
        room = max;
    uint64_t rx = 0;
    ssize_t r = mllm_tx_read_stamped(&c->tx, c->in + c->in_len, room, deadline, &rx);
    if (r > 0) {
        c->in_len += (size_t)r;
        c->rx_ns = rx;
    }
    return r;
}

/* The second half of a refusal: no more output, and whatever the client still sends
 * is read and dropped until it closes, goes quiet, or the time or byte bound is hit.
 * Closing at once with unread input would make the kernel answer with a reset, and a
 * reset can destroy the error response before the client has read it (RFC 9112 9.6). */
static void linger_until(mllm_conn_t *c, uint64_t end)
{
    if (c->dead || c->tx.ops->shutdown_write(&c->tx) != 0)
        return;
    /* Contents are never looked at, so every lingering connection shares one sink. */
    static char sink[16384];
    size_t total = 0;
    while (total < MLLM_LINGER_BYTES) {
        uint64_t deadline = fiber_now_ns() + MLLM_LINGER_IDLE_NS;
        ssize_t r = mllm_tx_read(&c->tx, sink, sizeof sink, deadline < end ? deadline : end);
        if (r <= 0)
            break;
        total += (size_t)r;
    }
    mllm_metrics.lingering_closes++;
    mllm_metrics.linger_bytes += total;
}

static void linger(mllm_conn_t *c)
{
    linger_until(c, fiber_now_ns() + MLLM_LINGER_TIME_NS);
}

/* Answers a request this layer cannot hand up, in the error shape of the API its path
 * names (anthropic: Anthropic's, whose SDK reads error.type, e.g. request_too_large for a
 * 413; else OpenAI's), and closes the connection lingering. */
static void refuse(mllm_conn_t *c, int status, const char *msg, int anthropic)
{
    mllm_err_t e;
    mllm_err_set(&e, status, status >= 500 ? "server_error" : "invalid_request_error", NULL,
                 NULL, "%s", msg);
    mllm_buf_t b = { 0 };
    if (anthropic)
        mllm_fmt_error_anthropic(&b, &e);
    else
        mllm_fmt_error_openai(&b, &e);
    mllm_log(MLLM_LOG_DEBUG, "conn %" PRIu64 ": %d %s", c->id, status, msg);
    if (!b.oom)
        mllm_conn_respond(c, status, "application/json", b.p, b.len, NULL, 0);
    mllm_buf_free(&b);
    linger(c);
}

void mllm_conn_turn_away(mllm_conn_t *c, int status, const char *code, const char *msg,
                         const char *extra, uint64_t deadline_ns)
{
    mllm_err_t e;
    mllm_err_set(&e, status, status >= 500 ? "server_error" : "invalid_request_error", code,
                 NULL, "%s", msg);
    mllm_buf_t b = { 0 }, h = { 0 };
    mllm_fmt_error_openai(&b, &e);
    mllm_buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
                    mllm_http_reason(status), b.len, extra ? extra : "");
    mllm_buf_add(&h, b.p, b.len);
    /* Written without waiting for the request (HTTP/1.1 allows an early answer); over
     * TLS the first write makes the handshake, within the same deadline. */
    if (!h.oom && !b.oom && mllm_conn_emit(c, h.p, h.len) == 0 &&
        flush_until(c, deadline_ns) == 0) {
        mllm_metrics_status(status);
        linger_until(c, deadline_ns);
    }
    mllm_buf_free(&b);
    mllm_buf_free(&h);
}

/* A failed read: a timeout or no memory is answered, an EOF or a reset is not. */
static void read_failed(mllm_conn_t *c, ssize_t r, const char *what, int anthropic)
{
    if (r < 0 && errno == ETIMEDOUT) {
        char msg[96];
        snprintf(msg, sizeof msg, "The request %s did not arrive in time.", what);
        refuse(c, 408, msg, anthropic);
    } else if (r < 0 && errno == ENOMEM) {
        refuse(c, 503, "mock-llm is out of memory for this request; try again.", anthropic);
    }
}

/* Is the parsed path one of Anthropic's (mllm_route.c's /v1/messages and its
 * count_tokens)? Then this layer's refusals take Anthropic's error shape. A path of
 * length 0 is not parsed (yet): the request line was refused or did not arrive. */
static int anthropic_path(const mllm_conn_t *c, const mllm_http_head_t *h)
{
    if (!h->path.n)
        return 0;
    mllm_str_t p = mllm_span_str(c->in, h->path);
    return mllm_str_ieq(p, "/v1/messages") || mllm_str_ieq(p, "/v1/messages/count_tokens");
}

int mllm_conn_next(mllm_conn_t *c, mllm_request_t *r)
{
    const mllm_config_t *cfg = c->cfg;
    mllm_http_limits_t lim = {
        .max_request_line = cfg->max_request_line,
        .max_head = cfg->max_head,
        .max_body = cfg->max_body,
    };
    mllm_http_head_t *h = &r->head;
    /* Idle keep-alive wait for the first byte; once a request has started its head
     * must be complete within the header timeout (slow-header clients). */
    uint64_t deadline = fiber_now_ns() + cfg->idle_timeout_ns;
    int started = c->in_len > 0, rc;
    /* The request's start is never before the connection was free to read it: its first
     * request from its arrival (a wait for accept() or for the fiber's first turn is
     * the server's, and counts), a later one from now (it waited for the answer before
     * it, which is the client's choice to pipeline). */
    uint64_t not_before = c->accepted_ns ? 0 : fiber_now_ns();
    /* r is the caller's from the last request: its path names bytes that are gone */
    h->path = (mllm_span_t){ 0, 0 };
    if (started)
        deadline = fiber_now_ns() + cfg->header_timeout_ns;
    while ((rc = mllm_http_parse_head(c->in, c->in_len, &lim, h)) == 0) {
        ssize_t n = in_read(c, 0, cfg->max_head + 1024, deadline);
        if (n <= 0) {
            if (started || (n < 0 && errno != ETIMEDOUT))
                read_failed(c, n, "head", 0);
            return 0;
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
        /* The parser fills the head from the request line on, so a refusal after the
         * request line (a header, the declared length) knows the path. */
        refuse(c, -rc, why, anthropic_path(c, h));
        return 0;
    }
    int anthropic = anthropic_path(c, h);
    size_t head = h->head_len, body_len = 0, consumed = 0;
    /* Not to an HTTP/1.0 client: RFC 9110 15.2 forbids interim responses to it. */
    if (h->expect_continue && h->minor >= 1 && (h->chunked || h->content_length > 0) &&
        c->in_len == head) {
        if (mllm_conn_emit(c, "HTTP/1.1 100 Continue\r\n\r\n", 25))
            return 0;
    }
    /* The body: bounded by max_body, due within the header timeout too. From here on
     * c->in may move (realloc): h holds offsets, resolved below once it is final. */
    uint64_t body_deadline = fiber_now_ns() + cfg->header_timeout_ns;
    if (h->chunked) {
        /* Decoded as it arrives, each byte once (the whole body was decoded again after
         * every read before: quadratic in a body of small chunks arriving in small
         * pieces), and the spent framing is dropped after each read: the buffer holds
         * the body and one read, so only the decoded body is bounded by --max-body. */
        size_t framing_max = MLLM_CHUNK_FRAMING_MAX(cfg->max_body);
        mllm_dechunk_t d = { 0 };
        for (;;) {
            rc = mllm_http_dechunk(&d, c->in + head, c->in_len - head, cfg->max_body,
                                   framing_max);
            if (rc)
                break;
            c->in_len = head + mllm_dechunk_compact(&d, c->in + head, c->in_len - head);
            ssize_t n = in_read(c, 0, head + cfg->max_body + 65536, body_deadline);
            if (n <= 0) {
                read_failed(c, n, "body", anthropic);
                return 0;
            }
        }
        if (rc < 0) {
            refuse(c, -rc, rc == -400 ? "The chunked request body is malformed."
                           : d.framing > framing_max
                               ? "The chunked framing of the request body is too large."
                               : "The request body is too large.", anthropic);
            return 0;
        }
        body_len = d.out;
        consumed = d.pos;
    } else {
        body_len = consumed = h->content_length > 0 ? (size_t)h->content_length : 0;
        while (c->in_len - head < body_len) {
            /* Exactly the rest of the body: a pipelined request behind it stays in the
             * socket until its turn. */
            size_t rest = head + body_len - c->in_len;
            ssize_t n = in_read(c, rest, head + body_len + 1024, body_deadline);
            if (n <= 0) {
                read_failed(c, n, "body", anthropic);
                return 0;
            }
        }
    }
    /* Complete: nothing more is read until mllm_conn_release() or mllm_conn_done(), so
     * c->in stays put. */
    uint64_t done_ns = fiber_now_ns();
    r->base = c->in;
    r->method = mllm_span_str(c->in, h->method);
    r->target = mllm_span_str(c->in, h->target);
    r->path = mllm_span_str(c->in, h->path);
    r->minor = h->minor;
    /* From the arrival of the bytes that completed it, when the kernel stamped them:
     * the schedule's phase is then the client's, not the server's backlog's. Starting
     * when the head was parsed let a server behind during a ramp of 10,000 requests
     * (tens of ms at 50,000 events/s) start the schedules of the requests it parsed in
     * one go together, and with fixed gaps they stayed together: events due in bursts
     * of 1.3-2.1x the mean rate per ms for the whole run, against a client that had sent
     * the requests evenly (mock-llm/README, "The tail at 10,000 streams"). Without a
     * stamp (TLS): now, when its last bytes were read, not when its head was: from the
     * head, a body that came 400 ms after it found its first token due already (TTFT
     * 300 ms: the first event 42 ms after the body over TLS, 302 ms over plain). */
    r->start_ns = done_ns;
    if (c->rx_ns)
        r->start_ns = c->rx_ns > not_before ? c->rx_ns : not_before;
    r->keep_alive = h->keep_alive;
    r->body = c->in + head;
    r->body_len = body_len;
    r->consumed = head + consumed;
    c->req_len = r->consumed;
    if (c->accepted_ns) {
        /* accept() to the first complete request: queueing behind other connections'
         * work, the TLS handshake, the client's own sending, reading and parsing */
        mllm_metrics_accept_to_request(done_ns - c->accepted_ns);
        c->accepted_ns = 0;
    }
    return 1;
}

mllm_str_t mllm_request_header(const mllm_request_t *r, const char *name)
{
    return mllm_http_header(&r->head, r->base, name);
}

void mllm_conn_release(mllm_conn_t *c)
{
    size_t used = c->req_len;
    if (!used)
        return;
    c->req_len = 0;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->in_len == 0) {
        /* An idle or streaming connection keeps no input buffer: at 19,000 streams
         * every kilobyte per connection is 19 MB. */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    } else if (c->in_cap > 4096 && c->in_len <= c->in_cap / 4) {
        /* a pipelined request behind a long one: keep what it needs, not the prompt */
        size_t cap = c->in_len < 1024 ? 1024 : c->in_len;
        char *p = realloc(c->in, cap);
        if (p) {
            c->in = p;
            c->in_cap = cap;
        }
    }
}

void mllm_conn_done(mllm_conn_t *c, const mllm_request_t *r)
{
    (void)r; /* its length is c->req_len, zero when already released */
    mllm_conn_release(c);
    c->peer_data = 0;
}
