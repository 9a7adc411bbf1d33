/*
 * llm_stats.c - what every LLM client here shares besides the conversation itself:
 * inter-token-latency buckets and their quantiles, the tally of failure causes, the
 * content checksum sink.
 *
 * Apart from llm.c on purpose: llm.c's per-thread read and content buffers were 20 KiB
 * of _Thread_local, which came with any program that linked llm.o, and glibc zeroes a
 * thread's static TLS at pthread_create, so each of wl-curl's conversation threads paid
 * 20 KiB of resident stack for buffers wl-curl never uses (40 vs 20 KiB per thread stack
 * measured). Those buffers are on the heap now; wl-curl still links only this file.
 */
#define _GNU_SOURCE
#include "wl_llm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Per thread: a sum per scheduler thread is what wl_sink_thread_sum reports. */
static _Thread_local uint64_t tl_sink_sum;

int wl_itl_bucket(uint64_t gap_ns)
{
    double us = (double)gap_ns / 1000.0;
    if (us < 1.0)
        return 0;
    int b = (int)(4.0 * log2(us));
    return b >= WL_ITL_BUCKETS ? WL_ITL_BUCKETS - 1 : b;
}

double wl_itl_bucket_upper_us(int b)
{
    return exp2((double)(b + 1) / 4.0);
}

uint64_t wl_itl_quantiles_ms(const wl_conv_t *convs, size_t n, const double *qs,
                             double *q_ms, int nq)
{
    uint64_t itl[WL_ITL_BUCKETS] = { 0 }, itl_n = 0;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < WL_ITL_BUCKETS; b++) {
            itl[b] += convs[i].itl_hist[b];
            itl_n += convs[i].itl_hist[b];
        }
    for (int q = 0; q < nq; q++) {
        q_ms[q] = 0;
        uint64_t rank = (uint64_t)(qs[q] * (double)itl_n + 0.999999), seen = 0;
        for (int b = 0; b < WL_ITL_BUCKETS && itl_n; b++) {
            seen += itl[b];
            if (seen >= rank) {
                q_ms[q] = wl_itl_bucket_upper_us(b) / 1000.0;
                break;
            }
        }
    }
    return itl_n;
}

void wl_cause_count(wl_cause_t *causes, size_t *ncause, size_t cap, const char *why)
{
    size_t k = 0;
    while (k < *ncause && strcmp(causes[k].what, why) != 0)
        k++;
    if (k == *ncause && *ncause < cap) {
        snprintf(causes[*ncause].what, sizeof causes[0].what, "%s", why);
        causes[(*ncause)++].n = 0;
    }
    if (k < *ncause)
        causes[k].n++;
}

void wl_causes_print(FILE *f, const wl_cause_t *causes, size_t ncause)
{
    for (size_t i = 0; i < ncause; i++)
        fprintf(f, "%s\"%s\":%zu", i ? "," : "", causes[i].what, causes[i].n);
}

const char *wl_errname(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

void wl_sink_checksum(size_t conv, const char *content, size_t n, void *arg)
{
    (void)arg;
    uint64_t h = tl_sink_sum ^ (conv * 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)content[i]) * 0x100000001b3ull;
    tl_sink_sum = h;
}

uint64_t wl_sink_thread_sum(void)
{
    return tl_sink_sum;
}
