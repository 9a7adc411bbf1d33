/*
 * mllm_route.c - the API layer on a connection: routes, request validation (through
 * mllm_api.c), and every response, streamed on the request's schedule (mllm_timing.c).
 *
 * A streaming response is a loop over the request's schedule: sleep until the next
 * event's absolute deadline (start + TTFT + the sum of the gaps), then write every event
 * that is due by now in one write, and record how late each was. Sleeping to absolute
 * deadlines means a late wake-up is not carried into the next token: the schedule never
 * drifts, late events are coalesced instead. While the waits are plain sleeps (short
 * gaps, nothing pending to write), the events are emitted by the timer wheel's ticker
 * itself and the stream's fiber stays parked (stream_fire): the same batch code, the
 * same bytes, without a context switch and the fiber's stack per event.
 */
#define _GNU_SOURCE
#include "mllm_route.h"

#include "mllm_metrics.h"
#include "mllm_wheel.h"

#include <cjson/cJSON.h>
#include <fiber.h>

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* What an answer is (gen_t.has_call, stream_t.has_call): text drawn token by token, a
 * tool call, or the JSON text of a structured output. The last two stream a prepared
 * text (g->call.args) MLLM_BYTES_PER_TOKEN bytes per token, on the same schedule rule;
 * JSON goes out as content, as text does. Tested as "nonzero" where both take the
 * prepared text, as ANSWER_CALL where only a call is meant. */
enum { ANSWER_TEXT = 0, ANSWER_CALL = 1, ANSWER_JSON = 2, ANSWER_MULTI = 3 /* stream_t only */ };

/* Events formatted per write at most; more due at once (a very late wake-up) are
 * written in several batches. */
#define MAX_BATCH_EVENTS 256
/* Non-streaming answers are built whole in memory; longer ones are refused. */
#define MAX_WHOLE_TOKENS 1000000

static const mllm_config_t *cfg;
static uint64_t request_counter;

/* One scratch buffer for the whole scheduler: formatting never parks, so no two fibers
 * use it at once, and one buffer instead of one per stream keeps RSS per stream low. */
static mllm_buf_t scratch;
/* What the shared buffers (scratch, whole_text's) keep between uses: a Responses stream
 * of a million tokens grows them to megabytes for its final events; past this they are
 * freed when a stream ends (not per event: the check stays off the stream loop). */
#define SHARED_BUF_KEEP (256u << 10)

static void shared_trim(mllm_buf_t *b)
{
    if (b->cap > SHARED_BUF_KEEP)
        mllm_buf_free(b);
}

void mllm_route_init(const mllm_config_t *c)
{
    cfg = c;
    request_counter = 0;
}

static int serve_models(mllm_conn_t *c, const mllm_request_t *hr, const char *one);

static int send_error(mllm_conn_t *c, const mllm_err_t *e, int anthropic, const char *extra,
                      int keep_alive)
{
    mllm_buf_t b = { 0 };
    if (anthropic)
        mllm_fmt_error_anthropic(&b, e);
    else
        mllm_fmt_error_openai(&b, e);
    mllm_log(MLLM_LOG_DEBUG, "conn %" PRIu64 ": %d %s", c->id, e->status, e->message);
    int rc = mllm_conn_respond(c, e->status, "application/json", b.p ? b.p : "", b.len, extra,
                               keep_alive);
    mllm_buf_free(&b);
    return rc;
}

/* ---- streaming ---- */

static void scratch_reset(void)
{
    /* A failure is one use's: the stream that met it fails (mllm_conn_emit_chunk), the
     * next one tries again (oom stayed set before, and failed every later stream). */
    scratch.oom = 0;
    scratch.len = 0;
    mllm_buf_reserve(&scratch, 64 << 10);
    if (!scratch.oom) {
        scratch.len = MLLM_CHUNK_HEADROOM;
        memset(scratch.p, ' ', MLLM_CHUNK_HEADROOM);
    }
}

/* Has the client closed while we wait? A peek tells EOF (0) from early pipelined data. */
enum inject { INJ_NONE, INJ_429, INJ_500, INJ_503, INJ_MIDSTREAM, INJ_DISCONNECT };

/*
 * A stream's state between two events, side by side. With 10,000 streams one stream's
 * events come 10,000 other events apart, so every cache line an event touches is a
 * miss: this struct (three lines, every field read or written per event), then the
 * per-event fields of its chunk format, which follow it in gen_t, and the connection.
 * Its events are emitted by the wheel's ticker (stream_fire) while the stream's fiber
 * stays parked, so the fiber's stack frames, record and context switch are not touched
 * per event at all (callgrind showed those frames as most of the misses).
 */
typedef struct stream {
    mllm_wheel_timer_t timer;   /* first: the ticker's handle on the stream */
    mllm_conn_t       *c;
    uint64_t           start;   /* the request's start; deadlines are start + s.t_ns */
    uint64_t           wrote_at; /* when the last batch's write began */
    int                k;       /* the next event's tokens */
    int                sent;    /* tokens emitted */
    int                cut_at;  /* injected cut after this many tokens, or -1 */
    int                rc;      /* 0, or -1: the connection is done */
    signed char        step;    /* the last batch's outcome (enum step) */
    unsigned char      more;    /* events are left after the ones emitted */
    unsigned char      first_tok, started;
    unsigned char      api, has_call, chunked; /* copies of gen_t's, on these lines;
                                                * has_call ANSWER_MULTI: see emit_multi */
    mllm_schedule_t    s;       /* s.t_ns: the next event's offset (when more) */
    mllm_rng_t         trng;    /* the token text's draws */
} stream_t;

typedef struct gen {
    stream_t          st __attribute__((aligned(64)));
    mllm_stream_fmt_t fmt;      /* right after st: its per-event fields come first */
    fiber_waitq_t     q;        /* the stream's fiber parks here while the ticker emits */
    mllm_gen_req_t    req;
    int               anthropic, chunked, keep_alive;
    uint64_t          index;
    enum inject       inject;
    int               has_call; /* ANSWER_*: text, a tool call, or structured JSON */
    mllm_tool_call_t  call;
    size_t            call_off; /* arguments already sent */
    mllm_resp_t       resp;     /* Responses API state (sequence numbers) */
    mllm_buf_t        echo;     /* Responses: the request's fields the object repeats */
    struct cJSON     *stops;    /* the request's stop sequences (mllm_gen_req_t.stop), or NULL */
    char             *stop_seq; /* the one that ended the text (schedule_init), or NULL */
    mllm_rng_t       *xr;       /* multi: the text draws of choices 1..n-1, then the
                                 * logprob draws of choices 0..n-1 (choice_rngs) */
} gen_t;

_Static_assert(sizeof(stream_t) <= 192, "a stream's per-event state fits three cache lines");

/* Appends the k token texts of one event to text[] (NUL-terminated); returns length. */
static size_t event_text(mllm_rng_t *trng, int k, int *first, char *text, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < k; i++) {
        size_t l;
        const char *t = mllm_token_text_n(trng, *first, &l);
        *first = 0;
        if (n + l >= cap)
            break;
        memcpy(text + n, t, l);
        n += l;
    }
    text[n] = 0;
    return n;
}

/* The next piece of a tool call's arguments (or of structured JSON):
 * MLLM_BYTES_PER_TOKEN bytes per token, ending where a character does, the last event
 * takes the rest. Each piece is a JSON string of its own on the wire: one that ended
 * inside a multi-byte character put bytes that are not UTF-8 in two events, and a
 * client's decoder made U+FFFD of both halves (test_review: stream_utf8_slices). Backing
 * off to the character's first byte never empties a piece (k >= 1 is 4 bytes, a
 * character at most 4) and keeps the pieces' sum at or under the token budget. */
static size_t call_slice(gen_t *g, int k, int last, const char **p)
{
    size_t left = g->call.args.len - g->call_off;
    size_t n = last ? left : (size_t)k * MLLM_BYTES_PER_TOKEN;
    if (n > left)
        n = left;
    const unsigned char *a = (const unsigned char *)g->call.args.p + g->call_off;
    while (n < left && n > 0 && (a[n] & 0xC0) == 0x80)
        n--;
    *p = g->call.args.p + g->call_off;
    g->call_off += n;
    return n;
}

/* The whole text of `tokens` tokens, regenerated from the request's seed (the same
 * draws the stream made), for the Responses API's done events: nothing is kept per
 * stream while it runs. */
static mllm_buf_t whole; /* whole_text's: filled and used between two parks, like scratch */

static const char *whole_text(const gen_t *g, int tokens, size_t *n)
{
    /* A failure is one use's, as scratch's (scratch_reset): oom stayed set before, and
     * every later Responses stream's done events then carried no text. */
    whole.oom = 0;
    whole.len = 0;
    mllm_rng_t trng;
    mllm_rng_seed(&trng, cfg->seed ^ 0x7e47u, g->index);
    char tmp[64];
    for (int i = 0; i < tokens; i++) {
        int first = i == 0;
        size_t l = event_text(&trng, 1, &first, tmp, sizeof tmp);
        mllm_buf_add(&whole, tmp, l);
    }
    *n = whole.oom ? 0 : whole.len;
    return whole.p && !whole.oom ? whole.p : "";
}

/* ---- n > 1 and logprobs (chat text answers) ---- */

/* Choice i's generators: its text (choice 0's is the request's own, so its text is the
 * same as with n: 1) and its log probabilities, each seeded from (seed, request index,
 * choice): the same request gives the same choices and values, streamed or not. */
static void choice_seed_text(mllm_rng_t *r, uint64_t index, int i)
{
    mllm_rng_seed(r, (cfg->seed ^ 0x7e47u) ^ ((uint64_t)i << 40), index);
}

static void choice_seed_lp(mllm_rng_t *r, uint64_t index, int i)
{
    mllm_rng_seed(r, (cfg->seed ^ 0x109b5u) ^ ((uint64_t)i << 40), index);
}

/* g->xr for a multi stream: n - 1 text generators, then n logprob ones. -1: no memory. */
static int choice_rngs(gen_t *g)
{
    int n = g->req.n;
    g->xr = malloc((size_t)(2 * n - 1) * sizeof *g->xr);
    if (!g->xr)
        return -1;
    for (int i = 1; i < n; i++)
        choice_seed_text(&g->xr[i - 1], g->index, i);
    for (int i = 0; i < n; i++)
        choice_seed_lp(&g->xr[n - 1 + i], g->index, i);
    return 0;
}

/* The logprobs entries of one choice's tokens (comma-separated), like scratch. */
static mllm_buf_t lpbuf;

/* k tokens of one choice into text (NUL-terminated) and, when lr, their logprobs
 * entries into lpbuf; first: the answer's first token is among them. Returns length. */
static size_t choice_tokens(mllm_rng_t *tr, mllm_rng_t *lr, int top, int k, int first,
                            char *text, size_t cap)
{
    size_t n = 0;
    lpbuf.len = 0;
    lpbuf.oom = 0;
    for (int i = 0; i < k; i++) {
        size_t l;
        int f = first && i == 0;
        const char *t = mllm_token_text_n(tr, f, &l);
        if (n + l >= cap)
            break;
        memcpy(text + n, t, l);
        n += l;
        if (lr) {
            if (i)
                mllm_buf_add(&lpbuf, ",", 1);
            mllm_logprob_entry(&lpbuf, lr, t, l, f, top);
        }
    }
    text[n] = 0;
    return n;
}

/* One event of a multi stream: a content chunk per choice, index 0 to n - 1, each with
 * its own tokens (and their logprobs). Off the plain stream's path (emit_due reaches it
 * through st->has_call == ANSWER_MULTI, in the branch a text stream never takes). */
static void __attribute__((noinline)) emit_multi(gen_t *g, int k)
{
    static char text[4096];
    int n = g->req.n, first = g->st.sent == 0;
    for (int i = 0; i < n; i++) {
        mllm_rng_t *tr = i ? &g->xr[i - 1] : &g->st.trng;
        mllm_rng_t *lr = g->req.logprobs ? &g->xr[n - 1 + i] : NULL;
        size_t len = choice_tokens(tr, lr, g->req.top_logprobs, k, first, text, sizeof text);
        if (lpbuf.oom)
            scratch.oom = 1;
        mllm_chunk_choice(&scratch, &g->fmt, i, text, len, lr ? (lpbuf.p ? lpbuf.p : "") : NULL,
                          lpbuf.len);
    }
}

/* ---- the wire formats of the three APIs, per stream event ---- */

static void fmt_first(gen_t *g)
{
    switch (g->req.api) {
    case MLLM_API_MESSAGES:
        mllm_anth_message_start(&scratch, &g->fmt, g->req.model, g->req.prompt_tokens);
        if (g->has_call == ANSWER_CALL)
            mllm_anth_tool_block_start(&scratch, &g->call);
        else
            mllm_anth_block_start(&scratch);
        mllm_anth_ping(&scratch);
        break;
    case MLLM_API_RESPONSES:
        mllm_resp_begin(&scratch, &g->resp);
        mllm_resp_item_added(&scratch, &g->resp);
        break;
    default:
        if (g->has_call == ANSWER_CALL)
            mllm_chunk_tool_start(&scratch, &g->fmt, &g->call);
        else if (g->req.n > 1)
            for (int i = 0; i < g->req.n; i++)
                mllm_chunk_role_i(&scratch, &g->fmt, i);
        else
            mllm_chunk_role(&scratch, &g->fmt);
    }
}

/* Once per event, so inlined into the stream loop: the switch is then a couple of
 * predictable branches (callgrind: 14 instructions per event as a call). */
static inline __attribute__((always_inline)) void fmt_delta(gen_t *g, const char *t, size_t n)
{
    switch (g->st.api) {
    case MLLM_API_MESSAGES:
        if (g->st.has_call == ANSWER_CALL)
            mllm_anth_input_delta(&scratch, t, n);
        else
            mllm_anth_delta(&scratch, t, n);
        break;
    case MLLM_API_RESPONSES:
        mllm_resp_delta(&scratch, &g->resp, t, n);
        break;
    default:
        if (g->st.has_call == ANSWER_CALL)
            mllm_chunk_tool_args(&scratch, &g->fmt, t, n);
        else
            mllm_chunk_content(&scratch, &g->fmt, t, n);
    }
}

/* Why the answer ended, in each API's words. */
static const char *finish_reason(const gen_t *g, int capped)
{
    if (g->stop_seq && g->req.api == MLLM_API_MESSAGES)
        return "stop_sequence"; /* chat's is "stop", as for any other end */
    static const char *const r[3][3] = {
        /* text, capped, tool call */
        { "stop", "length", "tool_calls" },
        { "end_turn", "max_tokens", "tool_use" },
        { "completed", "incomplete", "completed" },
    };
    return r[g->req.api][capped ? 1 : g->has_call == ANSWER_CALL ? 2 : 0];
}

static void fmt_end(gen_t *g, int capped, int sent)
{
    const char *reason = finish_reason(g, capped);
    switch (g->req.api) {
    case MLLM_API_MESSAGES:
        mllm_anth_block_stop(&scratch);
        mllm_anth_message_delta(&scratch, reason, g->stop_seq, sent);
        mllm_anth_message_stop(&scratch);
        break;
    case MLLM_API_RESPONSES: {
        size_t n;
        const char *full = g->has_call ? g->call.args.p : whole_text(g, sent, &n);
        if (g->has_call) /* a call's arguments, or the JSON text */
            n = g->call.args.len;
        mllm_resp_end(&scratch, &g->resp, full, n, capped,
                      g->req.prompt_tokens, sent);
        break;
    }
    default:
        if (g->req.n > 1)
            for (int i = 0; i < g->req.n; i++)
                mllm_chunk_finish_i(&scratch, &g->fmt, i, reason);
        else
            mllm_chunk_finish(&scratch, &g->fmt, reason);
        if (g->req.include_usage) /* every choice's tokens count */
            mllm_chunk_usage(&scratch, &g->fmt, g->req.model, g->req.prompt_tokens,
                             sent * g->req.n);
        mllm_chunk_done(&scratch);
    }
}

static void fmt_error(gen_t *g, const mllm_err_t *e)
{
    switch (g->req.api) {
    case MLLM_API_MESSAGES: mllm_anth_error(&scratch, e); break;
    case MLLM_API_RESPONSES: mllm_resp_error(&scratch, &g->resp, e); break;
    default: mllm_chunk_error(&scratch, e);
    }
}

/* Stop sequences are looked for in the first this many tokens of a text answer; a
 * longer answer runs on past them (README). */
#define STOP_SCAN_TOKENS 100000
/* The search's work bound: sequences x bytes of text searched. A request may carry many
 * sequences (Anthropic sets no count; a 1 MiB body holds 200,000): past this, fewer
 * bytes of the text are searched (4 sequences: the whole 100,000 tokens; 100,000: the
 * first ~670 bytes). The search runs on the one scheduler thread every stream shares. */
#define STOP_SCAN_WORK ((size_t)64 << 20)

/*
 * Where the text answer stops: the number of tokens before the first stop sequence it
 * would complete within `total` tokens (the first to end; the earlier to start if two
 * end together), or -1 when none does. The text is drawn again from the request's seed,
 * exactly as the stream draws it, once per answer and off the stream's path. The cut is
 * at a token boundary: a token the stop sequence starts inside is left out whole, so
 * the text never holds the sequence (OpenAI's rule) and may end a few characters short
 * of where a real model's would. *which: the index of the sequence in stops.
 * Work: the text drawn once, then one memmem per sequence over it (each sequence's first
 * occurrence is also its first to end), bounded by STOP_SCAN_WORK.
 */
static int stop_cut(const gen_t *g, int total, int *which)
{
    int n = cJSON_GetArraySize(g->stops), cut = -1;
    if (total > STOP_SCAN_TOKENS)
        total = STOP_SCAN_TOKENS;
    if (n <= 0 || total <= 0)
        return -1;
    mllm_rng_t trng;
    mllm_rng_seed(&trng, cfg->seed ^ 0x7e47u, g->index);
    mllm_buf_t text = { 0 };
    size_t *ends = malloc((size_t)total * sizeof *ends);
    if (!ends)
        return -1;
    int ntok = 0;
    for (; ntok < total; ntok++) {
        size_t l;
        const char *t = mllm_token_text_n(&trng, ntok == 0, &l);
        mllm_buf_add(&text, t, l);
        if (text.oom)
            break;
        ends[ntok] = text.len;
    }
    size_t limit = text.oom ? 0 : text.len; /* occurrences must end at or before it */
    if (limit > STOP_SCAN_WORK / (size_t)n)
        limit = STOP_SCAN_WORK / (size_t)n;
    size_t best_end = SIZE_MAX, best_start = 0;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, g->stops) {
        const char *sq = it->valuestring;
        size_t sl = strlen(sq), lim = best_end < limit ? best_end : limit;
        const char *at = sl <= lim ? memmem(text.p, lim, sq, sl) : NULL;
        if (at) {
            size_t st = (size_t)(at - text.p);
            if (st + sl < best_end || (st + sl == best_end && st < best_start)) {
                best_end = st + sl;
                best_start = st;
                *which = k;
            }
        }
        k++;
    }
    if (best_end != SIZE_MAX) /* the tokens that end before the sequence starts */
        for (cut = 0; cut < ntok && ends[cut] <= best_start; cut++)
            ;
    free(ends);
    mllm_buf_free(&text);
    return cut;
}

/*
 * The schedule of this answer: drawn from the profile for text; for a tool call or
 * structured JSON, as many tokens as the prepared text takes. Structured JSON that does
 * not fit max_tokens is cut there, as the real APIs cut it: the text ends mid-JSON with
 * finish_reason "length" (Anthropic: stop_reason "max_tokens"; Responses: status
 * "incomplete"), so a client's parse helper refuses it the way it refuses the real
 * thing (openai's LengthFinishReasonError). Before, the whole JSON went out whatever
 * max_tokens said, and a client's truncation handling was never exercised. The cut is
 * at a UTF-8 character boundary (a schema's enum strings may hold any text). A tool
 * call's arguments are cut the same way: chat streams the arguments' fragments up to the
 * cap and ends with finish_reason "length" (not "tool_calls"); Anthropic ends the tool_use
 * block's input_json_delta stream there with stop_reason "max_tokens"; Responses ends the
 * function_call item "incomplete" (README, "Tool calls cut at max_tokens"). Before, a
 * call's arguments went out whole whatever max_tokens said.
 */
static void schedule_init(mllm_schedule_t *s, gen_t *g)
{
    mllm_schedule_init(s, &cfg->profile, cfg->seed, g->index, g->req.prompt_tokens,
                       g->has_call ? 0 : g->req.max_tokens, cfg->tokens_per_event,
                       cfg->time_scale);
    if (g->has_call) {
        mllm_buf_t *a = &g->call.args;
        int need = (int)((a->len + MLLM_BYTES_PER_TOKEN - 1) / MLLM_BYTES_PER_TOKEN);
        int cap = g->req.max_tokens;
        if (cap > 0 && need > cap) {
            size_t keep = (size_t)cap * MLLM_BYTES_PER_TOKEN;
            while (keep > 0 && ((unsigned char)a->p[keep] & 0xC0) == 0x80)
                keep--; /* not inside a character: back to its first byte */
            a->len = keep;
            a->p[keep] = 0;
            mllm_schedule_set_total(s, cap);
            s->capped = 1;
        } else {
            mllm_schedule_set_total(s, need);
        }
    }
    int which = 0, cut;
    if (!g->has_call && g->stops && (cut = stop_cut(g, s->total, &which)) >= 0) {
        /* The text ends before the stop sequence: finish_reason "stop" (it may have been
         * "length"), Anthropic's stop_reason "stop_sequence" naming it. Zero tokens is
         * an answer too (the sequence comes first): the stream ends at its TTFT. */
        s->total = cut;
        s->capped = 0;
        free(g->stop_seq);
        g->stop_seq = strdup(cJSON_GetArrayItem(g->stops, which)->valuestring);
    }
    /* not needed any more: a stream waits for minutes holding only what it uses */
    cJSON_Delete(g->stops);
    g->stops = NULL;
}

/*
 * Returns to the kernel the stack pages below the caller's frame that parsing the
 * request dirtied: a stream then waits for minutes holding two pages of stack instead
 * of three (measured: 13.2 -> 9.2 KiB RSS per open stream). The pages are zero-filled
 * again if a deeper call touches them later (the final usage chunk's printf does, once).
 * Only whole pages from 768 bytes to 34 KiB below this frame are dropped: that is below
 * the red zone and everything live, the stream loop's own calls (send, the timer wait,
 * the context switch) stay within the page it keeps, and 34 KiB stays inside the stack.
 */
static void __attribute__((noinline)) stack_trim(void)
{
    _Static_assert(MLLM_CONN_STACK_SIZE >= 48u * 1024u, "stack_trim assumes 48 KiB of stack");
    char here;
    uintptr_t sp = (uintptr_t)&here;
    uintptr_t hi = (sp - 768) & ~(uintptr_t)4095;
    uintptr_t lo = (sp - 34 * 1024 + 4095) & ~(uintptr_t)4095;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* How a batch of events ended (emit_due). */
enum step {
    STEP_MORE, /* events are left: the next is due at start + off */
    STEP_END,  /* the answer is complete (its last events and end written) */
    STEP_CUT,  /* an injected error frame went out: flush, then close */
    STEP_DEAD  /* an injected disconnect: close without the terminating chunk */
};

/* The schedule's next event into st (k; its offset is st->s.t_ns, which
 * mllm_schedule_next leaves at the last event's when none is left). Returns more. */
static inline int next_event(stream_t *st)
{
    uint64_t off;
    return mllm_schedule_next(&st->s, &off, &st->k);
}

/* Events formatted per write at most (--max-batch-events, capped). */
static inline int batch_limit(void)
{
    return cfg->max_batch_events > 0 && cfg->max_batch_events < MAX_BATCH_EVENTS
               ? cfg->max_batch_events : MAX_BATCH_EVENTS;
}

/*
 * Formats every event that is due by now (at most a batch) and writes them in one
 * write, with each one's lateness. now is a clock reading taken at or after the first
 * event's deadline: the stream's fiber reads it after waiting for the deadline, the
 * ticker (stream_fire) passes its own (one clock read less per event; the write's own
 * reading below, which lateness is measured from, is taken as before). An event that
 * comes due between now and the write is not in this batch: it goes out right after,
 * from the fiber (stream_fire hands over a stream whose next event is due). Never
 * parks. Sets st->rc (-1: the write failed or the connection is to be cut) and
 * st->wrote_at; returns the enum step.
 */
static inline __attribute__((always_inline)) int emit_due(gen_t *g, uint64_t now)
{
    /* Static, like scratch: both are filled and used between two parks, never across
     * one. On the stack they would cost every open stream another resident page. */
    static uint64_t deadlines[MAX_BATCH_EVENTS];
    static char text[4096]; /* 200 tokens per event (the flag's cap) x 11 bytes at most */
    stream_t *st = &g->st;
    mllm_conn_t *c = st->c;
    scratch_reset();
    if (!st->started) {
        fmt_first(g);
        st->started = 1;
    }
    int nev = 0, tokens = 0;
    int batch = batch_limit();
    while (st->more && st->start + st->s.t_ns <= now && nev < batch) {
        if (st->cut_at >= 0 && st->sent >= st->cut_at)
            break;
        if (st->has_call) {
            if (st->has_call == ANSWER_MULTI) { /* text, n > 1 or logprobs */
                emit_multi(g, st->k);
                /* one such event can be MBs (128 choices x 40 tokens x 21 logprobs):
                 * a late batch ends at 256 KiB of them, the rest go out next */
                if (scratch.len >= (256u << 10))
                    batch = nev + 1;
            } else {
                const char *p;
                size_t n = call_slice(g, st->k, st->s.emitted >= st->s.total, &p);
                fmt_delta(g, p, n);
            }
        } else {
            int first = st->first_tok;
            fmt_delta(g, text, event_text(&st->trng, st->k, &first, text, sizeof text));
            st->first_tok = (unsigned char)first;
        }
        deadlines[nev++] = st->start + st->s.t_ns;
        tokens += st->k;
        st->sent += st->k;
        st->more = (unsigned char)next_event(st);
    }
    int cut = st->cut_at >= 0 && st->sent >= st->cut_at;
    if (cut && g->inject == INJ_MIDSTREAM) {
        mllm_err_t e;
        mllm_err_set(&e, 500, "server_error", NULL, NULL,
                     "The server had an error while processing your request (injected "
                     "by mock-llm).");
        fmt_error(g, &e);
    } else if (!st->more && !cut) {
        fmt_end(g, st->s.capped, st->sent);
    }
    int had_pending = c->out.len > 0;
    uint64_t wrote_at = st->wrote_at = fiber_now_ns();
    /* The batch that ends with an injected error is the stream's last: queued past
     * --max-pending, so a reader that is behind gets the error it was meant to see, and
     * the stream ends with one flush (STEP_CUT). Bounded, it was dropped as a slow
     * reader's: one flush of what was pending, then the slow_reader error and another,
     * up to 2 x --write-timeout, and the client saw slow_reader. */
    if (cut && g->inject == INJ_MIDSTREAM)
        st->rc = mllm_conn_emit_chunk_final(c, &scratch, st->chunked);
    else
        st->rc = mllm_conn_emit_chunk(c, &scratch, st->chunked);
    if (st->rc) {
        /* Not taken: dropped whole at a slow-reader overrun (the client gets the bytes
         * before it, then the slow_reader error), or the client is gone. These events
         * never reach it, so they are not sent: not in events_sent, tokens_sent (from
         * st->sent at the stream's end) or the lateness histogram. */
        st->sent -= tokens;
        nev = 0;
    }
    for (int i = 0; i < nev; i++)
        mllm_metrics_late(wrote_at > deadlines[i] ? wrote_at - deadlines[i] : 0);
    mllm_metrics.events_sent += (uint64_t)nev;
    if (had_pending)
        mllm_metrics.events_backlogged += (uint64_t)nev;
    if (cut && g->inject == INJ_DISCONNECT) {
        /* What was due went out properly framed (and is counted as any batch is: it
         * was not until 3 December, events_sent one batch short of what the client
         * got), then the connection is cut without the terminating chunk: the client
         * sees a stream that stops mid-answer. */
        st->rc = -1;
        c->dead = 1;
        return STEP_DEAD;
    }
    if (cut)
        return STEP_CUT;
    return st->more ? STEP_MORE : STEP_END;
}

/*
 * The ticker's side of a stream (a wheel timer's function): at the next event's
 * deadline it emits the due events itself, and files the stream again for the next
 * one when the stream's fiber would have slept on the wheel for it anyway (nothing
 * pending, no watching; mllm_conn_wait_is_sleep). Anything else - the answer's end,
 * an error, a backlog to drain, a long gap to watch, an event already due - hands the
 * stream back to its fiber, which goes on exactly as if it had emitted this batch.
 */
/* A ticker this late for a stream still emits its due events itself (coalesced, as the
 * fiber would), but the write does not count towards the ticker's 64 per round
 * (mllm_wheel.h): behind, every late stream gets one batch per pass, as every stream
 * driven by its fiber gets one turn per scheduler round. Counted, the ticker served the
 * due streams 64 per round while every stream handed back to its fiber took a turn in
 * each round: overloaded (10,000 streams x 5 tokens/s on the loaded machine) a fifth of
 * the events came 1-10 s late. Until 3 December a late stream was handed to its fiber
 * instead, a wake-up, a context switch onto its cold stack, the fiber's wait and a
 * re-file per event (callgrind, 10,000 streams, every stream late: see the README's
 * "late path"), so a server that fell 1 ms behind paid more per event and fell further
 * behind. */
#ifndef MLLM_TICKER_LATE_NS /* a -D for measurement builds only (bench/cg_per_event.py) */
#define MLLM_TICKER_LATE_NS 1000000u
#endif

static int stream_fire(mllm_wheel_timer_t *t, uint64_t now)
{
    gen_t *g = (gen_t *)t; /* st is the first member of gen_t, timer of st */
    stream_t *st = &g->st;
    int late = now - t->deadline > MLLM_TICKER_LATE_NS;
    st->step = emit_due(g, now);
    mllm_metrics.ticker_writes++;
    mllm_metrics.ticker_late_writes += (uint64_t)late;
    if (st->step == STEP_MORE && st->rc == 0) {
        uint64_t deadline = st->start + st->s.t_ns;
        if (deadline > st->wrote_at && mllm_conn_wait_is_sleep(st->c, deadline, st->wrote_at)) {
            st->timer.deadline = deadline;
            if (mllm_wheel_add(&st->timer, st->wrote_at) == 0)
                return !late;
        }
        if (deadline <= st->wrote_at)
            mllm_metrics.ticker_handovers++; /* due already: the fiber emits it and yields */
    }
    fiber_waitq_wake_one(&g->q);
    return !late;
}

_Static_assert(offsetof(gen_t, st) == 0 && offsetof(stream_t, timer) == 0,
               "stream_fire finds gen_t from its timer");

static int serve_stream(mllm_conn_t *c, gen_t *g, uint64_t start)
{
    stream_t *st = &g->st;
    st->c = c;
    st->start = start;
    st->api = (unsigned char)g->req.api;
    st->has_call = (unsigned char)g->has_call;
    /* Chat text with n > 1 or logprobs: formatted by emit_multi. Marked in has_call, which
     * the event loop tests anyway, so a plain text stream's events take exactly the path
     * they took before (a test of a flag of its own cost ~5 instructions per event,
     * callgrind at 1,000 streams x 5 tokens/s). */
    if (g->req.api == MLLM_API_CHAT && !g->has_call && (g->req.n > 1 || g->req.logprobs)) {
        if (choice_rngs(g))
            return -1;
        st->has_call = ANSWER_MULTI;
    }
    st->chunked = (unsigned char)g->chunked;
    st->timer.fire = stream_fire;
    g->q = (fiber_waitq_t)FIBER_WAITQ_INIT;
    schedule_init(&st->s, g);
    mllm_rng_seed(&st->trng, cfg->seed ^ 0x7e47u, g->index);
    st->cut_at = g->inject == INJ_MIDSTREAM || g->inject == INJ_DISCONNECT ? st->s.total / 2
                                                                           : -1;
    mllm_metrics.streams_active++;
    mllm_metrics.streams_total++;
    char extra[160];
    snprintf(extra, sizeof extra, "Cache-Control: no-cache\r\nx-request-id: req_mock%016" PRIx64
             "\r\nopenai-processing-ms: 0\r\n", g->index);
    st->rc = mllm_conn_begin_body(c, 200, "text/event-stream; charset=utf-8", extra,
                                  g->chunked, g->keep_alive);
    stack_trim();
    st->first_tok = 1;
    st->sent = 0;
    st->started = 0;
    st->more = (unsigned char)next_event(st);
    while (st->rc == 0 && (st->more || !st->started)) {
        uint64_t deadline = st->start + st->s.t_ns;
        if (!st->more)
            deadline = st->start + st->s.ttft_ns; /* zero tokens cannot happen; be safe anyway */
        uint64_t now = fiber_now_ns();
        int step;
        st->timer.deadline = deadline;
        if (deadline > now && mllm_conn_wait_is_sleep(c, deadline, now) &&
            mllm_wheel_add(&st->timer, now) == 0) {
            /* The ticker emits from here on (stream_fire) and wakes us when it cannot. */
            fiber_waitq_wait(&g->q, FIBER_FOREVER);
            step = st->step;
        } else {
            if ((st->rc = mllm_conn_wait_until(c, deadline)))
                break;
            step = emit_due(g, fiber_now_ns());
        }
        if (step == STEP_DEAD)
            break;
        if (step == STEP_CUT) {
            st->rc = -1; /* after an error frame the stream is over and so is the connection */
            mllm_conn_flush(c);
            break;
        }
        if (step == STEP_END)
            break;
        /* A stream whose next event is already due (no gaps, or far behind) would loop
         * without ever parking and starve every other connection: let them run. (Due
         * by the time this write began is enough to tell: no clock read here.) */
        if (st->start + st->s.t_ns <= st->wrote_at)
            fiber_yield();
    }
    int rc = st->rc;
    /* every choice's tokens, as the whole answer (serve_whole_multi) and the final usage
     * chunk count them: st->sent is one choice's */
    mllm_metrics.tokens_sent += (uint64_t)st->sent * (uint64_t)(g->req.n > 1 ? g->req.n : 1);
    shared_trim(&scratch);
    shared_trim(&whole);
    shared_trim(&lpbuf);
    if (rc == 0)
        rc = mllm_conn_end_body(c, g->chunked);
    if (c->dead == MLLM_CONN_OVERRUN) {
        /* The reader fell too far behind: what it has not read goes out, then an error
         * in the API's stream shape naming the bound, then the end (README, "Slow
         * readers"). */
        mllm_err_t e;
        mllm_err_set(&e, 500, "server_error", "slow_reader", NULL,
                     "mock-llm ended this stream: the client read it more slowly than it "
                     "was written and fell more than %zu bytes behind (--max-pending).",
                     cfg->max_pending);
        scratch_reset();
        fmt_error(g, &e);
        rc = mllm_conn_overrun_end(c, &scratch, g->chunked);
    }
    if (c->dead && g->inject != INJ_MIDSTREAM && g->inject != INJ_DISCONNECT)
        mllm_metrics.streams_aborted++;
    mllm_metrics.streams_active--;
    if (!g->chunked)
        rc = -1; /* HTTP/1.0: the end of the body is the end of the connection */
    return rc;
}

/* A non-streaming chat answer with n > 1 or logprobs: every choice drawn token by token
 * with the same generators the stream uses (the same texts and values), on the one
 * schedule s (every choice has its length). */
static int serve_whole_multi(mllm_conn_t *c, gen_t *g, uint64_t start, mllm_schedule_t *s)
{
    int n = g->req.n;
    /* A token with logprobs is ~90 bytes per listed token (itself and its top_logprobs)
     * against ~5 without: counted as 1 + top_logprobs + 16 tokens, the answer stays
     * under ~100 MB as a plain one stays under ~5 MB (n = 128, top_logprobs = 20 and
     * MAX_WHOLE_TOKENS across the choices built ~2 GB, twice over). */
    long w = g->req.logprobs ? 17 + g->req.top_logprobs : 1;
    if ((long)s->total * n * w > MAX_WHOLE_TOKENS) {
        mllm_err_t e;
        mllm_err_set(&e, 400, "invalid_request_error", "invalid_value", "max_tokens",
                     "mock-llm builds non-streaming answers in memory: at most %ld tokens "
                     "across the choices with these logprobs (these %d would have %ld); set "
                     "max_tokens or stream.", MAX_WHOLE_TOKENS / w, n, (long)s->total * n);
        return send_error(c, &e, 0, NULL, g->keep_alive);
    }
    uint64_t off = 0, last = s->ttft_ns;
    int k, tokens = 0;
    while (mllm_schedule_next(s, &off, &k)) {
        tokens += k;
        last = off;
    }
    int rc = mllm_conn_wait_until(c, start + last);
    if (rc)
        return rc;
    mllm_buf_t b = { 0 }, text = { 0 }, lp = { 0 };
    const char *reason = finish_reason(g, s->capped);
    mllm_fmt_completion_head(&b, &g->fmt, g->req.model);
    for (int i = 0; i < n; i++) {
        mllm_rng_t tr, lr;
        choice_seed_text(&tr, g->index, i);
        choice_seed_lp(&lr, g->index, i);
        text.len = lp.len = 0;
        for (int t = 0; t < tokens; t++) {
            size_t l;
            const char *tok = mllm_token_text_n(&tr, t == 0, &l);
            mllm_buf_add(&text, tok, l);
            if (g->req.logprobs) {
                if (t)
                    mllm_buf_add(&lp, ",", 1);
                mllm_logprob_entry(&lp, &lr, tok, l, t == 0, g->req.top_logprobs);
            }
        }
        mllm_fmt_completion_choice(&b, i, text.p ? text.p : "", text.len,
                                   g->req.logprobs ? (lp.p ? lp.p : "") : NULL, lp.len, reason);
        b.oom |= text.oom | lp.oom;
    }
    mllm_fmt_completion_tail(&b, g->req.prompt_tokens, tokens * n);
    char extra[64];
    snprintf(extra, sizeof extra, "x-request-id: req_mock%016" PRIx64 "\r\n", g->index);
    rc = b.oom ? -1 : mllm_conn_respond(c, 200, "application/json", b.p, b.len, extra,
                                        g->keep_alive);
    if (rc == 0) /* written whole: a reader dropped halfway got no answer (serve_whole) */
        mllm_metrics.tokens_sent += (uint64_t)tokens * (uint64_t)n;
    mllm_buf_free(&b);
    mllm_buf_free(&text);
    mllm_buf_free(&lp);
    return rc;
}

static int serve_whole(mllm_conn_t *c, gen_t *g, uint64_t start)
{
    mllm_schedule_t s;
    schedule_init(&s, g);
    if (s.total > MAX_WHOLE_TOKENS) {
        /* The whole answer is built in memory before it is sent. */
        mllm_err_t e;
        mllm_err_set(&e, 400, "invalid_request_error", "invalid_value", "max_tokens",
                     "mock-llm builds non-streaming answers in memory: at most %d tokens "
                     "(this one would have %d); set max_tokens or stream.", MAX_WHOLE_TOKENS,
                     s.total);
        return send_error(c, &e, g->anthropic, NULL, g->keep_alive);
    }
    if (g->req.api == MLLM_API_CHAT && !g->has_call && (g->req.n > 1 || g->req.logprobs))
        return serve_whole_multi(c, g, start, &s);
    mllm_rng_t trng;
    mllm_rng_seed(&trng, cfg->seed ^ 0x7e47u, g->index);
    uint64_t off = 0, last = s.ttft_ns; /* no token at all (a stop sequence first) */
    int k, first = 1;
    mllm_buf_t text = { 0 };
    static char ev[4096]; /* used before the wait only, like scratch */
    while (mllm_schedule_next(&s, &off, &k)) {
        if (!g->has_call)
            mllm_buf_add(&text, ev, event_text(&trng, k, &first, ev, sizeof ev));
        last = off;
    }
    /* A non-streaming answer arrives when the last token would have. */
    int rc = mllm_conn_wait_until(c, start + last);
    if (rc == 0) {
        mllm_buf_t b = { 0 };
        const char *reason = finish_reason(g, s.capped);
        const mllm_tool_call_t *call = g->has_call == ANSWER_CALL ? &g->call : NULL;
        if (g->has_call == ANSWER_JSON) { /* the JSON text is the answer's text */
            mllm_buf_free(&text);
            text = g->call.args;
            g->call.args = (mllm_buf_t){ 0 };
        }
        const char *t = text.p ? text.p : "";
        if (g->req.api == MLLM_API_MESSAGES)
            mllm_fmt_anth_message(&b, &g->fmt, g->req.model, t, text.len, call, reason,
                                  g->stop_seq,
                                  g->req.prompt_tokens, s.total);
        else if (g->req.api == MLLM_API_RESPONSES)
            mllm_fmt_response(&b, &g->resp, call ? call->args.p : t,
                              call ? call->args.len : text.len, s.capped,
                              g->req.prompt_tokens, s.total);
        else
            mllm_fmt_completion(&b, &g->fmt, g->req.model, t, text.len, call, reason,
                                g->req.prompt_tokens, s.total);
        char extra[64];
        snprintf(extra, sizeof extra, "x-request-id: req_mock%016" PRIx64 "\r\n", g->index);
        rc = b.oom ? -1 : mllm_conn_respond(c, 200, "application/json", b.p, b.len, extra,
                                            g->keep_alive);
        /* Counted when the connection took the whole answer, as a stream's batches are
         * (emit_due): a reader dropped at --write-timeout halfway through it, or no
         * memory to build it, was counted every token until 3 December. */
        if (rc == 0)
            mllm_metrics.tokens_sent += (uint64_t)s.total;
        mllm_buf_free(&b);
    }
    mllm_buf_free(&text);
    return rc;
}

static int model_served(const char *m)
{
    for (int i = 0; i < cfg->nmodels; i++)
        if (!strcmp(cfg->models[i], m))
            return 1;
    return 0;
}

/* The 404 for a model mock-llm does not serve, in each API's words: OpenAI's sentence,
 * or Anthropic's not_found_error "model: <id>" (what the API answers for a retired or
 * misspelled model id, as its users' reports quote it). */
static void model_not_found(mllm_err_t *e, const char *m, int anth, const char *param)
{
    if (anth)
        mllm_err_set(e, 404, "not_found_error", NULL, param, "model: %.*s",
                     (int)mllm_utf8_cut(m, 100), m);
    else
        mllm_err_set(e, 404, "invalid_request_error", "model_not_found", param,
                     "The model `%.*s` does not exist or you do not have access to it.",
                     (int)mllm_utf8_cut(m, 100), m);
}

static enum inject parse_inject(mllm_str_t v)
{
    if (mllm_str_ieq(v, "429"))
        return INJ_429;
    if (mllm_str_ieq(v, "500"))
        return INJ_500;
    if (mllm_str_ieq(v, "503"))
        return INJ_503;
    if (mllm_str_ieq(v, "midstream"))
        return INJ_MIDSTREAM;
    if (mllm_str_ieq(v, "disconnect"))
        return INJ_DISCONNECT;
    return INJ_NONE;
}

/* The chaos draw of a request: its own generator, so it does not shift the timing. */
static enum inject draw_inject(uint64_t index, int stream)
{
    if (cfg->error_rate <= 0 && cfg->midstream_error_rate <= 0 && cfg->disconnect_rate <= 0)
        return INJ_NONE;
    mllm_rng_t r;
    mllm_rng_seed(&r, cfg->seed ^ 0xc4a05u, index);
    if (mllm_rng_uniform(&r) < cfg->error_rate) {
        int s = cfg->error_statuses[mllm_rng_next(&r) % (uint64_t)cfg->nerror_statuses];
        return s == 429 ? INJ_429 : s == 500 ? INJ_500 : INJ_503;
    }
    double u = mllm_rng_uniform(&r);
    if (stream && u < cfg->midstream_error_rate)
        return INJ_MIDSTREAM;
    if (stream && u < cfg->midstream_error_rate + cfg->disconnect_rate)
        return INJ_DISCONNECT;
    return INJ_NONE;
}

static int serve_parsed(mllm_conn_t *c, const mllm_request_t *hr, gen_t *g);

/* x-mock-request-index: 1 to 20 decimal digits, at most UINT64_MAX. Returns 0 or -1. */
static int parse_index(mllm_str_t v, uint64_t *out)
{
    if (v.n == 0 || v.n > 20)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        unsigned d = (unsigned char)v.p[i] - '0';
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static int serve_generate(mllm_conn_t *c, const mllm_request_t *hr, int api)
{
    mllm_metrics.started_behind += (uint64_t)mllm_wheel_behind(fiber_now_ns());
    gen_t g;
    memset(&g, 0, sizeof g);
    int anthropic = api == MLLM_API_MESSAGES;
    g.anthropic = anthropic;
    g.keep_alive = hr->keep_alive;
    g.chunked = hr->minor >= 1;
    mllm_err_t e;
    int rc = api == MLLM_API_MESSAGES ? mllm_parse_messages(hr->body, hr->body_len, &g.req, &e)
             : api == MLLM_API_RESPONSES
                 ? mllm_parse_responses(hr->body, hr->body_len, &g.req, &e)
                 : mllm_parse_chat(hr->body, hr->body_len, &g.req, &e);
    if (rc)
        return send_error(c, &e, anthropic, NULL, hr->keep_alive);
    rc = serve_parsed(c, hr, &g);
    mllm_gen_req_free(&g.req);
    mllm_buf_free(&g.call.args);
    mllm_buf_free(&g.echo);
    cJSON_Delete(g.stops);
    free(g.stop_seq);
    free(g.xr);
    return rc;
}

/* A valid request: model, request index, injections, the tool rule, then the answer. */
static int serve_parsed(mllm_conn_t *c, const mllm_request_t *hr, gen_t *g)
{
    mllm_err_t e;
    int anthropic = g->anthropic;
    if (!model_served(g->req.model)) {
        model_not_found(&e, g->req.model, anthropic, NULL);
        return send_error(c, &e, anthropic, NULL, hr->keep_alive);
    }
    mllm_str_t idx = mllm_request_header(hr, "x-mock-request-index");
    if (idx.p) {
        if (parse_index(idx, &g->index)) {
            /* It silently became 0 before: a typo replayed request 0. */
            size_t n = idx.n > 40 ? 40 : idx.n;
            while (n < idx.n && n && ((unsigned char)idx.p[n] & 0xc0) == 0x80)
                n--;
            mllm_err_set(&e, 400, "invalid_request_error", "invalid_request_index", NULL,
                         "Invalid header 'x-mock-request-index': expected a decimal integer "
                         "from 0 to 18446744073709551615, got '%.*s'.", (int)n, idx.p);
            return send_error(c, &e, anthropic, NULL, hr->keep_alive);
        }
    } else {
        g->index = request_counter++;
    }
    mllm_str_t inj = mllm_request_header(hr, "x-mock-inject");
    g->inject = inj.p ? parse_inject(inj) : draw_inject(g->index, g->req.stream);
    if (g->inject == INJ_429 || g->inject == INJ_500 || g->inject == INJ_503) {
        char extra[320] = "";
        if (g->inject == INJ_429) {
            mllm_err_set(&e, 429, anthropic ? "rate_limit_error" : "requests",
                         "rate_limit_exceeded", NULL,
                         "Rate limit reached for requests (injected by mock-llm). Please try "
                         "again in %dms.", cfg->retry_after_ms);
            snprintf(extra, sizeof extra,
                     "retry-after: %d\r\nretry-after-ms: %d\r\n"
                     "x-ratelimit-limit-requests: 10000\r\n"
                     "x-ratelimit-remaining-requests: 0\r\n"
                     "x-ratelimit-reset-requests: %dms\r\n",
                     (cfg->retry_after_ms + 999) / 1000, cfg->retry_after_ms,
                     cfg->retry_after_ms);
        } else if (g->inject == INJ_503) {
            mllm_err_set(&e, 503, anthropic ? "overloaded_error" : "server_error",
                         NULL, NULL, "The engine is currently overloaded, please try again "
                         "later (injected by mock-llm).");
            snprintf(extra, sizeof extra, "retry-after: %d\r\nretry-after-ms: %d\r\n",
                     (cfg->retry_after_ms + 999) / 1000, cfg->retry_after_ms);
        } else {
            mllm_err_set(&e, 500, anthropic ? "api_error" : "server_error", NULL, NULL,
                         "The server had an error while processing your request (injected "
                         "by mock-llm).");
        }
        return send_error(c, &e, anthropic, extra, hr->keep_alive);
    }
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    uint64_t id_num = cfg->seed * 1000003u + g->index;
    mllm_stream_fmt_init(&g->fmt, g->req.model, id_num, (uint64_t)rt.tv_sec);
    mllm_stream_fmt_usage_null(&g->fmt, g->req.api == MLLM_API_CHAT && g->req.include_usage);
    /* The tool rule draws from its own generator, so tools never shift the timing or
     * the text of a request index. The definitions are not needed once it has drawn:
     * a stream keeps only the call it makes. */
    mllm_rng_t crng;
    mllm_rng_seed(&crng, cfg->seed ^ 0x7001u, g->index);
    g->has_call = mllm_tool_call(&g->req, &crng, cfg->tool_call_rate, id_num, &g->call)
                      ? ANSWER_CALL : ANSWER_TEXT;
    if (!g->has_call && g->req.json_mode != MLLM_JSON_NONE) {
        /* Structured output: JSON from the request's schema, from a generator of its own
         * (the text's and the timing's draws stay the same), streamed as content */
        mllm_rng_t jrng;
        mllm_rng_seed(&jrng, cfg->seed ^ 0x750u, g->index);
        mllm_json_answer(&g->req, &jrng, &g->call.args);
        g->has_call = ANSWER_JSON;
    }
    if (g->has_call && g->call.args.oom)
        return -1;
    g->echo = g->req.echo; /* kept: the Responses object repeats it at the end */
    memset(&g->req.echo, 0, sizeof g->req.echo);
    g->stops = g->req.stop; /* kept until the schedule is drawn (schedule_init) */
    g->req.stop = NULL;
    mllm_gen_req_free(&g->req);
    g->resp = (mllm_resp_t){ .f = &g->fmt, .model = g->req.model,
                             .call = g->has_call == ANSWER_CALL ? &g->call : NULL,
                             .echo = g->echo.p, .echo_len = g->echo.len };
    static const char *const api_names[] = { "chat", "messages", "responses" };
    mllm_log(MLLM_LOG_DEBUG, "conn %" PRIu64 ": %s model=%s stream=%d index=%" PRIu64
             " prompt_tokens=%d max_tokens=%d tool_call=%s", c->id, api_names[g->req.api],
             g->req.model, g->req.stream, g->index, g->req.prompt_tokens, g->req.max_tokens,
             g->has_call == ANSWER_CALL ? g->call.name
             : g->has_call                ? "(json)" : "-");
    /* Everything the answer needs is in g now: the request's bytes (the prompt) go
     * before the answer's seconds of waiting. hr is not used after this. */
    uint64_t start = hr->start_ns;
    mllm_conn_release(c);
    return g->req.stream ? serve_stream(c, g, start) : serve_whole(c, g, start);
}

/* A client of Anthropic's API: its SDK sends anthropic-version on every request (the API
 * requires it). The paths both APIs share (/v1/models) and the 404s answer it in
 * Anthropic's shapes. */
static int anthropic_client(const mllm_request_t *hr)
{
    return mllm_request_header(hr, "anthropic-version").p != NULL;
}

/* One model in Anthropic's shape (created 1700000000 as RFC 3339). */
static void anth_model(mllm_buf_t *b, const char *id)
{
    size_t n = strlen(id);
    mllm_buf_adds(b, "{\"type\":\"model\",\"id\":\"");
    mllm_buf_json_str(b, id, n);
    mllm_buf_adds(b, "\",\"display_name\":\"");
    mllm_buf_json_str(b, id, n);
    mllm_buf_adds(b, "\",\"created_at\":\"2023-11-14T22:13:20Z\"}");
}

static int serve_models(mllm_conn_t *c, const mllm_request_t *hr, const char *one)
{
    mllm_buf_t b = { 0 };
    int anth = anthropic_client(hr);
    if (one) {
        if (!model_served(one)) {
            mllm_err_t e;
            model_not_found(&e, one, anth, "model");
            return send_error(c, &e, anth, NULL, hr->keep_alive);
        }
        if (anth) {
            anth_model(&b, one);
            goto send;
        }
        mllm_buf_adds(&b, "{\"id\":\"");
        mllm_buf_json_str(&b, one, strlen(one));
        mllm_buf_adds(&b, "\",\"object\":\"model\",\"created\":1700000000,"
                          "\"owned_by\":\"mock-llm\"}");
    } else if (anth) {
        /* every model on one page */
        mllm_buf_adds(&b, "{\"data\":[");
        for (int i = 0; i < cfg->nmodels; i++) {
            if (i)
                mllm_buf_add(&b, ",", 1);
            anth_model(&b, cfg->models[i]);
        }
        mllm_buf_adds(&b, "],\"has_more\":false,\"first_id\":");
        mllm_buf_adds(&b, cfg->nmodels ? "\"" : "null");
        if (cfg->nmodels) {
            mllm_buf_json_str(&b, cfg->models[0], strlen(cfg->models[0]));
            mllm_buf_adds(&b, "\",\"last_id\":\"");
            mllm_buf_json_str(&b, cfg->models[cfg->nmodels - 1],
                              strlen(cfg->models[cfg->nmodels - 1]));
            mllm_buf_adds(&b, "\"}");
        } else {
            mllm_buf_adds(&b, ",\"last_id\":null}");
        }
    } else {
        mllm_buf_adds(&b, "{\"object\":\"list\",\"data\":[");
        for (int i = 0; i < cfg->nmodels; i++) {
            mllm_buf_adds(&b, i ? ",{\"id\":\"" : "{\"id\":\"");
            mllm_buf_json_str(&b, cfg->models[i], strlen(cfg->models[i]));
            mllm_buf_adds(&b, "\",\"object\":\"model\",\"created\":1700000000,"
                              "\"owned_by\":\"mock-llm\"}");
        }
        mllm_buf_adds(&b, "]}");
    }
send:;
    int rc = b.oom ? -1 : mllm_conn_respond(c, 200, "application/json", b.p, b.len, NULL,
                                            hr->keep_alive);
    mllm_buf_free(&b);
    return rc;
}

/* POST /v1/messages/count_tokens (Anthropic): {"input_tokens": N}, N by the prompt-size
 * rule, the count a message with the same body would report. */
static int serve_count_tokens(mllm_conn_t *c, const mllm_request_t *hr)
{
    mllm_gen_req_t g;
    mllm_err_t e;
    if (mllm_parse_count_tokens(hr->body, hr->body_len, &g, &e))
        return send_error(c, &e, 1, NULL, hr->keep_alive);
    mllm_gen_req_free(&g);
    if (!model_served(g.model)) {
        model_not_found(&e, g.model, 1, NULL);
        return send_error(c, &e, 1, NULL, hr->keep_alive);
    }
    char body[48];
    int n = snprintf(body, sizeof body, "{\"input_tokens\":%d}", g.prompt_tokens);
    return mllm_conn_respond(c, 200, "application/json", body, (size_t)n, NULL, hr->keep_alive);
}

/* Routes one complete request. Returns 0 to keep the connection, -1 to close it. */
int mllm_route(mllm_conn_t *c, const mllm_request_t *hr)
{
    mllm_str_t m = hr->method, p = hr->path;
    int get = mllm_str_ieq(m, "GET");
    int post = mllm_str_ieq(m, "POST");
    int anth_path = mllm_str_ieq(p, "/v1/messages");
    int resp_path = mllm_str_ieq(p, "/v1/responses");
    mllm_err_t e;
    int rc;
    if (mllm_str_ieq(p, "/v1/messages/count_tokens")) {
        if (post)
            return serve_count_tokens(c, hr);
        mllm_err_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                     "Method %.*s is not allowed on %.*s; use POST.", (int)m.n, m.p,
                     (int)p.n, p.p);
        return send_error(c, &e, 1, "Allow: POST\r\n", hr->keep_alive);
    }
    if (mllm_str_ieq(p, "/v1/chat/completions") || anth_path || resp_path) {
        if (post)
            return serve_generate(c, hr, anth_path   ? MLLM_API_MESSAGES
                                         : resp_path ? MLLM_API_RESPONSES
                                                     : MLLM_API_CHAT);
        mllm_err_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                     "Method %.*s is not allowed on %.*s; use POST.", (int)m.n, m.p,
                     (int)p.n, p.p);
        return send_error(c, &e, anth_path, "Allow: POST\r\n", hr->keep_alive);
    }
    int health = mllm_str_ieq(p, "/health"), metrics = mllm_str_ieq(p, "/metrics");
    int models = mllm_str_ieq(p, "/v1/models");
    int one_model = p.n > 11 && !memcmp(p.p, "/v1/models/", 11);
    if (health || metrics || models || one_model) {
        if (!get) {
            mllm_err_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                         "Method %.*s is not allowed on %.*s; use GET.", (int)m.n, m.p,
                         (int)p.n, p.p);
            return send_error(c, &e, 0, "Allow: GET\r\n", hr->keep_alive);
        }
        if (health)
            return mllm_conn_respond(c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL,
                                     hr->keep_alive);
        if (metrics) {
            mllm_buf_t b = { 0 };
            mllm_metrics_format(&b);
            rc = b.oom ? -1 : mllm_conn_respond(c, 200, "text/plain; version=0.0.4", b.p, b.len,
                                                NULL, hr->keep_alive);
            mllm_buf_free(&b);
            return rc;
        }
        if (models)
            return serve_models(c, hr, NULL);
        char id[128];
        size_t n = p.n - 11 < sizeof id - 1 ? p.n - 11 : sizeof id - 1;
        memcpy(id, p.p + 11, n);
        id[n] = 0;
        return serve_models(c, hr, id);
    }
    /* The path is quoted up to 200 bytes, cut at a character boundary (p.p is not
     * NUL-terminated: the cut looks at one byte past 200 at most, inside the head). */
    size_t pn = p.n;
    if (pn > 200)
        for (pn = 200; pn && ((unsigned char)p.p[pn] & 0xc0) == 0x80; pn--)
            ;
    /* Anthropic's shape under its /v1/messages/ and for its clients anywhere */
    int anth = anthropic_client(hr) || (p.n > 13 && !memcmp(p.p, "/v1/messages/", 13));
    mllm_err_set(&e, 404, anth ? "not_found_error" : "invalid_request_error", "unknown_url",
                 NULL, "Unknown request URL: %.*s %.*s. Please check the URL for typos.",
                 (int)m.n, m.p, (int)pn, p.p);
    return send_error(c, &e, anth, NULL, hr->keep_alive);
}


void mllm_route_connection(mllm_conn_t *c)
{
    mllm_request_t r;
    while (mllm_conn_next(c, &r)) {
        int rc = mllm_route(c, &r);
        mllm_conn_done(c, &r);
        if (rc || c->dead || !r.keep_alive)
            break;
    }
    mllm_conn_close(c);
}
