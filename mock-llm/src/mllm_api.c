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

void mllm_buf_reserve(mllm_buf_t *b, size_t extra)
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
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
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
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

void mllm_fmt_error_openai(mllm_buf_t *b, const mllm_err_t *e)
{
    mllm_buf_adds(b, "{\"error\":{\"message\":");
    json_str_or_null(b, e->message);
    mllm_buf_adds(b, ",\"type\":");
    json_str_or_null(b, e->type);
    mllm_buf_adds(b, ",\"param\":");
    json_str_or_null(b, e->param);
    mllm_buf_adds(b, ",\"code\":");
    json_str_or_null(b, e->code);
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
    json_str_or_null(b, e->message);
    mllm_buf_adds(b, "}}");
}

/* ---- request validation ---- */

/* Refuses nesting deeper than MLLM_JSON_MAX_DEPTH before cJSON recurses into it. Brackets
 * inside strings do not count. */
static int depth_ok(const char *s, size_t n)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > MLLM_JSON_MAX_DEPTH)
                return 0;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 1;
}

static cJSON *parse_body(const char *body, size_t len, mllm_err_t *err)
{
    if (!depth_ok(body, len)) {
        mllm_err_set(err, 400, "invalid_request_error", NULL, NULL,
                     "The JSON body of your request is nested deeper than %d levels.",
                     MLLM_JSON_MAX_DEPTH);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
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

/* Characters of a content value: a string, or an array of parts with "text". Returns
 * -1 when the shape is wrong. */
static long content_chars(const cJSON *c)
{
    if (cJSON_IsString(c))
        return (long)strlen(c->valuestring);
    if (cJSON_IsNull(c))
        return 0;
    if (!cJSON_IsArray(c))
        return -1;
    long n = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        if (!cJSON_IsObject(part))
            return -1;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t))
            n += (long)strlen(t->valuestring);
    }
    return n;
}

/* Prompt tokens: roughly 4 characters per token (the usual rule of thumb for English
 * with the GPT tokenizers) plus the 3-4 tokens of chat framing per message. */
static int count_messages(const cJSON *msgs, int *tokens, mllm_err_t *err, int anthropic)
{
    const char *param = "messages";
    if (!msgs)
        return mllm_err_set(err, 400, "invalid_request_error", "missing_required_parameter",
                            param, "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(msgs))
        return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", param,
                            "Invalid type for 'messages': expected an array.");
    if (cJSON_GetArraySize(msgs) == 0)
        return mllm_err_set(err, 400, "invalid_request_error", "empty_array", param,
                            "Invalid 'messages': empty array. Expected an array with "
                            "minimum length 1, but got an empty array instead.");
    long chars = 0, n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", param,
                                "Invalid 'messages[%ld]': each message must be an object "
                                "with a string 'role'.", n);
        const char *r = role->valuestring;
        int ok = anthropic ? (!strcmp(r, "user") || !strcmp(r, "assistant"))
                           : (!strcmp(r, "system") || !strcmp(r, "user") ||
                              !strcmp(r, "assistant") || !strcmp(r, "tool") ||
                              !strcmp(r, "developer") || !strcmp(r, "function"));
        if (!ok)
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_value", param,
                                "Invalid value for 'messages[%ld].role': '%.40s'.", n, r);
        long c = content_chars(cJSON_GetObjectItemCaseSensitive(m, "content"));
        if (c < 0)
            return mllm_err_set(err, 400, "invalid_request_error", "invalid_type", param,
                                "Invalid type for 'messages[%ld].content': expected a "
                                "string or an array of content parts.", n);
        chars += c;
        n++;
    }
    long t = (chars + 3) / 4 + 4 * n + 3;
    *tokens = t > 100000000 ? 100000000 : (int)t;
    return 0;
}

static int get_model(const cJSON *root, mllm_gen_req_t *out, mllm_err_t *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
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

int mllm_parse_chat(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = parse_body(body, len, err);
    if (!root)
        return -1;
    int rc = -1;
    if (get_model(root, out, err) || count_messages(cJSON_GetObjectItemCaseSensitive(
                                         root, "messages"), &out->prompt_tokens, err, 0))
        goto out;
    if (get_bool(root, "stream", &out->stream, err))
        goto out;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!out->stream) {
            mllm_err_set(err, 400, "invalid_request_error", "invalid_value", "stream_options",
                         "The 'stream_options' parameter is only allowed when 'stream' is "
                         "enabled.");
            goto out;
        }
        if (!cJSON_IsObject(so)) {
            mllm_err_set(err, 400, "invalid_request_error", "invalid_type", "stream_options",
                         "Invalid type for 'stream_options': expected an object.");
            goto out;
        }
        if (get_bool(so, "include_usage", &out->include_usage, err))
            goto out;
    }
    /* max_completion_tokens replaces the deprecated max_tokens; when both are given
     * the smaller cap is the one that binds. */
    int mt = 0, mct = 0;
    if (get_posint(root, "max_tokens", &mt, err) ||
        get_posint(root, "max_completion_tokens", &mct, err))
        goto out;
    out->max_tokens = mt && mct ? (mt < mct ? mt : mct) : (mt ? mt : mct);
    int n = 1;
    if (get_posint(root, "n", &n, err))
        goto out;
    if (n != 1) {
        mllm_err_set(err, 400, "invalid_request_error", "invalid_value", "n",
                     "Invalid 'n': mock-llm generates one choice per request; got %d.", n);
        goto out;
    }
    const cJSON *temp = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    if (temp && !cJSON_IsNull(temp) &&
        (!cJSON_IsNumber(temp) || temp->valuedouble < 0 || temp->valuedouble > 2)) {
        mllm_err_set(err, 400, "invalid_request_error", "decimal_above_max_value",
                     "temperature", "Invalid 'temperature': expected a number from 0 to 2.");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int mllm_parse_messages(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = parse_body(body, len, err);
    if (!root)
        return -1;
    int rc = -1;
    if (get_model(root, out, err) || count_messages(cJSON_GetObjectItemCaseSensitive(
                                         root, "messages"), &out->prompt_tokens, err, 1))
        goto out;
    if (!cJSON_GetObjectItemCaseSensitive(root, "max_tokens")) {
        mllm_err_set(err, 400, "invalid_request_error", NULL, "max_tokens",
                     "max_tokens: Field required");
        goto out;
    }
    if (get_posint(root, "max_tokens", &out->max_tokens, err) ||
        get_bool(root, "stream", &out->stream, err))
        goto out;
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system");
    if (sys) {
        long c = content_chars(sys);
        if (c < 0) {
            mllm_err_set(err, 400, "invalid_request_error", NULL, "system",
                         "system: Input should be a valid string or list of text blocks");
            goto out;
        }
        out->prompt_tokens += (int)((c + 3) / 4);
    }
    out->include_usage = 1;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- OpenAI stream frames ---- */

void mllm_stream_fmt_init(mllm_stream_fmt_t *f, const char *model, uint64_t id_num,
                          uint64_t created)
{
    snprintf(f->id, sizeof f->id, "chatcmpl-mock%016" PRIx64, id_num);
    f->created = created;
    mllm_buf_t b = { 0 };
    mllm_buf_printf(&b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
                        "\"created\":%" PRIu64 ",\"model\":\"", f->id, created);
    mllm_buf_json_str(&b, model, strnlen(model, 127));
    mllm_buf_adds(&b, "\",\"system_fingerprint\":\"fp_mockllm\",\"choices\":[");
    size_t n = b.oom ? 0 : b.len;
    if (n >= sizeof f->prefix)
        n = 0; /* cannot happen: 127 bytes escape to at most 762 (fuzz-checked) */
    memcpy(f->prefix, b.p ? b.p : "", n);
    f->prefix[n] = 0;
    f->prefix_len = n;
    mllm_buf_free(&b);
}

void mllm_chunk_role(mllm_buf_t *b, const mllm_stream_fmt_t *f)
{
    mllm_buf_add(b, f->prefix, f->prefix_len);
    mllm_buf_adds(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                     "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
}

void mllm_chunk_content(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *text, size_t n)
{
    static const char head[] = "{\"index\":0,\"delta\":{\"content\":\"";
    static const char tail[] = "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    mllm_buf_reserve(b, f->prefix_len + sizeof head + sizeof tail + n * 6 + 8);
    mllm_buf_add(b, f->prefix, f->prefix_len);
    mllm_buf_add(b, head, sizeof head - 1);
    mllm_buf_json_str(b, text, n);
    mllm_buf_add(b, tail, sizeof tail - 1);
}

void mllm_chunk_finish(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *reason)
{
    mllm_buf_add(b, f->prefix, f->prefix_len);
    mllm_buf_printf(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}]}"
                       "\n\n", reason);
}

void mllm_chunk_usage(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                      int prompt, int completion)
{
    (void)model;
    mllm_buf_add(b, f->prefix, f->prefix_len);
    mllm_buf_printf(b, "],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                       "\"total_tokens\":%d}}\n\n", prompt, completion, prompt + completion);
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

void mllm_fmt_completion(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                         const char *text, size_t n, const char *finish, int prompt,
                         int completion)
{
    mllm_buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%" PRIu64
                       ",\"model\":\"", f->id, f->created);
    mllm_buf_json_str(b, model, strlen(model));
    mllm_buf_adds(b, "\",\"system_fingerprint\":\"fp_mockllm\",\"choices\":[{\"index\":0,"
                     "\"message\":{\"role\":\"assistant\",\"content\":\"");
    mllm_buf_json_str(b, text, n);
    mllm_buf_printf(b, "\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],"
                       "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                       "\"total_tokens\":%d}}", finish, prompt, completion,
                    prompt + completion);
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
                       "{\"input_tokens\":%d,\"output_tokens\":1}}}\n\n", prompt);
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

void mllm_anth_message_delta(mllm_buf_t *b, const char *stop_reason, int output_tokens)
{
    mllm_buf_printf(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                       "{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":"
                       "{\"output_tokens\":%d}}\n\n", stop_reason, output_tokens);
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

void mllm_fmt_anth_message(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                           const char *text, size_t n, const char *stop_reason, int prompt,
                           int completion)
{
    mllm_buf_printf(b, "{\"id\":\"msg_mock%s\",\"type\":\"message\",\"role\":\"assistant\","
                       "\"model\":\"", f->id + 13);
    mllm_buf_json_str(b, model, strlen(model));
    mllm_buf_adds(b, "\",\"content\":[{\"type\":\"text\",\"text\":\"");
    mllm_buf_json_str(b, text, n);
    mllm_buf_printf(b, "\"}],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":"
                       "{\"input_tokens\":%d,\"output_tokens\":%d}}", stop_reason, prompt,
                    completion);
}
