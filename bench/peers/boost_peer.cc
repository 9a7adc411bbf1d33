// boost_peer.cc - Boost.Context's jump_fcontext ping-pong, behind a C interface.
// The raw fcontext layer (boost/context/detail/fcontext.hpp) is what Boost.Fiber and
// Boost.Coroutine2 build on; measuring it, not callcc, compares switch with switch.
#include "peers.h"

#include <boost/context/detail/fcontext.hpp>

#include <cerrno>
#include <cstdlib>
#include <sys/mman.h>

namespace bcd = boost::context::detail;

static bcd::fcontext_t g_peer;
static void *g_stack;
static size_t g_stack_size;
static const peer_layout_t *g_layout;

// The peer bounces every switch straight back, forever; it is never resumed after
// peer_boost_fini(), so it needs no way out. (Where the layout has no assembly loops.)
static void peer_entry(bcd::transfer_t t)
{
    for (;;)
        t = bcd::jump_fcontext(t.fctx, nullptr);
}

extern "C" int peer_boost_init(size_t stack_size, size_t top_off, const peer_layout_t *layout)
{
    if (top_off % 16 != 0 || top_off + 4096 > stack_size) {
        errno = EINVAL;
        return -1;
    }
    void *p = mmap(nullptr, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    g_stack = p;
    g_stack_size = stack_size;
    g_layout = layout;
    auto entry = layout->boost_entry ? reinterpret_cast<void (*)(bcd::transfer_t)>(layout->boost_entry)
                                     : peer_entry;
    g_peer = bcd::make_fcontext(static_cast<char *>(p) + stack_size - top_off,
                                stack_size - top_off, entry);
    return 0;
}

extern "C" void peer_boost_pingpong(uint64_t rounds)
{
    if (g_layout->boost_run) {
        if (rounds)
            g_peer = g_layout->boost_run(g_peer, rounds);
        return;
    }
    bcd::fcontext_t peer = g_peer;
    for (uint64_t i = 0; i < rounds; i++)
        peer = bcd::jump_fcontext(peer, nullptr).fctx;
    g_peer = peer;
}

extern "C" void peer_boost_fini(void)
{
    if (g_stack)
        munmap(g_stack, g_stack_size);
    g_stack = nullptr;
}
