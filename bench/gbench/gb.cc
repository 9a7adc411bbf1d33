// gb.cc - implements the C interface of gb.h over Google Benchmark 1.7.1.
// The only C++ in the benchmarks: every benchmark body is C.
#include "gb.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

// gb_state_t and gb_bench_t stay incomplete: the handles are the library's own objects.

// benchmark::State and Benchmark are what the opaque C handles point at; the casts below
// are the whole trick, so they are confined to these two helpers.
static benchmark::State &S(gb_state_t *st) { return *reinterpret_cast<benchmark::State *>(st); }
static const benchmark::State &S(const gb_state_t *st)
{
    return *reinterpret_cast<const benchmark::State *>(st);
}
static benchmark::internal::Benchmark *B(gb_bench_t *b)
{
    return reinterpret_cast<benchmark::internal::Benchmark *>(b);
}
static gb_bench_t *C(benchmark::internal::Benchmark *b) { return reinterpret_cast<gb_bench_t *>(b); }

#define GB_MISUSE(...)                                                         \
    do {                                                                       \
        std::fprintf(stderr, "gb: misuse at %s:%d: ", __FILE__, __LINE__);    \
        std::fprintf(stderr, __VA_ARGS__);                                     \
        std::fputc('\n', stderr);                                              \
        std::abort();                                                          \
    } while (0)

static double stat_min(const std::vector<double> &v)
{
    return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
}
static double stat_max(const std::vector<double> &v)
{
    return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

// What the shim knows about each registered benchmark: State::range() asserts on an
// argument that was never declared, so gb_arg_get() checks against nargs first.
namespace {
struct entry {
    gb_fn_t fn;
    void   *ctx;
    int     nargs;
};
std::map<const benchmark::internal::Benchmark *, entry *> g_entries;
thread_local const entry *t_running; // the entry whose function runs on this thread
} // namespace

static entry *entry_of(gb_bench_t *b)
{
    auto it = g_entries.find(B(b));
    if (it == g_entries.end())
        GB_MISUSE("not a benchmark from gb_register()");
    return it->second;
}

extern "C" gb_bench_t *gb_register(const char *name, gb_fn_t fn, void *ctx)
{
    if (!name || !*name || !fn)
        GB_MISUSE("gb_register needs a name and a function");
    // Benchmarks live until exit, as in Google Benchmark's own registry.
    entry *e = new entry{fn, ctx, 0};
    auto *b = benchmark::RegisterBenchmark(name, [e](benchmark::State &s) {
        const entry *saved = t_running;
        t_running = e;
        e->fn(reinterpret_cast<gb_state_t *>(&s), e->ctx);
        t_running = saved;
    });
    g_entries[b] = e;
    b->ComputeStatistics("min", stat_min);
    b->ComputeStatistics("max", stat_max);
    return C(b);
}

extern "C" gb_bench_t *gb_arg(gb_bench_t *b, int64_t a)
{
    entry_of(b)->nargs = 1;
    return C(B(b)->Arg(a));
}

extern "C" gb_bench_t *gb_range(gb_bench_t *b, int64_t lo, int64_t hi, int mult)
{
    if (lo < 0 || hi < lo)
        GB_MISUSE("gb_range(%lld, %lld): need 0 <= lo <= hi", (long long)lo, (long long)hi);
    entry_of(b)->nargs = 1;
    if (mult > 1)
        B(b)->RangeMultiplier(mult);
    return C(B(b)->Range(lo, hi));
}

extern "C" gb_bench_t *gb_dense_range(gb_bench_t *b, int64_t lo, int64_t hi, int step)
{
    if (hi < lo || step <= 0)
        GB_MISUSE("gb_dense_range(%lld, %lld, %d): need lo <= hi, step > 0", (long long)lo,
                  (long long)hi, step);
    entry_of(b)->nargs = 1;
    return C(B(b)->DenseRange(lo, hi, step));
}

extern "C" gb_bench_t *gb_arg_name(gb_bench_t *b, const char *name)
{
    if (!name)
        GB_MISUSE("gb_arg_name(NULL)");
    return C(B(b)->ArgName(name));
}

extern "C" gb_bench_t *gb_manual_time(gb_bench_t *b) { return C(B(b)->UseManualTime()); }

extern "C" gb_bench_t *gb_repetitions(gb_bench_t *b, int n)
{
    if (n < 1)
        GB_MISUSE("gb_repetitions(%d): need n >= 1", n);
    B(b)->Repetitions(n);
    // One repetition has no aggregates; keep its plain run then.
    return C(B(b)->ReportAggregatesOnly(n > 1));
}

extern "C" gb_bench_t *gb_min_time(gb_bench_t *b, double seconds)
{
    if (!(seconds > 0))
        GB_MISUSE("gb_min_time(%g): need seconds > 0", seconds);
    return C(B(b)->MinTime(seconds));
}

extern "C" gb_bench_t *gb_iterations(gb_bench_t *b, int64_t n)
{
    if (n < 1)
        GB_MISUSE("gb_iterations(%lld): need n >= 1", (long long)n);
    return C(B(b)->Iterations(n));
}

extern "C" gb_bench_t *gb_unit(gb_bench_t *b, gb_unit_t u)
{
    if (u < GB_NS || u > GB_S)
        GB_MISUSE("gb_unit(%d): not a gb_unit_t", (int)u);
    return C(B(b)->Unit(static_cast<benchmark::TimeUnit>(u)));
}

extern "C" int gb_keep_running_batch(gb_state_t *st, int64_t n)
{
    if (n < 1)
        GB_MISUSE("gb_keep_running_batch(%lld): need n >= 1", (long long)n);
    return S(st).KeepRunningBatch(n);
}

extern "C" int64_t gb_arg_get(const gb_state_t *st, int i)
{
    if (i < 0 || !t_running || i >= t_running->nargs)
        return 0;
    return S(st).range((size_t)i);
}

extern "C" int64_t gb_max_iterations(const gb_state_t *st) { return S(st).max_iterations; }

extern "C" void gb_set_iteration_time_ns(gb_state_t *st, double ns)
{
    S(st).SetIterationTime(ns * 1e-9);
}

extern "C" void gb_counter(gb_state_t *st, const char *name, double value, unsigned flags)
{
    if (!name || (flags & ~7u))
        GB_MISUSE("gb_counter: need a name and GB_COUNTER_* flags (got 0x%x)", flags);
    int f = benchmark::Counter::kDefaults;
    if (flags & GB_COUNTER_RATE)
        f |= benchmark::Counter::kIsRate;
    if (flags & GB_COUNTER_AVG_ITER)
        f |= benchmark::Counter::kAvgIterations;
    if (flags & GB_COUNTER_INVERT)
        f |= benchmark::Counter::kInvert;
    S(st).counters[name] = benchmark::Counter(value, static_cast<benchmark::Counter::Flags>(f));
}

extern "C" void gb_items_processed(gb_state_t *st, int64_t items) { S(st).SetItemsProcessed(items); }
extern "C" void gb_label(gb_state_t *st, const char *label) { S(st).SetLabel(label ? label : ""); }
extern "C" void gb_skip_with_error(gb_state_t *st, const char *msg)
{
    S(st).SkipWithError(msg ? msg : "error");
}
extern "C" void gb_pause_timing(gb_state_t *st) { S(st).PauseTiming(); }
extern "C" void gb_resume_timing(gb_state_t *st) { S(st).ResumeTiming(); }

// ---- running and results ----

namespace {
struct stored {
    std::string name, aggregate;
    gb_result_t r;
    std::map<std::string, double> counters;
};
std::vector<stored> g_results;

// The console reporter, plus a copy of every run for gb_result_get().
class collecting_reporter : public benchmark::ConsoleReporter {
  public:
    explicit collecting_reporter(OutputOptions o) : ConsoleReporter(o) {}
    void ReportRuns(const std::vector<Run> &runs) override
    {
        for (const Run &run : runs) {
            stored s;
            s.name = run.benchmark_name();
            s.aggregate = run.aggregate_name;
            s.r.iterations = run.iterations;
            s.r.real_ns = gb_to_ns(run.GetAdjustedRealTime(), static_cast<gb_unit_t>(run.time_unit));
            s.r.error = run.error_occurred;
            for (const auto &c : run.counters)
                s.counters[c.first] = c.second.value;
            g_results.push_back(std::move(s));
        }
        ConsoleReporter::ReportRuns(runs);
    }
};
} // namespace

extern "C" int gb_run(int argc, char **argv, int to_stderr)
{
    g_results.clear();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return -1;
    collecting_reporter rep(to_stderr ? benchmark::ConsoleReporter::OO_None
                                      : benchmark::ConsoleReporter::OO_Defaults);
    if (to_stderr) {
        rep.SetOutputStream(&std::cerr);
        rep.SetErrorStream(&std::cerr);
    }
    size_t n = benchmark::RunSpecifiedBenchmarks(&rep);
    // Pointers into the strings are stable from here on: the vector no longer grows.
    for (auto &s : g_results) {
        s.r.name = s.name.c_str();
        s.r.aggregate = s.aggregate.c_str();
    }
    return (int)n;
}

extern "C" int gb_result_count(void) { return (int)g_results.size(); }

extern "C" const gb_result_t *gb_result_get(int i)
{
    if (i < 0 || i >= (int)g_results.size())
        return nullptr;
    return &g_results[i].r;
}

extern "C" double gb_result_counter(int i, const char *name, int *found)
{
    if (found)
        *found = 0;
    if (i < 0 || i >= (int)g_results.size() || !name)
        return 0;
    auto it = g_results[i].counters.find(name);
    if (it == g_results[i].counters.end())
        return 0;
    if (found)
        *found = 1;
    return it->second;
}

// ---- units ----

static const double k_ns_per_unit[] = {1.0, 1e3, 1e6, 1e9};

extern "C" double gb_to_ns(double value, gb_unit_t u)
{
    if (u < GB_NS || u > GB_S)
        GB_MISUSE("gb_to_ns: unit %d", (int)u);
    return value * k_ns_per_unit[u];
}

extern "C" double gb_from_ns(double ns, gb_unit_t u)
{
    if (u < GB_NS || u > GB_S)
        GB_MISUSE("gb_from_ns: unit %d", (int)u);
    return ns / k_ns_per_unit[u];
}

extern "C" int gb_unit_parse(const char *s)
{
    static const char *names[] = {"ns", "us", "ms", "s"};
    for (int i = 0; s && i < 4; i++)
        if (std::string(s) == names[i])
            return i;
    return -1;
}
