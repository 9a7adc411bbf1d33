/*
 * mllm_timing.c - profiles, generator and schedules. See mllm_timing.h for the model
 * and mock-llm/README.md for where each number comes from.
 */
#include "mllm_timing.h"

#include <math.h>
#include <string.h>

/* Output length of chat answers: log-normal, median 150 tokens, sigma 0.9, so the mean
 * is ~225 (ShareGPT responses average ~200 tokens; agentic traces run far longer, which
 * the cap at 4096 and max_tokens bound). */
#define CHAT_LEN 150.0, 0.9, 1, 4096

const mllm_profile_t mllm_profiles[] = {
    { "gpt-4o", "TTFT ~0.4 s, ~85 tok/s, 1 token per event (Artificial Analysis)",
      0.40, 0.40, 0.00005, 85.0, 0.15, 0.25, 0.005, 5.0, 0.5, CHAT_LEN, 1, 1 },
    { "claude-sonnet", "TTFT ~0.8 s, ~65 tok/s, ~3 tokens per event",
      0.80, 0.35, 0.00005, 65.0, 0.20, 0.25, 0.005, 5.0, 0.5, CHAT_LEN, 2, 4 },
    { "gemini-flash", "TTFT ~0.35 s, ~190 tok/s, bursty 10-40 tokens per event",
      0.35, 0.50, 0.00003, 190.0, 0.20, 0.30, 0.005, 5.0, 0.5, CHAT_LEN, 10, 40 },
    { "vllm-8b-h100", "TTFT ~90 ms + 0.25 ms per prompt token, ~12 ms between tokens, 1% stalls",
      0.09, 0.25, 0.00025, 1.0 / 0.012, 0.10, 0.15, 0.01, 5.0, 0.5, CHAT_LEN, 1, 1 },
    { "fixed", "TTFT 200 ms, 50 tok/s, 32 tokens, 1 per event, no randomness (tests)",
      0.20, 0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 1.0, 0.0, 32.0, 0.0, 32, 32, 1, 1 },
    { NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
};

const mllm_profile_t *mllm_profile_find(const char *name)
{
    for (const mllm_profile_t *p = mllm_profiles; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* ---- generator ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void mllm_rng_seed(mllm_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ splitmix64(&stream);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t mllm_rng_next(mllm_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mllm_rng_uniform(mllm_rng_t *r)
{
    return (double)(mllm_rng_next(r) >> 11) * 0x1.0p-53;
}

double mllm_rng_normal(mllm_rng_t *r)
{
    double u1 = mllm_rng_uniform(r), u2 = mllm_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* base * exp(sigma * Z); with sigma 0 no draw is made, so `fixed` stays exact and the
 * sequence of draws of the other parameters does not depend on it. */
static double lognormal(mllm_rng_t *r, double base, double sigma)
{
    return sigma > 0 ? base * exp(sigma * mllm_rng_normal(r)) : base;
}

static uint64_t secs_to_ns(double s)
{
    if (!(s > 0))
        return 0;
    if (s > 1e9)
        s = 1e9;
    return (uint64_t)(s * 1e9 + 0.5);
}

void mllm_schedule_init(mllm_schedule_t *s, const mllm_profile_t *p, uint64_t seed,
                        uint64_t request_index, int prompt_tokens, int max_tokens,
                        int tokens_per_event, double scale)
{
    memset(s, 0, sizeof *s);
    mllm_rng_seed(&s->rng, seed, request_index);
    s->p = p;
    s->scale = scale;
    s->tpe_override = tokens_per_event;
    double ttft = lognormal(&s->rng, p->ttft_s, p->ttft_sigma) +
                  p->ttft_per_prompt_token_s * (prompt_tokens > 0 ? prompt_tokens : 0);
    double speed = lognormal(&s->rng, p->speed_tps, p->speed_sigma);
    s->gap_mean_s = speed > 0 ? 1.0 / speed : 0;
    double len = lognormal(&s->rng, p->len_median, p->len_sigma);
    long n = lround(len);
    if (n < p->len_min)
        n = p->len_min;
    if (n > p->len_max)
        n = p->len_max;
    if (max_tokens > 0 && n > max_tokens) {
        n = max_tokens;
        s->capped = 1;
    }
    s->total = (int)n;
    s->ttft_ns = secs_to_ns(ttft * scale);
    s->t_ns = 0;
}

void mllm_schedule_set_total(mllm_schedule_t *s, int total)
{
    s->total = total > 0 ? total : 1;
    s->capped = 0;
}

static double one_gap(mllm_schedule_t *s)
{
    const mllm_profile_t *p = s->p;
    if (p->stall_p > 0 && mllm_rng_uniform(&s->rng) < p->stall_p)
        return s->gap_mean_s * lognormal(&s->rng, p->stall_median, p->stall_sigma);
    return lognormal(&s->rng, s->gap_mean_s, p->tok_sigma);
}

int mllm_schedule_next(mllm_schedule_t *s, uint64_t *offset_ns, int *ntokens)
{
    if (s->emitted >= s->total)
        return 0;
    const mllm_profile_t *p = s->p;
    int k = s->tpe_override;
    if (k <= 0) {
        k = p->tpe_min;
        if (p->tpe_max > p->tpe_min)
            k += (int)(mllm_rng_uniform(&s->rng) * (p->tpe_max - p->tpe_min + 1));
    }
    if (k > s->total - s->emitted)
        k = s->total - s->emitted;
    /* The event is due when its last token is: the first token comes at TTFT, every
     * further token one gap later. Sums are kept in seconds-as-double per event and
     * added to an integer offset, so a million-token stream does not drift by rounding. */
    double d = 0;
    int first = s->emitted == 0;
    for (int i = first ? 1 : 0; i < k; i++)
        d += one_gap(s);
    uint64_t add = secs_to_ns(d * s->scale);
    s->t_ns = (first ? s->ttft_ns : s->t_ns) + add;
    s->emitted += k;
    *offset_ns = s->t_ns;
    *ntokens = k;
    return 1;
}

static const char *const words[] = {
    "the", "a", "fiber", "thread", "stream", "token", "server", "is", "of", "and",
    "to", "in", "that", "it", "for", "on", "with", "as", "we", "this", "by", "an",
    "model", "request", "time", "each", "which", "can", "one", "more", "than", "not",
    "cost", "switch", "stack", "core", "memory", "event", "loop", "wait", "data", "fast",
    "answer", "question", "because", "measured", "latency", "throughput", "kernel", "user",
    "space", "context", "schedule", "deadline", "first", "next", "every", "small", "large",
    "number", "result", "benchmark", "runtime", "mock",
};
#define NWORDS (sizeof words / sizeof words[0])

const char *mllm_token_text_n(mllm_rng_t *r, int first, size_t *len)
{
    /* Space-prefixed copies of the words, their lengths in the last byte, built once
     * (single-threaded callers only race on identical writes, which is harmless). */
    static char spaced[NWORDS][24];
    static int ready;
    if (!ready) {
        for (size_t i = 0; i < NWORDS; i++) {
            spaced[i][0] = ' ';
            strcpy(spaced[i] + 1, words[i]);
            spaced[i][23] = (char)(strlen(words[i]) + 1); /* every word is < 22 bytes */
        }
        ready = 1;
    }
    uint64_t x = mllm_rng_next(r);
    unsigned roll = (unsigned)(x & 63);
    size_t w = (size_t)((x >> 8) % NWORDS);
    if (first) {
        *len = (size_t)spaced[w][23] - 1;
        return spaced[w] + 1; /* the word itself */
    }
    if (roll == 0) {
        *len = 3;
        return ".\n\n";
    }
    if (roll < 6) {
        *len = 1;
        return roll < 4 ? "," : ".";
    }
    *len = (size_t)spaced[w][23];
    return spaced[w];
}

const char *mllm_token_text(mllm_rng_t *r, int first)
{
    size_t n;
    return mllm_token_text_n(r, first, &n);
}
