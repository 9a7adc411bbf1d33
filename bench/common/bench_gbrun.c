/* bench_gbrun.c - a harness's Google Benchmark run, JSON to results CSV. */
#define _GNU_SOURCE
#include "bench_gbrun.h"

#include "bench_util.h"
#include "gb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_gbrun_cli(const char *harness, const bench_cli_t *cli,
                    const char *const *machine_extra)
{
    char interleave[] = "--benchmark_enable_random_interleaving=true";
    char **flags = calloc((size_t)cli->n_gb_flags + 2, sizeof *flags);
    if (!flags)
        return 1;
    int nf = 0;
    if (cli->mode != BENCH_TINY)
        flags[nf++] = interleave;
    for (int i = 0; i < cli->n_gb_flags; i++)
        flags[nf++] = cli->gb_flags[i];
    int rc = bench_gbrun(harness, cli->out_dir, nf, flags, machine_extra);
    free(flags);
    return rc;
}

int bench_gbrun(const char *harness, const char *out_dir, int n_flags, char **gb_flags,
                const char *const *machine_extra)
{
    char json[4096], outflag[4200];
    if (bench_mkdir_p(out_dir) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", harness, out_dir, strerror(errno));
        return 1;
    }
    snprintf(json, sizeof json, "%s/%s.json", out_dir, harness);
    snprintf(outflag, sizeof outflag, "--benchmark_out=%s", json);

    char **argv = calloc((size_t)n_flags + 4, sizeof *argv);
    if (!argv)
        return 1;
    int argc = 0;
    argv[argc++] = (char *)harness;
    argv[argc++] = outflag;
    argv[argc++] = (char *)"--benchmark_out_format=json";
    for (int i = 0; i < n_flags; i++)
        argv[argc++] = gb_flags[i];
    argv[argc] = NULL;
    int n = gb_run(argc, argv, 1);
    free(argv);
    if (n < 0)
        return 2;
    if (n == 0) {
        fprintf(stderr, "%s: no benchmark matched the filter\n", harness);
        return 1;
    }

    char script[4096];
    snprintf(script, sizeof script, "%s/scripts/gbench2csv.py", bench_root());
    char *cv[80];
    int c = 0;
    cv[c++] = (char *)"python3";
    cv[c++] = script;
    cv[c++] = (char *)"--harness";
    cv[c++] = (char *)harness;
    cv[c++] = (char *)"--json";
    cv[c++] = json;
    cv[c++] = (char *)"--out-dir";
    cv[c++] = (char *)out_dir;
    for (int i = 0; machine_extra && machine_extra[i] && c < 74; i++) {
        cv[c++] = (char *)"--extra";
        cv[c++] = (char *)machine_extra[i];
    }
    /* Which CPUs the cases pinned to is known only now, after the run. */
    cv[c++] = (char *)"--extra";
    cv[c++] = (char *)bench_pinned_line();
    cv[c] = NULL;
    int st = bench_spawn(cv, NULL);
    if (st != 0) {
        fprintf(stderr, "%s: %s failed (%s)\n", harness, script,
                st < 0 ? strerror(errno) : "nonzero exit");
        return 1;
    }
    return 0;
}

/* Whether run name `name` is benchmark `prefix` itself: what follows is nothing or only
 * Google Benchmark's own decorations ("/min_time:0.1/repeats:7/manual_time"), not a
 * further part of another benchmark's name ("switch/fiber/yield/cpu=same" is not
 * "switch/fiber/yield"). */
static int is_run_of(const char *name, const char *prefix)
{
    static const char *deco[] = {"min_time:", "min_warmup_time:", "repeats:", "iterations:",
                                 "threads:", "manual_time", "real_time", "process_time"};
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0)
        return 0;
    for (const char *p = name + n; *p; ) {
        if (*p++ != '/')
            return 0;
        size_t k, nd = sizeof deco / sizeof deco[0];
        for (k = 0; k < nd; k++)
            if (strncmp(p, deco[k], strlen(deco[k])) == 0)
                break;
        if (k == nd)
            return 0;
        p = strchr(p, '/') ? strchr(p, '/') : p + strlen(p);
    }
    return 1;
}

int bench_gb_stats(const char *prefix, double out[3], int *runs)
{
    static const char *aggs[3] = {"median", "min", "max"};
    int found = 0;
    for (int i = 0; i < gb_result_count(); i++) {
        const gb_result_t *r = gb_result_get(i);
        if (!is_run_of(r->name, prefix))
            continue;
        for (int k = 0; k < 3; k++)
            if (strcmp(r->aggregate, aggs[k]) == 0) {
                out[k] = r->real_ns;
                found |= 1 << k;
                *runs = (int)r->iterations; /* aggregates carry the repetition count */
            }
    }
    return found == 7 ? 0 : -1;
}

int bench_gb_ratio(const char *harness, const char *out_dir, const char *case_name,
                   const char *impl, const char *num, const char *den)
{
    double a[3], b[3];
    int ra = 0, rb = 0;
    if (bench_gb_stats(num, a, &ra) != 0 || bench_gb_stats(den, b, &rb) != 0 || b[0] <= 0 || b[1] <= 0 ||
        b[2] <= 0)
        return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.csv", out_dir, harness);
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    fprintf(f, "%s,%s,ratio,%s,,,ratio,x,%.6g,%.6g,%.6g,%d\n", harness, case_name, impl, a[0] / b[0],
            a[1] / b[2], a[2] / b[1], ra < rb ? ra : rb);
    return fclose(f) == 0 ? 0 : -1;
}

int bench_gb_row(const char *harness, const char *out_dir, const char *case_name,
                 const char *model, const char *impl, const char *metric, const char *unit,
                 const double v[3], int runs)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.csv", out_dir, harness);
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    fprintf(f, "%s,%s,%s,%s,,,%s,%s,%.6g,%.6g,%.6g,%d\n", harness, case_name, model, impl, metric,
            unit, v[0], v[1], v[2], runs);
    return fclose(f) == 0 ? 0 : -1;
}
