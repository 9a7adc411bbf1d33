#!/usr/bin/env python3
"""The Ruby peers' smoke test (CTest peers_ruby_smoke), seconds in all:

- bench.py --smoke runs every Ruby client model, the pool, the relays (Puma 5 and 25,
  Async::HTTP, C threads and fibers) at tiny N against mock-llm; its CSV passes
  scripts/check_results.py --strict, every conversation and relayed stream completed,
  and Async held all its conversations at once (plain Net::HTTP yields under Async's
  Fiber scheduler: without that, one conversation would run at a time);
- each relay, C and Ruby, with what users send: a 200 KB chat request (a long history)
  reaches the LLM byte for byte with its request index (a recording stand-in LLM), and
  against mock-llm the relayed answer is the one mock-llm gives that index directly; bad
  input gets its 4xx, readable by the client (404, 405, 400 for non-JSON and for
  stream:false, 413 for a body over 1 MiB).

Needs build/bin (WL_BIN) and Debian's ruby, ruby-async, ruby-async-http and puma: when
they are missing it installs them as root (scripts/deps.sh ruby) and otherwise exits 77
(CTest: skipped) saying so. Loopback only, ephemeral ports, temporary directories.
"""
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUBY_DIR = os.path.dirname(HERE)
TOP = os.path.dirname(os.path.dirname(RUBY_DIR))
BIN = os.environ.get("WL_BIN", os.path.join(TOP, "build", "bin"))
sys.path.insert(0, RUBY_DIR)
sys.path.insert(0, os.path.join(TOP, "workloads", "bench"))


def ruby_ready():
    if not shutil.which("ruby") or not shutil.which("puma"):
        return False
    r = subprocess.run(["ruby", "-e", "require 'async'; require 'async/http/internet'"],
                       capture_output=True)
    return r.returncode == 0


def ensure_ruby():
    if ruby_ready():
        return True
    if os.geteuid() != 0:
        print("peers_ruby_smoke: SKIPPED: Debian's ruby, ruby-async, ruby-async-http and puma "
              "are not installed and this is not root (as root: scripts/deps.sh ruby)")
        return False
    r = subprocess.run([os.path.join(TOP, "scripts", "deps.sh"), "ruby"])
    return r.returncode == 0 and ruby_ready()


def http(port, raw, timeout=20):
    """Sends raw bytes, returns (status, head, body) of the answer (read to close, or to
    the end of a chunked body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a server may answer an oversized request before reading it all
        data = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
            if b"\r\n\r\n" in data:
                head = data.split(b"\r\n\r\n", 1)[0].lower()
                if b"chunked" in head and data.endswith(b"0\r\n\r\n"):
                    break
                m = re.search(rb"content-length:\s*(\d+)", head)
                if m and len(data) >= data.index(b"\r\n\r\n") + 4 + int(m.group(1)):
                    break
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    return status, head.decode("latin-1"), body


def dechunk(body):
    out, rest = b"", body
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2:]
    return out


def contents(sse):
    """The delta contents of an SSE chat stream, and whether it ended in [DONE]."""
    text, done = "", False
    for ev in sse.decode().split("\n\n"):
        for line in ev.split("\n"):
            if not line.startswith("data: "):
                continue
            d = line[6:]
            if d == "[DONE]":
                done = True
                continue
            j = json.loads(d)
            for ch in j.get("choices", []):
                text += ch.get("delta", {}).get("content") or ""
    return text, done


def chat_request(index, body_bytes=None, stream=True, path="/v1/chat/completions",
                 method="POST"):
    history = [{"role": "user" if i % 2 == 0 else "assistant",
                "content": f"Turn {i}: " + "tell me about fibers and threads. " * 20}
               for i in range(300)]
    body = body_bytes if body_bytes is not None else json.dumps(
        {"model": "mock", "stream": stream, "max_tokens": 12, "messages": history}).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"x-mock-request-index: {index}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    return head + body


class RecordingLLM:
    """A stand-in LLM for the relays: records each request it gets (head and body) and
    answers a short chunked SSE stream. It checks what a relay forwards byte for byte,
    whatever mock-llm does with a large body."""

    STREAM = ('data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
              'data: {"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n'
              'data: [DONE]\n\n')

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with c:
                c.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
                head, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"content-length:\s*(\d+)", head, re.I)
                n = int(m.group(1)) if m else 0
                while len(body) < n:
                    b = c.recv(65536)
                    if not b:
                        break
                    body += b
                self.got.append((head.decode("latin-1"), body))
                ev = self.STREAM.encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                          b"%x\r\n" % len(ev) + ev + b"\r\n0\r\n\r\n")

    def close(self):
        self.stop = True
        self.sock.close()
        self.thread.join(2)


@unittest.skipUnless(os.access(os.path.join(BIN, "wl-relay"), os.X_OK), "wl-relay not built")
class RubySmoke(unittest.TestCase):
    def test_bench_smoke_every_model(self):
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([sys.executable, os.path.join(RUBY_DIR, "bench.py"), "--smoke",
                                "--bin", BIN, "--out", out], capture_output=True, text=True,
                               timeout=100)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            csvp = os.path.join(out, "ruby.csv")
            c = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "check_results.py"),
                                "--strict", csvp], capture_output=True, text=True)
            self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
            with open(csvp) as f:
                rows = list(csv.DictReader(f))
            done = {(x["case"], x["metric"]): float(x["median"]) for x in rows}
            cases = {x["case"] for x in rows if x["metric"] == "completed_count"}
            for impl in ("ruby-thread", "ruby-pool25", "ruby-async", "ruby-async-http", "c-fiber"):
                self.assertEqual(done.get((f"llm/{impl}/gpt4o-5tps/n=5", "completed_count")), 5,
                                 f"{impl}: {r.stderr[-1500:]}")
            for impl in ("puma-5", "puma-25", "async-http-server", "c-thread", "c-fiber"):
                self.assertEqual(done.get((f"relay/{impl}/smoke/n=5", "completed_count")), 5,
                                 f"{impl}: {sorted(cases)}")
            for impl in ("ruby-pool25", "ruby-async"):
                self.assertEqual(done.get((f"starve/{impl}/fixed-x0.25/n=30", "completed_count")),
                                 30)
            # Every Async conversation alive at once: Net::HTTP gave the reactor its waits.
            self.assertEqual(done[("llm/ruby-async/gpt4o-5tps/n=5", "live_units")], 5)
            # the pool never runs more than its 25 (here: all 5 users fit)
            self.assertLessEqual(done[("llm/ruby-pool25/gpt4o-5tps/n=5", "live_units")], 25)
            self.assertFalse([x for x in rows if x["metric"] == "limit_units"])
            with open(os.path.join(out, "ruby.machine.txt")) as f:
                self.assertIn("ruby gems: async 1.", f.read())

    def test_committed_run_is_valid_and_quoted_as_is(self):
        """The bounded run kept in the tree (peers/ruby/results/) follows the schema, and
        the README's claims table is claims.py's output on the README's source, line for
        line: the shown published set's ruby.csv when it has one (the bounded run only
        when it does not), as scripts/gen_readme.py's section gen:ruby prints it; a number
        in it that the CSV does not give fails here."""
        d = os.path.join(RUBY_DIR, "results")
        c = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "check_results.py"),
                            "--strict", os.path.join(d, "ruby.csv")], capture_output=True,
                           text=True)
        self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
        sys.path.insert(0, RUBY_DIR)
        import claims
        src, published = claims.default_csv()
        sys.path.insert(0, os.path.join(TOP, "scripts"))
        import resultsets
        shown = resultsets.shown_set()
        self.assertEqual(published, bool(shown and os.path.isfile(os.path.join(shown, "ruby.csv"))))
        if published:
            self.assertEqual(os.path.realpath(src), os.path.realpath(os.path.join(shown, "ruby.csv")))
        t = subprocess.run([sys.executable, os.path.join(RUBY_DIR, "claims.py")],
                           capture_output=True, text=True)
        self.assertEqual(t.returncode, 0, t.stderr)
        lines = [l for l in t.stdout.splitlines() if l.startswith("| ")]
        self.assertEqual(len(lines), 7, t.stdout)  # header and six claims
        for l in lines[1:]:
            self.assertRegex(l, r"\| \*\*(holds|does not hold|inconclusive|not judged)", l)
        with open(os.path.join(TOP, "README.md")) as f:
            readme = f.read()
        for l in lines:
            self.assertIn(l, readme, "README.md's Ruby claims table is not claims.py's output "
                                     "(python3 peers/ruby/claims.py prints it)")

    def test_claims_say_one_run_for_a_one_round_anchor(self):
        """make bench measures the C clients and relays beside Ruby in one round (a same-run
        anchor; peers/bench.py has their 3 rounds): claims.py must not present such a row
        as a median. The committed run with its C rows turned into single runs: every
        claim quoting C says "(one run)", and the 3-run original says it nowhere."""
        src = os.path.join(RUBY_DIR, "results", "ruby.csv")
        with open(src, newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:  # the C clients' and relays' rows; starvation keeps its 3 rounds
            if r["impl"].startswith("c-") and not r["case"].startswith("starve/"):
                r["min"] = r["max"] = r["median"]
                r["runs"] = "1"
        with tempfile.TemporaryDirectory() as tmp:
            one = os.path.join(tmp, "ruby.csv")
            with open(one, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                w.writeheader()
                w.writerows(rows)
            # the paced marginal's bounded run beside it, as in the tree
            os.makedirs(os.path.join(tmp, "marginal"))
            shutil.copy(os.path.join(RUBY_DIR, "results", "marginal", "ruby.csv"),
                        os.path.join(tmp, "marginal", "ruby.csv"))
            t = subprocess.run([sys.executable, os.path.join(RUBY_DIR, "claims.py"), one],
                               capture_output=True, text=True)
        self.assertEqual(t.returncode, 0, t.stderr)
        claims = [l for l in t.stdout.splitlines() if l.startswith("| ")][1:]
        self.assertEqual(len(claims), 6, t.stdout)
        # memory, CPU per token, the relay, ten thousand: C from one round; starvation: 3
        for i in (1, 2, 4, 5):
            self.assertIn("(one run)", claims[i])
        for i in (0, 3):
            self.assertNotIn("(one run)", claims[i])
        t = subprocess.run([sys.executable, os.path.join(RUBY_DIR, "claims.py"), src],
                           capture_output=True, text=True)
        claims = [l for l in t.stdout.splitlines() if l.startswith("| ")][1:]
        # the original: only the CPU per token, whose paced marginal comes from the bounded
        # marginal-only run (C a one-round anchor there too)
        self.assertEqual([i for i, c in enumerate(claims) if "(one run)" in c], [2])

    def test_verdicts_on_per_run_ranges(self):
        """The 1.5x rule on a per-run range: met, missed, or inconclusive where the range
        straddles it (review finding 7); a verdict names the inconclusive conditions."""
        sys.path.insert(0, RUBY_DIR)
        import claims
        self.assertIs(claims.judge(1.6, 2.0), True)
        self.assertIs(claims.judge(1.1, 1.49), False)
        self.assertIsNone(claims.judge(1.4, 1.8))
        self.assertEqual(claims.verdict([None], ["1,000"], "at N ="),
                         "**inconclusive** (the per-run range straddles 1.5x at N = 1,000)")
        self.assertEqual(claims.verdict([True, None], ["100", "1,000"], "at N ="),
                         "**holds only at N = 100** (inconclusive at N = 1,000)")
        self.assertEqual(claims.verdict([False, False], ["a", "b"], "at"), "**does not hold**")

    def test_claims_cli(self):
        r = subprocess.run([sys.executable, os.path.join(RUBY_DIR, "claims.py"), "--bogus"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([sys.executable, os.path.join(RUBY_DIR, "claims.py"), "/no/such.csv"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("claims.py:", r.stderr)

    def test_open_files_limit_is_a_result(self):
        """Out of descriptors (60 here, 20,000 on the benchmark machine), every Ruby model
        counts the conversations that could not connect (EMFILE), finishes the others and
        exits 0; the harness records the limit as a limit_units row."""
        import resource
        import run as wl
        import bench
        # conversations of ~0.6 s: all 100 want a socket at once, even on a busy machine
        # (Async::HTTP reuses the connections of finished conversations)
        mock = wl.Server("mock-llm", [os.path.join(BIN, "mock-llm"), "--listen", "127.0.0.1:0",
                                      "--seed", "3", "--profile", "fixed", "--time-scale", "2"])
        lower = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (60, 60))
        try:
            for model in ("thread", "pool", "async", "async-http"):
                r = subprocess.run(["ruby", os.path.join(RUBY_DIR, "llm_client.rb"), "--model",
                                    model, "--target", f"127.0.0.1:{mock.port}", "--n", "100",
                                    "--max-tokens", "4", "--workers", "80"],
                                   capture_output=True, text=True, timeout=60, preexec_fn=lower)
                self.assertEqual(r.returncode, 0, f"{model}: {r.stderr[-800:]}")
                j = json.loads(r.stdout)
                self.assertEqual(j["ok"] + j["failed"], 100, model)
                self.assertGreater(j["ok"], 0, model)
                self.assertGreater(j["causes"].get("EMFILE", 0), 0, f"{model}: {j['causes']}")
                tab = wl.Table("ruby")
                bench.record_client(tab, f"llm/ruby-{model}/x/n=100", "ruby-async", 100,
                                    dict(j, kernel_est_kib=0))
                self.assertIn(f"llm/ruby-{model}/x/n=100/limit=EMFILE", [k[0] for k in tab.order])
        finally:
            mock.stop()

    def test_relays_forward_real_requests(self):
        """A 200 KB chat request (a long history) reaches the LLM byte for byte, with its
        request index, and the stream comes back whole, through every relay."""
        import bench
        tmp = tempfile.mkdtemp(prefix="fiberbench-ruby-test-")
        llm = RecordingLLM()
        req = chat_request(7)
        self.assertGreater(len(req), 200000)
        sent_body = req.split(b"\r\n\r\n", 1)[1]

        class A:
            bin = BIN
        try:
            for impl in ("c-fiber", "c-thread", "puma-5", "async-http-server"):
                srv = bench.start_relay(A, impl, llm.port, tmp)
                try:
                    n0 = len(llm.got)
                    st, head, body = http(srv.port, req)
                    self.assertEqual(st, 200, f"{impl}: {head}")
                    got, done = contents(dechunk(body))
                    self.assertEqual((got, done), ("Hello there", True), impl)
                    self.assertEqual(len(llm.got), n0 + 1, impl)
                    up_head, up_body = llm.got[-1]
                    self.assertEqual(up_body, sent_body, f"{impl}: the body was not forwarded intact")
                    self.assertRegex(up_head.lower(), r"\r\nx-mock-request-index: 7\r\n", impl)
                finally:
                    srv.stop()
        finally:
            llm.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_relays_against_mock_llm_and_bad_input(self):
        """The relayed answer is mock-llm's own for that request index; bad input gets its
        4xx, readable by the client; the relay serves on afterwards."""
        import run as wl
        import bench
        tmp = tempfile.mkdtemp(prefix="fiberbench-ruby-test-")
        mock = wl.Server("mock-llm", [os.path.join(BIN, "mock-llm"), "--listen", "127.0.0.1:0",
                                      "--seed", "3", "--profile", "fixed", "--time-scale", "0.05"])
        small = json.dumps({"model": "mock", "stream": True, "max_tokens": 12,
                            "messages": [{"role": "user", "content": "Tell me about fibers."}]}
                           ).encode()
        try:
            st, _, body = http(mock.port, chat_request(7, body_bytes=small))
            self.assertEqual(st, 200)
            want, done = contents(dechunk(body))
            self.assertTrue(done and want)
            # and what users really send, a 200 KB history, end to end
            st, _, body = http(mock.port, chat_request(9))
            self.assertEqual(st, 200, body[:300])
            want_big, done = contents(dechunk(body))
            self.assertTrue(done and want_big)

            class A:
                bin = BIN
            for impl in ("c-fiber", "c-thread", "puma-5", "async-http-server"):
                srv = bench.start_relay(A, impl, mock.port, tmp)
                try:
                    p = srv.port
                    st, head, body = http(p, chat_request(7, body_bytes=small))
                    self.assertEqual(st, 200, f"{impl}: {head}")
                    self.assertIn("text/event-stream", head.lower(), impl)
                    got, done = contents(dechunk(body))
                    self.assertTrue(done, f"{impl}: no [DONE]")
                    self.assertEqual(got, want, f"{impl}: another answer than mock-llm's for index 7")
                    st, _, body = http(p, chat_request(9))
                    self.assertEqual(st, 200, impl)
                    self.assertEqual(contents(dechunk(body)), (want_big, True), impl)
                    self.assertEqual(http(p, chat_request(1, path="/v1/other"))[0], 404, impl)
                    self.assertEqual(http(p, chat_request(1, method="PUT"))[0], 405, impl)
                    self.assertEqual(http(p, chat_request(1, body_bytes=b"{not json"))[0], 400, impl)
                    st, _, body = http(p, chat_request(1, stream=False))
                    self.assertEqual(st, 400, impl)
                    self.assertIn(b"stream", body, impl)
                    big = b'{"model":"mock","stream":true,"messages":[{"role":"user","content":"' + \
                        b"x" * (2 << 20) + b'"}]}'
                    self.assertEqual(http(p, chat_request(1, body_bytes=big))[0], 413, impl)
                    # still serving after all that
                    self.assertEqual(http(p, chat_request(8, body_bytes=small))[0], 200, impl)
                finally:
                    srv.stop()
        finally:
            mock.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not ensure_ruby():
        sys.exit(77)
    prog = unittest.main(exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
