/*
 * wl-http - the throughput workload's keep-alive HTTP/1.1 server on one concurrency
 * model. Prints "wl-http listening on 127.0.0.1:PORT" when ready; SIGTERM or SIGINT (or
 * --max-seconds) stops it, and it then prints one JSON line of what it saw.
 */
#define _GNU_SOURCE
#include "wl.h"
#include "wl_http.h"
#include "wl_llm.h"
#include "wl_report.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static struct {
    const char *model;
    const char *listen;
    int         workers;
    const char *handler;
    const char *upstream;
    int         upstream_tokens;
    long        stack_kib;
    double      idle_s;
    double      max_seconds;
} opt = {
    .model           = NULL,
    .listen          = "127.0.0.1:0",
    .workers         = 0,
    .handler         = "hello",
    .upstream        = NULL,
    .upstream_tokens = 16,
    .stack_kib       = 0,
    .idle_s          = 0,
    .max_seconds     = 600,
};

static wl_stop_t g_stop;
static int g_report_fd = -1; /* an eventfd: SIGUSR1 makes it readable */

/* SIGUSR1 asks for the counters so far: the harness reads them before and after each
 * load run. Printed by the watchdog thread, not in the handler. */
static void on_usr1(int sig)
{
    (void)sig;
    uint64_t one = 1;
    ssize_t n = write(g_report_fd, &one, sizeof one);
    (void)n;
}

static wl_http_srv_t srv;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: wl-http --model M [options]\n"
        "A keep-alive HTTP/1.1 server answering every request with \"Hello, world\\n\".\n"
        "  --model M           thread | pool | fiber | fiber-mt\n"
        "  --listen H:P        loopback address (default 127.0.0.1:0: pick a port)\n"
        "  --workers W         pool size (default 25) or fiber-mt schedulers (default cores)\n"
        "  --handler H         hello | upstream (call mock-llm, non-streaming, first)\n"
        "  --upstream H:P      mock-llm address, for --handler upstream\n"
        "  --upstream-tokens T max_tokens of the upstream call (default 16)\n"
        "  --stack-kib KIB     thread or fiber stack size (default: model default)\n"
        "  --idle-s S          close connections idle this long (default 0: never)\n"
        "  --max-seconds S     stop by itself after S seconds (default 600)\n"
        "SIGUSR1 prints a JSON line of the counters so far (conns_served: connections\n"
        "that got at least one response).\n"
        "  --help\n");
}

static void on_ready(uint16_t port, void *arg)
{
    (void)arg;
    printf("wl-http listening on 127.0.0.1:%u\n", port);
    fflush(stdout);
}

/* Sleeps until a report is asked for, the stop is requested or --max-seconds pass. */
static void *watchdog(void *p)
{
    uint64_t end = wl_now_ns() + (uint64_t)(*(double *)p * 1e9);
    while (wl_stop_wait(&g_stop, end, g_report_fd) == 1) {
        uint64_t v;
        if (read(g_report_fd, &v, sizeof v) == sizeof v) {
            printf("{\"report\":1,\"conns_served\":%lu,\"bad_requests\":%lu,"
                   "\"upstream_errors\":%lu}\n",
                   atomic_load(&srv.conns_served), atomic_load(&srv.bad_requests),
                   atomic_load(&srv.upstream_errors));
            fflush(stdout);
        }
    }
    wl_stop_request(&g_stop);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "model", 1, 0, 'm' },    { "listen", 1, 0, 'l' },    { "workers", 1, 0, 'w' },
        { "handler", 1, 0, 'H' },  { "upstream", 1, 0, 'u' },  { "upstream-tokens", 1, 0, 'k' },
        { "stack-kib", 1, 0, 's' }, { "idle-s", 1, 0, 'i' },   { "max-seconds", 1, 0, 'x' },
        { "help", 0, 0, 'h' },     { 0, 0, 0, 0 },
    };
    int c, idx = 0;
    long v;
    while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (c) {
        case 'm': opt.model = optarg; break;
        case 'l': opt.listen = optarg; break;
        case 'w': if (wl_parse_long(optarg, 1, 100000, &v)) goto bad; opt.workers = (int)v; break;
        case 'H': opt.handler = optarg; break;
        case 'u': opt.upstream = optarg; break;
        case 'k': if (wl_parse_long(optarg, 1, INT_MAX, &v)) goto bad; opt.upstream_tokens = (int)v; break;
        case 's': if (wl_parse_long(optarg, 16, 1 << 20, &opt.stack_kib)) goto bad; break;
        case 'i': if (wl_parse_double(optarg, 0, 1e9, &opt.idle_s)) goto bad; break;
        case 'x': if (wl_parse_double(optarg, 1e-9, 1e9, &opt.max_seconds)) goto bad; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        continue;
    bad:
        fprintf(stderr, "wl-http: bad value for --%s: '%s' (see --help)\n", lo[idx].name, optarg);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "wl-http: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const wl_model_t *m = opt.model ? wl_model_find(opt.model) : NULL;
    if (!m) {
        fprintf(stderr, "wl-http: --model must be one of thread, pool, fiber, fiber-mt\n");
        return 2;
    }
    if (strcmp(opt.handler, "upstream") == 0) {
        srv.upstream = 1;
        if (!opt.upstream || wl_parse_addr(opt.upstream, &srv.upstream_addr) != 0) {
            fprintf(stderr, "wl-http: --handler upstream needs --upstream 127.x.x.x:PORT\n");
            return 2;
        }
    } else if (strcmp(opt.handler, "hello") != 0) {
        fprintf(stderr, "wl-http: --handler must be hello or upstream\n");
        return 2;
    }
    srv.upstream_tokens = opt.upstream_tokens;
    srv.idle_ns = (uint64_t)(opt.idle_s * 1e9);
    wl_serve_cfg_t cfg = {
        .workers = opt.workers, .stack_size = (size_t)opt.stack_kib * 1024,
        .handler = wl_http_handle, .arg = &srv, .stop = &g_stop, .on_ready = on_ready,
    };
    if (wl_parse_addr(opt.listen, &cfg.addr) != 0) {
        fprintf(stderr, "wl-http: bad --listen '%s' (want 127.x.x.x:PORT: loopback only)\n", opt.listen);
        return 2;
    }
    g_report_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g_report_fd < 0 || wl_stop_on_signals(&g_stop) != 0) {
        perror("wl-http: eventfd");
        return 1;
    }
    struct sigaction su = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
    sigaction(SIGUSR1, &su, NULL);
    wl_raise_nofile();
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, &opt.max_seconds);
    wl_run_stats_t st = { 0 };
    double cpu0 = wl_cpu_seconds();
    if (m->serve(&cfg, &st) != 0) {
        fprintf(stderr, "wl-http: cannot listen on %s: %s\n", opt.listen, strerror(errno));
        wl_stop_request(&g_stop);
        pthread_join(wd, NULL);
        return 1;
    }
    wl_stop_request(&g_stop);
    pthread_join(wd, NULL);
    printf("{\"model\":\"%s\",\"requests\":%lu,\"bad_requests\":%lu,\"upstream_errors\":%lu,"
           "\"conns\":%zu,\"peak_live\":%zu,\"spawn_failed\":%zu,\"spawn_errno\":\"%s\","
           "\"accept_failed\":%zu,\"accept_errno\":\"%s\",\"cpu_s\":%.6f,\"rss_peak_kib\":%ld}\n",
           m->name, atomic_load(&srv.requests), atomic_load(&srv.bad_requests),
           atomic_load(&srv.upstream_errors), st.started, st.peak_live, st.spawn_failed,
           st.spawn_failed ? wl_errname(st.spawn_errno) : "", st.accept_failed,
           st.accept_failed ? wl_errname(st.accept_errno) : "", wl_cpu_seconds() - cpu0,
           wl_self_status_kib("VmHWM"));
    return 0;
}
