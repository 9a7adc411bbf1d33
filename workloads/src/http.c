/*
 * http.c - the throughput workload's server handler. It is deliberately small and
 * comparable to what nginx does for `return 200 "..."`: parse the request head, answer
 * a fixed body with Content-Length, keep the connection alive.
 */
#define _GNU_SOURCE
#include "wl_http.h"
#include "wl_llm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQ_BUF 4096

static const char k_ok[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: fiberbench\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: keep-alive\r\n\r\n" WL_HTTP_BODY;
static const char k_bad[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char k_big[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    "Connection: close\r\n\r\n";
static const char k_502[] =
    "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";

_Static_assert(sizeof WL_HTTP_BODY - 1 == 13, "Content-Length above must match the body");

long wl_http_request_head(const char *buf, size_t n, long *content_length, int *close)
{
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - buf) + 4;
    *content_length = 0;
    *close = 0;
    const char *sp = memchr(buf, ' ', head);
    if (!sp || sp == buf)
        return -1;
    const char *eol = memmem(buf, head, "\r\n", 2);
    if (eol - buf >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0)
        *close = 1; /* HTTP/1.0 without keep-alive */
    else if (eol - buf < 8 || memcmp(eol - 8, "HTTP/1.", 7) != 0)
        return -1;
    for (const char *l = eol + 2; l < end;) {
        const char *le = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        size_t ll = (size_t)(le - l);
        if (ll > 15 && strncasecmp(l, "content-length:", 15) == 0) {
            char num[24];
            size_t k = ll - 15 < sizeof num - 1 ? ll - 15 : sizeof num - 1;
            memcpy(num, l + 15, k);
            num[k] = 0;
            char *e;
            long v = strtol(num, &e, 10);
            if (v < 0 || e == num)
                return -1;
            *content_length = v;
        } else if (ll > 11 && strncasecmp(l, "connection:", 11) == 0) {
            if (memmem(l, ll, "close", 5))
                *close = 1;
            else if (memmem(l, ll, "keep-alive", 10))
                *close = 0;
        }
        l = le + 2;
    }
    return (long)head;
}

void wl_http_handle(int fd, void *arg)
{
    wl_http_srv_t *srv = arg;
    /* Per connection: wrk's requests are ~40 bytes, a pipelined batch a few hundred.
     * Kept on the unit's stack so it costs what it costs each model. */
    char buf[REQ_BUF];
    size_t have = 0;
    int up = -1;
    /* Counted locally and published once per connection: a shared counter bumped per
     * request would bounce a cache line between cores on the multi-threaded models. */
    unsigned long answered = 0;
    for (;;) {
        uint64_t dl = srv->idle_ns ? wl_now_ns() + srv->idle_ns : WL_FOREVER;
        ssize_t n = wl_read(fd, buf + have, sizeof buf - have, dl);
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t off = 0;
        int close_after = 0;
        /* answer every complete request in the buffer, in order */
        for (;;) {
            long cl;
            int cls;
            long h = wl_http_request_head(buf + off, have - off, &cl, &cls);
            if (h < 0) {
                atomic_fetch_add(&srv->bad_requests, 1);
                wl_write(fd, k_bad, sizeof k_bad - 1, dl);
                goto out;
            }
            if (h == 0 || (size_t)h + (size_t)cl > have - off)
                break; /* incomplete: read more */
            if ((size_t)h + (size_t)cl > sizeof buf) {
                atomic_fetch_add(&srv->bad_requests, 1);
                wl_write(fd, k_big, sizeof k_big - 1, dl);
                goto out;
            }
            off += (size_t)h + (size_t)cl;
            const char *resp = k_ok;
            size_t rlen = sizeof k_ok - 1;
            if (srv->upstream) {
                uint64_t udl = wl_now_ns() + 30ull * 1000000000u;
                if (wl_llm_complete(&up, &srv->upstream_addr, srv->upstream_tokens, udl) < 0) {
                    atomic_fetch_add(&srv->upstream_errors, 1);
                    resp = k_502;
                    rlen = sizeof k_502 - 1;
                }
            }
            if (wl_write(fd, resp, rlen, dl) < 0)
                goto out;
            if (answered++ == 0)
                atomic_fetch_add(&srv->conns_served, 1);
            if (cls) {
                close_after = 1;
                break;
            }
        }
        if (close_after)
            break;
        if (have - off == sizeof buf) {
            atomic_fetch_add(&srv->bad_requests, 1);
            wl_write(fd, k_big, sizeof k_big - 1, dl);
            break;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
out:
    atomic_fetch_add(&srv->requests, answered);
    if (up >= 0)
        wl_close(up);
}
