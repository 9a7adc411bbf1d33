/*
 * cli.c - what the command-line tools (wl-llm, wl-curl, wl-load, the servers) share: one
 * strict number parser for their flags, and the stop a server takes from a signal or its
 * --max-seconds.
 */
#define _GNU_SOURCE
#include "wl.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>

int wl_parse_long(const char *s, long lo, long hi, long *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int wl_parse_double(const char *s, double lo, double hi, double *out)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || *e || e == s || !(v >= lo && v <= hi)) /* written so that NaN fails */
        return -1;
    *out = v;
    return 0;
}

/* The stop the signal handler requests: one per process (a tool serves once). */
static wl_stop_t *sig_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    wl_stop_request(sig_stop); /* async-signal-safe: wakes the serving fibers or threads */
}

int wl_stop_on_signals(wl_stop_t *s)
{
    if (wl_stop_init(s) != 0)
        return -1;
    sig_stop = s;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_stop_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    return 0;
}

int wl_stop_wait(wl_stop_t *s, uint64_t end_ns, int extra_fd)
{
    while (!wl_stop_requested(s)) {
        uint64_t now = wl_now_ns();
        if (now >= end_ns)
            break;
        /* rounded up: a poll that returns just before the end would spin */
        uint64_t left_ms = (end_ns - now + 999999) / 1000000;
        struct pollfd pf[2] = { { .fd = s->fd, .events = POLLIN },
                                { .fd = extra_fd, .events = POLLIN } };
        int r = poll(pf, extra_fd >= 0 ? 2 : 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (r > 0 && extra_fd >= 0 && (pf[1].revents & POLLIN))
            return 1;
    }
    return 0;
}
