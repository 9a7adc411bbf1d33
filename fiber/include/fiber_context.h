/*
 * fiber_context.h - the raw machinery under the scheduler: contexts, the assembly
 * switch and stacks. For benchmarks and for code that wants its own scheduling.
 * Nothing here touches the scheduler; mixing these contexts with fiber_spawn() fibers
 * on the same stack is undefined.
 *
 * A context is only a saved stack pointer: the switch pushes the callee-saved state onto
 * the stack it leaves, stores the stack pointer into *from, loads *to's and pops. The
 * saved frame layout is documented in fiber/src/switch_<arch>.S and pinned in
 * fiber/src/context.c.
 *
 * Control-flow protection. x86-64: the switches are IBT-clean (endbr64 at every entry,
 * NOTRACK on the jumps to return addresses) and their objects are marked IBT; shadow
 * stacks (SHSTK) are not supported - a switch would have to switch shadow stacks too -
 * so the objects are not marked SHSTK, and a program linking them runs with shadow
 * stacks off. aarch64: BTI landing pads at every entry, switches end with `ret` (which
 * BTI exempts), PAC return signing in C code is compatible; marked BTI and PAC.
 */
#ifndef FIBER_CONTEXT_H
#define FIBER_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fiber_context {
    void *sp; /* saved stack pointer; NULL for a context that was never saved */
} fiber_context_t;

/*
 * Prepares ctx so that the first switch to it calls entry(arg) on the stack
 * [stack_lo, stack_hi). entry must never return: it ends by switching away for good
 * (returning aborts the process with a message). stack_hi is aligned down to 16 bytes.
 */
void fiber_context_make(fiber_context_t *ctx, void *stack_lo, void *stack_hi,
                        void (*entry)(void *), void *arg);

/*
 * Saves the caller's callee-saved state into *from and resumes *to. Returns when some
 * later switch resumes *from. The FP control state is handled by the build choice
 * (FIBER_LEAN_FP): fiber_context_switch is the one the scheduler uses.
 */
void fiber_context_switch(fiber_context_t *from, fiber_context_t *to);

/* The two variants, both always built, for benchmarks. A context must be resumed by the
 * same variant that saved it (the strict one reloads the FP control words it saved).
 *   strict: x86-64 also saves MXCSR and the x87 control word (callee-saved in the psABI).
 *   lean:   general registers only. On aarch64 both are the same switch. */
void fiber_context_switch_strict(fiber_context_t *from, fiber_context_t *to);
void fiber_context_switch_lean(fiber_context_t *from, fiber_context_t *to);

/* The same switches ending with a return instead of an indirect jump (on aarch64 every
 * switch returns, for BTI). Faster when every switch between a set of contexts is made
 * from the same call site, as in a scheduler: the return-stack buffer then predicts the
 * resume exactly and stays balanced for the caller's own returns. Between two different
 * call sites (a ping-pong of two loops) the plain variants predict better. A context
 * saved by one ending may be resumed by the other (same FP variant). */
void fiber_context_switch_strict_ret(fiber_context_t *from, fiber_context_t *to);
void fiber_context_switch_lean_ret(fiber_context_t *from, fiber_context_t *to);

#if defined(__x86_64__)
/* The strict switch's two MXCSR policies. The control bits (rounding, masks, DAZ, FZ)
 * and the x87 control word always travel with the context. The MXCSR status flags
 * (exceptions raised) are caller-saved in the psABI:
 *   always: loads the resumed context's saved MXCSR on every switch: the flags travel
 *           with the context, as across a call.
 *   cmp:    writes MXCSR only when the control bits differ, keeping the current flags:
 *           the flags belong to the thread; a switch never changes them, so a fiber
 *           sees the flags other fibers raised or cleared since it last ran.
 * fiber_context_switch_strict (and _ret, and the scheduler's switch) is the one that
 * suits this CPU, chosen once at start: on the Intel Xeon here `always` cost 75-90 ns
 * per switch between contexts whose flags differ (see switch_x86_64.S); AMD gets
 * `always`, every other CPU `cmp`. Code that tests exception flags across a switch
 * (fetestexcept after fiber_yield or a blocking fiber call) must save and restore them
 * itself (fegetexceptflag/fesetexceptflag). Contexts saved by one policy may be resumed
 * by the other. */
void fiber_context_switch_strict_always(fiber_context_t *from, fiber_context_t *to);
void fiber_context_switch_strict_cmp(fiber_context_t *from, fiber_context_t *to);
void fiber_context_switch_strict_always_ret(fiber_context_t *from, fiber_context_t *to);
void fiber_context_switch_strict_cmp_ret(fiber_context_t *from, fiber_context_t *to);
#endif

/* Which variant fiber_context_switch is: "strict" or "lean". */
const char *fiber_context_variant(void);

/* The strict switch's MXCSR policy in this process: "always" or "cmp" (x86-64), "none"
 * (elsewhere: no MXCSR). */
const char *fiber_context_mxcsr_policy(void);

/* ---- Stacks ---------------------------------------------------------------------- */

typedef struct fiber_stack {
    void  *map;      /* start of the mapping (the guard, if any, is here) */
    size_t map_size; /* bytes mapped */
    void  *lo;       /* lowest usable byte */
    void  *hi;       /* one past the highest usable byte: the initial stack top */
    int    guarded;  /* a guard (64 KiB, or one page if larger) sits just below lo */
    unsigned valgrind_id;
} fiber_stack_t;

/* Maps a fresh stack of at least size usable bytes (MAP_NORESERVE; nothing is touched),
 * with a 64 KiB guard below it (one page, if pages are larger) when guard is nonzero.
 * Returns 0, or -1 with errno (ENOMEM, also when vm.max_map_count is reached). */
int fiber_stack_alloc(fiber_stack_t *st, size_t size, int guard);

/* Unmaps a stack from fiber_stack_alloc(). */
void fiber_stack_free(fiber_stack_t *st);

#ifdef __cplusplus
}
#endif

#endif /* FIBER_CONTEXT_H */
