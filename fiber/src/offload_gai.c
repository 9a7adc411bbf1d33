/*
 * offload_gai.c - fiber_getaddrinfo(), the offload pool's first user. A file of its own
 * so that a static link pulls in getaddrinfo (and glibc's warning about NSS in static
 * binaries) only when it is used.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>

struct gai_job {
    char            *node, *service;
    struct addrinfo  hints;
    int              has_hints;
    struct addrinfo *res;
    int              rc, err;
};

static void gai_run(void *p)
{
    struct gai_job *g = p;
    g->rc = getaddrinfo(g->node, g->service, g->has_hints ? &g->hints : NULL, &g->res);
    g->err = errno;
}

static void gai_free(void *p)
{
    struct gai_job *g = p;
    if (g->rc == 0 && g->res)
        freeaddrinfo(g->res);
    free(g->node);
    free(g->service);
    free(g);
}

int fiber_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res, uint64_t deadline_ns)
{
    /* The lookup may outlive this call (deadline): it works on copies it owns. */
    struct gai_job *g = calloc(1, sizeof *g);
    if (!g)
        return EAI_MEMORY;
    if ((node && !(g->node = strdup(node))) || (service && !(g->service = strdup(service)))) {
        gai_free(g);
        return EAI_MEMORY;
    }
    if (hints) {
        g->hints = *hints;
        g->hints.ai_addr = NULL; /* getaddrinfo reads only the flags and families */
        g->hints.ai_canonname = NULL;
        g->hints.ai_next = NULL;
        g->has_hints = 1;
    }
    int e = fiber_offload_until(gai_run, gai_free, g, deadline_ns);
    if (e == ETIMEDOUT) {
        errno = ETIMEDOUT;
        return EAI_SYSTEM;
    }
    if (e) /* no pool thread, or no memory: look it up on this thread (it stalls) */
        gai_run(g);
    int rc = g->rc;
    if (rc == 0)
        *res = g->res;
    else if (rc == EAI_SYSTEM)
        errno = g->err;
    g->res = NULL;
    g->rc = -1;
    gai_free(g);
    return rc;
}
