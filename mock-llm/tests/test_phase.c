/*
 * test_phase.c - mllm-load's phase_peak_ratio (bench/mllm_phase.h) on made-up times:
 * times spread perfectly evenly over the period read 1 (within a bin's rounding), for
 * whole and fractional periods; bunched times read their bunching.
 */
#include "../bench/mllm_phase.h"

#include <stdio.h>

static int fails;

static void even(double period_ms, long n)
{
    uint64_t *t = malloc((size_t)n * sizeof *t);
    double per = period_ms * 1e6;
    for (long i = 0; i < n; i++) /* evenly over a period, starting 7 periods in */
        t[i] = (uint64_t)(7 * per + (double)i * per / (double)n) + 1;
    double r = mllm_phase_peak_ratio(t, n, period_ms);
    /* each bin holds n/bins +- 1 time: the peak over the mean stays within 1 + bins/n */
    double bound = 1.0 + (period_ms + 1) / (double)n + 1e-9;
    if (!(r >= 1.0 && r <= bound)) {
        printf("FAIL: %ld times spread evenly over %.6g ms read %.3f (want 1 to %.3f)\n", n,
               period_ms, r, bound);
        fails++;
    } else {
        printf("ok: %ld times evenly over %.6g ms: %.3f\n", n, period_ms, r);
    }
    free(t);
}

int main(void)
{
    even(200, 10000);            /* 5 tok/s: whole ms */
    even(1000.0 / 7, 10000);     /* 7 tok/s: 142.857 ms */
    even(1000.0 / 6.5, 10000);   /* 153.846 ms */
    even(1000.0 / 60, 1000);     /* 16.667 ms */
    even(2.5, 1000);
    /* all in one bin: the ratio is the number of bins */
    uint64_t t[100];
    for (int i = 0; i < 100; i++)
        t[i] = 1000000000ull + (uint64_t)i;
    double r = mllm_phase_peak_ratio(t, 100, 10);
    if (r < 9.99 || r > 10.01) {
        printf("FAIL: 100 times in one bin of a 10 ms period read %.3f (want 10)\n", r);
        fails++;
    }
    if (!isnan(mllm_phase_peak_ratio(t, 100, 1.5)) || !isnan(mllm_phase_peak_ratio(t, 0, 10))) {
        printf("FAIL: a period under 2 ms or no times is not NAN\n");
        fails++;
    }
    return fails ? 1 : 0;
}
