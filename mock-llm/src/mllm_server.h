/*
 * mllm_server.h - the mock-llm server: listening, accepting, one fiber per connection.
 *
 * A request travels down four layers, each knowing only the one below it:
 *   mllm_route.c      API: routes, request JSON (mllm_api.c), wire formats, streaming
 *   mllm_conn.c       HTTP framing: one complete request up, responses down, 4xx
 *                     answers and lingering close
 *   mllm_transport.c  bytes over a plain socket (an interface a TLS session implements)
 *   mllm_timing.c     schedule: when each event is due
 */
#ifndef MLLM_SERVER_H
#define MLLM_SERVER_H

#include "mllm_config.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Listens, prints "mock-llm listening on HOST:PORT" to stdout, and serves until SIGINT
 * or SIGTERM (HTTPS with c->tls: the same line). Returns the process exit code: 0 after
 * a signal, 1 when it could not listen or the scheduler failed, 2 when the TLS
 * certificate or key cannot be made or loaded (the reason on stderr).
 */
int mllm_server_run(const mllm_config_t *c);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_SERVER_H */
