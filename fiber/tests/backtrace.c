/* Helper for gdb_backtrace.sh: stops in a fiber under a debugger. */
#include <signal.h>

#include "fiber.h"

void __attribute__((noinline)) fiber_bt_leaf(void)
{
    raise(SIGTRAP);
}

static void fiber_bt_entry(void *arg)
{
    (void)arg;
    fiber_bt_leaf();
}

int main(void)
{
    return fiber_join(fiber_spawn(fiber_bt_entry, NULL));
}
