/*
 * mllm_api.h - the API surface of mock-llm without the network: request bodies parsed
 * and validated (OpenAI Chat Completions and Responses, Anthropic Messages), tool calls
 * drawn from the request's tool definitions, and every response body and stream frame
 * formatted, byte for byte what the official SDKs parse.
 */
#ifndef MLLM_API_H
#define MLLM_API_H

#include "mllm_timing.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A growable byte buffer. Appends never fail silently: on allocation failure the buffer
 * is marked `oom`, further appends are dropped, and the caller checks once at the end. */
typedef struct mllm_buf {
    char  *p;
    size_t len, cap;
    int    oom;
} mllm_buf_t;

void mllm_buf_free(mllm_buf_t *b);
/* Grows b to hold `extra` more bytes (the slow path of mllm_buf_reserve). */
void mllm_buf_grow(mllm_buf_t *b, size_t extra);
/* Makes room for `extra` more bytes, or sets oom. Inline: every append of every stream
 * event checks its room, and the check alone is what nearly every call does. */
static inline void mllm_buf_reserve(mllm_buf_t *b, size_t extra)
{
    if (!b->oom && b->cap - b->len < extra)
        mllm_buf_grow(b, extra);
}
void mllm_buf_add(mllm_buf_t *b, const void *p, size_t n);
void mllm_buf_adds(mllm_buf_t *b, const char *s);
void mllm_buf_printf(mllm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the inside of a JSON string (quotes not included), escaped. */
void mllm_buf_json_str(mllm_buf_t *b, const char *s, size_t n);

/* The length of s (NUL-terminated) cut to at most max bytes at a UTF-8 character
 * boundary: for messages that quote part of a request ("%.*s"). */
size_t mllm_utf8_cut(const char *s, size_t max);

/* An API error: HTTP status, OpenAI type/code/param, message. Formatted, a message
 * that quotes request bytes is always UTF-8: cut at a character boundary when it is
 * longer than `message`, and anything not well-formed UTF-8 written as U+FFFD. */
typedef struct mllm_err {
    int         status;
    const char *type;  /* invalid_request_error, server_error, ... */
    const char *code;  /* NULL -> JSON null */
    const char *param; /* NULL -> JSON null */
    char        message[256];
} mllm_err_t;

/* Fills e. Returns -1, so validators can `return mllm_err_set(...)`. */
int mllm_err_set(mllm_err_t *e, int status, const char *type, const char *code,
                 const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

enum { MLLM_API_CHAT, MLLM_API_MESSAGES, MLLM_API_RESPONSES };

/* The prompt-size rule (mllm_api.c): usage tokens are bytes / 4, rounded up, plus 3 per
 * message and 3 for the reply; a tool call's arguments stream at 4 bytes per token. */
#define MLLM_BYTES_PER_TOKEN 4
enum { MLLM_TOOLS_AUTO, MLLM_TOOLS_NONE, MLLM_TOOLS_REQUIRED, MLLM_TOOLS_NAMED };
/* What a text answer must be: prose, any JSON object (json_object), or JSON valid
 * against the request's schema (json_schema: structured outputs). */
enum { MLLM_JSON_NONE, MLLM_JSON_OBJECT, MLLM_JSON_SCHEMA };

struct cJSON;

/* Every API, after validation. */
typedef struct mllm_gen_req {
    int  api;            /* MLLM_API_* */
    char model[128];
    int  stream;
    int  include_usage;  /* stream_options.include_usage (always on for the others) */
    int  max_tokens;     /* max_tokens / max_completion_tokens / max_output_tokens; 0 = none */
    int  prompt_tokens;  /* estimated from prompt_bytes, see mllm_api.c */
    long prompt_bytes;   /* bytes of everything the model reads (contents, tools, ...) */
    /* tools: function tools normalised to [{"name", "parameters"}]; NULL when none */
    struct cJSON *tools;
    int  ntools;
    int  tool_choice;       /* MLLM_TOOLS_* */
    int  named_tool;        /* index in tools when MLLM_TOOLS_NAMED */
    int  after_tool_result; /* the last turn is a tool result: answer it with text */
    /* structured output: chat's response_format, the Responses API's text.format */
    int  json_mode;         /* MLLM_JSON_* */
    struct cJSON *json_schema; /* MLLM_JSON_SCHEMA: the schema (detached); else NULL */
    /* stop sequences: chat's stop, Anthropic's stop_sequences, as a cJSON array of
     * strings (detached); NULL when none */
    struct cJSON *stop;
    /* Responses: the request's fields its response object repeats (instructions,
     * tools, tool_choice, temperature, top_p, max_output_tokens, metadata, ...), as JSON
     * object members; empty for the other APIs */
    mllm_buf_t echo;
    /* chat only: n choices (1..MLLM_MAX_CHOICES; 1 for the other APIs), logprobs: true,
     * top_logprobs (0..MLLM_MAX_TOP_LOGPROBS) */
    int  n;
    int  logprobs;
    int  top_logprobs;
} mllm_gen_req_t;

/* OpenAI's limits: n is at most 128, top_logprobs at most 20. */
#define MLLM_MAX_CHOICES 128
#define MLLM_MAX_TOP_LOGPROBS 20

/* Frees what a parsed request holds (its tools, its echo). Safe on a zeroed or failed
 * request. */
void mllm_gen_req_free(mllm_gen_req_t *r);

/* Deepest JSON nesting accepted. cJSON recurses per level and a connection fiber has a
 * small stack, so deeper bodies are refused before cJSON sees them. */
#define MLLM_JSON_MAX_DEPTH 64

/*
 * Validates a Chat Completions body: model (string), messages (non-empty array of
 * objects with a string role and string-or-parts content; assistant tool_calls; tool
 * messages with tool_call_id), stream, stream_options, max_tokens /
 * max_completion_tokens (positive integers), n (1..128), logprobs / top_logprobs (0..20),
 * temperature (0..2), tools and tool_choice. Returns 0 with out filled (free it with mllm_gen_req_free), or -1 with
 * err (status 400) filled.
 */
int mllm_parse_chat(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err);

/* Validates an Anthropic Messages body: model, max_tokens (required, positive),
 * messages (text, tool_use and tool_result blocks), optional system, stream, tools and
 * tool_choice. Returns 0, or -1 with err filled. */
int mllm_parse_messages(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err);

/* Validates an Anthropic count_tokens body (/v1/messages/count_tokens): a Messages body
 * without max_tokens. out->prompt_tokens is the answer (the same rule as a message's
 * input_tokens). Returns 0, or -1 with err filled. */
int mllm_parse_count_tokens(const char *body, size_t len, mllm_gen_req_t *out,
                            mllm_err_t *err);

/* Validates a Responses API body: model, input (a string or a non-empty array of
 * message, function_call and function_call_output items), instructions,
 * max_output_tokens, stream, temperature, top_p, metadata, parallel_tool_calls, tools
 * and tool_choice; previous_response_id is refused (no stored state). Fills out->echo.
 * Returns 0, or -1 with err filled. */
int mllm_parse_responses(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err);

/* A tool call the mock answers with: the function's name, a unique id, and arguments
 * (compact JSON, valid against the simple JSON-schema subset mllm_tool_call() reads). */
typedef struct mllm_tool_call {
    char       name[65];
    char       id[40];   /* call_mock<hex> (chat, responses) */
    mllm_buf_t args;
} mllm_tool_call_t;

/*
 * The seeded tool rule. Returns 1 and fills call when the answer is a tool call, 0 when
 * it is text. With tool_choice "none", no tools, or a last turn that is a tool result
 * (under "auto"), it is text. "required" and a named function always call (the named
 * one, or a tool drawn uniformly from rng); "auto" calls with probability `rate` (a
 * draw from rng), a tool drawn uniformly. Arguments are built from the tool's
 * parameters schema with values from rng: every required property and, by a draw, each
 * optional one; enum/const values; string, integer (within minimum/maximum), number,
 * boolean, null, arrays (minItems or 1-2 items) and nested objects; anything else "mock".
 * id_num makes the call id. Free call->args with mllm_buf_free.
 */
int mllm_tool_call(const mllm_gen_req_t *r, mllm_rng_t *rng, double rate, uint64_t id_num,
                   mllm_tool_call_t *call);

/*
 * The text of a structured-output answer (r->json_mode not MLLM_JSON_NONE) into out:
 * JSON built from r->json_schema by the same rule as a tool call's arguments (required
 * properties, enums, ranges, anyOf, $ref ...), or for json_object an object with one
 * string member. Always a JSON object, whatever the schema (structured outputs' root
 * is one). Returns 1 when out holds the text, 0 when the mode is none. Free out with
 * mllm_buf_free (out->oom on allocation failure).
 */
int mllm_json_answer(const mllm_gen_req_t *r, mllm_rng_t *rng, mllm_buf_t *out);

/* {"error":{"message":...,"type":...,"param":...,"code":...}} */
void mllm_fmt_error_openai(mllm_buf_t *b, const mllm_err_t *e);
/* {"type":"error","error":{"type":...,"message":...}} with the Anthropic type for the status */
void mllm_fmt_error_anthropic(mllm_buf_t *b, const mllm_err_t *e);

/* The per-response constants of a stream, formatted once: every chunk repeats them.
 * A content chunk - the one frame per event - reads only the first cache line: the
 * stream's own bytes (its id's hex digits, its created time) and a pointer to the part
 * every stream of its model shares (from ,"model": to "choices":[, interned, so it stays
 * in cache); the rest of the chunk is constant text. With 10,000 streams the per-stream
 * prefix and tail it copied before (four lines) were ~3 last-level misses per event.
 * The other frames, once per stream, copy prefix. Past 16 models model_part points into
 * this struct's own prefix: it is not moved after mllm_stream_fmt_init. */
typedef struct mllm_stream_fmt {
    const char *model_part;    /* ,"model":"..","system_fingerprint":..,"choices":[ */
    uint32_t    model_part_len;
    uint8_t     created_len;
    uint8_t     usage_null;    /* "usage":null in every chunk (mllm_stream_fmt_usage_null) */
    char        id_hex[16];    /* the id's 16 hex digits */
    char        created_digits[24];
    size_t      prefix_len;
    const char *close;         /* ]}\n\n, or ],"usage":null}\n\n */
    size_t      close_len;
    char        prefix[1024]; /* data: {"id":..,"created":..,"model":..,"choices":[ ; a 127-byte model id
                               * escapes to at most 762 bytes */
    char        id[48];
    uint64_t    created;
} mllm_stream_fmt_t;

/* Sets up f for one response. id_num makes the id (unique per request). */
void mllm_stream_fmt_init(mllm_stream_fmt_t *f, const char *model, uint64_t id_num,
                          uint64_t created);

/* on: every chunk before the usage chunk carries "usage": null, as OpenAI's chunks do
 * with stream_options.include_usage (off after mllm_stream_fmt_init). */
void mllm_stream_fmt_usage_null(mllm_stream_fmt_t *f, int on);

/* OpenAI chunks, each a complete `data: {...}\n\n` frame. */
void mllm_chunk_role(mllm_buf_t *b, const mllm_stream_fmt_t *f);
void mllm_chunk_content(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *text, size_t n);
void mllm_chunk_finish(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *reason);
void mllm_chunk_usage(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                      int prompt, int completion);
void mllm_chunk_done(mllm_buf_t *b);
/* The mid-stream error frame: data: {"error":{...}} */
void mllm_chunk_error(mllm_buf_t *b, const mllm_err_t *e);

/* Tool-call chunks: the first (role and the call's index, id, type, name, empty
 * arguments), then argument fragments; finish with mllm_chunk_finish(.., "tool_calls"). */
void mllm_chunk_tool_start(mllm_buf_t *b, const mllm_stream_fmt_t *f,
                           const mllm_tool_call_t *call);
void mllm_chunk_tool_args(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *frag,
                          size_t n);

/* A non-streaming chat.completion object: the text, or (call != NULL) a message with
 * content null and the call in tool_calls. */
void mllm_fmt_completion(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                         const char *text, size_t n, const mllm_tool_call_t *call,
                         const char *finish, int prompt, int completion);

/*
 * n > 1 and logprobs (chat, text answers). One token's entry of logprobs.content:
 * {"token","logprob","bytes","top_logprobs":[...]}, its values drawn from r: the chosen
 * token's probability in [0.5, 1), then top - 1 other tokens (drawn as the text is, with
 * the same `first` rule) sharing the rest, strictly decreasing; top_logprobs lists the
 * chosen token first. bytes are the token's UTF-8 bytes.
 */
void mllm_logprob_entry(mllm_buf_t *b, mllm_rng_t *r, const char *tok, size_t len, int first,
                        int top);
/* Chunks of choice `index`: its role chunk, a content chunk whose logprobs is
 * {"content":[lp],"refusal":null} (lp: comma-separated entries) or null (lp NULL), and
 * its finish chunk. */
void mllm_chunk_role_i(mllm_buf_t *b, const mllm_stream_fmt_t *f, int index);
void mllm_chunk_choice(mllm_buf_t *b, const mllm_stream_fmt_t *f, int index, const char *text,
                       size_t n, const char *lp, size_t lp_len);
void mllm_chunk_finish_i(mllm_buf_t *b, const mllm_stream_fmt_t *f, int index,
                         const char *reason);
/* A chat.completion object with several text choices: the head (up to "choices":[), one
 * choice per index (logprobs as for mllm_chunk_choice), then usage. */
void mllm_fmt_completion_head(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model);
void mllm_fmt_completion_choice(mllm_buf_t *b, int index, const char *text, size_t n,
                                const char *lp, size_t lp_len, const char *finish);
void mllm_fmt_completion_tail(mllm_buf_t *b, int prompt, int completion);

/* Anthropic events, each `event: <type>\ndata: {...}\n\n`. */
void mllm_anth_message_start(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                             int prompt);
void mllm_anth_block_start(mllm_buf_t *b);
void mllm_anth_ping(mllm_buf_t *b);
void mllm_anth_delta(mllm_buf_t *b, const char *text, size_t n);
void mllm_anth_block_stop(mllm_buf_t *b);
/* stop_sequence: the one that ended the answer (stop_reason "stop_sequence"), or NULL */
void mllm_anth_message_delta(mllm_buf_t *b, const char *stop_reason, const char *stop_sequence,
                             int output_tokens);
void mllm_anth_message_stop(mllm_buf_t *b);
void mllm_anth_error(mllm_buf_t *b, const mllm_err_t *e);
/* A tool_use block at index 0 (input {} at the start), and its input_json_delta
 * fragments; then mllm_anth_block_stop and stop_reason "tool_use". */
void mllm_anth_tool_block_start(mllm_buf_t *b, const mllm_tool_call_t *call);
void mllm_anth_input_delta(mllm_buf_t *b, const char *frag, size_t n);
/* A non-streaming Anthropic message object: one text block, or (call != NULL) one
 * tool_use block. */
void mllm_fmt_anth_message(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                           const char *text, size_t n, const mllm_tool_call_t *call,
                           const char *stop_reason, const char *stop_sequence, int prompt,
                           int completion);

/*
 * The Responses API. One output item: a message with one output_text part, or (call !=
 * NULL) a function_call. Streamed as `event: <type>\ndata: {...}\n\n` frames, each with
 * the next sequence_number:
 *   response.created, response.in_progress                       (mllm_resp_begin)
 *   response.output_item.added [, response.content_part.added]   (mllm_resp_item_added)
 *   response.output_text.delta | response.function_call_arguments.delta ... (mllm_resp_delta)
 *   response.output_text.done, response.content_part.done | response.function_call_
 *   arguments.done, response.output_item.done, then response.completed, or
 *   response.incomplete when max_output_tokens cut the answer     (mllm_resp_end)
 */
typedef struct mllm_resp {
    const mllm_stream_fmt_t *f;
    const char              *model;
    const mllm_tool_call_t  *call;      /* NULL: a text message */
    const char              *echo;      /* mllm_gen_req_t.echo: the request's fields the
                                         * object repeats; NULL: all at their defaults */
    size_t                   echo_len;
    int                      seq;       /* the next sequence_number */
} mllm_resp_t;

void mllm_resp_begin(mllm_buf_t *b, mllm_resp_t *r);
void mllm_resp_item_added(mllm_buf_t *b, mllm_resp_t *r);
void mllm_resp_delta(mllm_buf_t *b, mllm_resp_t *r, const char *frag, size_t n);
/* full: the whole text (or the call's arguments); capped: max_output_tokens cut it. */
void mllm_resp_end(mllm_buf_t *b, mllm_resp_t *r, const char *full, size_t n, int capped,
                   int prompt, int completion);
/* An error event mid-stream ({"type":"error","code","message","param","sequence_number"}). */
void mllm_resp_error(mllm_buf_t *b, mllm_resp_t *r, const mllm_err_t *e);
/* The whole non-streaming response object. */
void mllm_fmt_response(mllm_buf_t *b, mllm_resp_t *r, const char *full, size_t n,
                       int capped, int prompt, int completion);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_API_H */
