/* test_api.c - request validation and the exact shape of every frame and body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mllm_api.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
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
    assert_int_equal(g.prompt_tokens, 3 + 3 + 3); /* 11 bytes -> 3, 1 message, reply */
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
    expect_400("{\"model\":\"m\"," MSGS ",\"n\":0}", "n", "integer_below_min_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"n\":129}", "n", "integer_above_max_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"n\":2.5}", "n", "invalid_type");
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

/* What OpenAI refuses with a 400 is refused here too, rather than accepted and
 * answered as if it had been honoured: sampling parameters out of their documented
 * ranges, and logprobs, which mock-llm does not generate (an app that asks for them
 * reads choices[0].logprobs.content; it got null and failed on it, far from the cause).
 * OpenAI answers a model that lacks a parameter with code "unsupported_parameter".
 * Anthropic's ranges are its own: temperature and top_p 0..1, top_k >= 0. */
static void expect_messages_400(const char *body, const char *param)
{
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(mllm_parse_messages(body, strlen(body), &g, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.param, param);
}

/* ... and in Anthropic's words: an Anthropic error is {type, message} only, so the
 * message is what the client reads, "<field>: range: 0..1" as the API says it, not
 * OpenAI's sentence in Anthropic's envelope. expect_anth_body: a whole /v1/messages
 * body and the message Anthropic answers it with. */
static void expect_anth_body(const char *body, const char *message)
{
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(mllm_parse_messages(body, strlen(body), &g, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.message, message);
}

/* A /v1/messages body with a model, a message and the given extra members. */
static void expect_messages_msg(const char *extra, const char *message)
{
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"m\"," MSGS ",%s}", extra);
    expect_anth_body(body, message);
}

static void test_anthropic_wording(void **st)
{
    (void)st;
    expect_messages_msg("\"max_tokens\":5,\"temperature\":1.5", "temperature: range: 0..1");
    expect_messages_msg("\"max_tokens\":5,\"temperature\":-0.1", "temperature: range: 0..1");
    expect_messages_msg("\"max_tokens\":5,\"temperature\":\"hot\"",
                        "temperature: Input should be a valid number");
    expect_messages_msg("\"max_tokens\":5,\"top_p\":2", "top_p: range: 0..1");
    expect_messages_msg("\"max_tokens\":5,\"top_k\":1.5", "top_k: Input should be a valid integer");
    expect_messages_msg("\"max_tokens\":5,\"top_k\":-1",
                        "top_k: Input should be greater than or equal to 0");
    expect_messages_msg("\"max_tokens\":2.5", "max_tokens: Input should be a valid integer");
    expect_messages_msg("\"max_tokens\":\"5\"", "max_tokens: Input should be a valid integer");
    expect_messages_msg("\"max_tokens\":0", "max_tokens: Input should be greater than or equal to 1");
    expect_messages_msg("\"max_tokens\":5,\"stream\":\"yes\"",
                        "stream: Input should be a valid boolean");
}


/* The checks /v1/messages shares with chat (messages, model, tools, tool_choice,
 * stop_sequences) answer in Anthropic's words too: "<dotted path>: <what>". The ones
 * seen from the API: "messages: Field required", "messages: at least one message is
 * required", "stop_sequences: each stop sequence must be non-empty" / "... must contain
 * non-whitespace", "tools.N.custom.name: ...", "tools.N: Input tag '...' found using
 * 'type' ..."; the rest in the same validator's form (README, Anthropic errors). */
static void test_anthropic_shared_wording(void **st)
{
    (void)st;
    /* the API's form for a body that is not JSON (its users' reports: "The request body
     * is not valid JSON: unexpected character: line 8 column 316 (char 466)") */
    expect_anth_body("{\"model\":\"m\",",
                     "The request body is not valid JSON: unexpected end of data: line 1 "
                     "column 14 (char 13)");
    expect_anth_body("{\n\"model\": x}",
                     "The request body is not valid JSON: unexpected character: line 2 "
                     "column 10 (char 11)");
    expect_anth_body("", "The request body is not valid JSON: unexpected end of data: line 1 "
                         "column 1 (char 0)");
    expect_anth_body("[1]", "Input should be a valid dictionary");
    expect_anth_body("{\"max_tokens\":5," MSGS "}", "model: Field required");
    expect_anth_body("{\"model\":5,\"max_tokens\":5," MSGS "}",
                     "model: Input should be a valid string");
    expect_anth_body("{\"model\":\"\",\"max_tokens\":5," MSGS "}",
                     "model: String should have at least 1 character");
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5}", "messages: Field required");
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}}",
                     "messages: Input should be a valid list");
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}",
                     "messages: at least one message is required");
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[3]}",
                     "messages.0: Input should be a valid dictionary");
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"content\":\"x\"}]}",
                     "messages.0.role: Field required");
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"x\"},{\"role\":\"system\",\"content\":\"x\"}]}",
                     "messages.1.role: Input should be 'user' or 'assistant'");
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":7}]}",
                     "messages.0.content: Input should be a valid string or list of content "
                     "blocks");
    expect_messages_msg("\"max_tokens\":5,\"tools\":{}", "tools: Input should be a valid list");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[1]",
                        "tools.0: Input should be a valid dictionary");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"input_schema\":{}}]",
                        "tools.0.custom.name: Field required");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"name\":\"\"}]",
                        "tools.0.custom.name: String should have at least 1 character");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"name\":\"a\"}],"
                        "\"tool_choice\":{\"type\":\"sometimes\"}",
                        "tool_choice: Input tag 'sometimes' found using 'type' does not match "
                        "any of the expected tags: 'auto', 'any', 'tool', 'none'");
    expect_messages_msg("\"max_tokens\":5,\"tool_choice\":{\"type\":\"any\"}",
                        "tool_choice: tool_choice may only be specified while providing tools");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"name\":\"a\"}],"
                        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"b\"}",
                        "tool_choice.name: no tool named 'b' in tools");
    expect_messages_msg("\"max_tokens\":5,\"stop_sequences\":\"x\"",
                        "stop_sequences: Input should be a valid list");
    expect_messages_msg("\"max_tokens\":5,\"stop_sequences\":[\"x\",3]",
                        "stop_sequences.1: Input should be a valid string");
    expect_messages_msg("\"max_tokens\":5,\"stop_sequences\":[\"x\",\"\"]",
                        "stop_sequences: each stop sequence must be non-empty");
    expect_messages_msg("\"max_tokens\":5,\"stop_sequences\":[\" \\n\"]",
                        "stop_sequences: each stop sequence must contain non-whitespace");
}

/* A /v1/messages body nested too deep or not UTF-8 gets the API's bad-JSON sentence, as
 * any other body that is not JSON does (it got mock-llm's own); the OpenAI paths keep
 * their sentences (test_anthropic_body_errors_chat_unchanged). */
static void test_anthropic_body_errors(void **st)
{
    (void)st;
    char deep[200];
    memset(deep, '[', 70);
    strcpy(deep + 70, "1]");
    expect_anth_body(deep, "The request body is not valid JSON: nested deeper than 64 levels: "
                           "line 1 column 65 (char 64)");
    expect_anth_body("{\"model\":\"\xff\"}",
                     "The request body is not valid JSON: str is not valid UTF-8: surrogates "
                     "not allowed: line 1 column 1 (char 0)");
}

/* The bad-JSON sentence's "char N" and column count characters, as the API's do
 * (Python's JSONDecodeError: indexes into the decoded text), not bytes. */
static void test_anthropic_error_position_chars(void **st)
{
    (void)st;
    /* é (2 bytes), € (3), 😀 (4): the x at byte 21 is character 15 */
    expect_anth_body("{\"model\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\" x}",
                     "The request body is not valid JSON: unexpected character: line 1 "
                     "column 16 (char 15)");
    expect_anth_body("{\"model\":\n\"\xc3\xa9\xc3\xa9\" x}",
                     "The request body is not valid JSON: unexpected character: line 2 "
                     "column 6 (char 15)");
    expect_anth_body("{\"model\":\"\xc3\xa9",
                     "The request body is not valid JSON: unexpected end of data: line 1 "
                     "column 12 (char 11)");
}

/* A backslash before a multi-byte character is a bad escape in a body that is UTF-8:
 * bad JSON, where cJSON stopped, not "not valid UTF-8" (scan_body skipped the byte after
 * the backslash and met the character's continuation bytes as if they began one). A
 * backslash before a byte that is not UTF-8 is still that. */
static void test_bad_escape_not_utf8_error(void **st)
{
    (void)st;
    expect_anth_body("{\"model\":\"\\\xc3\xa9\"}",
                     "The request body is not valid JSON: unexpected character: line 1 "
                     "column 11 (char 10)");
    expect_anth_body("{\"model\":\"\\\xff\"}",
                     "The request body is not valid JSON: str is not valid UTF-8: surrogates "
                     "not allowed: line 1 column 1 (char 0)");
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat("{\"model\":\"\\\xe2\x82\xac\"}", &g, &e), -1);
    assert_string_equal(e.message, "We could not parse the JSON body of your request. (HINT: "
                                   "This likely means you aren't using your HTTP library "
                                   "correctly. The OpenAI API expects a JSON payload, but what "
                                   "was sent was not valid JSON.)");
}

static void test_anthropic_body_errors_chat_unchanged(void **st)
{
    (void)st;
    char deep[200];
    memset(deep, '[', 70);
    strcpy(deep + 70, "1]");
    /* chat keeps OpenAI's sentences */
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat(deep, &g, &e), -1);
    assert_string_equal(e.message, "The JSON body of your request is nested deeper than 64 "
                                   "levels.");
    assert_int_equal(chat("{\"model\":\"\xff\"}", &g, &e), -1);
    assert_string_equal(e.message, "We could not parse the JSON body of your request: it is "
                                   "not valid UTF-8 (RFC 8259 8.1).");
    assert_int_equal(chat("{\"model\":\"\xc3\xa9\", x}", &g, &e), -1);
    assert_string_equal(e.message, "We could not parse the JSON body of your request. (HINT: "
                                   "This likely means you aren't using your HTTP library "
                                   "correctly. The OpenAI API expects a JSON payload, but what "
                                   "was sent was not valid JSON.)");
}

/* Anthropic's tool names, as the API checks them now: 1..128 characters (64 before
 * mid-2025), then the pattern ^[a-zA-Z0-9_-]{1,128}$. */
static void test_anthropic_tool_limits(void **st)
{
    (void)st;
    char name[256], body[512];
    mllm_gen_req_t g;
    mllm_err_t e;
    memset(name, 'a', 128);
    name[128] = 0;
    snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":5," MSGS
             ",\"tools\":[{\"name\":\"%s\"}]}", name);
    assert_int_equal(mllm_parse_messages(body, strlen(body), &g, &e), 0);
    mllm_gen_req_free(&g);
    strcat(name, "a");
    snprintf(body, sizeof body, "\"max_tokens\":5,\"tools\":[{\"name\":\"a\"},"
             "{\"name\":\"%s\"}]", name);
    expect_messages_msg(body, "tools.1.custom.name: String should have at most 128 characters");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"},"
                        "{\"name\":\"a\"}]", "tools: Tool names must be unique.");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"name\":\"caldav.list-events\"}]",
                        "tools.0.custom.name: String should match pattern "
                        "'^[a-zA-Z0-9_-]{1,128}$'");
    /* 100 characters of 200 bytes: within the length, not the pattern */
    char *p = name;
    for (int i = 0; i < 100; i++, p += 2)
        memcpy(p, "\xc3\xa9", 2);
    *p = 0;
    snprintf(body, sizeof body, "\"max_tokens\":5,\"tools\":[{\"name\":\"%s\"}]", name);
    expect_messages_msg(body, "tools.0.custom.name: String should match pattern "
                              "'^[a-zA-Z0-9_-]{1,128}$'");
    /* chat keeps OpenAI's 64 */
    memset(name, 'a', 65);
    name[65] = 0;
    snprintf(body, sizeof body, "{\"model\":\"m\"," MSGS ",\"tools\":[{\"type\":\"function\","
             "\"function\":{\"name\":\"%s\"}}]}", name);
    assert_int_equal(chat(body, &g, &e), -1);
    assert_string_equal(e.message, "Invalid 'tools[0]': a function tool needs a 'name' of 1 "
                                   "to 64 characters.");
}

/* Anthropic's tool_choice is an object: OpenAI's string form, or a number, is refused
 * with the API's sentence (it got mock-llm's "Input tag" one, and "auto" was taken). */
static void test_anthropic_tool_choice_object(void **st)
{
    (void)st;
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"name\":\"a\"}],\"tool_choice\":\"auto\"",
                        "tool_choice: Input should be a valid dictionary or object to extract "
                        "fields from");
    expect_messages_msg("\"max_tokens\":5,\"tools\":[{\"name\":\"a\"}],\"tool_choice\":3",
                        "tool_choice: Input should be a valid dictionary or object to extract "
                        "fields from");
}

/* Anthropic refuses a message with empty content (an empty string or an empty list of
 * blocks), except a final assistant message (a prefill), in its own words. */
static void test_anthropic_empty_content(void **st)
{
    (void)st;
    const char *msg0 = "messages.0: all messages must have non-empty content except for the "
                       "optional final assistant message";
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"\"}]}", msg0);
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":[]}]}", msg0);
    expect_anth_body("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":[]},"
                     "{\"role\":\"user\",\"content\":\"x\"}]}",
                     "messages.1: all messages must have non-empty content except for the "
                     "optional final assistant message");
    const char *prefill = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":"
                          "\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
                          "\"content\":\"\"}]}";
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(mllm_parse_messages(prefill, strlen(prefill), &g, &e), 0);
    mllm_gen_req_free(&g);
    /* chat takes an empty content as before */
    assert_int_equal(chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                          "\"\"}]}", &g, &e), 0);
    mllm_gen_req_free(&g);
}

/* n (1..128) and logprobs / top_logprobs (0..20, logprobs required), OpenAI's ranges
 * and error codes; what mock-llm does not draw them for (tools, response_format, stop
 * with n > 1) is a 400 naming the parameter, never fewer choices or no logprobs. */
static void test_logprobs_n_parse(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat("{\"model\":\"m\"," MSGS "}", &g, &e), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.logprobs, 0);
    mllm_gen_req_free(&g);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"logprobs\":true,\"top_logprobs\":3,"
                          "\"n\":3}", &g, &e), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.logprobs, 1);
    assert_int_equal(g.top_logprobs, 3);
    mllm_gen_req_free(&g);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"logprobs\":true,\"top_logprobs\":20,"
                          "\"n\":128}", &g, &e), 0);
    assert_int_equal(g.n, 128);
    assert_int_equal(g.top_logprobs, 20);
    mllm_gen_req_free(&g);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"logprobs\":true,\"top_logprobs\":0}",
                          &g, &e), 0);
    assert_int_equal(g.top_logprobs, 0);
    mllm_gen_req_free(&g);
    expect_400("{\"model\":\"m\"," MSGS ",\"logprobs\":true,\"top_logprobs\":21}",
               "top_logprobs", "integer_above_max_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"logprobs\":true,\"top_logprobs\":-1}",
               "top_logprobs", "integer_below_min_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"logprobs\":true,\"top_logprobs\":1.5}",
               "top_logprobs", "invalid_type");
    expect_400("{\"model\":\"m\"," MSGS ",\"logprobs\":false,\"top_logprobs\":3}",
               "top_logprobs", "invalid_value");
    const char *tools = ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]";
    char b[512];
    snprintf(b, sizeof b, "{\"model\":\"m\"," MSGS "%s,\"n\":2}", tools);
    expect_400(b, "n", "unsupported_value");
    snprintf(b, sizeof b, "{\"model\":\"m\"," MSGS "%s,\"logprobs\":true}", tools);
    expect_400(b, "logprobs", "unsupported_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"n\":2,\"stop\":[\"x\"]}", "n", "unsupported_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"n\":2,\"response_format\":{\"type\":"
               "\"json_object\"}}", "n", "unsupported_value");
    /* tool_choice "none": the answer is text, both are drawn */
    snprintf(b, sizeof b, "{\"model\":\"m\"," MSGS "%s,\"tool_choice\":\"none\",\"n\":2,"
             "\"logprobs\":true}", tools);
    assert_int_equal(chat(b, &g, &e), 0);
    mllm_gen_req_free(&g);
    /* the Responses API: a clear 400, not an empty logprobs array */
    const char *r1 = "{\"model\":\"m\",\"input\":\"hi\",\"include\":"
                     "[\"message.output_text.logprobs\"]}";
    assert_int_equal(mllm_parse_responses(r1, strlen(r1), &g, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.param, "include");
    const char *r2 = "{\"model\":\"m\",\"input\":\"hi\",\"top_logprobs\":2}";
    assert_int_equal(mllm_parse_responses(r2, strlen(r2), &g, &e), -1);
    assert_string_equal(e.param, "top_logprobs");
}

/* One token's logprobs entry: the token, logprob <= 0, its UTF-8 bytes, and
 * top_logprobs with the chosen token first, strictly decreasing, distinct tokens, each
 * with token/logprob/bytes; the same draws give the same entry. */
static void test_logprob_entry(void **st)
{
    (void)st;
    for (int top = 0; top <= MLLM_MAX_TOP_LOGPROBS; top++) {
        for (int rep = 0; rep < 20; rep++) {
            mllm_rng_t r1, r2;
            mllm_rng_seed(&r1, 42, (uint64_t)(top * 100 + rep));
            r2 = r1;
            mllm_buf_t a = { 0 }, b = { 0 };
            const char *tok = rep & 1 ? " caf\xc3\xa9" : "\"q\\";
            size_t tl = strlen(tok);
            mllm_logprob_entry(&a, &r1, tok, tl, 0, top);
            mllm_logprob_entry(&b, &r2, tok, tl, 0, top);
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.p, b.p, a.len);
            cJSON *j = cJSON_ParseWithLength(a.p, a.len);
            assert_non_null(j);
            assert_string_equal(cJSON_GetObjectItem(j, "token")->valuestring, tok);
            double lp = cJSON_GetObjectItem(j, "logprob")->valuedouble;
            assert_true(lp <= 0 && lp > -1);
            cJSON *bytes = cJSON_GetObjectItem(j, "bytes");
            assert_int_equal(cJSON_GetArraySize(bytes), (int)tl);
            for (size_t i = 0; i < tl; i++)
                assert_int_equal(cJSON_GetArrayItem(bytes, (int)i)->valueint,
                                 (unsigned char)tok[i]);
            cJSON *tops = cJSON_GetObjectItem(j, "top_logprobs");
            assert_int_equal(cJSON_GetArraySize(tops), top);
            double prev = 1, sum = 0;
            for (int i = 0; i < top; i++) {
                cJSON *t = cJSON_GetArrayItem(tops, i);
                const char *tt = cJSON_GetObjectItem(t, "token")->valuestring;
                double v = cJSON_GetObjectItem(t, "logprob")->valuedouble;
                if (i == 0) {
                    assert_string_equal(tt, tok);
                    assert_true(v == lp);
                }
                assert_true(v <= 0 && v < prev);
                prev = v;
                sum += exp(v);
                assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "bytes")),
                                 (int)strlen(tt));
                for (int k = 0; k < i; k++)
                    assert_string_not_equal(tt, cJSON_GetObjectItem(cJSON_GetArrayItem(tops, k),
                                                                    "token")->valuestring);
            }
            assert_true(sum <= 1.0 + 1e-9);
            cJSON_Delete(j);
            mllm_buf_free(&a);
            mllm_buf_free(&b);
        }
    }
}

/* The chunks and the body of several choices: each choice's index, logprobs as
 * {"content":[...],"refusal":null} or null. */
static void test_choice_frames(void **st)
{
    (void)st;
    mllm_stream_fmt_t f;
    mllm_stream_fmt_init(&f, "gpt-4o", 7, 0);
    mllm_buf_t b = { 0 };
    mllm_chunk_choice(&b, &f, 2, "hi", 2, "{\"x\":1}", 7);
    assert_true(b.len > 8 && !memcmp(b.p, "data: ", 6));
    cJSON *j = cJSON_ParseWithLength(b.p + 6, b.len - 8);
    assert_non_null(j);
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_int_equal(cJSON_GetObjectItem(c, "index")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "delta"), "content")->valuestring, "hi");
    cJSON *lp = cJSON_GetObjectItem(c, "logprobs");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(lp, "content")), 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(lp, "refusal")));
    cJSON_Delete(j);
    b.len = 0;
    mllm_fmt_completion_head(&b, &f, "gpt-4o");
    mllm_fmt_completion_choice(&b, 0, "a", 1, NULL, 0, "stop");
    mllm_fmt_completion_choice(&b, 1, "b", 1, "", 0, "length");
    mllm_fmt_completion_tail(&b, 5, 2);
    j = cJSON_ParseWithLength(b.p, b.len);
    assert_non_null(j);
    cJSON *ch = cJSON_GetObjectItem(j, "choices");
    assert_int_equal(cJSON_GetArraySize(ch), 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(ch, 0), "logprobs")));
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(ch, 1), "index")->valueint, 1);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(ch, 1),
                                                                      "logprobs"), "content")));
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "total_tokens")->valueint, 7);
    cJSON_Delete(j);
    mllm_buf_free(&b);
}

static void test_unsupported_and_out_of_range(void **st)
{
    (void)st;
    expect_400("{\"model\":\"m\"," MSGS ",\"logprobs\":\"yes\"}", "logprobs", "invalid_type");
    expect_400("{\"model\":\"m\"," MSGS ",\"top_logprobs\":3}", "top_logprobs", NULL);
    expect_400("{\"model\":\"m\"," MSGS ",\"top_p\":1.5}", "top_p", NULL);
    expect_400("{\"model\":\"m\"," MSGS ",\"top_p\":\"1\"}", "top_p", NULL);
    expect_400("{\"model\":\"m\"," MSGS ",\"presence_penalty\":2.5}", "presence_penalty", NULL);
    expect_400("{\"model\":\"m\"," MSGS ",\"frequency_penalty\":-3}", "frequency_penalty", NULL);
    /* a tool without a type was skipped silently, and a tool_choice then read "only
     * allowed when 'tools' are specified" */
    expect_400("{\"model\":\"m\"," MSGS ",\"tools\":[{\"function\":{\"name\":\"f\"}}],"
               "\"tool_choice\":\"required\"}", "tools", "missing_required_parameter");
    /* what stays accepted: the defaults and the edges of each range */
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"logprobs\":false,\"top_logprobs\":0,"
                          "\"top_p\":1,\"presence_penalty\":-2,\"frequency_penalty\":2,"
                          "\"seed\":7,\"stop\":[\"x\"],\"logit_bias\":null}", &g, &e), 0);
    mllm_gen_req_free(&g);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"logprobs\":null,\"top_p\":null}", &g,
                          &e), 0);
    mllm_gen_req_free(&g);
    expect_messages_400("{\"model\":\"m\",\"max_tokens\":5," MSGS ",\"temperature\":1.5}",
                        "temperature");
    expect_messages_400("{\"model\":\"m\",\"max_tokens\":5," MSGS ",\"top_p\":1.5}", "top_p");
    expect_messages_400("{\"model\":\"m\",\"max_tokens\":5," MSGS ",\"top_k\":-1}", "top_k");
    const char *ok = "{\"model\":\"m\",\"max_tokens\":5," MSGS ",\"temperature\":1,"
                     "\"top_p\":0.9,\"top_k\":40}";
    assert_int_equal(mllm_parse_messages(ok, strlen(ok), &g, &e), 0);
    mllm_gen_req_free(&g);
}

/* Structured outputs: response_format (chat) and text.format (Responses) parsed into a
 * mode and a schema, and the answer's JSON built from the schema; formats OpenAI refuses
 * are refused. Before, both were ignored and the answer was prose (the SDKs' parse()
 * threw on it). */
static void test_structured_output(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    mllm_rng_t rng;
    mllm_buf_t out;
    const char *js = "{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"json_schema\","
                     "\"json_schema\":{\"name\":\"p\",\"strict\":true,\"schema\":{\"type\":"
                     "\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":3,"
                     "\"maximum\":5},\"u\":{\"enum\":[\"a\",\"b\"]},\"o\":{\"anyOf\":[{\"$ref\":"
                     "\"#/$defs/x\"},{\"type\":\"null\"}]}},\"required\":[\"n\",\"u\",\"o\"],"
                     "\"$defs\":{\"x\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":"
                     "\"boolean\"}},\"required\":[\"k\"]}}}}}}";
    assert_int_equal(chat(js, &g, &e), 0);
    assert_int_equal(g.json_mode, MLLM_JSON_SCHEMA);
    assert_non_null(g.json_schema);
    /* the format's bytes are read as prompt */
    assert_true(g.prompt_tokens > 3 + 3 + 3 + 50);
    for (uint64_t i = 0; i < 50; i++) {
        mllm_rng_seed(&rng, 1, i);
        assert_int_equal(mllm_json_answer(&g, &rng, &out), 1);
        cJSON *j = cJSON_Parse(out.p);
        if (!j)
            fail_msg("not JSON: %s", out.p);
        cJSON *n = cJSON_GetObjectItem(j, "n"), *u = cJSON_GetObjectItem(j, "u");
        assert_true(cJSON_IsNumber(n) && n->valuedouble >= 3 && n->valuedouble <= 5);
        assert_true(cJSON_IsString(u) && (!strcmp(u->valuestring, "a") || !strcmp(u->valuestring, "b")));
        assert_true(cJSON_IsBool(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "o"), "k")));
        cJSON_Delete(j);
        mllm_buf_free(&out);
    }
    mllm_gen_req_free(&g);
    assert_null(g.json_schema);
    /* json_object: a JSON object */
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"json_object\"}}",
                          &g, &e), 0);
    assert_int_equal(g.json_mode, MLLM_JSON_OBJECT);
    assert_int_equal(mllm_json_answer(&g, &rng, &out), 1);
    cJSON *j = cJSON_Parse(out.p);
    assert_true(cJSON_IsObject(j));
    cJSON_Delete(j);
    mllm_buf_free(&out);
    mllm_gen_req_free(&g);
    /* text, null and absent: prose */
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"text\"}}",
                          &g, &e), 0);
    assert_int_equal(g.json_mode, MLLM_JSON_NONE);
    assert_int_equal(mllm_json_answer(&g, &rng, &out), 0);
    mllm_gen_req_free(&g);
    /* a root schema that is not an object still answers an object */
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"json_schema\","
                          "\"json_schema\":{\"name\":\"s\",\"schema\":{\"type\":\"string\"}}}}",
                          &g, &e), 0);
    assert_int_equal(mllm_json_answer(&g, &rng, &out), 1);
    assert_string_equal(out.p, "{}");
    mllm_buf_free(&out);
    mllm_gen_req_free(&g);
    expect_400("{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"yaml\"}}",
               "response_format", "invalid_value");
    expect_400("{\"model\":\"m\"," MSGS ",\"response_format\":\"json\"}", "response_format",
               "invalid_type");
    expect_400("{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"json_schema\"}}",
               "response_format", "missing_required_parameter");
    expect_400("{\"model\":\"m\"," MSGS ",\"response_format\":{\"type\":\"json_schema\","
               "\"json_schema\":{\"schema\":{}}}}", "response_format", "missing_required_parameter");
    /* the Responses API: text.format, flat */
    const char *r = "{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":"
                    "\"json_schema\",\"name\":\"p\",\"schema\":{\"type\":\"object\",\"properties\":"
                    "{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"]}}}}";
    assert_int_equal(mllm_parse_responses(r, strlen(r), &g, &e), 0);
    assert_int_equal(g.json_mode, MLLM_JSON_SCHEMA);
    assert_int_equal(mllm_json_answer(&g, &rng, &out), 1);
    j = cJSON_Parse(out.p);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "a")));
    cJSON_Delete(j);
    mllm_buf_free(&out);
    /* the response object repeats text as sent, schema included */
    assert_non_null(strstr(g.echo.p, "\"text\":{\"format\":{\"type\":\"json_schema\""));
    assert_non_null(strstr(g.echo.p, "\"required\":[\"a\"]"));
    mllm_gen_req_free(&g);
    const char *bad = "{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"xml\"}}}";
    assert_int_equal(mllm_parse_responses(bad, strlen(bad), &g, &e), -1);
    assert_string_equal(e.param, "text.format");
}

/* Stop sequences parsed (the cut itself is the server's: test_sdk_traffic.js): chat's
 * stop is a string or up to 4 strings, Anthropic's stop_sequences an array; empty
 * strings never match and are dropped. */
static void test_stop_parse(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"stop\":\"\\n\"}", &g, &e), 0);
    assert_int_equal(cJSON_GetArraySize(g.stop), 1);
    assert_string_equal(cJSON_GetArrayItem(g.stop, 0)->valuestring, "\n");
    mllm_gen_req_free(&g);
    assert_null(g.stop);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"stop\":[\"a\",\"\",\"b\"]}", &g, &e), 0);
    assert_int_equal(cJSON_GetArraySize(g.stop), 2);
    mllm_gen_req_free(&g);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"stop\":[\"\"]}", &g, &e), 0);
    assert_null(g.stop);
    mllm_gen_req_free(&g);
    assert_int_equal(chat("{\"model\":\"m\"," MSGS ",\"stop\":null}", &g, &e), 0);
    assert_null(g.stop);
    mllm_gen_req_free(&g);
    expect_400("{\"model\":\"m\"," MSGS ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop",
               "array_above_max_length");
    expect_400("{\"model\":\"m\"," MSGS ",\"stop\":[1]}", "stop", "invalid_type");
    expect_400("{\"model\":\"m\"," MSGS ",\"stop\":5}", "stop", "invalid_type");
    const char *ok = "{\"model\":\"m\",\"max_tokens\":5," MSGS ",\"stop_sequences\":[\"x\",\"y\",\"z\","
                     "\"v\",\"w\"]}";
    assert_int_equal(mllm_parse_messages(ok, strlen(ok), &g, &e), 0);
    assert_int_equal(cJSON_GetArraySize(g.stop), 5);
    mllm_gen_req_free(&g);
    expect_messages_400("{\"model\":\"m\",\"max_tokens\":5," MSGS ",\"stop_sequences\":\"x\"}",
                        "stop_sequences");
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
    /* the details objects the real API sends (apps read cached_tokens from them) */
    cJSON *ptd = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens_details");
    cJSON *ctd = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens_details");
    assert_non_null(ptd);
    assert_non_null(ctd);
    assert_int_equal(cJSON_GetObjectItem(ptd, "cached_tokens")->valueint, 0);
    assert_int_equal(cJSON_GetObjectItem(ctd, "reasoning_tokens")->valueint, 0);
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
    mllm_fmt_completion(&b, &f, "gpt-4o", "hi", 2, NULL, "stop", 3, 1);
    j = cJSON_Parse(b.p);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content")->valuestring, "hi");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens")->valuedouble, 1);
    cJSON_Delete(j);

    /* with include_usage, every chunk before the usage chunk says "usage": null */
    mllm_tool_call_t call = { .name = "get", .id = "call_mock1" };
    for (int on = 0; on < 2; on++) {
        mllm_stream_fmt_usage_null(&f, on);
        for (int k = 0; k < 5; k++) {
            b.len = 0;
            if (k == 0)
                mllm_chunk_role(&b, &f);
            else if (k == 1)
                mllm_chunk_content(&b, &f, "x", 1);
            else if (k == 2)
                mllm_chunk_finish(&b, &f, "stop");
            else if (k == 3)
                mllm_chunk_tool_start(&b, &f, &call);
            else
                mllm_chunk_tool_args(&b, &f, "{}", 2);
            j = frame(&b);
            cJSON *u = cJSON_GetObjectItem(j, "usage");
            assert_true(on ? cJSON_IsNull(u) : u == NULL);
            cJSON_Delete(j);
        }
    }
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
    cJSON *cr = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "usage"), "cache_read_input_tokens");
    assert_non_null(cr);
    assert_int_equal(cr->valueint, 0);
    assert_int_equal(strncmp(cJSON_GetObjectItem(m, "id")->valuestring, "msg_", 4), 0);
    cJSON_Delete(j);
    mllm_buf_free(&b);
}

/* usage.prompt_tokens: ceil(bytes / 4) + 3 per message + 3, where the bytes are every
 * content string and text part, the system prompt, tool results, earlier tool calls'
 * names and arguments, and the compact JSON of the tool definitions. */
static void test_prompt_token_rule(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    /* 400 bytes of system, 40 of user: 440 / 4 = 110, + 2 messages x 3 + 3 */
    char body[4096];
    char sys[401], usr[41];
    memset(sys, 's', 400);
    sys[400] = 0;
    memset(usr, 'u', 40);
    usr[40] = 0;
    snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":"
             "\"%s\"},{\"role\":\"user\",\"content\":\"%s\"}]}", sys, usr);
    assert_int_equal(chat(body, &g, &e), 0);
    assert_int_equal(g.prompt_bytes, 440);
    assert_int_equal(g.prompt_tokens, 110 + 6 + 3);
    /* a tool round trip: the call's name (3) and arguments (13) and the result (5) count,
     * and so does the tool definition's JSON */
    const char *tool = "{\"type\":\"function\",\"function\":{\"name\":\"get\",\"parameters\":"
                       "{\"type\":\"object\"}}}";
    snprintf(body, sizeof body, "{\"model\":\"m\",\"tools\":[%s],\"messages\":["
             "{\"role\":\"user\",\"content\":\"uuuu\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
             "\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"q\\\":\\\"abc\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"sunny\"}]}", tool);
    assert_int_equal(chat(body, &g, &e), 0);
    assert_int_equal(g.prompt_bytes, 4 + 3 + 11 + 5 + (long)strlen(tool));
    assert_int_equal(g.ntools, 1);
    assert_true(g.after_tool_result);
    mllm_gen_req_free(&g);
    /* Anthropic: the system prompt is one more message; tool_use input and tool_result
     * content count */
    snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":5,\"system\":\"%s\","
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", sys, usr);
    assert_int_equal(mllm_parse_messages(body, strlen(body), &g, &e), 0);
    assert_int_equal(g.prompt_tokens, 110 + 6 + 3);
    const char *anth = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":[{\"type\":"
                       "\"tool_use\",\"id\":\"t1\",\"name\":\"get\",\"input\":{\"q\":1}}]},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
                       "\"t1\",\"content\":\"sunny\"}]}]}";
    assert_int_equal(mllm_parse_messages(anth, strlen(anth), &g, &e), 0);
    assert_int_equal(g.prompt_bytes, 2 + 3 + 7 + 5);
    assert_true(g.after_tool_result);
    /* Responses: input string + instructions, two "messages" */
    snprintf(body, sizeof body, "{\"model\":\"m\",\"instructions\":\"%s\",\"input\":\"%s\"}", sys,
             usr);
    assert_int_equal(mllm_parse_responses(body, strlen(body), &g, &e), 0);
    assert_int_equal(g.prompt_tokens, 110 + 6 + 3);
    assert_int_equal(g.api, MLLM_API_RESPONSES);
    mllm_gen_req_free(&g);
    /* parts that are not text count as their compact JSON: an image_url part, an
     * Anthropic document block, a Responses input_image */
    const char *img = "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,"
                      "iVBORw0KGgo\"}}";
    snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
             "[{\"type\":\"text\",\"text\":\"hi\"},%s]}]}", img);
    assert_int_equal(chat(body, &g, &e), 0);
    assert_int_equal(g.prompt_bytes, 2 + (long)strlen(img));
    const char *doc = "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":"
                      "\"text/plain\",\"data\":\"the quick brown fox\"}}";
    snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":"
             "\"user\",\"content\":[%s,{\"type\":\"text\",\"text\":\"hi\"}]}]}", doc);
    assert_int_equal(mllm_parse_messages(body, strlen(body), &g, &e), 0);
    assert_int_equal(g.prompt_bytes, (long)strlen(doc) + 2);
    const char *ii = "{\"type\":\"input_image\",\"image_url\":\"https://x/y.png\"}";
    snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":["
             "{\"type\":\"input_text\",\"text\":\"hi\"},%s]}]}", ii);
    assert_int_equal(mllm_parse_responses(body, strlen(body), &g, &e), 0);
    assert_int_equal(g.prompt_bytes, 2 + (long)strlen(ii));
    mllm_gen_req_free(&g);
    /* a \u0000 escape is one byte of the string, not its end */
    const char *nul = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                      "\"abc\\u0000defgh\"}]}";
    assert_int_equal(chat(nul, &g, &e), 0);
    assert_int_equal(g.prompt_bytes, 9);
    /* ... but a backslash followed by u0000 is text */
    const char *lit = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                      "\"a\\\\u0000\"}]}";
    assert_int_equal(chat(lit, &g, &e), 0);
    assert_int_equal(g.prompt_bytes, 7);
    /* bytes that are not UTF-8 are a 400 (they would be echoed) */
    const char *bad = "{\"model\":\"m\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    assert_int_equal(chat(bad, &g, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "UTF-8"));
}

/* Error messages that quote request bytes stay UTF-8: cut at a character boundary,
 * and bytes that are not UTF-8 written as U+FFFD. */
static void test_error_utf8(void **st)
{
    (void)st;
    const char *euro = "\xe2\x82\xac";
    assert_int_equal(mllm_utf8_cut("abc", 10), 3);
    assert_int_equal(mllm_utf8_cut("\xe2\x82\xac\xe2\x82\xac", 4), 3);
    assert_int_equal(mllm_utf8_cut("\xe2\x82\xac\xe2\x82\xac", 3), 3);
    assert_int_equal(mllm_utf8_cut("\xe2\x82\xac\xe2\x82\xac", 2), 0);
    char body[2048], role[200] = "";
    for (int i = 0; i < 20; i++)
        strcat(role, euro);
    snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"%s\","
             "\"content\":\"x\"}]}", role);
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat(body, &g, &e), -1);
    /* 40 bytes would end inside the 14th euro sign: 13 of them are quoted */
    assert_non_null(strstr(e.message, "': '\xe2\x82\xac"));
    size_t n = strlen(e.message);
    assert_true(n > 3 && !strcmp(e.message + n - 2, "'."));
    assert_int_equal(e.message[n - 3] & 0xff, 0xac);
    /* a message cut at its 255-byte limit, inside a character */
    char big[600] = "x";
    for (int i = 0; i < 150; i++)
        strcat(big, euro);
    mllm_err_set(&e, 400, "t", NULL, NULL, "%s", big);
    n = strlen(e.message);
    assert_true(n <= 255 && n >= 252);
    assert_int_equal(n % 3, 1); /* "x" and whole euro signs */
    /* formatted: bytes that are not UTF-8 become U+FFFD, the JSON parses */
    mllm_err_set(&e, 404, "t", NULL, NULL, "Unknown request URL: /\xff\xe2\x82.");
    mllm_buf_t b = { 0 };
    mllm_fmt_error_openai(&b, &e);
    assert_non_null(strstr(b.p, "/\\ufffd\\ufffd\\ufffd."));
    cJSON *j = cJSON_Parse(b.p);
    assert_non_null(j);
    cJSON_Delete(j);
    mllm_buf_free(&b);
}

static void test_responses_parse(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    const char *ok = "{\"model\":\"m\",\"stream\":true,\"max_output_tokens\":7,\"input\":["
                     "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"hey\"}]},"
                     "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"},"
                     "{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":\"42\"}]}";
    assert_int_equal(mllm_parse_responses(ok, strlen(ok), &g, &e), 0);
    assert_int_equal(g.stream, 1);
    assert_int_equal(g.max_tokens, 7);
    assert_int_equal(g.prompt_bytes, 3 + 1 + 2 + 2);
    assert_true(g.after_tool_result);
    mllm_gen_req_free(&g);
    /* the response object repeats the request's parameters, or the API's defaults */
    const char *echo = "{\"model\":\"m\",\"input\":\"hi\",\"instructions\":\"Be brief.\","
                       "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{}}],"
                       "\"tool_choice\":\"none\",\"temperature\":0.2,\"top_p\":0.5,"
                       "\"max_output_tokens\":3,\"metadata\":{\"k\":\"v\"},\"user\":\"u1\","
                       "\"parallel_tool_calls\":false,\"service_tier\":\"auto\",\"store\":true}";
    for (int dflt = 0; dflt < 2; dflt++) {
        const char *req = dflt ? "{\"model\":\"m\",\"input\":\"hi\"}" : echo;
        assert_int_equal(mllm_parse_responses(req, strlen(req), &g, &e), 0);
        mllm_stream_fmt_t f;
        mllm_stream_fmt_init(&f, "m", 1, 2);
        mllm_resp_t r = { .f = &f, .model = "m", .echo = g.echo.p, .echo_len = g.echo.len };
        mllm_buf_t b = { 0 };
        mllm_fmt_response(&b, &r, "ok", 2, 0, 5, 1);
        cJSON *j = cJSON_Parse(b.p);
        assert_non_null(j);
#define FIELD(k) cJSON_GetObjectItem(j, k)
        if (dflt) {
            assert_true(cJSON_IsNull(FIELD("instructions")));
            assert_int_equal(cJSON_GetArraySize(FIELD("tools")), 0);
            assert_string_equal(FIELD("tool_choice")->valuestring, "auto");
            assert_true(FIELD("temperature")->valuedouble == 1.0);
            assert_true(cJSON_IsNull(FIELD("max_output_tokens")));
            assert_true(cJSON_IsTrue(FIELD("parallel_tool_calls")));
        } else {
            assert_string_equal(FIELD("instructions")->valuestring, "Be brief.");
            assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(FIELD("tools"), 0),
                                                    "name")->valuestring, "f");
            assert_string_equal(FIELD("tool_choice")->valuestring, "none");
            assert_true(FIELD("temperature")->valuedouble == 0.2);
            assert_true(FIELD("top_p")->valuedouble == 0.5);
            assert_int_equal(FIELD("max_output_tokens")->valueint, 3);
            assert_string_equal(cJSON_GetObjectItem(FIELD("metadata"), "k")->valuestring, "v");
            assert_string_equal(FIELD("user")->valuestring, "u1");
            assert_true(cJSON_IsFalse(FIELD("parallel_tool_calls")));
        }
        assert_string_equal(FIELD("service_tier")->valuestring, "default");
        assert_true(cJSON_IsFalse(FIELD("store"))); /* nothing is stored */
        assert_true(cJSON_IsNull(FIELD("previous_response_id")));
        assert_string_equal(FIELD("status")->valuestring, "completed");
#undef FIELD
        cJSON_Delete(j);
        mllm_buf_free(&b);
        mllm_gen_req_free(&g);
    }
    const char *bad[][2] = {
        { "{\"model\":\"m\",\"input\":\"x\",\"top_p\":2}", "top_p" },
        { "{\"model\":\"m\",\"input\":\"x\",\"metadata\":[]}", "metadata" },
        { "{\"model\":\"m\",\"input\":\"x\",\"parallel_tool_calls\":1}", "parallel_tool_calls" },
        { "{\"model\":\"m\"}", "input" },
        { "{\"model\":\"m\",\"input\":[]}", "input" },
        { "{\"model\":\"m\",\"input\":5}", "input" },
        { "{\"model\":\"m\",\"input\":\"x\",\"instructions\":3}", "instructions" },
        { "{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens" },
        { "{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"resp_1\"}",
          "previous_response_id" },
        { "{\"model\":\"m\",\"input\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "input" },
        { "{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"required\"}", "tool_choice" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mllm_parse_responses(bad[i][0], strlen(bad[i][0]), &g, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.param, bad[i][1]);
    }
}

static const char *weather_tools =
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":"
    "\"Weather of a city\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"city\":{\"type\":\"string\"},\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]},"
    "\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7},"
    "\"hourly\":{\"type\":\"boolean\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"where\":{\"type\":\"object\",\"properties\":{\"lat\":{\"type\":\"number\"}},"
    "\"required\":[\"lat\"]}},\"required\":[\"city\",\"unit\",\"days\",\"where\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}]";

/* The seeded tool rule and arguments that are valid JSON following the schema. */
static void test_tool_rule(void **st)
{
    (void)st;
    mllm_gen_req_t g;
    mllm_err_t e;
    char body[4096];
    int calls[2] = { 0 };
    for (uint64_t idx = 0; idx < 40; idx++) {
        snprintf(body, sizeof body, "{\"model\":\"m\",%s," MSGS "}", weather_tools);
        assert_int_equal(chat(body, &g, &e), 0);
        mllm_rng_t r;
        mllm_rng_seed(&r, 1, idx);
        mllm_tool_call_t c;
        assert_int_equal(mllm_tool_call(&g, &r, 1.0, idx, &c), 1);
        cJSON *a = cJSON_Parse(c.args.p);
        assert_non_null(a);
        assert_true(cJSON_IsObject(a));
        if (!strcmp(c.name, "get_weather")) {
            calls[0]++;
            assert_true(cJSON_IsString(cJSON_GetObjectItem(a, "city")));
            const char *u = cJSON_GetObjectItem(a, "unit")->valuestring;
            assert_true(!strcmp(u, "c") || !strcmp(u, "f"));
            double d = cJSON_GetObjectItem(a, "days")->valuedouble;
            assert_true(d >= 1 && d <= 7 && d == (int)d);
            assert_true(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "where"),
                                                           "lat")));
        } else {
            calls[1]++;
            assert_string_equal(c.name, "noop");
            assert_string_equal(c.args.p, "{}");
        }
        assert_non_null(strstr(c.id, "call_mock"));
        cJSON_Delete(a);
        mllm_buf_free(&c.args);
        /* the same draws give the same call */
        mllm_rng_seed(&r, 1, idx);
        mllm_tool_call_t c2;
        assert_int_equal(mllm_tool_call(&g, &r, 1.0, idx, &c2), 1);
        assert_string_equal(c2.name, c.name);
        mllm_buf_free(&c2.args);
        mllm_gen_req_free(&g);
    }
    assert_true(calls[0] > 5 && calls[1] > 5); /* both tools get drawn */
    struct {
        const char *choice;
        int         after_result, want;
        const char *name;
    } cases[] = {
        { "\"none\"", 0, 0, NULL },
        { "\"auto\"", 1, 0, NULL },      /* a tool result is answered with text */
        { "\"required\"", 1, 1, NULL },
        { "{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}", 0, 1, "noop" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body, "{\"model\":\"m\",%s,\"tool_choice\":%s,\"messages\":["
                 "{\"role\":\"user\",\"content\":\"x\"}%s]}", weather_tools, cases[i].choice,
                 cases[i].after_result ? ",{\"role\":\"tool\",\"tool_call_id\":\"c\","
                                         "\"content\":\"r\"}" : "");
        assert_int_equal(chat(body, &g, &e), 0);
        mllm_rng_t r;
        mllm_rng_seed(&r, 3, i);
        mllm_tool_call_t c;
        assert_int_equal(mllm_tool_call(&g, &r, 1.0, i, &c), cases[i].want);
        if (cases[i].name)
            assert_string_equal(c.name, cases[i].name);
        mllm_buf_free(&c.args);
        mllm_gen_req_free(&g);
    }
    /* auto at rate 0 never calls */
    snprintf(body, sizeof body, "{\"model\":\"m\",%s," MSGS "}", weather_tools);
    assert_int_equal(chat(body, &g, &e), 0);
    mllm_rng_t r;
    mllm_rng_seed(&r, 3, 9);
    mllm_tool_call_t c;
    assert_int_equal(mllm_tool_call(&g, &r, 0.0, 9, &c), 0);
    mllm_gen_req_free(&g);
    /* a named tool that does not exist is a 400 on tool_choice */
    snprintf(body, sizeof body, "{\"model\":\"m\",%s,\"tool_choice\":{\"type\":\"function\","
             "\"function\":{\"name\":\"nope\"}}," MSGS "}", weather_tools);
    assert_int_equal(chat(body, &g, &e), -1);
    assert_string_equal(e.param, "tool_choice");
}

/* The arguments for one tool whose parameters schema is `params` (tool_choice
 * required), parsed; NULL when they are not JSON. raw (optional) gets their text. */
static cJSON *args_for(const char *params, uint64_t idx, mllm_buf_t *raw)
{
    size_t n = strlen(params) + 256;
    char *body = malloc(n);
    snprintf(body, n, "{\"model\":\"m\"," MSGS ",\"tool_choice\":\"required\",\"tools\":[{"
             "\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":%s}}]}", params);
    mllm_gen_req_t g;
    mllm_err_t e;
    assert_int_equal(chat(body, &g, &e), 0);
    free(body);
    mllm_rng_t r;
    mllm_rng_seed(&r, 1, idx);
    mllm_tool_call_t c;
    assert_int_equal(mllm_tool_call(&g, &r, 1.0, idx, &c), 1);
    mllm_gen_req_free(&g);
    cJSON *a = cJSON_ParseWithLength(c.args.p, c.args.len);
    if (raw)
        *raw = c.args;
    else
        mllm_buf_free(&c.args);
    return a;
}

/* $ref to $defs (pydantic), definitions (zod-to-json-schema), paths and the root; a
 * schema that refers to itself ends in null at the depth bound. */
static void test_tool_refs(void **st)
{
    (void)st;
    cJSON *a = args_for("{\"type\":\"object\",\"required\":[\"order\",\"again\",\"alt\"],"
                        "\"properties\":{\"order\":{\"$ref\":\"#/$defs/Order\"},"
                        "\"again\":{\"$ref\":\"#/properties/order\"},"
                        "\"alt\":{\"allOf\":[{\"$ref\":\"#/definitions/a~1b\"}]}},"
                        "\"definitions\":{\"a/b\":{\"type\":\"integer\",\"minimum\":5,"
                        "\"maximum\":5}},"
                        "\"$defs\":{\"Order\":{\"type\":\"object\",\"required\":[\"id\"],"
                        "\"properties\":{\"id\":{\"type\":\"integer\"}}}}}", 1, NULL);
    assert_non_null(a);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "order"), "id")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "again"), "id")));
    assert_int_equal(cJSON_GetObjectItem(a, "alt")->valueint, 5);
    cJSON_Delete(a);
    /* a linked list of itself: objects until the depth bound, then null */
    a = args_for("{\"$ref\":\"#/$defs/Node\",\"$defs\":{\"Node\":{\"type\":\"object\","
                 "\"required\":[\"next\"],\"properties\":{\"next\":{\"$ref\":\"#/$defs/Node\"}}}}}",
                 2, NULL);
    assert_non_null(a);
    int depth = 0;
    const cJSON *n = a;
    while (cJSON_IsObject(n)) {
        n = cJSON_GetObjectItem(n, "next");
        depth++;
    }
    assert_true(cJSON_IsNull(n));
    assert_true(depth >= 2 && depth <= 8);
    cJSON_Delete(a);
    /* the root itself, and references that do not resolve (left as "any value") */
    a = args_for("{\"type\":\"object\",\"required\":[\"me\",\"far\",\"bad\"],\"properties\":{"
                 "\"me\":{\"$ref\":\"#\"},\"far\":{\"$ref\":\"https://x/y.json\"},"
                 "\"bad\":{\"$ref\":\"#/nope/0\"}}}", 3, NULL);
    assert_non_null(a);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(a, "me")));
    assert_non_null(cJSON_GetObjectItem(a, "far"));
    cJSON_Delete(a);
}

/* Numbers and sizes that overflow: arguments stay JSON (no inf; no float-to-int UB). */
static void test_tool_numbers(void **st)
{
    (void)st;
    for (uint64_t idx = 0; idx < 20; idx++) {
        mllm_buf_t raw;
        cJSON *a = args_for("{\"type\":\"object\",\"required\":[\"x\",\"n\",\"l\",\"m\",\"i\"],"
                            "\"properties\":{"
                            "\"x\":{\"type\":\"number\",\"minimum\":-1.7976931348623157e308,"
                            "\"maximum\":1.7976931348623157e308},"
                            "\"n\":{\"type\":\"integer\",\"minimum\":-1e308,\"maximum\":1e308},"
                            "\"l\":{\"type\":\"array\",\"minItems\":1e30,\"maxItems\":1e31,"
                            "\"items\":{\"type\":\"integer\",\"minimum\":-2.5,\"maximum\":-1.5}},"
                            "\"m\":{\"type\":\"array\",\"maxItems\":-1e30},"
                            "\"i\":{\"type\":\"number\",\"minimum\":0.001,\"maximum\":0.004}}}",
                            idx, &raw);
        assert_non_null(a);
        assert_null(strstr(raw.p, "inf"));
        assert_null(strstr(raw.p, "nan"));
        double x = cJSON_GetObjectItem(a, "x")->valuedouble;
        assert_true(fabs(x) <= 9007199254740992.0);
        assert_true(fabs(cJSON_GetObjectItem(a, "n")->valuedouble) <= 9007199254740992.0);
        const cJSON *l = cJSON_GetObjectItem(a, "l");
        assert_int_equal(cJSON_GetArraySize(l), 3);
        assert_int_equal(cJSON_GetArrayItem(l, 0)->valueint, -2); /* the one integer in range */
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a, "m")), 0);
        double i = cJSON_GetObjectItem(a, "i")->valuedouble;
        assert_true(i >= 0.001 && i <= 0.004); /* not rounded out of the range */
        cJSON_Delete(a);
        mllm_buf_free(&raw);
    }
}

/* A schema that expands exponentially (arrays nested six deep around an object of 3,000
 * required properties) and one with a long `required` list: the arguments stay within
 * their budget (and JSON), every required property of a normal-sized object is there. */
static void test_tool_budget(void **st)
{
    (void)st;
    mllm_buf_t s = { 0 };
    mllm_buf_adds(&s, "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":");
    for (int i = 0; i < 6; i++)
        mllm_buf_adds(&s, "{\"type\":\"array\",\"minItems\":3,\"items\":");
    mllm_buf_adds(&s, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 3000; i++)
        mllm_buf_printf(&s, "%s\"k%05d\":{\"type\":\"null\"}", i ? "," : "", i);
    mllm_buf_adds(&s, "},\"required\":[");
    for (int i = 0; i < 3000; i++)
        mllm_buf_printf(&s, "%s\"k%05d\"", i ? "," : "", i);
    mllm_buf_adds(&s, "]}");
    for (int i = 0; i < 6; i++)
        mllm_buf_adds(&s, "}");
    mllm_buf_adds(&s, "}}");
    mllm_buf_t raw;
    cJSON *a = args_for(s.p, 1, &raw);
    assert_non_null(a);
    assert_true(raw.len < 20000); /* 3^6 leaves of 3,000 properties would be 22 MB */
    cJSON_Delete(a);
    mllm_buf_free(&raw);
    mllm_buf_free(&s);
    /* 40 required of 80 properties (the hash-set path): all 40 present */
    mllm_buf_adds(&s, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 80; i++)
        mllm_buf_printf(&s, "%s\"p%d\":{\"type\":\"boolean\"}", i ? "," : "", i);
    mllm_buf_adds(&s, "},\"required\":[");
    for (int i = 0; i < 80; i += 2)
        mllm_buf_printf(&s, "%s\"p%d\"", i ? "," : "", i);
    mllm_buf_adds(&s, "]}");
    for (uint64_t idx = 0; idx < 5; idx++) {
        a = args_for(s.p, idx, NULL);
        assert_non_null(a);
        for (int i = 0; i < 80; i += 2) {
            char k[8];
            snprintf(k, sizeof k, "p%d", i);
            assert_true(cJSON_IsBool(cJSON_GetObjectItem(a, k)));
        }
        assert_true(cJSON_GetArraySize(a) > 40 && cJSON_GetArraySize(a) < 80);
        cJSON_Delete(a);
    }
    mllm_buf_free(&s);
}

/* Every Responses event is one JSON object with its type and the next sequence number. */
static void test_responses_events(void **st)
{
    (void)st;
    mllm_stream_fmt_t f;
    mllm_stream_fmt_init(&f, "gpt-4o", 5, 1700000002);
    mllm_tool_call_t call = { .name = "get", .id = "call_mock1" };
    mllm_buf_adds(&call.args, "{\"a\":1}");
    for (int tool = 0; tool < 2; tool++) {
        mllm_resp_t r = { .f = &f, .model = "gpt-4o", .call = tool ? &call : NULL };
        mllm_buf_t b = { 0 };
        mllm_resp_begin(&b, &r);
        mllm_resp_item_added(&b, &r);
        mllm_resp_delta(&b, &r, "{\"a\"", 4);
        mllm_resp_delta(&b, &r, ":1}", 3);
        mllm_resp_end(&b, &r, "{\"a\":1}", 7, !tool, 10, 2);
        int seq = 0;
        const char *p = b.p;
        char last[64] = "";
        while ((p = strstr(p, "event: "))) {
            const char *nl = strchr(p, '\n');
            const char *end = strstr(nl, "\n\n");
            assert_int_equal(strncmp(nl + 1, "data: ", 6), 0);
            cJSON *j = cJSON_ParseWithLength(nl + 7, (size_t)(end - nl - 7));
            assert_non_null(j);
            assert_int_equal(cJSON_GetObjectItem(j, "sequence_number")->valueint, seq++);
            assert_int_equal(strncmp(p + 7, cJSON_GetObjectItem(j, "type")->valuestring,
                                     (size_t)(nl - p - 7)), 0);
            snprintf(last, sizeof last, "%s", cJSON_GetObjectItem(j, "type")->valuestring);
            if (!strcmp(last, "response.incomplete") || !strcmp(last, "response.completed")) {
                cJSON *resp = cJSON_GetObjectItem(j, "response");
                assert_string_equal(cJSON_GetObjectItem(resp, "status")->valuestring,
                                    tool ? "completed" : "incomplete");
                assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "usage"),
                                                     "total_tokens")->valueint, 12);
                cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "output"), 0);
                assert_string_equal(cJSON_GetObjectItem(item, "type")->valuestring,
                                    tool ? "function_call" : "message");
            }
            cJSON_Delete(j);
            p = end;
        }
        assert_int_equal(seq, tool ? 8 : 10);
        assert_string_equal(last, tool ? "response.completed" : "response.incomplete");
        mllm_buf_free(&b);
    }
    mllm_buf_free(&call.args);
}

/* A content chunk's bytes, in both usage_null settings, against the stream's prefix. */
static void check_content_bytes(mllm_stream_fmt_t *f)
{
    for (int u = 0; u < 2; u++) {
        mllm_stream_fmt_usage_null(f, u);
        mllm_buf_t b = { 0 }, want = { 0 };
        mllm_chunk_content(&b, f, "t\"x", 3);
        mllm_buf_add(&want, f->prefix, f->prefix_len);
        mllm_buf_adds(&want, "{\"index\":0,\"delta\":{\"content\":\"t\\\"x\"},"
                             "\"logprobs\":null,\"finish_reason\":null}");
        mllm_buf_add(&want, f->close, f->close_len);
        assert_int_equal(b.len, want.len);
        assert_memory_equal(b.p, want.p, b.len);
        assert_int_equal(b.p[b.len], 0);
        mllm_buf_free(&b);
        mllm_buf_free(&want);
    }
}

/* A content chunk is built from the stream's id digits, its created time and the part
 * its model shares with every stream of the model (interned; past 16 models a stream's
 * own): the same bytes as the prefix every other frame starts with, then the delta and
 * the tail, with and without "usage":null. 40 models (the table's fallback included),
 * models that need escaping, one of 127+ bytes, each met twice (the shared part). */
static void test_chunk_content_bytes(void **st)
{
    (void)st;
    /* The shared model parts are looked up by the whole name: a model whose name is a
     * prefix of one filed before it ("ct-model-1" after "ct-model-10") gets its own
     * part (a lookup by the shorter name's length took the longer one's). */
    mllm_stream_fmt_t f10a, f10b, f1a, f1b;
    mllm_stream_fmt_init(&f10a, "ct-model-10", 1, 1700000000u);
    mllm_stream_fmt_init(&f10b, "ct-model-10", 2, 1700000001u);
    /* Shared, so the table had room and the lookups below go through it. */
    assert_ptr_equal(f10a.model_part, f10b.model_part);
    mllm_stream_fmt_init(&f1a, "ct-model-1", 3, 1700000002u);
    mllm_stream_fmt_init(&f1b, "ct-model-1", 4, 1700000003u);
    assert_ptr_equal(f1a.model_part, f1b.model_part);
    assert_ptr_not_equal(f1a.model_part, f10a.model_part);
    check_content_bytes(&f10a);
    check_content_bytes(&f10b);
    check_content_bytes(&f1a);
    check_content_bytes(&f1b);

    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[3] = '"';
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 40; i++) {
            char model[64];
            snprintf(model, sizeof model, i % 7 == 3 ? "m\"%d\\\n" : "model-%d", i);
            const char *mo = i == 39 ? big : model;
            mllm_stream_fmt_t f;
            uint64_t created = i == 5 ? 18446744073709551615ull : 1700000000u + (uint64_t)i;
            mllm_stream_fmt_init(&f, mo, (uint64_t)i * 0x9e3779b97f4a7c15ull, created);
            check_content_bytes(&f);
        }
    }
}

/* mllm_stream_fmt_init out of memory leaves no prefix and no model part (there is no
 * allocation-failure hook, so the test sets that state by hand, as the init's out-of-
 * memory branch does): every chunk then fails its buffer instead of writing a frame
 * without "data: {" or "choices":[ (the content chunk wrote id and created, then the
 * delta). */
static void test_chunk_fmt_oom(void **st)
{
    (void)st;
    mllm_stream_fmt_t f;
    mllm_stream_fmt_init(&f, "oom-model", 7, 1700000000u);
    f.prefix_len = 0;
    f.prefix[0] = 0;
    f.model_part = f.prefix;
    f.model_part_len = 0;
    mllm_tool_call_t call = { 0 };
    snprintf(call.id, sizeof call.id, "call_x");
    snprintf(call.name, sizeof call.name, "f");
    for (int kind = 0; kind < 6; kind++) {
        mllm_buf_t b = { 0 };
        switch (kind) {
        case 0: mllm_chunk_content(&b, &f, "hi", 2); break;
        case 1: mllm_chunk_role(&b, &f); break;
        case 2: mllm_chunk_finish(&b, &f, "stop"); break;
        case 3: mllm_chunk_usage(&b, &f, "oom-model", 3, 4); break;
        case 4: mllm_chunk_tool_start(&b, &f, &call); break;
        default: mllm_chunk_tool_args(&b, &f, "{}", 2); break;
        }
        if (!b.oom)
            fail_msg("chunk kind %d without a prefix: no oom, %zu bytes '%.*s'", kind, b.len,
                     (int)b.len, b.p ? b.p : "");
        mllm_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_token_rule),
        cmocka_unit_test(test_responses_parse),
        cmocka_unit_test(test_error_utf8),
        cmocka_unit_test(test_tool_rule),
        cmocka_unit_test(test_tool_refs),
        cmocka_unit_test(test_tool_numbers),
        cmocka_unit_test(test_tool_budget),
        cmocka_unit_test(test_responses_events),
        cmocka_unit_test(test_chat_ok),
        cmocka_unit_test(test_chat_errors),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_unsupported_and_out_of_range),
        cmocka_unit_test(test_anthropic_wording),
        cmocka_unit_test(test_anthropic_shared_wording),
        cmocka_unit_test(test_anthropic_body_errors),
        cmocka_unit_test(test_anthropic_error_position_chars),
        cmocka_unit_test(test_anthropic_body_errors_chat_unchanged),
        cmocka_unit_test(test_bad_escape_not_utf8_error),
        cmocka_unit_test(test_anthropic_tool_limits),
        cmocka_unit_test(test_anthropic_tool_choice_object),
        cmocka_unit_test(test_anthropic_empty_content),
        cmocka_unit_test(test_logprobs_n_parse),
        cmocka_unit_test(test_logprob_entry),
        cmocka_unit_test(test_choice_frames),
        cmocka_unit_test(test_structured_output),
        cmocka_unit_test(test_stop_parse),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_chunk_content_bytes),
        cmocka_unit_test(test_chunk_fmt_oom),
        cmocka_unit_test(test_anthropic_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
