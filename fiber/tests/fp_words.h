/* fp_words.h - the x86-64 FP control words for the runtime's tests: read and write
 * MXCSR and the x87 control word, and compare MXCSR words as far as the run can see. */
#ifndef FIBER_TESTS_FP_WORDS_H
#define FIBER_TESTS_FP_WORDS_H

#include <stdint.h>
#include <valgrind/valgrind.h>

static inline uint32_t get_mxcsr(void) { uint32_t v; __asm__ volatile("stmxcsr %0" : "=m"(v)); return v; }
static inline void set_mxcsr(uint32_t v) { __asm__ volatile("ldmxcsr %0" : : "m"(v)); }
static inline uint16_t get_fcw(void) { uint16_t v; __asm__ volatile("fnstcw %0" : "=m"(v)); return v; }
static inline void set_fcw(uint16_t v) { __asm__ volatile("fldcw %0" : : "m"(v)); }

/* Valgrind models only MXCSR's rounding mode and exception masks (stmxcsr reads the
 * status flags, DAZ and FZ as 0): under it only those bits are compared. */
static inline uint32_t mx(uint32_t v) { return RUNNING_ON_VALGRIND ? v & 0x7F80u : v; }

#endif
