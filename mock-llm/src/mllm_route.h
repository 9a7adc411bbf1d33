/*
 * mllm_route.h - the API layer on a connection: one complete request in (from the HTTP
 * framing, mllm_conn.h), its whole response out: OpenAI Chat Completions, Anthropic
 * Messages, models, health and metrics, streamed on the request's schedule.
 */
#ifndef MLLM_ROUTE_H
#define MLLM_ROUTE_H

#include "mllm_config.h"
#include "mllm_conn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Usable stack of a connection fiber. Parsing a request (cJSON, strtod, vsnprintf)
 * reaches ~10 KiB deep; a stream in progress needs ~1 KiB below its loop. */
#define MLLM_CONN_STACK_SIZE (64u * 1024u)

/* Sets the configuration every later call serves by (kept by pointer) and restarts the
 * request counter. Call once before serving. */
void mllm_route_init(const mllm_config_t *cfg);

/*
 * Answers one complete request on c, from a connection fiber with at least
 * MLLM_CONN_STACK_SIZE of stack. A generation request's bytes are released
 * (mllm_conn_release) once it is parsed, before its answer waits for its tokens: r's
 * strings and body are then invalid. Returns 0 when the connection may serve another
 * request, -1 when it must close (client gone, error frame sent, HTTP/1.0 stream).
 */
int mllm_route(mllm_conn_t *c, const mllm_request_t *r);

/* Serves requests on c (mllm_conn_next, mllm_route, mllm_conn_done) until the client
 * closes, keep-alive ends or a request ends the connection; then closes c's transport
 * and frees its buffers (not c). */
void mllm_route_connection(mllm_conn_t *c);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_ROUTE_H */
