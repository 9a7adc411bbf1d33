/*
 * mllm_config.h - the server configuration (one place parses flags into it) and the log.
 */
#ifndef MLLM_CONFIG_H
#define MLLM_CONFIG_H

#include "mllm_timing.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MLLM_MAX_MODELS 32

enum { MLLM_LOG_ERROR, MLLM_LOG_WARN, MLLM_LOG_INFO, MLLM_LOG_DEBUG };

typedef struct mllm_config {
    char            host[64];
    int             port;
    mllm_profile_t  profile;          /* the named profile with --ttft-ms etc. applied */
    uint64_t        seed;
    long            max_conns;
    int             tokens_per_event; /* 0 = the profile's */
    double          time_scale;
    const char     *models[MLLM_MAX_MODELS];
    int             nmodels;
    int             log_level;
    size_t          max_request_line, max_head, max_body;
    size_t          max_pending;      /* unread output kept for a slow reader, bytes */
    uint64_t        idle_timeout_ns, header_timeout_ns, write_timeout_ns;
    /* chaos: each request draws from its own generator, so injections repeat per seed */
    double          error_rate;       /* share of requests answered with an error status */
    int             error_statuses[8];
    int             nerror_statuses;
    double          midstream_error_rate;
    double          disconnect_rate;
    int             retry_after_ms;
    int             busy_poll;        /* never sleep in epoll: spin between deadlines */
    double          tool_call_rate;   /* share of "auto" requests with tools answered by a call */
    int             sndbuf;           /* SO_SNDBUF of client sockets; 0 = kernel autotuning */
    /* HTTPS (mllm_tls.h): a certificate made at start unless tls_cert is given */
    int             tls;
    const char     *tls_cert, *tls_key, *tls_cert_out;
    int             tls_keep_buffers;
    int             max_batch_events; /* events per write at most; 0 = 256 */
} mllm_config_t;

/* Fills c with the defaults documented in --help. */
void mllm_config_defaults(mllm_config_t *c);

/*
 * Parses argv into c. Returns 0 to run, 1 when --help or --list-profiles printed
 * everything asked (exit 0), or 2 after printing a message about a bad flag to stderr.
 */
int mllm_config_parse(mllm_config_t *c, int argc, char **argv);

/* Writes "mock-llm <level>: <message>" to stderr when level <= mllm_log_level. */
extern int mllm_log_level;
void mllm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* MLLM_CONFIG_H */
