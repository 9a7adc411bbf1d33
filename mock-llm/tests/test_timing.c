/* test_timing.c - schedules: deterministic per (seed, index), medians near the profile,
 * caps, chunking, and no drift over long streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mllm_timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void test_profiles_exist(void **st)
{
    (void)st;
    const char *need[] = { "gpt-4o", "claude-sonnet", "gemini-flash", "vllm-8b-h100", "fixed" };
    for (size_t i = 0; i < 5; i++)
        assert_non_null(mllm_profile_find(need[i]));
    assert_null(mllm_profile_find("nope"));
}

static void test_same_seed_same_schedule(void **st)
{
    (void)st;
    const mllm_profile_t *p = mllm_profile_find("claude-sonnet");
    mllm_schedule_t a, b, c;
    mllm_schedule_init(&a, p, 7, 123, 50, 0, 0, 1.0);
    mllm_schedule_init(&b, p, 7, 123, 50, 0, 0, 1.0);
    mllm_schedule_init(&c, p, 7, 124, 50, 0, 0, 1.0);
    uint64_t oa, ob, oc;
    int ka, kb, kc, differs = 0;
    while (mllm_schedule_next(&a, &oa, &ka)) {
        assert_true(mllm_schedule_next(&b, &ob, &kb));
        assert_int_equal(oa, ob);
        assert_int_equal(ka, kb);
        if (mllm_schedule_next(&c, &oc, &kc) && oc != oa)
            differs = 1;
    }
    assert_false(mllm_schedule_next(&b, &ob, &kb));
    assert_true(differs);
}

static void test_fixed_exact(void **st)
{
    (void)st;
    const mllm_profile_t *p = mllm_profile_find("fixed");
    mllm_schedule_t s;
    mllm_schedule_init(&s, p, 1, 0, 1000, 0, 0, 0.5);
    uint64_t off;
    int k, n = 0;
    while (mllm_schedule_next(&s, &off, &k)) {
        assert_int_equal(k, 1);
        /* 0.5 x (200 ms + n x 20 ms) */
        assert_true(llabs((long long)off - (long long)(100000000ull + (uint64_t)n * 10000000ull)) <= 1);
        n++;
    }
    assert_int_equal(n, 32);
    assert_false(s.capped);
}

static void test_max_tokens_caps(void **st)
{
    (void)st;
    mllm_schedule_t s;
    mllm_schedule_init(&s, mllm_profile_find("fixed"), 1, 0, 10, 5, 0, 1.0);
    assert_int_equal(s.total, 5);
    assert_true(s.capped);
    mllm_schedule_init(&s, mllm_profile_find("fixed"), 1, 0, 10, 500, 0, 1.0);
    assert_int_equal(s.total, 32);
    assert_false(s.capped);
}

static void test_tokens_per_event(void **st)
{
    (void)st;
    mllm_schedule_t s;
    uint64_t off;
    int k, total = 0, events = 0, lo = 1000, hi = 0;
    for (int r = 0; r < 50; r++) {
        mllm_schedule_init(&s, mllm_profile_find("gemini-flash"), 3, (uint64_t)r, 10, 0, 0, 1.0);
        while (mllm_schedule_next(&s, &off, &k)) {
            total += k;
            events++;
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        }
        assert_int_equal(total, s.total);
        total = 0;
    }
    (void)events;
    assert_true(lo >= 1 && hi <= 40 && hi > 10);
    mllm_schedule_init(&s, mllm_profile_find("fixed"), 3, 0, 10, 0, 4, 1.0);
    events = 0;
    while (mllm_schedule_next(&s, &off, &k))
        events++;
    assert_int_equal(events, 8);
}

/* Medians over many requests sit near the profile's parameters. */
static void test_medians(void **st)
{
    (void)st;
    const mllm_profile_t *p = mllm_profile_find("gpt-4o");
    enum { N = 2001 };
    static double ttft[N], gap[N], len[N];
    for (int i = 0; i < N; i++) {
        mllm_schedule_t s;
        mllm_schedule_init(&s, p, 11, (uint64_t)i, 0, 0, 0, 1.0);
        uint64_t off, prev = 0;
        int k, n = 0;
        double gaps[8192];
        while (mllm_schedule_next(&s, &off, &k)) {
            if (n == 0)
                ttft[i] = (double)off / 1e9;
            else if (n - 1 < 8192)
                gaps[n - 1] = (double)(off - prev) / 1e9;
            prev = off;
            n++;
        }
        gap[i] = n > 1 ? median(gaps, n - 1 < 8192 ? n - 1 : 8192) : 1.0 / p->speed_tps;
        len[i] = n;
    }
    double mt = median(ttft, N), mg = median(gap, N), ml = median(len, N);
    assert_true(fabs(mt - p->ttft_s) < 0.05 * p->ttft_s);
    assert_true(fabs(mg - 1.0 / p->speed_tps) < 0.05 / p->speed_tps);
    assert_true(fabs(ml - p->len_median) < 0.1 * p->len_median);
    /* heavy tail: p99 of TTFT well above twice the median */
    qsort(ttft, N, sizeof *ttft, cmp_d);
    assert_true(ttft[N * 99 / 100] > 2 * mt);
}

/* Gaps longer than 3.5x the mean over 500 gpt-4o conversations of 64 tokens: the
 * profile's stalls (0.5% of gaps, ~5x the mean) give dozens; with stall_p 0 (mock-llm
 * --stall-rate 0, what make bench's streams use to end without the multi-second tail)
 * none (a normal gap is exp(0.25 Z) times the mean: 3.5x is Z = 5), and the first-token
 * times, drawn before any gap, stay what they were. */
static int long_gaps(const mllm_profile_t *p, double *ttft_sum)
{
    int longs = 0;
    *ttft_sum = 0;
    for (int i = 0; i < 500; i++) {
        mllm_schedule_t s;
        mllm_schedule_init(&s, p, 11, (uint64_t)i, 0, 0, 0, 1.0);
        mllm_schedule_set_total(&s, 64);
        uint64_t off, prev = 0;
        int k, n = 0;
        while (mllm_schedule_next(&s, &off, &k)) {
            if (n == 0)
                *ttft_sum += (double)off / 1e9;
            else if ((double)(off - prev) / 1e9 > 3.5 / p->speed_tps)
                longs++;
            prev = off;
            n++;
        }
        assert_int_equal(n, 64);
    }
    return longs;
}

static void test_stall_rate_zero(void **st)
{
    (void)st;
    mllm_profile_t p = *mllm_profile_find("gpt-4o");
    p.speed_tps = 5;
    double t_with, t_without;
    int with = long_gaps(&p, &t_with);
    p.stall_p = 0;
    int without = long_gaps(&p, &t_without);
    assert_true(with >= 20);
    assert_int_equal(without, 0);
    assert_true(fabs(t_with - t_without) < 1e-9);
}

static void test_prompt_raises_ttft(void **st)
{
    (void)st;
    mllm_schedule_t a, b;
    const mllm_profile_t *p = mllm_profile_find("vllm-8b-h100");
    mllm_schedule_init(&a, p, 5, 9, 10, 0, 0, 1.0);
    mllm_schedule_init(&b, p, 5, 9, 10000, 0, 0, 1.0);
    assert_true(b.ttft_ns > a.ttft_ns + 500000000ull);
}

static void test_no_drift(void **st)
{
    (void)st;
    mllm_profile_t p = *mllm_profile_find("fixed");
    p.len_median = p.len_min = p.len_max = 1000000;
    p.speed_tps = 3000;
    mllm_schedule_t s;
    mllm_schedule_init(&s, &p, 1, 0, 0, 0, 0, 1.0);
    uint64_t off = 0, last = 0;
    int k;
    while (mllm_schedule_next(&s, &off, &k))
        last = off;
    /* 0.2 s + 999,999 / 3000 s, within a millisecond after a million gaps (each offset is rounded to 1 ns) */
    double want = 0.2 + 999999.0 / 3000.0;
    assert_true(fabs((double)last / 1e9 - want) < 1e-3);
}

static void test_token_text(void **st)
{
    (void)st;
    mllm_rng_t r;
    mllm_rng_seed(&r, 1, 2);
    const char *first = mllm_token_text(&r, 1);
    assert_true(first[0] != ' ' && first[0] != 0);
    int spaced = 0;
    for (int i = 0; i < 100; i++)
        spaced += mllm_token_text(&r, 0)[0] == ' ';
    assert_true(spaced > 50);
}

/* mllm_token_text_n: the same draw and text as mllm_token_text, and the length it
 * stores is the text's (the stream path copies exactly that many bytes). */
static void test_token_text_n(void **st)
{
    (void)st;
    mllm_rng_t a, b;
    mllm_rng_seed(&a, 7, 3);
    mllm_rng_seed(&b, 7, 3);
    for (int i = 0; i < 2000; i++) {
        int first = i % 50 == 0;
        size_t n = 0;
        const char *t = mllm_token_text_n(&a, first, &n);
        const char *u = mllm_token_text(&b, first);
        assert_string_equal(t, u);
        assert_int_equal(n, strlen(t));
        assert_true(n > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profiles_exist),
        cmocka_unit_test(test_same_seed_same_schedule),
        cmocka_unit_test(test_fixed_exact),
        cmocka_unit_test(test_max_tokens_caps),
        cmocka_unit_test(test_tokens_per_event),
        cmocka_unit_test(test_medians),
        cmocka_unit_test(test_stall_rate_zero),
        cmocka_unit_test(test_prompt_raises_ttft),
        cmocka_unit_test(test_no_drift),
        cmocka_unit_test(test_token_text),
        cmocka_unit_test(test_token_text_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
