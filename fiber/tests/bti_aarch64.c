/*
 * bti_aarch64.c - the aarch64 switch under Branch Target Identification, run by qemu-user.
 *
 * Built freestanding (no libc: Debian's aarch64 libc carries no BTI note, and one
 * unmarked object turns BTI off for the whole binary) with -mbranch-protection=standard,
 * linked with switch_aarch64.S only. When every object is marked, the linker marks the
 * binary BTI, and qemu (like a BTI-capable kernel) maps its code as guarded pages: an
 * indirect branch that lands anywhere but a landing pad raises SIGILL. So this checks
 * that the switch is entered through a pointer (its `bti c`), that it comes back with an
 * instruction BTI accepts at a return address (`ret`, not `br x30`), that the
 * scheduler's switch enters and leaves a fresh context, and that the join's run path,
 * entered through a pointer too, calls a fiber's function and comes back by each of its
 * three ends (the C functions it ends in are stubs here). Prints "bti: ok" and exits 0.
 * gcc -mbranch-protection=standard also signs return addresses (pac-ret) in the C code,
 * which checks that the switch keeps x30 and each stack's signed frames intact.
 */
#include <stddef.h>
#include <stdint.h>

#include "fiber_context.h"
#include "internal.h" /* the record and the scheduler, for the run path's offsets */

void fiber_context_trampoline(void);
void fiber__sched_switch_strict(fiber_context_t *from, fiber_context_t *to);

static long sys3(long nr, long a, long b, long c)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}

static void say(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    sys3(64 /* write */, 1, (long)s, (long)n);
}

_Noreturn static void quit(int code)
{
    for (;;)
        sys3(93 /* exit */, code, 0, 0);
}

_Noreturn void fiber__context_returned(void)
{
    say("bti: a context entry returned\n");
    quit(3);
}

static fiber_context_t main_ctx, fib_ctx;
static uint64_t stack_a[2048] __attribute__((aligned(16)));
static uint64_t stack_b[2048] __attribute__((aligned(64)));
static volatile long turns, entered;

/* Called through pointers (blr), as a program that picks a switch at run time does. */
static void (*volatile sw)(fiber_context_t *, fiber_context_t *) = fiber_context_switch_strict;
static void (*volatile sched_sw)(fiber_context_t *, fiber_context_t *) = fiber__sched_switch_strict;

static void entry(void *arg)
{
    for (;;) {
        turns += (long)(intptr_t)arg;
        sw(&fib_ctx, &main_ctx);
    }
}

/* The scheduler's entry for a fresh context: runs on the fresh stack, returns the
 * context to resume (the caller's). */
fiber_context_t *fiber__sched_entry(fiber_context_t *ctx)
{
    (void)ctx;
    entered++;
    return &main_ctx;
}

/* fiber_context_make without libc: the frame switch_aarch64.S documents (x19 = entry,
 * x20 = arg, x29 = 0, x30 = the trampoline, at 160 bytes below the top). */
static void make(fiber_context_t *ctx, uint64_t *top, void (*fn)(void *), void *arg)
{
    uint64_t *fr = top - 20;
    for (int i = 0; i < 20; i++)
        fr[i] = 0;
    fr[8] = (uint64_t)(uintptr_t)fn;
    fr[9] = (uint64_t)(uintptr_t)arg;
    fr[19] = (uint64_t)(uintptr_t)fiber_context_trampoline;
    ctx->sp = fr;
}

/* The join's run path's C ends, as stubs: what they return is the join's result. */
static struct sched jsched;
static uint64_t stack_c[2048] __attribute__((aligned(64)));
static volatile long joined_fn, finished, exited;

int fiber__join_finish(struct fiber *f)
{
    (void)f;
    finished++;
    return 7;
}

fiber_context_t *fiber__sched_exit(struct fiber *f)
{
    (void)f;
    exited++;
    jsched.current = NULL;
    return &jsched.main_ctx; /* resumed in full: the joiner's continuation */
}

static void join_fn(void *arg)
{
    struct fiber *f = arg;
    joined_fn++;
    if (joined_fn % 3 == 0)
        f->stayed = 0; /* as a switch away does: the general end */
}

static int (*volatile join_run)(fiber_context_t *, struct fiber *) = fiber__sched_join_strict;

/* Each end of the run path once per round: the hot slot free (fast end, 0), taken (the
 * finish end, the stub's 7), and the fiber having "switched away" (the general end). */
static int join_ends(void)
{
    struct fiber *f = (struct fiber *)((char *)(stack_c + 2048) - FIBER_RECORD_SIZE);
    struct fiber other;
    for (int i = 1; i <= 9; i++) {
        volatile char *p = (volatile char *)f; /* no memset call: no libc here */
        for (size_t k = 0; k < sizeof *f; k++)
            p[k] = 0;
        f->sched = &jsched;
        f->fn = join_fn;
        f->arg = f;
        f->stayed = 1;
        f->stack.lo = stack_c;
        f->stack.hi = stack_c + 2048;
        f->ctx.sp = NULL; /* fresh */
        jsched.current = f;
        jsched.live = 1;
        jsched.runq_head = NULL;
        jsched.pool[0].size = sizeof stack_c;
        jsched.pool[0].hot = i % 3 == 1 ? NULL : &other;
        int want = i % 3 == 1 ? 0 : 7;
        if (join_run(&jsched.main_ctx, f) != want || joined_fn != i)
            return 1;
        if (i % 3 == 1 && jsched.pool[0].hot != f)
            return 1;
    }
    return finished == 6 && exited == 3 ? 0 : 1;
}

int bti_main(void)
{
    make(&fib_ctx, stack_a + 2048, entry, (void *)(intptr_t)3);
    for (int i = 0; i < 100; i++)
        sw(&main_ctx, &fib_ctx);
    if (turns != 300) {
        say("bti: wrong turn count\n");
        return 1;
    }
    /* A fresh context for the scheduler's switch: its stack top is the context itself. */
    fiber_context_t *fresh = (fiber_context_t *)(stack_b + 2048 - 8);
    for (int i = 0; i < 10; i++) {
        fresh->sp = NULL; /* fresh */
        sched_sw(&main_ctx, fresh);
    }
    if (entered != 10) {
        say("bti: fresh contexts not entered\n");
        return 2;
    }
    if (join_ends() != 0) {
        say("bti: the join's run path went wrong\n");
        return 4;
    }
    say("bti: ok\n");
    return 0;
}

/* The process entry: the kernel (or qemu) starts here with sp set; no libc. */
__asm__(".globl _start\n"
        ".type _start, %function\n"
        "_start:\n"
        "    mov x29, #0\n"
        "    mov x30, #0\n"
        "    bl bti_main\n"
        "    mov x8, #93\n"
        "    svc #0\n");
