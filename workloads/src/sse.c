/*
 * sse.c - the event-stream parser, the HTTP response decoder and the chat-chunk reader.
 * They are written against the specifications (WHATWG event stream, RFC 9112 framing),
 * not against one server: the tests feed them split, CR-only and CRLF input.
 */
#define _GNU_SOURCE
#include "wl_sse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SSE ------------------------------------------------------------------------------ */

void wl_sse_init(wl_sse_t *p, size_t max_event)
{
    memset(p, 0, sizeof *p);
    p->max = max_event ? max_event : (1u << 20);
}

void wl_sse_free(wl_sse_t *p)
{
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_cap = p->data_cap = 0;
}

static int grow(char **buf, size_t *cap, size_t need, size_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max + 1) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *t = realloc(*buf, n);
    if (!t) {
        errno = ENOMEM;
        return -1;
    }
    *buf = t;
    *cap = n;
    return 0;
}

/* Handles one complete line (without its end). Returns 0, 1 (stop) or -1. */
static int sse_line(wl_sse_t *p, const char *l, size_t n, wl_sse_cb cb, void *arg)
{
    if (n == 0) { /* dispatch */
        if (!p->has_data) {
            p->event_len = 0;
            return 0;
        }
        if (p->data_len && p->data[p->data_len - 1] == '\n')
            p->data_len--;
        p->data[p->data_len] = 0;
        wl_sse_event_t ev = { p->event, p->event_len, p->data, p->data_len };
        p->event[p->event_len] = 0;
        p->events++;
        int r = cb ? cb(&ev, arg) : 0;
        p->data_len = 0;
        p->has_data = 0;
        p->event_len = 0;
        return r ? 1 : 0;
    }
    if (l[0] == ':')
        return 0; /* comment: keep-alive pings ride on these */
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vlen = (size_t)(l + n - v);
    if (vlen && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        if (grow(&p->data, &p->data_cap, p->data_len + vlen + 2, p->max) != 0)
            return -1;
        memcpy(p->data + p->data_len, v, vlen);
        p->data_len += vlen;
        p->data[p->data_len++] = '\n';
        p->has_data = 1;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        p->event_len = vlen < sizeof p->event - 1 ? vlen : sizeof p->event - 1;
        memcpy(p->event, v, p->event_len);
    }
    /* "id" and "retry" matter to a reconnecting browser, not to this client. */
    return 0;
}

int wl_sse_feed(wl_sse_t *p, const char *buf, size_t n, wl_sse_cb cb, void *arg)
{
    size_t i = 0;
    if (p->after_cr && n && buf[0] == '\n')
        i = 1; /* the LF of a CRLF split across two feeds */
    p->after_cr = 0;
    while (i < n) {
        /* find the next line end: \n or \r */
        const char *s = buf + i;
        size_t left = n - i, k = 0;
        /* the first line end of either kind, with two vectorised searches */
        const char *lf = memchr(s, '\n', left);
        const char *cr = memchr(s, '\r', lf ? (size_t)(lf - s) : left);
        k = cr ? (size_t)(cr - s) : lf ? (size_t)(lf - s) : left;
        if (k == left) { /* no end yet: keep the partial line */
            if (grow(&p->line, &p->line_cap, p->line_len + k + 1, p->max) != 0)
                return -1;
            memcpy(p->line + p->line_len, s, k);
            p->line_len += k;
            return 0;
        }
        const char *l = s;
        size_t ln = k;
        if (p->line_len) { /* complete a line begun in an earlier feed */
            if (grow(&p->line, &p->line_cap, p->line_len + k + 1, p->max) != 0)
                return -1;
            memcpy(p->line + p->line_len, s, k);
            p->line_len += k;
            l = p->line;
            ln = p->line_len;
        }
        size_t end = k + 1;
        if (s[k] == '\r') {
            if (k + 1 < left) {
                if (s[k + 1] == '\n')
                    end++;
            } else {
                p->after_cr = 1;
            }
        }
        i += end;
        p->line_len = 0;
        int r = sse_line(p, l, ln, cb, arg);
        if (r)
            return r;
    }
    return 0;
}

/* ---- HTTP response -------------------------------------------------------------------- */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_DONE };

void wl_http_resp_init(wl_http_resp_t *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    r->retry_after_ms = -1;
}

static int proto_error(void)
{
    errno = EPROTO;
    return -1;
}

/* Handles one header line (without CRLF); an empty line ends the headers. */
static int header_line(wl_http_resp_t *r, char *s)
{
    if (!r->got_status) {
        if (strncmp(s, "HTTP/1.", 7) != 0 || strlen(s) < 12 || s[8] != ' ')
            return proto_error();
        if (s[7] == '0')
            r->close = 1;
        if (!isdigit((unsigned char)s[9]) || !isdigit((unsigned char)s[10]) ||
            !isdigit((unsigned char)s[11]))
            return proto_error();
        r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
        r->got_status = 1;
        return 0;
    }
    if (*s == 0) {
        if (r->status >= 100 && r->status < 200) { /* interim response: start over */
            wl_http_resp_init(r);
            return 0;
        }
        r->headers_done = 1;
        /* 204 and 304 carry no body; neither does an empty Content-Length one. */
        if (r->status == 204 || r->status == 304 || (!r->chunked && r->content_length == 0))
            r->done = 1;
        return 0;
    }
    char *colon = strchr(s, ':');
    if (!colon)
        return proto_error();
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strcasecmp(s, "content-length") == 0) {
        char *end;
        long long cl = strtoll(v, &end, 10);
        if (end == v || cl < 0)
            return proto_error();
        r->content_length = cl;
    } else if (strcasecmp(s, "transfer-encoding") == 0) {
        if (strcasestr(v, "chunked"))
            r->chunked = 1;
    } else if (strcasecmp(s, "connection") == 0) {
        if (strcasestr(v, "close"))
            r->close = 1;
    } else if (strcasecmp(s, "content-type") == 0) {
        snprintf(r->content_type, sizeof r->content_type, "%s", v);
    } else if (strcasecmp(s, "retry-after-ms") == 0) {
        char *end;
        double ms = strtod(v, &end);
        if (end != v && ms >= 0)
            r->retry_after_ms = (int64_t)ms; /* the more precise header wins */
    } else if (strcasecmp(s, "retry-after") == 0 && r->retry_after_ms < 0) {
        char *end; /* seconds; an HTTP-date form is ignored */
        long sec = strtol(v, &end, 10);
        if (end != v && *end == 0 && sec >= 0)
            r->retry_after_ms = (int64_t)sec * 1000;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int body_chunked(wl_http_resp_t *r, const char *b, size_t n, wl_body_cb cb, void *arg)
{
    size_t i = 0;
    while (i < n && r->cstate != CH_DONE) {
        char c = b[i];
        switch (r->cstate) {
        case CH_SIZE: {
            int h = hexval(c);
            if (h >= 0) {
                if (r->csize >> 56)
                    return proto_error();
                r->csize = r->csize * 16 + (uint64_t)h;
            } else if (c == ';' || c == ' ' || c == '\t') {
                r->cstate = CH_EXT;
            } else if (c == '\r') {
                r->cstate = CH_SIZE_LF;
            } else {
                return proto_error();
            }
            i++;
            break;
        }
        case CH_EXT:
            if (c == '\r')
                r->cstate = CH_SIZE_LF;
            i++;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return proto_error();
            r->cstate = r->csize ? CH_DATA : CH_TRAILER;
            i++;
            break;
        case CH_DATA: {
            size_t take = n - i < r->csize ? n - i : (size_t)r->csize;
            r->csize -= take;
            r->body_seen += take;
            if (r->csize == 0)
                r->cstate = CH_DATA_CR;
            if (cb && cb(b + i, take, arg)) {
                i += take;
                return 1;
            }
            i += take;
            break;
        }
        case CH_DATA_CR:
            if (c != '\r')
                return proto_error();
            r->cstate = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return proto_error();
            r->cstate = CH_SIZE;
            i++;
            break;
        case CH_TRAILER:
            /* Trailer fields are ignored; the body ends at the first empty line. csize
             * counts the bytes of the current trailer line. */
            if (c == '\n') {
                if (r->csize == 0) {
                    r->cstate = CH_DONE;
                    r->done = 1;
                }
                r->csize = 0;
            } else if (c != '\r') {
                r->csize++;
            }
            i++;
            break;
        }
    }
    return 0;
}

int wl_http_resp_feed(wl_http_resp_t *r, const char *buf, size_t n, wl_body_cb cb, void *arg)
{
    if (!r->headers_done) {
        size_t i = 0;
        while (i < n && !r->headers_done) {
            char c = buf[i++];
            if (++r->hdr_total > 65536) {
                errno = EMSGSIZE;
                return -1;
            }
            if (c == '\r')
                continue; /* bare LF line ends are accepted too (RFC 9112 section 2.2) */
            if (c != '\n') {
                if (r->line_len < sizeof r->line - 1)
                    r->line[r->line_len++] = c;
                continue;
            }
            r->line[r->line_len] = 0;
            r->line_len = 0;
            if (header_line(r, r->line) != 0)
                return -1;
        }
        buf += i;
        n -= i;
        if (!r->headers_done || n == 0)
            return 0;
    }
    if (r->done)
        return 0; /* bytes after the body belong to the next response */
    if (r->chunked)
        return body_chunked(r, buf, n, cb, arg);
    if (r->content_length >= 0) {
        uint64_t left = (uint64_t)r->content_length - r->body_seen;
        if (n > left)
            n = (size_t)left;
        r->body_seen += n;
        if (r->body_seen == (uint64_t)r->content_length)
            r->done = 1;
    }
    if (n && cb && cb(buf, n, arg))
        return 1;
    return 0;
}

/* ---- JSON, just enough ---------------------------------------------------------------- */

/* Returns the index just past the string starting at s[i] == '"', or len when unterminated. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    /* memchr to the next quote, then count the backslashes before it: an odd count
     * escapes it. Profiling showed the byte loop here as most of the client's own
     * instructions per token. */
    for (i++; i < len;) {
        const char *q = memchr(s + i, '"', len - i);
        if (!q)
            return len;
        size_t k = (size_t)(q - s), bs = 0;
        while (k - bs > i && s[k - bs - 1] == '\\')
            bs++;
        if (!(bs & 1))
            return k + 1;
        i = k + 1;
    }
    return len;
}

static int json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Returns the index just past the value starting at s[i]. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, len, i);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < len; i++) {
            if (s[i] == '"') {
                i = skip_string(s, len, i) - 1;
            } else if (s[i] == '{' || s[i] == '[') {
                depth++;
            } else if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0)
                    return i + 1;
            }
        }
        return len;
    }
    while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && !isspace((unsigned char)s[i]))
        i++;
    return i;
}

/* One pass over a JSON text: for each of keys[0..n) records the value of its first
 * occurrence (at any depth) in val[]/vlen[] (NULL when absent). Stops early once all are
 * found. wl_json_find is this with one key. */
static void json_scan(const char *s, size_t len, const char *const *keys, size_t n,
                      const char **val, size_t *vlen)
{
    size_t klen[8], left = n;
    for (size_t k = 0; k < n; k++) {
        klen[k] = strlen(keys[k]);
        val[k] = NULL;
        vlen[k] = 0;
    }
    for (size_t i = 0; i < len && left;) {
        const char *q = memchr(s + i, '"', len - i);
        if (!q)
            break;
        i = (size_t)(q - s);
        size_t end = skip_string(s, len, i);
        size_t j = end;
        while (j < len && json_space(s[j]))
            j++;
        if (j < len && s[j] == ':') { /* it is a key */
            for (size_t k = 0; k < n; k++) {
                if (!val[k] && end - i - 2 == klen[k] && memcmp(s + i + 1, keys[k], klen[k]) == 0) {
                    size_t v = j + 1;
                    while (v < len && json_space(s[v]))
                        v++;
                    val[k] = s + v;
                    vlen[k] = skip_value(s, len, v) - v;
                    left--;
                    break;
                }
            }
        }
        i = end;
    }
}

const char *wl_json_find(const char *s, size_t len, const char *key, size_t *val_len)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < len;) {
        const char *q = memchr(s + i, '"', len - i);
        if (!q)
            break;
        i = (size_t)(q - s);
        size_t end = skip_string(s, len, i);
        size_t j = end;
        while (j < len && json_space(s[j]))
            j++;
        if (j < len && s[j] == ':') { /* it is a key */
            if (end - i - 2 == klen && memcmp(s + i + 1, key, klen) == 0) {
                j++;
                while (j < len && json_space(s[j]))
                    j++;
                *val_len = skip_value(s, len, j) - j;
                return s + j;
            }
        }
        i = end;
    }
    return NULL;
}

/* Decodes a JSON string literal (with quotes) into out (when not NULL); returns the UTF-8
 * length. Invalid escapes count as themselves: this reads a stream, it does not judge it. */
static size_t json_string_decode(const char *v, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char buf[4];
        size_t k = 1;
        buf[0] = v[i];
        if (v[i] == '\\' && i + 2 < n) {
            char e = v[++i];
            switch (e) {
            case 'n': buf[0] = '\n'; break;
            case 't': buf[0] = '\t'; break;
            case 'r': buf[0] = '\r'; break;
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'u': {
                unsigned cp = 0;
                int ok = i + 4 < n;
                for (int d = 1; ok && d <= 4; d++) {
                    int h = hexval(v[i + (size_t)d]);
                    if (h < 0)
                        ok = 0;
                    else
                        cp = cp * 16 + (unsigned)h;
                }
                if (!ok) {
                    buf[0] = 'u';
                    break;
                }
                i += 4;
                /* a surrogate half is counted as 2 bytes: a pair then makes 4 */
                if (cp < 0x80) {
                    buf[0] = (char)cp;
                } else if (cp < 0x800) {
                    buf[0] = (char)(0xc0 | (cp >> 6));
                    buf[1] = (char)(0x80 | (cp & 0x3f));
                    k = 2;
                } else if (cp >= 0xd800 && cp < 0xe000) {
                    buf[0] = (char)0xef;
                    buf[1] = (char)0xbf;
                    k = 2;
                } else {
                    buf[0] = (char)(0xe0 | (cp >> 12));
                    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    buf[2] = (char)(0x80 | (cp & 0x3f));
                    k = 3;
                }
                break;
            }
            default: buf[0] = e; break; /* \" \\ \/ */
            }
        }
        for (size_t m = 0; m < k; m++, len++)
            if (out && len < cap)
                out[len] = buf[m];
    }
    return len;
}

int wl_chat_chunk_parse(const char *data, size_t len, wl_chat_chunk_t *c, char *out_buf,
                        size_t out_cap)
{
    memset(c, 0, sizeof *c);
    c->usage_completion_tokens = -1;
    while (len && isspace((unsigned char)*data)) {
        data++;
        len--;
    }
    while (len && isspace((unsigned char)data[len - 1]))
        len--;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->done = 1;
        return 0;
    }
    if (len < 2 || data[0] != '{')
        return proto_error();
    /* one pass for every key of interest: this runs once per token */
    static const char *const keys[] = { "error", "content", "finish_reason", "usage" };
    const char *vals[4];
    size_t lens[4];
    json_scan(data, len, keys, 4, vals, lens);
    size_t vl;
    const char *v;
    if (vals[0])
        c->error = 1;
    /* "content" inside "delta" (streaming) or "message" (non-streaming) */
    v = vals[1];
    vl = lens[1];
    if (v && vl >= 2 && v[0] == '"') {
        c->has_content = 1;
        c->content_len = json_string_decode(v, vl, out_buf, out_cap);
    }
    v = vals[2];
    vl = lens[2];
    if (v && vl >= 2 && v[0] == '"') {
        size_t k = vl - 2 < sizeof c->finish - 1 ? vl - 2 : sizeof c->finish - 1;
        memcpy(c->finish, v + 1, k);
        c->finish[k] = 0;
    }
    v = vals[3];
    vl = lens[3];
    if (v && v[0] == '{') {
        size_t tl;
        const char *t = wl_json_find(v, vl, "completion_tokens", &tl);
        if (t)
            c->usage_completion_tokens = strtol(t, NULL, 10);
    }
    return 0;
}
