/*
 * mllm_metrics.h - the server's counters and the emission-lateness histogram, and their
 * Prometheus text form (GET /metrics). One scheduler thread owns them: no atomics.
 */
#ifndef MLLM_METRICS_H
#define MLLM_METRICS_H

#include "mllm_api.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bounds of the lateness buckets in microseconds; a last +Inf bucket follows. */
#define MLLM_LATE_BUCKETS 22
extern const double mllm_late_bounds_us[MLLM_LATE_BUCKETS];

/* Statuses counted one by one; others land in "other". */
#define MLLM_NSTATUS 16
extern const int mllm_statuses[MLLM_NSTATUS];

typedef struct mllm_metrics {
    uint64_t conns_active, conns_total, conns_refused_max;
    uint64_t accept_emfile;          /* accept() hit the open-file limit and backed off */
    uint64_t streams_active, streams_total, streams_aborted; /* aborted: client gone */
    uint64_t clients_dropped_slow;   /* output buffer of a slow reader exceeded its bound */
    uint64_t tokens_sent, events_sent, writes, bytes_sent;
    uint64_t events_backlogged;      /* events queued behind a slow reader */
    uint64_t ticker_writes;          /* stream writes made by the wheel's ticker */
    uint64_t ticker_late_writes;     /* of those, > 1 ms late (not counted towards its 64) */
    uint64_t ticker_handovers;       /* streams whose next event was due after its write: to their fiber */
    uint64_t ticker_parks;           /* the ticker's 1 ns parks after 64 writes (mllm_wheel.c) */
    uint64_t started_behind;         /* answers begun while the ticker had due streams to write */
    uint64_t pending_bytes;          /* output queued for readers the kernel had no room for */
    uint64_t tls_handshakes, tls_handshake_failures; /* --tls */
    uint64_t tls_write_want_read;    /* SSL_write calls that had to read first (mllm_tls.c) */
    uint64_t lingering_closes;       /* refusals closed lingering (mllm_conn.c) */
    uint64_t linger_bytes;           /* request bytes read and dropped while lingering */
    uint64_t requests[MLLM_NSTATUS + 1];
    uint64_t late_bucket[MLLM_LATE_BUCKETS + 1];
    uint64_t late_count;
    /* accept() to the first complete request of a connection: the same buckets */
    uint64_t a2r_bucket[MLLM_LATE_BUCKETS + 1];
    uint64_t a2r_count;
    double   a2r_sum_s, a2r_max_s;
    uint64_t late_sum_ns; /* integers: a per-event add, no floating point */
    uint64_t late_max_ns;
} mllm_metrics_t;

extern mllm_metrics_t mllm_metrics;

/* Records one event's emission lateness (ns after its deadline). */
void mllm_metrics_late(uint64_t late_ns);

/* Records the time from accept() to a connection's first complete request. */
void mllm_metrics_accept_to_request(uint64_t ns);

/* Counts a response with this status. */
void mllm_metrics_status(int status);

/* Appends the Prometheus text exposition of every metric to b. */
void mllm_metrics_format(mllm_buf_t *b);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_METRICS_H */
