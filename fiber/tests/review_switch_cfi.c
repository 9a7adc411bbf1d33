/* Helper for review_switch_cfi.sh: two fibers yielding to each other, so that a debugger
 * (or a sampling profiler) can stop inside the scheduler's assembly switch. */
#include "fiber.h"

static void yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        fiber_yield();
}

int main(void)
{
    fiber_t *a = fiber_spawn(yielder, NULL), *b = fiber_spawn(yielder, NULL);
    fiber_join(a);
    fiber_join(b);
    return 0;
}
