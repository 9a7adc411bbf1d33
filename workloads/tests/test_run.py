#!/usr/bin/env python3
"""workloads/tests/test_run.py - the harness's own arithmetic and labels, without running
anything: wrk's output parsed (a run with no answer has no latency), the marginal CPU per
token and its thread/fiber ratio per round, the generator-bound flag, where each HTTP
server is placed and how fiber-mt is labelled, and median/min/max over runs.
Python 3 standard library only; CTest workloads_harness."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import run  # noqa: E402

WRK_OK = """Running 1s test @ http://127.0.0.1:40000/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   720.00us  100.00us   5.00ms   90.00%
  Latency Distribution
     50%  700.00us
     75%  750.00us
     90%  800.00us
     99%    1.20ms
  139000 requests in 1.00s, 16.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
Requests/sec: 139000.00
"""

WRK_NONE = """Running 2s test @ http://127.0.0.1:40000/
  1 threads and 10000 connections
  Latency Distribution
     50%    0.00us
     99%    0.00us
  0 requests in 2.00s, 0.00B read
Requests/sec:      0.00
"""


def rows(tab):
    return {(k[0], k[5]): v for k, v in tab.rows.items()}


class Wrk(unittest.TestCase):
    def test_parse(self):
        r = run.parse_wrk(WRK_OK)
        self.assertEqual(r["rps"], 139000.0)
        self.assertAlmostEqual(r["p50"], 0.7)
        self.assertAlmostEqual(r["p99"], 1.2)
        self.assertEqual(r["requests"], 139000)
        self.assertEqual(r["errors"], 5)
        self.assertEqual(r["timeouts"], 2)

    def test_no_answer_has_no_latency_to_record(self):
        r = run.parse_wrk(WRK_NONE)
        self.assertEqual(r["rps"], 0.0)
        self.assertEqual(r["requests"], 0)  # the harness then records no p50/p99


def conv(cpu_s, tokens, failed=0):
    return {"cpu_s": cpu_s, "tokens": tokens, "failed": failed, "cpu_s_per_1k_tokens":
            cpu_s / (tokens / 1000), "rss_peak_kib": 1000}


class Marginal(unittest.TestCase):
    def test_per_round_difference_over_difference(self):
        hi, lo = run.STREAMS_HI, run.STREAMS_LO
        tab = run.Table("llm")
        per_run = {
            # thread: 2.0 s at 200,000 tokens, 1.2 s at 20,000: 0.8 s / 180k = 4.444 ms per 1k
            # fiber: 1.0 s and 0.64 s: 0.36 s / 180k = 2.0 ms per 1k -> ratio 2.222
            0: {("thread", hi): conv(2.0, 200000), ("thread", lo): conv(1.2, 20000),
                ("fiber", hi): conv(1.0, 200000), ("fiber", lo): conv(0.64, 20000)},
            # a round whose low run failed gives no marginal for that model, and no ratio
            1: {("thread", hi): conv(2.0, 200000), ("thread", lo): conv(1.2, 20000, failed=3),
                ("fiber", hi): conv(1.0, 200000), ("fiber", lo): conv(0.64, 20000)},
        }
        run.add_marginal(tab, "gpt4o-5tps", 10000, per_run, ["thread", "fiber"])
        r = rows(tab)
        case = f"llm/thread/gpt4o-5tps/n=10000/marginal-{lo}-{hi}-tokens"
        self.assertEqual(len(r[(case, "cpu_per_1k_tokens_marginal_ms")]), 1)
        self.assertAlmostEqual(r[(case, "cpu_per_1k_tokens_marginal_ms")][0], 0.8 / 180 * 1000)
        fcase = f"llm/fiber/gpt4o-5tps/n=10000/marginal-{lo}-{hi}-tokens"
        self.assertEqual(len(r[(fcase, "cpu_per_1k_tokens_marginal_ms")]), 2)
        q = r[("llm/ratio/thread-over-fiber/gpt4o-5tps/n=10000/cpu-per-token-marginal", "ratio")]
        self.assertEqual(len(q), 1)
        self.assertAlmostEqual(q[0], (0.8 / 180) / (0.36 / 180))


class Http(unittest.TestCase):
    def test_placement_and_labels(self):
        gen, srv, pin = run.placement(2)
        self.assertEqual((gen, srv), (0, 1))
        for m in ("thread", "pool", "fiber", "nginx"):
            self.assertEqual(pin[m], "1")  # every single-CPU server pinned alike
        self.assertEqual(pin["fiber-mt"], "0-1")
        self.assertEqual(run.http_impl("fiber", pin), "fiber")
        self.assertEqual(run.http_impl("nginx", pin), "nginx-1worker")
        self.assertEqual(run.http_impl("fiber-mt", pin), "fiber-mt/cpus=0-1")
        gen, _, pin = run.placement(1)
        self.assertIsNone(gen)
        self.assertEqual(run.http_impl("fiber-mt", pin), "fiber-mt")

    def test_generator_bound_flag(self):
        tab = run.Table("throughput")
        run.add_gen(tab, "a", "fiber", "fiber", 100, 95.0, 0.95, "a")
        run.add_gen(tab, "b", "fiber", "fiber", 100, 60.0, 0.6, "b")
        r = rows(tab)
        self.assertEqual(r[("a", "generator_bound_count")], [1.0])
        self.assertEqual(r[("b", "generator_bound_count")], [0.0])
        self.assertEqual(r[("a", "generator_cpu_percent")], [95.0])


class Table(unittest.TestCase):
    def test_median_min_max_runs(self):
        tab = run.Table("throughput")
        for v in (3.0, 1.0, 2.0):
            tab.add("http/fiber/hello/c=100", "fiber", "fiber", "concurrency", 100,
                    "req_per_s", "req/s", v)
        with tempfile.TemporaryDirectory() as d:
            path = tab.write(d, [])
            with open(path) as f:
                lines = f.read().splitlines()
        self.assertEqual(lines[1], "throughput,http/fiber/hello/c=100,fiber,fiber,concurrency,"
                                   "100,req_per_s,req/s,2,1,3,3")


if __name__ == "__main__":
    unittest.main(verbosity=2)
