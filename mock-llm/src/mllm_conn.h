/*
 * mllm_conn.h - HTTP/1.x framing of one connection, over a transport (mllm_transport.h).
 *
 * This layer owns the connection's input buffer. It reads until one request is
 * complete, head and body (Content-Length or chunked, within the configured limits),
 * and only then hands it up: the head is parsed into offsets while the body is still
 * arriving (the buffer moves as it grows) and resolved into strings once nothing more
 * will be read for this request. It answers what it refuses itself (400, 408, 413,
 * 414, 431, 501, 505, in OpenAI's error shape) and closes those connections lingering:
 * the answer goes out, then whatever the client is still sending is read and dropped
 * for a bounded time and byte count, so the client reads the answer instead of a
 * connection reset. On the way down it frames responses (Content-Length or chunked)
 * and queues what the socket does not take yet, bounded by --max-pending.
 */
#ifndef MLLM_CONN_H
#define MLLM_CONN_H

#include "mllm_api.h"
#include "mllm_config.h"
#include "mllm_http.h"
#include "mllm_transport.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes to leave free at the front of a buffer given to mllm_conn_emit_chunk(): room for
 * the chunk-size line, written in place instead of copying the chunk. */
#define MLLM_CHUNK_HEADROOM 10

/* Lingering close (after a refusal): read and drop the client's bytes until it closes,
 * until it has been quiet for LINGER_IDLE, for LINGER_TIME in all, or LINGER_BYTES. */
#define MLLM_LINGER_IDLE_NS  (1000ull * 1000000u)
#define MLLM_LINGER_TIME_NS  (5000ull * 1000000u)
#define MLLM_LINGER_BYTES    (16u << 20)

/* A chunked request body's framing (size lines, extensions, CRLFs, trailers) may take
 * this many bytes besides the body: 1-byte chunks take 5 per body byte, so a body of
 * every size up to --max-body fits however it is chunked (short extensions included);
 * more is a 413. The framing is decoded as it arrives and never kept, so this bounds
 * the work a client can make the server do, not memory. */
#define MLLM_CHUNK_FRAMING_MAX(max_body) ((size_t)(max_body) * 8 + 65536)

/* What a stream event touches comes first, in the first cache line: the transport
 * (send), the pending output's length and the two flags (mllm_conn_wait_is_sleep,
 * mllm_conn_emit). With 10,000 streams an event comes 10,000 other events after its
 * connection's last one, so each line it touches is a miss; spread over two or three
 * lines before (tx at 0, out.len at 72, the flags at 96: callgrind, 1.37 last-level
 * misses per event on the connection). The struct is cache-line aligned; allocate it
 * with aligned_alloc (mllm_server.c). */
typedef struct mllm_conn {
    mllm_tx_t            tx __attribute__((aligned(64)));
    mllm_buf_t           out;       /* bytes the transport has not taken yet */
    int                  peer_data; /* the client sent more while we answer (pipelining) */
    int                  dead;      /* a write failed or the client is gone (1), or
                                     * it read too slowly (MLLM_CONN_OVERRUN) */
    uint64_t             id;
    const mllm_config_t *cfg;
    char                *in;        /* received bytes not yet consumed */
    size_t               in_len, in_cap;
    uint64_t             accepted_ns; /* when accept() returned it (0: unknown) */
    size_t               req_len;   /* input bytes of the request being served; 0 once
                                     * released (mllm_conn_release) */
    uint64_t             rx_ns;     /* when the bytes of the last read arrived (the
                                     * kernel's stamp, CLOCK_MONOTONIC; 0: unknown) */
} mllm_conn_t;

_Static_assert(offsetof(mllm_conn_t, dead) + sizeof(int) <= 64,
               "a stream event's connection fields share one cache line");

/* One complete request. Its strings and body point into the connection's input buffer,
 * which does not change until mllm_conn_release() or mllm_conn_done(): nothing is read
 * while a request is served (the stream only peeks). */
typedef struct mllm_request {
    mllm_str_t       method, target, path;
    int              minor;      /* HTTP/1.<minor> */
    int              keep_alive; /* the client allows another request after this one */
    const char      *body;       /* decoded (dechunked) body, body_len bytes */
    size_t           body_len;
    /* When the request arrived, which its schedule (TTFT, token deadlines) counts from:
     * over a plain socket the kernel's receive time of its last bytes, so a request that
     * waited in the socket while the server was busy starts when it came, not when the
     * server got to it, and that wait counts as lateness; never before the connection
     * was free to read it (a pipelined request waits for the answer before it). Where
     * the transport has no stamp (TLS): when its last bytes were read (fiber_now_ns). */
    uint64_t         start_ns;
    /* the framing layer's own */
    const char      *base;
    size_t           consumed;
    mllm_http_head_t head;
} mllm_request_t;

/* Sets up c for a connection whose transport the caller has already put in c->tx. */
void mllm_conn_init(mllm_conn_t *c, const mllm_config_t *cfg, uint64_t id);

/*
 * Reads the next complete request into r. Returns 1 with r filled, or 0 when the
 * connection is over: the client closed or went quiet (idle timeout), or the request
 * was refused (answered here, then closed lingering). Parks the calling fiber.
 */
int mllm_conn_next(mllm_conn_t *c, mllm_request_t *r);

/* The value of header name (case-insensitive), or {NULL, 0}. */
mllm_str_t mllm_request_header(const mllm_request_t *r, const char *name);

/*
 * Drops the current request's bytes from the input buffer before its response ends:
 * a pipelined request behind it stays, the buffer shrinks to what is left (freed when
 * nothing is). Every string and the body of the request are invalid afterwards; copy
 * what the response needs first. A stream that waits a minute for its tokens then
 * holds no copy of its prompt (a 64 KiB prompt was 64 KiB of RSS per open stream).
 */
void mllm_conn_release(mllm_conn_t *c);

/* Ends the request r: drops its bytes from the input buffer unless mllm_conn_release
 * did (a pipelined request behind it stays). */
void mllm_conn_done(mllm_conn_t *c, const mllm_request_t *r);

/*
 * Answers a connection the server will not serve (--max-conns): status with msg in
 * OpenAI's error shape (`code`), the extra header lines (each ending in \r\n, or NULL)
 * and Connection: close, written without waiting for the request, then a lingering
 * close; all of it, a TLS handshake included, within deadline_ns. Then close c.
 */
void mllm_conn_turn_away(mllm_conn_t *c, int status, const char *code, const char *msg,
                         const char *extra, uint64_t deadline_ns);

/* Closes the transport and frees what c holds (not c itself). */
void mllm_conn_close(mllm_conn_t *c);

/* c->dead when a reader fell more than --max-pending behind: the client is still
 * there, so its stream may end with an error frame that says why (mllm_conn_overrun_end)
 * instead of a bare close. */
#define MLLM_CONN_OVERRUN 2

/*
 * Queues p[0..n) behind what is pending and writes what the transport takes now,
 * without parking. Returns 0, or -1 (c->dead set) when the client is gone, or when it
 * has unread output and p would take it past --max-pending (then c->dead is
 * MLLM_CONN_OVERRUN and p is not queued).
 */
int mllm_conn_emit(mllm_conn_t *c, const char *p, size_t n);

/*
 * After an overrun (c->dead == MLLM_CONN_OVERRUN): queues the framed frame b (as
 * mllm_conn_emit_chunk frames it) and the body's end past the bound, then writes them
 * within --write-timeout, parking. The connection is dead (1) after it either way.
 * Returns -1 always (the stream is over and so is the connection).
 */
int mllm_conn_overrun_end(mllm_conn_t *c, mllm_buf_t *b, int chunked);

/* Parks until every pending byte is written or --write-timeout passes. Returns 0 or -1. */
int mllm_conn_flush(mllm_conn_t *c);

/* A whole response with a Content-Length body, written and flushed. extra: more header
 * lines, each ending in \r\n, or NULL. Returns 0 or -1. */
int mllm_conn_respond(mllm_conn_t *c, int status, const char *ctype, const char *body,
                      size_t n, const char *extra, int keep_alive);

/* The head of a response whose body follows in pieces: chunked (HTTP/1.1) or ended by
 * the connection's close (HTTP/1.0: then `Connection: close` whatever keep_alive says).
 * Emitted, not flushed. Returns 0 or -1. */
int mllm_conn_begin_body(mllm_conn_t *c, int status, const char *ctype, const char *extra,
                         int chunked, int keep_alive);

/* Emits b[MLLM_CHUNK_HEADROOM..len) as one piece of that body (one HTTP chunk when
 * chunked; the headroom takes the size line). Returns 0 or -1. */
int mllm_conn_emit_chunk(mllm_conn_t *c, mllm_buf_t *b, int chunked);

/* mllm_conn_emit_chunk for a stream's last frame (an injected mid-stream error and the
 * events due with it): queued whole even past --max-pending, as the body's end is, so a
 * reader that is behind gets it, and the stream's end is one flush. Returns 0, or -1
 * when the client is gone. */
int mllm_conn_emit_chunk_final(mllm_conn_t *c, mllm_buf_t *b, int chunked);

/* Ends a body begun with mllm_conn_begin_body() (the terminating chunk is queued even
 * past --max-pending: it is no slow reader's backlog) and flushes. Returns 0 or -1. */
int mllm_conn_end_body(mllm_conn_t *c, int chunked);

/* A stream that waits longer than this for its next event waits on the socket too, so
 * a client that hangs up during a long TTFT is noticed at once. Shorter waits are plain
 * sleeps on the timer wheel (mllm_wheel.h): watching costs a poll(2) and a heap entry
 * per event, and a client that left is noticed anyway when the next event's write
 * fails, one gap later. 250 ms keeps every token gap of the profiles (5 tokens/s and
 * up) on the wheel and still watches through a TTFT. */
#ifndef MLLM_WATCH_PEER_NS /* a -D for measurement builds only (bench/cg_per_event.py) */
#define MLLM_WATCH_PEER_NS (250u * 1000000u)
#endif

/* Whether mllm_conn_wait_until(c, deadline_ns), called at now_ns (< deadline_ns), is a
 * plain sleep until the deadline: nothing pending to write and nothing to watch. The
 * stream loop then lets the wheel's ticker emit its next event (mllm_route.c). */
static inline int mllm_conn_wait_is_sleep(const mllm_conn_t *c, uint64_t deadline_ns,
                                          uint64_t now_ns)
{
    return c->out.len == 0 && (deadline_ns - now_ns <= MLLM_WATCH_PEER_NS || c->peer_data);
}

/*
 * Waits until deadline_ns while keeping the connection served: pending output is
 * written as the socket drains, and a client that hangs up is noticed during long
 * waits. Returns 0 at the deadline, -1 (c->dead set) when the client is gone.
 */
int mllm_conn_wait_until(mllm_conn_t *c, uint64_t deadline_ns);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_CONN_H */
