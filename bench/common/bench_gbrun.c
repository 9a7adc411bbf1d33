/* bench_gbrun.c - a harness's Google Benchmark run, JSON to results CSV. */
#define _GNU_SOURCE
#include "bench_gbrun.h"

#include "bench_util.h"
#include "gb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (int i = 0; machine_extra && machine_extra[i] && c < 76; i++) {
        cv[c++] = (char *)"--extra";
        cv[c++] = (char *)machine_extra[i];
    }
    cv[c] = NULL;
    int st = bench_spawn(cv, NULL);
    if (st != 0) {
        fprintf(stderr, "%s: %s failed (%s)\n", harness, script,
                st < 0 ? strerror(errno) : "nonzero exit");
        return 1;
    }
    return 0;
}
