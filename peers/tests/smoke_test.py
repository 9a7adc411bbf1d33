#!/usr/bin/env python3
"""The Python, Go and Node peers' smoke tests (CTest peers_python_smoke, peers_go_smoke,
peers_node_smoke), seconds each:

    smoke_test.py python|go|node

- peers/bench.py --smoke for that runtime: every one of its client models and C fibers
  at N=5 against mock-llm, the micro protocol at its tiny size (Python, Go); the CSV
  passes scripts/check_results.py --strict; every conversation completed; an
  asynchronous model held all of them at once;
- what the client sends: against a recording stand-in LLM, conversation i POSTs a
  streaming chat request for "Conversation i" with 'x-mock-request-index: i';
- the same draws: against a mock-llm that injects 503s (retry-after 10 ms) and error
  frames, each client's outcome per conversation (completed or not, attempts) is the
  Python thread client's, index by index - the draws follow the index, not arrival
  order - and failures are counted by cause, the run does not stop;
- bad input: a non-loopback target or N=0 is refused with exit 2 and a message; a
  refused connection is a counted failure (ECONNREFUSED), not a crash;
- Python: when a thread cannot be started (address space capped with prlimit), the
  conversations it would have run are counted as not started and the run becomes a
  limit_units row.

Needs build/bin (WL_BIN: wl-llm, mock-llm) and the runtime: when it is missing it is
installed as root (scripts/deps.sh peers), otherwise the test exits 77 (CTest: skipped)
saying so. Loopback only, ephemeral ports, temporary directories.
"""
import csv
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.dirname(HERE)
TOP = os.path.dirname(PEERS)
BIN = os.path.abspath(os.environ.get("WL_BIN", os.path.join(TOP, "build", "bin")))
sys.path.insert(0, PEERS)
import peerlib  # noqa: E402
from peerlib import wl  # noqa: E402

PY = "/usr/bin/python3"
NPM_CACHE = os.environ.get("FIBERBENCH_NPM_CACHE",
                           os.path.expanduser("~/.cache/fiberbench/npm"))
RT = sys.argv[1] if len(sys.argv) > 1 else ""
# the client models of each runtime: impl key -> argv before the common options
IMPLS = {
    "python": {f"py-{m}": [PY, os.path.join(PEERS, "python", "llm_client.py"), "--model", m]
               for m in ("thread", "asyncio", "httpx", "aiohttp")},
    "go": {"go-goroutine": [os.path.join(BIN, "peer-go-llm")]},
    "node": {"node-openai": ["node", os.path.join(PEERS, "node", "llm_client.js")]},
}
REFERENCE = IMPLS["python"]["py-thread"]


def node_env():
    return dict(os.environ, NODE_PATH=os.path.join(NPM_CACHE, "node_modules"))


def ready(rt):
    """None when the runtime can run here, else why not."""
    if not os.access(PY, os.X_OK):
        return f"no {PY}"
    if rt == "python":
        r = subprocess.run([PY, "-c", "import httpx, aiohttp"], capture_output=True)
        return None if r.returncode == 0 else "python3-httpx / python3-aiohttp missing"
    if rt == "go":
        if os.access(os.path.join(BIN, "peer-go-llm"), os.X_OK):
            return None
        r = subprocess.run([os.path.join(PEERS, "go", "build.sh"), BIN], capture_output=True,
                           text=True)
        return None if r.returncode == 0 else "no go toolchain: " + r.stderr.strip()[-150:]
    if rt == "node":
        if not shutil.which("node"):
            return "no node"
        if not os.path.isfile(os.path.join(NPM_CACHE, "node_modules", "openai", "package.json")):
            return f"the openai npm SDK is not in {NPM_CACHE}"
        return None
    return f"unknown runtime '{rt}'"


def ensure(rt):
    why = ready(rt)
    if why and os.geteuid() == 0:
        subprocess.run([os.path.join(TOP, "scripts", "deps.sh"), "peers"])
        why = ready(rt)
    if why:
        print(f"peers_{rt}_smoke: SKIPPED: {why} "
              f"({'scripts/deps.sh peers did not fix it' if os.geteuid() == 0 else 'as root: scripts/deps.sh peers'})")
    return why is None


def run_client(argv, port, n, extra=(), timeout=60):
    """Runs one client; returns (exit code, its JSON or None, stderr)."""
    p = subprocess.run(argv + ["--target", f"127.0.0.1:{port}", "--n", str(n)] + list(extra),
                       capture_output=True, text=True, timeout=timeout,
                       env=node_env() if argv[0] == "node" else None)
    j = next((json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")), None)
    return p.returncode, j, p.stderr


def per_conv(path):
    with open(path) as f:
        return {int(r["index"]): (r["ok"], r["attempts"]) for r in csv.DictReader(f)}


class Recorder(http.server.ThreadingHTTPServer):
    """A stand-in LLM that records each request and answers a short SSE stream."""
    daemon_threads = True

    def __init__(self, hold_s=0.0, cut=False):
        """hold_s: each answer waits that long (or until release is set) first, so
        that many conversations are open at once. cut: the stream ends after its first
        delta, with no usage chunk and no [DONE] (a stream cut short)."""
        self.got = []
        self.mu = threading.Lock()
        self.release = threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.mu:
                    outer.got.append((self.path, dict((k.lower(), v) for k, v in
                                                      self.headers.items()), body))
                if hold_s > 0:
                    outer.release.wait(hold_s)
                ev = (b'data: {"id":"x","object":"chat.completion.chunk","created":1,'
                      b'"model":"mock","choices":[{"index":0,"delta":{"content":"Hi"},'
                      b'"finish_reason":null}]}\n\n'
                      b'data: {"id":"x","object":"chat.completion.chunk","created":1,'
                      b'"model":"mock","choices":[],"usage":{"prompt_tokens":3,'
                      b'"completion_tokens":1,"total_tokens":4}}\n\ndata: [DONE]\n\n')
                if cut:
                    ev = ev[:ev.index(b"\n\n") + 2]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(ev)))
                if cut:
                    self.send_header("connection", "close")  # cut: nothing more comes
                self.end_headers()
                self.wfile.write(ev)

        super().__init__(("127.0.0.1", 0), H)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.shutdown()
        self.server_close()


class PeerSmoke(unittest.TestCase):
    def test_bench_smoke(self):
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([sys.executable, os.path.join(PEERS, "bench.py"), "--smoke",
                                "--runtimes", RT, "--require", "--bin", BIN, "--out", out],
                               capture_output=True, text=True, timeout=150)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            path = os.path.join(out, "peers.csv")
            c = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "check_results.py"),
                                "--strict", path], capture_output=True, text=True)
            self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
            with open(path) as f:
                rows = list(csv.DictReader(f))
            got = {(x["case"], x["metric"]): float(x["median"]) for x in rows}
            impl_col = {x["case"]: x["impl"] for x in rows}
            for impl in list(IMPLS[RT]) + ["c-fiber"]:
                case = f"llm/{impl}/gpt4o-fast/n=5"
                self.assertEqual(got.get((case, "completed_count")), 5, f"{impl}: {r.stderr[-1500:]}")
                self.assertGreater(got.get((f"llm/{impl}/fixed-50tps/n=5/marginal-4-16-tokens",
                                            "cpu_per_1k_tokens_marginal_ms"), -1e9), -1e9, impl)
                if impl != "py-thread":  # every asynchronous unit alive at once
                    self.assertEqual(got[(case, "live_units")], 5, impl)
                # the runtime and its version in the impl column
                if not impl.startswith("c-"):
                    self.assertRegex(impl_col[case], r"^(python|go|node)-\d+\.\d+", impl)
            self.assertFalse([x for x in rows if x["metric"] == "limit_units"])
            with open(os.path.join(out, "peers.machine.txt")) as f:
                machine = f.read()
            self.assertIn("mode: smoke", machine)
            self.assertRegex(machine, {"python": r"python: python 3\.\d+", "go": r"go: go version go1",
                                       "node": r"node: node v\d+.*openai \d"}[RT])
            if RT in ("python", "go"):
                models = {"python": ("python-thread", "python-asyncio"),
                          "go": ("go-locked-thread", "go-goroutine")}[RT]
                for m in models:
                    for what, metric in (("alloc", "us_per_unit"), ("switch", "us_per_switch"),
                                         ("throughput", "units_per_s")):
                        hit = [x for x in rows if x["model"] == m and x["metric"] == metric and
                               f"/{what}/" in x["case"] and x["case"].startswith("seed/")]
                        self.assertEqual(len(hit), 1, f"{m} {what}")
                        # pinned, and said so in the impl, as C's cpu=same cases
                        self.assertTrue(hit[0]["impl"].endswith("/cpu=same"), hit[0]["impl"])
                        self.assertGreater(float(hit[0]["median"]), 0)
                self.assertTrue([x for x in rows if x["case"].startswith("seed/ratio/")])

    def test_sends_index_and_chat_request(self):
        rec = Recorder()
        try:
            for impl, argv in IMPLS[RT].items():
                rec.got.clear()
                rc, j, err = run_client(argv, rec.port, 3, ["--max-tokens", "7", "--timeout", "20"])
                self.assertEqual(rc, 0, f"{impl}: {err[-800:]}")
                self.assertEqual((j["ok"], j["failed"]), (3, 0), f"{impl}: {j}")
                seen = {}
                for path, h, body in rec.got:
                    self.assertEqual(path, "/v1/chat/completions", impl)
                    req = json.loads(body)
                    self.assertIs(req["stream"], True, impl)
                    self.assertEqual(req["max_tokens"], 7, impl)
                    i = int(h["x-mock-request-index"])
                    self.assertEqual(req["messages"][-1]["content"],
                                     f"Conversation {i}: tell me about fibers.", impl)
                    seen[i] = seen.get(i, 0) + 1
                self.assertEqual(seen, {0: 1, 1: 1, 2: 1}, impl)
        finally:
            rec.close()

    def test_prompt_bytes(self):
        """--prompt-bytes pads each prompt to that many bytes (the same rule in every
        client: real requests carry kilobytes of prompt); 0 keeps the short one; a bad
        value is refused with exit 2."""
        rec = Recorder()
        try:
            for impl, argv in IMPLS[RT].items():
                rec.got.clear()
                rc, j, err = run_client(argv, rec.port, 2, ["--max-tokens", "7", "--timeout", "20",
                                                            "--prompt-bytes", "4096"])
                self.assertEqual(rc, 0, f"{impl}: {err[-800:]}")
                self.assertEqual(j["ok"], 2, f"{impl}: {j}")
                for _, h, body in rec.got:
                    c = json.loads(body)["messages"][-1]["content"]
                    i = int(h["x-mock-request-index"])
                    self.assertEqual(len(c.encode()), 4096, impl)
                    self.assertTrue(c.startswith(f"Conversation {i}: tell me about fibers. fibers "),
                                    impl)
                    self.assertEqual(c, "Conversation %d: tell me about fibers. " % i +
                                     ("fibers " * 600)[:4096 - len("Conversation %d: tell me about fibers. " % i)],
                                     impl)
                rc, _, err = run_client(argv, rec.port, 1, ["--prompt-bytes", "-1"])
                self.assertEqual(rc, 2, f"{impl}: {err}")
        finally:
            rec.close()

    def test_cut_stream_is_not_completed(self):
        """A stream that ends after a delta but before [DONE] is a failed conversation
        for every client, as for the C one (the Node client counted it completed when it
        had seen a delta: peers/review/FINDINGS.md, finding 9; seen failing before)."""
        rec = Recorder(cut=True)
        try:
            for impl, argv in IMPLS[RT].items():
                rc, j, err = run_client(argv, rec.port, 2, ["--max-tokens", "7", "--timeout", "10",
                                                            "--retries", "0"])
                self.assertEqual(rc, 0, f"{impl}: {err[-800:]}")
                self.assertEqual((j["ok"], j["failed"]), (0, 2), f"{impl}: {j}")
        finally:
            rec.close()

    def test_same_draws_and_counted_failures(self):
        """503s (retried after retry-after-ms), error frames and cut streams, drawn per
        request index:
        every client meets the same ones, so its per-conversation outcomes are the
        Python thread client's; failures are counted by cause."""
        mock = wl.Server("mock-llm", [os.path.join(BIN, "mock-llm"), "--listen", "127.0.0.1:0",
                                      "--seed", "11", "--profile", "gpt-4o", "--tps", "50",
                                      "--ttft-ms", "20", "--error-rate", "0.3",
                                      "--error-statuses", "503", "--retry-after-ms", "10",
                                      "--midstream-error-rate", "0.1",
                                      "--disconnect-rate", "0.1"])
        tmp = tempfile.mkdtemp(prefix="fiberbench-peers-test-")
        try:
            n = 40
            opts = ["--max-tokens", "4", "--timeout", "20"]
            ref_pc = os.path.join(tmp, "ref.csv")
            rc, ref, err = run_client(REFERENCE, mock.port, n, opts + ["--per-conv", ref_pc])
            self.assertEqual(rc, 0, err[-800:])
            # the injected failures happened, and were retried where retry helps
            self.assertGreater(ref["failed"], 0)
            self.assertGreater(ref["ok"], 0)
            self.assertGreater(ref["retries"], 0)
            # each failure named the same way by every client (a cut stream included)
            self.assertEqual(set(ref["causes"]), {"http 503", "error frame",
                                                  "stream ended before [DONE]"})
            want = per_conv(ref_pc)
            for impl, argv in IMPLS[RT].items():
                pc = os.path.join(tmp, f"{impl}.csv")
                rc, j, err = run_client(argv, mock.port, n, opts + ["--per-conv", pc])
                self.assertEqual(rc, 0, f"{impl}: {err[-800:]}")
                self.assertEqual((j["ok"], j["failed"], j["retries"], j["causes"]),
                                 (ref["ok"], ref["failed"], ref["retries"], ref["causes"]), impl)
                self.assertEqual(per_conv(pc), want, impl)
        finally:
            mock.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_bad_usage_and_refused(self):
        for impl, argv in IMPLS[RT].items():
            p = subprocess.run(argv + ["--target", "10.0.0.1:80", "--n", "2"], capture_output=True,
                               text=True, timeout=30, env=node_env() if argv[0] == "node" else None)
            self.assertEqual(p.returncode, 2, f"{impl}: {p.stdout} {p.stderr}")
            self.assertIn("loopback", p.stderr, impl)
            p = subprocess.run(argv + ["--target", "127.0.0.1:9", "--n", "0"], capture_output=True,
                               text=True, timeout=30, env=node_env() if argv[0] == "node" else None)
            self.assertEqual(p.returncode, 2, f"{impl}: {p.stdout} {p.stderr}")
            if argv[0] == "node":  # the transport flag takes one of two names
                p = subprocess.run(argv + ["--target", "127.0.0.1:9", "--transport", "undici"],
                                   capture_output=True, text=True, timeout=30, env=node_env())
                self.assertEqual(p.returncode, 2, f"{impl}: {p.stdout} {p.stderr}")
                self.assertIn("--transport must be node-fetch or sdk-default", p.stderr, impl)
            # nothing listens on an ephemeral port just closed: every attempt is refused
            port = wl.free_port()
            rc, j, err = run_client(argv, port, 3, ["--retries", "0", "--timeout", "10"])
            self.assertEqual(rc, 0, f"{impl}: {err[-800:]}")
            self.assertEqual((j["ok"], j["failed"]), (0, 3), impl)
            self.assertEqual(j["causes"], {"ECONNREFUSED": 3}, impl)

    @unittest.skipUnless(RT == "python" and shutil.which("prlimit"), "Python threads only")
    def test_thread_limit_is_a_result(self):
        """Threads that cannot start (address space capped: each wants an 8 MiB stack)
        are counted as not started, and the harness makes a limit_units row of it. The
        stand-in holds every answer for a while, so the threads are all alive at once
        (with instant answers a loaded machine ran them one after another: 8 alive at
        most, no EAGAIN)."""
        rec = Recorder(hold_s=5.0)
        try:
            argv = ["prlimit", "--as=400000000", "--"] + IMPLS["python"]["py-thread"]
            rc, j, err = run_client(argv, rec.port, 200, ["--max-tokens", "2", "--timeout", "20"])
            self.assertEqual(rc, 0, err[-800:])
            self.assertGreater(j["spawn_failed"], 0, j)
            self.assertEqual(j["spawn_errno"], "EAGAIN")
            self.assertEqual(j["ok"] + j["failed"], 200)
            self.assertEqual(j["causes"].get("not started (Thread.start: EAGAIN)"),
                             j["spawn_failed"])
            tab = wl.Table("peers")
            j["kernel_est_kib"] = 0
            peerlib.record_client(tab, "llm/py-thread/x/n=200", "python-thread", "python", 200, j)
            lim = [k for k in tab.order if k[5] == "limit_units"]
            self.assertEqual([k[0] for k in lim], ["llm/py-thread/x/n=200/limit=EAGAIN"])
            self.assertEqual(tab.rows[lim[0]], [float(j["units_started"])])
        finally:
            rec.close()


if __name__ == "__main__":
    if RT not in IMPLS:
        print("usage: smoke_test.py python|go|node", file=sys.stderr)
        sys.exit(2)
    if not all(os.access(os.path.join(BIN, b), os.X_OK) for b in ("wl-llm", "mock-llm")):
        print(f"peers_{RT}_smoke: wl-llm / mock-llm not built in {BIN}", file=sys.stderr)
        sys.exit(1)
    if not ensure(RT):
        sys.exit(77)
    prog = unittest.main(argv=[sys.argv[0]] + sys.argv[2:], exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
