/*
 * wl-relay - the AI app server of the relay workload, in C, on one concurrency model: a
 * user POSTs a streaming chat completion to it, it makes the same call to the LLM
 * (mock-llm) and relays the stream back to the user as SSE, event by event, while the
 * LLM is still writing it (user -> app -> LLM). It is the C floor and ceiling beside the
 * Ruby app servers of peers/ruby (Puma, Async::HTTP): the same protocol, the same work
 * per event (read the chunk's delta, as an app does to keep the answer), so that
 * build/bin/wl-llm drives every relay alike.
 *
 * An OpenAI-compatible pass-through of POST /v1/chat/completions: the request body is
 * forwarded unchanged with its x-mock-request-index (so every relay meets the same
 * draws); a 200 stream is re-framed to the user as chunked SSE, one "data:" event per
 * upstream event; an upstream error status is answered with the same status and an
 * OpenAI-style error body (retry-after-ms passed on), so a client's retries still work.
 * Bad requests get their 4xx (400 malformed, 404 other paths, 405, 411, 413 over
 * --max-body, 431 over 16 KiB of head) with Connection: close, readable by the client.
 *
 * Prints "wl-relay listening on 127.0.0.1:PORT" when ready; SIGTERM, SIGINT or
 * --max-seconds stops it, and it then prints one JSON line of what it saw.
 */
#define _GNU_SOURCE
#include "wl.h"
#include "wl_http.h"
#include "wl_llm.h"
#include "wl_report.h"
#include "wl_sse.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HEAD_MAX  16384
#define READ_BUF  4096 /* upstream reads: per connection, on the unit's stack */

static struct {
    const char *model;
    const char *listen;
    const char *upstream;
    int         workers;
    long        max_body;
    double      timeout_s;
    double      max_seconds;
} opt = {
    .model       = NULL,
    .listen      = "127.0.0.1:0",
    .upstream    = NULL,
    .workers     = 0,
    .max_body    = 1 << 20,
    .timeout_s   = 120,
    .max_seconds = 600,
};

/* What the relay saw, published once per request. */
static struct {
    struct sockaddr_in up;
    atomic_ulong       streams_ok;      /* relayed through [DONE] */
    atomic_ulong       streams_failed;  /* upstream or user failed midway */
    atomic_ulong       upstream_errors; /* upstream refused, or answered non-200 */
    atomic_ulong       bad_requests;    /* answered 4xx */
    atomic_ulong       events;          /* SSE events relayed */
} relay;

static wl_stop_t g_stop;

/* ---- one request -------------------------------------------------------------------- */

struct stream {
    int            ufd;       /* the user's connection */
    uint64_t       deadline;
    wl_sse_t       sse;
    int            started;   /* the 200 head went to the user */
    int            done, error, user_gone;
    /* One event re-framed as an HTTP chunk. Per connection, never per thread: a write
     * that would block parks this unit while another runs on the same thread. */
    char          *out;
    size_t         out_cap;
};

static const char k_head_200[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

static int put_event(struct stream *s, const char *data, size_t n)
{
    /* chunk: hex size CRLF, "data: " payload "\n\n", CRLF */
    size_t body = 6 + n + 2;
    size_t need = 16 + 2 + body + 2;
    if (need > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 512;
        while (cap < need)
            cap *= 2;
        char *t = realloc(s->out, cap);
        if (!t)
            return -1;
        s->out = t;
        s->out_cap = cap;
    }
    int h = snprintf(s->out, 20, "%zx\r\n", body);
    char *p = s->out + h;
    memcpy(p, "data: ", 6);
    memcpy(p + 6, data, n);
    memcpy(p + 6 + n, "\n\n\r\n", 4);
    size_t len = (size_t)h + body + 2;
    if (!s->started) {
        if (wl_write(s->ufd, k_head_200, sizeof k_head_200 - 1, s->deadline) < 0)
            return -1;
        s->started = 1;
    }
    return wl_write(s->ufd, s->out, len, s->deadline) < 0 ? -1 : 0;
}

static int on_event(const wl_sse_event_t *ev, void *arg)
{
    struct stream *s = arg;
    /* the app's work on each event: read the delta (an app keeps the answer) */
    wl_chat_chunk_t c;
    if (wl_chat_chunk_parse(ev->data, ev->data_len, &c, NULL, 0) != 0) {
        s->error = 1;
        return 1;
    }
    if (put_event(s, ev->data, ev->data_len) != 0) {
        s->user_gone = 1;
        return 1;
    }
    atomic_fetch_add_explicit(&relay.events, 1, memory_order_relaxed);
    if (c.error) {
        s->error = 1;
        return 1;
    }
    if (c.done) {
        s->done = 1;
        return 1;
    }
    return 0;
}

static int on_body(const char *buf, size_t n, void *arg)
{
    struct stream *s = arg;
    int r = wl_sse_feed(&s->sse, buf, n, on_event, s);
    if (r < 0)
        s->error = 1;
    return r != 0;
}

/* A short answer with Connection: close. */
static void answer(int fd, int status, const char *reason, const char *extra,
                   const char *msg, uint64_t deadline)
{
    char b[768];
    char body[320];
    int bl = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"code\":null}}", msg,
                      status >= 500 || status == 429 ? "upstream_error" : "invalid_request_error");
    int n = snprintf(b, sizeof b,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s", status, reason, extra ? extra : "", bl, body);
    if (n > 0 && (size_t)n < sizeof b)
        wl_write(fd, b, (size_t)n, deadline);
}

/* The value of header `name` in a request head (name without the colon), or NULL. */
static const char *header(const char *head, size_t hl, const char *name, size_t *vl)
{
    size_t nl = strlen(name);
    const char *l = memmem(head, hl, "\r\n", 2);
    while (l && (size_t)(l + 2 - head) < hl) {
        l += 2;
        const char *le = memmem(l, hl - (size_t)(l - head), "\r\n", 2);
        if (!le || le == l)
            break;
        if ((size_t)(le - l) > nl && l[nl] == ':' && strncasecmp(l, name, nl) == 0) {
            const char *v = l + nl + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            *vl = (size_t)(le - v);
            return v;
        }
        l = le;
    }
    return NULL;
}

/* Relays one request whose head is head[0..hl) and body body[0..bl). Returns 0 when the
 * user's connection may serve another request. */
static int relay_one(int ufd, const char *head, size_t hl, const char *body, size_t bl)
{
    uint64_t deadline = wl_now_ns() + (uint64_t)(opt.timeout_s * 1e9);
    size_t il = 0;
    const char *idx = header(head, hl, "x-mock-request-index", &il);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                     "%s%.*s%sContent-Length: %zu\r\n\r\n",
                     opt.upstream, idx ? "x-mock-request-index: " : "",
                     idx ? (int)(il < 24 ? il : 24) : 0, idx ? idx : "", idx ? "\r\n" : "", bl);
    int fd = wl_dial((const struct sockaddr *)&relay.up, sizeof relay.up, deadline);
    if (fd < 0) {
        atomic_fetch_add(&relay.upstream_errors, 1);
        answer(ufd, 502, "Bad Gateway", NULL, "the LLM refused the connection", deadline);
        return -1;
    }
    struct stream s = { .ufd = ufd, .deadline = deadline };
    wl_sse_init(&s.sse, 64 * 1024);
    wl_http_resp_t resp;
    wl_http_resp_init(&resp);
    int rc = -1;
    if (wl_write(fd, req, (size_t)n, deadline) < 0 || wl_write(fd, body, bl, deadline) < 0) {
        atomic_fetch_add(&relay.upstream_errors, 1);
        answer(ufd, 502, "Bad Gateway", NULL, "the LLM closed the connection", deadline);
        goto out;
    }
    char buf[READ_BUF];
    for (;;) {
        ssize_t r = wl_read(fd, buf, sizeof buf, deadline);
        if (r <= 0)
            break;
        if (wl_http_resp_feed(&resp, buf, (size_t)r, on_body, &s) < 0) {
            s.error = 1;
            break;
        }
        if (resp.headers_done && resp.status != 200)
            break;
        if (s.done || s.error || s.user_gone || resp.done)
            break;
    }
    if (resp.status != 200) {
        atomic_fetch_add(&relay.upstream_errors, 1);
        char extra[64] = "";
        if (resp.retry_after_ms >= 0)
            snprintf(extra, sizeof extra, "retry-after-ms: %lld\r\n", (long long)resp.retry_after_ms);
        if (resp.status >= 400 && resp.status < 600)
            answer(ufd, resp.status, "Upstream Error", extra, "the LLM answered an error", deadline);
        else
            answer(ufd, 502, "Bad Gateway", NULL, "no answer from the LLM", deadline);
        goto out;
    }
    if (s.done && wl_write(ufd, "0\r\n\r\n", 5, deadline) == 5) {
        atomic_fetch_add(&relay.streams_ok, 1);
        rc = 0;
    } else {
        /* Midway: the user sees the stream end without [DONE] (its SDK reports it). */
        atomic_fetch_add(&relay.streams_failed, 1);
        if (!s.started)
            answer(ufd, 502, "Bad Gateway", NULL, "the LLM stream failed", deadline);
    }
out:
    wl_close(fd);
    wl_sse_free(&s.sse);
    free(s.out);
    return rc;
}

/* Serves requests on one user connection (keep-alive) until it closes or errs. */
static void relay_handle(int ufd, void *arg)
{
    (void)arg;
    char *buf = malloc(HEAD_MAX);
    size_t have = 0;
    if (!buf)
        return;
    for (;;) {
        uint64_t dl = wl_now_ns() + (uint64_t)(opt.timeout_s * 1e9);
        long cl = 0;
        int cls = 0;
        long hl = 0;
        while ((hl = wl_http_request_head(buf, have, &cl, &cls)) == 0) {
            if (have == HEAD_MAX) {
                atomic_fetch_add(&relay.bad_requests, 1);
                answer(ufd, 431, "Request Header Fields Too Large", NULL, "request head too large", dl);
                goto out;
            }
            ssize_t r = wl_read(ufd, buf + have, HEAD_MAX - have, dl);
            if (r <= 0)
                goto out;
            have += (size_t)r;
        }
        if (hl < 0) {
            atomic_fetch_add(&relay.bad_requests, 1);
            answer(ufd, 400, "Bad Request", NULL, "malformed request", dl);
            goto out;
        }
        int post = have >= 5 && memcmp(buf, "POST ", 5) == 0;
        const char *path = memchr(buf, ' ', (size_t)hl);
        int chat = path && (size_t)(buf + hl - path) > 22 &&
                   memcmp(path + 1, "/v1/chat/completions", 20) == 0 &&
                   (path[21] == ' ' || path[21] == '?');
        if (!chat) {
            atomic_fetch_add(&relay.bad_requests, 1);
            answer(ufd, 404, "Not Found", NULL, "only POST /v1/chat/completions is relayed", dl);
            goto out;
        }
        if (!post) {
            atomic_fetch_add(&relay.bad_requests, 1);
            answer(ufd, 405, "Method Not Allowed", "Allow: POST\r\n", "use POST", dl);
            goto out;
        }
        size_t vl;
        if (!header(buf, (size_t)hl, "content-length", &vl)) {
            atomic_fetch_add(&relay.bad_requests, 1);
            answer(ufd, 411, "Length Required", NULL, "Content-Length required", dl);
            goto out;
        }
        if (cl > opt.max_body) {
            atomic_fetch_add(&relay.bad_requests, 1);
            answer(ufd, 413, "Payload Too Large", NULL, "request body too large", dl);
            /* lingering close: let the client finish sending so that it reads the 413
             * instead of a reset */
            shutdown(ufd, SHUT_WR);
            for (long left = cl - (long)(have - (size_t)hl); left > 0;) {
                ssize_t r = wl_read(ufd, buf, HEAD_MAX, wl_now_ns() + 2000000000ull);
                if (r <= 0)
                    break;
                left -= r;
            }
            goto out;
        }
        /* The request's whole body (a real one carries kilobytes to hundreds of
         * kilobytes of history and tools): one heap block of head + body. */
        size_t total = (size_t)hl + (size_t)cl;
        char *req = buf;
        if (total > HEAD_MAX) {
            req = malloc(total);
            if (!req) {
                answer(ufd, 503, "Service Unavailable", NULL, "out of memory", dl);
                goto out;
            }
            memcpy(req, buf, have);
        }
        size_t got = have;
        while (got < total) {
            ssize_t r = wl_read(ufd, req + got, total - got, dl);
            if (r <= 0) {
                if (req != buf)
                    free(req);
                goto out;
            }
            got += (size_t)r;
        }
        /* A relay of streams: a non-streaming call would need another path through
         * it, and none of the benchmarks makes one. Said plainly instead of a 502. */
        size_t sl = 0;
        const char *sv = wl_json_find(req + hl, (size_t)cl, "stream", &sl);
        int rc = -1;
        if (!sv || sl != 4 || memcmp(sv, "true", 4) != 0) {
            atomic_fetch_add(&relay.bad_requests, 1);
            answer(ufd, 400, "Bad Request", NULL,
                   "this relay streams: set stream to true", dl);
        } else {
            rc = relay_one(ufd, req, (size_t)hl, req + hl, (size_t)cl);
        }
        if (req != buf) {
            free(req);
            have = 0;
        } else {
            memmove(buf, buf + total, have - total);
            have -= total;
        }
        if (rc != 0 || cls)
            break;
    }
out:
    free(buf);
}

/* ---- main --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: wl-relay --model M --upstream H:P [options]\n"
        "An AI app server: relays POST /v1/chat/completions to the LLM at --upstream and\n"
        "streams the answer back to the user as SSE while it arrives.\n"
        "  --model M          thread | pool | fiber | fiber-mt\n"
        "  --upstream H:P     the LLM (mock-llm), loopback IPv4\n"
        "  --listen H:P       loopback address (default 127.0.0.1:0: pick a port)\n"
        "  --workers W        pool size (default 25) or fiber-mt schedulers (default cores)\n"
        "  --max-body BYTES   request body limit, 413 above (default 1048576)\n"
        "  --timeout S        per request, upstream included (default 120)\n"
        "  --max-seconds S    stop by itself after S seconds (default 600)\n"
        "  --help\n");
}

static void on_ready(uint16_t port, void *arg)
{
    (void)arg;
    printf("wl-relay listening on 127.0.0.1:%u\n", port);
    fflush(stdout);
}

/* Sleeps until the stop is requested or --max-seconds pass. */
static void *watchdog(void *p)
{
    wl_stop_wait(&g_stop, wl_now_ns() + (uint64_t)(*(double *)p * 1e9), -1);
    wl_stop_request(&g_stop);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "model", 1, 0, 'm' },    { "listen", 1, 0, 'l' },   { "upstream", 1, 0, 'u' },
        { "workers", 1, 0, 'w' },  { "max-body", 1, 0, 'b' }, { "timeout", 1, 0, 'T' },
        { "max-seconds", 1, 0, 'x' }, { "help", 0, 0, 'h' },  { 0, 0, 0, 0 },
    };
    int c, idx = 0;
    double v;
    while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (c) {
        case 'm': opt.model = optarg; break;
        case 'l': opt.listen = optarg; break;
        case 'u': opt.upstream = optarg; break;
        case 'w': if (wl_parse_double(optarg, 1, 100000, &v)) goto bad; opt.workers = (int)v; break;
        case 'b': if (wl_parse_double(optarg, 1, 1 << 30, &v)) goto bad; opt.max_body = (long)v; break;
        case 'T': if (wl_parse_double(optarg, 0.001, 86400, &opt.timeout_s)) goto bad; break;
        case 'x': if (wl_parse_double(optarg, 0.001, 86400, &opt.max_seconds)) goto bad; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        continue;
    bad:
        fprintf(stderr, "wl-relay: bad value for --%s: '%s' (see --help)\n", lo[idx].name, optarg);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "wl-relay: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const wl_model_t *m = opt.model ? wl_model_find(opt.model) : NULL;
    if (!m) {
        fprintf(stderr, "wl-relay: --model must be one of thread, pool, fiber, fiber-mt\n");
        return 2;
    }
    if (!opt.upstream || wl_parse_addr(opt.upstream, &relay.up) != 0) {
        fprintf(stderr, "wl-relay: --upstream 127.x.x.x:PORT is required (loopback only)\n");
        return 2;
    }
    wl_serve_cfg_t cfg = {
        .workers = opt.workers, .handler = relay_handle, .arg = NULL, .stop = &g_stop,
        .on_ready = on_ready,
    };
    if (wl_parse_addr(opt.listen, &cfg.addr) != 0) {
        fprintf(stderr, "wl-relay: bad --listen '%s' (want 127.x.x.x:PORT: loopback only)\n",
                opt.listen);
        return 2;
    }
    if (wl_stop_on_signals(&g_stop) != 0) {
        perror("wl-relay: eventfd");
        return 1;
    }
    wl_raise_nofile();
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, &opt.max_seconds);
    wl_run_stats_t st = { 0 };
    double cpu0 = wl_cpu_seconds();
    if (m->serve(&cfg, &st) != 0) {
        fprintf(stderr, "wl-relay: cannot listen on %s: %s\n", opt.listen, strerror(errno));
        wl_stop_request(&g_stop);
        pthread_join(wd, NULL);
        return 1;
    }
    wl_stop_request(&g_stop);
    pthread_join(wd, NULL);
    printf("{\"model\":\"%s\",\"streams_ok\":%lu,\"streams_failed\":%lu,\"upstream_errors\":%lu,"
           "\"bad_requests\":%lu,\"events\":%lu,\"conns\":%zu,\"peak_live\":%zu,"
           "\"spawn_failed\":%zu,\"spawn_errno\":\"%s\",\"accept_failed\":%zu,"
           "\"accept_errno\":\"%s\",\"cpu_s\":%.6f,\"rss_peak_kib\":%ld}\n",
           m->name, atomic_load(&relay.streams_ok), atomic_load(&relay.streams_failed),
           atomic_load(&relay.upstream_errors), atomic_load(&relay.bad_requests),
           atomic_load(&relay.events), st.started, st.peak_live, st.spawn_failed,
           st.spawn_failed ? wl_errname(st.spawn_errno) : "", st.accept_failed,
           st.accept_failed ? wl_errname(st.accept_errno) : "", wl_cpu_seconds() - cpu0,
           wl_self_status_kib("VmHWM"));
    return 0;
}
