/*
 * The join's run path (switch_x86_64.S's SCHED_JOIN, switch_aarch64.S's
 * fiber__sched_join_*) entered directly, each FP variant (x86-64: lean, strict with
 * either MXCSR policy; aarch64: lean and strict, one function), on a scheduler and a
 * record made here, by
 * each of its three ends: the fast end that puts the record in the pool's hot slot and
 * returns 0 itself, the fast end that leaves the record to fiber__join_finish() (the hot
 * slot is taken), and the general end (the fiber switched away: fiber__sched_exit() and
 * the scheduler switch's way back, which resumes the joiner's saved frame).
 *
 * The fast ends resume the joiner without reloading the callee-saved registers the
 * fiber's function preserved; only the frame pointer (rbp, x29: zeroed on the fiber's
 * stack so frame-pointer walks stop there), the return address (aarch64's x30) and the
 * FP control words (x86-64) are taken back. Through fiber_join() a missing restore could
 * hide in a C frame that saves and restores the register itself. So the probe
 * (regs_<arch>.S) loads known values into every callee-saved register (regs_patterns.h)
 * and calls the run path itself, and the fiber's function clobbers every register it
 * may. The aarch64 build runs under qemu-user with a small cmocka of its own (a64/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "regs_patterns.h"
#if defined(__x86_64__)
#include "fp_words.h"
#endif

typedef int run_fn(fiber_context_t *from, struct fiber *f);

static const struct variant {
    const char *name;
    run_fn     *run;
    int         strict;
} variants[] = {
#if defined(__x86_64__)
    {"lean", fiber__sched_join_lean, 0},
    {"strict/always", fiber__sched_join_strict_always, 1},
    {"strict/cmp", fiber__sched_join_strict_cmp, 1},
#else
    {"lean", fiber__sched_join_lean, 0},
    {"strict", fiber__sched_join_strict, 0}, /* no FP words: the same function */
#endif
};

enum run_end { END_HOT, END_FINISH, END_GENERAL, END_COUNT };
static const char *const end_names[END_COUNT] = {"fast end, hot slot", "fast end, finish",
                                                 "general end"};

/* A scheduler at rest with one fresh fiber f running fn(arg) on its own stack, as
 * fiber_join() leaves them when it calls the run path: popped from the run queue, the
 * current fiber, counted live; the pool's first bucket holds stacks of f's size, its hot
 * slot free (END_HOT) or taken by another record (END_FINISH, END_GENERAL). */
struct setup {
    struct sched *s;
    struct fiber *f;
    struct fiber  other; /* the record in the hot slot */
    fiber_stack_t st;
    enum run_end  end;
};

static void setup_make(struct setup *u, void (*fn)(void *), void *arg, enum run_end end)
{
    memset(u, 0, sizeof *u);
    u->end = end;
    u->s = calloc(1, sizeof *u->s);
    assert_non_null(u->s);
    assert_int_equal(fiber_stack_alloc(&u->st, 64 * 1024, 1), 0);
    u->f = (struct fiber *)((char *)u->st.hi - FIBER_RECORD_SIZE);
    memset(u->f, 0, sizeof *u->f);
    u->f->stack = u->st;
    u->f->sched = u->s;
    u->f->fn = fn;
    u->f->arg = arg;
    u->f->state = FIBER_READY;
    u->f->joined = JOINED;
    u->f->stayed = 1;
    u->f->heap_idx = NO_HEAP;
    u->f->ctx.sp = NULL; /* fresh */
    u->s->current = u->f;
    u->s->live = 1;
    u->s->pool[0].size = (size_t)((char *)u->st.hi - (char *)u->st.lo);
    if (end != END_HOT)
        u->s->pool[0].hot = &u->other;
}

/* After the run path returned rc: f ended, its record in the hot slot (and the other
 * one moved to the list), the scheduler at rest. */
static void setup_check_ended(struct setup *u, uint64_t rc)
{
    assert_int_equal(rc & 0xffffffffu, 0);
    if (u->end != END_HOT) /* a record the hot slot took keeps spawn's state: unread */
        assert_int_equal(u->f->state, FIBER_DONE);
    else /* and so shows that the fast end put it there, not fiber__join_finish() */
        assert_int_equal(u->f->state, FIBER_READY);
    assert_int_equal(u->s->live, 0);
    assert_null(u->s->current);
    assert_ptr_equal(u->s->pool[0].hot, u->f);
    if (u->end != END_HOT) {
        assert_ptr_equal(u->s->pool[0].head, &u->other);
        assert_int_equal(u->s->pool[0].count, 1);
    }
    fiber_stack_free(&u->st);
    free(u->s);
}

/* The fiber's function: regs_clobber_fn, after (END_GENERAL) clearing stayed, as a
 * switch away from the fiber does. */
struct clobber_arg {
    long          ran; /* first: regs_clobber_fn counts here */
    struct setup *u;
};

static void clobber_entry(void *p)
{
    struct clobber_arg *a = p;
    if (a->u->end == END_GENERAL)
        a->u->f->stayed = 0;
    regs_clobber_fn(&a->ran);
}

static void check_patterns(const uint64_t out[REGS_N])
{
    for (int i = 0; i < REGS_N; i++)
        if (out[i] != regs_want[i])
            fail_msg("%s is %#llx after the run path, want %#llx", regs_names[i],
                     (unsigned long long)out[i], (unsigned long long)regs_want[i]);
}

static void test_run_path_keeps_registers(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        for (int e = 0; e < END_COUNT; e++)
            for (int round = 0; round < 2; round++) {
                struct setup u;
                struct clobber_arg a = {0, &u};
                setup_make(&u, clobber_entry, &a, (enum run_end)e);
                uint64_t out[REGS_N] = {0};
                print_message("%s, %s, round %d\n", variants[v].name, end_names[e], round);
                uint64_t rc = regs_run_probe((void *)variants[v].run, &u.s->main_ctx, u.f, out);
                assert_int_equal(a.ran, 1);
                check_patterns(out);
                setup_check_ended(&u, rc);
            }
}

#if defined(__x86_64__)
/* The FP control words, by each end: the strict variants start the fiber with the psABI
 * defaults and give the joiner its own back after a fiber that changed them; lean leaves
 * them alone both ways. */
static uint32_t seen_mxcsr;
static uint16_t seen_fcw;

static void fp_changer(void *arg)
{
    struct setup *u = arg;
    seen_mxcsr = get_mxcsr();
    seen_fcw = get_fcw();
    set_mxcsr(0x5F80u); /* round up */
    set_fcw(0x0B7Fu);
    if (u->end == END_GENERAL)
        u->f->stayed = 0;
}

static void test_run_path_fp_words(void **state)
{
    (void)state;
    uint32_t saved_mxcsr = get_mxcsr();
    uint16_t saved_fcw = get_fcw();
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        for (int e = 0; e < END_COUNT; e++) {
            struct setup u;
            setup_make(&u, fp_changer, &u, (enum run_end)e);
            set_mxcsr(0x7F80u); /* round toward zero */
            set_fcw(0x0F7Fu);
            uint64_t out[REGS_N];
            uint64_t rc = regs_run_probe((void *)variants[v].run, &u.s->main_ctx, u.f, out);
            uint32_t now = get_mxcsr();
            uint16_t now_fcw = get_fcw();
            set_mxcsr(saved_mxcsr);
            set_fcw(saved_fcw);
            print_message("%s, %s: fiber saw %#x/%#x, joiner has %#x/%#x\n", variants[v].name,
                          end_names[e], seen_mxcsr, seen_fcw, now, now_fcw);
            check_patterns(out);
            if (variants[v].strict) {
                assert_int_equal(mx(seen_mxcsr), mx(0x1F80u));
                assert_int_equal(seen_fcw, 0x037Fu);
                assert_int_equal(mx(now), mx(0x7F80u));
                assert_int_equal(now_fcw, 0x0F7Fu);
            } else {
                assert_int_equal(mx(seen_mxcsr), mx(0x7F80u));
                assert_int_equal(seen_fcw, 0x0F7Fu);
                assert_int_equal(mx(now), mx(0x5F80u));
                assert_int_equal(now_fcw, 0x0B7Fu);
            }
            setup_check_ended(&u, rc);
        }
}
#else
/* aarch64: FPCR (rounding mode, FZ, DN) is the thread's, as fiber.h says and as every
 * aarch64 switch leaves it: the run path neither loads defaults for the fiber nor gives
 * the joiner its own back, by any end - the same as a fiber entered by the scheduler's
 * switch sees. */
static inline uint64_t get_fpcr(void) { uint64_t v; __asm__ volatile("mrs %0, fpcr" : "=r"(v)); return v; }
static inline void set_fpcr(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
#define FPCR_RMODE_PLUS (UINT64_C(1) << 22)  /* round toward +infinity */
#define FPCR_RMODE_ZERO (UINT64_C(3) << 22)  /* round toward zero */
static uint64_t seen_fpcr;

static void fpcr_changer(void *arg)
{
    struct setup *u = arg;
    seen_fpcr = get_fpcr();
    set_fpcr((seen_fpcr & ~FPCR_RMODE_ZERO) | FPCR_RMODE_PLUS);
    if (u->end == END_GENERAL)
        u->f->stayed = 0;
}

static void test_run_path_fpcr(void **state)
{
    (void)state;
    uint64_t saved = get_fpcr();
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        for (int e = 0; e < END_COUNT; e++) {
            struct setup u;
            setup_make(&u, fpcr_changer, &u, (enum run_end)e);
            set_fpcr((saved & ~FPCR_RMODE_ZERO) | FPCR_RMODE_ZERO);
            uint64_t out[REGS_N];
            uint64_t rc = regs_run_probe((void *)variants[v].run, &u.s->main_ctx, u.f, out);
            uint64_t now = get_fpcr();
            set_fpcr(saved);
            print_message("%s, %s: fiber saw FPCR %#llx, joiner has %#llx\n", variants[v].name,
                          end_names[e], (unsigned long long)seen_fpcr, (unsigned long long)now);
            check_patterns(out);
            assert_int_equal(seen_fpcr & FPCR_RMODE_ZERO, FPCR_RMODE_ZERO);
            assert_int_equal(now & FPCR_RMODE_ZERO, FPCR_RMODE_PLUS);
            setup_check_ended(&u, rc);
        }
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_path_keeps_registers),
#if defined(__x86_64__)
        cmocka_unit_test(test_run_path_fp_words),
#else
        cmocka_unit_test(test_run_path_fpcr),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
