/*
 * gb.h - a C interface to Google Benchmark (libbenchmark 1.7.1), so that fiberbench's
 * benchmarks can be written in C. gb.cc implements it; this header is the manual.
 *
 * Model
 *   A benchmark is a C function gb_fn_t called with a state and the context pointer
 *   given at registration. It loops on gb_keep_running_batch(): each true return asks
 *   for one batch of n iterations. With gb_manual_time() the function times each batch
 *   itself (CLOCK_MONOTONIC) and reports it with gb_set_iteration_time_ns(); that is how
 *   work done inside a fiber scheduler or in another thread is timed.
 *   One iteration is one unit of whatever the benchmark's name says (one one-way switch,
 *   one create+join): Google Benchmark divides the time by the iterations.
 *
 * Names carry their parameters: "switch/fiber/strict/cpu=same". scripts/gbench2csv.py
 * reads "<harness>/<model>/<impl>[/<more impl>][/<param>=<value>]" into the results CSV.
 *
 * Errors
 *   Misuse (a NULL name or function, a negative batch, an unknown flag bit) prints what
 *   was wrong and where, then aborts. gb_run() returns -1 on a bad command line.
 */
#ifndef GB_H
#define GB_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gb_state gb_state_t; /* a benchmark::State, valid during one call */
typedef struct gb_bench gb_bench_t; /* a registered benchmark::internal::Benchmark */

typedef void (*gb_fn_t)(gb_state_t *st, void *ctx);

/* Time units, as Google Benchmark's TimeUnit. */
typedef enum gb_unit { GB_NS = 0, GB_US = 1, GB_MS = 2, GB_S = 3 } gb_unit_t;

/* Counter flags (combine with |), as benchmark::Counter::Flags. */
enum {
    GB_COUNTER_DEFAULT  = 0,
    GB_COUNTER_RATE     = 1 << 0, /* divided by the run's (manual or real) time: per second */
    GB_COUNTER_AVG_ITER = 1 << 1, /* divided by the iterations: per unit */
    GB_COUNTER_INVERT   = 1 << 2  /* inverted last: a count of units with RATE|INVERT gives
                                     seconds per unit */
};

/*
 * Registers fn under name, called with ctx. The name is copied. Every registered
 * benchmark gets "min" and "max" statistics beside Google Benchmark's mean, median,
 * stddev and cv, so a run with repetitions reports median, min and max.
 * Returns the benchmark, for the setters below (which all return it again).
 */
gb_bench_t *gb_register(const char *name, gb_fn_t fn, void *ctx);

/* Adds one argument value: the benchmark runs once per value (gb_arg_get(st, 0)). */
gb_bench_t *gb_arg(gb_bench_t *b, int64_t a);
/* Adds the values lo, lo*mult, lo*mult^2, ... and hi (Google Benchmark's Range);
 * mult <= 1 keeps its default of 8. Requires 0 <= lo <= hi. */
gb_bench_t *gb_range(gb_bench_t *b, int64_t lo, int64_t hi, int mult);
/* Adds lo, lo+step, ... up to hi. Requires lo <= hi, step > 0. */
gb_bench_t *gb_dense_range(gb_bench_t *b, int64_t lo, int64_t hi, int step);
/* Names the argument in the run name: "alloc/thread/create-join/stack_kib:64". */
gb_bench_t *gb_arg_name(gb_bench_t *b, const char *name);
/* The function reports each batch's time with gb_set_iteration_time_ns(). */
gb_bench_t *gb_manual_time(gb_bench_t *b);
/* Runs n repetitions and reports only their aggregates (mean, median, stddev, cv,
 * min, max). n >= 1. */
gb_bench_t *gb_repetitions(gb_bench_t *b, int n);
/* Minimum seconds per repetition (Google Benchmark grows the iteration count). */
gb_bench_t *gb_min_time(gb_bench_t *b, double seconds);
/* A fixed iteration count per repetition instead of a minimum time: the function is
 * called exactly once per repetition. Do not combine with gb_min_time(). */
gb_bench_t *gb_iterations(gb_bench_t *b, int64_t n);
/* The unit times are displayed and written in (JSON "time_unit"). */
gb_bench_t *gb_unit(gb_bench_t *b, gb_unit_t u);

/* ---- inside a benchmark function ---- */

/* True while the benchmark wants another batch of n iterations; n >= 1. May overshoot
 * the requested total by up to n - 1 iterations, which are counted. */
int gb_keep_running_batch(gb_state_t *st, int64_t n);
/* The i-th argument of this run (0 when the benchmark has none). */
int64_t gb_arg_get(const gb_state_t *st, int i);
/* Iterations the benchmark asked for in this call (Google Benchmark's max_iterations):
 * lets a function size its batches before the loop. */
int64_t gb_max_iterations(const gb_state_t *st);
/* Reports a batch's duration with gb_manual_time(): the nanoseconds are added up. */
void gb_set_iteration_time_ns(gb_state_t *st, double ns);
/* Sets a user counter (created or overwritten); flags from GB_COUNTER_*. */
void gb_counter(gb_state_t *st, const char *name, double value, unsigned flags);
/* Sets items_processed: Google Benchmark reports items_per_second from it. */
void gb_items_processed(gb_state_t *st, int64_t items);
/* Sets the run's label (free text shown beside the result and kept in the JSON). */
void gb_label(gb_state_t *st, const char *label);
/* Marks this run as failed with msg (e.g. "pthread_create: EAGAIN"); the function must
 * then return without calling gb_keep_running_batch() again. The run is reported with
 * error_occurred and its message, and the other benchmarks go on. */
void gb_skip_with_error(gb_state_t *st, const char *msg);
/* Stops and restarts the automatic timer around setup inside the loop. */
void gb_pause_timing(gb_state_t *st);
void gb_resume_timing(gb_state_t *st);

/* ---- running ---- */

/*
 * Parses Google Benchmark's own flags out of argv (--benchmark_filter=...,
 * --benchmark_out=..., ...), then runs every registered benchmark that matches the
 * filter. The console table goes to stderr when to_stderr is nonzero (progress), else
 * to stdout. Returns the number of benchmarks run, or -1 when argv holds a flag that
 * Google Benchmark does not know (it is named on stderr).
 */
int gb_run(int argc, char **argv, int to_stderr);

/* One reported run or aggregate of the last gb_run(), for callers that check results
 * without reading the JSON (the shim's tests, sanity checks in harnesses). */
typedef struct gb_result {
    const char *name;       /* run name, e.g. "t/arg:3/manual_time" */
    const char *aggregate;  /* "" for a plain run, else "mean", "median", "min", ... */
    int64_t     iterations;
    double      real_ns;    /* time per iteration, in nanoseconds, whatever the unit */
    int         error;      /* the run called gb_skip_with_error() */
} gb_result_t;

/* Number of results the last gb_run() reported. */
int gb_result_count(void);
/* The i-th result (0 <= i < gb_result_count()); pointers stay valid until the next
 * gb_run(). Returns NULL when i is out of range. */
const gb_result_t *gb_result_get(int i);
/* The value of counter name in the i-th result after Google Benchmark's finishing
 * (rates divided by time, averages by iterations). Returns 0 with *found = 0 when the
 * result has no such counter (found may be NULL). */
double gb_result_counter(int i, const char *name, int *found);

/* ---- units ---- */

/* value in unit u converted to nanoseconds, and back. */
double gb_to_ns(double value, gb_unit_t u);
double gb_from_ns(double ns, gb_unit_t u);
/* "ns", "us", "ms", "s" -> unit; returns -1 for anything else. */
int gb_unit_parse(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* GB_H */
