/*
 * wl_http.h - the keep-alive HTTP/1.1 server of the throughput workload: one connection
 * handler (a wl_conn_fn) that answers every request with a small fixed response, either
 * at once ("hello") or after a blocking-style non-streaming call to mock-llm
 * ("upstream"), so the I/O wait shows.
 */
#ifndef WL_HTTP_H
#define WL_HTTP_H

#include "wl.h"

#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The fixed response body, the same bytes the nginx anchor is configured to send. */
#define WL_HTTP_BODY "Hello, world\n"

typedef struct wl_http_srv {
    int                upstream;        /* 0: hello; 1: call mock-llm first */
    struct sockaddr_in upstream_addr;
    int                upstream_tokens; /* max_tokens of the upstream call */
    uint64_t           idle_ns;         /* close a connection idle this long; 0 = never */
    atomic_ulong       requests;        /* answered */
    atomic_ulong       bad_requests;    /* 400/431 answered, then closed */
    atomic_ulong       upstream_errors; /* 502 answered */
    atomic_ulong       conns_served;    /* connections that got at least one response: a
                                           pool leaves the rest waiting in its queue */
} wl_http_srv_t;

/* The handler: serves requests on fd until the peer closes, asks to close, sends a bad
 * request, or stays idle past idle_ns. arg is a wl_http_srv_t. Pipelined requests are
 * answered in order. */
void wl_http_handle(int fd, void *arg);

/* Finds the end of the first request head in buf (the byte after "\r\n\r\n"), and its
 * Content-Length and whether it asks to close. Returns the head length, 0 when it is
 * incomplete, or -1 when malformed. */
long wl_http_request_head(const char *buf, size_t n, long *content_length, int *close);

#ifdef __cplusplus
}
#endif

#endif
