#!/usr/bin/env python3
"""peers/peerlib.py's row makers (CTest peers_peerlib), a fraction of a second: the
marginal CPU per token and the same-round ratios both harnesses share, and the mock-llm
CPU rows of record_client. Nothing is run; a fake table collects the rows."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import peerlib  # noqa: E402


class Tab:
    def __init__(self):
        self.rows = {}

    def add(self, case, model, impl, param, value, metric, unit, v):
        self.rows[(case, metric)] = (model, impl, unit, v)


def run(cpu_s, tokens, failed=0):
    return {"cpu_s": cpu_s, "tokens": tokens, "failed": failed,
            "cpu_s_per_1k_tokens": cpu_s / tokens * 1000, "rss_peak_kib": 1000 * cpu_s}


class PeerlibTest(unittest.TestCase):
    def test_marginal_leaves_setup_out(self):
        t = Tab()
        # 100 conversations, 16 and 64 tokens: 4,800 more tokens for 0.048 / 0.096 s more
        js = {("a", 16): run(0.5, 1600), ("a", 64): run(0.548, 6400),
              ("b", 16): run(0.2, 1600), ("b", 64): run(0.296, 6400),
              ("c", 16): run(0.2, 1600), ("c", 64): run(0.9, 6400, failed=1)}
        peerlib.marginal(t, "fixed-50tps", 100, (16, 64), ["a", "b", "c"], js,
                         [("b", "a"), ("c", "a")], lambda i: "m-" + i, lambda i, j: "i-" + i)
        a = t.rows[("llm/a/fixed-50tps/n=100/marginal-16-64-tokens", "cpu_per_1k_tokens_marginal_ms")]
        self.assertEqual(a[:3], ("m-a", "i-a", "ms"))
        self.assertAlmostEqual(a[3], 10.0)  # 48 ms per 4,800 tokens: 10 ms per 1,000
        r = t.rows[("llm/ratio/b-over-a/fixed-50tps/n=100/cpu-per-token-marginal", "ratio")]
        self.assertAlmostEqual(r[3], 2.0)
        # a run with a failed conversation gives no marginal, and so no ratio
        self.assertNotIn(("llm/c/fixed-50tps/n=100/marginal-16-64-tokens",
                          "cpu_per_1k_tokens_marginal_ms"), t.rows)
        self.assertNotIn(("llm/ratio/c-over-a/fixed-50tps/n=100/cpu-per-token-marginal",
                          "ratio"), t.rows)

    def test_ratios(self):
        t = Tab()
        peerlib.ratios(t, "gpt4o-5tps", 1000, {"a": run(1.0, 1000), "b": run(3.0, 1000)},
                       [("b", "a"), ("x", "a")], lambda i: i, lambda i, j: i)
        self.assertAlmostEqual(t.rows[("llm/ratio/b-over-a/gpt4o-5tps/n=1000/cpu-per-token",
                                       "ratio")][3], 3.0)
        self.assertAlmostEqual(t.rows[("llm/ratio/b-over-a/gpt4o-5tps/n=1000/rss", "ratio")][3], 3.0)
        self.assertEqual(len(t.rows), 2)  # no row for a pair with a side missing

    def test_mock_cpu_rows(self):
        t = Tab()
        j = {"ok": 10, "failed": 0, "tokens_per_s": 1.0, "ttft_p50_ms": 1, "ttft_p99_ms": 2,
             "total_p50_ms": 3, "rss_peak_kib": 100, "kernel_est_kib": 0, "peak_live": 10,
             "rss_base_kib": 50, "cpu_s": 0.1, "tokens": 100, "cpu_s_per_1k_tokens": 1.0,
             "causes": {}, "spawn_failed": False, "mock_cpu_s": 1.8, "elapsed_s": 2.0}
        peerlib.record_client(t, "llm/x/p/n=10", "m", "i", 10, j)
        self.assertEqual(t.rows[("llm/x/p/n=10", "mock_cpu_s")][2:], ("s", 1.8))
        self.assertEqual(t.rows[("llm/x/p/n=10", "mock_cpu_percent")][2:], ("percent", 90.0))
        del j["mock_cpu_s"]
        t = Tab()
        peerlib.record_client(t, "llm/x/p/n=10", "m", "i", 10, j)
        self.assertNotIn(("llm/x/p/n=10", "mock_cpu_s"), t.rows)


if __name__ == "__main__":
    unittest.main()
