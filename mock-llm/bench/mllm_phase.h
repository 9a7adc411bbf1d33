/*
 * mllm_phase.h - how evenly streams' times fall over the event period (mllm-load's
 * phase_peak_ratio), apart from the client so a test can check the computation.
 */
#ifndef MLLM_PHASE_H
#define MLLM_PHASE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* The fullest ~1 ms of phase (time modulo the period) against the mean, over the n times
 * in t_ns (0: none). 1 is an even tiling; NAN for a period under 2 ms or no time. The
 * bins tile the period exactly: round(P) bins of P/round(P) ms each (before, 1 ms bins
 * with the remainder in the last, so at 7 tokens/s a last bin of 0.857 ms merged into
 * the one before it and a perfect spread read 1.85). */
static inline double mllm_phase_peak_ratio(const uint64_t *t_ns, long n, double period_ms)
{
    if (!(period_ms >= 2) || period_ms > 1e7)
        return NAN;
    uint64_t per = (uint64_t)llround(period_ms * 1e6);
    uint64_t nb = (uint64_t)llround(period_ms); /* bins of ~1 ms */
    long *bin = calloc((size_t)nb, sizeof *bin), got = 0, peak = 0;
    if (!bin)
        return NAN;
    for (long i = 0; i < n; i++)
        if (t_ns[i]) {
            uint64_t b = (uint64_t)((unsigned __int128)(t_ns[i] % per) * nb / per); /* < nb */
            bin[b]++;
            got++;
        }
    for (uint64_t b = 0; b < nb; b++)
        if (bin[b] > peak)
            peak = bin[b];
    free(bin);
    return got ? (double)peak / ((double)got / (double)nb) : NAN;
}

#endif
