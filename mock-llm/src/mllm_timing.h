/*
 * mllm_timing.h - the timing engine of mock-llm: named profiles fitted to published
 * measurements (mock-llm/README.md cites them), a small seeded generator, and the
 * per-request schedule of token events at absolute deadlines.
 *
 * Nothing here touches the clock or the network: a schedule is a pure function of
 * (profile, seed, request index, prompt tokens, max tokens), which is what makes two
 * runs serve identical schedules and what the unit tests check.
 */
#ifndef MLLM_TIMING_H
#define MLLM_TIMING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* xoshiro256** state. */
typedef struct mllm_rng {
    uint64_t s[4];
} mllm_rng_t;

/* Seeds r from (seed, stream): splitmix64 over both, so neighbouring request indexes
 * give unrelated sequences. Never fails. */
void mllm_rng_seed(mllm_rng_t *r, uint64_t seed, uint64_t stream);

/* Next 64 random bits. */
uint64_t mllm_rng_next(mllm_rng_t *r);

/* Uniform in [0, 1). */
double mllm_rng_uniform(mllm_rng_t *r);

/* Standard normal (Box-Muller; one value per call, the second is dropped for
 * simplicity: the generator is far from the hot path's cost). */
double mllm_rng_normal(mllm_rng_t *r);

/*
 * A timing profile. Times are seconds. Each request draws:
 *   TTFT  = ttft_s * exp(ttft_sigma * Z) + ttft_per_prompt_token_s * prompt_tokens
 *   speed = speed_tps * exp(speed_sigma * Z)                (tokens per second)
 *   each gap = (1 / speed) * exp(tok_sigma * Z), replaced with probability stall_p by
 *              (1 / speed) * stall_median * exp(stall_sigma * Z)
 *   length = round(len_median * exp(len_sigma * Z)) clamped to [len_min, len_max]
 *   tokens per event: uniform in [tpe_min, tpe_max]
 * A sigma of 0 makes that draw constant (the `fixed` profile uses only zeros).
 */
typedef struct mllm_profile {
    const char *name;
    const char *about;          /* one line for --help */
    double ttft_s, ttft_sigma, ttft_per_prompt_token_s;
    double speed_tps, speed_sigma, tok_sigma;
    double stall_p, stall_median, stall_sigma;
    double len_median, len_sigma;
    int    len_min, len_max;
    int    tpe_min, tpe_max;
} mllm_profile_t;

/* The built-in profiles, terminated by an entry with name == NULL. */
extern const mllm_profile_t mllm_profiles[];

/* The profile called name, or NULL. */
const mllm_profile_t *mllm_profile_find(const char *name);

/* One request's schedule, generated lazily (a stream may run for millions of tokens). */
typedef struct mllm_schedule {
    mllm_rng_t rng;
    const mllm_profile_t *p;
    double   scale;          /* time scale: every delay is multiplied by it */
    double   gap_mean_s;     /* 1 / this request's speed */
    uint64_t t_ns;           /* offset of the last scheduled event from the start */
    uint64_t ttft_ns;        /* offset of the first event */
    int      total;          /* tokens this request will produce */
    int      emitted;        /* tokens handed out by mllm_schedule_next so far */
    int      tpe_override;   /* >0: exactly this many tokens per event */
    int      capped;         /* the length was cut by max_tokens: finish_reason "length" */
} mllm_schedule_t;

/*
 * Draws a request's schedule. max_tokens <= 0 means no cap; when the drawn length
 * exceeds the cap the schedule is cut there and `capped` is set. tokens_per_event > 0
 * overrides the profile's chunking. scale multiplies every delay (0 = all at once).
 */
void mllm_schedule_init(mllm_schedule_t *s, const mllm_profile_t *p, uint64_t seed,
                        uint64_t request_index, int prompt_tokens, int max_tokens,
                        int tokens_per_event, double scale);

/* Gives the schedule exactly `total` tokens (>= 1) instead of the drawn length, keeping
 * its TTFT and speed: for an answer whose length is given, like a tool call's
 * arguments. Call right after mllm_schedule_init. */
void mllm_schedule_set_total(mllm_schedule_t *s, int total);

/*
 * The next event: sets *offset_ns (from the request's start; absolute deadline = start +
 * offset) and *ntokens (>= 1). Returns 1, or 0 when every token has been handed out.
 */
int mllm_schedule_next(mllm_schedule_t *s, uint64_t *offset_ns, int *ntokens);

/* A token's text, deterministic in (rng): a word with a leading space (none for the
 * first token of a response), sometimes punctuation or a paragraph break. Returns a
 * static string. */
const char *mllm_token_text(mllm_rng_t *r, int first);

/* mllm_token_text() with the text's length in *len: the stream path's per-token strlen
 * saved. The same draw and text. */
const char *mllm_token_text_n(mllm_rng_t *r, int first, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_TIMING_H */
