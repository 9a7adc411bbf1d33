/* regs_patterns.h - the callee-saved registers regs_run_probe (regs_<arch>.S) loads with
 * known values around a call and stores to out[] when it returns, for test_run_path.c
 * and test_sched.c: their names and the values they must still hold. */
#ifndef FIBER_TESTS_REGS_PATTERNS_H
#define FIBER_TESTS_REGS_PATTERNS_H

#include <stdint.h>

#if defined(__x86_64__)
/* rbx, rbp, r12-r15 (psABI figure 3.4). */
#define REGS_N 6
static const uint64_t regs_want[REGS_N] = {
    0x1111111111111111u, 0x2222222222222222u, 0x3333333333333333u,
    0x4444444444444444u, 0x5555555555555555u, 0x6666666666666666u};
static const char *const regs_names[REGS_N] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
#elif defined(__aarch64__)
/* x19-x28, x29 and d8-d15 (AAPCS64 6.1.1, 6.1.2); x30 and sp show in the probe
 * returning at all. */
#define REGS_N 19
static const uint64_t regs_want[REGS_N] = {
    0x1919191919191919u, 0x2020202020202020u, 0x2121212121212121u, 0x2222222222222222u,
    0x2323232323232323u, 0x2424242424242424u, 0x2525252525252525u, 0x2626262626262626u,
    0x2727272727272727u, 0x2828282828282828u, 0x2929292929292929u,
    0x0808080808080808u, 0x0909090909090909u, 0x1010101010101010u, 0x1111111111111111u,
    0x1212121212121212u, 0x1313131313131313u, 0x1414141414141414u, 0x1515151515151515u};
static const char *const regs_names[REGS_N] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29",
    "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15"};
#endif

/* Loads the patterns, calls run(a, b), stores the registers to out[] when it returns;
 * returns what run returned. */
uint64_t regs_run_probe(void *run, void *a, void *b, uint64_t out[REGS_N]);
/* A fiber function as a compiler may make one: counts its run in *ran, uses every
 * callee-saved register (restoring them) and leaves garbage in the caller-saved ones. */
void regs_clobber_fn(long *ran);

#endif
