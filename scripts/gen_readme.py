#!/usr/bin/env python3
"""Generates the README sections that quote numbers, from the published set the README
shows (results/published/shown.txt), between markers:

    <!-- gen:NAME -->
    ...generated; edits here are overwritten...
    <!-- /gen -->

    scripts/gen_readme.py [--check] [--set DIR] [FILE ...]

Without FILE: README.md, mock-llm/README.md and workloads/README.md. Each NAME is a
function in SECTIONS below; text outside the markers is left as it is. --check writes
the regenerated files into a temporary directory and diffs them against the tree:
exit 1 (with the diff) when a README and the CSVs disagree, which `make test`
(CTest readme_in_sync) turns into a failure. `make readme` (or make publish) rewrites
them.

Adding a section (for the engineers of other harnesses): write a function
`def sec_<name>(ctx) -> str` that reads only ctx.rows(harness) / ctx.machine(harness)
(the published set), register it in SECTIONS as "<name>", and put the two marker lines
in the README where it goes. Quote no number outside the markers: a number that is not
generated from a CSV row is not supported by one.

Exit status: 0 written (or in sync), 1 out of sync or an unknown/unclosed marker,
2 bad usage. Python 3 standard library only.
"""
import argparse
import difflib
import io
import math
import os
import re
import sys
import tempfile
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reproduce  # noqa: E402
import resultsets  # noqa: E402

TOP = resultsets.TOP
sys.path.insert(0, os.path.join(TOP, "plots"))
import tables  # noqa: E402

FILES = ["README.md", os.path.join("mock-llm", "README.md"), os.path.join("workloads", "README.md")]
BEGIN = re.compile(r"^<!-- gen:([a-z0-9-]+) -->\s*$")
END = "<!-- /gen -->"


class Ctx:
    """The published set a README shows."""

    def __init__(self, set_dir):
        self.dir = set_dir
        self.name = os.path.basename(os.path.abspath(set_dir))
        self.rel = os.path.relpath(os.path.abspath(set_dir), TOP)
        self.plots = os.path.join("plots", "published", self.name)
        self._rows = {}

    def rows(self, h):
        if h not in self._rows:
            self._rows[h] = resultsets.load_rows(self.dir, h) or []
        return self._rows[h]

    def machine(self, h):
        return resultsets.read_machine(os.path.join(self.dir, h + ".machine.txt"))

    def row(self, h, case, metric):
        """The first row of harness h with one of the cases (a name or a list) and metric."""
        return reproduce.sel(self.rows(h), case=case if isinstance(case, list) else [case],
                             metric=metric)


# ---- formatting ----

def t_ns(x):
    x = float(x)
    if x >= 1e9:
        return f"{x / 1e9:.3g} s"
    if x >= 1e6:
        return f"{x / 1e6:.3g} ms"
    if x >= 1e3:
        return f"{x / 1e3:.3g} µs"
    return f"{x:.3g} ns"


def t_us(x):
    return t_ns(float(x) * 1e3)


def kib(x):
    return f"{float(x) / 1024:.1f} KiB"


def mib(x):
    return f"{float(x) / 1048576:.0f} MiB"


def cnt(x):
    return f"{float(x):,.0f}"


def rate(x):
    x = float(x)
    return f"{x / 1e3:.3g}k" if x >= 1e4 else f"{x:,.0f}"


def ms(x):
    x = float(x)
    return f"{x / 1e3:.2f} s" if x >= 1e3 else f"{x:.3g} ms"


def xr(r):
    return f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x"


def runs_note(*rows):
    """'' when every row is a median of >= 3 runs, else what it is."""
    n = min(int(r["runs"]) for r in rows if r)
    return "" if n >= 3 else (" (one run)" if n == 1 else f" (median of {n} runs)")


def no_stalls(*machines):
    """', no stalls' when the set's gpt-4o --tps 5 runs asked mock-llm for none
    (--stall-rate 0, README "Time budget"; sets from 2026-12-03 on), else ''."""
    return (", without its stalls" if any("stall-rate 0" in " ".join(m.values())
                                          for m in machines if m) else "")


def missing(what):
    return f"({what}: not in this set)"


# ---- sections ----

def single_runs(rows):
    """The measured cases of one harness with fewer than 3 runs, grouped for a sentence:
    `llm/{c-fiber,c-thread}/gpt4o-5tps/n=1,000, 10,000`. Ratio, failure and limit rows follow
    their cases; warm-up rows and the post's quoted figures are left out."""
    byval = {}
    for r in rows:
        c = r["case"]
        if int(r["runs"]) >= 3 or "/ratio/" in c or "warming" in c or "published-" in c:
            continue
        c = re.sub(r"/(fail|limit)=.*$", "", c)
        c = re.sub(r"/(grow|release|runq_wait|steal|at-knee|client-saturated|probes|"
                   r"(machine-)?retries(-passed|-steal|-machine)?)$", "", c)
        p = c.split("/")
        model = p[1] if len(p) > 2 else ""
        if len(p) > 2:
            p[1] = "{}"
        m = re.match(r"(.*)/([nc])=(\d+)$", "/".join(p))
        key, val = (m.group(1) + "/" + m.group(2), int(m.group(3))) if m else ("/".join(p), None)
        g = byval.setdefault((key, val), {"models": [], "runs": set()})
        if model and model not in g["models"]:
            g["models"].append(model)
        g["runs"].add(int(r["runs"]))
    groups = {}
    for (key, val), g in byval.items():
        k = (key, tuple(sorted(g["models"])))
        x = groups.setdefault(k, {"models": g["models"], "vals": [], "runs": set()})
        if val is not None:
            x["vals"].append(val)
        x["runs"] |= g["runs"]
    out = []
    for (key, _), g in groups.items():
        ms_ = g["models"]
        text = key.replace("{}", ("{" + ",".join(ms_) + "}") if len(ms_) > 1 else (ms_[0] if ms_ else ""))
        if g["vals"]:
            text += "=" + ", ".join(f"{v:,}" for v in sorted(g["vals"]))
        n = min(g["runs"])
        out.append(f"`{text}`" + ("" if n == 1 else f" ({n} runs)"))
    return out


def sec_set(ctx):
    """Which set, which machine, when, under what noise."""
    names = resultsets.dir_machine_names(ctx.dir)
    ms_ = [ctx.machine(h) for h in names]
    m = ctx.machine("seed") or (ms_[0] if ms_ else {})
    dates = sorted(x.get("date", "") for x in ms_ if x.get("date"))
    commits = sorted({x.get("commit", "") for x in ms_ if x.get("commit")})
    modes = sorted({(x.get("mode") or x.get("workloads") or "?").split(" ")[0] for x in ms_})
    noisy = [h for h, x in zip(names, ms_) if x.get("noisy", "").startswith("yes")]
    unrecorded = [h for h, x in zip(names, ms_) if not x.get("noisy")]
    if unrecorded:
        loads = [f"{h} {ctx.machine(h)['load_avg']}" for h in names if ctx.machine(h).get("load_avg")]
        noise = ("Noise was not recorded for this set (it predates `scripts/noise.py`)" +
                 (f"; Google Benchmark's load averages (1, 5, 15 min) at the end of a run: "
                  f"{'; '.join(loads)}" if loads else "") +
                 ": it was not shown to be a quiet machine, and its next publication replaces it.")
    elif noisy:
        noise = f"Noisy runs: {', '.join(noisy)} (they should not be here: make publish refuses them)."
    else:
        steal = []
        for x in ms_:
            mt = re.search(r"steal ([0-9.]+)%", x.get("noise_during", ""))
            if mt:
                steal.append(float(mt.group(1)))
        noise = ("Every run started on a calm machine (`noisy: no` in each machine file, "
                 "scripts/noise.py)" + (f"; steal time during the runs at most {max(steal):.1f}%"
                                        if steal else "") + ".")
    cores = (m.get("cores", "?").split(" ") or ["?"])[0]
    parts = []
    for h in resultsets.dir_machine_names(ctx.dir):
        rows = [r for r in ctx.rows(h) if "warming" not in r["case"] and "published-" not in r["case"]]
        if rows and all(int(r["runs"]) < 3 for r in rows):
            parts.append(f"`{h}.csv` (every row)")
        elif rows:
            one = single_runs(rows)
            if one:
                parts.append(f"`{h}.csv`: " + "; ".join(one))
    single = ("A figure is the median over its runs (min-max in the tables, the number of runs "
              "in the CSV's `runs` column), both sides of a ratio from the same run, "
              + ("except these, which are single runs (no spread; a headline figure from them "
                 "says \"one run\"): " + "; ".join(parts) + "." if parts else
                 "every one of them over at least 3 runs."))
    return (f"Set **`{ctx.rel}/`** ({ctx.name}): {m.get('cpu', '?')}, {cores} CPUs, "
            f"{m.get('virtualization', '?')}, {m.get('memory', '?')}, {m.get('kernel', '?')}, "
            f"{m.get('libc', '?')}, {m.get('compiler', '?')}, `{m.get('flags', '?')}`. "
            f"Measured {dates[0] if dates else '?'} to {dates[-1] if dates else '?'} "
            f"({', '.join(modes)} runs), commits {', '.join(commits)}. {noise} "
            + single + "\n")


CLAIM_MODELS = ["baton", "baton/cpu=same", "sched_yield/cpu=same"]


def seed_pair(ctx, metric, model, impl_re=None, impl=None):
    return reproduce.sel(ctx.rows("seed"), model=model, metric=metric, impl=impl, impl_re=impl_re)


def sec_claims(ctx):
    """The post's claims with their three-state verdicts, each C thread model its column."""
    rows = ctx.rows("seed")
    if not rows:
        return missing("seed.csv") + "\n"
    models = reproduce.thread_models(rows)
    head = ["claim", "post (Ruby 3.4)", "Ruby here"] + [f"C vs `{m}` threads" for m in models] + \
        ["verdict in C"]
    out = []
    for spec in reproduce.CLAIMS:
        f = seed_pair(ctx, spec["metric"], "fiber")
        fmtv = (lambda v: rate(v) + "/s") if spec["higher"] else t_us
        line = [spec["text"], xr(spec["post"])]
        rr = reproduce.claim_ratios(ctx.dir, spec, ruby=True).get("Ruby threads")
        rb = reproduce.claim_bounds(ctx.dir, spec, ruby=True).get("Ruby threads")
        rt = seed_pair(ctx, spec["metric"], "ruby-thread", impl_re=r"^(?!published)")
        line.append("-" if rr is None else
                    f"{xr(rr)}" + (f" (bounds {xr(rb[0])}-{xr(rb[1])})" if rb else "") +
                    f": {reproduce.claim_state(rr, spec['claim'], rb)} ({rt['impl']})")
        ratios = reproduce.claim_ratios(ctx.dir, spec)
        bounds = reproduce.claim_bounds(ctx.dir, spec)
        for m in models:
            t = seed_pair(ctx, spec["metric"], "thread", impl=m)
            r, bd = ratios.get(m), bounds.get(m)
            st = "" if r is None else reproduce.claim_state(r, spec["claim"], bd)
            line.append("-" if r is None or not t or not f else
                        (f"**{xr(r)}**" if st != "inconclusive" else f"{xr(r)}")
                        + f" ({fmtv(t['median'])} vs {fmtv(f['median'])}"
                        + (f"; bounds {xr(bd[0])}-{xr(bd[1])}" if bd else "")
                        + (": inconclusive" if st == "inconclusive" else "")
                        + f"){runs_note(t, f)}")
        line.append(reproduce.verdict(ratios, spec["claim"], bounds))
        out.append(line)
    md = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in out)
    md += ("\nC fibers are the runtime's scheduler (`fiber_spawn`, `fiber_yield`, `fiber_run`). "
           "The C thread models: `baton` hands a GVL-like baton over at every yield, unpinned "
           "as Ruby's threads are (the C model of what the post measured); `baton/cpu=same` "
           "the same with every thread, the creating and joining one included, on one CPU; "
           "`sched_yield/cpu=same` has no baton (the cheapest C threads, all on one CPU). A "
           "claim holds against a model when its ratio of medians reaches the post's threshold "
           "and so does the lowest ratio the runs allow; the bounds beside each ratio are the "
           "lowest and highest the two sides' min-max allow (`seed.csv` has no per-run ratio "
           "rows), and a model whose bounds straddle the threshold is **inconclusive** (its "
           "ratio not bold), never \"holds\". The verdict names the models it holds against, "
           "so no single model decides it. "
           "Ruby here is the post's own protocol in Ruby on this machine (bench/ruby/seed.rb): "
           "the truest reproduction of the post.\n")
    return md


def sec_headline(ctx):
    """The headline bullets: like-for-like pairs first, each from a CSV row."""
    b = []
    # switch: fiber_yield against each thread hand-off on one core, same run.
    y = ctx.row("switch", reproduce.YIELD_WALL, "ns_per_switch")
    same = [(k, ctx.row("switch", f"switch/thread/{k}/cpu=same", "ns_per_switch"))
            for k in reproduce.SW_SAME]
    same = [(k, r) for k, r in same if r]
    cross = [ctx.row("switch", f"switch/thread/{k}/cpu=cross", "ns_per_switch")
             for k in ("futex", "sem", "pipe", "condvar")]
    cross = [r for r in cross if r]
    strict = ctx.row("switch", reproduce.STRICT, "ns_per_switch")
    boost = ctx.row("switch", "switch/boost/jump_fcontext", "ns_per_switch")
    if y and same:
        lo = min(same, key=lambda kr: float(kr[1]["median"]))
        hi = max(same, key=lambda kr: float(kr[1]["median"]))
        text = (f"- **One switch, scheduler against scheduler** (`switch.csv`): `fiber_yield` "
                f"between two fibers **{t_ns(y['median'])}** against a thread hand-off on one "
                f"core, **{t_ns(lo[1]['median'])}** (`{lo[0]}`) to **{t_ns(hi[1]['median'])}** "
                f"(`{hi[0]}`): **{xr(float(lo[1]['median']) / float(y['median']))}-"
                f"{xr(float(hi[1]['median']) / float(y['median']))}**; every hand-off: "
                + ", ".join(f"{k} {t_ns(r['median'])}" for k, r in same) + ".")
        if cross:
            text += (f" Across cores a hand-off costs {t_ns(min(float(r['median']) for r in cross))}"
                     f"-{t_ns(max(float(r['median']) for r in cross))} (the hypervisor's wake-up).")
        y2 = ctx.row("switch", "switch/fiber/yield/sites=2", "ns_per_switch")
        if y2:
            text += (f" The {t_ns(y['median'])} is one call site yielding back and forth; "
                     f"fibers yielding from two different call sites (`fiber/yield/sites=2`) "
                     f"take **{t_ns(y2['median'])}** ({t_ns(y2['min'])}-{t_ns(y2['max'])}): the "
                     "one-site loop is the flattering case.")
        y4 = ctx.row("switch", "switch/fiber/yield/fibers=4/cpu=same", "ns_per_switch")
        if y4:
            text += (f" Two fibers taking turns swap directly (`fiber_yield`'s fast path when "
                     f"exactly one other fiber is ready); four fibers round-robin on the same "
                     f"clock and core, every yield through the run queue "
                     f"(`fiber/yield/fibers=4/cpu=same`), take **{t_ns(y4['median'])}** "
                     f"({t_ns(y4['min'])}-{t_ns(y4['max'])}): against that, the thread "
                     f"hand-offs are {xr(float(lo[1]['median']) / float(y4['median']))}-"
                     f"{xr(float(hi[1]['median']) / float(y4['median']))}.")
        if strict:
            text += (f" Beside them, not the headline: the raw assembly switch under the "
                     f"scheduler, {t_ns(strict['median'])}"
                     + (f" (Boost.Context's `jump_fcontext` {t_ns(boost['median'])} in the same run)"
                        if boost else "") + ".")
        clock = ctx.machine("switch").get("clock")
        if clock:
            text += f" Clocks (`switch.machine.txt`): {clock}."
        b.append(text)
    # create: pinned against pinned; unpinned; cold against cold.
    ps = ctx.row("alloc", reproduce.POOLED_SAME, "ns_per_create")
    ts = ctx.row("alloc", reproduce.CJ_SAME, "ns_per_create")
    pa = ctx.row("alloc", reproduce.POOLED_ANY, "ns_per_create")
    ta = ctx.row("alloc", reproduce.CJ_ANY, "ns_per_create")
    fs = ctx.row("alloc", reproduce.FRESH_SAME, "ns_per_create")
    tfs = ctx.row("alloc", reproduce.CJF_SAME, "ns_per_create")
    fa = ctx.row("alloc", reproduce.FRESH_ANY, "ns_per_create")
    tfa = ctx.row("alloc", reproduce.CJF_ANY, "ns_per_create")

    def pair(f, t):
        """fiber against thread, the ratio of medians and, when the harness wrote it, the
        per-run ratio's range (the same run's thread over the same run's fiber)."""
        cpu = "same" if "cpu=same" in f["case"] else "any"
        kind = "fresh" if "fresh" in f["case"] else "pooled"
        q = ctx.row("alloc", f"alloc/ratio/thread-over-fiber-{kind}/cpu={cpu}", "ratio")
        rng = (f" (per-run ratios {xr(float(q['min']))}-{xr(float(q['max']))}, {q['runs']} runs; "
               f"the fiber {t_ns(f['min'])}-{t_ns(f['max'])})" if q and int(q["runs"]) > 1 else "")
        return (f"{t_ns(f['median'])} against {t_ns(t['median'])}: "
                f"**{xr(float(t['median']) / float(f['median']))}**{rng}{runs_note(f, t)}")
    if ps and ts:
        text = ("- **Creating a unit, pinned against pinned** (`alloc.csv`, create + run + join, "
                "the creating thread and every thread on one CPU): a fiber from the stack pool "
                f"against `pthread_create` + join, {pair(ps, ts)}.")
        if pa and ta:
            text += f" Unpinned (a thread's wake-up may cross cores): {pair(pa, ta)}."
    elif pa and ta:
        text = ("- **Creating a unit** (`alloc.csv`, create + run + join, unpinned: a thread's "
                "wake-up may cross cores; this set has no pinned pair): a fiber from the stack "
                f"pool against `pthread_create` + join, {pair(pa, ta)}.")
    else:
        text = "- " + missing("create pairs")
    if fs and tfs:
        text += (f" Cold, each on a freshly mapped, guarded 64 KiB stack, pinned: fiber against "
                 f"thread, {pair(fs, tfs)}.")
    elif fa and tfa:
        text += f" Cold, each on a freshly mapped, guarded 64 KiB stack: {pair(fa, tfa)}."
    elif fa:
        text += (f" A cold fiber on a freshly mapped, guarded stack: {t_ns(fa['median'])} "
                 "(this set has no cold thread to set beside it).")
    b.append(text)
    # memory
    fm = ctx.row("memory", "memory/fiber/stack=64K/n=10000", "bytes_per_unit")
    tm = ctx.row("memory", "memory/thread/stack=default/n=10000", "bytes_per_unit")
    if fm and tm:
        tu = ctx.row("memory", "memory/thread/stack=default/n=10000", "user_bytes_per_unit")
        tk = ctx.row("memory", "memory/thread/stack=default/n=10000", "kernel_bytes_per_unit")
        b.append(f"- **Memory per live unit at 10,000 live** (`memory.csv`): a parked fiber "
                 f"**{kib(fm['median'])}** against a blocked thread **{kib(tm['median'])}** "
                 f"({kib(tu['median'])} user + {kib(tk['median'])} kernel stack, slab and page "
                 f"tables that RSS does not show): **{xr(float(tm['median']) / float(fm['median']))}**"
                 f"{runs_note(fm, tm)}.")
    # scale
    live = reproduce.sel(ctx.rows("scale"), model=None, metric="live_units")
    lim = reproduce.sel(ctx.rows("scale"), metric="limit_units")
    if live or lim:
        text = "- **Scale** (`scale.csv`):"
        if live:
            grow = reproduce.sel(ctx.rows("scale"), case=[live["case"] + "/grow"], metric="seconds")
            text += (f" **{cnt(live['median'])} live fibers** (the harness's cap)"
                     + (f", grown in {float(grow['median']):.1f} s" if grow else "") + ";")
        if live:
            text = text.rstrip(";") + runs_note(live) + ";"
        if lim:
            cause = lim["case"].rsplit("limit=", 1)[-1]
            pid_max = (ctx.machine("scale").get("pid_max", "").split(" ") or ["?"])[0]
            text += (f" threads stop at **{cnt(lim['median'])}** ({cause}"
                     + (f": this machine's pid_max is {cnt(pid_max)}, so the limit is the "
                        "machine's configuration, not a cost of threads"
                        if "pid_max" in cause and pid_max.isdigit() else "") + ")"
                     + runs_note(lim) + ".")
        b.append(text)
    # LLM
    lf = "llm/fiber/gpt4o-5tps/n=10000"
    lt = "llm/thread/gpt4o-5tps/n=10000"
    hf, ht = ctx.row("llm", lf, "vm_hwm_bytes"), ctx.row("llm", lt, "vm_hwm_bytes")
    if hf and ht:
        cf, ct = ctx.row("llm", lf, "cpu_per_1k_tokens_ms"), ctx.row("llm", lt, "cpu_per_1k_tokens_ms")
        pf, pt = ctx.row("llm", lf, "ttft_p99_ms"), ctx.row("llm", lt, "ttft_p99_ms")
        ke = ctx.row("llm", lt, "kernel_est_bytes")
        text = (f"- **10,000 streaming LLM conversations** (`llm.csv`, gpt-4o first-token "
                f"timing, 5 tokens/s{no_stalls(ctx.machine('llm'))}): client peak RSS **{mib(hf['median'])} with fibers against "
                f"{mib(ht['median'])} with threads** ({xr(float(ht['median']) / float(hf['median']))})")
        if ke:
            text += (f"; the threads' kernel memory is *estimated* at {mib(ke['median'])} "
                     "(`kernel_est_bytes`: page tables plus 16 KiB of kernel stack per thread, "
                     "not measured)")
        if cf and ct:
            q = ctx.row("llm", "llm/ratio/thread-over-fiber/gpt4o-5tps/n=10000/cpu-per-token", "ratio")
            text += (f"; client CPU {float(cf['median']):.3g} against {float(ct['median']):.3g} ms "
                     f"per 1,000 tokens ("
                     + (f"{float(q['median']):.2f}x, per-run ratios {float(q['min']):.2f}-"
                        f"{float(q['max']):.2f}" if q else xr(float(ct['median']) / float(cf['median'])))
                     + ")")
        if pf and pt:
            text += f"; first-token p99 {ms(pf['median'])} against {ms(pt['median'])}"
        # the marginal CPU per token (setup excluded), at each N the set has it for
        mq = [(n, ctx.row("llm", f"llm/ratio/thread-over-fiber/gpt4o-5tps/n={n}/"
                                 "cpu-per-token-marginal", "ratio")) for n in (1000, 10000)]
        mq = [(n, q) for n, q in mq if q]
        if mq:
            def mcell(q):
                if int(q["runs"]) == 1:
                    return f"{float(q['median']):.2f}x (one run)"
                return (f"{float(q['median']):.2f}x ({float(q['min']):.2f}-{float(q['max']):.2f}"
                        + (f", {q['runs']} runs" if int(q["runs"]) < 3 else "") + ")")
            text += ("; per extra token, setup excluded (`cpu_per_1k_tokens_marginal_ms`), "
                     "threads use " + ", ".join(f"{mcell(q)} the CPU of fibers at {n:,} streams"
                                                for n, q in mq))
        b.append(text + runs_note(hf, ht, cf, ct, pf, pt) + ".")
    # slot starvation
    s_pool = ctx.row("llm", "starve/pool/fixed-x0.25/n=1000", "ttft_p99_ms")
    s_fib = ctx.row("llm", "starve/fiber/fixed-x0.25/n=1000", "ttft_p99_ms")
    s_thr = ctx.row("llm", "starve/thread/fixed-x0.25/n=1000", "ttft_p99_ms")
    u_pool = ctx.row("llm", "starve/pool/fixed-x0.25/n=26", "ttft_user26_ms")
    u_fib = ctx.row("llm", "starve/fiber/fixed-x0.25/n=26", "ttft_user26_ms")
    if s_pool and s_fib:
        text = (f"- **Slot starvation** (a pool of 25 workers, the post's 26th user): first-token "
                f"p99 for 1,000 users **{ms(s_pool['median'])} on the pool** against "
                f"**{ms(s_fib['median'])} on fibers**"
                + (f" ({ms(s_thr['median'])} on a thread each)" if s_thr else ""))
        if u_pool and u_fib:
            text += (f"; the 26th user alone waits {ms(u_pool['median'])} against "
                     f"{ms(u_fib['median'])}")
        b.append(text + runs_note(s_pool, s_fib) + ".")
    # HTTP
    rf = ctx.row("throughput", "http/fiber/hello/c=100", "req_per_s")
    rn = ctx.row("throughput", "http/nginx-1worker/hello/c=100", "req_per_s")
    rt = ctx.row("throughput", "http/thread/hello/c=100", "req_per_s")
    if rf and rn:
        pin = ctx.machine("throughput").get("pinning", "")

        def rng(r, f):
            return f"{f(r['median'])} ({f(r['min'])}-{f(r['max'])})"

        def x2(v):
            return f"{float(v):.2f}x"

        def us3(v):
            return f"{float(v):.3g} µs"

        # The harness's own ratio rows are per-run ratios (the same run's nginx): prefer them.
        def over_nginx(model, r):
            q = ctx.row("throughput", f"http/ratio/{model}-over-nginx/c=100", "ratio")
            if not q:
                return f"{float(r['median']) / float(rn['median']):.2f}x (ratio of medians)"
            lo, hi = float(q["min"]), float(q["max"])
            return rng(q, x2) + (", inconclusive: the runs fall on both sides of 1.0"
                                 if lo < 1.0 < hi else "")

        def gen_bound(model):
            """'every', 'some' or '' (no row, or never): runs where wrk was the ceiling."""
            g = ctx.row("throughput", f"http/{model}/hello/c=100", "generator_bound_count")
            if not g or float(g["max"]) <= 0:
                return ""
            return "every" if float(g["min"]) > 0 else "some"
        cf = ctx.row("throughput", "http/fiber/hello/c=100", "cpu_per_req_us")
        cn = ctx.row("throughput", "http/nginx-1worker/hello/c=100", "cpu_per_req_us")
        ct = ctx.row("throughput", "http/thread/hello/c=100", "cpu_per_req_us")
        bf, bn = gen_bound("fiber"), gen_bound("nginx-1worker")
        text = (f"- **HTTP keep-alive, 100 connections** (`throughput.csv`, wrk with one thread, "
                f"{rf['runs']} runs of about 1 s each, workloads/bench/run.py): ")
        if bf == "every" and bn == "every":
            text += ("**wrk was the ceiling in every run of both fibers and nginx** (its one "
                     "thread at >= 90% of its CPU, `generator_bound_count`), so their req/s "
                     f"measure wrk, not the servers: fibers {rate(rf['median'])}, nginx (one "
                     f"worker) {rate(rn['median'])}, fibers over nginx {over_nginx('fiber', rf)}.")
            if cf and cn:
                lo_f, hi_f, lo_n, hi_n = (float(cf["min"]), float(cf["max"]),
                                          float(cn["min"]), float(cn["max"]))
                text += (" The like-for-like figure is the server's CPU per request: **fibers "
                         f"{rng(cf, us3)} against nginx {rng(cn, us3)}**"
                         + (" (the per-run ranges overlap: fibers are not shown cheaper or "
                            "dearer than nginx)" if lo_f <= hi_n and lo_n <= hi_f else
                            " (fibers cheaper in every run)" if hi_f < lo_n else
                            " (nginx cheaper in every run)") + runs_note(cf, cn) + ".")
        else:
            text += (f"fibers {rate(rf['median'])} req/s, nginx (one worker) "
                     f"{rate(rn['median'])}: fibers **{over_nginx('fiber', rf)} nginx**"
                     + runs_note(rf, rn) + ".")
            bound = [n for n, g in (("fiber", bf), ("nginx-1worker", bn)) if g]
            if bound:
                text += (f" **wrk was the ceiling** in runs of {' and '.join(bound)} (one wrk "
                         "thread at >= 90% of its CPU, `generator_bound_count`): there req/s "
                         "is wrk's ceiling, not the server's.")
            if cf and cn:
                text += (f" Server CPU per request: fibers {rng(cf, us3)}, nginx {rng(cn, us3)}"
                         + runs_note(cf, cn) + ".")
        if rt:
            bt = gen_bound("thread")
            text += (f" A thread per connection: {rate(rt['median'])} req/s, "
                     f"{over_nginx('thread', rt)} nginx's"
                     + (f" (wrk the ceiling in {bt} of its runs)" if bt else "")
                     + (f", {rng(ct, us3)} of server CPU per request" if ct else "") + ".")
        if pin:
            text += f" Placement (`throughput.machine.txt`): {pin}."
        b.append(text)
    # mock-llm
    conc = sorted({int(float(r["value"])) for r in ctx.rows("mockllm")
                   if r["case"].startswith("concurrency/") and r["metric"] == "open_streams"})
    if conc:
        parts = []
        for n in conc:
            c = [r["case"] for r in ctx.rows("mockllm") if r["case"].startswith(f"concurrency/fiber/n={n}/")
                 and r["metric"] == "open_streams"][0]
            o = ctx.row("mockllm", c, "open_streams")
            lp = ctx.row("mockllm", c, "lateness_p99")
            rs = ctx.row("mockllm", c, "rss_per_stream")
            fl = ctx.row("mockllm", conc_floor(c), "lateness_p99") if conc_floor(c) else None
            parts.append(f"{cnt(o['median'])} streams open of {cnt(n)} with emission lateness "
                         f"p99 {t_us(lp['median'])} ({t_us(lp['min'])}-{t_us(lp['max'])}"
                         + (", not <= 1 ms" if float(lp["median"]) > 1000 else "") + ")"
                         + (f" at {kib(rs['median'])} each" if rs else "")
                         + runs_note(o, lp)
                         + (f" (mllm-floor paced to the same rate, same run: p99 "
                            f"{t_us(fl['median'])} ({t_us(fl['min'])}-{t_us(fl['max'])}))"
                            if fl else ""))
        text = "- **mock-llm** (`mockllm.csv`): " + "; ".join(parts) + "."
        mc = ctx.machine("mockllm") or {}
        if any(ctx.row("mockllm", conc_floor(f"concurrency/fiber/n={n}/tps=5") or "",
                       "lateness_p99") for n in conc):
            text += f" On {cpu_named(mc)}."
        kh = ctx.row("mockllm", "keepalive/fiber/health/c=32", "requests_per_s")
        kn = ctx.row("mockllm", "keepalive/nginx/return200/c=32", "requests_per_s")
        if kh and kn:
            overlap = float(kh["min"]) <= float(kn["max"]) and float(kn["min"]) <= float(kh["max"])
            text += (f" Keep-alive `/health`, wrk -c32: mock-llm {rate(kh['median'])} req/s "
                     f"({rate(kh['min'])}-{rate(kh['max'])}), nginx `return 200` on the same core "
                     f"{rate(kn['median'])} ({rate(kn['min'])}-{rate(kn['max'])})"
                     + (": the ranges overlap, neither is shown faster" if overlap else "")
                     + "; `mockllm.csv` records no CPU for wrk here, so whether wrk was the "
                     "ceiling is not known" + runs_note(kh, kn) + ".")
        b.append(text)
    return "\n".join(b) + "\n"


def sec_figures(ctx):
    names = ["seed", "switch", "alloc", "memory", "scale", "throughput", "llm", "mockllm", "curl"]
    titles = {"seed": "The post's protocol side by side", "switch": "One context switch",
              "alloc": "Creating one unit", "memory": "Memory per live unit",
              "scale": "Memory against live units, the thread cliff",
              "throughput": "HTTP throughput and p99", "llm": "Streaming LLM conversations",
              "mockllm": "mock-llm capacity",
              "curl": "libcurl on threads, fibers with hooks and curl_multi"}
    out = [f"![{titles[n]}]({ctx.plots}/{n}.png)" for n in names
           if os.path.isfile(os.path.join(TOP, ctx.plots, n + ".png"))]
    return "\n".join(out) + f"\n\n(SVG versions beside each PNG in `{ctx.plots}/`.)\n"


def capture(fn, *a):
    buf = io.StringIO()
    with redirect_stdout(buf):
        fn(*a)
    return buf.getvalue()


def sec_tables(ctx):
    out = ""
    for h, f in (("seed", tables.seed), ("switch", tables.switch), ("alloc", tables.alloc),
                 ("memory", tables.memory), ("scale", tables.scale)):
        text = capture(f, ctx.dir)
        rows = ctx.rows(h)
        if text.strip() and rows and all(int(r["runs"]) < 3 for r in rows):
            n = max(int(r["runs"]) for r in rows)
            text = text.rstrip("\n") + ("\n\n" + ("One run" if n == 1 else f"{n} runs at most")
                                         + f": every row of `{h}.csv` has `runs` {n} (no spread).\n\n")
        out += text
    return out.rstrip("\n") + "\n"


def sec_million(ctx):
    """fiber-million's growth as scale.csv measured it."""
    live = reproduce.sel(ctx.rows("scale"), metric="live_units")
    if not live:
        return missing("scale.csv live_units") + "\n"
    n = int(float(live["median"]))
    base = live["case"].rsplit("/cap=", 1)[0]
    u = ctx.row("scale", f"{base}/n={n}", "user_bytes_per_unit")
    k = ctx.row("scale", f"{base}/n={n}", "kernel_bytes_per_unit")
    grow = reproduce.sel(ctx.rows("scale"), case=[live["case"] + "/grow"], metric="seconds")
    m = ctx.machine("scale")
    text = (f"{cnt(n)} live fibers on {m.get('cpu', '?')} ({ctx.name})"
            + (f", {float(u['median']):,.0f} bytes of RSS each" if u else "")
            + (f" and {float(k['median']):,.0f} bytes of kernel memory (page tables, slab)" if k else "")
            + (f", grown in {float(grow['median']):.1f} s" if grow else "") + runs_note(live) + ".")
    return text + "\n"


def mtable(head, rows):
    return ("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" +
            "".join("| " + " | ".join(r) + " |\n" for r in rows) + "\n")


def sec_mockllm_results(ctx):
    rows = ctx.rows("mockllm")
    if not rows:
        return missing("mockllm.csv") + "\n"
    m = ctx.machine("mockllm")
    out = (f"From the published set `{ctx.rel}/mockllm.csv` ({m.get('cpu', '?')}, "
           f"{m.get('date', '?')}, commit {m.get('commit', '?')}; {m.get('pinning', 'placement not recorded')}"
           f"). Median (min-max) over the runs; lateness is the upper bound of its histogram "
           f"bucket; run-queue wait is the share of the window the server waited for its CPU.\n\n")

    def c(case, metric, f=tables.num):
        r = ctx.row("mockllm", case, metric)
        return tables.cell(r, f) if r else "-"
    def g(case, metric):
        return ctx.row("mockllm", case, metric)

    def runs(*cases_metrics):
        rs = [g(c_, m_) for c_, m_ in cases_metrics]
        rs = [r for r in rs if r]
        return ", ".join(sorted({r["runs"] for r in rs}, key=int)) if rs else "-"
    knees = [r for r in rows if r["metric"] == "max_events_per_s"]
    if knees:
        out += ("Capacity: the highest offered rate with emission lateness p99 <= 1 ms (one token "
                "per event), the first rate that failed it, and at the knee the server's lateness, "
                "CPU per event, kernel share and run-queue wait and the load client's busy share "
                "(a knee whose client was saturated measures the client; those runs are "
                "counted):\n\n")
        body = []
        for r in knees:
            cs = r["case"]
            k = cs + "/at-knee"
            sat = g(cs + "/client-saturated", "runs_count")
            body.append([f"`{short(cs)}`", cnt(r["value"]), tables.cell(r),
                         c(cs + "/first-failing", "events_per_s"), c(k, "lateness_p50"),
                         c(k, "lateness_p99"), c(k, "cpu_per_event_us"),
                         c(k, "kernel_share_percent"), c(k, "runq_wait_percent"),
                         c(k, "client_busy_percent"),
                         cnt(sat["median"]) if sat else "-",
                         runs((cs, "max_events_per_s"), (k, "lateness_p99"))])
        out += mtable(["case", "streams", "events/s at p99 <= 1 ms", "first failing events/s",
                       "at knee: lateness p50 µs", "lateness p99 µs", "CPU per event µs",
                       "kernel share %", "run-queue wait %", "load client busy %",
                       "runs with the client saturated", "runs (knee rows)"], body)
    flat = sorted({r["case"] for r in rows if r["case"].startswith("capacity/")
                   and "/max-rate" in r["case"] and not r["case"].endswith("/client")
                   and "/ratio/" not in r["case"] and r["metric"] == "events_per_s"},
                  key=lambda x: [r["case"] for r in rows].index(x))
    if flat:
        out += ("Flat out (every event its own write, no pacing): events/s and the server's CPU "
                "per event:\n\n")
        out += mtable(["case", "streams", "events/s", "CPU per event µs", "kernel share %",
                       "load client busy %", "runs"],
                      [[f"`{short(cs)}`", cnt(g(cs, "events_per_s")["value"]),
                        c(cs, "events_per_s"), c(cs, "cpu_per_event_us"),
                        c(cs, "kernel_share_percent"),
                        c(cs + "/client", "client_busy_percent") if g(cs + "/client", "client_busy_percent")
                        else c(cs, "client_busy_percent"), g(cs, "events_per_s")["runs"]]
                       for cs in flat])
    ratios = [r for r in rows if r["case"].startswith("capacity/ratio/")]
    if ratios:
        out += "Ratios, run by run (each run's two servers):\n\n"
        out += mtable(["case", "ratio", "runs"],
                      [[f"`{short(r['case'])}`", tables.cell(r, lambda v: f"{float(v):.3g}x"),
                        r["runs"]] for r in ratios])
    # the target: capacity at p99 <= 1 ms >= 0.8x the floor's, at each N measured
    said = []
    for r in ratios:
        m_ = re.match(r"capacity/ratio/mock-llm-over-floor/streams=(\d+)/p99<=1ms$", r["case"])
        if not m_:
            continue
        n = m_.group(1)
        med, lo, hi = float(r["median"]), float(r["min"]), float(r["max"])
        # every run on one side of 0.8x, either way: the A/A test put a median of 3 runs
        # of two equal servers at 0.77x-1.14x in 8 of 10 cases (mock-llm README "The
        # method's own noise"), so a median just below 0.8x with a run above it is no miss
        state = ("met" if lo >= 0.8 else "**not met**" if hi < 0.8 else
                 "**inconclusive** (the runs fall on both sides of 0.8x)")
        text = (f"at {cnt(n)} streams mock-llm reaches {med:.3g}x the floor ({lo:.3g}x-{hi:.3g}x, "
                f"{r['runs']} run{'s' if r['runs'] != '1' else ''} with both knees): {state}")
        sat = g(f"capacity/floor/streams={n}/p99<=1ms/client-saturated", "runs_count")
        if sat and float(sat["median"]) > 0:
            text += (f"; the floor's load client was saturated in {cnt(sat['median'])} run"
                     f"{'s' if float(sat['median']) != 1 else ''} (there it measures the client)")
        fl = g(f"capacity/ratio/mock-llm-over-floor/streams={n}/max-rate-one-write-per-event", "ratio")
        if fl and float(fl["median"]) > 1:
            text += (f"; flat out the floor is *slower* than mock-llm here ({float(fl['median']):.3g}x "
                     f"({float(fl['min']):.3g}x-{float(fl['max']):.3g}x) mock-llm over floor), so at "
                     f"{cnt(n)} streams it is not a floor")
        said.append(text)
    if said:
        out += ("**The target** (capacity at p99 <= 1 ms >= 0.8x the floor's): " + "; ".join(said)
                + ".\n\n")
    conc = [r["case"] for r in rows if r["case"].startswith("concurrency/") and r["metric"] == "open_streams"]
    if conc:
        out += "Open streams (N streams, each at the tokens/s its case names):\n\n"
        out += mtable(["case", "open", "failed", "offered events/s", "events/s", "lateness p99 µs",
                       "RSS per stream", "time to open all s", "server CPU %", "run-queue wait %",
                       "runs"],
                      [[f"`{short(cs)}`", c(cs, "open_streams"), c(cs, "failed_streams"),
                        offered(cs), c(cs, "events_per_s"), c(cs, "lateness_p99"),
                        c(cs, "rss_per_stream", tables.kib), c(cs, "open_time"),
                        c(cs, "cpu_percent"), c(cs + "/runq_wait", "cpu_percent"),
                        g(cs, "open_streams")["runs"]] for cs in conc])
        floors = {}
        for r in knees:
            fm = re.match(r"capacity/floor/streams=(\d+)/", r["case"])
            if fm:
                floors[int(fm.group(1))] = r
        late = []
        for cs in conc:
            lp = g(cs, "lateness_p99")
            if cs.startswith("concurrency/floor") or not lp or float(lp["median"]) <= 1000:
                continue
            text = (f"`{short(cs)}` has lateness p99 {t_us(lp['median'])} "
                    f"({t_us(lp['min'])}-{t_us(lp['max'])}), not <= 1 ms")
            # the floor paced to the same N x tps in the same run and mode (since 3
            # December evening): whether the miss is mock-llm's or the machine's
            fl = g(conc_floor(cs), "lateness_p99") if conc_floor(cs) else None
            if fl:
                fe = g(conc_floor(cs), "events_per_s")
                fo = g(conc_floor(cs), "open_streams")
                text += ("; " + floor_verdict(fl, m, offered(cs), lp, fe, fo) + " (`"
                         + short(conc_floor(cs)) + "`)")
                late.append(text)
                continue
            nm = re.search(r"/n=(\d+)/", cs)
            below = [k for k in floors if nm and k <= int(nm.group(1))]
            if below and offered(cs) != "-":
                fr = floors[max(below)]
                off = float(offered(cs).replace(",", ""))
                if off > float(fr["median"]):
                    text += (f": it offers {offered(cs)} events/s, above what even the floor "
                             f"holds at p99 <= 1 ms with {cnt(max(below))} streams on this "
                             f"machine ({rate(fr['median'])} ({rate(fr['min'])}-"
                             f"{rate(fr['max'])}))")
            late.append(text)
        if late:
            out += "; ".join(late) + ".\n\n"
    ka = [r for r in rows if r["case"].startswith("keepalive/") and r["metric"] == "requests_per_s"]
    if ka:
        out += "Keep-alive requests per second:\n\n"
        out += mtable(["case", "requests/s", "runs"],
                      [[f"`{short(r['case'])}`", tables.cell(r), r["runs"]] for r in ka])
    return out.rstrip("\n") + "\n"


def short(case):
    return case.split("/", 1)[1] if "/" in case else case


def conc_floor(case):
    """The floor's concurrency case beside a mock-llm one (same N, tokens/s and mode):
    concurrency/fiber[-busy-poll]/n=N/tps=T -> concurrency/floor[-busy-poll]/n=N/tps=T."""
    m = re.match(r"concurrency/fiber(-busy-poll)?/(n=\d+/tps=[\d.]+)$", case)
    return f"concurrency/floor{m.group(1) or ''}/{m.group(2)}" if m else None


def cpu_named(m):
    """The CPU a set was measured on, as its machine file names it (cpu_id since
    3 December: the model name alone, "AMD EPYC" under KVM, named two CPUs)."""
    cpu = m.get("cpu", "?")
    return f"{cpu} ({m['cpu_id']})" if m.get("cpu_id") else cpu


def floor_verdict(fl, m, offered_rate, lp=None, fe=None, fo=None):
    """What the floor's row beside a missed concurrency target says, on the set's CPU:
    fl its lateness_p99 row, lp mock-llm's, fe the floor's events_per_s row, fo its
    open_streams row. A verdict only from a floor that carried the same load: every
    stream open in every run (fewer streams are a lighter load: holding 1 ms there says
    nothing of N) and a lateness figure (nan compares false both ways)."""
    n = re.search(r"/n=(\d+)/", fl["case"])
    if fo and n and float(fo["min"]) < int(n.group(1)):
        return (f"the floor beside it opened {cnt(fo['min'])} of {cnt(n.group(1))} streams "
                f"in a run, a lighter load: no verdict from it")
    if not math.isfinite(float(fl["median"])) or (lp and not math.isfinite(float(lp["median"]))):
        return "the floor's row beside it has no lateness figure: no verdict from it"
    held = float(fl["median"]) <= 1000
    fig = (f"{t_us(fl['median'])} ({t_us(fl['min'])}-{t_us(fl['max'])}, {fl['runs']} "
           f"run{'s' if fl['runs'] != '1' else ''})")
    off = float(offered_rate.replace(",", "")) if offered_rate != "-" else 0
    # a paced floor that fell behind the rate (it wrote less than 97% of it, the
    # capacity probes' criterion) did not hold it, whatever its lateness says
    if held and fe and off and float(fe["median"]) < 0.97 * off:
        held = False
    if held:
        return (f"mllm-floor paced to the same {offered_rate} events/s in the same run held "
                f"p99 {fig} on this CPU, {cpu_named(m)}: **the miss is mock-llm's**")
    text = (f"mllm-floor paced to the same {offered_rate} events/s in the same run did not "
            f"hold it either (p99 {fig}")
    if fe and off and float(fe["median"]) < 0.97 * off:
        text += f"; it wrote {rate(fe['median'])} ({rate(fe['min'])}-{rate(fe['max'])}) events/s"
    text += (f"): on this CPU, {cpu_named(m)}, the kernel's own work at that rate misses "
             f"1 ms, **so the miss is the machine's**, not mock-llm's alone")
    if lp and float(lp["min"]) > float(fl["max"]):
        text += " (mock-llm's p99 is above the floor's in every run)"
    return text


def offered(case):
    """N x tokens/s from a concurrency case name (.../n=N/tps=T), or '-'."""
    m = re.search(r"/n=(\d+)/tps=(\d+(?:\.\d+)?)", case)
    return f"{int(m.group(1)) * float(m.group(2)):,.0f}" if m else "-"


def sec_workloads_results(ctx):
    if not ctx.rows("throughput") and not ctx.rows("llm"):
        return missing("throughput.csv and llm.csv") + "\n"
    out = ""
    for h in ("throughput", "llm"):
        m = ctx.machine(h)
        if m:
            out += (f"`{h}.csv` of the published set `{ctx.rel}/`: {m.get('cpu', '?')}, "
                    f"{m.get('date', '?')}, commit {m.get('commit', '?')}; placement: "
                    f"{m.get('pinning', 'not recorded')}.\n\n")
    un = [r for r in ctx.rows("throughput") if r["metric"] == "unserved_conns_count"
          and float(r["median"]) > 0]
    if un:
        out += ("Connections a server never answered during a run (`unserved_conns_count`; a "
                "low p99 counts only the connections served): " +
                ", ".join(f"`{short(r['case'])}` {cnt(r['median'])}" for r in un) + ".\n\n")
    out += capture(tables.throughput, ctx.dir)
    one = single_runs(ctx.rows("throughput"))
    if one:
        out += ("Single runs in the tables above (no spread; runs 1 in `throughput.csv`): "
                + "; ".join(one) + ".\n\n")
    out += capture(tables.llm, ctx.dir)
    one = single_runs([r for r in ctx.rows("llm") if not r["case"].startswith("llm-tls/")])
    if one:
        out += ("Single runs among the `llm.csv` rows (no spread; the TLS rows are in their own "
                "section below): " + "; ".join(one) + ".\n\n")
    big = sorted({r["case"] for r in ctx.rows("llm") if r["case"].endswith("/n=20000")
                  and r["metric"] == "vm_hwm_bytes"})
    for cs in big:
        live = ctx.row("llm", cs, "live_units")
        err = ctx.row("llm", cs, "errors")
        p50 = ctx.row("llm", cs, "ttft_p50_ms")
        hw = ctx.row("llm", cs, "vm_hwm_bytes")
        fails = [r for r in ctx.rows("llm") if r["case"].startswith(cs + "/fail=")]
        out += (f"`{short(cs)}`{runs_note(hw)}: {cnt(live['median']) if live else '?'} conversations "
                f"alive at once at most, peak RSS {mib(hw['median'])}, first-token p50 "
                f"{ms(p50['median']) if p50 else '?'}, {cnt(err['median']) if err else '?'} errors"
                + (" (" + ", ".join(f"{r['case'].rsplit('fail=', 1)[1]}: {cnt(r['median'])}"
                                    for r in fails) + ")" if fails else "") + ".\n\n")
    return out.rstrip("\n") + "\n"


# ---- Python, Go and Node beside Ruby and C (peers.csv; ruby.csv when present) ----

# the LLM client models in the order a reader meets them: each runtime's thread model,
# then its asynchronous ones; C last as floor and ceiling
PEER_IMPLS = [("py-thread", "Python, a thread each (http.client)"),
              ("py-asyncio", "Python, asyncio tasks (stdlib streams)"),
              ("py-httpx", "Python, asyncio on httpx (as the openai SDK sets it up)"),
              ("py-aiohttp", "Python, asyncio on aiohttp"),
              ("go-goroutine", "Go, a goroutine each (net/http)"),
              ("node-openai", "Node, the openai@4 npm SDK (event loop)"),
              ("ruby-thread", "Ruby, a thread each (Net::HTTP)"),
              ("ruby-async", "Ruby, Async fibers (Net::HTTP)"),
              ("ruby-async-http", "Ruby, Async::HTTP"),
              ("c-thread", "C threads (wl-llm)"),
              ("c-fiber", "C fibers (wl-llm)")]
# the micro protocol's pairs: (runtime, harness, thread model, impl regex, cheap model,
# impl regex)
PEER_SEED_PAIRS = [("C (baton threads vs fibers)", "seed", "thread", r"^baton$", "fiber", r"^scheduler$"),
                   ("C (baton threads on one CPU vs fibers)", "seed", "thread", r"^baton/cpu=same$",
                    "fiber", r"^scheduler$"),
                   ("Ruby here (threads vs fibers)", "seed", "ruby-thread", r"^ruby-", "ruby-fiber", r"^ruby-"),
                   ("Python (threads vs asyncio tasks; a thread's switch is one "
                    "`time.sleep(0)`, which hands the GIL over ~0.59 times per call: per "
                    "switch ~1.7x the figure)", "peers", "python-thread", r"^python-",
                    "python-asyncio", r"^python-"),
                   ("Go (goroutines locked to threads vs goroutines)", "peers", "go-locked-thread",
                    r"^go-", "go-goroutine", r"^go-")]


# Bounded runs kept in the tree (the peers' own result directories), shown while the
# published set has no peers.csv / ruby.csv: labelled as such, with their machine's load.
PEERS_BOUNDED = os.path.join(TOP, "peers", "results")
RUBY_BOUNDED = os.path.join(TOP, "peers", "ruby", "results")
# The marginal CPU per token, paced (tokens one per event: peers/peerlib.py MARGINAL),
# from a set's own rows, else from the bounded marginal-only runs kept beside the
# bounded sets (peers/bench.py --only marginal, peers/ruby/bench.py --only marginal).
MARGINAL_CASE = "llm/{impl}/fixed-50tps/n=100/marginal-16-64-tokens"
# mock-llm's CPU share of one core (mock_cpu_percent) from which a first-token figure is
# the mock's floor rather than the client's: one core is all its event loop has
MOCK_FLOOR_PERCENT = 80
PEERS_MARGINAL = os.path.join(PEERS_BOUNDED, "marginal")
# httpx at 10,000 (one round in the harness's tail): a bounded run of it alone, read where
# the set predates that step
PEERS_HTTPX10K = os.path.join(PEERS_BOUNDED, "httpx10k")
RUBY_MARGINAL = os.path.join(RUBY_BOUNDED, "marginal")


def tls_note(ctx):
    """The C client over HTTPS beside HTTP, from the set's llm.csv llm-tls/ rows (the
    workloads harness's TLS stage), with their run count and alive-at-once counts."""
    T = "llm-tls/{}/{}/gpt4o-5tps-60tok/n=10000"
    got = {}
    for m_ in ("fiber", "thread"):
        for pr in ("http", "https"):
            got[m_, pr] = (ctx.row("llm", T.format(m_, pr), "client_rss_per_open_conv_bytes"),
                           ctx.row("llm", T.format(m_, pr), "live_units"))
    if not all(v[0] for v in got.values()):
        return ("the C client over TLS is measured by the workloads harness's TLS stage "
                "(`python3 workloads/bench/run.py --only tls`, `llm.csv` cases `llm-tls/`; "
                "not in this set)")
    parts = []
    for m_, what in (("fiber", "C fibers"), ("thread", "C threads")):
        (h, _), (t, tl) = got[m_, "http"], got[m_, "https"]
        alive = (f" ({cnt(tl['median'])} alive at once)" if tl and float(tl["median"]) < 10000
                 else "")
        parts.append(f"{what} {tables.kib(h['median'])} -> {tables.kib(t['median'])}{alive}")
    rows_ = [v[0] for v in got.values()]
    return ("the C client's RSS per open conversation, HTTP -> HTTPS, at 10,000 conversations: "
            + ", ".join(parts) + runs_note(*rows_) +
            f" (`{ctx.rel}/llm.csv`, cases `llm-tls/`, the workloads harness's TLS stage; "
            "its table: `workloads/README.md`, HTTPS against plain HTTP)")


def sec_peers(ctx):
    rows, mach, where, plots = ctx.rows("peers"), ctx.machine("peers"), ctx.rel, ctx.plots
    ruby, ruby_where = ctx.rows("ruby"), ctx.rel
    bounded = ""
    if not rows:
        rows = resultsets.load_rows(PEERS_BOUNDED, "peers")
        if not rows:
            return (missing("peers.csv") + ": `make bench-peers` measures it; `make publish` "
                    "takes it into the published set with the rest of a full `make bench`.\n")
        mach = resultsets.read_machine(os.path.join(PEERS_BOUNDED, "peers.machine.txt"))
        where = plots = os.path.relpath(PEERS_BOUNDED, TOP)
        bounded = ("**A bounded run, not the publication run** (the published set has no "
                   "`peers.csv`): " + "; ".join(f"{k} {mach[k]}" for k in (
                       "noise_before", "noise_during", "noisy") if mach.get(k)) + ". Trust the "
                   "same-run ratios more than the absolute times.\n\n")
    if not ruby:
        ruby = resultsets.load_rows(RUBY_BOUNDED, "ruby") or []
        ruby_where = os.path.relpath(RUBY_BOUNDED, TOP)
    m = mach
    src = {"peers": rows, "ruby": ruby}
    c_index = "wl-llm (C) sends it too" in m.get("mock-llm", "")
    out = bounded + (
        f"From `{where}/peers.csv`" + (f" and `{ruby_where}/ruby.csv` (Ruby's rows, its own run)"
                                       if ruby else "") +
        f" ({m.get('cpu', '?')}, {m.get('date', '?')}, commit {m.get('commit', '?')}, "
        f"{m.get('mode', '?')} run): " + "; ".join(m[k] for k in ("python", "go", "node") if m.get(k)) +
        ". Each model is one client process against a fresh mock-llm, models interleaved run by "
        "run, median (min-max) over the runs (the `runs` column: a row of one run is that "
        "run's figure, not a median); " +
        ("every client sends `x-mock-request-index: i`, so every model meets the same first-token "
         "times and speeds. " if c_index else
         "the Python, Go, Node and Ruby clients send `x-mock-request-index: i` (the same "
         "first-token times and speeds for each); the C client of that commit does not, and "
         "draws in arrival order from its fresh mock-llm. ") +
        "Memory per conversation is the client's RSS growth over its baseline (interpreter and "
        "libraries loaded) plus the kernel's share (page tables and 16 KiB of kernel stack per "
        "thread, estimated), per conversation alive at the peak.\n\n")

    def r(h, case, metric):
        return reproduce.sel(src[h], case=[case], metric=metric)

    # the paced marginal: the set's own rows, else the bounded marginal-only runs
    marg_src, marg_note = {}, []
    for h, d in (("peers", PEERS_MARGINAL), ("ruby", RUBY_MARGINAL)):
        if any(x["case"].endswith("/marginal-16-64-tokens") for x in src[h]):
            marg_src[h] = src[h]
            continue
        mrows = resultsets.load_rows(d, h) or []
        if mrows:
            marg_src[h] = mrows
            mm_ = resultsets.read_machine(os.path.join(d, f"{h}.machine.txt"))
            marg_note.append(f"`{os.path.relpath(d, TOP)}/{h}.csv` ({mm_.get('date', '?')}, "
                             f"commit {mm_.get('commit', '?')}, load average at start "
                             f"{mm_.get('load average at start', '?')})")
        else:
            marg_src[h] = []

    def marg_of(h, impl):
        return reproduce.sel(marg_src[h], case=[MARGINAL_CASE.format(impl=impl)],
                             metric="cpu_per_1k_tokens_marginal_ms")

    def mock_floor(h, case):
        """A mark on a first-token figure where mock-llm, not the client, was the floor:
        the mock's CPU over the client's wall at or above MOCK_FLOOR_PERCENT of a core
        (finding 5 of peers/review/FINDINGS.md); the share in any case, when recorded."""
        mk = r(h, case, "mock_cpu_percent")
        if not mk:
            return ""
        v = float(mk["median"])
        return (f" (**mock-llm at {v:.0f}% of a core: its floor, not the client's**)"
                if v >= MOCK_FLOOR_PERCENT else f" (mock-llm {v:.0f}% of a core)")

    n = 10000
    lines = []
    seen = []
    for impl, what in PEER_IMPLS:
        # C rows from peers.csv's own run; Ruby's from ruby.csv
        h = "ruby" if impl.startswith("ruby") else "peers"
        case = f"llm/{impl}/gpt4o-5tps/n={n}"
        done = r(h, case, "completed_count")
        if not done:
            continue
        seen.append(impl)
        marg = marg_of(h, impl)
        fails = [x for x in src[h] if x["case"].startswith(case + "/fail=") and x["metric"] == "errors"]
        lims = [x for x in src[h] if x["case"].startswith(case + "/limit=")]
        note = ", ".join([f"{x['case'].rsplit('fail=', 1)[1]}: {cnt(x['median'])}" for x in fails] +
                         [f"stopped at {cnt(x['median'])} ({x['case'].rsplit('limit=', 1)[1]})"
                          for x in lims])
        lines.append([what, f"`{done['impl']}`", tables.cell(done, cnt) + (f" ({note})" if note else ""),
                      tables.cell(r(h, case, "live_units"), cnt),
                      tables.cell(r(h, case, "bytes_per_unit"), tables.kib),
                      tables.cell(r(h, case, "cpu_per_1k_tokens_ms")),
                      tables.cell(marg) if marg else "-",
                      tables.cell(r(h, case, "ttft_p50_ms"), ms) + mock_floor(h, case),
                      tables.cell(r(h, case, "ttft_p99_ms"), ms), done["runs"]])
    if not lines:
        out += f"(no run at {cnt(n)} conversations in this set)\n\n"
    else:
        out += (f"**{cnt(n)} streaming conversations** from one client (gpt-4o first-token times, "
                f"5 tokens/s{no_stalls(ctx.machine('peers'), ctx.machine('ruby'))}, 8 tokens "
                "each; a conversation gives up after 60 s). CPU per 1,000 "
                "tokens counts connection setup; the marginal column leaves it out: 100 streams "
                "with tokens paced one per event (50 tokens/s, as a real stream delivers them: "
                "a wake-up each), 16 and 64 tokens each, the CPU of the 48 extra tokens"
                + (" (from the bounded marginal-only run " + " and ".join(marg_note) + ")"
                   if marg_note else "") +
                ". **All peer figures are plaintext HTTP on loopback with ~150-byte prompts**; "
                "no provider serves plaintext, and TLS moves the floor more than any runtime "
                "does: " + tls_note(ctx) + ". mock-llm's own CPU is recorded per run (`mock_cpu_percent`, of "
                f"one core over the client's wall); a first token where it reached "
                f"{MOCK_FLOOR_PERCENT}% is marked as the mock's floor"
                + ("" if any(x["metric"] == "mock_cpu_percent" for x in rows) else
                   " (this set predates that record: at 10,000 streams the review's probe puts "
                   "mock-llm at 0.6-1.5 of a core, so the C and Go first-token times there are "
                   "likely the mock's admission floor, not the clients')") + ".\n\n")
        out += mtable(["model", "runtime", "completed", "alive at once", "memory per conversation",
                       "CPU ms per 1k tokens", "marginal CPU ms per 1k tokens", "first token p50",
                       "first token p99", "runs"], lines)
        # the reading: each runtime's models against the C floor of the same run (peers.csv's
        # C fibers for Python, Go and Node; ruby.csv's own for Ruby: never a ratio across two
        # runs), said "(one run)" where a side is one, with the alive-at-once count where a
        # model did not hold all N conversations at once (its memory is per alive one)
        fib = r("peers", f"llm/c-fiber/gpt4o-5tps/n={n}", "bytes_per_unit")
        thr = r("peers", f"llm/c-thread/gpt4o-5tps/n={n}", "bytes_per_unit")
        reading = []
        if fib and thr:
            reading.append(f"C fibers hold a conversation in {tables.kib(fib['median'])} and C "
                           f"threads in {tables.kib(thr['median'])}"
                           f"{runs_note(fib, thr)}: the floor and the ceiling")
        for impl, what in PEER_IMPLS:
            if impl.startswith("c-") or impl not in seen:
                continue
            h = "ruby" if impl.startswith("ruby") else "peers"
            f_ = r(h, f"llm/c-fiber/gpt4o-5tps/n={n}", "bytes_per_unit")
            b = r(h, f"llm/{impl}/gpt4o-5tps/n={n}", "bytes_per_unit")
            if not (b and f_):
                continue
            live = r(h, f"llm/{impl}/gpt4o-5tps/n={n}", "live_units")
            done_ = r(h, f"llm/{impl}/gpt4o-5tps/n={n}", "completed_count")
            cond = []
            if live and float(live["median"]) < n:
                cond.append(f"at {cnt(live['median'])} alive at once, of {cnt(n)}: not like "
                            "for like with the C fibers' 10,000")
            if done_ and float(done_["median"]) < n:
                cond.append(f"{cnt(done_['median'])} of {cnt(n)} completed")
            fnote = runs_note(f_).strip(" ()")
            reading.append(f"{what}: {xr(float(b['median']) / float(f_['median']))} the C "
                           "fibers' memory per conversation"
                           + (" (against ruby.csv's own C fibers, " + tables.kib(f_["median"])
                              if h == "ruby" else " (")
                           + (f"{', ' if h == 'ruby' else ''}C fibers: {fnote}" if fnote else "")
                           + ("; " if cond and (fnote or h == "ruby") else "") + "; ".join(cond)
                           + ")")
        reading = [x.replace(" ()", "") for x in reading]
        cq = reproduce.sel(marg_src["peers"], case=[
            "llm/ratio/c-thread-over-c-fiber/fixed-50tps/n=100/cpu-per-token-marginal"], metric="ratio")
        if cq:
            reading.append(f"per extra token, paced, C threads spend {tables.cell(cq, xr_)}"
                           + (" (one run)" if int(cq["runs"]) == 1 else "") +
                           " the CPU of C fibers (measured as the LLM headline's `llm.csv` "
                           "marginal is: tokens one per event)")
        out += "Read against the floor: " + "; ".join(reading) + ".\n\n"

    # Python's headline pair, library against library (finding 4 of
    # peers/review/FINDINGS.md): http.client threads against httpx (the openai SDK's
    # transport) and aiohttp at 1,000 streams, where all complete; the hand-written
    # asyncio-streams client beside them, labelled as what it is
    n1 = 1000
    py = [("py-thread", "threads, http.client (library)"),
          ("py-httpx", "asyncio, httpx as AsyncOpenAI sets it up (library)"),
          ("py-aiohttp", "asyncio, aiohttp (library)"),
          ("py-asyncio", "asyncio, hand-written HTTP/1.1 on stdlib streams (ours, no app's)")]
    plines = []
    for impl, what in py:
        case = f"llm/{impl}/gpt4o-5tps/n={n1}"
        done = r("peers", case, "completed_count")
        if not done:
            continue
        plines.append([what, tables.cell(done, cnt), tables.cell(r("peers", case, "live_units"), cnt),
                       tables.cell(r("peers", case, "bytes_per_unit"), tables.kib),
                       tables.cell(r("peers", case, "cpu_per_1k_tokens_ms")),
                       tables.cell(marg_of("peers", impl)) if marg_of("peers", impl) else "-",
                       tables.cell(r("peers", case, "ttft_p50_ms"), ms), done["runs"]])
    if len(plines) >= 2:
        def pyratio(num, den, key):
            q = reproduce.sel(rows, case=[f"llm/ratio/{num}-over-{den}/gpt4o-5tps/n={n1}/{key}"],
                              metric="ratio")
            if q:
                return tables.cell(q, lambda v: f"{float(v):.2g}x") + (
                    " (one run)" if int(q["runs"]) == 1 else " (same-run ratios)")
            a_ = r("peers", f"llm/{num}/gpt4o-5tps/n={n1}", "cpu_per_1k_tokens_ms")
            b_ = r("peers", f"llm/{den}/gpt4o-5tps/n={n1}", "cpu_per_1k_tokens_ms")
            if a_ and b_:
                return f"{float(a_['median']) / float(b_['median']):.2g}x (ratio of medians)"
            return None
        said = [(d_, pyratio("py-thread", d_, "cpu-per-token")) for d_ in
                ("py-httpx", "py-aiohttp", "py-asyncio")]
        h10 = r("peers", f"llm/py-httpx/gpt4o-5tps/n={n}", "completed_count")
        h10_from = ""
        if not h10:
            hx = resultsets.load_rows(PEERS_HTTPX10K, "peers") or []
            h10 = reproduce.sel(hx, case=[f"llm/py-httpx/gpt4o-5tps/n={n}"], metric="completed_count")
            if h10:
                hm = resultsets.read_machine(os.path.join(PEERS_HTTPX10K, "peers.machine.txt"))
                hsel = lambda c, m: reproduce.sel(hx, case=[c], metric=m)
                c0 = f"llm/py-httpx/gpt4o-5tps/n={n}"
                causes = [x for x in hx if x["case"].startswith(c0 + "/fail=") and x["metric"] == "errors"]
                h10_from = (
                    " (" + ", ".join(f"{x['case'].rsplit('fail=', 1)[1]}: {cnt(x['median'])}"
                                     for x in causes) +
                    f"; {float(hsel(c0, 'cpu_s')['median']):.0f} s of CPU, "
                    f"{float(hsel(c0, 'cpu_per_1k_tokens_ms')['median']):,.0f} ms per 1,000 tokens, "
                    f"first token p50 {ms(hsel(c0, 'ttft_p50_ms')['median'])}, mock-llm "
                    f"{float(hsel(c0, 'mock_cpu_percent')['median']):.0f}% of a core; one run, "
                    f"`{os.path.relpath(PEERS_HTTPX10K, TOP)}/peers.csv`, {hm.get('date', '?')}, "
                    f"commit {hm.get('commit', '?')}, load average at start "
                    f"{hm.get('load average at start', '?')})")
        prun = sorted({int(x[-1]) for x in plines})
        out += (f"**Python, library against library** ({cnt(n1)} streams, where every client "
                "completes" + ("; **one run each** (runs 1: single figures, not medians; the "
                               "paced marginal column is the 3-run one of the table above)"
                               if prun == [1] else "") + "; the headline pair is http.client threads against httpx, the "
                "openai SDK's transport; the hand-written streams client is beside it, not a "
                "library anyone streams with; httpx's row stops at its raw bytes and our "
                "parser, the SDK's per-chunk objects are not counted):\n\n")
        out += mtable(["Python client", "completed", "alive at once", "memory per conversation",
                       "CPU ms per 1k tokens", "marginal CPU ms per 1k tokens (paced)",
                       "first token p50", "runs"], plines)
        paced = []
        for d_ in ("py-httpx", "py-aiohttp", "py-asyncio"):
            q = reproduce.sel(marg_src["peers"], case=[
                f"llm/ratio/py-thread-over-{d_}/fixed-50tps/n=100/cpu-per-token-marginal"],
                metric="ratio")
            if q:
                paced.append(f"over {d_[3:]} " + tables.cell(q, lambda v: f"{float(v):.2g}x"))
        out += ("CPU per token with setup, threads over each asynchronous client: " + "; ".join(
            f"over {d_[3:]} {v}" for d_, v in said if v) + ". " +
                ("Per extra token, paced (same-run ratios): " + "; ".join(paced) + ". "
                 if paced else "") +
                (f"httpx at {cnt(n)}: **{cnt(h10['median'])} of {cnt(n)} completed** within 60 s "
                 "each" + ("" if h10_from else runs_note(h10)) + (h10_from or " (its row in the table above, with the causes)")
                 if h10 else
                 f"httpx at {cnt(n)} is not in this set (the harness now runs it once and "
                 "records its failure as rows; the development probes had none completed "
                 "within 60 s)") + ".\n\n")

    lines = []
    for label, h, tm, ti, fm, fi in PEER_SEED_PAIRS:
        line = [label]
        ok = False
        for metric, f, inverse in (("us_per_unit", t_us, False), ("us_per_switch", t_us, False),
                                   ("units_per_s", lambda v: rate(v) + "/s", True)):
            hr = rows if h == "peers" else ctx.rows(h)
            t = reproduce.sel(hr, model=tm, metric=metric, impl_re=ti)
            c = reproduce.sel(hr, model=fm, metric=metric, impl_re=fi)
            if not (t and c):
                line.append("-")
                continue
            ok = True
            ratio = float(c["median"]) / float(t["median"]) if inverse else float(t["median"]) / float(c["median"])
            line.append(f"{f(t['median'])} vs {f(c['median'])}: **{xr(ratio)}**{runs_note(t, c)}")
        if ok:
            lines.append(line)
    if lines:
        out += ("**The post's protocol in each runtime** (its threads against its cheap units; "
                "C and Ruby from `seed.csv`, placed as their names say, Ruby unpinned; Python "
                "and Go from `peers.csv`, each process pinned to one CPU; ratio = how many "
                "times cheaper the cheap units are):\n\n")
        out += mtable(["runtime", "create (N=10,000, M=2), µs per unit",
                       "switch (N=2, M=10,000), µs per switch",
                       "throughput (N=1,000, M=100, 10th repeat)"], lines)
    figs = [f"![{t}]({plots}/{n_}.png)" for n_, t in
            (("peers", "10,000 streaming conversations per runtime"),
             ("peers_seed", "The post's protocol across runtimes"))
            if os.path.isfile(os.path.join(TOP, plots, n_ + ".png"))]
    if figs:
        out += "\n".join(figs) + "\n"
    return out.rstrip("\n") + "\n"


# ---- the post's claims in Ruby (ruby.csv) ----
RUBY_DIR = os.path.join(TOP, "peers", "ruby")


def sec_ruby(ctx):
    """peers/ruby/claims.py's table on the set's ruby.csv (else on the bounded run kept in
    the tree, labelled as one), the figures the table does not judge, and the figure."""
    sys.path.insert(0, RUBY_DIR)
    import claims  # noqa: E402
    if ctx.rows("ruby"):
        path, rows, m = os.path.join(ctx.dir, "ruby.csv"), ctx.rows("ruby"), ctx.machine("ruby")
        fig = os.path.join(ctx.plots, "ruby.png")
        head = (f"From `{ctx.rel}/ruby.csv`, the published set ({m.get('cpu', '?')}, "
                f"{m.get('date', '?')}, commit {m.get('commit', '?')}, {m.get('mode', '?')} run, "
                f"noisy: {m.get('noisy', '?')}; during it: {m.get('noise_during', '?')})")
    else:
        path = claims.BOUNDED
        rows = resultsets.load_rows(os.path.dirname(path), "ruby")
        if not rows:
            return (missing("ruby.csv") + ": `make bench-ruby` measures it; `make publish` "
                    "takes it into the published set with the rest of a full `make bench`.\n")
        m = resultsets.read_machine(os.path.join(os.path.dirname(path), "ruby.machine.txt"))
        fig = os.path.join(os.path.relpath(os.path.dirname(path), TOP), "ruby.png")
        head = ("**A bounded run, not the publication run** (the published set has no "
                f"`ruby.csv`): `{os.path.relpath(path, TOP)}` ({m.get('cpu', '?')}, "
                f"{m.get('date', '?')}, commit {m.get('commit', '?')}; "
                + "; ".join(f"{k} {m[k]}" for k in ("load average at start", "noise_during",
                                                     "noisy") if m.get(k)) +
                "): trust the same-run ratios more than the absolute times")
    # the Ruby models' own rows (ratios against a C anchor have the anchor's one run)
    ruby_runs = sorted({int(x["runs"]) for x in rows if x["impl"].startswith(("ruby-", "puma-",
                                                                              "async-"))
                        and "-over-c-" not in x["case"]})
    c_runs = sorted({int(x["runs"]) for x in rows if x["impl"].startswith("c-")
                     and not x["case"].startswith("starve/")})
    out = (head + ". The Ruby models' figures are medians of "
           + "-".join(str(n) for n in (ruby_runs[:1] + ruby_runs[-1:] if len(ruby_runs) > 1
                                       else ruby_runs)) +
           " runs with min-max, the models interleaved run by run, the same request-indexed "
           "draws for every model" +
           (("; the C clients and relays beside them are a same-run anchor of one round "
             "(`runs` 1: \"(one run)\" where the table quotes them)") if c_runs == [1] else "") +
           ". The table is `python3 peers/ruby/claims.py`'s output on that CSV, every number "
           "from a row and every verdict from one rule (\"cheaper\" or \"better\" means at "
           "least 1.5x, judged on the per-run range); `make test` (readme_in_sync) fails when "
           "they differ.\n\n")
    d = claims.Rows(path)
    out += "| the post says | measured here | verdict |\n|---|---|---|\n"
    out += "".join("| " + " | ".join(r) + " |\n" for r in claims.table(d)) + "\n"

    # what the table does not judge, from the same rows
    def g(case, metric):
        return reproduce.sel(rows, case=[case], metric=metric)
    L = "llm/{}/gpt4o-5tps/n={}"
    ft = []
    for n in (100, 1000, 10000):
        a, t = g(L.format("ruby-async", n), "ttft_p50_ms"), g(L.format("ruby-thread", n), "ttft_p50_ms")
        if a and t:
            ft.append((n, float(a["median"]), float(t["median"]), a, t))
    notes = []
    if ft:
        earlier = {a < t for _, a, t, _, _ in ft}
        notes.append(
            "first token p50, Ruby Async against Ruby threads: " +
            ", ".join(f"{tables.cell(ar, ms)} vs {tables.cell(tr, ms)} at {cnt(n)}"
                      for n, _, _, ar, tr in ft) +
            (": Async's is earlier at every N" if earlier == {True} else
             ": Async's is later at every N" if earlier == {False} else
             ": Async's is earlier at " + ", ".join(cnt(n) for n, a, t, _, _ in ft if a < t) +
             " and later at " + ", ".join(cnt(n) for n, a, t, _, _ in ft if a >= t)))
    R = "relay/{}/gpt4o-5tps/n={}"
    ad = g(R.format("async-http-server", 1000), "completed_count")
    if ad:
        notes.append(f"the Async::HTTP relay at 1,000 users completed {tables.cell(ad, cnt)} "
                     f"streams over {ad['runs']} runs")
    pc = [g(R.format(p_, 1000), "completed_count") for p_ in ("puma-5", "puma-25")]
    if all(pc):
        lo = min(float(x["min"]) for x in pc)
        hi = max(float(x["max"]) for x in pc)
        notes.append("Puma's server CPU includes the work of the requests its users abandoned "
                     f"after 3 s, divided by the tokens of the {lo:.0f}-{hi:.0f} streams that "
                     "completed at 1,000 users: per delivered token, not like-for-like with "
                     "Async's")
    ticks = [float(x["median"]) / 0.01 for x in (g(R.format(c_, n_), "cpu_s") for c_ in
                                                   ("c-thread", "c-fiber") for n_ in (100, 1000)) if x]
    if ticks:
        notes.append("server CPU is read from /proc in 10 ms ticks: the C relays' "
                     f"{min(ticks):.0f}-{max(ticks):.0f} ticks are coarse where they are few")
    if notes:
        out += "Beside the table, from the same rows: " + "; ".join(notes) + ".\n\n"
    if os.path.isfile(os.path.join(TOP, fig)):
        out += f"![The post's claims in Ruby]({fig})\n"
    return out.rstrip("\n") + "\n"


def xr_(v):
    return xr(float(v))


# ---- libcurl on three models (curl.csv) ----
# A bounded run kept in the tree, shown while the published set has no curl.csv: labelled
# as such, with its machine's load.
CURL_BOUNDED = os.path.join(TOP, "workloads", "curl", "results")
CURL_IMPLS = [("curl-easy-thread", "thread"), ("curl-easy-fiber-hook", "fiber + hooks"),
              ("curl-multi-epoll", "multi")]


def sec_curl(ctx):
    """wl-curl's three models at N = 1,000 at once and 10,000 arriving over 10 s."""
    rows, mach, where = ctx.rows("curl"), ctx.machine("curl"), ctx.rel
    bounded = ""
    if not rows:
        rows = resultsets.load_rows(CURL_BOUNDED, "curl")
        if not rows:
            return missing("curl.csv") + ": `python3 workloads/bench/run.py --only curl` measures it.\n"
        mach = resultsets.read_machine(os.path.join(CURL_BOUNDED, "curl.machine.txt"))
        where = os.path.relpath(CURL_BOUNDED, TOP)
        bounded = ("**A bounded run, not the publication run** (the published set has no "
                   "`curl.csv`): " + "; ".join(f"{k} {mach[k]}" for k in (
                       "noise_before", "noise_during", "noisy") if mach.get(k)) + ". Trust the "
                   "same-round ratios more than the absolute figures.\n\n")

    def r(case, metric):
        return reproduce.sel(rows, case=[case], metric=metric)

    def mm(row, f):
        """median [min-max], in the row's unit (named in its label)"""
        if not row:
            return "-"
        lo, hi = f(row["min"]), f(row["max"])
        return f(row["median"]) + ("" if lo == hi else f" [{lo}-{hi}]")

    def k1(x):
        return f"{float(x) / 1024:.1f}"

    def m1(x):
        return f"{float(x):,.1f}"

    def m0(x):
        return f"{float(x):,.0f}"

    lab = next((x["case"].split("/")[2] for x in rows
                if x["case"].startswith("curl/curl-easy-thread/") and "arrive" not in x["case"]), None)
    if not lab:
        return bounded + missing("curl.csv rows") + "\n"
    steps = [(f"{lab}", 1000, "N = 1,000 at once"), (f"{lab}-arrive10s", 10000,
                                                      "N = 10,000 arriving over 10 s")]
    head = [""] + [name for _, name in CURL_IMPLS]
    body = []
    # sets measured since wl-curl counts conversations in progress divide by that
    # (active_units); older ones by the units alive at once (live_units)
    active = any(x["metric"] == "active_units" for x in rows)
    for l, n, title in steps:
        cases = {impl: f"curl/{impl}/{l}/n={n}" for impl, _ in CURL_IMPLS}
        done = [r(cases[i], "completed_count") for i, _ in CURL_IMPLS]
        if not any(done):
            continue
        live = [r(cases[i], "active_units" if active else "live_units") for i, _ in CURL_IMPLS]
        body.append([f"**{title}**{runs_note(*done)}: completed (most "
                     f"{'in progress' if active else 'alive'} at once)"] +
                    [f"{cnt(d['median'])} ({cnt(v['median'])})" if d and v else "-"
                     for d, v in zip(done, live)])
        for metric, what, f in (
                ("bytes_per_unit", "memory per conversation, KiB (RSS growth + kernel estimate)", k1),
                ("kernel_meminfo_per_unit_bytes", "kernel memory per conversation, KiB, measured "
                 "(machine-wide /proc/meminfo growth)", k1),
                ("cpu_per_1k_tokens_ms", "CPU per 1,000 tokens, ms", m1),
                ("ttft_p50_ms", "first-token p50, ms", m0),
                ("ttft_p99_ms", "first-token p99, ms", m0)):
            cells = [mm(r(cases[i], metric), f) for i, _ in CURL_IMPLS]
            if any(c != "-" for c in cells):
                body.append([what] + cells)
    out = bounded + (
        f"From `{where}/curl.csv` ({mach.get('cpu', '?')}, {mach.get('date', '?')}, commit "
        f"{mach.get('commit', '?')}, {mach.get('workloads', '?')} run): median [min-max] over "
        f"the runs (a step of fewer than 3 says so), the three models interleaved run by run against one "
        f"mock-llm (gpt-4o first-token time, 5 tokens/s{no_stalls(mach)}, 20 tokens, a 4 KiB "
        "prompt), every "
        "conversation with `x-mock-request-index: i`; thread and multi from `wl-curl-plain` (no "
        "hooks in the process), fiber from `wl-curl` (hooks linked); `CURLOPT_FRESH_CONNECT` and "
        "`CURLOPT_FORBID_REUSE` on every model" +
        # sets measured since the harness sets it say so in their machine file
        ("; a 4 KiB receive buffer (`CURLOPT_BUFFERSIZE`) on every model"
         if "CURLOPT_BUFFERSIZE" in mach.get("curl", "") else "") +
        ". Memory per conversation is the client's peak RSS "
        "growth plus its kernel share estimated (page tables, and per thread a 16 KiB kernel "
        "stack and 7 KiB of task slab as `memory.csv` measures it), over the most conversations "
        + ("in progress at once (set up and not yet finished)" if active else "alive at once") +
        "; the measured kernel row is the machine's, mock-llm's side of each "
        "connection and other processes included.\n\n")
    out += mtable(head, body)
    parts = {"mem": [], "cpu": [], "multi": []}
    for l, n, title in steps:
        short = f"N = {n:,}" + (" arriving" if "arrive" in l else "")
        for key, case in (("mem", f"curl/ratio/fiber-over-thread/{l}/n={n}/bytes-per-unit"),
                          ("cpu", f"curl/ratio/fiber-over-thread/{l}/n={n}/cpu-per-token"),
                          ("multi", f"curl/ratio/fiber-over-multi/{l}/n={n}/cpu-per-token")):
            x = r(case, "ratio")
            if x:
                lo, hi = float(x["min"]), float(x["max"])
                parts[key].append(f"**{float(x['median']):.2f}x**" +
                                  ("" if f"{lo:.2f}" == f"{hi:.2f}" else f" [{lo:.2f}-{hi:.2f}]") +
                                  f" ({short}{', one run' if int(x['runs']) == 1 else ''})")
    said = [f"{what} {' and '.join(parts[key])}" for key, what in (
        ("mem", "fiber over thread, memory per conversation"),
        ("cpu", "fiber over thread, CPU per token"),
        ("multi", "fiber over multi, CPU per token")) if parts[key]]
    if said:
        out += "Ratios from the same rounds: " + "; ".join(said) + ".\n"
    return out


TLS_MODELS = [("fiber", "http", "fiber, HTTP"), ("thread", "http", "thread, HTTP"),
              ("fiber", "https", "fiber, HTTPS"), ("thread", "https", "thread, HTTPS")]


def sec_workloads_tls(ctx):
    """HTTPS against plain HTTP at 10,000 conversations: llm.csv's llm-tls/* rows."""
    rows = [r for r in ctx.rows("llm") if r["case"].startswith("llm-tls/")]
    if not rows:
        return missing("llm.csv llm-tls rows") + "\n"
    prof = next((r["case"].split("/")[3] for r in rows
                 if r["case"].startswith("llm-tls/fiber/http/")), None)
    nm = re.search(r"/n=(\d+)$", next(r["case"] for r in rows if r["case"].startswith("llm-tls/fiber/http/")))
    n = nm.group(1) if nm else "?"

    def r(case, metric):
        return reproduce.sel(rows, case=[case], metric=metric)

    def case(model, proto):
        return f"llm-tls/{model}/{proto}/{prof}/n={n}"

    def cell(model, proto, metric, f):
        x = r(case(model, proto), metric)
        return tables.cell(x, f) if x else "-"

    def k1(v):
        return f"{float(v) / 1024:.1f} KiB"

    def msf(v):
        return f"{float(v):.1f} ms"

    def sf(v):
        return ms(v)
    m = ctx.machine("llm")
    used = [x for x in rows if x["metric"] == "cpu_per_1k_tokens_ms"]
    out = (f"From `{ctx.rel}/llm.csv` ({m.get('cpu', '?')}, {m.get('date', '?')}, commit "
           f"{m.get('commit', '?')}), rows `llm-tls/*`: {cnt(n)} conversations arriving at once, "
           f"profile `{prof}` (gpt-4o first-token time, 60 tokens at 5 tokens/s{no_stalls(m)}), one "
           "connection each, the server's certificate verified, a fresh mock-llm per run"
           + runs_note(*used) + ": each figure below is a single run, without spread.\n\n")
    body = []
    for metric, what, f in (
            ("live_units", "conversations alive at once, at most", cnt),
            ("open_conns_count", "connections open at once, at most", cnt),
            ("client_hwm_per_conv_bytes", "client peak RSS per conversation (`client_hwm_per_conv_bytes`)", k1),
            ("client_rss_per_open_conv_bytes", "client RSS per open conversation", k1),
            ("kernel_est_bytes", "client kernel estimate (page tables, thread stacks), whole run", mib),
            ("cpu_per_1k_tokens_ms", "client CPU per 1,000 tokens", msf),
            ("ttft_p50_ms", "first token, p50", sf),
            ("ttft_p99_ms", "first token, p99", sf),
            ("server_rss_per_open_stream_bytes", "mock-llm RSS per open stream", k1)):
        body.append([what] + [cell(mo, pr, metric, f) for mo, pr, _ in TLS_MODELS])
    body.append(["OpenSSL per conversation, client / server (HTTPS only)", "-", "-"] + [
        (lambda c_, s_: (k1(c_["median"]) if c_ else "-") + " / " + (k1(s_["median"]) if s_ else "-"))(
            r(f"llm-tls/{mo}/openssl-cost/{prof}/n={n}", "client_tls_bytes_per_conv_bytes"),
            r(f"llm-tls/{mo}/openssl-cost/{prof}/n={n}", "server_tls_bytes_per_stream_bytes"))
        for mo in ("fiber", "thread")])
    out += mtable(["per conversation"] + [t for _, _, t in TLS_MODELS], body)
    short_of = []
    for mo, pr, t in TLS_MODELS:
        lv = r(case(mo, pr), "live_units")
        if lv and float(lv["median"]) < float(n):
            oc = r(case(mo, pr), "open_conns_count")
            short_of.append(f"{t}: {cnt(lv['median'])} conversations alive at most"
                            + (f" ({cnt(oc['median'])} connections open)" if oc else "")
                            + f", not {cnt(n)} at once; its per-conversation figures are over those")
    if short_of:
        out += "Not every model had all conversations at once: " + "; ".join(short_of) + ".\n\n"

    def q(what, proto, kind):
        return r(f"llm-tls/ratio/{what}/{proto}/{prof}/n={n}/{kind}", "ratio")
    said = []
    mh, ms_ = q("thread-over-fiber", "http", "rss-per-open-conv"), q("thread-over-fiber", "https", "rss-per-open-conv")
    if mh and ms_:
        said.append(f"thread over fiber, RSS per open conversation: **{float(mh['median']):.2f}x over "
                    f"HTTP, {float(ms_['median']):.2f}x over HTTPS**")
    ch, cs_ = q("thread-over-fiber", "http", "cpu-per-token"), q("thread-over-fiber", "https", "cpu-per-token")
    if ch and cs_:
        said.append(f"CPU per token {float(ch['median']):.2f}x over HTTP, {float(cs_['median']):.2f}x over HTTPS")
    hf = r(f"llm-tls/ratio/https-over-http/fiber/{prof}/n={n}/cpu-per-token", "ratio")
    ht = r(f"llm-tls/ratio/https-over-http/thread/{prof}/n={n}/cpu-per-token", "ratio")
    if hf and ht:
        said.append(f"HTTPS over HTTP, CPU per token: fibers {float(hf['median']):.2f}x, threads "
                    f"{float(ht['median']):.2f}x")
    if said:
        out += "Same-run ratios (one run each): " + "; ".join(said) + ".\n\n"
    pf, pt = r(case("fiber", "https"), "ttft_p50_ms"), r(case("thread", "https"), "ttft_p50_ms")
    if pf and pt:
        out += (f"Over HTTPS the first token waits {ms(pf['median'])} (p50) on the one-core fiber "
                f"client against {ms(pt['median'])} on threads"
                + (", later on fibers: every conversation pays a full handshake at once, the storm "
                   "is CPU-bound, and threads use both cores" if float(pf["median"]) > float(pt["median"])
                   else "") + ".\n")
    return out


SECTIONS = {
    "set": sec_set,
    "claims": sec_claims,
    "headline": sec_headline,
    "figures": sec_figures,
    "tables": sec_tables,
    "million": sec_million,
    "mockllm-results": sec_mockllm_results,
    "workloads-results": sec_workloads_results,
    "workloads-tls": sec_workloads_tls,
    "peers": sec_peers,
    "ruby": sec_ruby,
    "curl": sec_curl,
}


def render(text, ctx, where):
    """text with every marked section regenerated; raises ValueError on a bad marker."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        m = BEGIN.match(line)
        out.append(line)
        i += 1
        if not m:
            if line.strip().startswith("<!-- gen:") or line.strip() == END:
                raise ValueError(f"{where}:{i}: malformed or stray marker: {line.strip()}")
            continue
        name = m.group(1)
        if name not in SECTIONS:
            raise ValueError(f"{where}:{i}: unknown section '{name}' (known: {', '.join(SECTIONS)})")
        start = i
        while i < len(lines) and lines[i].strip() != END:
            if BEGIN.match(lines[i]):
                raise ValueError(f"{where}:{start}: section '{name}' not closed before line {i + 1}")
            i += 1
        if i == len(lines):
            raise ValueError(f"{where}:{start}: section '{name}' has no {END}")
        out.append(SECTIONS[name](ctx).rstrip("\n"))
        out.append(END)
        i += 1
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Regenerate the README sections that quote numbers.",
                                 epilog="Exit status: 0 written or in sync, 1 out of sync or bad "
                                        "marker, 2 bad usage.")
    ap.add_argument("files", nargs="*", metavar="FILE")
    ap.add_argument("--check", action="store_true", help="diff instead of writing")
    ap.add_argument("--set", dest="set_dir", default=None,
                    help="the published set (default: the README's, results/published/shown.txt)")
    args = ap.parse_args(argv)
    set_dir = args.set_dir or resultsets.shown_set()
    if not set_dir or not os.path.isdir(set_dir):
        print("gen_readme: no published set (results/published/shown.txt)", file=sys.stderr)
        return 2
    ctx = Ctx(set_dir)
    files = args.files or [os.path.join(TOP, f) for f in FILES]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            if not os.path.isfile(path):
                print(f"gen_readme: no file {path}", file=sys.stderr)
                return 2
            with open(path, encoding="utf-8") as f:
                old = f.read()
            try:
                new = render(old, ctx, os.path.relpath(path, TOP))
            except ValueError as e:
                print(f"gen_readme: {e}", file=sys.stderr)
                bad = 1
                continue
            if args.check:
                regen = os.path.join(tmp, os.path.basename(path))
                with open(regen, "w", encoding="utf-8") as f:
                    f.write(new)
                if new != old:
                    rel = os.path.relpath(path, TOP)
                    print(f"gen_readme: {rel} disagrees with {ctx.rel}/ (make readme rewrites it):",
                          file=sys.stderr)
                    sys.stderr.writelines(difflib.unified_diff(
                        old.splitlines(True), new.splitlines(True), rel, rel + " (regenerated)"))
                    bad = 1
            elif new != old:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
                print(f"gen_readme: {os.path.relpath(path, TOP)} regenerated from {ctx.rel}/")
    return bad


if __name__ == "__main__":
    sys.exit(main())
