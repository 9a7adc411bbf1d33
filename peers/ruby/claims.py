#!/usr/bin/env python3
"""peers/ruby/claims.py - the post's claims in Ruby, judged from a ruby.csv: prints the
Markdown table the top-level README shows (claim | measured here | verdict), every
number read from the CSV, every verdict from a stated rule, so nothing is copied by hand.

    python3 peers/ruby/claims.py [CSV]

Default CSV: the ruby.csv of the published set the README shows
(results/published/shown.txt) when that set has one, else the bounded run kept in the
tree, peers/ruby/results/ruby.csv (default_csv() says which). scripts/gen_readme.py
prints this table into README.md (section gen:ruby) from the same choice.

The rule of "cheaper" and "better": a ratio of at least 1.5x, judged on the per-run
ratios' range (the same-run ratio rows' min and max; where a pair has no ratio rows, the
widest range its two rows' min and max allow), not on one median: the rule is met where
the whole range is at or above 1.5x, missed where it is all below, and "inconclusive"
where the range straddles 1.5x (peers/review/FINDINGS.md, finding 7). Memory per
conversation is judged only at the N where both models held N conversations alive at
once; elsewhere the figure stands with its alive-at-once count and no verdict (finding
6). States: "holds" where the rule is met at every N judged, "holds only ..." where it
is met under some conditions (named), "inconclusive" where no condition meets it but
some straddle it, "does not hold" where it is missed everywhere.

The marginal CPU per token (claim 3) is paced (tokens one per event, peerlib.MARGINAL):
from CSV when it has those rows, else from the bounded marginal run beside it
(DIR/marginal/ruby.csv, said in the text).

Exit status: 0, 1 when a row the table needs is missing (it says which), 2 bad usage.
Python 3 standard library only.
"""
import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
BOUNDED = os.path.join(HERE, "results", "ruby.csv")
RULE = 1.5


def default_csv():
    """(path, published): the shown published set's ruby.csv when it has one, else the
    bounded run kept in the tree."""
    sys.path.insert(0, os.path.join(TOP, "scripts"))
    import resultsets  # noqa: E402
    s = resultsets.shown_set()
    if s and os.path.isfile(os.path.join(s, "ruby.csv")):
        return os.path.join(s, "ruby.csv"), True
    return BOUNDED, False


MARGINAL = "fixed-50tps/n=100/marginal-16-64-tokens"  # peerlib.MARGINAL_CASE's tail


class Rows:
    def __init__(self, path):
        with open(path) as f:
            self.rows = {(r["case"], r["metric"]): r for r in csv.DictReader(f)}
        self.missing = []
        # the paced marginal from the bounded run beside the CSV, when the CSV predates it
        self.marginal_from = None
        side = os.path.join(os.path.dirname(os.path.abspath(path)), "marginal", "ruby.csv")
        if not any(MARGINAL in c for c, _ in self.rows) and os.path.isfile(side):
            with open(side) as f:
                # its marginal rows and their same-run ratios
                got = {(r["case"], r["metric"]): r for r in csv.DictReader(f)
                       if MARGINAL.split("/marginal-")[0] + "/" in r["case"]}
            if got:
                self.rows.update(got)
                self.marginal_from = side

    def get(self, case, metric):
        r = self.rows.get((case, metric))
        if r is None:
            self.missing.append(f"{case} {metric}")
            return None
        return r

    def v(self, case, metric):
        r = self.get(case, metric)
        return float(r["median"]) if r else None

    def one(self, case, metric):
        """' (one run)' when the row is a single run (a same-run anchor, not a median)."""
        r = self.rows.get((case, metric))
        return " (one run)" if r and r["runs"] == "1" else ""

    def span(self, case, metric, fmt):
        r = self.get(case, metric)
        if not r:
            return "?"
        if r["runs"] == "1" or r["min"] == r["max"]:
            return fmt(float(r["median"]))
        return f"{fmt(float(r['median']))} ({fmt(float(r['min']))}-{fmt(float(r['max']))})"

    def ns(self, prefix, metric):
        """The N values of cases prefix/n=N having metric, ascending."""
        out = set()
        for (c, m) in self.rows:
            if m == metric and c.startswith(prefix + "/n=") and c.count("/") == prefix.count("/") + 1:
                out.add(int(c.rsplit("=", 1)[1]))
        return sorted(out)


def kib(x):
    return f"{x / 1024:.0f} KiB" if x >= 10240 else f"{x / 1024:.1f} KiB"


def msec(x):
    return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.3g} ms"


def num(x):
    return f"{x:,.0f}"


def xr(x):
    return f"{x:.1f}x" if x < 100 else f"{x:,.0f}x"


def rng(a, b):
    lo, hi = f"{min(a, b):.0f}", f"{max(a, b):.0f}"
    return lo if lo == hi else f"{lo}-{hi}"


def nn(n):
    return f"{n:,}"


def judge(lo, hi):
    """The rule on a range of per-run ratios: True (met: all >= RULE), False (missed: all
    below), None (inconclusive: the range straddles RULE)."""
    if lo >= RULE:
        return True
    if hi < RULE:
        return False
    return None


def ratio_range(d, case, num=None, den=None, metric=None):
    """(median, lo, hi) of a same-run ratio row; without one, the two rows' medians'
    ratio and the widest range their min and max allow (num_min / den_max ..
    num_max / den_min). None when a row is missing."""
    r = d.rows.get((case, "ratio")) if case else None
    if r:
        return float(r["median"]), float(r["min"]), float(r["max"])
    a, b = d.get(num, metric), d.get(den, metric)
    if not (a and b) or float(b["median"]) <= 0 or float(b["min"]) <= 0:
        return None
    return (float(a["median"]) / float(b["median"]), float(a["min"]) / float(b["max"]),
            float(a["max"]) / float(b["min"]))


def rr(t):
    """A ratio with its per-run range: '1.4x (1.2x-1.9x)'."""
    m, lo, hi = t
    return xr(m) if f"{lo:.1f}" == f"{hi:.1f}" else f"{xr(m)} ({xr(lo)}-{xr(hi)})"


def verdict(hits, conds, what):
    """hits: per condition True (met), False (missed) or None (inconclusive: the per-run
    range straddles the rule); conds: the names of the conditions."""
    ok = [c for h, c in zip(hits, conds) if h is True]
    unsure = [c for h, c in zip(hits, conds) if h is None]
    if hits and all(h is True for h in hits):
        return "**holds**"
    if ok:
        return f"**holds only {what} {', '.join(ok)}**" + (
            f" (inconclusive {what} {', '.join(unsure)})" if unsure else "")
    if unsure:
        return (f"**inconclusive** (the per-run range straddles {RULE}x {what} "
                f"{', '.join(unsure)})")
    return "**does not hold**"


def table(d):
    out = []
    L = "llm/{}/gpt4o-5tps"
    ns_mem = [n for n in d.ns(L.format("ruby-async"), "bytes_per_unit")
              if d.rows.get((f"{L.format('ruby-thread')}/n={n}", "bytes_per_unit"))]
    top = max(ns_mem) if ns_mem else None

    # 1. Net::HTTP yields inside Async
    s1 = d.v("starve/ruby-async/fixed-x0.25/n=1", "seconds")
    s100 = d.v("starve/ruby-async/fixed-x0.25/n=100", "seconds")
    live = d.v(f"{L.format('ruby-async')}/n={top}", "live_units") if top else None
    if s1 and s100 and live:
        held = live >= top
        out.append((
            "wrap the LLM call in `Async` and plain `Net::HTTP` yields by itself",
            f"{nn(top)} conversations alive at once in one thread ({num(live)} measured); 100 "
            f"users of a 210 ms conversation served in {d.span('starve/ruby-async/fixed-x0.25/n=100', 'seconds', lambda x: f'{x:.2f} s')}, "
            f"one alone in {s1:.2f} s: **{s100 / s1:.1f}x** one conversation's time, not 100x "
            f"(the pool of 25: {d.v('starve/ruby-pool25/fixed-x0.25/n=100', 'seconds'):.2f} s)",
            ("**holds**" if held and s100 / s1 < 10 else "**does not hold**") +
            " (Async 1.30 has no `address_resolve` hook: a host-name lookup blocks the reactor; "
            "not measured, the benchmarks dial 127.0.0.1)"))

    # 2. memory per conversation: judged only where both models held N alive at once
    parts, hits, conds = [], [], []
    for n in ns_mem:
        tc, ac = f"{L.format('ruby-thread')}/n={n}", f"{L.format('ruby-async')}/n={n}"
        t, a = d.v(tc, "bytes_per_unit"), d.v(ac, "bytes_per_unit")
        lt, la = d.v(tc, "live_units") or 0, d.v(ac, "live_units") or 0
        rng3 = ratio_range(d, None, tc, ac, "bytes_per_unit")
        if lt >= n and la >= n:
            parts.append(f"**{rr(rng3)}** at {nn(n)} ({kib(t)} vs {kib(a)})")
            hits.append(judge(rng3[1], rng3[2]))
            conds.append(nn(n))
        else:
            parts.append(f"{xr(t / a)} at {nn(n)} ({kib(t)} vs {kib(a)}; not judged: alive at "
                         f"once {num(lt)} threads, {num(la)} Async, of {nn(n)})")
    ct = d.v(f"{L.format('c-thread')}/n={top}", "bytes_per_unit")
    cf = d.v(f"{L.format('c-fiber')}/n={top}", "bytes_per_unit")
    ra = d.v(f"{L.format('ruby-async')}/n={top}", "bytes_per_unit")
    one_c = d.one(f"{L.format('c-fiber')}/n={top}", "bytes_per_unit")
    if parts and ct and cf and ra:
        out.append((
            "fibers make a conversation cheaper in memory",
            "RSS growth + kernel estimate per live conversation, Ruby threads / Ruby Async "
            "(range: the rows' min and max): " +
            ", ".join(parts) + f". C at {nn(top)}: threads {kib(ct)}, fibers **{kib(cf)}** "
            f"({xr(ct / cf)}){one_c}; "
            f"Ruby Async = {xr(ra / cf)} a C fiber",
            verdict(hits, conds, "at N =") if conds else
            "**not judged** (at no N did both models hold N alive at once)"))

    # 3. CPU per token: paced (tokens one per event), setup excluded
    M = "llm/{}/" + MARGINAL
    mt = d.v(M.format("ruby-thread"), "cpu_per_1k_tokens_marginal_ms")
    ma = d.v(M.format("ruby-async"), "cpu_per_1k_tokens_marginal_ms")
    mp = d.v(M.format("ruby-pool25"), "cpu_per_1k_tokens_marginal_ms")
    mh = d.v(M.format("ruby-async-http"), "cpu_per_1k_tokens_marginal_ms")
    mc = [d.v(M.format(c), "cpu_per_1k_tokens_marginal_ms") for c in ("c-thread", "c-fiber")]
    f1 = lambda x: f"{x:.1f} ms"
    if mt and ma and all(mc):
        setup, shits = [], []
        for n in sorted(ns_mem, reverse=True):
            t3 = ratio_range(d, f"llm/ratio/ruby-thread-over-ruby-async/gpt4o-5tps/n={n}/cpu-per-token")
            if t3 is None:
                continue
            setup.append((n, t3))
            shits.append(judge(t3[1], t3[2]))
        setup_txt = "; ".join(f"{rr(t3)} at {nn(n)}" for n, t3 in setup)
        t10 = d.v(f"{L.format('ruby-thread')}/n={top}", "cpu_per_1k_tokens_ms")
        a10 = d.v(f"{L.format('ruby-async')}/n={top}", "cpu_per_1k_tokens_ms")
        # the same-run ratios (their median and range), not a ratio of medians
        rm = ratio_range(d, "llm/ratio/ruby-thread-over-ruby-async/" + MARGINAL.replace(
            "/marginal-16-64-tokens", "/cpu-per-token-marginal"), M.format("ruby-thread"),
            M.format("ruby-async"), "cpu_per_1k_tokens_marginal_ms")
        per_tok = judge(rm[1], rm[2])
        with_setup = [nn(n) for (n, _), h in zip(setup, shits) if h is True]
        if per_tok is True:
            v = "**holds**"
        elif per_tok is None:
            v = f"**inconclusive per token** (threads/Async {rr(rm)}, the range straddles {RULE}x)"
        elif with_setup:
            v = (f"**does not hold per token** (threads/Async {rr(rm)}); **holds only "
                 f"with setup, at N = {', '.join(with_setup)}** (thread creation under the GVL)")
        else:
            v = f"**does not hold** (threads/Async {rr(rm)} per token)"
        src = (" (from the bounded marginal run `"
               + os.path.relpath(d.marginal_from, os.path.dirname(os.path.dirname(HERE)))
               + "`)") if d.marginal_from else ""
        out.append((
            "fibers are cheaper per token",
            f"tokens paced one per event (50 tokens/s, 100 streams, 16 vs 64 tokens){src}, "
            f"client CPU per 1,000 more tokens: Ruby threads **{d.span(M.format('ruby-thread'), 'cpu_per_1k_tokens_marginal_ms', f1)}**, "
            f"the pool {f1(mp) if mp else '?'}, Async **{d.span(M.format('ruby-async'), 'cpu_per_1k_tokens_marginal_ms', f1)}**"
            + (f", Async::HTTP {f1(mh)}" if mh else "") +
            f"; C threads {f1(mc[0])}{d.one(M.format('c-thread'), 'cpu_per_1k_tokens_marginal_ms')}, "
            f"C fibers {f1(mc[1])}{d.one(M.format('c-fiber'), 'cpu_per_1k_tokens_marginal_ms')}. "
            f"With setup, gpt-4o timing: threads {t10:.0f} vs Async "
            f"{a10:.0f} ms per 1,000 tokens at {nn(top)} (thread/Async per run: {setup_txt})",
            v))

    # 4. slot starvation
    S = "starve/{}/fixed-x0.25/n={}"
    sn = [n for n in (100, 1000) if d.rows.get((S.format("ruby-pool25", n), "ttft_rest_p99_ms"))]
    hits, parts = [], []
    for n in sn:
        p = d.v(S.format("ruby-pool25", n), "ttft_rest_p99_ms")
        a = d.v(S.format("ruby-async", n), "ttft_rest_p99_ms")
        c = d.v(S.format("c-fiber", n), "ttft_rest_p99_ms")
        t3 = ratio_range(d, None, S.format("ruby-pool25", n), S.format("ruby-async", n),
                         "ttft_rest_p99_ms")
        hits.append(judge(t3[1], t3[2]))
        parts.append(f"users 26..{nn(n)} p99 **{msec(p)}** on the pool, **{msec(a)}** on Async, "
                     f"{msec(c)} on C fibers")
    if sn:
        u_p = d.v(S.format("ruby-pool25", 100), "ttft_user26_ms")
        u_a = d.v(S.format("ruby-async", 100), "ttft_user26_ms")
        u_c = d.v(S.format("c-fiber", 100), "ttft_user26_ms")
        big = max(sn)
        ap50 = d.v(S.format("ruby-async", big), "ttft_rest_p50_ms")
        cp50 = d.v(S.format("c-fiber", big), "ttft_rest_p50_ms")
        a26 = d.v(S.format("ruby-async", big), "ttft_user26_ms")
        out.append((
            "a 25-thread pool starves the 26th user; fibers do not",
            f"users arrive at once, 210 ms conversations: with 100 users the pool's 26th waits "
            f"**{msec(u_p)}** (Async {msec(u_a)}, C fibers {msec(u_c)}); " + "; ".join(parts),
            verdict(hits, [nn(n) for n in sn], "with") +
            f"; at {nn(big)} users Async is CPU-bound: median first token {msec(ap50)} "
            f"(C fibers {msec(cp50)}), its 26th user {msec(a26)}"))

    # 5. Puma vs an Async server
    R = "relay/{}/gpt4o-5tps/n={}"
    rn = [n for n in (100, 1000) if d.rows.get((R.format("async-http-server", n), "completed_count"))]
    if rn:
        def done(impl):
            return " / ".join(num(d.v(R.format(impl, n), "completed_count") or 0) for n in rn)
        def better(puma, n):
            """(met / missed / None inconclusive, median ratio, its range): Async's
            completed streams over Puma's, on the rows' min-max range"""
            a = d.get(R.format("async-http-server", n), "completed_count")
            p = d.get(R.format(puma, n), "completed_count")
            if not (a and p):
                return False, 0.0, "?"
            am, alo, ahi = (float(a[k]) for k in ("median", "min", "max"))
            pm, plo, phi = (float(p[k]) for k in ("median", "min", "max"))
            inf = float("inf")
            lo = alo / phi if phi else inf
            hi = ahi / plo if plo else inf
            r = am / pm if pm else inf
            return judge(lo, hi), r, rr((r, lo, hi))
        big = max(rn)
        d5 = [better("puma-5", n) for n in rn]
        d25 = [better("puma-25", n) for n in rn]
        if all(h is True for h, _, _ in d5 + d25):
            rv = "**holds**"
        elif all(h is True for h, _, _ in d5):
            miss = [f"{nn(n)} users: {t}" for n, (h, _, t) in zip(rn, d25) if h is not True]
            got = [nn(n) for n, (h, _, _) in zip(rn, d25) if h is True]
            rv = ("**holds against Puma's default (5 threads); against 25 threads only with "
                  f"{', '.join(got)} users** ({'; '.join(miss)} more streams completed)"
                  if got else "**holds only against Puma's default (5 threads)**")
        elif any(h is True for h, _, _ in d5):
            got = [nn(n) for n, (h, _, _) in zip(rn, d5) if h is True]
            unsure = [f"Puma {k} threads, {nn(n)} users: {t}"
                      for k, dd in (("5", d5), ("25", d25))
                      for n, (h, _, t) in zip(rn, dd) if h is None]
            rv = (f"**holds against Puma's default (5 threads) with {', '.join(got)} users**"
                  + (f"; **inconclusive** ({'; '.join(unsure)} more streams completed: the "
                     "per-run range straddles 1.5x)" if unsure else ""))
        elif any(h is None for h, _, _ in d5 + d25):
            rv = "**inconclusive** (the per-run range straddles 1.5x)"
        else:
            rv = "**does not hold**"
        g = lambda impl, m: d.v(R.format(impl, big), m)
        base = g("async-http-server", "rss_bytes")
        hwm = g("async-http-server", "vm_hwm_bytes")
        comp = g("async-http-server", "completed_count")
        out.append((
            "deploy on Falcon (an Async server), not Puma",
            f"an app relaying each user's stream from mock-llm (~1 s, 3 tokens), users give up "
            f"after 3 s; streams completed of {' / of '.join(nn(n) for n in rn)}: Puma 5 threads "
            f"(its default) **{done('puma-5')}**, Puma 25 threads **{done('puma-25')}**, "
            f"Async::HTTP server **{done('async-http-server')}**, C threads {done('c-thread')}"
            f"{d.one(R.format('c-thread', big), 'completed_count')}, "
            f"C fibers {done('c-fiber')}{d.one(R.format('c-fiber', big), 'completed_count')}. "
            f"At {nn(big)}: first token p50 Async "
            f"{msec(g('async-http-server', 'ttft_p50_ms'))}, C {msec(g('c-thread', 'ttft_p50_ms'))}"
            f" (threads), {msec(g('c-fiber', 'ttft_p50_ms'))} (fibers)"
            f"{d.one(R.format('c-fiber', big), 'ttft_p50_ms')}; server CPU per 1,000 "
            f"tokens Puma-25 {g('puma-25', 'cpu_per_1k_tokens_ms'):,.0f} ms, Async "
            f"{g('async-http-server', 'cpu_per_1k_tokens_ms'):,.0f} ms, C "
            f"{g('c-fiber', 'cpu_per_1k_tokens_ms'):,.0f}-{g('c-thread', 'cpu_per_1k_tokens_ms'):,.0f} ms"
            f"{d.one(R.format('c-fiber', big), 'cpu_per_1k_tokens_ms')}; "
            f"peak RSS Async {hwm / 1048576:.0f} MiB ({(hwm - base) / 1024 / max(comp, 1):.0f} KiB "
            f"per completed stream over its {base / 1048576:.0f} MiB), Puma "
            f"{rng(g('puma-5', 'vm_hwm_bytes') / 1048576, g('puma-25', 'vm_hwm_bytes') / 1048576)} MiB "
            f"holding 5-25 streams, C fibers {g('c-fiber', 'vm_hwm_bytes') / 1048576:.0f} MiB"
            f"{d.one(R.format('c-fiber', big), 'vm_hwm_bytes')}",
            rv))

    # 6. ten thousand conversations
    if top:
        g = lambda impl, m: d.v(f"{L.format(impl)}/n={top}", m)
        rt_done, ra_done = g("ruby-thread", "completed_count"), g("ruby-async", "completed_count")
        # threads "break" when they hit a limit (a limit_units row) or complete 1.5x fewer
        # conversations than Async: a straggler past the timeout on a busy machine is not it
        limit = any(c.startswith(f"{L.format('ruby-thread')}/n={top}/limit=") for c, _ in d.rows)
        broke = limit or (ra_done or 0) >= RULE * (rt_done or 0)
        # what the threads' extra cost is instead: their first token against Async's, the
        # same run's rows (ratio of medians, range from the rows' min and max)
        tc6, ac6 = f"{L.format('ruby-thread')}/n={top}", f"{L.format('ruby-async')}/n={top}"
        w6 = ratio_range(d, None, tc6, ac6, "ttft_p50_ms")
        cf6 = g("c-fiber", "ttft_p50_ms")
        lo6 = min(g("ruby-thread", "ttft_p50_ms"), g("ruby-async", "ttft_p50_ms"))
        if w6 is None:
            later = ""
        else:
            j6 = judge(w6[1], w6[2])
            later = (f"; they are slower, not broken: first token p50 threads / Async "
                     f"{rr(w6)}" + (" (the whole range at or above 1.5x)"
                                    if j6 is True else
                                    " (the range straddles 1.5x)" if j6 is None else
                                    " (under 1.5x)" if w6[0] >= 1 else
                                    " (Async's is the later one)"))
        out.append((
            f"thousands of conversations are where threads break",
            f"{nn(top)} users at once: completed {num(rt_done)} (Ruby threads), {num(ra_done)} "
            f"(Async); first token p50 **{msec(g('ruby-thread', 'ttft_p50_ms'))}** and "
            f"**{msec(g('ruby-async', 'ttft_p50_ms'))}**, on {g('ruby-thread', 'cpu_s'):.1f} s and "
            f"{g('ruby-async', 'cpu_s'):.1f} s of CPU on one GVL-bound core; Ruby threads never had "
            f"more than {num(g('ruby-thread', 'live_units'))} alive at once (the creating thread "
            f"waits for the GVL). C threads: {num(g('c-thread', 'live_units'))} alive, p50 "
            f"{msec(g('c-thread', 'ttft_p50_ms'))}"
            f"{d.one(L.format('c-thread') + f'/n={top}', 'ttft_p50_ms')}; "
            f"C fibers {msec(g('c-fiber', 'ttft_p50_ms'))}"
            f"{d.one(L.format('c-fiber') + f'/n={top}', 'ttft_p50_ms')}",
            "**holds**" if broke else
            f"**does not hold as stated**: Ruby threads completed {num(rt_done)} of {nn(top)} "
            f"with no limit hit{later}; the wall in Ruby 3.1 is the interpreter's CPU: the "
            f"faster Ruby model's first token is {xr(lo6 / cf6)} C fibers' "
            f"{d.one(L.format('c-fiber') + f'/n={top}', 'ttft_p50_ms').strip() or '(same run)'}; "
            "C threads go there fine"))
    return out


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 0 if len(argv) == 2 and argv[1] in ("-h", "--help") else 2
    path = argv[1] if len(argv) == 2 else default_csv()[0]
    try:
        d = Rows(path)
    except OSError as e:
        print(f"claims.py: {e}", file=sys.stderr)
        return 2
    rows = table(d)
    print("| the post says | measured here | verdict |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if d.missing:
        print("claims.py: missing rows: " + "; ".join(sorted(set(d.missing))), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
