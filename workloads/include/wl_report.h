/*
 * wl_report.h - measuring a run from inside the process: percentiles, the process's
 * memory and CPU, the kernel's memory, and a background sampler for peaks.
 */
#ifndef WL_REPORT_H
#define WL_REPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The p-quantile (0..1) of v[0..n) by nearest rank; sorts v. Returns 0 when n is 0. */
double wl_quantile(double *v, size_t n, double p);

/* A "Key:   123 kB" value from /proc/self/status (e.g. "VmRSS", "VmHWM"), in KiB, or -1. */
long wl_self_status_kib(const char *key);

/* Kernel memory that grows with threads and sockets, system-wide, in KiB:
 * KernelStack + PageTables + SUnreclaim from /proc/meminfo. -1 when unreadable. */
long wl_kernel_mem_kib(void);

/* TCP socket buffer memory, system-wide ("TCP: ... mem N" pages in /proc/net/sockstat),
 * in KiB, or -1. */
long wl_tcp_mem_kib(void);

/* User + system CPU seconds of the whole process so far. */
double wl_cpu_seconds(void);

/* Raises the soft open-files limit to the hard one. Returns the new soft limit. */
long wl_raise_nofile(void);

/* Samples every 50 ms, on a thread of its own, and keeps the maxima of: the system-wide
 * kernel memory and TCP buffer memory (noisy on a shared machine: other processes move
 * them), and this process's own page tables (VmPTE) and thread count. The process's own
 * kernel cost is then estimated as VmPTE + threads x 16 KiB (the x86-64 kernel stack). */
typedef struct wl_sampler {
    pthread_t   tid;
    atomic_int  stop;
    atomic_long kernel_peak_kib, tcp_peak_kib, pte_peak_kib, threads_peak;
    double      cpu_s;   /* the sampler thread's own CPU time, to subtract from the run's */
    int         running;
} wl_sampler_t;

/* Kernel stack per thread on x86-64 and arm64 (THREAD_SIZE, 16 KiB since Linux 3.15). */
#define WL_KERNEL_STACK_KIB 16

int  wl_sampler_start(wl_sampler_t *s);
void wl_sampler_stop(wl_sampler_t *s);

#ifdef __cplusplus
}
#endif

#endif
