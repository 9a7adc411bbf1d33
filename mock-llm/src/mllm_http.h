/*
 * mllm_http.h - an incremental, zero-copy HTTP/1.x request parser with hard limits.
 *
 * The parser never allocates and never copies: it looks at the bytes received so far,
 * and once the head (request line + headers + blank line) is complete it fills a head
 * whose strings are spans (offset, length) into the caller's buffer, not pointers. The
 * buffer usually grows after the head is parsed (the body is read into it, and realloc
 * moves it): a span stays right across that, a pointer would dangle. Resolve a span
 * with mllm_span_str() against the buffer as it is when the string is used.
 * Limits are checked on partial input too, so a client that sends 1 MB of header
 * without a blank line is refused after the limit, not after the megabyte.
 */
#ifndef MLLM_HTTP_H
#define MLLM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MLLM_HTTP_MAX_HEADERS 64

typedef struct mllm_str {
    const char *p;
    size_t      n;
} mllm_str_t;

/* Bytes [off, off + n) of the buffer the head was parsed from. Heads are capped far
 * below 4 GiB (--max-header), so 32 bits each keep the 64 header slots at 512 bytes. */
typedef struct mllm_span {
    uint32_t off, n;
} mllm_span_t;

/* The string a span names in base (base is the parsed buffer, wherever it now is). */
static inline mllm_str_t mllm_span_str(const char *base, mllm_span_t s)
{
    return (mllm_str_t){ base + s.off, s.n };
}

typedef struct mllm_http_limits {
    size_t max_request_line; /* longer: 414 */
    size_t max_head;         /* request line + headers; longer: 431 */
    size_t max_body;         /* declared or chunked body larger: 413 */
} mllm_http_limits_t;

typedef struct mllm_http_head {
    mllm_span_t method, target, path; /* path = target without the query */
    int        minor;                /* HTTP/1.<minor> */
    int        keep_alive;           /* after this request */
    int        chunked;              /* Transfer-Encoding: chunked */
    int        expect_continue;
    long long  content_length;       /* -1 when absent */
    size_t     head_len;             /* bytes of the head, blank line included */
    size_t     nheaders;
    mllm_span_t hname[MLLM_HTTP_MAX_HEADERS], hvalue[MLLM_HTTP_MAX_HEADERS];
} mllm_http_head_t;

/*
 * Parses the head at buf[0..len). Returns 1 when complete (h filled with spans into
 * buf, h->head_len set), 0 when more bytes are needed, or a negative HTTP status for a bad request:
 * -400 malformed, -414 request line too long, -431 head too long or too many headers,
 * -413 Content-Length above max_body, -501 unsupported Transfer-Encoding, -505 not
 * HTTP/1.x. Leading empty lines (allowed by RFC 9112) are skipped and counted in
 * head_len.
 */
int mllm_http_parse_head(const char *buf, size_t len, const mllm_http_limits_t *lim,
                         mllm_http_head_t *h);

/* The value of header name (case-insensitive) in base, the buffer h was parsed from
 * (as it is now), or {NULL, 0} when absent. */
mllm_str_t mllm_http_header(const mllm_http_head_t *h, const char *base, const char *name);

/* A chunked body being decoded in place as it arrives. Zero it before the first call. */
typedef struct mllm_dechunk {
    size_t out;     /* decoded body bytes so far: buf[0..out) */
    size_t pos;     /* encoded bytes looked at so far: buf[pos..len) is not decoded yet */
    size_t framing; /* encoded bytes that were not body: sizes, extensions, CRLFs, trailers */
    size_t size;    /* the chunk size being read */
    size_t left;    /* data bytes still due in the current chunk */
    int    digits;  /* hex digits of the size so far */
    int    state;
} mllm_dechunk_t;

/*
 * Decodes a chunked body in place, incrementally: each byte is looked at once, however
 * the body arrives. buf[0..len) holds the body's bytes received so far (the bytes after
 * the head); call again with the same d and buf grown at its end as more arrive.
 * Returns 1 when the last chunk and trailers are complete: the body is buf[0..d->out),
 * the encoded form took d->pos bytes (a pipelined request may follow). Returns 0 when
 * more bytes are needed, -400 when malformed, -413 when the body would exceed max_body
 * or its framing max_framing bytes. Between calls, buf[d->out..d->pos) is spent (see
 * mllm_dechunk_compact).
 */
int mllm_http_dechunk(mllm_dechunk_t *d, char *buf, size_t len, size_t max_body,
                      size_t max_framing);

/* Drops the spent bytes between the decoded body and what is not decoded yet (moving
 * the rest down), so a buffer holds body plus one read, not the framing. Returns the
 * new length of buf. */
size_t mllm_dechunk_compact(mllm_dechunk_t *d, char *buf, size_t len);

/* Case-insensitive equality of s with the NUL-terminated lit. */
int mllm_str_ieq(mllm_str_t s, const char *lit);

/* The standard reason phrase for status ("Unknown" for others). */
const char *mllm_http_reason(int status);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_HTTP_H */
