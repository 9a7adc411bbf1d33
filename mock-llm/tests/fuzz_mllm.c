/*
 * fuzz_mllm.c - libFuzzer target (clang -fsanitize=fuzzer,address,undefined) for what
 * reads untrusted bytes: the HTTP head parser, the chunked body decoder, the JSON body
 * validators of both APIs, and the JSON string escaper (checked by a round trip).
 * The first byte picks the part; the rest is the input.
 */
#include "mllm_api.h"
#include "mllm_http.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void fuzz_http(const char *d, size_t n)
{
    static const mllm_http_limits_t lim = { 512, 2048, 4096 };
    mllm_http_head_t r;
    int rc = mllm_http_parse_head(d, n, &lim, &r);
    CHECK(rc == 0 || rc == 1 || rc == -400 || rc == -413 || rc == -414 || rc == -431 ||
          rc == -501 || rc == -505);
    if (rc != 1)
        return;
    CHECK(r.head_len <= n && r.head_len <= lim.max_head);
    CHECK((size_t)r.method.off + r.method.n <= r.head_len);
    CHECK(r.path.off == r.target.off && r.path.n <= r.target.n && r.path.n > 0);
    CHECK((size_t)r.target.off + r.target.n <= r.head_len);
    for (size_t i = 0; i < r.nheaders; i++) {
        CHECK((size_t)r.hname[i].off + r.hname[i].n <= r.head_len);
        CHECK((size_t)r.hvalue[i].off + r.hvalue[i].n <= r.head_len);
    }
    CHECK(!(r.chunked && r.content_length >= 0));
    if (r.chunked) {
        size_t rest = n - r.head_len, body = 0, used = 0;
        char *copy = malloc(rest ? rest : 1);
        memcpy(copy, d + r.head_len, rest);
        int c = mllm_http_dechunk(copy, rest, lim.max_body, &body, &used);
        CHECK(c == 0 || c == 1 || c == -400 || c == -413);
        if (c == 1)
            CHECK(body <= lim.max_body && used <= rest && body <= used);
        free(copy);
    }
}

static void fuzz_json(const char *d, size_t n, int anthropic)
{
    mllm_gen_req_t g;
    mllm_err_t e;
    int rc = anthropic ? mllm_parse_messages(d, n, &g, &e) : mllm_parse_chat(d, n, &g, &e);
    if (rc == 0) {
        CHECK(g.model[0] && strlen(g.model) < sizeof g.model);
        CHECK(g.max_tokens >= 0 && g.prompt_tokens > 0);
        /* what the server then formats must be valid JSON */
        mllm_stream_fmt_t f;
        mllm_stream_fmt_init(&f, g.model, 1, 2);
        mllm_buf_t b = { 0 };
        mllm_chunk_content(&b, &f, d, n);
        CHECK(!b.oom);
        cJSON *j = cJSON_ParseWithLength(b.p + 6, b.len - 8);
        CHECK(j != NULL);
        cJSON_Delete(j);
        mllm_buf_free(&b);
    } else {
        CHECK(e.status == 400 && e.type && e.message[0]);
        mllm_buf_t b = { 0 };
        mllm_fmt_error_openai(&b, &e);
        cJSON *j = cJSON_Parse(b.p);
        CHECK(j != NULL);
        cJSON_Delete(j);
        mllm_buf_free(&b);
    }
}

/* Escaping then parsing gives the bytes back (for inputs without NUL, which a C
 * string cannot carry). */
static void fuzz_escape(const char *d, size_t n)
{
    if (memchr(d, 0, n))
        return;
    mllm_buf_t b = { 0 };
    mllm_buf_add(&b, "\"", 1);
    mllm_buf_json_str(&b, d, n);
    mllm_buf_add(&b, "\"", 1);
    cJSON *j = cJSON_ParseWithLength(b.p, b.len);
    CHECK(j && cJSON_IsString(j));
    CHECK(strlen(j->valuestring) == n && memcmp(j->valuestring, d, n) == 0);
    cJSON_Delete(j);
    mllm_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *d = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: fuzz_http(d, n); break;
    case 1: fuzz_json(d, n, 0); break;
    case 2: fuzz_json(d, n, 1); break;
    case 3: fuzz_escape(d, n); break;
    }
    return 0;
}
