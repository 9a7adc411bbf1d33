/* mllm_config.c - the one place that turns flags into the server configuration. */
#define _GNU_SOURCE
#include "mllm_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mllm_log_level = MLLM_LOG_WARN;

void mllm_log(int level, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    if (level > mllm_log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mock-llm %s: ", names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *const default_models[] = {
    "mock", "gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude-sonnet-4", "claude-3-5-haiku",
    "gemini-2.0-flash", "llama-3.1-8b-instruct",
};

void mllm_config_defaults(mllm_config_t *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->host, "127.0.0.1");
    c->port = 8080;
    c->profile = *mllm_profile_find("gpt-4o");
    c->seed = 42;
    c->max_conns = 19000;
    c->time_scale = 1.0;
    c->nmodels = (int)(sizeof default_models / sizeof default_models[0]);
    for (int i = 0; i < c->nmodels; i++)
        c->models[i] = default_models[i];
    c->log_level = MLLM_LOG_WARN;
    c->max_request_line = 8192;
    c->max_head = 16384;
    c->max_body = 1 << 20;
    c->max_pending = 256 << 10;
    c->idle_timeout_ns = 60ull * 1000000000u;
    c->header_timeout_ns = 10ull * 1000000000u;
    c->write_timeout_ns = 30ull * 1000000000u;
    c->error_statuses[0] = 429;
    c->error_statuses[1] = 500;
    c->error_statuses[2] = 503;
    c->nerror_statuses = 3;
    c->retry_after_ms = 1000;
    c->tool_call_rate = 1.0;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: mock-llm [options]\n"
"An OpenAI-compatible (and Anthropic Messages) streaming LLM server with token timing\n"
"taken from published measurements, on the fiberbench fiber runtime (one core).\n"
"\n"
"  --listen ADDR:PORT        IPv4 address and port (default 127.0.0.1:8080; port 0 =\n"
"                            ephemeral). Prints 'mock-llm listening on ADDR:PORT'.\n"
"  --profile NAME            timing profile (default gpt-4o); --list-profiles shows them\n"
"  --time-scale X            multiply every delay by X (0.01 = 100x faster; 0 = no waits)\n"
"  --seed N                  seed of every per-request generator (default 42)\n"
"  --models a,b,c            served model ids (default mock,gpt-4o,gpt-4o-mini,gpt-4.1,\n"
"                            claude-sonnet-4,claude-3-5-haiku,gemini-2.0-flash,\n"
"                            llama-3.1-8b-instruct)\n"
"  --tokens-per-event N      tokens per stream event (default: the profile's)\n"
"  --ttft-ms X               override the profile's median time to first token\n"
"  --tps X                   override the profile's median tokens/s (0 = no gaps)\n"
"  --stall-rate P            override the profile's share of gaps that stall (0 = no\n"
"                            stalls: a run ends with its slowest first token and\n"
"                            length, not with a rare multi-second stall)\n"
"  --output-tokens N         every response has exactly N tokens (before max_tokens)\n"
"  --prefill-us-per-token X  override the profile's prefill time: TTFT grows by X us\n"
"                            per prompt token (usage.prompt_tokens, ~4 bytes each)\n"
"  --tool-call-rate P        share of requests with tools and tool_choice \"auto\"\n"
"                            answered with a tool call (default 1; never after a\n"
"                            tool result; \"required\" and a named tool always call)\n"
"  --max-conns N             open connections at most; more get 503 (default 19000)\n"
"  --max-body BYTES          request body limit, 413 above (default 1048576)\n"
"  --max-header BYTES        request head limit, 431 above (default 16384)\n"
"  --max-pending BYTES       unread output kept for a slow reader before its stream\n"
"                            ends with an error event (default 262144)\n"
"  --idle-timeout S          close idle keep-alive connections after S s (default 60)\n"
"  --header-timeout S        a request head must arrive within S s (default 10)\n"
"  --write-timeout S         a blocked reader is dropped after S s (default 30)\n"
"  --error-rate P            answer share P of requests with an injected error\n"
"  --error-statuses LIST     statuses to inject, from 429,500,503 (default all three)\n"
"  --retry-after-ms N        retry-after of injected 429/503 (default 1000)\n"
"  --midstream-error-rate P  share of streams that end in an error frame halfway\n"
"  --disconnect-rate P       share of streams whose connection is cut halfway\n"
"  --sndbuf BYTES            SO_SNDBUF of each client socket (default: the kernel's\n"
"                            autotuning, up to MBs); small makes slow readers back up\n"
"  --busy-poll               spin instead of sleeping between deadlines (sockets\n"
"                            polled every 25 us meanwhile): lower lateness for a\n"
"                            whole core (a benchmark option)\n"
"  --tls                     HTTPS (OpenSSL) with a self-signed certificate made at\n"
"                            start (ECDSA P-256; localhost, 127.0.0.1, the listen IP)\n"
"  --tls-cert FILE, --tls-key FILE  serve this PEM certificate (chain) and key instead\n"
"                            (implies --tls)\n"
"  --tls-cert-out FILE       write the certificate in use to FILE (PEM), for clients to\n"
"                            trust: curl --cacert, NODE_EXTRA_CA_CERTS, wl-llm --tls-ca\n"
"  --tls-keep-buffers        keep OpenSSL's ~34 KiB of record buffers on idle\n"
"                            connections (default: released between writes)\n"
"  --max-batch-events N      events due at once that go out in one write, at most\n"
"                            (1-256, default 256; 1: every event its own write, as\n"
"                            the benchmark's floor does)\n"
"  --log-level LEVEL         error, warn (default), info or debug (stderr)\n"
"  --list-profiles           print the profiles and exit\n"
"  --help                    this text\n"
"\n"
"A request header 'x-mock-inject: 429|500|503|midstream|disconnect' forces one\n"
"injection; 'x-mock-request-index: N' (0 to 2^64-1) picks the per-request generator\n"
"explicitly. Endpoints: POST /v1/chat/completions, POST /v1/responses,\n"
"POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models, GET /v1/models/ID,\n"
"GET /health, GET /metrics (Prometheus).\n");
}

static void list_profiles(void)
{
    printf("%-16s %9s %6s %10s %8s %6s %6s %5s  %s\n", "profile", "ttft_s", "sigma",
           "prefill_us", "tok/s", "sigma", "stall", "t/ev", "about");
    for (const mllm_profile_t *p = mllm_profiles; p->name; p++)
        printf("%-16s %9.3f %6.2f %10.0f %8.1f %6.2f %5.1f%% %2d-%-2d  %s\n", p->name, p->ttft_s,
               p->ttft_sigma, p->ttft_per_prompt_token_s * 1e6, p->speed_tps, p->speed_sigma,
               p->stall_p * 100, p->tpe_min, p->tpe_max, p->about);
}

static int bad(const char *opt, const char *val, const char *why)
{
    fprintf(stderr, "mock-llm: invalid value '%s' for %s: %s (see --help)\n", val, opt, why);
    return 2;
}

static int num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return bad(opt, s, "not a number");
    if (v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "must be between %g and %g", lo, hi);
        return bad(opt, s, why);
    }
    *out = v;
    return 0;
}

static int parse_listen(mllm_config_t *c, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof c->host)
        return bad("--listen", s, "expected ADDR:PORT, e.g. 127.0.0.1:8080");
    char host[64];
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return bad("--listen", s, "the address must be an IPv4 address like 127.0.0.1");
    double port;
    if (num("--listen port", colon + 1, 0, 65535, &port) || port != floor(port))
        return bad("--listen", s, "the port must be an integer 0..65535");
    strcpy(c->host, host);
    c->port = (int)port;
    return 0;
}

/* Splits a comma list in place into out[]; returns the count or -1 on an empty item. */
static int split(char *s, const char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max)
            return -1;
        out[n++] = tok;
    }
    return n;
}

int mllm_config_parse(mllm_config_t *c, int argc, char **argv)
{
    enum {
        O_LISTEN = 256, O_PROFILE, O_SCALE, O_SEED, O_MODELS, O_TPE, O_TTFT, O_TPS, O_STALL, O_OUT,
        O_MAXCONNS, O_MAXBODY, O_MAXHEADER, O_MAXPENDING, O_IDLE, O_HDRTO, O_WRTO, O_ERATE,
        O_ESTAT, O_RETRY, O_MIDERR, O_DISC, O_LOG, O_LIST, O_HELP, O_BUSY, O_PREFILL,
        O_TOOLRATE, O_SNDBUF, O_TLS, O_TLSCERT, O_TLSKEY, O_TLSOUT, O_TLSKEEP,
        O_MAXBATCH,
    };
    static const struct option opts[] = {
        { "listen", required_argument, 0, O_LISTEN },
        { "profile", required_argument, 0, O_PROFILE },
        { "time-scale", required_argument, 0, O_SCALE },
        { "seed", required_argument, 0, O_SEED },
        { "models", required_argument, 0, O_MODELS },
        { "tokens-per-event", required_argument, 0, O_TPE },
        { "ttft-ms", required_argument, 0, O_TTFT },
        { "tps", required_argument, 0, O_TPS },
        { "stall-rate", required_argument, 0, O_STALL },
        { "output-tokens", required_argument, 0, O_OUT },
        { "max-conns", required_argument, 0, O_MAXCONNS },
        { "max-body", required_argument, 0, O_MAXBODY },
        { "max-header", required_argument, 0, O_MAXHEADER },
        { "max-pending", required_argument, 0, O_MAXPENDING },
        { "idle-timeout", required_argument, 0, O_IDLE },
        { "header-timeout", required_argument, 0, O_HDRTO },
        { "write-timeout", required_argument, 0, O_WRTO },
        { "error-rate", required_argument, 0, O_ERATE },
        { "error-statuses", required_argument, 0, O_ESTAT },
        { "retry-after-ms", required_argument, 0, O_RETRY },
        { "midstream-error-rate", required_argument, 0, O_MIDERR },
        { "disconnect-rate", required_argument, 0, O_DISC },
        { "log-level", required_argument, 0, O_LOG },
        { "busy-poll", no_argument, 0, O_BUSY },
        { "prefill-us-per-token", required_argument, 0, O_PREFILL },
        { "tool-call-rate", required_argument, 0, O_TOOLRATE },
        { "sndbuf", required_argument, 0, O_SNDBUF },
        { "tls", no_argument, 0, O_TLS },
        { "tls-cert", required_argument, 0, O_TLSCERT },
        { "tls-key", required_argument, 0, O_TLSKEY },
        { "tls-cert-out", required_argument, 0, O_TLSOUT },
        { "tls-keep-buffers", no_argument, 0, O_TLSKEEP },
        { "max-batch-events", required_argument, 0, O_MAXBATCH },
        { "list-profiles", no_argument, 0, O_LIST },
        { "help", no_argument, 0, O_HELP },
        { 0, 0, 0, 0 },
    };
    /* Overrides are applied after the loop, so --ttft-ms before --profile still counts. */
    double ttft_ms = -1, tps = -1, stall = -1, out_tokens = -1, prefill_us = -1, v;
    const char *profile = "gpt-4o";
    opterr = 0;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int rc = 0;
        switch (o) {
        case O_LISTEN: rc = parse_listen(c, optarg); break;
        case O_PROFILE:
            if (!mllm_profile_find(optarg))
                return bad("--profile", optarg, "unknown profile (--list-profiles)");
            profile = optarg;
            break;
        case O_SCALE: rc = num("--time-scale", optarg, 0, 1000, &c->time_scale); break;
        case O_SEED:
            rc = num("--seed", optarg, 0, 9007199254740992.0, &v);
            c->seed = (uint64_t)v;
            break;
        case O_MODELS: {
            char *copy = strdup(optarg);
            int n = copy ? split(copy, c->models, MLLM_MAX_MODELS) : -1;
            if (n <= 0)
                return bad("--models", optarg, "expected 1 to 32 comma-separated model ids");
            for (int i = 0; i < n; i++)
                if (strlen(c->models[i]) > 127)
                    return bad("--models", optarg, "a model id is longer than 127 bytes");
            c->nmodels = n;
            break;
        }
        case O_TPE:
            rc = num("--tokens-per-event", optarg, 1, 200, &v);
            c->tokens_per_event = (int)v;
            break;
        case O_TTFT: rc = num("--ttft-ms", optarg, 0, 3600000, &ttft_ms); break;
        case O_TPS: rc = num("--tps", optarg, 0, 1e7, &tps); break;
        case O_STALL: rc = num("--stall-rate", optarg, 0, 1, &stall); break;
        case O_OUT: rc = num("--output-tokens", optarg, 1, 1e8, &out_tokens); break;
        case O_MAXCONNS:
            rc = num("--max-conns", optarg, 1, 1e7, &v);
            c->max_conns = (long)v;
            break;
        case O_MAXBODY:
            rc = num("--max-body", optarg, 64, 1 << 30, &v);
            c->max_body = (size_t)v;
            break;
        case O_MAXHEADER:
            rc = num("--max-header", optarg, 256, 1 << 20, &v);
            c->max_head = (size_t)v;
            if (c->max_request_line > c->max_head)
                c->max_request_line = c->max_head;
            break;
        case O_MAXPENDING:
            rc = num("--max-pending", optarg, 1024, 1 << 30, &v);
            c->max_pending = (size_t)v;
            break;
        case O_IDLE:
            rc = num("--idle-timeout", optarg, 0.001, 86400, &v);
            c->idle_timeout_ns = (uint64_t)(v * 1e9);
            break;
        case O_HDRTO:
            rc = num("--header-timeout", optarg, 0.001, 86400, &v);
            c->header_timeout_ns = (uint64_t)(v * 1e9);
            break;
        case O_WRTO:
            rc = num("--write-timeout", optarg, 0.001, 86400, &v);
            c->write_timeout_ns = (uint64_t)(v * 1e9);
            break;
        case O_ERATE: rc = num("--error-rate", optarg, 0, 1, &c->error_rate); break;
        case O_ESTAT: {
            char buf[128];
            const char *items[8];
            snprintf(buf, sizeof buf, "%s", optarg);
            int n = split(buf, items, 8);
            if (n <= 0)
                return bad("--error-statuses", optarg, "expected a list like 429,500,503");
            for (int i = 0; i < n; i++) {
                int s = atoi(items[i]);
                if (s != 429 && s != 500 && s != 503)
                    return bad("--error-statuses", optarg, "each must be 429, 500 or 503");
                c->error_statuses[i] = s;
            }
            c->nerror_statuses = n;
            break;
        }
        case O_RETRY:
            rc = num("--retry-after-ms", optarg, 0, 600000, &v);
            c->retry_after_ms = (int)v;
            break;
        case O_MIDERR:
            rc = num("--midstream-error-rate", optarg, 0, 1, &c->midstream_error_rate);
            break;
        case O_DISC: rc = num("--disconnect-rate", optarg, 0, 1, &c->disconnect_rate); break;
        case O_LOG:
            if (!strcmp(optarg, "error"))
                c->log_level = MLLM_LOG_ERROR;
            else if (!strcmp(optarg, "warn"))
                c->log_level = MLLM_LOG_WARN;
            else if (!strcmp(optarg, "info"))
                c->log_level = MLLM_LOG_INFO;
            else if (!strcmp(optarg, "debug"))
                c->log_level = MLLM_LOG_DEBUG;
            else
                return bad("--log-level", optarg, "expected error, warn, info or debug");
            break;
        case O_BUSY: c->busy_poll = 1; break;
        case O_PREFILL: rc = num("--prefill-us-per-token", optarg, 0, 1e6, &prefill_us); break;
        case O_TOOLRATE: rc = num("--tool-call-rate", optarg, 0, 1, &c->tool_call_rate); break;
        case O_SNDBUF:
            rc = num("--sndbuf", optarg, 0, 1 << 30, &v);
            c->sndbuf = (int)v;
            break;
        case O_TLS: c->tls = 1; break;
        case O_TLSCERT: c->tls_cert = optarg; c->tls = 1; break;
        case O_TLSKEY: c->tls_key = optarg; c->tls = 1; break;
        case O_TLSOUT: c->tls_cert_out = optarg; break;
        case O_TLSKEEP: c->tls_keep_buffers = 1; break;
        case O_MAXBATCH:
            rc = num("--max-batch-events", optarg, 1, 256, &v);
            if (!rc && v != (double)(int)v)
                rc = bad("--max-batch-events", optarg, "must be a whole number");
            if (!rc)
                c->max_batch_events = (int)v;
            break;
        case O_LIST: list_profiles(); return 1;
        case O_HELP: usage(stdout); return 1;
        case ':':
            fprintf(stderr, "mock-llm: option %s needs a value (see --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "mock-llm: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
        if (rc)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "mock-llm: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!c->tls_cert != !c->tls_key) {
        fprintf(stderr, "mock-llm: --tls-cert and --tls-key go together (see --help)\n");
        return 2;
    }
    if ((c->tls_cert_out || c->tls_keep_buffers) && !c->tls) {
        fprintf(stderr, "mock-llm: --tls-cert-out and --tls-keep-buffers need --tls "
                        "(see --help)\n");
        return 2;
    }
    c->profile = *mllm_profile_find(profile);
    if (ttft_ms >= 0)
        c->profile.ttft_s = ttft_ms / 1000.0;
    if (tps >= 0)
        c->profile.speed_tps = tps;
    if (stall >= 0)
        c->profile.stall_p = stall;
    if (prefill_us >= 0)
        c->profile.ttft_per_prompt_token_s = prefill_us / 1e6;
    if (out_tokens >= 1) {
        c->profile.len_median = out_tokens;
        c->profile.len_sigma = 0;
        c->profile.len_min = c->profile.len_max = (int)out_tokens;
    }
    return 0;
}
