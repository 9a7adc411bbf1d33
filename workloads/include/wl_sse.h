/*
 * wl_sse.h - one Server-Sent Events parser, one HTTP/1.1 response decoder and an OpenAI
 * chat-chunk reader, shared by every model and by blocking and fiber I/O alike. They are
 * push parsers: feed them whatever a read returned, split anywhere; they never read.
 */
#ifndef WL_SSE_H
#define WL_SSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Server-Sent Events (WHATWG HTML, "event stream interpretation") -----------------
 * Lines end in CRLF, LF or CR (a CR at the end of one feed and an LF at the start of the
 * next are one line end). A blank line dispatches the event; "data" lines are joined with
 * "\n"; lines starting with ':' are comments; "field" without a colon has an empty value;
 * one space after the colon is dropped. An event without data is not dispatched. */

typedef struct wl_sse_event {
    const char *event;     /* the "event" field, "" when none */
    size_t      event_len;
    const char *data;      /* data lines joined with '\n', NUL-terminated */
    size_t      data_len;
} wl_sse_event_t;

/* Called for each dispatched event; return nonzero to stop the feed. */
typedef int (*wl_sse_cb)(const wl_sse_event_t *ev, void *arg);

typedef struct wl_sse {
    char  *line;  size_t line_len, line_cap;
    char  *data;  size_t data_len, data_cap;
    char   event[64];
    size_t event_len;
    int    has_data;
    int    after_cr;   /* the last byte seen was a CR line end */
    size_t max;        /* largest line or event accepted */
    size_t events;     /* events dispatched so far */
} wl_sse_t;

/* Prepares p; max_event bounds a line and an event's data (0 = 1 MiB). */
void wl_sse_init(wl_sse_t *p, size_t max_event);

/* Feeds n bytes. Returns 0 when all were consumed, 1 when cb asked to stop (the rest of
 * buf is dropped), -1 with errno EMSGSIZE when a line or event exceeds the bound, or
 * ENOMEM. */
int wl_sse_feed(wl_sse_t *p, const char *buf, size_t n, wl_sse_cb cb, void *arg);

/* Frees p's buffers. p may be fed again after wl_sse_init(). */
void wl_sse_free(wl_sse_t *p);

/* ---- HTTP/1.1 response body decoding -------------------------------------------------
 * Reads a status line and headers, then the body framed by Content-Length, chunked
 * transfer coding, or the end of the connection. */

typedef int (*wl_body_cb)(const char *buf, size_t n, void *arg); /* nonzero stops */

typedef struct wl_http_resp {
    int      status;        /* 0 until the status line is read */
    int      chunked;
    int      close;         /* "Connection: close" or HTTP/1.0 */
    int64_t  content_length; /* -1 when absent */
    int      headers_done;
    int      done;          /* the body is complete (never set for read-to-EOF bodies) */
    char     content_type[64];
    int64_t  retry_after_ms; /* retry-after-ms, else retry-after (seconds) x 1000; -1 */
    /* private: headers are parsed line by line through a small buffer, because ten
     * thousand conversations each holding an 8 KiB header buffer would be 80 MB */
    char     line[256];
    size_t   line_len;      /* bytes kept of the current line (the rest is dropped) */
    size_t   hdr_total;     /* header bytes seen, bounded at 64 KiB */
    int      got_status;
    int      cstate;        /* chunked decoder state */
    uint64_t csize;         /* bytes left in the current chunk */
    uint64_t body_seen;
} wl_http_resp_t;

void wl_http_resp_init(wl_http_resp_t *r);

/* Feeds n bytes. Body bytes go to cb as they are decoded. Returns 0, 1 when cb stopped,
 * or -1 with errno EPROTO (malformed) or EMSGSIZE (headers over 64 KiB). Header
 * lines longer than 255 bytes are cut; only Content-Length, Transfer-Encoding,
 * Connection and Content-Type are read. */
int wl_http_resp_feed(wl_http_resp_t *r, const char *buf, size_t n, wl_body_cb cb, void *arg);

/* ---- OpenAI chat-completion chunks --------------------------------------------------- */

typedef struct wl_chat_chunk {
    int         done;          /* the data was "[DONE]" */
    int         error;         /* the JSON has an "error" key */
    int         has_content;   /* a "content" string (possibly empty) was present */
    size_t      content_len;   /* decoded UTF-8 bytes of the content */
    char        finish[16];    /* finish_reason when not null: "stop", "length", ... */
    long        usage_completion_tokens; /* -1 when absent */
} wl_chat_chunk_t;

/* Reads one SSE data payload of an OpenAI chat stream. When out_buf is not NULL, the
 * decoded content is copied there (up to out_cap bytes, not terminated). Returns 0, or -1
 * with errno EPROTO when it is neither [DONE] nor a JSON object. */
int wl_chat_chunk_parse(const char *data, size_t len, wl_chat_chunk_t *c, char *out_buf,
                        size_t out_cap);

/* Finds the value of the first key `key` (at any depth) in a JSON text; returns a pointer
 * to the value's first character and its length (a whole string with quotes, a number,
 * an object...), or NULL. Strings are scanned properly, so keys inside strings are not
 * matched. */
const char *wl_json_find(const char *json, size_t len, const char *key, size_t *val_len);

#ifdef __cplusplus
}
#endif

#endif /* WL_SSE_H */
