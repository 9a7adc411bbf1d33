/* fake_llm.c - the test server; see wl_fake.h. */
#define _GNU_SOURCE
#include "wl_fake.h"
#include "wl.h"
#include "wl_http.h"
#include "wl_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL(s) (wl_now_ns() + (uint64_t)(s) * 1000000000u)

/* Writes a piece of body, as one chunk when chunked. */
static int put(int fd, const wl_fake_cfg_t *c, const char *s, size_t n)
{
    if (!n)
        return 0;
    if (c->chunked) {
        char h[32];
        int hl = snprintf(h, sizeof h, "%zx\r\n", n);
        if (wl_write(fd, h, (size_t)hl, DL(10)) < 0)
            return -1;
    }
    if (wl_write(fd, s, n, DL(10)) < 0)
        return -1;
    if (c->chunked && wl_write(fd, "\r\n", 2, DL(10)) < 0)
        return -1;
    return 0;
}

/* Sends one event; in odd mode it goes out in three pieces with a pause between, cut at
 * places that fall inside the JSON, and between a CR and its LF. */
static int event(int fd, const wl_fake_cfg_t *c, const char *ev, size_t n, unsigned k)
{
    if (!c->odd_framing)
        return put(fd, c, ev, n);
    size_t a = n / 3 + (k % 5), b = n - 1; /* b: between the final CR and LF, when CRLF */
    if (a >= b)
        a = b / 2;
    if (put(fd, c, ev, a) < 0)
        return -1;
    wl_sleep_ns(200000);
    if (put(fd, c, ev + a, b - a) < 0)
        return -1;
    wl_sleep_ns(200000);
    return put(fd, c, ev + b, n - b);
}

static int stream(int fd, const wl_fake_cfg_t *c, int tokens)
{
    const char *hdr = c->chunked
        ? "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
          "Transfer-Encoding: chunked\r\n\r\n"
        : "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
          "Connection: close\r\n\r\n";
    if (wl_write(fd, hdr, strlen(hdr), DL(10)) < 0)
        return -1;
    uint64_t t = wl_now_ns() + c->ttft_ns;
    char ev[512];
    int n;
    n = snprintf(ev, sizeof ev,
                 "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                 "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    if (event(fd, c, ev, (size_t)n, 0) < 0)
        return -1;
    for (int i = 0; i < tokens; i++) {
        wl_sleep_until(t);
        t += c->gap_ns;
        const char *eol = "\n";
        if (c->odd_framing)
            eol = (i % 3 == 0) ? "\r\n" : (i % 3 == 1) ? "\r" : "\n";
        if (c->odd_framing && i % 4 == 1) {
            /* a comment line and JSON split over two data lines (joined by "\n") */
            n = snprintf(ev, sizeof ev,
                         ": keep-alive%s"
                         "data: {\"choices\":[{\"index\":0,\"delta\":%s"
                         "data: {\"content\":\"tok%d \\u00e9\\\"\"},\"finish_reason\":null}]}%s%s",
                         eol, eol, i, eol, eol);
        } else {
            n = snprintf(ev, sizeof ev,
                         "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \\u00e9\\\"\"},"
                         "\"finish_reason\":null}]}%s%s", i, eol, eol);
        }
        if (event(fd, c, ev, (size_t)n, (unsigned)i) < 0)
            return -1;
    }
    n = snprintf(ev, sizeof ev,
                 "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                 "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":%d,"
                 "\"total_tokens\":%d}}\n\ndata: [DONE]\n\n", tokens, tokens + 9);
    if (event(fd, c, ev, (size_t)n, 7) < 0)
        return -1;
    if (c->chunked && wl_write(fd, "0\r\n\r\n", 5, DL(10)) < 0)
        return -1;
    return c->chunked ? 0 : -1; /* without chunking the end of the body is the close */
}

static int answer(int fd, const wl_fake_cfg_t *c, int tokens)
{
    char body[4096];
    size_t bl = (size_t)snprintf(body, sizeof body,
                                 "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                                 "\"message\":{\"role\":\"assistant\",\"content\":\"");
    for (int i = 0; i < tokens && bl < sizeof body - 200; i++)
        bl += (size_t)snprintf(body + bl, sizeof body - bl, "tok%d ", i);
    bl += (size_t)snprintf(body + bl, sizeof body - bl,
                           "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"completion_tokens\":%d}}",
                           tokens);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      bl);
    wl_sleep_ns(c->ttft_ns);
    if (wl_write(fd, head, (size_t)hl, DL(10)) < 0 || wl_write(fd, body, bl, DL(10)) < 0)
        return -1;
    return 0;
}

void wl_fake_llm_handle(int fd, void *arg)
{
    const wl_fake_cfg_t *c = arg;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t n = wl_read(fd, buf + have, sizeof buf - have - 1, DL(60));
        if (n <= 0)
            return;
        have += (size_t)n;
        long cl;
        int cls;
        long h = wl_http_request_head(buf, have, &cl, &cls);
        if (h < 0 || (h == 0 && have >= sizeof buf - 1)) {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
            wl_write(fd, bad, sizeof bad - 1, DL(10));
            return;
        }
        if (h == 0 || (size_t)(h + cl) > have)
            continue;
        buf[h + cl] = 0;
        if (c->on_request)
            c->on_request(buf, (size_t)(h + cl), c->on_request_arg);
        if (strncmp(buf, "POST /v1/chat/completions ", 26) != 0) {
            static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
            if (wl_write(fd, nf, sizeof nf - 1, DL(10)) < 0)
                return;
        } else {
            const char *body = buf + h;
            size_t vl;
            const char *v = wl_json_find(body, (size_t)cl, "stream", &vl);
            int is_stream = v && vl == 4 && memcmp(v, "true", 4) == 0;
            int tokens = c->tokens;
            v = wl_json_find(body, (size_t)cl, "max_tokens", &vl);
            if (v) {
                int mt = atoi(v);
                if (mt > 0 && mt < tokens)
                    tokens = mt;
            }
            if ((is_stream ? stream(fd, c, tokens) : answer(fd, c, tokens)) < 0)
                return;
        }
        memmove(buf, buf + h + cl, have - (size_t)(h + cl));
        have -= (size_t)(h + cl);
        if (cls)
            return;
    }
}
