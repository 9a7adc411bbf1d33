/*
 * mllm_http.c - request head parser and chunked body decoder (RFC 9112).
 *
 * The head is re-parsed from the start each time more bytes arrive. That is quadratic
 * in the worst case, but the head is capped (16 KiB by default) and almost every request
 * arrives in one read, so the simple form costs nothing measurable and leaves no state
 * to get wrong between reads.
 */
#include "mllm_http.h"

#include <string.h>

/* RFC 9110 tchar: the characters allowed in a method and a header name. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int mllm_str_ieq(mllm_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

mllm_str_t mllm_http_header(const mllm_http_head_t *h, const char *base, const char *name)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (mllm_str_ieq(mllm_span_str(base, h->hname[i]), name))
            return mllm_span_str(base, h->hvalue[i]);
    return (mllm_str_t){ NULL, 0 };
}

/* The span of [p, p + n) inside the buffer that starts at base. */
static mllm_span_t span(const char *base, const char *p, size_t n)
{
    return (mllm_span_t){ (uint32_t)(p - base), (uint32_t)n };
}

/* Finds the next LF in [p, end); returns its index from p, or -1. */
static long find_lf(const char *p, const char *end)
{
    const char *q = memchr(p, '\n', (size_t)(end - p));
    return q ? (long)(q - p) : -1;
}

/* Trims optional whitespace (SP, HTAB) on both sides. */
static mllm_str_t trim(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return (mllm_str_t){ p, n };
}

/* Does the comma-separated list s contain token tok (case-insensitive)? */
static int list_has(mllm_str_t s, const char *tok)
{
    const char *p = s.p, *end = s.p + s.n;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        if (mllm_str_ieq(trim(p, (size_t)(e - p)), tok))
            return 1;
        p = c ? c + 1 : end;
    }
    return 0;
}

static int parse_request_line(const char *base, const char *p, size_t n,
                              mllm_http_head_t *req)
{
    const char *end = p + n, *q = p;
    while (q < end && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q >= end || *q != ' ')
        return -400;
    req->method = span(base, p, (size_t)(q - p));
    const char *t = ++q;
    while (q < end && (unsigned char)*q > ' ' && *q != 0x7f)
        q++;
    if (q == t || q >= end || *q != ' ')
        return -400;
    size_t tn = (size_t)(q - t);
    req->target = span(base, t, tn);
    q++;
    if ((size_t)(end - q) != 8 || memcmp(q, "HTTP/", 5) != 0 || q[6] != '.' ||
        q[5] < '0' || q[5] > '9' || q[7] < '0' || q[7] > '9')
        return -400;
    if (q[5] != '1')
        return -505;
    req->minor = q[7] - '0';
    const char *qm = memchr(t, '?', tn);
    req->path = span(base, t, qm ? (size_t)(qm - t) : tn);
    if (req->path.n == 0)
        return -400;
    return 0;
}

static int parse_content_length(mllm_str_t v, long long *out)
{
    if (v.n == 0 || v.n > 18)
        return -400;
    long long x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -400;
        x = x * 10 + (v.p[i] - '0');
    }
    *out = x;
    return 0;
}

int mllm_http_parse_head(const char *buf, size_t len, const mllm_http_limits_t *lim,
                         mllm_http_head_t *req)
{
    if (len == 0)
        return 0; /* buf may be NULL then (no input buffer yet): no pointer arithmetic */
    const char *p = buf, *end = buf + len;
    /* RFC 9112 2.2: a server should ignore at least one empty line before the request
     * line. Bound them like the rest of the head. */
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    if ((size_t)(p - buf) > lim->max_head)
        return -400;
    long l = find_lf(p, end);
    if (l < 0)
        return (size_t)(end - p) > lim->max_request_line ? -414 : 0;
    if ((size_t)l > lim->max_request_line)
        return -414;
    memset(req, 0, sizeof *req);
    size_t rl = (size_t)l;
    if (rl && p[rl - 1] == '\r')
        rl--;
    int rc = parse_request_line(buf, p, rl, req);
    if (rc)
        return rc;
    p += l + 1;
    req->content_length = -1;
    int have_te = 0, conn_close = 0, conn_keep = 0;
    for (;;) {
        l = find_lf(p, end);
        if (l < 0)
            return (size_t)(end - buf) > lim->max_head ? -431 : 0;
        if ((size_t)(p + l + 1 - buf) > lim->max_head)
            return -431;
        size_t ll = (size_t)l;
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (ll == 0) {
            p += l + 1;
            break;
        }
        /* Obsolete line folding and whitespace before the colon are both refused
         * (RFC 9112 5.1, 5.2): they are how request smuggling starts. */
        const char *c = p, *le = p + ll;
        while (c < le && is_tchar((unsigned char)*c))
            c++;
        if (c == p || c >= le || *c != ':')
            return -400;
        for (const char *v = c + 1; v < le; v++)
            if (((unsigned char)*v < ' ' && *v != '\t') || *v == 0x7f)
                return -400;
        if (req->nheaders >= MLLM_HTTP_MAX_HEADERS)
            return -431;
        mllm_str_t name = { p, (size_t)(c - p) };
        mllm_str_t value = trim(c + 1, (size_t)(le - c - 1));
        req->hname[req->nheaders] = span(buf, name.p, name.n);
        req->hvalue[req->nheaders] = span(buf, value.p, value.n);
        req->nheaders++;
        if (mllm_str_ieq(name, "content-length")) {
            long long x;
            if (parse_content_length(value, &x))
                return -400;
            if (req->content_length >= 0 && req->content_length != x)
                return -400;
            req->content_length = x;
        } else if (mllm_str_ieq(name, "transfer-encoding")) {
            if (!mllm_str_ieq(value, "chunked") || have_te)
                return -501;
            have_te = 1;
        } else if (mllm_str_ieq(name, "connection")) {
            conn_close |= list_has(value, "close");
            conn_keep |= list_has(value, "keep-alive");
        } else if (mllm_str_ieq(name, "expect")) {
            if (mllm_str_ieq(value, "100-continue"))
                req->expect_continue = 1;
        }
        p += l + 1;
    }
    if (have_te && req->content_length >= 0)
        return -400; /* both framings: refuse rather than guess (RFC 9112 6.1) */
    if (req->minor == 0 && have_te)
        return -400;
    req->chunked = have_te;
    if (req->content_length > 0 && (unsigned long long)req->content_length > lim->max_body)
        return -413;
    req->keep_alive = req->minor >= 1 ? !conn_close : conn_keep && !conn_close;
    req->head_len = (size_t)(p - buf);
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The decoder's states: where in the chunked grammar (RFC 9112 7.1) the next byte is. */
enum {
    DC_SIZE,        /* chunk-size hex digits */
    DC_EXT,         /* extensions (or whitespace) after the size: skipped to LF */
    DC_SIZE_LF,     /* CR seen after the size: LF due */
    DC_DATA,        /* chunk data: d->left bytes due */
    DC_DATA_CR,     /* after the data: CR or LF */
    DC_DATA_LF,     /* CR seen after the data: LF due */
    DC_TRAILER,     /* at the start of a trailer line (an empty one ends the body) */
    DC_TRAILER_CR,  /* a CR at the start of a trailer line */
    DC_TRAILER_LINE,/* inside a trailer line: skipped to LF */
    DC_DONE,
};

int mllm_http_dechunk(mllm_dechunk_t *d, char *buf, size_t len, size_t max_body,
                      size_t max_framing)
{
    size_t i = d->pos, out = d->out, framing = d->framing;
    int rc = 0;
#define FAIL(status) do { rc = (status); goto done; } while (0)
    while (i < len && d->state != DC_DONE) {
        if (d->state == DC_DATA) {
            /* The data of a chunk moves down in one piece, however it arrived. */
            size_t k = len - i < d->left ? len - i : d->left;
            if (out != i)
                memmove(buf + out, buf + i, k);
            out += k;
            i += k;
            d->left -= k;
            if (!d->left)
                d->state = DC_DATA_CR;
            continue;
        }
        char c = buf[i++];
        framing++;
        switch (d->state) {
        case DC_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                /* a size above the body limit is refused as soon as it shows */
                if (++d->digits > 16 || (d->size = d->size * 16 + (size_t)v) > max_body)
                    FAIL(-413);
                break;
            }
            if (d->digits == 0)
                FAIL(-400);
            if (c == ';' || c == ' ' || c == '\t')
                d->state = DC_EXT;
            else if (c == '\r')
                d->state = DC_SIZE_LF;
            else if (c == '\n')
                goto size_line_done;
            else
                FAIL(-400);
            break;
        }
        case DC_EXT:
            if (c == '\n')
                goto size_line_done;
            break;
        case DC_SIZE_LF:
            if (c != '\n')
                FAIL(-400);
        size_line_done:
            if (d->size == 0) {
                d->state = DC_TRAILER;
            } else {
                if (out + d->size > max_body)
                    FAIL(-413);
                d->left = d->size;
                d->state = DC_DATA;
            }
            d->size = 0;
            d->digits = 0;
            break;
        case DC_DATA_CR:
            if (c == '\r')
                d->state = DC_DATA_LF;
            else if (c == '\n')
                d->state = DC_SIZE;
            else
                FAIL(-400);
            break;
        case DC_DATA_LF:
            if (c != '\n')
                FAIL(-400);
            d->state = DC_SIZE;
            break;
        case DC_TRAILER:
            d->state = c == '\n' ? DC_DONE : c == '\r' ? DC_TRAILER_CR : DC_TRAILER_LINE;
            break;
        case DC_TRAILER_CR:
            d->state = c == '\n' ? DC_DONE : DC_TRAILER_LINE;
            break;
        case DC_TRAILER_LINE:
            if (c == '\n')
                d->state = DC_TRAILER;
            break;
        }
        if (framing > max_framing)
            FAIL(-413);
    }
    if (d->state == DC_DONE)
        rc = 1;
done:
    d->pos = i;
    d->out = out;
    d->framing = framing;
    return rc;
#undef FAIL
}

size_t mllm_dechunk_compact(mllm_dechunk_t *d, char *buf, size_t len)
{
    if (d->pos == d->out)
        return len;
    memmove(buf + d->out, buf + d->pos, len - d->pos);
    len -= d->pos - d->out;
    d->pos = d->out;
    return len;
}

const char *mllm_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    case 529: return "Site Overloaded";
    default:  return "Unknown";
    }
}
