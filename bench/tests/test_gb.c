/* test_gb.c - the Google Benchmark shim: registration, arguments, manual time, unit
 * conversions, counters, repetitions with min/max, errors. Runs tiny benchmarks for
 * real, in-process; asserts on what they report, never on speed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gb.h"

static char min_time[] = "--benchmark_min_time=0.001";

static int run_filter(const char *filter)
{
    char f[256];
    snprintf(f, sizeof f, "--benchmark_filter=%s", filter);
    char *argv[] = {(char *)"test_gb", f, min_time, NULL};
    return gb_run(3, argv, 1);
}

/* First result whose name starts with prefix and whose aggregate is agg. */
static int find(const char *prefix, const char *agg)
{
    for (int i = 0; i < gb_result_count(); i++) {
        const gb_result_t *r = gb_result_get(i);
        if (strncmp(r->name, prefix, strlen(prefix)) == 0 && strcmp(r->aggregate, agg) == 0)
            return i;
    }
    return -1;
}

/* ---- benchmark bodies ---- */

struct seen {
    int64_t args[8];
    int     n;
    int64_t missing_arg;
};

static void bm_args(gb_state_t *st, void *ctx)
{
    struct seen *s = ctx;
    int64_t a = gb_arg_get(st, 0);
    if (s->n < 8)
        s->args[s->n++] = a;
    s->missing_arg = gb_arg_get(st, 5);
    while (gb_keep_running_batch(st, 10))
        gb_set_iteration_time_ns(st, 10 * 100.0);
}

/* Every iteration "takes" exactly 1 us of manual time, so every derived figure is
 * known in advance. */
static void bm_counters(gb_state_t *st, void *ctx)
{
    (void)ctx;
    int64_t iters = 0;
    while (gb_keep_running_batch(st, 100)) {
        iters += 100;
        gb_set_iteration_time_ns(st, 100 * 1000.0);
    }
    gb_counter(st, "plain", 42, GB_COUNTER_DEFAULT);
    gb_counter(st, "per_s", (double)iters, GB_COUNTER_RATE);
    gb_counter(st, "per_iter", 5.0 * (double)iters, GB_COUNTER_AVG_ITER);
    gb_counter(st, "s_per_iter", (double)iters, GB_COUNTER_RATE | GB_COUNTER_INVERT);
    gb_items_processed(st, iters);
}

static int rep_calls;
static void bm_reps(gb_state_t *st, void *ctx)
{
    (void)ctx;
    /* Different times per repetition: 1, 2, 3 us per iteration. */
    double ns = 1000.0 * (1 + rep_calls++ % 3);
    while (gb_keep_running_batch(st, 1))
        gb_set_iteration_time_ns(st, ns);
}

static void bm_error(gb_state_t *st, void *ctx)
{
    (void)ctx;
    gb_skip_with_error(st, "pthread_create: EAGAIN");
}

static int batches_seen;
static void bm_fixed(gb_state_t *st, void *ctx)
{
    (void)ctx;
    if (gb_max_iterations(st) != 64)
        return gb_skip_with_error(st, "max_iterations is not 64");
    while (gb_keep_running_batch(st, 16)) {
        batches_seen++;
        gb_set_iteration_time_ns(st, 16 * 10.0);
    }
}

static struct seen args_seen, noarg_seen, range_seen;

static int setup(void **state)
{
    (void)state;
    gb_bench_t *b = gb_register("t/args", bm_args, &args_seen);
    gb_manual_time(gb_arg_name(gb_arg(gb_arg(b, 3), 7), "n"));
    gb_manual_time(gb_register("t/noarg", bm_args, &noarg_seen));
    gb_manual_time(gb_range(gb_register("t/range", bm_args, &range_seen), 1, 64, 4));
    gb_manual_time(gb_register("t/counters", bm_counters, NULL));
    gb_repetitions(gb_manual_time(gb_register("t/reps", bm_reps, NULL)), 3);
    gb_register("t/error", bm_error, NULL);
    gb_iterations(gb_manual_time(gb_register("t/fixed", bm_fixed, NULL)), 64);
    return 0;
}

/* ---- tests ---- */

static void test_args_reach_the_function(void **state)
{
    (void)state;
    assert_int_equal(run_filter("^t/args"), 2);
    assert_int_equal(args_seen.n >= 2, 1);
    int saw3 = 0, saw7 = 0;
    for (int i = 0; i < args_seen.n; i++) {
        saw3 |= args_seen.args[i] == 3;
        saw7 |= args_seen.args[i] == 7;
    }
    assert_true(saw3 && saw7);
    assert_int_equal(args_seen.missing_arg, 0);
    assert_true(find("t/args/n:3", "") >= 0);
    assert_true(find("t/args/n:7", "") >= 0);
}

static void test_no_arg_reads_zero(void **state)
{
    (void)state;
    assert_int_equal(run_filter("^t/noarg"), 1);
    assert_true(noarg_seen.n >= 1);
    assert_int_equal(noarg_seen.args[0], 0);
}

static void test_range_expands(void **state)
{
    (void)state;
    /* 1, 4, 16, 64 with multiplier 4 */
    assert_int_equal(run_filter("^t/range"), 4);
    assert_true(find("t/range/16", "") >= 0);
    assert_true(find("t/range/64", "") >= 0);
}

static void test_manual_time_and_units(void **state)
{
    (void)state;
    assert_int_equal(run_filter("^t/args/n:3"), 1);
    int i = find("t/args/n:3", "");
    assert_true(i >= 0);
    /* 100 ns per iteration reported, whatever unit the library stored it in. */
    assert_float_equal(gb_result_get(i)->real_ns, 100.0, 1e-6);
    assert_true(gb_result_get(i)->iterations % 10 == 0);
}

static void test_counters_are_finished(void **state)
{
    (void)state;
    assert_int_equal(run_filter("^t/counters"), 1);
    int i = find("t/counters", "");
    assert_true(i >= 0);
    int found;
    assert_float_equal(gb_result_counter(i, "plain", &found), 42.0, 1e-9);
    assert_true(found);
    /* 1 us per iteration: iterations / (iterations * 1e-6 s) = 1e6 per second */
    assert_float_equal(gb_result_counter(i, "per_s", NULL), 1e6, 1e-3);
    assert_float_equal(gb_result_counter(i, "per_iter", NULL), 5.0, 1e-9);
    assert_float_equal(gb_result_counter(i, "s_per_iter", NULL), 1e-6, 1e-12);
    assert_float_equal(gb_result_counter(i, "items_per_second", NULL), 1e6, 1e-3);
    gb_result_counter(i, "no_such_counter", &found);
    assert_false(found);
}

static void test_repetitions_report_median_min_max(void **state)
{
    (void)state;
    assert_int_equal(run_filter("^t/reps"), 1);
    int med = find("t/reps", "median"), mn = find("t/reps", "min"), mx = find("t/reps", "max");
    assert_true(med >= 0 && mn >= 0 && mx >= 0);
    assert_true(find("t/reps", "mean") >= 0);
    assert_int_equal(find("t/reps", ""), -1); /* aggregates only */
    assert_float_equal(gb_result_get(mn)->real_ns, 1000.0, 1e-6);
    assert_float_equal(gb_result_get(med)->real_ns, 2000.0, 1e-6);
    assert_float_equal(gb_result_get(mx)->real_ns, 3000.0, 1e-6);
}

static void test_fixed_iterations(void **state)
{
    (void)state;
    batches_seen = 0;
    assert_int_equal(run_filter("^t/fixed"), 1);
    int i = find("t/fixed", "");
    assert_true(i >= 0);
    assert_false(gb_result_get(i)->error);
    assert_int_equal(gb_result_get(i)->iterations, 64);
    assert_int_equal(batches_seen, 4);
}

static void test_error_is_reported_not_fatal(void **state)
{
    (void)state;
    assert_int_equal(run_filter("^t/error"), 1);
    int i = find("t/error", "");
    assert_true(i >= 0);
    assert_true(gb_result_get(i)->error);
}

static void test_unknown_flag_is_rejected(void **state)
{
    (void)state;
    char *argv[] = {(char *)"test_gb", (char *)"--benchmark_filter=^t/noarg",
                    (char *)"--no-such-flag", NULL};
    assert_int_equal(gb_run(3, argv, 1), -1);
}

static void test_unit_conversions(void **state)
{
    (void)state;
    assert_float_equal(gb_to_ns(1.5, GB_US), 1500.0, 1e-9);
    assert_float_equal(gb_to_ns(2.0, GB_MS), 2e6, 1e-9);
    assert_float_equal(gb_to_ns(3.0, GB_S), 3e9, 1e-3);
    assert_float_equal(gb_to_ns(7.0, GB_NS), 7.0, 1e-12);
    assert_float_equal(gb_from_ns(2500.0, GB_US), 2.5, 1e-12);
    assert_float_equal(gb_from_ns(gb_to_ns(0.125, GB_MS), GB_MS), 0.125, 1e-12);
    assert_int_equal(gb_unit_parse("ns"), GB_NS);
    assert_int_equal(gb_unit_parse("us"), GB_US);
    assert_int_equal(gb_unit_parse("ms"), GB_MS);
    assert_int_equal(gb_unit_parse("s"), GB_S);
    assert_int_equal(gb_unit_parse("sec"), -1);
    assert_int_equal(gb_unit_parse(NULL), -1);
    assert_null(gb_result_get(-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_reach_the_function),
        cmocka_unit_test(test_no_arg_reads_zero),
        cmocka_unit_test(test_range_expands),
        cmocka_unit_test(test_manual_time_and_units),
        cmocka_unit_test(test_counters_are_finished),
        cmocka_unit_test(test_repetitions_report_median_min_max),
        cmocka_unit_test(test_fixed_iterations),
        cmocka_unit_test(test_error_is_reported_not_fatal),
        cmocka_unit_test(test_unknown_flag_is_rejected),
        cmocka_unit_test(test_unit_conversions),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
