/* bench_util.c - the helpers of bench_util.h. */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef FB_SOURCE_DIR
#define FB_SOURCE_DIR "."
#endif

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* n rounds of 8 adds in 4 independent chains; the asm keeps each add (the compiler
 * would fold the loop into a multiply). */
static void core_adds(long n)
{
    uint64_t a = 1, b = 2, c = 3, d = 4;
    for (long i = 0; i < n; i++) {
#if defined(__x86_64__)
        __asm__ volatile("add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3\n\t"
                         "add %0,%0\n\tadd %1,%1\n\tadd %2,%2\n\tadd %3,%3"
                         : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
#elif defined(__aarch64__)
        __asm__ volatile("add %0,%0,%0\n\tadd %1,%1,%1\n\tadd %2,%2,%2\n\tadd %3,%3,%3\n\t"
                         "add %0,%0,%0\n\tadd %1,%1,%1\n\tadd %2,%2,%2\n\tadd %3,%3,%3"
                         : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
#else
        a += a; b += b; c += c; d += d;
        __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
        a += a; b += b; c += c; d += d;
        __asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
#endif
    }
    BENCH_SINK(a ^ b ^ c ^ d);
}

double bench_core_adds_per_ns(void)
{
    enum { ROUNDS = 25000 }; /* 200,000 adds: ~20 us at 10 adds/ns */
    double r[3];
    for (int t = 0; t < 3; t++) {
        uint64_t t0 = bench_cpu_ns();
        core_adds(ROUNDS);
        uint64_t dt = bench_cpu_ns() - t0;
        r[t] = dt ? 8.0 * ROUNDS / (double)dt : 0;
    }
    /* the median: the best of three read ~12% above the speed the next 5 ms ran at under
     * load (a review's paired measurement), a bias a calm reference would not share */
    double lo = r[0] < r[1] ? r[0] : r[1], hi = r[0] < r[1] ? r[1] : r[0];
    return r[2] < lo ? lo : r[2] > hi ? hi : r[2];
}

const char *bench_root(void)
{
    const char *r = getenv("FIBERBENCH_ROOT");
    return r && *r ? r : FB_SOURCE_DIR;
}

int bench_mkdir_p(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    if (stat(buf, &sb) != 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_stats(double *v, int n, double *median, double *min, double *max)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *min = v[0];
    *max = v[n - 1];
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char bench_csv_header[] = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs";

int bench_csv_open(bench_csv_t *c, const char *out_dir, const char *harness)
{
    memset(c, 0, sizeof *c);
    if (bench_mkdir_p(out_dir) != 0)
        return -1;
    if (snprintf(c->path, sizeof c->path, "%s/%s.csv", out_dir, harness) >= (int)sizeof c->path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(c->harness, sizeof c->harness, "%s", harness);
    c->f = fopen(c->path, "w");
    if (!c->f)
        return -1;
    fprintf(c->f, "%s\n", bench_csv_header);
    return 0;
}

/* RFC 4180 quoting, only when the field needs it. */
static void put_field(FILE *f, const char *s)
{
    if (!s)
        s = "";
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* %.6g loses nothing that matters for a benchmark; whole numbers (counts, limits) are
 * written whole, not as 1e+06. */
static void put_num(FILE *f, double v)
{
    if (v == (double)(long long)v && v > -1e15 && v < 1e15)
        fprintf(f, "%lld", (long long)v);
    else
        fprintf(f, "%.6g", v);
}

void bench_csv_row(bench_csv_t *c, const char *case_name, const char *model,
                   const char *impl, const char *param, const char *value,
                   const char *metric, const char *unit, double median, double min,
                   double max, int runs)
{
    const char *fields[] = {c->harness, case_name, model, impl, param, value, metric, unit};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        put_field(c->f, fields[i]);
        fputc(',', c->f);
    }
    put_num(c->f, median);
    fputc(',', c->f);
    put_num(c->f, min);
    fputc(',', c->f);
    put_num(c->f, max);
    fprintf(c->f, ",%d\n", runs);
    fflush(c->f);
    c->rows++;
}

void bench_csv_samples(bench_csv_t *c, const char *case_name, const char *model,
                       const char *impl, const char *param, const char *value,
                       const char *metric, const char *unit, double *v, int n)
{
    double med, mn, mx;
    bench_stats(v, n, &med, &mn, &mx);
    bench_csv_row(c, case_name, model, impl, param, value, metric, unit, med, mn, mx, n);
}

int bench_csv_append_file(bench_csv_t *c, const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return -1;
    char line[2048];
    int n = 0, first = 1;
    while (fgets(line, sizeof line, in)) {
        if (first && strncmp(line, "harness,", 8) == 0) {
            first = 0;
            continue;
        }
        first = 0;
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        fputs(line, c->f);
        if (!strchr(line, '\n'))
            fputc('\n', c->f);
        n++;
    }
    fclose(in);
    c->rows += n;
    fflush(c->f);
    return n;
}

int bench_csv_close(bench_csv_t *c)
{
    if (!c->f)
        return 0;
    int bad = ferror(c->f);
    int rc = fclose(c->f);
    c->f = NULL;
    if (bad && rc == 0) {
        errno = EIO;
        rc = -1;
    }
    return rc;
}

int bench_machine_txt(const char *out_dir, const char *harness, const char *const *extra)
{
    char script[4096], path[4096];
    snprintf(script, sizeof script, "%s/scripts/machine.sh", bench_root());
    if (snprintf(path, sizeof path, "%s/%s.machine.txt", out_dir, harness) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *argv[64];
    int n = 0;
    argv[n++] = script;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = (char *)extra[i];
    argv[n++] = (char *)bench_pinned_line();
    argv[n] = NULL;
    int st = bench_spawn(argv, path);
    if (st != 0) {
        if (st > 0)
            errno = ECHILD;
        return -1;
    }
    return 0;
}

void bench_progress(const char *harness, const char *fmt, ...)
{
    static uint64_t t0;
    uint64_t now = bench_now_ns();
    if (!t0)
        t0 = now;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s %6.1fs] %s\n", harness, (double)(now - t0) / 1e9, msg);
}

static long field_kb(const char *text, const char *key)
{
    const char *p = text;
    size_t k = strlen(key);
    while ((p = strstr(p, key))) {
        if ((p == text || p[-1] == '\n') && p[k] == ':')
            return strtol(p + k + 1, NULL, 10);
        p += k;
    }
    return -1;
}

static int slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

int bench_mem_read(bench_mem_t *m)
{
    char buf[8192];
    if (slurp("/proc/self/status", buf, sizeof buf) != 0)
        return -1;
    m->rss_kb = field_kb(buf, "VmRSS");
    m->hwm_kb = field_kb(buf, "VmHWM");
    if (slurp("/proc/meminfo", buf, sizeof buf) != 0)
        return -1;
    m->kernel_stack_kb = field_kb(buf, "KernelStack");
    m->sunreclaim_kb = field_kb(buf, "SUnreclaim");
    m->slab_kb = field_kb(buf, "Slab");
    m->page_tables_kb = field_kb(buf, "PageTables");
    m->mem_available_kb = field_kb(buf, "MemAvailable");
    return 0;
}

int bench_hwm_reset(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, "5", 1);
    int e = errno;
    close(fd);
    if (n != 1) {
        errno = n < 0 ? e : EIO;
        return -1;
    }
    return 0;
}

/* Every CPU a thread was pinned to (bit per CPU), for the machine file. */
static unsigned long pinned_mask;

static void pin_die(const char *what, int cpu, int err)
{
    fprintf(stderr, "bench: cannot pin %s to CPU %d: %s. A cpu=same or cpu=cross case "
            "would measure unpinned threads; stopping (check the process's allowed CPUs: "
            "taskset -pc $$)\n", what, cpu, strerror(err));
    exit(1);
}

static void pin_note(int cpu)
{
    if (cpu >= 0 && cpu < (int)(8 * sizeof pinned_mask))
        __atomic_fetch_or(&pinned_mask, 1UL << cpu, __ATOMIC_RELAXED);
}

int bench_pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0) {
        for (int i = 0; i < CPU_SETSIZE && i < bench_ncpus(); i++)
            CPU_SET(i, &set);
    } else if (cpu >= CPU_SETSIZE) {
        pin_die("the calling thread", cpu, EINVAL);
    } else {
        CPU_SET(cpu, &set);
    }
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        pin_die(cpu < 0 ? "the calling thread (back to every CPU)" : "the calling thread", cpu, rc);
    /* The kernel migrates the caller before the call returns: not being there now means
     * the affinity did not take. */
    if (cpu >= 0 && sched_getcpu() != cpu)
        pin_die("the calling thread (it runs elsewhere after the call)", cpu, EAGAIN);
    pin_note(cpu);
    return 0;
}

void bench_pin_attr(pthread_attr_t *attr, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0 || cpu >= CPU_SETSIZE)
        pin_die("new threads", cpu, EINVAL);
    CPU_SET(cpu, &set);
    int rc = pthread_attr_setaffinity_np(attr, sizeof set, &set);
    if (rc != 0)
        pin_die("new threads", cpu, rc);
    pin_note(cpu);
}

const char *bench_pinned_line(void)
{
    static char line[256];
    unsigned long m = __atomic_load_n(&pinned_mask, __ATOMIC_RELAXED);
    if (!m)
        return "pinned_cpus: none (no case of this run pinned a thread)";
    size_t n = (size_t)snprintf(line, sizeof line, "pinned_cpus: ");
    int first = 1;
    for (int c = 0; c < (int)(8 * sizeof m) && n + 8 < sizeof line; c++)
        if (m & (1UL << c)) {
            n += (size_t)snprintf(line + n, sizeof line - n, first ? "%d" : ",%d", c);
            first = 0;
        }
    snprintf(line + n, sizeof line - n,
             " (cpu=same cases run every thread, the creating and joining one included, on one "
             "CPU; each affinity call checked, a failure stops the harness)");
    return line;
}

int bench_ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

const char *bench_errno_name(int e)
{
    const char *s = strerrorname_np(e);
    if (s)
        return s;
    static _Thread_local char buf[16];
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

long bench_read_long(const char *path)
{
    char buf[64];
    if (slurp(path, buf, sizeof buf) != 0)
        return -1;
    char *end;
    long v = strtol(buf, &end, 10);
    return end == buf ? -1 : v;
}

int bench_spawn(char *const argv[], const char *out_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_path)
        posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

int bench_have_program(const char *prog)
{
    if (strchr(prog, '/'))
        return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n && n < sizeof dir - 256) {
            snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, prog);
            if (access(dir, X_OK) == 0)
                return 1;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return 0;
}

const char *bench_mode_name(bench_mode_t m)
{
    return m == BENCH_TINY ? "tiny" : m == BENCH_QUICK ? "quick" : "full";
}

long long bench_parse_count(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0)
        return -1;
    if (*end == 'k' || *end == 'K') {
        v *= 1000;
        end++;
    } else if (*end == 'M') {
        v *= 1000000;
        end++;
    }
    return *end ? -1 : v;
}

/* Whether the harness runs through Google Benchmark and takes its flags. */
static int takes_gb_flags(const char *harness)
{
    return strcmp(harness, "switch") == 0 || strcmp(harness, "alloc") == 0;
}

static void cli_usage(FILE *f, const char *harness, const char *summary, const bench_opt_t *opts)
{
    int gbf = takes_gb_flags(harness);
    fprintf(f, "usage: bench_%s [options]%s\n\n%s\n\n", harness, gbf ? " [--benchmark_* flags]" : "",
            summary);
    fprintf(f, "  %-22s write DIR/%s.csv and DIR/%s.machine.txt (default results)\n", "--out DIR",
            harness, harness);
    fprintf(f, "  %-22s full run (default)\n", "--full");
    fprintf(f, "  %-22s quick run (also when QUICK=1 is in the environment)\n", "--quick");
    fprintf(f, "  %-22s seconds-long run for smoke tests; numbers mean little\n", "--tiny");
    for (int i = 0; opts && opts[i].name; i++) {
        /* An option with a value names it as the first word of its help. */
        const char *h = opts[i].help ? opts[i].help : "";
        while (*h == ' ')
            h++;
        char left[64];
        if (opts[i].has_arg) {
            int n = (int)strcspn(h, " ");
            snprintf(left, sizeof left, "--%s %.*s", opts[i].name, n, h);
            h += n;
            while (*h == ' ')
                h++;
        } else {
            snprintf(left, sizeof left, "--%s", opts[i].name);
        }
        fprintf(f, "  %-22s %s\n", left, h);
    }
    if (gbf)
        fprintf(f, "  %-22s passed to Google Benchmark (e.g. --benchmark_filter=REGEX)\n",
                "--benchmark_*");
    fprintf(f, "  %-22s this text\n", "--help");
}

int bench_cli_parse(bench_cli_t *cli, int argc, char **argv, const char *harness,
                    const char *summary, const bench_opt_t *opts)
{
    memset(cli, 0, sizeof *cli);
    cli->out_dir = "results";
    const char *q = getenv("QUICK");
    if (q && strcmp(q, "1") == 0)
        cli->mode = BENCH_QUICK;
    cli->gb_flags = calloc((size_t)argc + 1, sizeof *cli->gb_flags);
    if (!cli->gb_flags) {
        fprintf(stderr, "bench_%s: out of memory\n", harness);
        return 2;
    }
    const char *a = NULL;
    for (int i = 1; i < argc; i++) {
        a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_usage(stdout, harness, summary, opts);
            return 1;
        }
        if (strncmp(a, "--benchmark_", 12) == 0 && takes_gb_flags(harness)) {
            cli->gb_flags[cli->n_gb_flags++] = argv[i];
            continue;
        }
        if (strcmp(a, "--full") == 0) { cli->mode = BENCH_FULL; continue; }
        if (strcmp(a, "--quick") == 0) { cli->mode = BENCH_QUICK; continue; }
        if (strcmp(a, "--tiny") == 0) { cli->mode = BENCH_TINY; continue; }
        if (strncmp(a, "--", 2) != 0)
            goto bad;
        const char *name = a + 2;
        size_t nlen = strcspn(name, "=");
        const char *val = name[nlen] == '=' ? name + nlen + 1 : NULL;
        if (nlen == 3 && strncmp(name, "out", 3) == 0) {
            if (!val && i + 1 < argc)
                val = argv[++i];
            if (!val || !*val) {
                fprintf(stderr, "bench_%s: --out needs a directory\n", harness);
                return 2;
            }
            cli->out_dir = val;
            continue;
        }
        const bench_opt_t *o = NULL;
        for (int k = 0; opts && opts[k].name; k++)
            if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, name, nlen) == 0)
                o = &opts[k];
        if (!o)
            goto bad;
        if (o->has_arg) {
            if (!val && i + 1 < argc)
                val = argv[++i];
            if (!val) {
                fprintf(stderr, "bench_%s: --%s needs a value\n", harness, o->name);
                return 2;
            }
            *o->str = val;
        } else {
            if (val) {
                fprintf(stderr, "bench_%s: --%s takes no value\n", harness, o->name);
                return 2;
            }
            *o->flag = 1;
        }
    }
    return 0;
bad:
    fprintf(stderr, "bench_%s: unknown argument '%s' (try --help)\n", harness, a);
    return 2;
}
