/*
 * wl_llm.h - one streaming LLM conversation, the unit of the llm workload, and the
 * blocking-style upstream call of the HTTP workload. Both speak the OpenAI Chat
 * Completions API over HTTP/1.1 to mock-llm, through wl_read/wl_write, so the same code
 * runs on threads and on fibers.
 */
#ifndef WL_LLM_H
#define WL_LLM_H

#include "wl.h"
#include "wl_sse.h"

#include <netinet/in.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wl_db_hold {
    WL_DB_NONE,  /* no shared resource */
    WL_DB_JOB,   /* hold one unit for the whole conversation, like a thread that checks a
                    database connection out for its lifetime */
    WL_DB_QUERY, /* hold one unit only around two short queries (load, then save) */
};

typedef struct wl_conv_cfg {
    struct sockaddr_in addr;        /* mock-llm */
    int                max_tokens;  /* asked of the server */
    uint64_t           timeout_ns;  /* whole conversation, from arrival; 0 = none */
    int                db_hold;     /* enum wl_db_hold */
    uint64_t           db_query_ns; /* simulated query time for WL_DB_QUERY */
    /* Retries like the official OpenAI SDKs: on a connection failure or a 408, 409, 429
     * or 5xx answer before the stream starts, wait retry-after-ms / retry-after (up to
     * 60 s), else 0.5 s x 2^attempt (at most 8 s, minus up to 25% jitter), then try
     * again, at most this many times. A stream that fails midway is not retried. */
    int                retries;
    /* Conversation i asks mock-llm for request index index_base + i (header
     * x-mock-request-index), on every attempt: its random draws (first-token time,
     * speed, length, text) then depend on i alone, the same on every model and run. */
    uint64_t           index_base;
    /* TLS (wl_tls.h): NULL speaks plain HTTP. Handshakes count in the conversation's
     * time and CPU, as they do for a real client (one connection per conversation). */
    struct wl_tls     *tls;
} wl_conv_cfg_t;

#define WL_ITL_BUCKETS 96 /* up to 2^24 us = 16.8 s */

/* The bucket of a gap, and the upper bound of a bucket, in microseconds. */
int    wl_itl_bucket(uint64_t gap_ns);
double wl_itl_bucket_upper_us(int b);

/* What one conversation saw. Times are CLOCK_MONOTONIC ns; 0 = did not happen. */
typedef struct wl_conv {
    uint64_t arrival_ns;     /* when the user asked (set by the caller) */
    uint64_t start_ns;       /* when a unit began working on it */
    uint64_t first_token_ns; /* first non-empty content delta handed to the sink */
    uint64_t end_ns;
    uint32_t tokens;         /* usage.completion_tokens if sent, else content deltas */
    uint32_t deltas;         /* content deltas with at least one byte */
    uint64_t content_bytes;
    uint64_t last_delta_ns;  /* when the latest delta arrived */
    /* Gaps between deltas as the client saw them, log-bucketed: bucket b holds gaps in
     * [2^(b/4), 2^((b+1)/4)) microseconds (4 buckets per octave, ~19% wide), so a run's
     * inter-token percentiles can be merged from conversations without keeping every
     * timestamp. 192 bytes per conversation. */
    uint16_t itl_hist[WL_ITL_BUCKETS];
    uint32_t attempts;       /* requests sent (1 + retries used) */
    int      ok;             /* [DONE] seen after a finish_reason, no error */
    char     finish[16];
    char     cause[48];      /* why it failed: "connect: EMFILE", "http 429", ... */
} wl_conv_t;

/* Records one parsed chat chunk of conversation o, as it arrives: for a delta with
 * content, the first token's time (or the gap since the previous delta, in itl_hist),
 * the delta and its bytes; the finish reason; usage's completion tokens. Returns 1 when k
 * carried content (the caller hands it to its sink), else 0. Every client records chunks
 * with this one function, so their figures mean the same; inline, as it runs per token. */
static inline int wl_conv_note_chunk(wl_conv_t *o, const wl_chat_chunk_t *k)
{
    if (k->finish[0])
        snprintf(o->finish, sizeof o->finish, "%s", k->finish);
    if (k->usage_completion_tokens >= 0)
        o->tokens = (uint32_t)k->usage_completion_tokens;
    if (!k->has_content || !k->content_len)
        return 0;
    uint64_t now = wl_now_ns();
    if (!o->first_token_ns) {
        o->first_token_ns = now;
    } else {
        uint16_t *h = &o->itl_hist[wl_itl_bucket(now - o->last_delta_ns)];
        if (*h < UINT16_MAX)
            (*h)++;
    }
    o->last_delta_ns = now;
    o->deltas++;
    o->content_bytes += k->content_len;
    return 1;
}

/* The "broadcast": every content delta is handed here, as a server would push it to the
 * user's browser. The default sink folds the bytes into a per-thread checksum, so the
 * work cannot be optimised away and costs the same on every model. */
typedef void (*wl_sink_fn)(size_t conv, const char *content, size_t n, void *arg);
void wl_sink_checksum(size_t conv, const char *content, size_t n, void *arg);
/* The calling thread's checksum so far. */
uint64_t wl_sink_thread_sum(void);

/* Runs conversation number index: optionally takes a resource unit, connects, POSTs a
 * streaming chat completion, reads the SSE stream delta by delta into sink, and fills
 * *out (its arrival_ns must be set). Returns 0 when ok, -1 with out->cause set. */
int wl_conv_run(const wl_conv_cfg_t *cfg, size_t index, wl_res_t *res, wl_sink_fn sink,
                void *sink_arg, wl_conv_t *out);

/* A non-streaming chat completion on the keep-alive connection *fd (dialled when < 0,
 * closed and set to -1 when the server closes it). Reads the whole response. Returns the
 * content bytes of the answer, or -1 with errno (EPROTO for a non-200 answer). */
long wl_llm_complete(int *fd, const struct sockaddr_in *addr, int max_tokens,
                     uint64_t deadline_ns);

/* The run's inter-token gaps: merges the itl_hist of convs[0..n) and sets q_ms[i] to the
 * qs[i] quantile (0 < qs[i] <= 1) of the gaps, as the upper bound of its bucket (at most
 * ~19% above the true value) in milliseconds, 0 when there are no gaps. Returns the
 * number of gaps. */
uint64_t wl_itl_quantiles_ms(const wl_conv_t *convs, size_t n, const double *qs,
                             double *q_ms, int nq);

/* Failure causes of a run, counted by their text. */
typedef struct wl_cause { char what[48]; size_t n; } wl_cause_t;

/* Counts one failure for why in causes[0..*ncause): a new cause is added while there is
 * room (cap); past cap, new causes go uncounted. */
void wl_cause_count(wl_cause_t *causes, size_t *ncause, size_t cap, const char *why);

/* Writes causes as the members of a JSON object: "why":n,"why":n (no braces). */
void wl_causes_print(FILE *f, const wl_cause_t *causes, size_t ncause);

/* Name of an errno value ("EMFILE"), for failure causes. */
const char *wl_errname(int e);

#ifdef __cplusplus
}
#endif

#endif /* WL_LLM_H */
