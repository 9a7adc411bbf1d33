/* The raw context switch: every callee-saved register, the FP control state, entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "fiber_context.h"

static fiber_context_t main_ctx, fib_ctx;
static fiber_stack_t stack;

void regs_probe(fiber_context_t *from, fiber_context_t *to, uint64_t out[6]);
void regs_clobber(fiber_context_t *self, fiber_context_t *back);

static void clobber_entry(void *arg)
{
    (void)arg;
    for (;;)
        regs_clobber(&fib_ctx, &main_ctx);
}

static void test_callee_saved_registers_survive(void **state)
{
    (void)state;
    assert_int_equal(fiber_stack_alloc(&stack, 64 * 1024, 1), 0);
    fiber_context_make(&fib_ctx, stack.lo, stack.hi, clobber_entry, NULL);
    for (int round = 0; round < 3; round++) {
        uint64_t out[6] = { 0 };
        regs_probe(&main_ctx, &fib_ctx, out);
        assert_int_equal(out[0], 0x1111111111111111ull); /* rbx */
        assert_int_equal(out[1], 0x2222222222222222ull); /* rbp */
        assert_int_equal(out[2], 0x3333333333333333ull); /* r12 */
        assert_int_equal(out[3], 0x4444444444444444ull); /* r13 */
        assert_int_equal(out[4], 0x5555555555555555ull); /* r14 */
        assert_int_equal(out[5], 0x6666666666666666ull); /* r15 */
    }
    fiber_stack_free(&stack);
}

#include "fp_words.h"

/* Round toward zero in main, upward in the fiber (MXCSR RC bits 13-14, x87 RC bits 10-11). */
#define MAIN_MXCSR 0x7F80u
#define MAIN_FCW   0x0F7Fu
#define FIB_MXCSR  0x5F80u
#define FIB_FCW    0x0B7Fu

static uint32_t fib_seen_mxcsr_first, fib_seen_mxcsr_again;
static uint16_t fib_seen_fcw_first, fib_seen_fcw_again;

/* The strict switch under test: the one chosen for this CPU, and each MXCSR policy
 * explicitly (ping-pong and ret-ended), so both are tested on every CPU. Exact words:
 * the control bits travel with the context under both policies; the flags (bits 0-5)
 * travel with it under `always` and stay with the thread under `cmp` (fiber_context.h). */
typedef void switch_fn(fiber_context_t *, fiber_context_t *);
static switch_fn *fp_sw_main, *fp_sw_fib;

static void fp_entry(void *arg)
{
    (void)arg;
    fib_seen_mxcsr_first = get_mxcsr();
    fib_seen_fcw_first = get_fcw();
    set_mxcsr(FIB_MXCSR);
    set_fcw(FIB_FCW);
    fp_sw_fib(&fib_ctx, &main_ctx);
    fib_seen_mxcsr_again = get_mxcsr();
    fib_seen_fcw_again = get_fcw();
    /* The fiber's own sticky flag (precision), then back to main. */
    set_mxcsr(FIB_MXCSR | 0x20u);
    fp_sw_fib(&fib_ctx, &main_ctx);
    /* Same control bits on both sides, flags differing: the last case. */
    set_mxcsr(MAIN_MXCSR | 0x01u); /* invalid-operation flag */
    fp_sw_fib(&fib_ctx, &main_ctx);
    for (;;)
        fp_sw_fib(&fib_ctx, &main_ctx);
}

/* cmp_main/cmp_fib: whether the switch resuming main / the fiber keeps the flags. */
static void check_fp_control_state(switch_fn *sw_main, int cmp_main, switch_fn *sw_fib, int cmp_fib)
{
    uint32_t saved_mxcsr = get_mxcsr();
    uint16_t saved_fcw = get_fcw();
    fp_sw_main = sw_main;
    fp_sw_fib = sw_fib;
    assert_int_equal(fiber_stack_alloc(&stack, 64 * 1024, 1), 0);
    fiber_context_make(&fib_ctx, stack.lo, stack.hi, fp_entry, NULL);

    /* main's MXCSR carries a status flag (as after any inexact operation) that the new
     * context's does not. */
    set_mxcsr(MAIN_MXCSR | 0x20u);
    set_fcw(MAIN_FCW);
    sw_main(&main_ctx, &fib_ctx);
    /* A new context starts with the psABI default control bits, not the creator's. */
    assert_int_equal(mx(fib_seen_mxcsr_first), mx(cmp_main ? 0x1F80u | 0x20u : 0x1F80u));
    assert_int_equal(fib_seen_fcw_first, 0x037Fu);
    /* The fiber changed its rounding modes; ours are back (flags: the fiber's had none). */
    assert_int_equal(mx(get_mxcsr()), mx(cmp_fib ? MAIN_MXCSR : MAIN_MXCSR | 0x20u));
    assert_int_equal(get_fcw(), MAIN_FCW);
    /* main with another flag (underflow); the fiber resumes with its own control bits
     * and, under cmp, main's flag; it sets precision and comes back. */
    set_mxcsr(MAIN_MXCSR | 0x10u);
    sw_main(&main_ctx, &fib_ctx);
    assert_int_equal(mx(fib_seen_mxcsr_again), mx(cmp_main ? FIB_MXCSR | 0x10u : FIB_MXCSR));
    assert_int_equal(fib_seen_fcw_again, FIB_FCW);
    assert_int_equal(mx(get_mxcsr()), mx(cmp_fib ? MAIN_MXCSR | 0x20u : MAIN_MXCSR | 0x10u));
    assert_int_equal(get_fcw(), MAIN_FCW);
    /* Same control bits, flags differing: under cmp nothing is written, the fiber's
     * flag stays; under always main's own word (no flags now) comes back. */
    set_mxcsr(MAIN_MXCSR);
    sw_main(&main_ctx, &fib_ctx);
    assert_int_equal(mx(get_mxcsr()), mx(cmp_fib ? MAIN_MXCSR | 0x01u : MAIN_MXCSR));

    set_mxcsr(saved_mxcsr);
    set_fcw(saved_fcw);
    fiber_stack_free(&stack);
}

static void test_fp_control_state_survives(void **state)
{
    (void)state;
    int cmp = strcmp(fiber_context_mxcsr_policy(), "cmp") == 0;
    check_fp_control_state(fiber_context_switch_strict, cmp, fiber_context_switch_strict, cmp);
}

static void test_fp_control_state_survives_each_mxcsr_policy(void **state)
{
    (void)state;
    check_fp_control_state(fiber_context_switch_strict_always, 0, fiber_context_switch_strict_always, 0);
    check_fp_control_state(fiber_context_switch_strict_cmp, 1, fiber_context_switch_strict_cmp, 1);
    check_fp_control_state(fiber_context_switch_strict_always_ret, 0,
                           fiber_context_switch_strict_always_ret, 0);
    check_fp_control_state(fiber_context_switch_strict_cmp_ret, 1, fiber_context_switch_strict_cmp_ret, 1);
    /* A context saved by one policy may be resumed by the other. */
    check_fp_control_state(fiber_context_switch_strict_always, 0, fiber_context_switch_strict_cmp, 1);
    check_fp_control_state(fiber_context_switch_strict_cmp_ret, 1, fiber_context_switch_strict_always, 0);
}

static void test_mxcsr_policy_named(void **state)
{
    (void)state;
    const char *p = fiber_context_mxcsr_policy();
    assert_true(strcmp(p, "always") == 0 || strcmp(p, "cmp") == 0);
}

static long pings;

static void pingpong_entry(void *arg)
{
    long *step = arg;
    for (;;) {
        pings += *step;
        fiber_context_switch_lean(&fib_ctx, &main_ctx);
    }
}

static void test_lean_switch_passes_arg_and_resumes(void **state)
{
    (void)state;
    long step = 7;
    assert_int_equal(fiber_stack_alloc(&stack, 16 * 1024, 0), 0);
    assert_false(stack.guarded);
    fiber_context_make(&fib_ctx, stack.lo, stack.hi, pingpong_entry, &step);
    pings = 0;
    for (int i = 0; i < 1000; i++)
        fiber_context_switch_lean(&main_ctx, &fib_ctx);
    assert_int_equal(pings, 7000);
    fiber_stack_free(&stack);
}

static void test_stack_alloc_rejects_zero(void **state)
{
    (void)state;
    fiber_stack_t st;
    assert_int_equal(fiber_stack_alloc(&st, 0, 1), -1);
    assert_int_equal(fiber_stack_alloc(&st, 100, 1), 0); /* rounded up to a page */
    assert_true((char *)st.hi - (char *)st.lo >= 4096);
    assert_true(st.guarded);
    fiber_stack_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callee_saved_registers_survive),
        cmocka_unit_test(test_fp_control_state_survives),
        cmocka_unit_test(test_fp_control_state_survives_each_mxcsr_policy),
        cmocka_unit_test(test_mxcsr_policy_named),
        cmocka_unit_test(test_lean_switch_passes_arg_and_resumes),
        cmocka_unit_test(test_stack_alloc_rejects_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
