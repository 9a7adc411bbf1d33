/*
 * wl_fake.h - a tiny OpenAI-style chat server for tests and for running the workloads
 * without mock-llm: fixed first-token delay and token gap, and a deliberately awkward
 * framing mode (events split across writes and between CR and LF, CR-only and CRLF line
 * ends, comment lines, multi-line data) that a correct SSE client must survive.
 */
#ifndef WL_FAKE_H
#define WL_FAKE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wl_fake_cfg {
    int      tokens;      /* content deltas per answer (capped by the request's max_tokens) */
    uint64_t ttft_ns;     /* delay before the first delta */
    uint64_t gap_ns;      /* delay between deltas */
    int      odd_framing; /* split and vary the framing as described above */
    int      chunked;     /* 1: Transfer-Encoding: chunked; 0: Connection: close */
    /* Called with each whole request (head and body, NUL-terminated) before it is
     * answered, when set: lets a test see what the client sent. */
    void   (*on_request)(const char *req, size_t n, void *arg);
    void    *on_request_arg;
} wl_fake_cfg_t;

/* A wl_conn_fn serving POST /v1/chat/completions (stream true or false); arg is a
 * wl_fake_cfg_t. Other paths get 404, malformed requests 400. */
void wl_fake_llm_handle(int fd, void *arg);

#ifdef __cplusplus
}
#endif

#endif
