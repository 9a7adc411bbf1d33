/*
 * mllm_api.h - the API surface of mock-llm without the network: request bodies parsed
 * and validated (OpenAI Chat Completions, Anthropic Messages), and every response body
 * and stream frame formatted, byte for byte what the official SDKs parse.
 */
#ifndef MLLM_API_H
#define MLLM_API_H

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
void mllm_buf_reserve(mllm_buf_t *b, size_t extra);
void mllm_buf_add(mllm_buf_t *b, const void *p, size_t n);
void mllm_buf_adds(mllm_buf_t *b, const char *s);
void mllm_buf_printf(mllm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the inside of a JSON string (quotes not included), escaped. */
void mllm_buf_json_str(mllm_buf_t *b, const char *s, size_t n);

/* An API error: HTTP status, OpenAI type/code/param, message. */
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

/* Both APIs, after validation. */
typedef struct mllm_gen_req {
    char model[128];
    int  stream;
    int  include_usage;  /* stream_options.include_usage */
    int  max_tokens;     /* 0 = no cap */
    int  prompt_tokens;  /* estimated: ~4 characters per token plus per-message overhead */
} mllm_gen_req_t;

/* Deepest JSON nesting accepted. cJSON recurses per level and a connection fiber has a
 * small stack, so deeper bodies are refused before cJSON sees them. */
#define MLLM_JSON_MAX_DEPTH 64

/*
 * Validates a Chat Completions body: model (string), messages (non-empty array of
 * objects with a string role and string-or-parts content), stream, stream_options,
 * max_tokens / max_completion_tokens (positive integers), n (1 only), temperature
 * (0..2). Returns 0 with out filled, or -1 with err (status 400) filled.
 */
int mllm_parse_chat(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err);

/* Validates an Anthropic Messages body: model, max_tokens (required, positive),
 * messages, optional system and stream. Returns 0, or -1 with err filled. */
int mllm_parse_messages(const char *body, size_t len, mllm_gen_req_t *out, mllm_err_t *err);

/* {"error":{"message":...,"type":...,"param":...,"code":...}} */
void mllm_fmt_error_openai(mllm_buf_t *b, const mllm_err_t *e);
/* {"type":"error","error":{"type":...,"message":...}} with the Anthropic type for the status */
void mllm_fmt_error_anthropic(mllm_buf_t *b, const mllm_err_t *e);

/* The per-response constants of a stream, formatted once: every chunk repeats them. */
typedef struct mllm_stream_fmt {
    char     id[48];
    uint64_t created;
    char     prefix[1024]; /* data: {"id":..,"created":..,"model":..,"choices":[ ; a 127-byte model id
                           * escapes to at most 762 bytes */
    size_t   prefix_len;
} mllm_stream_fmt_t;

/* Sets up f for one response. id_num makes the id (unique per request). */
void mllm_stream_fmt_init(mllm_stream_fmt_t *f, const char *model, uint64_t id_num,
                          uint64_t created);

/* OpenAI chunks, each a complete `data: {...}\n\n` frame. */
void mllm_chunk_role(mllm_buf_t *b, const mllm_stream_fmt_t *f);
void mllm_chunk_content(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *text, size_t n);
void mllm_chunk_finish(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *reason);
void mllm_chunk_usage(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                      int prompt, int completion);
void mllm_chunk_done(mllm_buf_t *b);
/* The mid-stream error frame: data: {"error":{...}} */
void mllm_chunk_error(mllm_buf_t *b, const mllm_err_t *e);

/* A non-streaming chat.completion object. */
void mllm_fmt_completion(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                         const char *text, size_t n, const char *finish, int prompt,
                         int completion);

/* Anthropic events, each `event: <type>\ndata: {...}\n\n`. */
void mllm_anth_message_start(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                             int prompt);
void mllm_anth_block_start(mllm_buf_t *b);
void mllm_anth_ping(mllm_buf_t *b);
void mllm_anth_delta(mllm_buf_t *b, const char *text, size_t n);
void mllm_anth_block_stop(mllm_buf_t *b);
void mllm_anth_message_delta(mllm_buf_t *b, const char *stop_reason, int output_tokens);
void mllm_anth_message_stop(mllm_buf_t *b);
void mllm_anth_error(mllm_buf_t *b, const mllm_err_t *e);
/* A non-streaming Anthropic message object. */
void mllm_fmt_anth_message(mllm_buf_t *b, const mllm_stream_fmt_t *f, const char *model,
                           const char *text, size_t n, const char *stop_reason, int prompt,
                           int completion);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_API_H */
