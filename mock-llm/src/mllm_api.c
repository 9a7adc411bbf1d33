/*
 * mllm_api.c - request validation (cJSON) and response formatting (by hand).
 *
 * Requests are parsed with cJSON: they are small, arrive once per stream, and a real
 * parser's error handling is worth more than speed there. Responses are formatted by
 * hand into a buffer: a stream chunk is written hundreds of thousands of times per
 * second, and everything in it but the delta text is fixed per response, so it is one
 * memcpy of a prefix plus the escaped text.
 */
#include "mllm_api.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---- */

void mllm_buf_free(mllm_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void mllm_buf_grow(mllm_buf_t *b, size_t extra)
{
    if (b->oom || b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void mllm_buf_add(mllm_buf_t *b, const void *p, size_t n)
{
    mllm_buf_reserve(b, n + 1);
    if (b->oom)
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0; /* always a C string too, for tests and logs */
}

void mllm_buf_adds(mllm_buf_t *b, const char *s)
{
    mllm_buf_add(b, s, strlen(s));
}

void mllm_buf_printf(mllm_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        mllm_buf_add(b, tmp, (size_t)n);
        return;
    }
    mllm_buf_reserve(b, (size_t)n + 1);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mllm_buf_json_str(mllm_buf_t *b, const char *s, size_t n)
{
    mllm_buf_reserve(b, n * 6 + 1);
    if (b->oom)
        return;
    /* Bytes JSON needs escaped (and DEL, escaped too): one table look-up per byte
     * for the common case of plain text, which is every byte of a token but spaces. */
    static const unsigned char esc[256] = {
        [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1,
    };
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!esc[c]) {
            *o++ = (char)c;
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = 0;
}

static void json_str_or_null(mllm_buf_t *b, const char *s)
{
    if (!s) {
        mllm_buf_adds(b, "null");
        return;
    }
    mllm_buf_add(b, "\"", 1);
    mllm_buf_json_str(b, s, strlen(s));
    mllm_buf_add(b, "\"", 1);
}

/* ---- UTF-8 ---- */

/* Bytes of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when s does not start with one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

size_t mllm_utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max)
        return n;
    /* s[max] is the first byte left out: step back to the start of its character */
    while (max && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

/* The length of s[0..n) without an incomplete character at its end (a cut message). */
static size_t utf8_trim_end(const char *s, size_t n)
{
    size_t start = n;
    while (start && n - start < 4 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
        start--;
    if (!start)
        return n;
    start--; /* the last lead byte (or ASCII) */
    const unsigned char *p = (const unsigned char *)s + start;
    return (*p < 0x80 || utf8_seq(p, n - start) == n - start) ? n : start;
}

/* A JSON string (with quotes) of text that may hold bytes from the request: what is
 * not well-formed UTF-8 becomes U+FFFD, so the JSON stays UTF-8 (RFC 8259 8.1). */
static void json_str_utf8(mllm_buf_t *b, const char *s)
{
    if (!s) {
        mllm_buf_adds(b, "null");
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), run = 0;
    mllm_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t k = p[i] < 0x80 ? 1 : utf8_seq(p + i, n - i);
        if (k) {
            i += k;
            continue;
        }
        mllm_buf_json_str(b, s + run, i - run);
        mllm_buf_adds(b, "\\ufffd");
        run = ++i;
    }
    mllm_buf_json_str(b, s + run, n - run);
    mllm_buf_add(b, "\"", 1);
}

/* ---- errors ---- */

int mllm_err_set(mllm_err_t *e, int status, const char *type, const char *code,
                 const char *param, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* A message cut at its byte limit must not end inside a character. */
    if (n >= (int)sizeof e->message)
        e->message[utf8_trim_end(e->message, sizeof e->message - 1)] = 0;
    return -1;
}

void mllm_fmt_error_openai(mllm_buf_t *b, const mllm_err_t *e)
{
    mllm_buf_adds(b, "{\"error\":{\"message\":");
    json_str_utf8(b, e->message);
    mllm_buf_adds(b, ",\"type\":");
    json_str_utf8(b, e->type);
    mllm_buf_adds(b, ",\"param\":");
    json_str_utf8(b, e->param);
    mllm_buf_adds(b, ",\"code\":");
    json_str_utf8(b, e->code);
    mllm_buf_adds(b, "}}");
}

static const char *anth_type(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529:
    case 503: return "overloaded_error";
    default:  return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

void mllm_fmt_error_anthropic(mllm_buf_t *b, const mllm_err_t *e)
{
    mllm_buf_adds(b, "{\"type\":\"error\",\"error\":{\"type\":");
    json_str_or_null(b, anth_type(e->status));
    mllm_buf_adds(b, ",\"message\":");
    json_str_utf8(b, e->message);
    mllm_buf_adds(b, "}}");
}

/* ---- request validation ---- */

/* Anthropic's tool names: 1 to 128 characters of ASCII letters, digits, '_' and '-'
 * ("tools.N.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'" and
 * "String should have at most 128 characters" in the API's answers since mid-2025;
 * reports from March 2025 show {1,64}). */
#define ANTH_TOOL_NAME_MAX 128

/* Characters of a well-formed UTF-8 string (the request's strings are: scan_body). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Are the names of the n tools in `tools` ({name, parameters} objects) distinct? Sorted,
 * not compared pairwise: a 1 MiB body holds ~50,000 tools, and n^2 strcmp calls would
 * hold the one scheduler thread for seconds. On no memory, says yes (not checked). */
static int tool_names_unique(const cJSON *tools, int n)
{
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names)
        return 1;
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
        names[k++] = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
    qsort(names, (size_t)k, sizeof *names, cmp_str);
    int ok = 1;
    for (int i = 1; i < k && ok; i++)
        ok = strcmp(names[i - 1], names[i]) != 0;
    free(names);
    return ok;
}

static int tool_name_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* What one pass over a body finds before cJSON sees it. */
enum { BODY_OK, BODY_TOO_DEEP, BODY_NOT_UTF8 };

/*
 * Refuses nesting deeper than MLLM_JSON_MAX_DEPTH before cJSON recurses into it
 * (brackets inside strings do not count) and bytes that are not UTF-8 (RFC 8259 8.1;
 * they would come back in echoed strings and error messages). Counts the \u0000
 * escapes in strings in *nul_escapes: cJSON keeps a string as a C string, so it ends
 * at the first one (see parse_body). *at: the byte where it stopped refusing.
 */
static int scan_body(const char *s, size_t n, size_t *nul_escapes, size_t *at)
{
    const unsigned char *p = (const unsigned char *)s;
    int depth = 0, in_str = 0;
    *nul_escapes = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        *at = i;
        if (c >= 0x80) {
            size_t k = utf8_seq(p + i, n - i);
            if (!k)
                return BODY_NOT_UTF8;
            i += k - 1;
        } else if (in_str) {
            if (c == '\\') {
                if (n - i >= 6 && !memcmp(s + i + 1, "u0000", 5))
                    (*nul_escapes)++;
                /* the escaped byte is skipped (\" does not end the string), unless it
                 * begins a multi-byte character: that is a bad escape in a UTF-8 body,
                 * for cJSON to refuse, and its bytes are checked as any others (skipped,
                 * its continuation bytes read as bytes that are not UTF-8) */
                if (i + 1 < n && p[i + 1] < 0x80)
                    i++;
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > MLLM_JSON_MAX_DEPTH)
                return BODY_TOO_DEEP;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return BODY_OK;
}

/* Anthropic's answer to a body that is not JSON: "The request body is not valid JSON:
 * <what>: line L column C (char N)" (the form the API writes, in its users' bug
 * reports); <what> is mock-llm's: "unexpected end of data" at the body's end when it
 * stops inside a string, object or array (cJSON then points at its last byte), else
 * "unexpected character" where cJSON stopped. L, C and N are Python's JSONDecodeError's:
 * N counts the characters before the error, not bytes (the API's <what>s are those of
 * orjson, a Python JSON library: "unexpected character", "no low surrogate in string",
 * "str is not valid UTF-8: surrogates not allowed"; orjson converts the parser's byte
 * position to characters), C the characters since the last newline, plus one. The body
 * is UTF-8 up to `at` (scan_body), so a character is a byte that is not a continuation
 * byte. */
static void anth_json_at(const char *body, size_t at, const char *what, mllm_err_t *err)
{
    size_t line = 1, chars = 0, col = 0;
    for (size_t i = 0; i < at; i++) {
        unsigned char c = (unsigned char)body[i];
        if ((c & 0xc0) == 0x80)
            continue;
        chars++;
        col++;
        if (c == '\n') {
            line++;
            col = 0;
        }
    }
    mllm_err_set(err, 400, "invalid_request_error", NULL, NULL,
                 "The request body is not valid JSON: %s: line %zu column %zu (char %zu)",
                 what, line, col + 1, chars);
}

static void anth_json_error(const char *body, size_t len, size_t at, mllm_err_t *err)
{
    long depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    int eof = in_str || depth > 0 || at >= len;
    if (eof || at > len)
        at = len;
    anth_json_at(body, at, eof ? "unexpected end of data" : "unexpected character", err);
}

static cJSON *parse_body(const char *body, size_t len, mllm_err_t *err, int anthropic)
{
    const char *orig = body; /* body may become a copy, freed before an error is set */
    size_t nul_escapes, scan_at = 0;
    int scan = scan_body(body, len, &nul_escapes, &scan_at);
    /* Anthropic: its bad-JSON sentence for these too. A body that is not UTF-8 gets the
     * sentence the API answers a compressed (binary) body with, orjson's, at position 0
     * as orjson reports it (it checks the whole body before parsing). Nesting: no answer
     * of the API's was found; the API's form with mock-llm's <what>, at the bracket
     * past the bound. */
    if (scan == BODY_TOO_DEEP && anthropic) {
        char what[48];
        snprintf(what, sizeof what, "nested deeper than %d levels", MLLM_JSON_MAX_DEPTH);
        anth_json_at(body, scan_at, what, err);
        return NULL;
    }
    if (scan == BODY_NOT_UTF8 && anthropic) {
        anth_json_at(body, 0, "str is not valid UTF-8: surrogates not allowed", err);
        return NULL;
    }
    if (scan == BODY_TOO_DEEP) {
        mllm_err_set(err, 400, "invalid_request_error", NULL, NULL,
                     "The JSON body of your request is nested deeper than %d levels.",
                     MLLM_JSON_MAX_DEPTH);
        return NULL;
    }
    if (scan == BODY_NOT_UTF8) {
        mllm_err_set(err, 400, "invalid_request_error", NULL, NULL,
                     "We could not parse the JSON body of your request: it is not valid "
                     "UTF-8 (RFC 8259 8.1).");
        return NULL;
    }
    /* A \u0000 escape is valid JSON, but a cJSON string ends at the NUL it decodes to,
     * and everything after it would be lost to the prompt-size count. Such a body (rare)
     * is parsed from a copy with those escapes read as \u0001: one byte each, as in the
     * request. */
    char *copy = NULL;
    if (nul_escapes) {
        copy = malloc(len ? len : 1);
        if (!copy) {
            mllm_err_set(err, 503, "server_error", NULL, NULL,
                         "mock-llm is out of memory for this request; try again.");
            return NULL;
        }
        memcpy(copy, body, len);
        int in_str = 0;
        for (size_t i = 0; i < len; i++) {
            if (in_str && copy[i] == '\\') {
                if (len - i >= 6 && !memcmp(copy + i + 1, "u0000", 5))
                    copy[i + 5] = '1';
                i++;
            } else if (copy[i] == '"') {
                in_str = !in_str;
            }
        }
        body = copy;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    size_t at = root || !end ? len : (size_t)(end - body);
    free(copy);
    if (!root && anthropic) {
        anth_json_error(orig, len, at, err);
        return NULL;
    }
    if (anthropic && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        mllm_err_set(err, 400, "invalid_request_error", NULL, NULL,
                     "Input should be a valid dictionary");
        return NULL;
    }
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        mllm_err_set(err, 400, "invalid_request_error", NULL, NULL,
                     "We could not parse the JSON body of your request. (HINT: This likely "
                     "means you aren't using your HTTP library correctly. The OpenAI API "
                     "expects a JSON payload, but what was sent was not valid JSON.)");
        return NULL;
    }
    return root;
}

/*
 * Prompt size. usage.prompt_tokens is estimated from the bytes of everything the model
 * would read: message contents (strings and text parts), system prompts and
 * instructions, tool results, the arguments of earlier tool calls, and the tool
 * definitions (their compact JSON). The rule is OpenAI's own rule of thumb for English,
 * one token per ~4 characters (help.openai.com, "What are tokens and how to count
 * them"), plus the chat framing OpenAI's token-counting cookbook uses for current
 * models: 3 tokens per message and 3 to prime the reply ("How to count tokens with
 * tiktoken"). Bytes, not characters: the server does not decode UTF-8, and non-English
 * text has more tokens per character anyway.
 */
#define BYTES_PER_TOKEN      MLLM_BYTES_PER_TOKEN
#define TOKENS_PER_MESSAGE   3
#define TOKENS_REPLY_PRIMING 3

static long json_bytes(const cJSON *v)
{
    if (!v)
        return 0;
    char *s = cJSON_PrintUnformatted(v);
    long n = s ? (long)strlen(s) : 0;
    cJSON_free(s);
    return n;
}

static long str_bytes(const cJSON *v)
{
    return cJSON_IsString(v) ? (long)strlen(v->valuestring) : 0;
}

/* Bytes of a content value: a string, or an array of parts. A part with a string
 * "text" (text, input_text, output_text, Anthropic text blocks) counts its text; a
 * tool_result its own content; a tool_use its name and the JSON of its input; every
 * other part (image_url, input_audio, Anthropic image and document blocks, Responses
 * input_image and input_file, ...) its compact JSON, as sent. Returns -1 when the shape
 * is wrong. */
static long content_bytes(const cJSON *c, int depth)
{
    if (cJSON_IsString(c))
        return (long)strlen(c->valuestring);
    if (cJSON_IsNull(c) || !c)
        return 0;
    if (!cJSON_IsArray(c) || depth > 2)
        return -1;
    long n = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        if (!cJSON_IsObject(part))
            return -1;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!strcmp(t, "tool_result")) {
            long k = content_bytes(cJSON_GetObjectItemCaseSensitive(part, "content"),
                                   depth + 1);
            if (k < 0)
                return -1;
            n += k;
        } else if (!strcmp(t, "tool_use")) {
            n += str_bytes(cJSON_GetObjectItemCaseSensitive(part, "name")) +
                 json_bytes(cJSON_GetObjectItemCaseSensitive(part, "input"));
        } else if (cJSON_IsString(text)) {
            n += str_bytes(text);
        } else {
            n += json_bytes(part);
        }
    }
    return n;
}

/* Does content (an Anthropic user turn) carry a tool_result block? */
static int has_tool_result(const cJSON *c)
{
    const cJSON *part;
    if (!cJSON_IsArray(c))
        return 0;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (cJSON_IsString(type) && !strcmp(type->valuestring, "tool_result"))
            return 1;
    }
    return 0;
}

static int tokens_of(long bytes, long messages)
{
    long t = (bytes + BYTES_PER_TOKEN - 1) / BYTES_PER_TOKEN + TOKENS_PER_MESSAGE * messages +
             TOKENS_REPLY_PRIMING;
    return t > 100000000 ? 100000000 : (int)t;
}

/* Adds the messages' bytes and count to *bytes and *n. Sets out->after_tool_result from
 * the last message. */
static int count_messages(const cJSON *msgs, long *bytes, long *n, mllm_gen_req_t *out,
                          mllm_err_t *err, int anthropic)
{
    const char *param = "messages";
    /* Anthropic's sentences are its validator's: "<path>: <what>", the path dotted
     * (messages.0.role), no code (see anth_number) */
    if (!msgs)
        return anthropic ? mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                        "messages: Field required")
                         : mllm_err_set(err, 400, "invalid_request_error",
                                        "missing_required_parameter", param,
                                        "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(msgs))
        return anthropic ? mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                        "messages: Input should be a valid list")
                         : mllm_err_set(err, 400, "invalid_request_error", "invalid_type",
                                        param, "Invalid type for 'messages': expected an "
                                        "array.");
    if (cJSON_GetArraySize(msgs) == 0)
        return anthropic ? mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                        "messages: at least one message is required")
                         : mllm_err_set(err, 400, "invalid_request_error", "empty_array",
                                        param, "Invalid 'messages': empty array. Expected "
                                        "an array with minimum length 1, but got an empty "
                                        "array instead.");
    long i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (anthropic && !cJSON_IsObject(m))
            return mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                "messages.%ld: Input should be a valid dictionary", i);
        if (anthropic && !role)
            return mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                "messages.%ld.role: Field required", i);
        if (!cJSON_IsObject(m) || (!anthropic && !cJSON_IsString(role)))
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", param,
                                "Invalid 'messages[%ld]': each message must be an object "
                                "with a string 'role'.", i);
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        int ok = anthropic ? (!strcmp(r, "user") || !strcmp(r, "assistant"))
                           : (!strcmp(r, "system") || !strcmp(r, "user") ||
                              !strcmp(r, "assistant") || !strcmp(r, "tool") ||
                              !strcmp(r, "developer") || !strcmp(r, "function"));
        if (!ok)
            return anthropic ? mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                            "messages.%ld.role: Input should be 'user' or "
                                            "'assistant'", i)
                             : mllm_err_set(err, 400, "invalid_request_error", "invalid_value",
                                            param, "Invalid value for 'messages[%ld].role': "
                                            "'%.*s'.", i, (int)mllm_utf8_cut(r, 40), r);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        long c = content_bytes(content, 0);
        if (c < 0)
            return anthropic ? mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                            "messages.%ld.content: Input should be a valid "
                                            "string or list of content blocks", i)
                             : mllm_err_set(err, 400, "invalid_request_error", "invalid_type",
                                            param, "Invalid type for 'messages[%ld].content': "
                                            "expected a string or an array of content "
                                            "parts.", i);
        /* Anthropic: only a final assistant message (a prefill) may be empty */
        if (anthropic && ((cJSON_IsString(content) && !content->valuestring[0]) ||
                          (cJSON_IsArray(content) && !cJSON_GetArraySize(content))) &&
            !(!m->next && !strcmp(r, "assistant")))
            return mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                "messages.%ld: all messages must have non-empty content "
                                "except for the optional final assistant message", i);
        /* earlier tool calls of the assistant are read again as prompt */
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), *tc;
        if (calls && !cJSON_IsNull(calls) && !cJSON_IsArray(calls))
            return anthropic ? mllm_err_set(err, 400, "invalid_request_error", NULL, param,
                                            "messages.%ld.tool_calls: Extra inputs are not "
                                            "permitted", i)
                             : mllm_err_set(err, 400, "invalid_request_error", "invalid_type", param,
                                "Invalid type for 'messages[%ld].tool_calls': expected an "
                                "array.", i);
        const cJSON *calls_list = cJSON_IsArray(calls) ? calls : NULL;
        cJSON_ArrayForEach(tc, calls_list) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            c += str_bytes(cJSON_GetObjectItemCaseSensitive(fn, "name")) +
                 str_bytes(cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
        }
        if (!strcmp(r, "tool") && !cJSON_IsString(
                                      cJSON_GetObjectItemCaseSensitive(m, "tool_call_id")))
            return mllm_err_set(err, 400, "invalid_request_error", "missing_required_parameter",
                                param, "Missing parameter 'tool_call_id': messages with role "
                                "'tool' must be a response to a preceding message with "
                                "'tool_calls'.");
        out->after_tool_result = anthropic ? !strcmp(r, "user") && has_tool_result(content)
                                           : !strcmp(r, "tool") || !strcmp(r, "function");
        *bytes += c;
        i++;
    }
    *n += i;
    return 0;
}

static int get_model(const cJSON *root, mllm_gen_req_t *out, mllm_err_t *err, int anthropic)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (anthropic) {
        if (!model)
            return mllm_err_set(err, 400, "invalid_request_error", NULL, "model",
                                "model: Field required");
        if (!cJSON_IsString(model))
            return mllm_err_set(err, 400, "invalid_request_error", NULL, "model",
                                "model: Input should be a valid string");
        if (!model->valuestring[0])
            return mllm_err_set(err, 400, "invalid_request_error", NULL, "model",
                                "model: String should have at least 1 character");
        if (strlen(model->valuestring) >= sizeof out->model)
            return mllm_err_set(err, 400, "invalid_request_error", NULL, "model",
                                "model: String should have at most %zu characters",
                                sizeof out->model - 1);
    }
    if (!model)
        return mllm_err_set(err, 400, "invalid_request_error", "missing_required_parameter",
                            "model", "you must provide a model parameter");
    if (!cJSON_IsString(model) || !model->valuestring[0])
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "model",
                            "Invalid type for 'model': expected a non-empty string.");
    if (strlen(model->valuestring) >= sizeof out->model)
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_value", "model",
                            "Invalid 'model': string too long.");
    strcpy(out->model, model->valuestring);
    return 0;
}

static int get_bool(const cJSON *root, const char *name, int *out, mllm_err_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", name,
                            "Invalid type for '%s': expected a boolean.", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A positive integer parameter; absent or null leaves *out. */
static int get_posint(const cJSON *root, const char *name, int *out, mllm_err_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", name,
                            "Invalid type for '%s': expected an integer.", name);
    if (v->valuedouble < 1)
        return mllm_err_set(err, 400, "invalid_request_error", "integer_below_min_value",
                            name, "Invalid '%s': integer below minimum value. Expected a "
                            "value >= 1, but got %.0f instead.", name, v->valuedouble);
    *out = v->valuedouble > 1e8 ? 100000000 : (int)v->valuedouble;
    return 0;
}

static int get_temperature(const cJSON *root, mllm_err_t *err)
{
    const cJSON *temp = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    if (temp && !cJSON_IsNull(temp) &&
        (!cJSON_IsNumber(temp) || temp->valuedouble < 0 || temp->valuedouble > 2))
        return mllm_err_set(err, 400, "invalid_request_error", "decimal_above_max_value",
                            "temperature", "Invalid 'temperature': expected a number from 0 "
                            "to 2.");
    return 0;
}

/* A number parameter within [lo, hi]; absent or null passes. OpenAI's wording. */
static int get_range(const cJSON *root, const char *name, double lo, double hi,
                     mllm_err_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", name,
                            "Invalid type for '%s': expected a number.", name);
    if (v->valuedouble > hi)
        return mllm_err_set(err, 400, "invalid_request_error", "decimal_above_max_value", name,
                            "Invalid '%s': decimal above maximum value. Expected a value <= "
                            "%g, but got %g instead.", name, hi, v->valuedouble);
    if (v->valuedouble < lo)
        return mllm_err_set(err, 400, "invalid_request_error", "decimal_below_min_value", name,
                            "Invalid '%s': decimal below minimum value. Expected a value >= "
                            "%g, but got %g instead.", name, lo, v->valuedouble);
    return 0;
}

/*
 * Chat's sampling parameters. logprobs: true asks for choices[].logprobs.content (drawn
 * per request, see mllm_logprob_entry); top_logprobs is an integer from 0 to 20 and
 * needs logprobs (OpenAI: "'logprobs' must be set to true if 'top_logprobs' is used";
 * 0 passes). top_p and the penalties are checked against OpenAI's ranges. stop, seed,
 * logit_bias, user... stay accepted and ignored (README).
 */
static int chat_sampling(const cJSON *root, mllm_gen_req_t *out, mllm_err_t *err)
{
    int logprobs = 0;
    if (get_bool(root, "logprobs", &logprobs, err))
        return -1;
    out->logprobs = logprobs;
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
    if (tl && !cJSON_IsNull(tl)) {
        if (!cJSON_IsNumber(tl) || tl->valuedouble != floor(tl->valuedouble))
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type",
                                "top_logprobs",
                                "Invalid type for 'top_logprobs': expected an integer.");
        if (!logprobs && tl->valuedouble != 0)
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_value",
                                "top_logprobs", "Invalid value for 'top_logprobs': 'logprobs' "
                                "must be set to true if 'top_logprobs' is used.");
        if (tl->valuedouble < 0)
            return mllm_err_set(err, 400, "invalid_request_error", "integer_below_min_value",
                                "top_logprobs", "Invalid 'top_logprobs': integer below minimum "
                                "value. Expected a value >= 0, but got %.0f instead.",
                                tl->valuedouble);
        if (tl->valuedouble > MLLM_MAX_TOP_LOGPROBS)
            return mllm_err_set(err, 400, "invalid_request_error", "integer_above_max_value",
                                "top_logprobs", "Invalid 'top_logprobs': integer above maximum "
                                "value. Expected a value <= %d, but got %.0f instead.",
                                MLLM_MAX_TOP_LOGPROBS, tl->valuedouble);
        out->top_logprobs = (int)tl->valuedouble;
    }
    return get_range(root, "top_p", 0, 1, err) ||
           get_range(root, "presence_penalty", -2, 2, err) ||
           get_range(root, "frequency_penalty", -2, 2, err) ? -1 : 0;
}

/*
 * What n > 1 and logprobs are not drawn for (README): the n choices share one answer
 * kind, text, and one schedule; a tool call, structured JSON or a stop sequence's cut is
 * drawn once per request. Refused with a 400 naming the parameter instead of answered
 * with fewer choices or no log probabilities.
 */
static int chat_multi_limits(const mllm_gen_req_t *out, mllm_err_t *err)
{
    int tools = out->ntools > 0 && out->tool_choice != MLLM_TOOLS_NONE;
    const char *what = tools                              ? "tools"
                       : out->json_mode != MLLM_JSON_NONE ? "response_format"
                                                          : NULL;
    if (out->n > 1 && (what || out->stop))
        return mllm_err_set(err, 400, "invalid_request_error", "unsupported_value", "n",
                            "Unsupported value: 'n' > 1 is not supported together with '%s' "
                            "by mock-llm (it draws one tool call, JSON answer or stop per "
                            "request); use n: 1.", what ? what : "stop");
    if (out->logprobs && what)
        return mllm_err_set(err, 400, "invalid_request_error", "unsupported_value",
                            "logprobs", "Unsupported value: 'logprobs' is not supported "
                            "together with '%s' by mock-llm (log probabilities are drawn for "
                            "text answers only).", what);
    return 0;
}

/*
 * Tools, in each API's shape, normalised into out->tools: an array of
 * {"name": ..., "parameters": <JSON schema or null>} (detached copies, freed by
 * mllm_gen_req_free), and tool_choice. Adds the definitions' bytes to *bytes.
 *   chat:      tools [{type:"function", function:{name, description, parameters}}],
 *              tool_choice "auto"|"none"|"required"|{type:"function",function:{name}}
 *   messages:  tools [{name, description, input_schema}],
 *              tool_choice {type:"auto"|"any"|"tool"|"none", name}
 *   responses: tools [{type:"function", name, description, parameters}],
 *              tool_choice "auto"|"none"|"required"|{type:"function", name}
 * Tools of other types (web search, code interpreter, ...) are counted and ignored.
 */
static int get_tools(const cJSON *root, int api, mllm_gen_req_t *out, long *bytes,
                     mllm_err_t *err)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    int anth = api == MLLM_API_MESSAGES;
    out->tool_choice = MLLM_TOOLS_AUTO;
    if (tools && !cJSON_IsNull(tools)) {
        if (anth && !cJSON_IsArray(tools))
            return mllm_err_set(err, 400, "invalid_request_error", NULL, "tools",
                                "tools: Input should be a valid list");
        if (!cJSON_IsArray(tools))
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "tools",
                                "Invalid type for 'tools': expected an array.");
        out->tools = cJSON_CreateArray();
        if (!out->tools)
            return mllm_err_set(err, 500, "server_error", NULL, NULL, "Out of memory.");
        long i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tools) {
            *bytes += json_bytes(t);
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
            const cJSON *fn = api == MLLM_API_CHAT ? cJSON_GetObjectItemCaseSensitive(t, "function")
                                                   : t;
            int function = api == MLLM_API_MESSAGES
                               ? !cJSON_IsString(type) || !strcmp(type->valuestring, "custom")
                               : cJSON_IsString(type) && !strcmp(type->valuestring, "function");
            if (anth && !cJSON_IsObject(t))
                return mllm_err_set(err, 400, "invalid_request_error", NULL, "tools",
                                    "tools.%ld: Input should be a valid dictionary", i);
            if (!cJSON_IsObject(t))
                return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "tools",
                                    "Invalid 'tools[%ld]': expected an object.", i);
            /* OpenAI's tools say their type; one without was skipped as "not a function",
             * and a tool_choice then read that no tools were given */
            if (api != MLLM_API_MESSAGES && !cJSON_IsString(type))
                return mllm_err_set(err, 400, "invalid_request_error",
                                    "missing_required_parameter", "tools",
                                    "Missing required parameter: 'tools[%ld].type'.", i);
            i++;
            if (!function)
                continue;
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            /* Anthropic's path names the tool's variant: tools.0.custom.name */
            if (anth && !cJSON_IsString(name))
                return mllm_err_set(err, 400, "invalid_request_error", NULL, "tools",
                                    name ? "tools.%ld.custom.name: Input should be a valid "
                                           "string"
                                         : "tools.%ld.custom.name: Field required", i - 1);
            /* The API's checks in its validator's order: length in characters, then
             * the pattern (a name of 129 ASCII letters is "at most 128 characters", one
             * with a '.' or a non-ASCII letter does not match the pattern) */
            if (anth && !name->valuestring[0])
                return mllm_err_set(err, 400, "invalid_request_error", NULL, "tools",
                                    "tools.%ld.custom.name: String should have at least 1 "
                                    "character", i - 1);
            if (anth && utf8_chars(name->valuestring) > ANTH_TOOL_NAME_MAX)
                return mllm_err_set(err, 400, "invalid_request_error", NULL, "tools",
                                    "tools.%ld.custom.name: String should have at most %d "
                                    "characters", i - 1, ANTH_TOOL_NAME_MAX);
            if (anth && !tool_name_ok(name->valuestring))
                return mllm_err_set(err, 400, "invalid_request_error", NULL, "tools",
                                    "tools.%ld.custom.name: String should match pattern "
                                    "'^[a-zA-Z0-9_-]{1,128}$'", i - 1);
            if (!anth && (!cJSON_IsString(name) || !name->valuestring[0] ||
                          strlen(name->valuestring) > 64))
                return mllm_err_set(err, 400, "invalid_request_error",
                                    "missing_required_parameter", "tools",
                                    "Invalid 'tools[%ld]': a function tool needs a 'name' "
                                    "of 1 to 64 characters.", i - 1);
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(
                fn, api == MLLM_API_MESSAGES ? "input_schema" : "parameters");
            /* The schema is moved, not copied, out of the request's tree (deleted after
             * parsing anyway): a copy of a large schema cost as much as parsing it. */
            cJSON *o = cJSON_CreateObject();
            if (!o || !cJSON_AddStringToObject(o, "name", name->valuestring) ||
                !cJSON_AddItemToObject(o, "parameters",
                                       params ? cJSON_DetachItemViaPointer((cJSON *)fn,
                                                                           (cJSON *)params)
                                              : cJSON_CreateNull())) {
                cJSON_Delete(o);
                return mllm_err_set(err, 500, "server_error", NULL, NULL, "Out of memory.");
            }
            cJSON_AddItemToArray(out->tools, o);
        }
    }
    out->ntools = out->tools ? cJSON_GetArraySize(out->tools) : 0;
    if (anth && out->ntools > 1 && !tool_names_unique(out->tools, out->ntools))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, "tools",
                            "tools: Tool names must be unique.");
    if (!choice || cJSON_IsNull(choice))
        return 0;
    const char *c = NULL, *named = NULL;
    /* Anthropic's tool_choice is an object only; "auto" as a string (OpenAI's form) is
     * refused as the API refuses it. */
    if (anth && !cJSON_IsObject(choice))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, "tool_choice",
                            "tool_choice: Input should be a valid dictionary or object to "
                            "extract fields from");
    if (cJSON_IsString(choice)) {
        c = choice->valuestring;
    } else if (cJSON_IsObject(choice)) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(choice, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(choice, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn ? fn : choice, "name");
        c = cJSON_IsString(type) ? type->valuestring : "";
        if (!strcmp(c, "function") || !strcmp(c, "tool")) {
            c = "named";
            named = cJSON_IsString(name) ? name->valuestring : "";
        }
    }
    if (c && !strcmp(c, "auto"))
        out->tool_choice = MLLM_TOOLS_AUTO;
    else if (c && !strcmp(c, "none"))
        out->tool_choice = MLLM_TOOLS_NONE;
    else if (c && (!strcmp(c, "required") || (api == MLLM_API_MESSAGES && !strcmp(c, "any"))))
        out->tool_choice = MLLM_TOOLS_REQUIRED;
    else if (c && named)
        out->tool_choice = MLLM_TOOLS_NAMED;
    else if (anth)
        return mllm_err_set(err, 400, "invalid_request_error", NULL, "tool_choice",
                            "tool_choice: Input tag '%.*s' found using 'type' does not match "
                            "any of the expected tags: 'auto', 'any', 'tool', 'none'",
                            c ? (int)mllm_utf8_cut(c, 40) : 0, c ? c : "");
    else
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_value", "tool_choice",
                            "Invalid value for 'tool_choice': expected \"auto\", \"none\", "
                            "\"required\" or a named function.");
    if (out->tool_choice != MLLM_TOOLS_AUTO && out->tool_choice != MLLM_TOOLS_NONE &&
        out->ntools == 0 && anth)
        return mllm_err_set(err, 400, "invalid_request_error", NULL, "tool_choice",
                            "tool_choice: tool_choice may only be specified while providing "
                            "tools");
    if (out->tool_choice != MLLM_TOOLS_AUTO && out->tool_choice != MLLM_TOOLS_NONE &&
        out->ntools == 0)
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_value", "tool_choice",
                            "Invalid value for 'tool_choice': 'tool_choice' is only allowed "
                            "when 'tools' are specified.");
    if (named) {
        out->named_tool = -1;
        for (int i = 0; i < out->ntools; i++) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(out->tools, i), "name");
            if (!strcmp(n->valuestring, named))
                out->named_tool = i;
        }
        if (out->named_tool < 0 && anth)
            return mllm_err_set(err, 400, "invalid_request_error", NULL, "tool_choice",
                                "tool_choice.name: no tool named '%.*s' in tools",
                                (int)mllm_utf8_cut(named, 64), named);
        if (out->named_tool < 0)
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_value",
                                "tool_choice", "Invalid value for 'tool_choice': no function "
                                "named '%.*s' in 'tools'.", (int)mllm_utf8_cut(named, 64),
                                named);
    }
    return 0;
}

/*
 * A structured-output format into out->json_mode / json_schema, and its bytes into
 * *bytes (the model reads the schema). fmt is chat's response_format ({type, json_schema:
 * {name, schema, strict}}) or the Responses API's text.format ({type, name, schema,
 * strict}: flat); param names it in errors. Types: text, json_object, json_schema; any
 * other is refused as OpenAI refuses it. The schema is moved out of the request's tree
 * (deleted after parsing anyway), as tool schemas are.
 */
static int get_json_format(const cJSON *fmt, int chat, const char *param, mllm_gen_req_t *out,
                           long *bytes, mllm_err_t *err)
{
    if (!fmt || cJSON_IsNull(fmt))
        return 0;
    if (!cJSON_IsObject(fmt))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", param,
                            "Invalid type for '%s': expected an object.", param);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(fmt, "type");
    if (!cJSON_IsString(type))
        return mllm_err_set(err, 400, "invalid_request_error", "missing_required_parameter",
                            param, "Missing required parameter: '%s.type'.", param);
    const char *t = type->valuestring;
    if (!strcmp(t, "text"))
        return 0;
    *bytes += json_bytes(fmt);
    if (!strcmp(t, "json_object")) {
        out->json_mode = MLLM_JSON_OBJECT;
        return 0;
    }
    if (strcmp(t, "json_schema"))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_value", param,
                            "Invalid value for '%s.type': '%.*s'. Supported values are: "
                            "'text', 'json_object' and 'json_schema'.", param,
                            (int)mllm_utf8_cut(t, 40), t);
    const cJSON *js = chat ? cJSON_GetObjectItemCaseSensitive(fmt, "json_schema") : fmt;
    if (!cJSON_IsObject(js))
        return mllm_err_set(err, 400, "invalid_request_error", "missing_required_parameter",
                            param, "Missing required parameter: '%s.json_schema'.", param);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
    if (!cJSON_IsString(name) || !name->valuestring[0])
        return mllm_err_set(err, 400, "invalid_request_error", "missing_required_parameter",
                            param, "Missing required parameter: '%s%s.name'.", param,
                            chat ? ".json_schema" : "");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    out->json_mode = MLLM_JSON_SCHEMA;
    if (cJSON_IsObject(schema))
        out->json_schema = cJSON_DetachItemViaPointer((cJSON *)js, (cJSON *)schema);
    return 0;
}

/* Stop sequences into out->stop: chat's stop (a string, or an array of at most 4
 * strings; OpenAI's limit), Anthropic's stop_sequences (an array of strings). Empty
 * strings can never match and are dropped. */
static int get_stop(const cJSON *root, const char *name, int max, mllm_gen_req_t *out,
                    mllm_err_t *err)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    int ok = cJSON_IsString(v) || cJSON_IsArray(v);
    const cJSON *it;
    if (cJSON_IsArray(v)) {
        cJSON_ArrayForEach(it, v) {
            ok &= cJSON_IsString(it);
        }
    }
    /* Anthropic's stop_sequences (max 0): its validator's words, and an empty or
     * whitespace-only sequence refused as the API refuses it */
    if (!max && !cJSON_IsArray(v))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                            "%s: Input should be a valid list", name);
    if (!max) {
        int k = 0;
        cJSON_ArrayForEach(it, v) {
            if (!cJSON_IsString(it))
                return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                                    "%s.%d: Input should be a valid string", name, k);
            const char *q = it->valuestring;
            if (!*q)
                return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                                    "%s: each stop sequence must be non-empty", name);
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
                q++;
            if (!*q)
                return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                                    "%s: each stop sequence must contain non-whitespace",
                                    name);
            k++;
        }
    }
    if (!ok || (!max && !cJSON_IsArray(v)))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", name,
                            "Invalid type for '%s': expected %s.", name,
                            max ? "a string or an array of strings" : "an array of strings");
    if (max && n > max)
        return mllm_err_set(err, 400, "invalid_request_error", "array_above_max_length", name,
                            "Invalid '%s': array too long. Expected an array with maximum "
                            "length %d, but got an array with length %d instead.", name, max, n);
    out->stop = cJSON_CreateArray();
    if (!out->stop)
        return mllm_err_set(err, 503, "server_error", NULL, NULL,
                            "mock-llm is out of memory for this request; try again.");
    const cJSON *list = cJSON_IsArray(v) ? v : NULL;
    if (!list) {
        if (v->valuestring[0])
            cJSON_AddItemToArray(out->stop, cJSON_CreateString(v->valuestring));
    } else {
        cJSON_ArrayForEach(it, list) {
            if (it->valuestring[0])
                cJSON_AddItemToArray(out->stop, cJSON_CreateString(it->valuestring));
        }
    }
    if (cJSON_GetArraySize(out->stop) == 0) {
        cJSON_Delete(out->stop);
        out->stop = NULL;
    }
    return 0;
}

void mllm_gen_req_free(mllm_gen_req_t *r)
{
    cJSON_Delete(r->stop);
    r->stop = NULL;
    cJSON_Delete(r->json_schema);
    r->json_schema = NULL;
    cJSON_Delete(r->tools);
    r->tools = NULL;
    r->ntools = 0;
    mllm_buf_free(&r->echo);
}

/* The frame every request parser shares: parses the body, reads the model, hands the
 * rest to fields() (which adds the prompt's bytes and messages it counts), then sets the
 * prompt's size. Returns 0, or -1 with *err set and *out freed. */
typedef int (*fields_fn)(const cJSON *root, mllm_gen_req_t *out, long *bytes, long *msgs,
                         mllm_err_t *err, int flag);

static int parse_req(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err,
                     int api, fields_fn fields, int flag)
{
    memset(out, 0, sizeof *out);
    out->api = api;
    out->n = 1;
    cJSON *root = parse_body(body, len, err, api == MLLM_API_MESSAGES);
    if (!root)
        return -1;
    long bytes = 0, msgs = 0;
    int rc = get_model(root, out, err, api == MLLM_API_MESSAGES) || fields(root, out, &bytes, &msgs, err, flag) ? -1 : 0;
    if (rc == 0) {
        out->prompt_bytes = bytes;
        out->prompt_tokens = tokens_of(bytes, msgs);
    } else {
        mllm_gen_req_free(out);
    }
    cJSON_Delete(root);
    return rc;
}

static int chat_fields(const cJSON *root, mllm_gen_req_t *out, long *bytes, long *msgs,
                       mllm_err_t *err, int flag)
{
    (void)flag;
    if (count_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), bytes, msgs, out,
                       err, 0))
        return -1;
    if (get_bool(root, "stream", &out->stream, err))
        return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!out->stream)
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_value",
                                "stream_options", "The 'stream_options' parameter is only "
                                "allowed when 'stream' is enabled.");
        if (!cJSON_IsObject(so))
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type",
                                "stream_options",
                                "Invalid type for 'stream_options': expected an object.");
        if (get_bool(so, "include_usage", &out->include_usage, err))
            return -1;
    }
    /* max_completion_tokens replaces the deprecated max_tokens; when both are given
     * the smaller cap is the one that binds. */
    int mt = 0, mct = 0;
    if (get_posint(root, "max_tokens", &mt, err) ||
        get_posint(root, "max_completion_tokens", &mct, err))
        return -1;
    out->max_tokens = mt && mct ? (mt < mct ? mt : mct) : (mt ? mt : mct);
    int n = 1;
    if (get_posint(root, "n", &n, err))
        return -1;
    if (n > MLLM_MAX_CHOICES)
        return mllm_err_set(err, 400, "invalid_request_error", "integer_above_max_value", "n",
                            "Invalid 'n': integer above maximum value. Expected a value <= "
                            "%d, but got %d instead.", MLLM_MAX_CHOICES, n);
    out->n = n;
    return get_temperature(root, err) || chat_sampling(root, out, err) ||
                   get_tools(root, MLLM_API_CHAT, out, bytes, err) ||
                   get_stop(root, "stop", 4, out, err) ||
                   get_json_format(cJSON_GetObjectItemCaseSensitive(root, "response_format"),
                                   1, "response_format", out, bytes, err) ||
                   chat_multi_limits(out, err)
               ? -1
               : 0;
}

int mllm_parse_chat(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err)
{
    return parse_req(body, len, out, err, MLLM_API_CHAT, chat_fields, 0);
}

/*
 * Anthropic's own validation wording (its errors carry no param or code, so the message
 * is all a client reads): "<field>: Input should be a valid <type>" for a wrong type,
 * "<field>: range: lo..hi" for a number out of range (what the API answers for
 * temperature 1.5 or top_p 2). Before, these came in Anthropic's envelope with OpenAI's
 * sentences ("Invalid 'temperature': decimal above maximum value. ...").
 */
static int anth_number(const cJSON *root, const char *name, double lo, double hi,
                       mllm_err_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                            "%s: Input should be a valid number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return mllm_err_set(err, 400, "invalid_request_error", NULL, name, "%s: range: %g..%g",
                            name, lo, hi);
    return 0;
}

/* Anthropic's max_tokens: an integer >= 1 (mock-llm draws at least one token). */
static int anth_posint(const cJSON *root, const char *name, int *out, mllm_err_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                            "%s: Input should be a valid integer", name);
    if (v->valuedouble < 1)
        return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                            "%s: Input should be greater than or equal to 1", name);
    *out = v->valuedouble > 1e8 ? 100000000 : (int)v->valuedouble;
    return 0;
}

static int anth_bool(const cJSON *root, const char *name, int *out, mllm_err_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, name,
                            "%s: Input should be a valid boolean", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Anthropic Messages; count_only: the count_tokens endpoint, where max_tokens is not
 * required. */
static int messages_fields(const cJSON *root, mllm_gen_req_t *out, long *bytes, long *msgs,
                           mllm_err_t *err, int count_only)
{
    if (count_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), bytes, msgs, out,
                       err, 1))
        return -1;
    if (!count_only && !cJSON_GetObjectItemCaseSensitive(root, "max_tokens"))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, "max_tokens",
                            "max_tokens: Field required");
    if (anth_posint(root, "max_tokens", &out->max_tokens, err) ||
        anth_bool(root, "stream", &out->stream, err))
        return -1;
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system");
    if (sys) {
        long c = content_bytes(sys, 0);
        if (c < 0)
            return mllm_err_set(err, 400, "invalid_request_error", NULL, "system",
                                "system: Input should be a valid string or list of text "
                                "blocks");
        *bytes += c;
        (*msgs)++;
    }
    /* Anthropic's ranges: temperature and top_p 0..1, top_k a non-negative integer */
    if (anth_number(root, "temperature", 0, 1, err) || anth_number(root, "top_p", 0, 1, err))
        return -1;
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(root, "top_k");
    if (tk && !cJSON_IsNull(tk) &&
        (!cJSON_IsNumber(tk) || tk->valuedouble != floor(tk->valuedouble)))
        return mllm_err_set(err, 400, "invalid_request_error", NULL, "top_k",
                            "top_k: Input should be a valid integer");
    if (tk && !cJSON_IsNull(tk) && tk->valuedouble < 0)
        return mllm_err_set(err, 400, "invalid_request_error", NULL, "top_k",
                            "top_k: Input should be greater than or equal to 0");
    if (get_tools(root, MLLM_API_MESSAGES, out, bytes, err) ||
        get_stop(root, "stop_sequences", 0, out, err))
        return -1;
    out->include_usage = 1;
    return 0;
}

int mllm_parse_messages(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err)
{
    return parse_req(body, len, out, err, MLLM_API_MESSAGES, messages_fields, 0);
}

int mllm_parse_count_tokens(const char *body, size_t len, mllm_gen_req_t *out,
                            mllm_err_t *err)
{
    return parse_req(body, len, out, err, MLLM_API_MESSAGES, messages_fields, 1);
}

/* Responses API input items: a message ({role, content} with or without type
 * "message"), a function_call (an earlier call: name, arguments, call_id), or a
 * function_call_output (its result: call_id, output). */
static int count_input_items(const cJSON *input, long *bytes, long *n, mllm_gen_req_t *out,
                             mllm_err_t *err)
{
    long i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, input) {
        if (!cJSON_IsObject(it))
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "input",
                                "Invalid 'input[%ld]': expected an object.", i);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "message";
        out->after_tool_result = 0;
        if (!strcmp(t, "message")) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
            const char *r = cJSON_IsString(role) ? role->valuestring : "";
            if (strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "system") &&
                strcmp(r, "developer"))
                return mllm_err_set(err, 400, "invalid_request_error", "invalid_value",
                                    "input", "Invalid value for 'input[%ld].role': '%.*s'.",
                                    i, (int)mllm_utf8_cut(r, 40), r);
            long c = content_bytes(cJSON_GetObjectItemCaseSensitive(it, "content"), 0);
            if (c < 0)
                return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "input",
                                    "Invalid type for 'input[%ld].content': expected a string "
                                    "or an array of content parts.", i);
            *bytes += c;
        } else if (!strcmp(t, "function_call")) {
            *bytes += str_bytes(cJSON_GetObjectItemCaseSensitive(it, "name")) +
                      str_bytes(cJSON_GetObjectItemCaseSensitive(it, "arguments"));
        } else if (!strcmp(t, "function_call_output")) {
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "call_id")))
                return mllm_err_set(err, 400, "invalid_request_error",
                                    "missing_required_parameter", "input",
                                    "Missing required parameter: 'input[%ld].call_id'.", i);
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, "output");
            *bytes += cJSON_IsString(o) ? str_bytes(o) : json_bytes(o);
            out->after_tool_result = 1;
        } else {
            *bytes += json_bytes(it); /* reasoning and other items: read as they are */
        }
        i++;
    }
    *n += i;
    return 0;
}

/*
 * The request's fields the response object repeats, as JSON members for resp_object:
 * what was sent (compact JSON), or the API's default when absent or null. store is
 * always false (mock-llm stores nothing: GET /v1/responses/{id} is a 404), service_tier
 * "auto" is answered as the tier that served it ("default"), previous_response_id is
 * always null (a request with one is refused).
 */
static const struct {
    const char *name, *dflt;
} resp_echoed[] = {
    { "background", "false" },
    { "instructions", "null" },
    { "max_output_tokens", "null" },
    { "max_tool_calls", "null" },
    { "metadata", "{}" },
    { "parallel_tool_calls", "true" },
    { "prompt_cache_key", "null" },
    { "reasoning", "{\"effort\":null,\"summary\":null}" },
    { "safety_identifier", "null" },
    { "service_tier", "\"default\"" },
    { "temperature", "1.0" },
    { "text", "{\"format\":{\"type\":\"text\"}}" },
    { "tool_choice", "\"auto\"" },
    { "tools", "[]" },
    { "top_logprobs", "0" },
    { "top_p", "1.0" },
    { "truncation", "\"disabled\"" },
    { "user", "null" },
};

static int resp_echo(const cJSON *root, mllm_buf_t *b, mllm_err_t *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "top_p");
    if (v && !cJSON_IsNull(v) && (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1))
        return mllm_err_set(err, 400, "invalid_request_error", "decimal_above_max_value",
                            "top_p", "Invalid 'top_p': expected a number from 0 to 1.");
    v = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "metadata",
                            "Invalid type for 'metadata': expected an object.");
    int ptc = 1;
    if (get_bool(root, "parallel_tool_calls", &ptc, err))
        return -1;
    mllm_buf_adds(b, "\"previous_response_id\":null,\"store\":false");
    for (size_t i = 0; i < sizeof resp_echoed / sizeof resp_echoed[0]; i++) {
        const char *name = resp_echoed[i].name;
        v = cJSON_GetObjectItemCaseSensitive(root, name);
        if (v && cJSON_IsString(v) && !strcmp(name, "service_tier") &&
            !strcmp(v->valuestring, "auto"))
            v = NULL;
        mllm_buf_printf(b, ",\"%s\":", name);
        char *j = v && !cJSON_IsNull(v) ? cJSON_PrintUnformatted(v) : NULL;
        mllm_buf_adds(b, j ? j : resp_echoed[i].dflt);
        cJSON_free(j);
    }
    if (b->oom)
        return mllm_err_set(err, 503, "server_error", NULL, NULL,
                            "mock-llm is out of memory for this request; try again.");
    return 0;
}

static int responses_fields(const cJSON *root, mllm_gen_req_t *out, long *bytes, long *msgs,
                            mllm_err_t *err, int flag)
{
    (void)flag;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (cJSON_IsString(input)) {
        *bytes += (long)strlen(input->valuestring);
        *msgs = 1;
    } else if (cJSON_IsArray(input) && cJSON_GetArraySize(input) > 0) {
        if (count_input_items(input, bytes, msgs, out, err))
            return -1;
    } else {
        return mllm_err_set(err, 400, "invalid_request_error",
                            input ? "invalid_type" : "missing_required_parameter", "input",
                            input ? "Invalid type for 'input': expected a string or a "
                                    "non-empty array of input items."
                                  : "Missing required parameter: 'input'.");
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "instructions");
    if (ins && !cJSON_IsNull(ins)) {
        if (!cJSON_IsString(ins))
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type",
                                "instructions",
                                "Invalid type for 'instructions': expected a string.");
        *bytes += (long)strlen(ins->valuestring);
        (*msgs)++;
    }
    if (get_posint(root, "max_output_tokens", &out->max_tokens, err) ||
        get_bool(root, "stream", &out->stream, err) || get_temperature(root, err) ||
        resp_echo(root, &out->echo, err) ||
        get_tools(root, MLLM_API_RESPONSES, out, bytes, err))
        return -1;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
    if (text && !cJSON_IsNull(text) && !cJSON_IsObject(text))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "text",
                            "Invalid type for 'text': expected an object.");
    if (get_json_format(cJSON_GetObjectItemCaseSensitive(text, "format"), 0, "text.format",
                        out, bytes, err))
        return -1;
    /* Log probabilities are drawn for chat only (README): asked for here, refused rather
     * than answered with an empty logprobs array. */
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(root, "include"), *it;
    if (!cJSON_IsArray(inc))
        inc = NULL;
    cJSON_ArrayForEach(it, inc) {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, "message.output_text.logprobs"))
            return mllm_err_set(err, 400, "invalid_request_error", "unsupported_value",
                                "include", "Unsupported value: 'include' "
                                "'message.output_text.logprobs' is not supported by mock-llm's "
                                "Responses API (log probabilities: Chat Completions only).");
    }
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
    if (cJSON_IsNumber(tl) && tl->valuedouble != 0)
        return mllm_err_set(err, 400, "invalid_request_error", "unsupported_value",
                            "top_logprobs", "Unsupported value: 'top_logprobs' is not supported "
                            "by mock-llm's Responses API (log probabilities: Chat Completions "
                            "only); leave it unset or 0.");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(root, "previous_response_id");
    if (prev && !cJSON_IsNull(prev)) {
        /* mock-llm keeps no conversation state (it would be memory per response) */
        const char *id = cJSON_IsString(prev) ? prev->valuestring : "?";
        return mllm_err_set(err, 400, "invalid_request_error", "previous_response_not_found",
                            "previous_response_id", "Previous response with id '%.*s' not "
                            "found (mock-llm stores no responses: send the whole input).",
                            (int)mllm_utf8_cut(id, 64), id);
    }
    out->include_usage = 1;
    return 0;
}

int mllm_parse_responses(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err)
{
    return parse_req(body, len, out, err, MLLM_API_RESPONSES, responses_fields, 0);
}

/* ---- OpenAI stream frames ---- */

/* The model's part of the chunk prefix, from ,"model": to the choices' [, shared by
 * every stream of the model: a few models at a time in practice (a benchmark, one), so
 * a short table, searched once per stream; its entries live as long as the process.
 * Past MODEL_PARTS models a stream points into its own prefix instead. One thread
 * formats streams (the scheduler's), as for the wheel. */
#define MODEL_PARTS 16
static struct {
    char *model;
    char *part;
} model_parts[MODEL_PARTS];
static int n_model_parts;

static const char *model_part(const char *model, size_t mlen, const char *own, size_t own_len)
{
    for (int i = 0; i < n_model_parts; i++)
        if (strlen(model_parts[i].model) == mlen && !memcmp(model_parts[i].model, model, mlen))
            return model_parts[i].part;
    if (n_model_parts == MODEL_PARTS)
        return own;
    char *m = malloc(mlen + 1), *p = malloc(own_len + 1);
    if (!m || !p) {
        free(m);
        free(p);
        return own;
    }
    memcpy(m, model, mlen);
    m[mlen] = 0;
    memcpy(p, own, own_len);
    p[own_len] = 0;
    model_parts[n_model_parts].model = m;
    model_parts[n_model_parts].part = p;
    n_model_parts++;
    return p;
}

static const char chunk_id_head[] = "data: {\"id\":\"chatcmpl-mock";
static const char chunk_created_head[] = "\",\"object\":\"chat.completion.chunk\",\"created\":";

void mllm_stream_fmt_init(mllm_stream_fmt_t *f, const char *model, uint64_t id_num,
                          uint64_t created)
{
    snprintf(f->id, sizeof f->id, "chatcmpl-mock%016" PRIx64, id_num);
    memcpy(f->id_hex, f->id + strlen("chatcmpl-mock"), sizeof f->id_hex);
    f->created = created;
    memset(f->created_digits, 0, sizeof f->created_digits); /* copied whole per chunk */
    int cl = snprintf(f->created_digits, sizeof f->created_digits, "%" PRIu64, created);
    f->created_len = (uint8_t)cl;
    mllm_buf_t b = { 0 };
    mllm_buf_printf(&b, "%s%s%s%" PRIu64, chunk_id_head, f->id + strlen("chatcmpl-mock"),
                    chunk_created_head, created);
    size_t model_at = b.len;
    mllm_buf_adds(&b, ",\"model\":\"");
    size_t mlen = strnlen(model, 127);
    mllm_buf_json_str(&b, model, mlen);
    mllm_buf_adds(&b, "\",\"system_fingerprint\":\"fp_mockllm\",\"choices\":[");
    size_t n = b.oom ? 0 : b.len;
    if (n >= sizeof f->prefix)
        n = 0; /* cannot happen: 127 bytes escape to at most 762 (fuzz-checked) */
    memcpy(f->prefix, b.p ? b.p : "", n);
    f->prefix[n] = 0;
    f->prefix_len = n;
    mllm_buf_free(&b);
    if (n <= model_at) {
        /* Out of memory: n is 0. No prefix and no model part mark it, and every chunk
         * of the stream then sets its buffer's oom (add_prefix, mllm_chunk_content),
         * so the stream fails as on any other allocation failure - it wrote frames
         * without "data: {" or "choices":[ before. */
        f->prefix_len = 0;
        f->model_part = f->prefix;
        f->model_part_len = 0;
    } else {
        f->model_part_len = (uint32_t)(n - model_at);
        f->model_part = model_part(model, mlen, f->prefix + model_at, n - model_at);
    }
    mllm_stream_fmt_usage_null(f, 0);
}

/* The end of every chunk but the usage chunk: the choices array and the object closed,
 * with "usage": null before the usage chunk when it is asked for. */
static const char close_plain[] = "]}\n\n", close_usage[] = "],\"usage\":null}\n\n";

/* A content chunk's tail, with and without "usage": null: NUL-padded to a fixed size,
 * copied whole (a few vector moves per event instead of a memcpy call). */
#define DELTA_END "\"},\"logprobs\":null,\"finish_reason\":null}"
#define TAIL_SIZE 72
static const char content_tails[2][TAIL_SIZE] = { DELTA_END "]}\n\n",
                                                  DELTA_END "],\"usage\":null}\n\n" };
static const size_t content_tail_lens[2] = { sizeof DELTA_END - 1 + sizeof close_plain - 1,
                                             sizeof DELTA_END - 1 + sizeof close_usage - 1 };
_Static_assert(sizeof DELTA_END + sizeof close_usage - 2 < TAIL_SIZE,
               "a content tail and its NUL fit the fixed-size copy");

void mllm_stream_fmt_usage_null(mllm_stream_fmt_t *f, int on)
{
    f->close = on ? close_usage : close_plain;
    f->close_len = on ? sizeof close_usage - 1 : sizeof close_plain - 1;
    f->usage_null = (uint8_t)(on != 0);
}

/* A chunk's prefix; none (mllm_stream_fmt_init ran out of memory) fails the buffer. */
static void add_prefix(mllm_buf_t *b, const mllm_stream_fmt_t *f)
{
    if (!f->prefix_len)
        b->oom = 1;
    mllm_buf_add(b, f->prefix, f->prefix_len);
}

void mllm_chunk_role(mllm_buf_t *b, const mllm_stream_fmt_t *f)
{
    add_prefix(b, f);
    mllm_buf_adds(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                     "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}");
    mllm_buf_add(b, f->close, f->close_len);
}

void mllm_chunk_content(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *text, size_t n)
{
    static const char head[] = "{\"index\":0,\"delta\":{\"content\":\"";
    mllm_buf_reserve(b, sizeof chunk_id_head + sizeof f->id_hex + sizeof chunk_created_head +
                        sizeof f->created_digits + f->model_part_len + sizeof head +
                        TAIL_SIZE + n * 6 + 8);
    if (!f->model_part_len) /* no prefix: see mllm_stream_fmt_init */
        b->oom = 1;
    if (b->oom)
        return;
    /* The same bytes as the prefix, built from the stream's first cache line and text
     * every stream shares (see mllm_stream_fmt_t). */
    char *o = b->p + b->len;
    memcpy(o, chunk_id_head, sizeof chunk_id_head - 1);
    o += sizeof chunk_id_head - 1;
    memcpy(o, f->id_hex, sizeof f->id_hex);
    o += sizeof f->id_hex;
    memcpy(o, chunk_created_head, sizeof chunk_created_head - 1);
    o += sizeof chunk_created_head - 1;
    /* Whole, a fixed size (a few vector moves, not a memcpy call per event); the
     * reserve covers it and the copies below overwrite what follows the digits. */
    memcpy(o, f->created_digits, sizeof f->created_digits);
    o += f->created_len;
    memcpy(o, f->model_part, f->model_part_len);
    o += f->model_part_len;
    memcpy(o, head, sizeof head - 1);
    o += sizeof head - 1;
    b->len = (size_t)(o - b->p);
    mllm_buf_json_str(b, text, n);
    if (b->oom)
        return;
    /* The reserve above made room for the whole fixed-size tail. */
    memcpy(b->p + b->len, content_tails[f->usage_null], TAIL_SIZE);
    b->len += content_tail_lens[f->usage_null];
}

void mllm_chunk_finish(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *reason)
{
    add_prefix(b, f);
    mllm_buf_printf(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}",
                    reason);
    mllm_buf_add(b, f->close, f->close_len);
}

/* Chat usage as the real API writes it, with the two details objects: an app that reads
 * usage.prompt_tokens_details.cached_tokens (prompt caching dashboards do) threw a
 * TypeError on mock-llm's answers. mock-llm caches nothing and reasons not: zeros. */
void mllm_chunk_usage(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                      int prompt, int completion)
{
    (void)model;
    add_prefix(b, f);
    mllm_buf_printf(b, "],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                       "\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
                       "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
                       "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n", prompt, completion, prompt + completion);
}

void mllm_chunk_done(mllm_buf_t *b)
{
    mllm_buf_adds(b, "data: [DONE]\n\n");
}

void mllm_chunk_error(mllm_buf_t *b, const mllm_err_t *e)
{
    mllm_buf_adds(b, "data: ");
    mllm_fmt_error_openai(b, e);
    mllm_buf_adds(b, "\n\n");
}

void mllm_chunk_tool_start(mllm_buf_t *b, const mllm_stream_fmt_t *f,
                           const mllm_tool_call_t *call)
{
    add_prefix(b, f);
    mllm_buf_adds(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
                     "\"tool_calls\":[{\"index\":0,\"id\":\"");
    mllm_buf_adds(b, call->id);
    mllm_buf_adds(b, "\",\"type\":\"function\",\"function\":{\"name\":\"");
    mllm_buf_json_str(b, call->name, strlen(call->name));
    mllm_buf_adds(b, "\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,"
                     "\"finish_reason\":null}");
    mllm_buf_add(b, f->close, f->close_len);
}

void mllm_chunk_tool_args(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *frag,
                          size_t n)
{
    add_prefix(b, f);
    mllm_buf_adds(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
                     "{\"arguments\":\"");
    mllm_buf_json_str(b, frag, n);
    mllm_buf_adds(b, "\"}}]},\"logprobs\":null,\"finish_reason\":null}");
    mllm_buf_add(b, f->close, f->close_len);
}

void mllm_fmt_completion(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                         const char *text, size_t n, const mllm_tool_call_t *call,
                         const char *finish, int prompt, int completion)
{
    mllm_buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%" PRIu64
                       ",\"model\":\"", f->id, f->created);
    mllm_buf_json_str(b, model, strlen(model));
    mllm_buf_adds(b, "\",\"system_fingerprint\":\"fp_mockllm\",\"choices\":[{\"index\":0,"
                     "\"message\":{\"role\":\"assistant\",\"content\":");
    if (call) {
        mllm_buf_adds(b, "null,\"tool_calls\":[{\"id\":\"");
        mllm_buf_adds(b, call->id);
        mllm_buf_adds(b, "\",\"type\":\"function\",\"function\":{\"name\":\"");
        mllm_buf_json_str(b, call->name, strlen(call->name));
        mllm_buf_adds(b, "\",\"arguments\":\"");
        mllm_buf_json_str(b, call->args.p ? call->args.p : "", call->args.len);
        mllm_buf_adds(b, "\"}}]");
    } else {
        mllm_buf_add(b, "\"", 1);
        mllm_buf_json_str(b, text, n);
        mllm_buf_add(b, "\"", 1);
    }
    mllm_buf_printf(b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],"
                       "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                       "\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
                       "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
                       "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}", finish, prompt, completion,
                    prompt + completion);
}

/* ---- choices by index, log probabilities (n > 1, logprobs: true) ---- */

static void add_bytes(mllm_buf_t *b, const char *t, size_t n)
{
    mllm_buf_adds(b, ",\"bytes\":[");
    for (size_t i = 0; i < n; i++)
        mllm_buf_printf(b, i ? ",%u" : "%u", (unsigned)(unsigned char)t[i]);
    mllm_buf_add(b, "]", 1);
}

static void add_lp_head(mllm_buf_t *b, const char *t, size_t n, double lp)
{
    mllm_buf_adds(b, "{\"token\":\"");
    mllm_buf_json_str(b, t, n);
    mllm_buf_printf(b, "\",\"logprob\":%.9g", lp);
    add_bytes(b, t, n);
}

void mllm_logprob_entry(mllm_buf_t *b, mllm_rng_t *r, const char *tok, size_t len, int first,
                        int top)
{
    /* The chosen token's probability p in [0.5, 1): it is always the most likely one.
     * The alternatives share what is left geometrically, (1 - p)(1 - q)q^j with q in
     * [0.3, 0.7): strictly decreasing, below p, and all together below 1 - p. */
    double u = mllm_rng_uniform(r), p = 1.0 - 0.5 * u * u;
    if (p > 0.99999)
        p = 0.99999;
    double q = 0.3 + 0.4 * mllm_rng_uniform(r), lp = log(p);
    add_lp_head(b, tok, len, lp);
    mllm_buf_adds(b, ",\"top_logprobs\":[");
    if (top > 0) {
        const char *seen[MLLM_MAX_TOP_LOGPROBS];
        size_t seen_len[MLLM_MAX_TOP_LOGPROBS];
        seen[0] = tok;
        seen_len[0] = len;
        add_lp_head(b, tok, len, lp);
        mllm_buf_add(b, "}", 1);
        double share = (1.0 - p) * (1.0 - q);
        for (int j = 1; j < top && j < MLLM_MAX_TOP_LOGPROBS; j++) {
            size_t l = 0;
            const char *t = NULL;
            /* a token not listed yet (64 words and punctuation: a few draws at most) */
            for (int tries = 0; tries < 64 && !t; tries++) {
                t = mllm_token_text_n(r, first, &l);
                for (int i = 0; i < j && t; i++)
                    if (seen_len[i] == l && !memcmp(seen[i], t, l))
                        t = NULL;
            }
            if (!t)
                break;
            seen[j] = t;
            seen_len[j] = l;
            share *= q;
            mllm_buf_add(b, ",", 1);
            add_lp_head(b, t, l, log(share));
            mllm_buf_add(b, "}", 1);
        }
    }
    mllm_buf_adds(b, "]}");
}

void mllm_chunk_role_i(mllm_buf_t *b, const mllm_stream_fmt_t *f, int index)
{
    add_prefix(b, f);
    mllm_buf_printf(b, "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                       "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}", index);
    mllm_buf_add(b, f->close, f->close_len);
}

/* A choice's "logprobs" value: {"content":[<entries>],"refusal":null}, or null. */
static void add_logprobs(mllm_buf_t *b, const char *lp, size_t lp_len)
{
    if (lp) {
        mllm_buf_adds(b, "{\"content\":[");
        mllm_buf_add(b, lp, lp_len);
        mllm_buf_adds(b, "],\"refusal\":null}");
    } else {
        mllm_buf_adds(b, "null");
    }
}

void mllm_chunk_choice(mllm_buf_t *b, const mllm_stream_fmt_t *f, int index, const char *text,
                       size_t n, const char *lp, size_t lp_len)
{
    add_prefix(b, f);
    mllm_buf_printf(b, "{\"index\":%d,\"delta\":{\"content\":\"", index);
    mllm_buf_json_str(b, text, n);
    mllm_buf_adds(b, "\"},\"logprobs\":");
    add_logprobs(b, lp, lp_len);
    mllm_buf_adds(b, ",\"finish_reason\":null}");
    mllm_buf_add(b, f->close, f->close_len);
}

void mllm_chunk_finish_i(mllm_buf_t *b, const mllm_stream_fmt_t *f, int index,
                         const char *reason)
{
    add_prefix(b, f);
    mllm_buf_printf(b, "{\"index\":%d,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}",
                    index, reason);
    mllm_buf_add(b, f->close, f->close_len);
}

void mllm_fmt_completion_head(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model)
{
    mllm_buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%" PRIu64
                       ",\"model\":\"", f->id, f->created);
    mllm_buf_json_str(b, model, strlen(model));
    mllm_buf_adds(b, "\",\"system_fingerprint\":\"fp_mockllm\",\"choices\":[");
}

void mllm_fmt_completion_choice(mllm_buf_t *b, int index, const char *text, size_t n,
                                const char *lp, size_t lp_len, const char *finish)
{
    mllm_buf_printf(b, "%s{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":\"",
                    index ? "," : "", index);
    mllm_buf_json_str(b, text, n);
    mllm_buf_adds(b, "\",\"refusal\":null},\"logprobs\":");
    add_logprobs(b, lp, lp_len);
    mllm_buf_printf(b, ",\"finish_reason\":\"%s\"}", finish);
}

void mllm_fmt_completion_tail(mllm_buf_t *b, int prompt, int completion)
{
    mllm_buf_printf(b, "],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                       "\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
                       "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
                       "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}", prompt, completion, prompt + completion);
}

/* ---- Anthropic events ---- */

void mllm_anth_message_start(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                             int prompt)
{
    mllm_buf_printf(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                       "{\"id\":\"msg_mock%s\",\"type\":\"message\",\"role\":\"assistant\","
                       "\"content\":[],\"model\":\"", f->id + 13);
    mllm_buf_json_str(b, model, strlen(model));
    mllm_buf_printf(b, "\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
                       "{\"input_tokens\":%d,\"cache_creation_input_tokens\":0,"
                       "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n", prompt);
}

void mllm_anth_block_start(mllm_buf_t *b)
{
    mllm_buf_adds(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                     "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
}

void mllm_anth_ping(mllm_buf_t *b)
{
    mllm_buf_adds(b, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

void mllm_anth_delta(mllm_buf_t *b, const char *text, size_t n)
{
    mllm_buf_adds(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                     "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"");
    mllm_buf_json_str(b, text, n);
    mllm_buf_adds(b, "\"}}\n\n");
}

void mllm_anth_block_stop(mllm_buf_t *b)
{
    mllm_buf_adds(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                     "\"index\":0}\n\n");
}

void mllm_anth_message_delta(mllm_buf_t *b, const char *stop_reason, const char *stop_sequence,
                             int output_tokens)
{
    mllm_buf_printf(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                       "{\"stop_reason\":\"%s\",\"stop_sequence\":", stop_reason);
    json_str_or_null(b, stop_sequence);
    mllm_buf_printf(b, "},\"usage\":{\"output_tokens\":%d}}\n\n", output_tokens);
}

void mllm_anth_message_stop(mllm_buf_t *b)
{
    mllm_buf_adds(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

void mllm_anth_error(mllm_buf_t *b, const mllm_err_t *e)
{
    mllm_buf_adds(b, "event: error\ndata: ");
    mllm_fmt_error_anthropic(b, e);
    mllm_buf_adds(b, "\n\n");
}

void mllm_anth_tool_block_start(mllm_buf_t *b, const mllm_tool_call_t *call)
{
    mllm_buf_adds(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                     "\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_");
    mllm_buf_adds(b, call->id + 5); /* "call_" -> "toolu_" */
    mllm_buf_adds(b, "\",\"name\":\"");
    mllm_buf_json_str(b, call->name, strlen(call->name));
    mllm_buf_adds(b, "\",\"input\":{}}}\n\n");
}

void mllm_anth_input_delta(mllm_buf_t *b, const char *frag, size_t n)
{
    mllm_buf_adds(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                     "\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"");
    mllm_buf_json_str(b, frag, n);
    mllm_buf_adds(b, "\"}}\n\n");
}

void mllm_fmt_anth_message(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                           const char *text, size_t n, const mllm_tool_call_t *call,
                           const char *stop_reason, const char *stop_sequence, int prompt,
                           int completion)
{
    mllm_buf_printf(b, "{\"id\":\"msg_mock%s\",\"type\":\"message\",\"role\":\"assistant\","
                       "\"model\":\"", f->id + 13);
    mllm_buf_json_str(b, model, strlen(model));
    if (call) {
        mllm_buf_adds(b, "\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_");
        mllm_buf_adds(b, call->id + 5);
        mllm_buf_adds(b, "\",\"name\":\"");
        mllm_buf_json_str(b, call->name, strlen(call->name));
        mllm_buf_adds(b, "\",\"input\":");
        /* arguments cut at max_tokens are not JSON: the block's input is then {} (the
         * API's shape for a cut non-streamed tool_use is not documented; mock-llm's
         * choice, README "Tool calls cut at max_tokens") */
        int cut = !strcmp(stop_reason, "max_tokens");
        if (call->args.p && !cut)
            mllm_buf_add(b, call->args.p, call->args.len);
        else
            mllm_buf_adds(b, "{}");
    } else {
        mllm_buf_adds(b, "\",\"content\":[{\"type\":\"text\",\"text\":\"");
        mllm_buf_json_str(b, text, n);
        mllm_buf_add(b, "\"", 1);
    }
    mllm_buf_printf(b, "}],\"stop_reason\":\"%s\",\"stop_sequence\":", stop_reason);
    json_str_or_null(b, stop_sequence);
    /* the cache counts as the API writes them (zero: mock-llm caches nothing), so an
     * app that sums input + cache reads + cache writes reads numbers, not undefined */
    mllm_buf_printf(b, ",\"usage\":{\"input_tokens\":%d,\"cache_creation_input_tokens\":0,"
                       "\"cache_read_input_tokens\":0,\"output_tokens\":%d}}", prompt,
                    completion);
}

/* ---- Responses API ---- */

/* "resp_mock<hex>", "msg_mock<hex>", "fc_mock<hex>": the request's hex id after a prefix. */
static void resp_id(mllm_buf_t *b, const mllm_resp_t *r, const char *prefix)
{
    mllm_buf_adds(b, prefix);
    mllm_buf_adds(b, r->f->id + 13);
}

/* The output item: status, and its content/arguments so far (full == NULL: none yet). */
static void resp_item(mllm_buf_t *b, const mllm_resp_t *r, const char *status,
                      const char *full, size_t n)
{
    if (r->call) {
        mllm_buf_adds(b, "{\"type\":\"function_call\",\"id\":\"");
        resp_id(b, r, "fc_mock");
        mllm_buf_adds(b, "\",\"call_id\":\"");
        mllm_buf_adds(b, r->call->id);
        mllm_buf_adds(b, "\",\"name\":\"");
        mllm_buf_json_str(b, r->call->name, strlen(r->call->name));
        mllm_buf_adds(b, "\",\"arguments\":\"");
        if (full)
            mllm_buf_json_str(b, full, n);
        mllm_buf_printf(b, "\",\"status\":\"%s\"}", status);
        return;
    }
    mllm_buf_adds(b, "{\"type\":\"message\",\"id\":\"");
    resp_id(b, r, "msg_mock");
    mllm_buf_printf(b, "\",\"status\":\"%s\",\"role\":\"assistant\",\"content\":[", status);
    if (full) {
        mllm_buf_adds(b, "{\"type\":\"output_text\",\"text\":\"");
        mllm_buf_json_str(b, full, n);
        mllm_buf_adds(b, "\",\"annotations\":[]}");
    }
    mllm_buf_adds(b, "]}");
}

/* The response object. full == NULL: no output yet (created, in_progress). */
static void resp_object(mllm_buf_t *b, const mllm_resp_t *r, const char *status,
                        const char *full, size_t n, int capped, int prompt, int completion)
{
    mllm_buf_adds(b, "{\"id\":\"");
    resp_id(b, r, "resp_mock");
    mllm_buf_printf(b, "\",\"object\":\"response\",\"created_at\":%" PRIu64 ",\"status\":"
                       "\"%s\",\"error\":null,\"incomplete_details\":", r->f->created, status);
    mllm_buf_adds(b, capped ? "{\"reason\":\"max_output_tokens\"}" : "null");
    mllm_buf_adds(b, ",\"model\":\"");
    mllm_buf_json_str(b, r->model, strlen(r->model));
    mllm_buf_adds(b, "\",\"output\":[");
    if (full)
        resp_item(b, r, capped ? "incomplete" : "completed", full, n);
    mllm_buf_adds(b, "],\"usage\":");
    if (full)
        mllm_buf_printf(b, "{\"input_tokens\":%d,\"input_tokens_details\":{\"cached_tokens\":0},"
                           "\"output_tokens\":%d,\"output_tokens_details\":"
                           "{\"reasoning_tokens\":0},\"total_tokens\":%d}", prompt, completion,
                        prompt + completion);
    else
        mllm_buf_adds(b, "null");
    mllm_buf_add(b, ",", 1);
    if (r->echo && r->echo_len) {
        mllm_buf_add(b, r->echo, r->echo_len);
    } else {
        /* no request to echo (unit tests): every field at its default */
        mllm_buf_adds(b, "\"previous_response_id\":null,\"store\":false");
        for (size_t i = 0; i < sizeof resp_echoed / sizeof resp_echoed[0]; i++)
            mllm_buf_printf(b, ",\"%s\":%s", resp_echoed[i].name, resp_echoed[i].dflt);
    }
    mllm_buf_add(b, "}", 1);
}

/* "event: <type>\ndata: {"type":"<type>","sequence_number":N" - the caller closes it. */
static void resp_event(mllm_buf_t *b, mllm_resp_t *r, const char *type)
{
    mllm_buf_printf(b, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d", type, type,
                    r->seq++);
}

static void resp_ids(mllm_buf_t *b, const mllm_resp_t *r, int part)
{
    mllm_buf_adds(b, ",\"item_id\":\"");
    resp_id(b, r, r->call ? "fc_mock" : "msg_mock");
    mllm_buf_adds(b, part ? "\",\"output_index\":0,\"content_index\":0"
                          : "\",\"output_index\":0");
}

void mllm_resp_begin(mllm_buf_t *b, mllm_resp_t *r)
{
    static const char *const types[2] = { "response.created", "response.in_progress" };
    for (int i = 0; i < 2; i++) {
        resp_event(b, r, types[i]);
        mllm_buf_adds(b, ",\"response\":");
        resp_object(b, r, "in_progress", NULL, 0, 0, 0, 0);
        mllm_buf_adds(b, "}\n\n");
    }
}

void mllm_resp_item_added(mllm_buf_t *b, mllm_resp_t *r)
{
    resp_event(b, r, "response.output_item.added");
    mllm_buf_adds(b, ",\"output_index\":0,\"item\":");
    resp_item(b, r, "in_progress", r->call ? "" : NULL, 0);
    mllm_buf_adds(b, "}\n\n");
    if (r->call)
        return;
    resp_event(b, r, "response.content_part.added");
    resp_ids(b, r, 1);
    mllm_buf_adds(b, ",\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n");
}

void mllm_resp_delta(mllm_buf_t *b, mllm_resp_t *r, const char *frag, size_t n)
{
    resp_event(b, r, r->call ? "response.function_call_arguments.delta"
                             : "response.output_text.delta");
    resp_ids(b, r, !r->call);
    mllm_buf_adds(b, ",\"delta\":\"");
    mllm_buf_json_str(b, frag, n);
    mllm_buf_adds(b, r->call ? "\"}\n\n" : "\",\"logprobs\":[]}\n\n");
}

void mllm_resp_end(mllm_buf_t *b, mllm_resp_t *r, const char *full, size_t n, int capped,
                   int prompt, int completion)
{
    if (r->call) {
        resp_event(b, r, "response.function_call_arguments.done");
        resp_ids(b, r, 0);
        mllm_buf_adds(b, ",\"arguments\":\"");
        mllm_buf_json_str(b, full, n);
        mllm_buf_adds(b, "\"}\n\n");
    } else {
        resp_event(b, r, "response.output_text.done");
        resp_ids(b, r, 1);
        mllm_buf_adds(b, ",\"text\":\"");
        mllm_buf_json_str(b, full, n);
        mllm_buf_adds(b, "\",\"logprobs\":[]}\n\n");
        resp_event(b, r, "response.content_part.done");
        resp_ids(b, r, 1);
        mllm_buf_adds(b, ",\"part\":{\"type\":\"output_text\",\"text\":\"");
        mllm_buf_json_str(b, full, n);
        mllm_buf_adds(b, "\",\"annotations\":[]}}\n\n");
    }
    resp_event(b, r, "response.output_item.done");
    mllm_buf_adds(b, ",\"output_index\":0,\"item\":");
    resp_item(b, r, capped ? "incomplete" : "completed", full, n);
    mllm_buf_adds(b, "}\n\n");
    resp_event(b, r, capped ? "response.incomplete" : "response.completed");
    mllm_buf_adds(b, ",\"response\":");
    resp_object(b, r, capped ? "incomplete" : "completed", full, n, capped, prompt, completion);
    mllm_buf_adds(b, "}\n\n");
}

void mllm_resp_error(mllm_buf_t *b, mllm_resp_t *r, const mllm_err_t *e)
{
    resp_event(b, r, "error");
    mllm_buf_adds(b, ",\"code\":");
    json_str_or_null(b, e->code ? e->code : e->type);
    mllm_buf_adds(b, ",\"message\":");
    json_str_or_null(b, e->message);
    mllm_buf_adds(b, ",\"param\":");
    json_str_or_null(b, e->param);
    mllm_buf_adds(b, "}\n\n");
}

void mllm_fmt_response(mllm_buf_t *b, mllm_resp_t *r, const char *full, size_t n,
                       int capped, int prompt, int completion)
{
    resp_object(b, r, capped ? "incomplete" : "completed", full, n, capped, prompt, completion);
}
