/*
 * wl-curl - N streaming chat completions through libcurl, unmodified, on one of three
 * concurrency models, measured from inside the client. Prints one JSON object.
 *
 *   thread  one pthread per conversation, each in curl_easy_perform (blocking code as
 *           written for threads)
 *   fiber   one fiber per conversation, each in the very same curl_easy_perform: the
 *           blocking poll/recv inside libcurl park the fiber through fiber/hook (linked
 *           into wl-curl, or LD_PRELOAD=libfiber_hook.so into wl-curl-plain)
 *   multi   libcurl's multi interface on one thread: curl_multi_socket_action over
 *           epoll, the event-loop way libcurl recommends for many transfers
 *
 * The harness runs thread and multi from wl-curl-plain (no hooks in the process, so none
 * of their cost is charged to the baselines) and fiber from wl-curl. Every model sets
 * CURLOPT_FORBID_REUSE and CURLOPT_FRESH_CONNECT: one fresh connection per conversation;
 * --buffer-bytes sets CURLOPT_BUFFERSIZE on every model alike (the harness: 4 KiB).
 *
 * Every conversation POSTs the same chat request (a system prompt and a history of
 * --prompt-kib KiB: real requests carry kilobytes) with `x-mock-request-index: i`, so
 * mock-llm gives conversation i the same draws on every model, and parses the SSE stream
 * in the write callback (the workloads' SSE parser and chat-chunk reader).
 */
#define _GNU_SOURCE
#include "wl.h"
#include "wl_llm.h"
#include "wl_report.h"
#include "wl_sse.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

static struct {
    const char *model, *target, *host, *per_conv;
    long        n;
    int         max_tokens;
    double      timeout_s, gap_us;
    long        prompt_kib, stack_kib, buffer_bytes;
} opt = {
    .host = "127.0.0.1", .n = 100, .max_tokens = 64, .timeout_s = 120, .prompt_kib = 4,
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: wl-curl --model thread|fiber|multi --target HOST:PORT [options]\n"
        "N streaming chat completions (OpenAI SSE) through libcurl's easy API (thread,\n"
        "fiber) or its multi interface (multi); prints one JSON object of measurements.\n"
        "  --model M         thread | fiber | multi\n"
        "  --target H:P      mock-llm, loopback IPv4 (127.x.x.x:PORT)\n"
        "  --host NAME       host name put in the URL (default 127.0.0.1; 'localhost'\n"
        "                    makes libcurl resolve it)\n"
        "  --n N             conversations (default 100)\n"
        "  --max-tokens T    max_tokens asked (default 64)\n"
        "  --prompt-kib K    size of the prompt and history sent (default 4)\n"
        "  --timeout S       per conversation (CURLOPT_TIMEOUT; default 120)\n"
        "  --gap-us G        conversation i arrives at i*G us (default 0: all at once)\n"
        "  --stack-kib KIB   thread or fiber stack size (default: the model's)\n"
        "  --buffer-bytes B  libcurl's receive buffer, CURLOPT_BUFFERSIZE, on every model\n"
        "                    (1024..524288; default: libcurl's own, 16 KiB)\n"
        "  --per-conv FILE   one CSV line per conversation (ms from the first arrival)\n"
        "  --help\n"
        "The fiber model needs the hooks: wl-curl has them linked; wl-curl-plain runs it\n"
        "only under LD_PRELOAD=libfiber_hook.so. Measure thread and multi with\n"
        "wl-curl-plain (no hook in the process).\n");
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "model", 1, 0, 'm' }, { "target", 1, 0, 't' }, { "host", 1, 0, 'H' },
        { "n", 1, 0, 'n' }, { "max-tokens", 1, 0, 'k' }, { "prompt-kib", 1, 0, 'P' },
        { "timeout", 1, 0, 'T' }, { "gap-us", 1, 0, 'g' }, { "stack-kib", 1, 0, 's' },
        { "per-conv", 1, 0, 'p' }, { "buffer-bytes", 1, 0, 'b' }, { "help", 0, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int c, idx = 0;
    double v;
    while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        switch (c) {
        case 'm': opt.model = optarg; break;
        case 't': opt.target = optarg; break;
        case 'H': opt.host = optarg; break;
        case 'p': opt.per_conv = optarg; break;
        case 'n': if (wl_parse_double(optarg, 1, 1e7, &v)) goto bad; opt.n = (long)v; break;
        case 'k': if (wl_parse_double(optarg, 1, 1e6, &v)) goto bad; opt.max_tokens = (int)v; break;
        case 'P': if (wl_parse_double(optarg, 0, 4096, &v)) goto bad; opt.prompt_kib = (long)v; break;
        case 'T': if (wl_parse_double(optarg, 0.001, 86400, &opt.timeout_s)) goto bad; break;
        case 'g': if (wl_parse_double(optarg, 0, 1e9, &opt.gap_us)) goto bad; break;
        case 's': if (wl_parse_double(optarg, 16, 1 << 20, &v)) goto bad; opt.stack_kib = (long)v; break;
        case 'b': if (wl_parse_double(optarg, 1024, 524288, &v)) goto bad; opt.buffer_bytes = (long)v; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        continue;
    bad:
        fprintf(stderr, "wl-curl: bad value for --%s: '%s' (see --help)\n", lo[idx].name, optarg);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "wl-curl: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!opt.model || !opt.target) {
        fprintf(stderr, "wl-curl: --model and --target are required (see --help)\n");
        return -1;
    }
    if (strcmp(opt.model, "thread") && strcmp(opt.model, "fiber") && strcmp(opt.model, "multi")) {
        fprintf(stderr, "wl-curl: unknown model '%s' (thread, fiber, multi)\n", opt.model);
        return -1;
    }
    if (strcmp(opt.host, "127.0.0.1") && strcmp(opt.host, "localhost")) {
        fprintf(stderr, "wl-curl: --host must be 127.0.0.1 or localhost (loopback only)\n");
        return -1;
    }
    return 0;
}

/* ---- one conversation ------------------------------------------------------------------ */

static char  g_url[128];
static char *g_body;      /* one request body for all: the draws come from the header */
static long  g_body_len;

/* The request: a system prompt, a history padded to the size asked, a last question. */
static int build_body(long kib, int max_tokens)
{
    static const char hist[] =
        "Fibers keep thousands of streaming connections open cheaply; threads pay a stack "
        "and a kernel task each. Explain the trade-offs again, with numbers. ";
    size_t target = (size_t)kib * 1024, cap = target + 1024;
    char *b = malloc(cap);
    if (!b)
        return -1;
    size_t at = (size_t)snprintf(b, cap,
        "{\"model\":\"mock\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"max_tokens\":%d,\"messages\":[{\"role\":\"system\",\"content\":\"You are a "
        "helpful assistant.\"}", max_tokens);
    int turn = 0;
    while (at + sizeof hist + 64 < target) {
        at += (size_t)snprintf(b + at, cap - at, ",{\"role\":\"%s\",\"content\":\"%s\"}",
                               turn++ % 2 ? "assistant" : "user", hist);
    }
    at += (size_t)snprintf(b + at, cap - at,
                           ",{\"role\":\"user\",\"content\":\"Tell me about fibers.\"}]}");
    g_body = b;
    g_body_len = (long)at;
    return 0;
}

/* Conversations in progress (set up, not yet finished) and the most at once: what the
 * client's peak memory is divided by. Not the units alive at once: the fiber model spawns
 * all N at t0, and at the open-files cap a third of them fail in setup and exit holding
 * nothing, so "alive" overstated what the peak held (10,000 at once: 10,000 alive, at
 * most 6,665 in progress). Atomic: the thread model finishes on many threads. */
static atomic_size_t g_active, g_active_peak;

static void active_add(void)
{
    size_t now = atomic_fetch_add(&g_active, 1) + 1;
    size_t peak = atomic_load(&g_active_peak);
    while (now > peak && !atomic_compare_exchange_weak(&g_active_peak, &peak, now))
        ;
}

struct conv {
    size_t        index;
    wl_conv_t    *out;
    wl_sse_t      sse;
    int           done, error, proto;
    CURL         *easy;
    struct curl_slist *hdrs;
    char          err[CURL_ERROR_SIZE]; /* libcurl's message, for the failure cause */
    /* One chunk's decoded content. Per conversation, so that every model pays for it
     * alike (a thread-local would cost the thread model 4 KiB per thread and the
     * single-threaded models 4 KiB in all). */
    char          content[4096];
};

static int on_event(const wl_sse_event_t *ev, void *arg)
{
    struct conv *c = arg;
    wl_chat_chunk_t k;
    if (wl_chat_chunk_parse(ev->data, ev->data_len, &k, c->content, sizeof c->content) != 0) {
        c->proto = 1;
        return 1;
    }
    if (k.done) {
        c->done = 1;
        return 1;
    }
    if (k.error) {
        c->error = 1;
        return 1;
    }
    if (wl_conv_note_chunk(c->out, &k))
        wl_sink_checksum(c->index, c->content,
                         k.content_len < sizeof c->content ? k.content_len : sizeof c->content,
                         NULL);
    return 0;
}

/* libcurl's write callback: the decoded body, any split; an error answer is read too. */
static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct conv *c = arg;
    size_t n = size * nmemb;
    if (c->done)
        return n;
    if (wl_sse_feed(&c->sse, p, n, on_event, c) < 0)
        c->proto = 1;
    return n;
}

/* Sets up conversation c's easy handle. Returns 0, or -1 with out->cause set. */
static int conv_setup(struct conv *c, size_t index, wl_conv_t *out)
{
    memset(c, 0, offsetof(struct conv, content)); /* content: written before read */
    c->content[0] = 0;
    c->index = index;
    c->out = out;
    wl_sse_init(&c->sse, 0);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "x-mock-request-index: %zu", index);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = h ? curl_slist_append(h, "Accept: text/event-stream") : NULL;
    h = h ? curl_slist_append(h, "Authorization: Bearer sk-fiberbench") : NULL;
    h = h ? curl_slist_append(h, hdr) : NULL;
    c->easy = h ? curl_easy_init() : NULL;
    if (!c->easy) {
        curl_slist_free_all(h);
        snprintf(out->cause, sizeof out->cause, "curl setup: ENOMEM");
        return -1;
    }
    c->hdrs = h;
    active_add();
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, g_url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, g_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, g_body_len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM timeouts: threads and fibers */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(opt.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    /* One connection per conversation, on every model alike: FORBID_REUSE closes it after
     * the transfer, FRESH_CONNECT skips the connection-cache scan a new transfer makes
     * (libcurl 7.88 walks the multi handle's cache for a reusable connection: on the
     * multi model, with thousands of transfers in one cache, that scan was ~12.7% of the
     * client's instructions, a cost no easy-API transfer pays with its private cache). */
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->err);
    if (opt.buffer_bytes)
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, opt.buffer_bytes);
    return 0;
}

/* Judges a finished transfer and frees the handle. */
static void conv_finish(struct conv *c, CURLcode rc)
{
    wl_conv_t *o = c->out;
    long status = 0, oserr = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &oserr);
    o->end_ns = wl_now_ns();
    o->attempts = 1;
    if (rc == CURLE_COULDNT_CONNECT && !oserr) {
        /* libcurl 7.88 keeps no errno when socket() itself fails; at the open-files cap
         * that is EMFILE, which a probe for one more descriptor confirms */
        int probe = dup(2);
        if (probe < 0 && errno == EMFILE)
            oserr = EMFILE;
        else if (probe >= 0)
            close(probe);
    }
    if (rc != CURLE_OK) {
        if (oserr)
            snprintf(o->cause, sizeof o->cause, "curl %d: %s", (int)rc, wl_errname((int)oserr));
        else
            snprintf(o->cause, sizeof o->cause, "curl %d: %.30s", (int)rc, c->err);
    } else if (status != 200) {
        snprintf(o->cause, sizeof o->cause, "http %ld", status);
    } else if (c->proto || c->error || !c->done) {
        snprintf(o->cause, sizeof o->cause, "%s",
                 c->proto ? "bad stream" : c->error ? "error event" : "no [DONE]");
    } else {
        o->ok = 1;
        if (!o->tokens)
            o->tokens = o->deltas;
    }
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdrs);
    wl_sse_free(&c->sse);
    atomic_fetch_sub(&g_active, 1);
}

/* ---- thread and fiber: curl_easy_perform per conversation --------------------------------- */

struct run {
    wl_conv_t *convs;
    uint64_t   t0, gap;
};

static void easy_job(size_t i, wl_res_t *res, void *arg)
{
    (void)res;
    struct run *r = arg;
    wl_conv_t *o = &r->convs[i];
    o->arrival_ns = r->t0 + i * r->gap;
    o->start_ns = wl_now_ns();
    /* The conversation's state on the heap, where the multi model keeps it too: on the
     * stack its 4.5 KiB (mostly the content buffer) sat above libcurl's deepest frames
     * and made every thread and fiber stack that much deeper (fiber: 4 resident stack
     * pages per conversation instead of 2, deepest byte 12.2 vs 7.7 KiB below the top). */
    struct conv *c = malloc(sizeof *c);
    if (!c) {
        snprintf(o->cause, sizeof o->cause, "curl setup: ENOMEM");
        return;
    }
    if (conv_setup(c, i, o) == 0)
        conv_finish(c, curl_easy_perform(c->easy)); /* blocking code, unmodified */
    free(c);
}

/* ---- multi: one thread, curl_multi_socket_action over epoll -------------------------------- */

struct multi {
    CURLM   *m;
    int      ep;
    uint64_t due_ns;   /* when libcurl's timer expires (its callback gives it relative to
                          the moment of the call); 0 = no timer */
    size_t live, peak;
};

static int m_socket(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
    (void)e;
    struct multi *mm = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(mm->ep, EPOLL_CTL_DEL, s, NULL); /* may be closed already: fine */
        curl_multi_assign(mm->m, s, NULL);
        return 0;
    }
    struct epoll_event ev = { .events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                                        (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                              .data.fd = s };
    if (!sockp) {
        if (epoll_ctl(mm->ep, EPOLL_CTL_ADD, s, &ev) != 0 &&
            (errno != EEXIST || epoll_ctl(mm->ep, EPOLL_CTL_MOD, s, &ev) != 0))
            return -1;
        curl_multi_assign(mm->m, s, mm);
    } else if (epoll_ctl(mm->ep, EPOLL_CTL_MOD, s, &ev) != 0) {
        return -1;
    }
    return 0;
}

static int m_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    ((struct multi *)userp)->due_ns = timeout_ms < 0 ? 0 : wl_now_ns() + (uint64_t)timeout_ms * 1000000u;
    return 0;
}

static void m_reap(struct multi *mm)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(mm->m, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct conv *c = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(mm->m, msg->easy_handle);
        conv_finish(c, rc);
        mm->live--;
    }
}

static int run_multi(struct run *r, size_t n, wl_run_stats_t *st)
{
    struct multi mm = { .due_ns = 0 };
    struct conv *cs = calloc(n, sizeof *cs);
    mm.m = curl_multi_init();
    mm.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || !mm.m || mm.ep < 0) {
        fprintf(stderr, "wl-curl: cannot set up the multi loop: %s\n", strerror(errno));
        return -1;
    }
    curl_multi_setopt(mm.m, CURLMOPT_SOCKETFUNCTION, m_socket);
    curl_multi_setopt(mm.m, CURLMOPT_SOCKETDATA, &mm);
    curl_multi_setopt(mm.m, CURLMOPT_TIMERFUNCTION, m_timer);
    curl_multi_setopt(mm.m, CURLMOPT_TIMERDATA, &mm);
    size_t next = 0;
    struct epoll_event evs[256];
    int running = 0;
    while (next < n || mm.live) {
        uint64_t now = wl_now_ns();
        while (next < n && r->t0 + next * r->gap <= now) { /* arrivals */
            wl_conv_t *o = &r->convs[next];
            o->arrival_ns = r->t0 + next * r->gap;
            o->start_ns = now;
            if (conv_setup(&cs[next], next, o) == 0) {
                if (curl_multi_add_handle(mm.m, cs[next].easy) == CURLM_OK) {
                    st->started++;
                    if (++mm.live > mm.peak)
                        mm.peak = mm.live;
                } else {
                    snprintf(o->cause, sizeof o->cause, "curl_multi_add_handle");
                    curl_easy_cleanup(cs[next].easy);
                    curl_slist_free_all(cs[next].hdrs);
                    wl_sse_free(&cs[next].sse);
                    atomic_fetch_sub(&g_active, 1);
                }
            }
            next++;
        }
        long wait = -1;
        if (mm.due_ns)
            wait = mm.due_ns > now ? (long)((mm.due_ns - now + 999999) / 1000000) : 0;
        if (next < n) {
            uint64_t due = r->t0 + next * r->gap;
            long ms = due > now ? (long)((due - now + 999999) / 1000000) : 0;
            if (wait < 0 || ms < wait)
                wait = ms;
        }
        int k = epoll_wait(mm.ep, evs, 256, wait < 0 ? 1000 : (int)wait);
        if (k < 0 && errno != EINTR) {
            fprintf(stderr, "wl-curl: epoll_wait: %s\n", strerror(errno));
            return -1;
        }
        for (int i = 0; i < k; i++) {
            uint32_t e = evs[i].events;
            int fl = (e & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
                     (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) | (e & EPOLLERR ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(mm.m, evs[i].data.fd, fl, &running);
        }
        /* libcurl's timer is due even while sockets keep the loop busy */
        if (mm.due_ns && wl_now_ns() >= mm.due_ns) {
            mm.due_ns = 0;
            curl_multi_socket_action(mm.m, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        m_reap(&mm);
    }
    st->peak_live = mm.peak;
    curl_multi_cleanup(mm.m);
    close(mm.ep);
    free(cs);
    return 0;
}

/* Slab per thread (task_struct, pid, ...): bench/memory's sunreclaim_per_unit_bytes for
 * threads, 6.8-7.4 KiB on the published AMD EPYC set (results/published). */
#define WL_CURL_TASK_SLAB_KIB 7

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    long nofile = wl_raise_nofile();
    struct sockaddr_in sa;
    if (wl_parse_addr(opt.target, &sa) != 0) {
        fprintf(stderr, "wl-curl: bad --target '%s' (want 127.x.x.x:PORT: loopback only)\n",
                opt.target);
        return 2;
    }
    int (*hook_enabled)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "fiber_hook_enabled");
    const char *(*hook_mode)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "fiber_hook_mode");
    int hooked = hook_enabled && hook_enabled();
    if (strcmp(opt.model, "fiber") == 0 && !hooked) {
        fprintf(stderr, "wl-curl: the fiber model needs the hooks: run wl-curl (linked) or "
                        "LD_PRELOAD=.../libfiber_hook.so wl-curl-plain\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "wl-curl: curl_global_init failed\n");
        return 1;
    }
    char ip[16];
    snprintf(ip, sizeof ip, "%s", opt.target);
    *strchr(ip, ':') = 0;
    snprintf(g_url, sizeof g_url, "http://%s:%u/v1/chat/completions",
             strcmp(opt.host, "localhost") == 0 ? "localhost" : ip, ntohs(sa.sin_port));
    size_t n = (size_t)opt.n;
    struct run r = { 0 };
    r.convs = calloc(n, sizeof *r.convs);
    double *v = calloc(n, sizeof *v);
    if (!r.convs || !v || build_body(opt.prompt_kib, opt.max_tokens) != 0) {
        fprintf(stderr, "wl-curl: out of memory for %zu conversations\n", n);
        return 1;
    }

    long rss_base = wl_self_status_kib("VmRSS");
    wl_sampler_t smp;
    wl_sampler_start(&smp);
    long kern_base = atomic_load(&smp.kernel_peak_kib);
    double cpu0 = wl_cpu_seconds();
    r.gap = (uint64_t)(opt.gap_us * 1e3);
    r.t0 = wl_now_ns();
    wl_run_stats_t st = { 0 };
    if (strcmp(opt.model, "multi") == 0) {
        if (run_multi(&r, n, &st) != 0)
            return 1;
    } else {
        wl_jobs_cfg_t jc = { .n = n, .t0_ns = r.t0, .gap_ns = r.gap,
                             .stack_size = (size_t)opt.stack_kib * 1024, .job = easy_job,
                             .arg = &r };
        wl_model_find(opt.model)->run_jobs(&jc, &st);
    }
    wl_sampler_stop(&smp);
    double cpu = wl_cpu_seconds() - cpu0 - smp.cpu_s;
    long rss_peak = wl_self_status_kib("VmHWM");

    size_t ok = 0, failed = 0;
    uint64_t tokens = 0, last_end = r.t0;
    wl_cause_t causes[16];
    size_t ncause = 0;
    for (size_t i = 0; i < n; i++) {
        wl_conv_t *c = &r.convs[i];
        if (c->end_ns > last_end)
            last_end = c->end_ns;
        if (c->ok) {
            ok++;
            tokens += c->tokens;
            continue;
        }
        failed++;
        const char *why = c->start_ns ? (c->cause[0] ? c->cause : "unknown")
                                      : "not started (unit spawn failed)";
        wl_cause_count(causes, &ncause, 16, why);
    }
    double elapsed = (double)(last_end - r.t0) / 1e9;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (r.convs[i].first_token_ns)
            v[k++] = (double)(r.convs[i].first_token_ns - r.convs[i].arrival_ns) / 1e6;
    double ttft_p50 = wl_quantile(v, k, 0.5), ttft_p99 = wl_quantile(v, k, 0.99);
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (r.convs[i].ok)
            v[k++] = (double)(r.convs[i].end_ns - r.convs[i].arrival_ns) / 1e6;
    double total_p50 = wl_quantile(v, k, 0.5);
    static const double qs[2] = { 0.5, 0.99 };
    double itl_q[2];
    uint64_t itl_n = wl_itl_quantiles_ms(r.convs, n, qs, itl_q, 2);
    long pte = atomic_load(&smp.pte_peak_kib), threads = atomic_load(&smp.threads_peak);
    if (strcmp(opt.model, "thread") == 0 && (long)st.peak_live + 2 > threads)
        threads = (long)st.peak_live + 2; /* the sampler may miss a short peak */
    /* The process's kernel memory, two ways. Estimated: its page tables, and per thread a
     * kernel stack and the slab a task takes (task_struct and friends; bench/memory
     * measures 6.8-7.4 KiB of SUnreclaim per thread on the AMD EPYC set, rounded here to
     * WL_CURL_TASK_SLAB_KIB); socket memory is left out (equal per connection, but the
     * easy API's wake-up socketpair makes 3 sockets per transfer, multi 1). Measured: the
     * machine-wide /proc/meminfo delta (KernelStack + SUnreclaim + PageTables, peak minus
     * start), as bench/memory reads it: sockets included, other processes' noise too. */
    long kern_est = pte + threads * (WL_KERNEL_STACK_KIB + WL_CURL_TASK_SLAB_KIB);
    long kern_peak = atomic_load(&smp.kernel_peak_kib);
    long kern_delta = kern_base >= 0 && kern_peak >= kern_base ? kern_peak - kern_base : -1;

    if (opt.per_conv) {
        FILE *f = fopen(opt.per_conv, "w");
        if (!f) {
            fprintf(stderr, "wl-curl: cannot write %s: %s\n", opt.per_conv, strerror(errno));
        } else {
            fprintf(f, "index,arrival_ms,start_ms,first_token_ms,end_ms,tokens,ok,cause\n");
#define REL(t) ((t) ? (double)((t) - r.t0) / 1e6 : -1.0)
            for (size_t i = 0; i < n; i++) {
                wl_conv_t *c = &r.convs[i];
                fprintf(f, "%zu,%.3f,%.3f,%.3f,%.3f,%u,%d,\"%s\"\n", i, REL(c->arrival_ns),
                        REL(c->start_ns), REL(c->first_token_ns), REL(c->end_ns), c->tokens,
                        c->ok, c->cause);
            }
#undef REL
            fclose(f);
        }
    }
    printf("{\"model\":\"%s\",\"hook\":\"%s\",\"curl\":\"%s\",\"n\":%zu,\"ok\":%zu,"
           "\"failed\":%zu,\"elapsed_s\":%.6f,\"tokens\":%llu,\"tokens_per_s\":%.3f,"
           "\"ttft_p50_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"total_p50_ms\":%.3f,"
           "\"itl_p50_ms\":%.3f,\"itl_p99_ms\":%.3f,\"itl_gaps\":%llu,"
           "\"rss_base_kib\":%ld,\"rss_peak_kib\":%ld,\"kernel_est_kib\":%ld,"
           "\"pte_peak_kib\":%ld,\"threads_peak\":%ld,\"sys_kernel_delta_kib\":%ld,\"cpu_s\":%.6f,"
           "\"cpu_s_per_1k_tokens\":%.6f,\"peak_live\":%zu,\"peak_active\":%zu,"
           "\"units_started\":%zu,"
           "\"spawn_failed\":%zu,\"spawn_errno\":\"%s\",\"prompt_bytes\":%ld,\"nofile\":%ld,"
           "\"causes\":{",
           opt.model, hooked ? hook_mode() : "none", curl_version_info(CURLVERSION_NOW)->version,
           n, ok, failed, elapsed, (unsigned long long)tokens,
           elapsed > 0 ? (double)tokens / elapsed : 0, ttft_p50, ttft_p99, total_p50,
           itl_q[0], itl_q[1], (unsigned long long)itl_n, rss_base, rss_peak, kern_est, pte,
           threads, kern_delta, cpu, tokens ? cpu / ((double)tokens / 1000.0) : 0, st.peak_live,
           atomic_load(&g_active_peak), st.started, st.spawn_failed, st.spawn_failed ? wl_errname(st.spawn_errno) : "",
           g_body_len, nofile);
    wl_causes_print(stdout, causes, ncause);
    printf("}}\n");
    free(v);
    free(r.convs);
    free(g_body);
    curl_global_cleanup();
    return 0;
}
