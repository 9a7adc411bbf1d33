/* mllm_metrics.c - counters and the lateness histogram in Prometheus text format. */
#include "mllm_metrics.h"

#include <fiber.h>

#include <inttypes.h>

mllm_metrics_t mllm_metrics;

/* Fine below a millisecond, where the capacity target (p99 <= 1 ms) is decided, and
 * coarse above it, where only a broken run lands. */
const double mllm_late_bounds_us[MLLM_LATE_BUCKETS] = {
    10, 25, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000,
    5000, 10000, 25000, 50000, 100000, 250000, 1000000, 10000000,
};

const int mllm_statuses[MLLM_NSTATUS] = {
    200, 400, 404, 405, 408, 413, 414, 429, 431, 500, 501, 503, 505, 529, 0, 0,
};

/* The bounds in nanoseconds, as integers (this runs once per event), made from the one
 * table above on first use. */
static uint64_t late_bounds_ns[MLLM_LATE_BUCKETS];

void mllm_metrics_late(uint64_t late_ns)
{
    if (!late_bounds_ns[0])
        for (int k = 0; k < MLLM_LATE_BUCKETS; k++)
            late_bounds_ns[k] = (uint64_t)(mllm_late_bounds_us[k] * 1e3);
    int i = 0;
    /* Most events land in the first few buckets: a linear scan beats a search here. */
    while (i < MLLM_LATE_BUCKETS && late_ns > late_bounds_ns[i])
        i++;
    mllm_metrics.late_bucket[i]++;
    mllm_metrics.late_count++;
    mllm_metrics.late_sum_ns += late_ns;
    if (late_ns > mllm_metrics.late_max_ns)
        mllm_metrics.late_max_ns = late_ns;
}

void mllm_metrics_accept_to_request(uint64_t ns)
{
    double us = (double)ns / 1e3;
    int i = 0;
    while (i < MLLM_LATE_BUCKETS && us > mllm_late_bounds_us[i])
        i++;
    mllm_metrics.a2r_bucket[i]++;
    mllm_metrics.a2r_count++;
    mllm_metrics.a2r_sum_s += us / 1e6;
    if (us / 1e6 > mllm_metrics.a2r_max_s)
        mllm_metrics.a2r_max_s = us / 1e6;
}

void mllm_metrics_status(int status)
{
    for (int i = 0; i < MLLM_NSTATUS; i++)
        if (mllm_statuses[i] == status) {
            mllm_metrics.requests[i]++;
            return;
        }
    mllm_metrics.requests[MLLM_NSTATUS]++;
}

static void counter(mllm_buf_t *b, const char *name, const char *help, const char *type,
                    uint64_t v)
{
    mllm_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                    name, v);
}

void mllm_metrics_format(mllm_buf_t *b)
{
    const mllm_metrics_t *m = &mllm_metrics;
    counter(b, "mllm_connections_active", "Open client connections.", "gauge",
            m->conns_active);
    counter(b, "mllm_connections_total", "Connections accepted.", "counter", m->conns_total);
    counter(b, "mllm_connections_refused_total", "Connections refused at --max-conns.",
            "counter", m->conns_refused_max);
    counter(b, "mllm_accept_emfile_total", "accept() hit the open-file limit and backed off.",
            "counter", m->accept_emfile);
    counter(b, "mllm_streams_active", "Streaming responses in progress.", "gauge",
            m->streams_active);
    counter(b, "mllm_streams_total", "Streaming responses started.", "counter",
            m->streams_total);
    counter(b, "mllm_streams_aborted_total", "Streams whose client went away mid-stream.",
            "counter", m->streams_aborted);
    counter(b, "mllm_clients_dropped_slow_total",
            "Clients dropped because their unread output exceeded the buffer bound.",
            "counter", m->clients_dropped_slow);
    counter(b, "mllm_tokens_sent_total",
            "Completion tokens sent (taken by the connection: written, or queued within "
            "--max-pending; not a batch dropped at a slow-reader overrun; a whole answer "
            "once written whole).", "counter",
            m->tokens_sent);
    counter(b, "mllm_events_sent_total",
            "Stream events (SSE frames with content) sent, counted as tokens are.",
            "counter", m->events_sent);
    counter(b, "mllm_events_backlogged_total",
            "Events queued behind a slow reader instead of written at once.", "counter",
            m->events_backlogged);
    counter(b, "mllm_ticker_writes_total",
            "Stream writes made by the timer wheel's ticker (the rest by streams' fibers).",
            "counter", m->ticker_writes);
    counter(b, "mllm_ticker_late_writes_total",
            "Ticker writes more than 1 ms late for their stream (they do not count towards "
            "its 64 per round).", "counter", m->ticker_late_writes);
    counter(b, "mllm_ticker_handovers_total",
            "Streams the ticker handed to their fibers because their next event was due "
            "by the end of its write.", "counter", m->ticker_handovers);
    counter(b, "mllm_ticker_parks_total",
            "Times the ticker, behind, let the scheduler poll after 64 stream writes.",
            "counter", m->ticker_parks);
    counter(b, "mllm_requests_started_behind_total",
            "Requests whose answer began (parsed, checked, first event) while the timer "
            "wheel's ticker had due stream events it had not written.", "counter",
            m->started_behind);
    counter(b, "mllm_pending_bytes",
            "Output queued in the server for clients whose sockets had no room (slow readers).",
            "gauge", m->pending_bytes);
    counter(b, "mllm_writes_total", "write() calls on client sockets.", "counter", m->writes);
    counter(b, "mllm_bytes_sent_total", "Bytes written to client sockets.", "counter",
            m->bytes_sent);
    counter(b, "mllm_lingering_closes_total",
            "Refused requests whose connection was closed lingering (answer, then drain).",
            "counter", m->lingering_closes);
    counter(b, "mllm_linger_discarded_bytes_total",
            "Request bytes read and dropped after a refusal, before the close.", "counter",
            m->linger_bytes);
    counter(b, "mllm_tls_handshakes_total", "TLS handshakes completed (--tls).", "counter",
            m->tls_handshakes);
    counter(b, "mllm_tls_handshake_failures_total",
            "TLS handshakes that failed: the client sent no TLS, or TLS we refuse.",
            "counter", m->tls_handshake_failures);
    counter(b, "mllm_tls_write_want_read_total",
            "TLS writes that would block until the client sends more (a post-handshake "
            "message half read).",
            "counter", m->tls_write_want_read);
    mllm_buf_adds(b, "# HELP mllm_requests_total Responses by HTTP status.\n"
                     "# TYPE mllm_requests_total counter\n");
    for (int i = 0; i < MLLM_NSTATUS; i++)
        if (mllm_statuses[i])
            mllm_buf_printf(b, "mllm_requests_total{status=\"%d\"} %" PRIu64 "\n",
                            mllm_statuses[i], m->requests[i]);
    mllm_buf_printf(b, "mllm_requests_total{status=\"other\"} %" PRIu64 "\n",
                    m->requests[MLLM_NSTATUS]);
    mllm_buf_adds(b, "# HELP mllm_emit_lateness_seconds How long after its deadline each "
                     "token event was handed to the kernel.\n"
                     "# TYPE mllm_emit_lateness_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < MLLM_LATE_BUCKETS; i++) {
        cum += m->late_bucket[i];
        mllm_buf_printf(b, "mllm_emit_lateness_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                        mllm_late_bounds_us[i] / 1e6, cum);
    }
    cum += m->late_bucket[MLLM_LATE_BUCKETS];
    mllm_buf_printf(b, "mllm_emit_lateness_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    mllm_buf_printf(b, "mllm_emit_lateness_seconds_sum %.9f\n", (double)m->late_sum_ns / 1e9);
    mllm_buf_printf(b, "mllm_emit_lateness_seconds_count %" PRIu64 "\n", m->late_count);
    mllm_buf_adds(b, "# HELP mllm_accept_to_request_seconds From accept() to the first "
                     "complete request of the connection (TLS handshake included).\n"
                     "# TYPE mllm_accept_to_request_seconds histogram\n");
    cum = 0;
    for (int i = 0; i < MLLM_LATE_BUCKETS; i++) {
        cum += m->a2r_bucket[i];
        mllm_buf_printf(b, "mllm_accept_to_request_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                        mllm_late_bounds_us[i] / 1e6, cum);
    }
    cum += m->a2r_bucket[MLLM_LATE_BUCKETS];
    mllm_buf_printf(b, "mllm_accept_to_request_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    mllm_buf_printf(b, "mllm_accept_to_request_seconds_sum %.9f\n", m->a2r_sum_s);
    mllm_buf_printf(b, "mllm_accept_to_request_seconds_count %" PRIu64 "\n", m->a2r_count);
    mllm_buf_printf(b, "mllm_accept_to_request_seconds_max %.9f\n", m->a2r_max_s);
    /* The time of this snapshot on CLOCK_MONOTONIC (the clock of every deadline): a load
     * client divides the events between two snapshots by the server's own interval, not
     * by its own, which also holds the two /metrics round trips. */
    mllm_buf_printf(b, "# HELP mllm_monotonic_seconds CLOCK_MONOTONIC when this was "
                       "formatted.\n# TYPE mllm_monotonic_seconds gauge\n"
                       "mllm_monotonic_seconds %.9f\n", (double)fiber_now_ns() / 1e9);
    mllm_buf_printf(b, "# HELP mllm_emit_lateness_max_seconds Largest lateness seen.\n"
                       "# TYPE mllm_emit_lateness_max_seconds gauge\n"
                       "mllm_emit_lateness_max_seconds %.9f\n", (double)m->late_max_ns / 1e9);
}
