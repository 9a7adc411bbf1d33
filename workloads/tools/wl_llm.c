/*
 * wl-llm - N concurrent streaming LLM conversations on one concurrency model, measured
 * from inside the client process. Prints one JSON object on stdout; the harness
 * (workloads/bench/run.py) turns runs into results/llm.csv.
 */
#define _GNU_SOURCE
#include "wl.h"
#include "wl_llm.h"
#include "wl_report.h"
#include "wl_tls.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    const char *model;
    const char *target;
    long        n;
    int         workers;
    int         max_tokens;
    double      timeout_s;
    double      gap_us;
    long        db_k;
    int         db_hold;
    double      db_query_ms;
    long        stack_kib;
    const char *per_conv;
    int         retries;
    long        index_base;
    int         tls, tls_release;
    const char *tls_ca;
} opt = {
    .retries     = 2,
    .model       = NULL,
    .target      = NULL,
    .n           = 100,
    .workers     = 0,
    .max_tokens  = 64,
    .timeout_s   = 120,
    .gap_us      = 0,
    .db_k        = 0,
    .db_hold     = WL_DB_NONE,
    .db_query_ms = 2,
    .stack_kib   = 0,
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: wl-llm --model M --target HOST:PORT [options]\n"
        "Runs N concurrent streaming chat completions (OpenAI SSE) against HOST:PORT on one\n"
        "concurrency model and prints one JSON object with what it measured.\n"
        "  --model M          thread | pool | fiber | fiber-mt\n"
        "  --target H:P       the server (mock-llm), loopback IPv4\n"
        "  --n N              conversations (default 100)\n"
        "  --workers W        pool size (default 25) or fiber-mt schedulers (default cores)\n"
        "  --max-tokens T     max_tokens asked (default 64)\n"
        "  --timeout S        per conversation, from arrival (default 120)\n"
        "  --gap-us G         conversation i arrives at i*G us (default 0: all at once)\n"
        "  --db K             K shared \"database connections\" (default 0: none)\n"
        "  --db-hold H        job (held for the whole conversation) | query (default job)\n"
        "  --db-query-ms MS   simulated query time with --db-hold query (default 2)\n"
        "  --stack-kib KIB    thread or fiber stack size (default: model default)\n"
        "  --retries R        retry a failed request like the OpenAI SDKs (default 2):\n"
        "                     connection refused/reset, 408, 409, 429, 5xx before the\n"
        "                     stream starts; honours retry-after-ms / retry-after\n"
        "  --index-base B     conversation i sends x-mock-request-index: B+i (default 0),\n"
        "                     on every attempt: mock-llm's draws for it (first-token time,\n"
        "                     speed, length) are then the same on every model and run\n"
        "  --tls              HTTPS: TLS (OpenSSL) on every connection, handshake included\n"
        "  --tls-ca FILE      verify the server's certificate against FILE (PEM) and its\n"
        "                     IP address against the target; without it, not verified\n"
        "  --tls-release-buffers  free OpenSSL's record buffers while a connection idles\n"
        "  --per-conv FILE    also write one CSV line per conversation (times in ms from\n"
        "                     the first arrival): index,arrival,start,first_token,end,\n"
        "                     tokens,attempts,ok,cause\n"
        "  --help\n");
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "model", 1, 0, 'm' },      { "target", 1, 0, 't' },  { "n", 1, 0, 'n' },
        { "workers", 1, 0, 'w' },    { "max-tokens", 1, 0, 'k' }, { "timeout", 1, 0, 'T' },
        { "gap-us", 1, 0, 'g' },     { "db", 1, 0, 'd' },      { "db-hold", 1, 0, 'H' },
        { "db-query-ms", 1, 0, 'q' }, { "stack-kib", 1, 0, 's' }, { "help", 0, 0, 'h' },
        { "per-conv", 1, 0, 'p' },   { "retries", 1, 0, 'r' },    { "index-base", 1, 0, 'i' },
        { "tls", 0, 0, 'S' },        { "tls-ca", 1, 0, 'C' }, { "tls-release-buffers", 0, 0, 'R' },
        { 0, 0, 0, 0 },
    };
    int c, idx = 0;
    long v;
    while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (c) {
        case 'm': opt.model = optarg; break;
        case 't': opt.target = optarg; break;
        case 'n': if (wl_parse_long(optarg, 1, 10000000, &opt.n)) goto bad; break;
        case 'w': if (wl_parse_long(optarg, 1, 100000, &v)) goto bad; opt.workers = (int)v; break;
        case 'k': if (wl_parse_long(optarg, 1, 1000000, &v)) goto bad; opt.max_tokens = (int)v; break;
        case 'T': if (wl_parse_double(optarg, 0.001, 86400, &opt.timeout_s)) goto bad; break;
        case 'g': if (wl_parse_double(optarg, 0, 1e9, &opt.gap_us)) goto bad; break;
        case 'd': if (wl_parse_long(optarg, 0, 10000000, &opt.db_k)) goto bad; break;
        case 'H':
            if (strcmp(optarg, "job") == 0) opt.db_hold = WL_DB_JOB;
            else if (strcmp(optarg, "query") == 0) opt.db_hold = WL_DB_QUERY;
            else goto bad;
            break;
        case 'q': if (wl_parse_double(optarg, 0, 60000, &opt.db_query_ms)) goto bad; break;
        case 's': if (wl_parse_long(optarg, 16, 1 << 20, &opt.stack_kib)) goto bad; break;
        case 'p': opt.per_conv = optarg; break;
        case 'r': if (wl_parse_long(optarg, 0, 10, &v)) goto bad; opt.retries = (int)v; break;
        case 'i': if (wl_parse_long(optarg, 0, 1000000000000L, &opt.index_base)) goto bad; break;
        case 'S': opt.tls = 1; break;
        case 'C': opt.tls_ca = optarg; opt.tls = 1; break;
        case 'R': opt.tls_release = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        continue;
    bad:
        fprintf(stderr, "wl-llm: bad value for --%s: '%s' (see --help)\n", lo[idx].name, optarg);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "wl-llm: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!opt.model || !opt.target) {
        fprintf(stderr, "wl-llm: --model and --target are required (see --help)\n");
        return -1;
    }
    if (!wl_model_find(opt.model)) {
        fprintf(stderr, "wl-llm: unknown model '%s' (thread, pool, fiber, fiber-mt)\n", opt.model);
        return -1;
    }
    if (opt.db_k && opt.db_hold == WL_DB_NONE)
        opt.db_hold = WL_DB_JOB;
    return 0;
}

struct run {
    wl_conv_cfg_t cfg;
    wl_conv_t    *convs;
    uint64_t      t0, gap;
};

static void job(size_t i, wl_res_t *res, void *arg)
{
    struct run *r = arg;
    r->convs[i].arrival_ns = r->t0 + i * r->gap;
    wl_conv_run(&r->cfg, i, res, wl_sink_checksum, NULL, &r->convs[i]);
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    long nofile = wl_raise_nofile();
    const wl_model_t *m = wl_model_find(opt.model);
    struct run r = { 0 };
    if (wl_parse_addr(opt.target, &r.cfg.addr) != 0) {
        fprintf(stderr, "wl-llm: bad --target '%s' (want 127.x.x.x:PORT: loopback only)\n", opt.target);
        return 2;
    }
    r.cfg.max_tokens = opt.max_tokens;
    r.cfg.timeout_ns = (uint64_t)(opt.timeout_s * 1e9);
    r.cfg.db_hold = opt.db_k ? opt.db_hold : WL_DB_NONE;
    r.cfg.db_query_ns = (uint64_t)(opt.db_query_ms * 1e6);
    r.cfg.retries = opt.retries;
    r.cfg.index_base = (uint64_t)opt.index_base;
    if (opt.tls) {
        char err[300];
        wl_tls_opts_t to = { .ca_file = opt.tls_ca, .release_buffers = opt.tls_release };
        r.cfg.tls = wl_tls_client_new(&to, err, sizeof err);
        if (!r.cfg.tls) {
            fprintf(stderr, "wl-llm: TLS: %s\n", err);
            return 2;
        }
    }
    size_t n = (size_t)opt.n;
    r.convs = calloc(n, sizeof *r.convs);
    double *v = calloc(n, sizeof *v);
    if (!r.convs || !v) {
        fprintf(stderr, "wl-llm: out of memory for %zu conversations\n", n);
        return 1;
    }
    long rss_base = wl_self_status_kib("VmRSS");
    wl_sampler_t smp;
    wl_sampler_start(&smp);
    long kern_base = atomic_load(&smp.kernel_peak_kib), tcp_base = atomic_load(&smp.tcp_peak_kib);
    double cpu0 = wl_cpu_seconds();
    r.gap = (uint64_t)(opt.gap_us * 1e3);
    r.t0 = wl_now_ns();
    wl_jobs_cfg_t jc = {
        .n = n, .t0_ns = r.t0, .gap_ns = r.gap, .workers = opt.workers,
        .stack_size = (size_t)opt.stack_kib * 1024, .res_k = opt.db_k, .job = job, .arg = &r,
    };
    wl_run_stats_t st = { 0 };
    m->run_jobs(&jc, &st);
    uint64_t t_end = wl_now_ns();
    wl_sampler_stop(&smp);
    /* the measurement's own thread is not the workload's cost */
    double cpu = wl_cpu_seconds() - cpu0 - smp.cpu_s;
    long rss_peak = wl_self_status_kib("VmHWM");

    /* tally */
    size_t ok = 0, failed = 0, never = 0, retried = 0;
    uint64_t tokens = 0, last_end = r.t0;
    wl_cause_t causes[16]; /* a handful of distinct ones at most */
    size_t ncause = 0;
    for (size_t i = 0; i < n; i++) {
        wl_conv_t *c = &r.convs[i];
        if (c->end_ns > last_end)
            last_end = c->end_ns;
        if (c->attempts > 1)
            retried += c->attempts - 1;
        if (c->ok) {
            ok++;
            tokens += c->tokens;
            continue;
        }
        failed++;
        const char *why = c->start_ns ? c->cause : "not started (unit spawn failed)";
        if (!c->start_ns)
            never++;
        wl_cause_count(causes, &ncause, 16, why);
    }
    double elapsed = (double)(last_end - r.t0) / 1e9;
    (void)t_end;
    size_t k;
#define TTFT(i) ((double)(r.convs[i].first_token_ns - r.convs[i].arrival_ns) / 1e6)
#define TOTAL(i) ((double)(r.convs[i].end_ns - r.convs[i].arrival_ns) / 1e6)
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (r.convs[i].first_token_ns)
            v[k++] = TTFT(i);
    double ttft_p50 = wl_quantile(v, k, 0.5), ttft_p99 = wl_quantile(v, k, 0.99);
    double ttft_max = k ? v[k - 1] : 0;
    k = 0;
    for (size_t i = 0; i < n && i < WL_POOL_DEFAULT; i++)
        if (r.convs[i].first_token_ns)
            v[k++] = TTFT(i);
    double first25_p50 = wl_quantile(v, k, 0.5);
    k = 0;
    for (size_t i = WL_POOL_DEFAULT; i < n; i++)
        if (r.convs[i].first_token_ns)
            v[k++] = TTFT(i);
    double rest_p50 = wl_quantile(v, k, 0.5), rest_p99 = wl_quantile(v, k, 0.99);
    double user26 = n > WL_POOL_DEFAULT && r.convs[WL_POOL_DEFAULT].first_token_ns
                        ? TTFT(WL_POOL_DEFAULT) : -1;
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (r.convs[i].ok)
            v[k++] = TOTAL(i);
    double total_p50 = wl_quantile(v, k, 0.5), total_p99 = wl_quantile(v, k, 0.99);
    /* inter-token gaps of every conversation, merged; reported as the bucket's upper
     * bound (at most ~19% above the true quantile) */
    static const double qs[3] = { 0.5, 0.99, 0.999 };
    double itl_q[3];
    uint64_t itl_n = wl_itl_quantiles_ms(r.convs, n, qs, itl_q, 3);
    long kern_peak = atomic_load(&smp.kernel_peak_kib), tcp_peak = atomic_load(&smp.tcp_peak_kib);
    long pte = atomic_load(&smp.pte_peak_kib), threads = atomic_load(&smp.threads_peak);
    /* the sampler may miss a short peak of threads; the model's own count does not */
    if (strcmp(m->kind, "thread") == 0 && (long)st.peak_live + 2 > threads)
        threads = (long)st.peak_live + 2;
    long kern_est = pte + threads * WL_KERNEL_STACK_KIB;

    if (opt.per_conv) {
        FILE *f = fopen(opt.per_conv, "w");
        if (!f) {
            fprintf(stderr, "wl-llm: cannot write %s: %s\n", opt.per_conv, strerror(errno));
        } else {
            fprintf(f, "index,arrival_ms,start_ms,first_token_ms,end_ms,tokens,attempts,ok,"
                       "cause\n");
#define REL(t) ((t) ? (double)((t) - r.t0) / 1e6 : -1.0)
            for (size_t i = 0; i < n; i++) {
                wl_conv_t *c = &r.convs[i];
                fprintf(f, "%zu,%.3f,%.3f,%.3f,%.3f,%u,%u,%d,\"%s\"\n", i,
                        REL(c->arrival_ns), REL(c->start_ns), REL(c->first_token_ns),
                        REL(c->end_ns), c->tokens, c->attempts, c->ok,
                        c->start_ns ? c->cause : "not started");
            }
#undef REL
            fclose(f);
        }
    }
    printf("{\"model\":\"%s\",\"kind\":\"%s\",\"n\":%zu,\"ok\":%zu,\"failed\":%zu,"
           "\"not_started\":%zu,\"retries\":%zu,\"elapsed_s\":%.6f,\"conv_per_s\":%.3f,\"tokens\":%llu,"
           "\"tokens_per_s\":%.3f,\"ttft_p50_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"ttft_max_ms\":%.3f,"
           "\"ttft_user26_ms\":%.3f,\"ttft_first25_p50_ms\":%.3f,\"ttft_rest_p50_ms\":%.3f,"
           "\"ttft_rest_p99_ms\":%.3f,\"total_p50_ms\":%.3f,\"total_p99_ms\":%.3f,"
           "\"itl_p50_ms\":%.3f,\"itl_p99_ms\":%.3f,\"itl_p999_ms\":%.3f,\"itl_gaps\":%llu,"
           "\"rss_base_kib\":%ld,\"rss_peak_kib\":%ld,\"kernel_est_kib\":%ld,\"pte_peak_kib\":%ld,"
           "\"threads_peak\":%ld,\"sys_kernel_delta_kib\":%ld,"
           "\"tcp_mem_delta_kib\":%ld,\"cpu_s\":%.6f,\"cpu_s_per_1k_tokens\":%.6f,"
           "\"peak_live\":%zu,\"units_started\":%zu,\"spawn_failed\":%zu,\"spawn_errno\":\"%s\","
           "\"tls\":%d,\"db_k\":%ld,\"db_peak_held\":%ld,\"db_wait_mean_ms\":%.3f,\"nofile\":%ld,"
           "\"causes\":{",
           m->name, m->kind, n, ok, failed, never, retried, elapsed, elapsed > 0 ? (double)ok / elapsed : 0,
           (unsigned long long)tokens, elapsed > 0 ? (double)tokens / elapsed : 0, ttft_p50,
           ttft_p99, ttft_max, user26, first25_p50, rest_p50, rest_p99, total_p50, total_p99,
           itl_q[0], itl_q[1], itl_q[2], (unsigned long long)itl_n,
           rss_base, rss_peak, kern_est, pte, threads, kern_peak >= 0 && kern_base >= 0 ? kern_peak - kern_base : -1,
           tcp_peak >= 0 && tcp_base >= 0 ? tcp_peak - tcp_base : -1, cpu,
           tokens ? cpu / ((double)tokens / 1000.0) : 0, st.peak_live, st.started,
           st.spawn_failed, st.spawn_failed ? wl_errname(st.spawn_errno) : "", opt.tls, opt.db_k,
           st.res_peak, n ? (double)st.res_wait_ns / 1e6 / (double)n : 0, nofile);
    wl_causes_print(stdout, causes, ncause);
    printf("}}\n");
    free(v);
    free(r.convs);
    wl_tls_free(r.cfg.tls);
    return 0;
}
