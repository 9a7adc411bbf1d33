/* report.c - in-process measurement: quantiles, /proc readings, the peak sampler. */
#define _GNU_SOURCE
#include "wl_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double wl_quantile(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t k = (size_t)(p * (double)n + 0.999999); /* nearest rank: ceil(p*n) */
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static long file_key_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    size_t kl = strlen(key);
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

long wl_self_status_kib(const char *key)
{
    return file_key_kib("/proc/self/status", key);
}

long wl_kernel_mem_kib(void)
{
    /* one pass over /proc/meminfo: the sampler calls this 20 times a second */
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    long sum = 0;
    int found = 0;
    while (fgets(line, sizeof line, f) && found < 3) {
        if (strncmp(line, "KernelStack:", 12) == 0 || strncmp(line, "PageTables:", 11) == 0 ||
            strncmp(line, "SUnreclaim:", 11) == 0) {
            sum += strtol(strchr(line, ':') + 1, NULL, 10);
            found++;
        }
    }
    fclose(f);
    return found == 3 ? sum : -1;
}

/* VmPTE and Threads from one read of /proc/self/status. */
static void self_pte_threads(long *pte, long *threads)
{
    *pte = *threads = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmPTE:", 6) == 0)
            *pte = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "Threads:", 8) == 0)
            *threads = strtol(line + 8, NULL, 10);
    }
    fclose(f);
}

long wl_tcp_mem_kib(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "TCP:", 4) == 0) {
            char *m = strstr(line, " mem ");
            if (m)
                v = strtol(m + 5, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
        }
    }
    fclose(f);
    return v;
}

double wl_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

long wl_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

static void keep_max(atomic_long *m, long v)
{
    if (v > atomic_load(m))
        atomic_store(m, v);
}

static void sample(wl_sampler_t *s)
{
    keep_max(&s->kernel_peak_kib, wl_kernel_mem_kib());
    keep_max(&s->tcp_peak_kib, wl_tcp_mem_kib());
    long pte, threads;
    self_pte_threads(&pte, &threads);
    keep_max(&s->pte_peak_kib, pte);
    keep_max(&s->threads_peak, threads);
}

static void *sampler_main(void *p)
{
    wl_sampler_t *s = p;
    while (!atomic_load(&s->stop)) {
        sample(s);
        struct timespec ts = { 0, 50 * 1000000 };
        nanosleep(&ts, NULL);
    }
    sample(s);
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    s->cpu_s = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
    return NULL;
}

int wl_sampler_start(wl_sampler_t *s)
{
    memset(s, 0, sizeof *s);
    atomic_store(&s->kernel_peak_kib, -1);
    atomic_store(&s->tcp_peak_kib, -1);
    atomic_store(&s->pte_peak_kib, -1);
    atomic_store(&s->threads_peak, -1);
    sample(s);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    int e = pthread_create(&s->tid, &a, sampler_main, s);
    pthread_attr_destroy(&a);
    s->running = e == 0;
    return e == 0 ? 0 : -1;
}

void wl_sampler_stop(wl_sampler_t *s)
{
    if (!s->running)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->tid, NULL);
    s->running = 0;
}
