/*
 * overflow.c - turns a fiber stack overflow into a message instead of a bare SIGSEGV.
 *
 * The fault happens on the overflowing stack itself, so the handler runs on an
 * alternate signal stack (one per scheduler thread). It reports a fault as an overflow
 * only when it lies in the running fiber's own guard (the range [map, lo) of its stack):
 * memory below the guard may belong to any other mapping, and a fault there is not
 * ours to explain. Any other SIGSEGV goes to the handler that was installed before
 * ours, or gets the default action - also a SIGSEGV that no fault raised (kill(2),
 * raise(3), sigqueue(3): si_code <= 0), whose si_addr is not an address at all.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction old_segv;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static __thread int altstack_done;
static __thread void *altstack_mem; /* ours to free, if we allocated it */

/* Formatting without stdio: only async-signal-safe calls in a signal handler. */
static size_t put_str(char *b, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        b[at++] = *s++;
    return at;
}

static size_t put_num(char *b, size_t at, size_t cap, uint64_t v, int base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    if (base == 16)
        at = put_str(b, at, cap, "0x");
    while (n && at + 1 < cap)
        b[at++] = tmp[--n];
    return at;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct sched *s = fiber__sched_peek();
    struct fiber *f = s ? s->current : NULL;
    uintptr_t a = (uintptr_t)si->si_addr;
    /* si_code > 0: the kernel raised it for a fault (SEGV_MAPERR, SEGV_ACCERR, ...). */
    if (f && si->si_code > 0 && f->stack.guarded) {
        uintptr_t lo = (uintptr_t)f->stack.lo, map = (uintptr_t)f->stack.map;
        if (a >= map && a < lo) {
            char b[256];
            size_t n = 0;
            n = put_str(b, n, sizeof b, "fiber: stack overflow in fiber ");
            n = put_num(b, n, sizeof b, fiber_id(f), 10);
            n = put_str(b, n, sizeof b, " '");
            n = put_str(b, n, sizeof b, fiber__name(f));
            n = put_str(b, n, sizeof b, "' (fault at ");
            n = put_num(b, n, sizeof b, a, 16);
            n = put_str(b, n, sizeof b, ", stack ");
            n = put_num(b, n, sizeof b, (uint64_t)((uintptr_t)f->stack.hi - lo), 10);
            n = put_str(b, n, sizeof b, " bytes; raise fiber_attr_t.stack_size)\n");
            ssize_t w = write(2, b, n);
            (void)w;
            abort();
        }
    }
    if (old_segv.sa_flags & SA_SIGINFO && old_segv.sa_sigaction) {
        old_segv.sa_sigaction(sig, si, uc);
        return;
    }
    if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN &&
        old_segv.sa_handler != NULL) {
        old_segv.sa_handler(sig);
        return;
    }
    /* Default action: restore it. A fault comes back when the faulting instruction runs
     * again on return; a sent signal does not, so it is raised again (blocked until this
     * handler returns, then delivered with the default action). */
    signal(SIGSEGV, SIG_DFL);
    if (si->si_code <= 0)
        raise(sig);
}

static void install_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

void fiber__overflow_init_thread(void)
{
    pthread_once(&handler_once, install_handler);
    if (altstack_done)
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) && cur.ss_size >= 16384) {
        altstack_done = 1; /* someone (ASan, the program) already gave this thread one */
        return;
    }
    stack_t ss = { .ss_sp = malloc(ALTSTACK_SIZE), .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    if (ss.ss_sp && sigaltstack(&ss, NULL) == 0) {
        altstack_done = 1;
        altstack_mem = ss.ss_sp;
    } else {
        free(ss.ss_sp);
    }
}

void fiber__overflow_fini_thread(void)
{
    if (!altstack_mem)
        return;
    stack_t off = { .ss_flags = SS_DISABLE };
    if (sigaltstack(&off, NULL) == 0) {
        free(altstack_mem);
        altstack_mem = NULL;
        altstack_done = 0;
    }
}
