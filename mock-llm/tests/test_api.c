/* test_api.c - request validation and the exact shape of every frame and body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mllm_api.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int chat(const char *body, mllm_gen_req_t *g, mllm_err_t *e)
{
    return mllm_parse_chat(body, strlen(body), g, e);
}

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]"

static void test_chat_ok(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat("{\"model\":\"mock\"," MSGS ",\"stream\":true,\"stream_options\":"
                          "{\"include_usage\":true},\"max_tokens\":10,\"n\":1}", &g, &e), 0);
    assert_string_equal(g.model, "mock");
    assert_int_equal(g.stream, 1);
    assert_int_equal(g.include_usage, 1);
    assert_int_equal(g.max_tokens, 10);
    assert_true(g.prompt_tokens >= 3 + 4 + 3);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"max_tokens\":10,"
                          "\"max_completion_tokens\":7}", &g, &e), 0);
    assert_int_equal(g.max_tokens, 7);
    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                          "[{\"type\":\"text\",\"text\":\"abcdefgh\"}]}]}", &g, &e), 0);
    assert_int_equal(g.stream, 0);
}

static void expect_400(const char *body, const char *param, const char *code)
{
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat(body, &g, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    if (param)
        assert_string_equal(e.param, param);
    if (code)
        assert_string_equal(e.code, code);
}

static void test_chat_errors(void **st)
{
    (void)st;
    expect_400("{not json", NULL, NULL);
    expect_400("[1,2]", NULL, NULL);
    expect_400("{\"messages\":[]}", "model", "missing_required_parameter");
    expect_400("{\"model\":\"m\"}", "messages", "missing_required_parameter");
    expect_400("{\"model\":\"m\",\"messages\":[]}", "messages", "empty_array");
    expect_400("{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
               "messages", "invalid_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"n\":2}", "n", "invalid_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"max_tokens\":0}", "max_tokens", "integer_below_min_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"max_tokens\":1.5}", "max_tokens", "invalid_type");
    expect_400("{\"model\":\"m\"," MSGS ",\"stream\":\"yes\"}", "stream", "invalid_type");
    expect_400("{\"model\":\"m\"," MSGS ",\"stream_options\":{\"include_usage\":true}}",
               "stream_options", NULL);
    expect_400("{\"model\":\"m\"," MSGS ",\"temperature\":3}", "temperature", NULL);
    /* nesting deeper than the limit is refused before cJSON recurses */
    char deep[400] = "{\"model\":\"m\"," MSGS ",\"x\":";
    for (int i = 0; i < MLLM_JSON_MAX_DEPTH + 2; i++)
        strcat(deep, "[");
    expect_400(deep, NULL, NULL);
}

static void test_messages(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    const char *ok = "{\"model\":\"mock\",\"max_tokens\":5,\"system\":\"be brief\"," MSGS "}";
    assert_int_equal(mllm_parse_messages(ok, strlen(ok), &g, &e), 0);
    assert_int_equal(g.max_tokens, 5);
    const char *no_max = "{\"model\":\"mock\"," MSGS "}";
    assert_int_equal(mllm_parse_messages(no_max, strlen(no_max), &g, &e), -1);
    assert_string_equal(e.param, "max_tokens");
}

/* Parses "data: {json}\n\n" and returns the JSON. */
static cJSON *frame(const mllm_buf_t *b)
{
    assert_true(b->len > 8);
    assert_memory_equal(b->p, "data: ", 6);
    assert_memory_equal(b->p + b->len - 2, "\n\n", 2);
    cJSON *j = cJSON_ParseWithLength(b->p + 6, b->len - 8);
    assert_non_null(j);
    return j;
}

static void test_chunks(void **st)
{
    (void)st;
    mllm_stream_fmt_t f;
    mllm_stream_fmt_init(&f, "gpt-4o", 99, 1700000001);
    mllm_buf_t b = { 0 };
    mllm_chunk_content(&b, &f, "a \"q\"\n\\", 7);
    cJSON *j = frame(&b);
    assert_string_equal(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion.chunk");
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, f.id);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "gpt-4o");
    assert_int_equal(cJSON_GetObjectItem(j, "created")->valuedouble, 1700000001);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "content")->valuestring,
                        "a \"q\"\n\\");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
    cJSON_Delete(j);

    b.len = 0;
    mllm_chunk_role(&b, &f);
    j = frame(&b);
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "role")->valuestring,
                        "assistant");
    cJSON_Delete(j);

    b.len = 0;
    mllm_chunk_finish(&b, &f, "length");
    j = frame(&b);
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
    cJSON_Delete(j);

    b.len = 0;
    mllm_chunk_usage(&b, &f, "gpt-4o", 10, 5);
    j = frame(&b);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "choices")), 0);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "total_tokens")->valuedouble, 15);
    cJSON_Delete(j);

    b.len = 0;
    mllm_err_t e;
    mllm_err_set(&e, 500, "server_error", NULL, NULL, "boom");
    mllm_chunk_error(&b, &e);
    j = frame(&b);
    cJSON *err = cJSON_GetObjectItem(j, "error");
    assert_string_equal(cJSON_GetObjectItem(err, "message")->valuestring, "boom");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(err, "param")));
    cJSON_Delete(j);

    b.len = 0;
    mllm_fmt_completion(&b, &f, "gpt-4o", "hi", 2, "stop", 3, 1);
    j = cJSON_Parse(b.p);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content")->valuestring, "hi");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens")->valuedouble, 1);
    cJSON_Delete(j);
    mllm_buf_free(&b);
}

static void test_anthropic_frames(void **st)
{
    (void)st;
    mllm_stream_fmt_t f;
    mllm_stream_fmt_init(&f, "claude-sonnet-4", 1, 2);
    mllm_buf_t b = { 0 };
    mllm_anth_message_start(&b, &f, "claude-sonnet-4", 12);
    assert_memory_equal(b.p, "event: message_start\ndata: ", 27);
    cJSON *j = cJSON_ParseWithLength(b.p + 27, b.len - 29);
    assert_non_null(j);
    cJSON *m = cJSON_GetObjectItem(j, "message");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "usage"), "input_tokens")->valuedouble, 12);
    assert_int_equal(strncmp(cJSON_GetObjectItem(m, "id")->valuestring, "msg_", 4), 0);
    cJSON_Delete(j);
    mllm_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_ok),
        cmocka_unit_test(test_chat_errors),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_anthropic_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
