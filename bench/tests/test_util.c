/* test_util.c - bench_util: statistics, the results CSV writer (quoting, header, rows),
 * count parsing, the command line (help, bad flags, harness options), mkdir -p, the
 * memory reader, and the live-units helper for fibers and threads. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sched.h>

#include <cmocka.h>

#include "bench_units.h"
#include "bench_util.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bench_test_util.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_stats(void **state)
{
    (void)state;
    double odd[] = {5, 1, 3}, even[] = {4, 1, 3, 2}, one[] = {7};
    double med, mn, mx;
    bench_stats(odd, 3, &med, &mn, &mx);
    assert_float_equal(med, 3, 0);
    assert_float_equal(mn, 1, 0);
    assert_float_equal(mx, 5, 0);
    bench_stats(even, 4, &med, &mn, &mx);
    assert_float_equal(med, 2.5, 0);
    bench_stats(one, 1, &med, &mn, &mx);
    assert_true(med == 7 && mn == 7 && mx == 7);
}

static void test_parse_count(void **state)
{
    (void)state;
    assert_int_equal(bench_parse_count("10"), 10);
    assert_int_equal(bench_parse_count("10k"), 10000);
    assert_int_equal(bench_parse_count("1M"), 1000000);
    assert_int_equal(bench_parse_count("0"), -1);
    assert_int_equal(bench_parse_count("-3"), -1);
    assert_int_equal(bench_parse_count("12x"), -1);
    assert_int_equal(bench_parse_count(""), -1);
    assert_int_equal(bench_parse_count(NULL), -1);
}

static void test_csv_rows_and_quoting(void **state)
{
    (void)state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/a/b", tmpdir); /* created on the way */
    bench_csv_t c;
    assert_int_equal(bench_csv_open(&c, dir, "seed"), 0);
    double v[] = {3, 1, 2};
    bench_csv_samples(&c, "seed/fiber/x", "fiber", "x", "n", "10", "us_per_unit", "us", v, 3);
    bench_csv_row(&c, "seed/t", "thread", "a,b \"q\"", "", "", "limit_units", "count", 1e6, 1e6, 1e6, 1);
    assert_int_equal(c.rows, 2);
    assert_int_equal(bench_csv_close(&c), 0);
    FILE *f = fopen(c.path, "r");
    assert_non_null(f);
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n");
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "seed,seed/fiber/x,fiber,x,n,10,us_per_unit,us,2,1,3,3\n");
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "seed,seed/t,thread,\"a,b \"\"q\"\"\",,,limit_units,count,1000000,1000000,1000000,1\n");
    fclose(f);
}

static void test_csv_append_skips_header(void **state)
{
    (void)state;
    char src[400];
    snprintf(src, sizeof src, "%s/rows.csv", tmpdir);
    FILE *f = fopen(src, "w");
    fputs("harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"
          "seed,a,m,i,,,us_per_unit,us,1,1,1,1\n\nseed,b,m,i,,,us_per_unit,us,2,2,2,1", f);
    fclose(f);
    bench_csv_t c;
    assert_int_equal(bench_csv_open(&c, tmpdir, "seed"), 0);
    assert_int_equal(bench_csv_append_file(&c, src), 2);
    assert_int_equal(bench_csv_close(&c), 0);
    f = fopen(c.path, "r");
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_string_equal(buf, "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"
                             "seed,a,m,i,,,us_per_unit,us,1,1,1,1\nseed,b,m,i,,,us_per_unit,us,2,2,2,1\n");
    assert_int_equal(bench_csv_append_file(&c, "/nonexistent/x.csv"), -1);
}

static void test_mkdir_p_refuses_a_file(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/file", tmpdir);
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_equal(bench_mkdir_p(path), -1);
    bench_csv_t c;
    assert_int_equal(bench_csv_open(&c, path, "x"), -1);
}

/* argc counts argv[0], as main's does: the varargs are argv[1..argc-1]. */
static int parse(bench_cli_t *cli, const bench_opt_t *opts, int argc, ...)
{
    char *argv[16] = {(char *)"bench_test"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    unsetenv("QUICK");
    /* --help prints to stdout; keep the test output clean. */
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    /* "switch" runs through Google Benchmark, so it takes --benchmark_* flags. */
    int rc = bench_cli_parse(cli, argc, argv, "switch", "summary", opts);
    fclose(stdout);
    stdout = saved;
    return rc;
}

static void test_cli(void **state)
{
    (void)state;
    const char *n = NULL;
    int flag = 0;
    bench_opt_t opts[] = {{"n", 1, &n, NULL, "N"}, {"no-x", 0, NULL, &flag, ""}, {0}};
    bench_cli_t cli;
    assert_int_equal(parse(&cli, opts, 1), 0);
    assert_string_equal(cli.out_dir, "results");
    assert_int_equal(cli.mode, BENCH_FULL);
    assert_int_equal(parse(&cli, opts, 7, "--quick", "--out", "/tmp/x", "--n=5", "--no-x",
                           "--benchmark_filter=a"), 0);
    assert_int_equal(cli.mode, BENCH_QUICK);
    assert_string_equal(cli.out_dir, "/tmp/x");
    assert_string_equal(n, "5");
    assert_int_equal(flag, 1);
    assert_int_equal(cli.n_gb_flags, 1);
    assert_int_equal(parse(&cli, opts, 4, "--n", "7", "--tiny"), 0);
    assert_string_equal(n, "7");
    assert_int_equal(cli.mode, BENCH_TINY);
    assert_int_equal(parse(&cli, opts, 2, "--help"), 1);
    assert_int_equal(parse(&cli, opts, 2, "--bogus"), 2);
    assert_int_equal(parse(&cli, opts, 2, "--n"), 2);
    assert_int_equal(parse(&cli, opts, 2, "--no-x=1"), 2);
    assert_int_equal(parse(&cli, opts, 2, "--out"), 2);
    assert_int_equal(parse(&cli, opts, 2, "stray"), 2);
    assert_int_equal(parse(&cli, NULL, 2, "--quick"), 0);
    /* A harness that is not run through Google Benchmark refuses its flags. */
    char *gbf[] = {(char *)"t", (char *)"--benchmark_filter=a", NULL};
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    int rc = bench_cli_parse(&cli, 2, gbf, "memory", "s", NULL);
    fclose(stderr);
    stderr = saved;
    assert_int_equal(rc, 2);
    setenv("QUICK", "1", 1);
    char *argv[] = {(char *)"t", NULL};
    assert_int_equal(bench_cli_parse(&cli, 1, argv, "t", "s", NULL), 0);
    assert_int_equal(cli.mode, BENCH_QUICK);
    unsetenv("QUICK");
}

static void test_mem_read(void **state)
{
    (void)state;
    bench_mem_t m;
    assert_int_equal(bench_mem_read(&m), 0);
    assert_true(m.rss_kb > 0);
    assert_true(m.hwm_kb >= m.rss_kb);
    assert_true(m.kernel_stack_kb > 0);
    assert_true(m.page_tables_kb > 0);
    assert_true(m.sunreclaim_kb > 0);
    /* Touching 16 MiB raises RSS; resetting VmHWM brings the peak back near RSS. */
    size_t sz = 16u << 20;
    char *p = malloc(sz);
    memset(p, 1, sz);
    BENCH_SINK(p); /* or the compiler drops the stores with the free() below */
    bench_mem_t a;
    bench_mem_read(&a);
    assert_true(a.rss_kb >= m.rss_kb + 15 * 1024);
    free(p);
    assert_int_equal(bench_hwm_reset(), 0);
    bench_mem_read(&a);
    assert_true(a.hwm_kb < a.rss_kb + 8 * 1024);
}

static void test_units(void **state)
{
    (void)state;
    bench_units_t u;
    bench_units_init(&u, BENCH_UNIT_FIBER, 0);
    assert_int_equal(bench_units_grow(&u, 300), 0);
    assert_int_equal(u.count, 300);
    assert_int_equal(fiber_live_count(), 300);
    bench_units_release(&u);
    assert_int_equal(u.count, 0);
    assert_int_equal(fiber_live_count(), 0);
    assert_int_equal(fiber_pool_count(), 0);

    bench_units_init(&u, BENCH_UNIT_THREAD, 64 * 1024);
    assert_int_equal(bench_units_grow(&u, 50), 0);
    assert_int_equal(u.count, 50);
    assert_int_equal(bench_units_grow(&u, 80), 0);
    assert_int_equal(u.count, 80);
    bench_units_release(&u);
    assert_int_equal(u.count, 0);
}

/* Pinning either takes or stops the harness: a cpu=same case never runs unpinned. */
static void test_pin_self(void **state)
{
    (void)state;
    assert_string_equal(bench_pinned_line(), "pinned_cpus: none (no case of this run pinned a thread)");
    assert_int_equal(bench_pin_self(0), 0);
    assert_int_equal(sched_getcpu(), 0);
    assert_non_null(strstr(bench_pinned_line(), "pinned_cpus: 0 ("));
    assert_int_equal(bench_pin_self(-1), 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    bench_pin_attr(&attr, 0);
    pthread_attr_destroy(&attr);

    /* A CPU that does not exist: the child must exit 1 with a message, not go on. */
    int err[2];
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(err[1], 2);
        bench_pin_self(1000);
        _exit(0); /* reached only if the pin "worked" */
    }
    close(err[1]);
    char buf[512] = {0};
    ssize_t n = read(err[0], buf, sizeof buf - 1);
    close(err[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "cannot pin the calling thread to CPU 1000"));
}

static void test_errno_name(void **state)
{
    (void)state;
    assert_string_equal(bench_errno_name(EAGAIN), "EAGAIN");
    assert_string_equal(bench_errno_name(ENOMEM), "ENOMEM");
    assert_string_equal(bench_errno_name(99999), "E99999");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_parse_count),
        cmocka_unit_test(test_csv_rows_and_quoting),
        cmocka_unit_test(test_csv_append_skips_header),
        cmocka_unit_test(test_mkdir_p_refuses_a_file),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_mem_read),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_errno_name),
        cmocka_unit_test(test_pin_self),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
