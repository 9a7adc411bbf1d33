/*
 * a64/cmocka.h - the part of cmocka's API the runtime's tests use, for the aarch64
 * cross build run under qemu-user (fiber/tests/CMakeLists.txt): Debian has no aarch64
 * cmocka without multiarch, and the tests should be the same source on both
 * architectures. Written here from cmocka's documented interface, not from its code.
 *
 * A failed assertion prints where and what, and leaves the test through longjmp (as
 * cmocka does), so the group goes on with the next test; cmocka_run_group_tests()
 * prints one line per test and returns the number that failed. Only for the cross
 * build: the host build includes the real <cmocka.h>.
 */
#ifndef FIBER_TESTS_A64_CMOCKA_H
#define FIBER_TESTS_A64_CMOCKA_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*CMUnitTestFunction)(void **state);
typedef int (*CMFixtureFunction)(void **state);

struct CMUnitTest {
    const char        *name;
    CMUnitTestFunction test_func;
};

#define cmocka_unit_test(f) { #f, f }

static jmp_buf cm_a64_jmp;
static int cm_a64_skipped;

static inline void print_message(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static inline void print_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static inline _Noreturn void cm_a64_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[  ERROR   ] %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    longjmp(cm_a64_jmp, 1);
}

#define fail() cm_a64_fail(__FILE__, __LINE__, "fail()")
#define fail_msg(...) cm_a64_fail(__FILE__, __LINE__, __VA_ARGS__)
#define skip() do { cm_a64_skipped = 1; longjmp(cm_a64_jmp, 2); } while (0)

#define assert_true(c) do { if (!(c)) cm_a64_fail(__FILE__, __LINE__, "%s is false", #c); } while (0)
#define assert_false(c) do { if (c) cm_a64_fail(__FILE__, __LINE__, "%s is true", #c); } while (0)
#define assert_int_equal(a, b) do { \
        uintmax_t cm_a_ = (uintmax_t)(a), cm_b_ = (uintmax_t)(b); \
        if (cm_a_ != cm_b_) cm_a64_fail(__FILE__, __LINE__, "%s: %#jx != %#jx", #a, cm_a_, cm_b_); \
    } while (0)
#define assert_int_not_equal(a, b) do { \
        uintmax_t cm_a_ = (uintmax_t)(a), cm_b_ = (uintmax_t)(b); \
        if (cm_a_ == cm_b_) cm_a64_fail(__FILE__, __LINE__, "%s: %#jx == %#jx", #a, cm_a_, cm_b_); \
    } while (0)
#define assert_ptr_equal(a, b) do { \
        const void *cm_a_ = (const void *)(a), *cm_b_ = (const void *)(b); \
        if (cm_a_ != cm_b_) cm_a64_fail(__FILE__, __LINE__, "%s: %p != %p", #a, cm_a_, cm_b_); \
    } while (0)
#define assert_ptr_not_equal(a, b) do { \
        const void *cm_a_ = (const void *)(a), *cm_b_ = (const void *)(b); \
        if (cm_a_ == cm_b_) cm_a64_fail(__FILE__, __LINE__, "%s: %p == %p", #a, cm_a_, cm_b_); \
    } while (0)
#define assert_null(p) assert_ptr_equal(p, NULL)
#define assert_non_null(p) do { \
        if ((const void *)(p) == NULL) cm_a64_fail(__FILE__, __LINE__, "%s is NULL", #p); \
    } while (0)
#define assert_string_equal(a, b) do { \
        const char *cm_a_ = (a), *cm_b_ = (b); \
        if (strcmp(cm_a_, cm_b_) != 0) \
            cm_a64_fail(__FILE__, __LINE__, "%s: \"%s\" != \"%s\"", #a, cm_a_, cm_b_); \
    } while (0)

#define cmocka_run_group_tests(tests, setup, teardown) \
    cm_a64_run((tests), sizeof(tests) / sizeof((tests)[0]), (setup), (teardown))

static inline int cm_a64_run(const struct CMUnitTest *t, size_t n, CMFixtureFunction setup,
                             CMFixtureFunction teardown)
{
    volatile int failed = 0;
    void *state = NULL;
    if (setup && setup(&state) != 0) {
        fprintf(stderr, "[  ERROR   ] group setup failed\n");
        return (int)n;
    }
    printf("[==========] Running %zu test(s).\n", n);
    for (size_t i = 0; i < n; i++) {
        printf("[ RUN      ] %s\n", t[i].name);
        fflush(NULL);
        cm_a64_skipped = 0;
        volatile int r = setjmp(cm_a64_jmp);
        if (r == 0)
            t[i].test_func(&state);
        if (r == 1) {
            failed++;
            printf("[  FAILED  ] %s\n", t[i].name);
        } else {
            printf("[ %s ] %s\n", cm_a64_skipped ? " SKIPPED" : "      OK", t[i].name);
        }
        fflush(NULL);
    }
    if (teardown)
        teardown(&state);
    printf("[==========] %zu test(s) run.\n[  PASSED  ] %zu test(s).\n", n, n - (size_t)failed);
    if (failed)
        printf("[  FAILED  ] %d test(s).\n", failed);
    return failed;
}

#endif
