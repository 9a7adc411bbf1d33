/*
 * scale.c - bench_scale: how many live idle units the machine holds, and what each
 * costs on the way there. Fibers (parked, 64 KiB guarded stacks) grow to 1,000,000 or
 * failure; threads (blocked, glibc's default stack) grow until pthread_create fails.
 *
 * At checkpoints (1k, 2k, 5k, 10k, ... ) it records the time per unit created since the
 * last checkpoint and the memory per unit so far (VmRSS plus the kernel's KernelStack,
 * SUnreclaim and PageTables growth). At the end: the count reached, the errno, and the
 * limit that explains it (pid_max, threads-max, vm.max_map_count, RLIMIT_NPROC, memory,
 * or the cap). Then everything is released: the machine is left as it was.
 *
 * Safety: growth stops when MemAvailable would fall under a floor (--min-avail-mib,
 * default 4096), so the other users of a shared machine keep their memory; that stop is
 * recorded as the "memory" limit. The thread cliff holds every free pid of the machine
 * for a moment; --max-threads bounds it.
 */
#define _GNU_SOURCE
#include "bench_units.h"
#include "bench_util.h"
#include "fiber.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char SUMMARY[] =
    "Grows live idle fibers (to 1,000,000) and threads (to the cliff) until failure or the\n"
    "cap, recording ns and bytes per unit along the way, the count reached, the errno and\n"
    "the limit behind it; then releases everything.";

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Threads alive on the whole machine: the pids in use that pid_max bounds. */
static long machine_tasks(void)
{
    char buf[256];
    FILE *f = fopen("/proc/loadavg", "r"); /* "0.00 0.01 0.05 1/234 5678": running/total */
    if (!f)
        return -1;
    long total = -1;
    if (fgets(buf, sizeof buf, f)) {
        char *slash = strchr(buf, '/');
        if (slash)
            total = strtol(slash + 1, NULL, 10);
    }
    fclose(f);
    return total;
}

/* Names the limit behind a failure, from what the system says right now. */
static void explain(bench_unit_kind_t kind, int e, long reached, const char *stop, char *out, size_t n,
                    char *tag, size_t tn)
{
    if (stop) {
        snprintf(out, n, "%s", stop);
        snprintf(tag, tn, "limit=memory-floor");
        return;
    }
    long pid_max = bench_read_long("/proc/sys/kernel/pid_max");
    long threads_max = bench_read_long("/proc/sys/kernel/threads-max");
    long map_max = bench_read_long("/proc/sys/vm/max_map_count");
    long maps = count_lines("/proc/self/maps");
    long tasks = machine_tasks();
    struct rlimit rl;
    getrlimit(RLIMIT_NPROC, &rl);
    const char *why = "unknown";
    /* The kernel hands out pids from 300 up after wrapping (RESERVED_PIDS), so the last
     * ~300 pids under pid_max are never free; a thread also costs two mappings (stack
     * and guard), so pid_max and vm.max_map_count arrive within a percent of each other
     * at ~32k threads: name the one with less headroom. */
    long pid_room = pid_max > 0 && tasks > 0 ? pid_max - 300 - tasks : LONG_MAX;
    long map_room = map_max > 0 && maps > 0 ? (map_max - maps) / 2 : LONG_MAX;
    if (kind == BENCH_UNIT_THREAD && e == EAGAIN) {
        if (pid_room < 128 && pid_room <= map_room)
            why = "pid_max";
        else if (map_room < 128)
            why = "vm.max_map_count";
        else if (tasks > 0 && threads_max > 0 && tasks >= threads_max - 64)
            why = "threads-max";
        else if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur <= reached + 64)
            why = "RLIMIT_NPROC";
        else
            why = "kernel refused (EAGAIN): memory or cgroup pids.max";
    } else if (e == ENOMEM) {
        why = maps > 0 && map_max > 0 && maps >= map_max - 64 ? "vm.max_map_count" : "memory";
    }
    snprintf(tag, tn, "limit=%s-%s", bench_errno_name(e),
             strcmp(why, "pid_max") == 0 || strcmp(why, "threads-max") == 0 || strcmp(why, "RLIMIT_NPROC") == 0 ||
                     strcmp(why, "vm.max_map_count") == 0 || strcmp(why, "memory") == 0
                 ? why
                 : "unknown");
    snprintf(out, n, "%s %s (machine tasks %ld of pid_max %ld; maps %ld of vm.max_map_count %ld)",
             bench_errno_name(e), why, tasks, pid_max, maps, map_max);
}

typedef struct grow_cfg {
    const char       *case_name, *model, *impl;
    bench_unit_kind_t kind;
    long              cap;
    long              min_avail_kb;
    char              result[256]; /* out: what was reached and why, for the machine file */
} grow_cfg_t;

static void grow(bench_csv_t *csv, grow_cfg_t *g)
{
    bench_units_t u;
    bench_units_init(&u, g->kind, 0);
    bench_mem_t m0, m;
    bench_mem_read(&m0);
    static const long steps[] = {1, 2, 5};
    long target = 1000;
    int si = 0, e = 0;
    const char *stop = NULL;
    uint64_t t_start = bench_now_ns(), t_last = t_start;
    long n_last = 0;
    char cs[128], nval[32];
    bench_progress("scale", "%s: growing to %ld", g->case_name, g->cap);
    for (;;) {
        long want = target < g->cap ? target : g->cap;
        /* Grow in slices so the memory floor is checked often. */
        while (u.count < want && !e && !stop) {
            long slice = want - u.count < 2000 ? want : u.count + 2000;
            e = bench_units_grow(&u, slice);
            bench_mem_read(&m);
            if (m.mem_available_kb >= 0 && m.mem_available_kb < g->min_avail_kb)
                stop = "memory (MemAvailable floor reached)";
        }
        uint64_t now = bench_now_ns();
        bench_mem_read(&m);
        if (u.count > n_last) {
            double per = 1024.0 / (double)u.count;
            double rss = (double)(m.rss_kb - m0.rss_kb) * per;
            double kern = (double)(m.kernel_stack_kb - m0.kernel_stack_kb + m.sunreclaim_kb -
                                   m0.sunreclaim_kb + m.page_tables_kb - m0.page_tables_kb) * per;
            double ns = (double)(now - t_last) / (double)(u.count - n_last);
            snprintf(cs, sizeof cs, "%s/n=%ld", g->case_name, u.count);
            snprintf(nval, sizeof nval, "%ld", u.count);
            bench_csv_row(csv, cs, g->model, g->impl, "n", nval, "ns_per_create", "ns", ns, ns, ns, 1);
            bench_csv_row(csv, cs, g->model, g->impl, "n", nval, "user_bytes_per_unit", "bytes", rss,
                          rss, rss, 1);
            bench_csv_row(csv, cs, g->model, g->impl, "n", nval, "kernel_bytes_per_unit", "bytes",
                          kern, kern, kern, 1);
            bench_csv_row(csv, cs, g->model, g->impl, "n", nval, "bytes_per_unit", "bytes", rss + kern,
                          rss + kern, rss + kern, 1);
            bench_progress("scale", "%s: %ld units, %.0f ns/unit since last, %.0f B/unit", g->case_name,
                           u.count, ns, rss + kern);
            t_last = now;
            n_last = u.count;
        }
        if (e || stop || u.count >= g->cap)
            break;
        si = (si + 1) % 3;
        target = (si == 0 ? target / 5 * 10 : target / steps[si - 1] * steps[si]);
    }
    char why[192], tag[64];
    const char *metric;
    if (!e && !stop) {
        snprintf(why, sizeof why, "cap %ld reached (no failure)", g->cap);
        snprintf(tag, sizeof tag, "cap=%ld", g->cap);
        metric = "live_units";
    } else {
        explain(g->kind, e, u.count, stop, why, sizeof why, tag, sizeof tag);
        metric = "limit_units";
    }
    /* results/README.md: a limit is a row with metric limit_units, the cause as the
     * case's last part; the long explanation goes to the machine file. */
    snprintf(cs, sizeof cs, "%s/%s", g->case_name, tag);
    double reached = (double)u.count;
    double secs = (double)(bench_now_ns() - t_start) / 1e9;
    bench_csv_row(csv, cs, g->model, g->impl, "", "", metric, "count", reached, reached, reached, 1);
    snprintf(cs, sizeof cs, "%s/%s/grow", g->case_name, tag);
    bench_csv_row(csv, cs, g->model, g->impl, "", "", "seconds", "s", secs, secs, secs, 1);
    snprintf(g->result, sizeof g->result, "%s: %ld units: %s", g->case_name, u.count, why);
    bench_progress("scale", "%s: reached %ld units in %.1f s: %s; releasing", g->case_name, u.count,
                   secs, why);
    uint64_t r0 = bench_now_ns();
    bench_units_release(&u);
    double rel = (double)(bench_now_ns() - r0) / 1e9;
    snprintf(cs, sizeof cs, "%s/%s/release", g->case_name, tag);
    bench_csv_row(csv, cs, g->model, g->impl, "", "", "seconds", "s", rel, rel, rel, 1);
    bench_mem_read(&m);
    bench_progress("scale", "%s: released in %.1f s (VmRSS now %ld KiB)", g->case_name, rel, m.rss_kb);
}

int main(int argc, char **argv)
{
    const char *max_fibers_opt = NULL, *max_threads_opt = NULL, *min_avail_opt = NULL;
    int no_threads = 0, no_fibers = 0;
    bench_opt_t opts[] = {
        {"max-fibers", 1, &max_fibers_opt, NULL, "N   fiber cap (full 1M, quick 200k, tiny 2k)"},
        {"max-threads", 1, &max_threads_opt, NULL, "N  thread cap (full 100k: the cliff comes first; quick 5k, tiny 200)"},
        {"min-avail-mib", 1, &min_avail_opt, NULL, "M stop growing when MemAvailable < M MiB (default 4096)"},
        {"no-threads", 0, NULL, &no_threads, "     skip the thread run"},
        {"no-fibers", 0, NULL, &no_fibers, "      skip the fiber run"},
        {0},
    };
    bench_cli_t cli;
    int rc = bench_cli_parse(&cli, argc, argv, "scale", SUMMARY, opts);
    if (rc)
        return rc == 1 ? 0 : 2;
    static const long fiber_cap[] = {1000000, 200000, 2000};
    static const long thread_cap[] = {100000, 5000, 200};
    long max_fibers = fiber_cap[cli.mode], max_threads = thread_cap[cli.mode], min_avail = 4096;
    if (max_fibers_opt && (max_fibers = (long)bench_parse_count(max_fibers_opt)) <= 0) {
        fprintf(stderr, "bench_scale: --max-fibers: need a positive count\n");
        return 2;
    }
    if (max_threads_opt && (max_threads = (long)bench_parse_count(max_threads_opt)) <= 0) {
        fprintf(stderr, "bench_scale: --max-threads: need a positive count\n");
        return 2;
    }
    if (min_avail_opt && (min_avail = (long)bench_parse_count(min_avail_opt)) <= 0) {
        fprintf(stderr, "bench_scale: --min-avail-mib: need a positive count\n");
        return 2;
    }

    bench_csv_t csv;
    if (bench_csv_open(&csv, cli.out_dir, "scale") != 0) {
        fprintf(stderr, "bench_scale: %s/scale.csv: %s\n", cli.out_dir, strerror(errno));
        return 1;
    }
    bench_progress("scale", "%s run: fibers to %ld, threads to %ld, results in %s",
                   bench_mode_name(cli.mode), max_fibers, max_threads, csv.path);
    static grow_cfg_t gf = {"scale/fiber/parked/stack=64K", "fiber", "parked/stack=64K",
                            BENCH_UNIT_FIBER, 0, 0, ""};
    static grow_cfg_t gt = {"scale/thread/blocked/stack=default", "thread", "blocked/stack=default",
                            BENCH_UNIT_THREAD, 0, 0, ""};
    gf.cap = max_fibers;
    gt.cap = max_threads;
    gf.min_avail_kb = gt.min_avail_kb = min_avail * 1024;
    if (!no_fibers)
        grow(&csv, &gf);
    if (!no_threads)
        grow(&csv, &gt);

    char mode_line[64], guard_line[64], caps[128];
    snprintf(mode_line, sizeof mode_line, "mode: %s", bench_mode_name(cli.mode));
    snprintf(guard_line, sizeof guard_line, "fiber guard mode: %s", fiber_guard_mode());
    snprintf(caps, sizeof caps, "caps: fibers %ld, threads %ld, MemAvailable floor %ld MiB", max_fibers,
             max_threads, min_avail);
    char fl[300], tl[300];
    snprintf(fl, sizeof fl, "fibers reached: %s", no_fibers ? "not run" : gf.result);
    snprintf(tl, sizeof tl, "threads reached: %s", no_threads ? "not run" : gt.result);
    const char *extra[] = {mode_line, guard_line, caps, fl, tl, NULL};
    int bad = bench_csv_close(&csv) != 0;
    if (bench_machine_txt(cli.out_dir, "scale", extra) != 0)
        bad = 1;
    bench_progress("scale", "done%s", bad ? " (writing results failed)" : "");
    return bad;
}
