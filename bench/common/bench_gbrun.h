/*
 * bench_gbrun.h - runs the registered Google Benchmark benchmarks of a harness and turns
 * their JSON into results/<harness>.csv with scripts/gbench2csv.py.
 */
#ifndef BENCH_GBRUN_H
#define BENCH_GBRUN_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Runs every registered benchmark (gb_run, console table on stderr) with the JSON written
 * to <out_dir>/<harness>.json, then converts it into <out_dir>/<harness>.csv and
 * <out_dir>/<harness>.machine.txt (machine_extra: NULL-terminated "key: value" lines).
 * gb_flags are extra Google Benchmark flags (--benchmark_filter=... ...), n_flags of them.
 * Returns 0; 2 when Google Benchmark rejects a flag; 1 when the output could not be
 * written or converted (the reason is on stderr).
 */
int bench_gbrun(const char *harness, const char *out_dir, int n_flags, char **gb_flags,
                const char *const *machine_extra);

struct bench_cli;

/*
 * bench_gbrun() for a harness's parsed command line: writes into cli->out_dir, passes the
 * user's --benchmark_* flags, and (except in tiny mode) interleaves the repetitions of
 * different benchmarks at random, since on a shared VM drift between batches is larger
 * than the differences measured. Same return values.
 */
int bench_gbrun_cli(const char *harness, const struct bench_cli *cli,
                    const char *const *machine_extra);

/*
 * Appends to <out_dir>/<harness>.csv one row with metric "ratio" (unit x): the time of
 * the benchmark whose run name starts with num over the one starting with den, both
 * from the last gb_run()'s median/min/max aggregates: median = med/med, min =
 * min/max, max = max/min (the widest the repetitions allow). case_name names the row
 * ("switch/ratio/lean-over-floor"), impl says what over what. Returns 0, or -1 when a
 * side is missing (nothing is written).
 */
int bench_gb_ratio(const char *harness, const char *out_dir, const char *case_name,
                   const char *impl, const char *num, const char *den);

/* The median, min and max time per iteration (ns) of the benchmark of the last gb_run()
 * whose run name starts with prefix (followed by '/' or the end), and its repetitions.
 * Returns 0, or -1 when it has not all three aggregates. */
int bench_gb_stats(const char *prefix, double out[3], int *runs);

/* Appends one row to <out_dir>/<harness>.csv: case_name, model, impl, metric, unit,
 * median/min/max = v[0..2], runs (no param). For rows a harness derives after the run.
 * Returns 0 or -1. */
int bench_gb_row(const char *harness, const char *out_dir, const char *case_name,
                 const char *model, const char *impl, const char *metric, const char *unit,
                 const double v[3], int runs);

#ifdef __cplusplus
}
#endif

#endif
