/*
 * wl-fake-llm - the tests' tiny OpenAI-style streaming server (see wl_fake.h), on the
 * fiber model. Prints "wl-fake-llm listening on 127.0.0.1:PORT" when ready; SIGTERM stops
 * it. Not a replacement for mock-llm: fixed timing only.
 */
#define _GNU_SOURCE
#include "wl.h"
#include "wl_fake.h"
#include "wl_report.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static wl_stop_t g_stop;

static void on_ready(uint16_t port, void *arg)
{
    (void)arg;
    printf("wl-fake-llm listening on 127.0.0.1:%u\n", port);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "listen", 1, 0, 'l' }, { "tokens", 1, 0, 'n' }, { "ttft-ms", 1, 0, 't' },
        { "gap-ms", 1, 0, 'g' }, { "odd", 0, 0, 'o' },    { "no-chunked", 0, 0, 'c' },
        { "model", 1, 0, 'm' },  { "help", 0, 0, 'h' },   { 0, 0, 0, 0 },
    };
    static wl_fake_cfg_t fc = { .tokens = 20, .ttft_ns = 10000000, .gap_ns = 5000000, .chunked = 1 };
    const char *listen = "127.0.0.1:0", *model = "fiber";
    int c, idx = 0;
    long v;
    double d;
    while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'n': if (wl_parse_long(optarg, 0, INT_MAX, &v)) goto bad; fc.tokens = (int)v; break;
        case 't': if (wl_parse_double(optarg, 0, 1e9, &d)) goto bad; fc.ttft_ns = (uint64_t)(d * 1e6); break;
        case 'g': if (wl_parse_double(optarg, 0, 1e9, &d)) goto bad; fc.gap_ns = (uint64_t)(d * 1e6); break;
        case 'o': fc.odd_framing = 1; break;
        case 'c': fc.chunked = 0; break;
        case 'm': model = optarg; break;
        case 'h':
            printf("usage: wl-fake-llm [--listen H:P] [--tokens N] [--ttft-ms MS] [--gap-ms MS]\n"
                   "                   [--odd] [--no-chunked] [--model fiber|fiber-mt|thread|pool]\n"
                   "A tiny OpenAI-style chat server with fixed timing, for tests.\n");
            return 0;
        default: return 2;
        }
        continue;
    bad:
        fprintf(stderr, "wl-fake-llm: bad value for --%s: '%s'\n", lo[idx].name, optarg);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "wl-fake-llm: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const wl_model_t *m = wl_model_find(model);
    if (!m) {
        fprintf(stderr, "wl-fake-llm: unknown model '%s'\n", model);
        return 2;
    }
    wl_serve_cfg_t cfg = { .handler = wl_fake_llm_handle, .arg = &fc, .stop = &g_stop,
                           .on_ready = on_ready };
    if (wl_parse_addr(listen, &cfg.addr) != 0) {
        fprintf(stderr, "wl-fake-llm: bad --listen '%s' (want 127.x.x.x:PORT)\n", listen);
        return 2;
    }
    if (wl_stop_on_signals(&g_stop) != 0) {
        perror("wl-fake-llm: eventfd");
        return 1;
    }
    wl_raise_nofile();
    wl_run_stats_t st;
    if (m->serve(&cfg, &st) != 0) {
        perror("wl-fake-llm: listen");
        return 1;
    }
    return 0;
}
