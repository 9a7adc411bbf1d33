/*
 * bench_util.h - what every fiberbench harness shares: the clock, the results CSV of
 * ../shared/DESIGN.md with its machine description, progress on stderr, memory
 * accounting from /proc, CPU pinning, and running helper programs.
 *
 * Errors: functions that touch the system return -1 with errno (or NULL); none aborts.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* The calling thread's CPU time in nanoseconds (CLOCK_THREAD_CPUTIME_ID: user and
 * system time, not the time it spent preempted). For work that runs on one thread only:
 * on a shared machine it leaves out the other processes' turns, which wall time counts. */
uint64_t bench_cpu_ns(void);

/* The core's delivered speed now, in register adds per nanosecond of this thread's CPU
 * time: four independent add chains (no memory, no calls), the median of three ~20 us
 * tries. On a 2-vCPU KVM guest the same code runs at two levels (an Intel Xeon: ~10.4
 * adds/ns when the host leaves the core alone, 6-7 when it does not; bench/alias), and
 * a fiber figure moves with it (r = -0.88 there). Measured beside a timed batch, in the
 * clock the batch is timed in, it lets a check tell a slower core from slower code
 * (make reproduce moves its accepted range by the speed's ratio to the reference's,
 * square-rooted); figure x adds/ns is the figure's cost in calibration adds. */
double bench_core_adds_per_ns(void);

/* Keeps the compiler from deleting the computation of v. */
#define BENCH_SINK(v) __asm__ volatile("" : : "r"(v) : "memory")

/* The source tree's root (FIBERBENCH_ROOT in the environment, else the configure-time
 * source directory): where scripts/ and bench/ruby/ are found. */
const char *bench_root(void);

/* mkdir -p. Returns 0 or -1 with errno. */
int bench_mkdir_p(const char *dir);

/* ---- statistics over repeated samples ---- */

/* Median (mean of the two middle values for even n), min and max of v[0..n); v is
 * sorted in place. n >= 1. */
void bench_stats(double *v, int n, double *median, double *min, double *max);

/* ---- results CSV ---- */

typedef struct bench_csv {
    FILE *f;
    char  path[4096];
    char  harness[32];
    int   rows;
} bench_csv_t;

/* The schema header line, without newline. */
extern const char bench_csv_header[];

/* Creates out_dir (mkdir -p) and out_dir/<harness>.csv with the header line.
 * Returns 0 or -1 with errno. */
int bench_csv_open(bench_csv_t *c, const char *out_dir, const char *harness);

/* Writes one row from samples v[0..n) (median, min, max over runs = n; v is sorted in
 * place). Fields with commas or quotes are quoted. n >= 1. */
void bench_csv_samples(bench_csv_t *c, const char *case_name, const char *model,
                       const char *impl, const char *param, const char *value,
                       const char *metric, const char *unit, double *v, int n);

/* Writes one row with given statistics. */
void bench_csv_row(bench_csv_t *c, const char *case_name, const char *model,
                   const char *impl, const char *param, const char *value,
                   const char *metric, const char *unit, double median, double min,
                   double max, int runs);

/* Copies every line but the header of a CSV file (e.g. the Ruby script's output) into
 * c. Returns the rows copied or -1 with errno. */
int bench_csv_append_file(bench_csv_t *c, const char *path);

/* Flushes and closes. Returns 0 or -1 with errno (a full disk shows here). */
int bench_csv_close(bench_csv_t *c);

/* Writes out_dir/<harness>.machine.txt: the output of scripts/machine.sh with the extra
 * "key: value" lines (NULL-terminated list, may be NULL). Returns 0 or -1. */
int bench_machine_txt(const char *out_dir, const char *harness, const char *const *extra);

/* ---- progress ---- */

/* Prints "[<harness> 12.3s] <message>" on stderr, time since the first call. */
void bench_progress(const char *harness, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- memory ---- */

typedef struct bench_mem {
    long rss_kb, hwm_kb;                  /* /proc/self/status VmRSS, VmHWM */
    long kernel_stack_kb, sunreclaim_kb;  /* /proc/meminfo: system-wide */
    long slab_kb, page_tables_kb;
    long mem_available_kb;
} bench_mem_t;

/* Reads the figures above. Returns 0 or -1 with errno. */
int bench_mem_read(bench_mem_t *m);

/* Resets VmHWM to the current VmRSS (writes 5 to /proc/self/clear_refs, Linux >= 4.0).
 * Returns 0 or -1 with errno. */
int bench_hwm_reset(void);

/* ---- system ---- */

/* Pins the calling thread to cpu (cpu < 0: every online CPU, i.e. unpinned again) and
 * checks that it now runs there. A case that says cpu=same and does not run pinned
 * measures something else, so there is no error to ignore: when the affinity call fails
 * (a cpuset without that CPU, too few CPUs, a filter) this prints why on stderr and
 * exits with status 1. Each CPU pinned to is remembered for bench_pinned_line().
 * Returns 0. */
int bench_pin_self(int cpu);

/* The same for threads not yet created: sets attr's affinity to cpu (>= 0), or prints
 * why it cannot and exits with status 1. */
void bench_pin_attr(pthread_attr_t *attr, int cpu);

/* "pinned_cpus: 0,1 (...)": every CPU this process pinned a thread to, for the machine
 * file (bench_machine_txt and bench_gbrun add it themselves). Static string. */
const char *bench_pinned_line(void);

/* Online CPUs. */
int bench_ncpus(void);

/* "EAGAIN" for EAGAIN, ...; "E<number>" when unknown. Returns a static string. */
const char *bench_errno_name(int e);

/* Reads one integer from a /proc or /sys file; returns -1 when it cannot. */
long bench_read_long(const char *path);

/* Runs argv (argv[0] looked up in PATH) and waits. stdout goes to out_path when not
 * NULL (truncated), else stays; stderr stays. Returns the exit status (0..255), 128+sig
 * when killed by a signal, or -1 with errno when it could not start. */
int bench_spawn(char *const argv[], const char *out_path);

/* Whether an executable named prog is in PATH (or prog is an executable path). */
int bench_have_program(const char *prog);

/* ---- command line ---- */

/* Run length. tiny is for the smoke tests: seconds, and numbers that mean little. */
typedef enum bench_mode { BENCH_FULL = 0, BENCH_QUICK = 1, BENCH_TINY = 2 } bench_mode_t;

/* A harness-specific option: --name VALUE or --name=VALUE when has_arg (stored in
 * *str), else a switch that sets *flag = 1. */
typedef struct bench_opt {
    const char  *name; /* without the leading "--" */
    int          has_arg;
    const char **str;
    int         *flag;
    const char  *help; /* one line for --help, with the argument's name first if any */
} bench_opt_t;

typedef struct bench_cli {
    const char  *out_dir;   /* --out DIR, default "results" */
    bench_mode_t mode;      /* --full (default), --quick, --tiny; QUICK=1 in the environment = --quick */
    char       **gb_flags;  /* --benchmark_* flags, passed to Google Benchmark as they are */
    int          n_gb_flags;
} bench_cli_t;

/*
 * Parses the common flags (--out DIR, --full, --quick, --tiny, --help, --benchmark_*)
 * and the harness's own opts (array ending with a zeroed entry; may be NULL).
 * summary is printed first by --help. Returns 0 to go on, 1 after --help was printed
 * (exit 0), 2 after a bad flag was reported on stderr (exit 2).
 */
int bench_cli_parse(bench_cli_t *cli, int argc, char **argv, const char *harness,
                    const char *summary, const bench_opt_t *opts);

/* "full", "quick" or "tiny". */
const char *bench_mode_name(bench_mode_t m);

/* Parses a positive integer with an optional k/K (x1000) or M (x1000000) suffix;
 * returns -1 when s is not one. */
long long bench_parse_count(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* BENCH_UTIL_H */
