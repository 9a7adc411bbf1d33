#!/usr/bin/env python3
"""test_golden.py - mock-llm's streamed bytes against a recorded set (ctest mockllm_sse_golden).

    test_golden.py PATH/TO/mock-llm GOLDEN_DIR           compare
    test_golden.py PATH/TO/mock-llm GOLDEN_DIR --write   record (from a build you trust)

Each case starts nothing of its own: one mock-llm (a fixed seed, the profile and time
scale of the case) serves a streaming request over a raw socket, HTTP/1.1 or 1.0, and
the whole response is compared with GOLDEN_DIR/<case>.txt: the head as sent, then the
body with its chunked framing decoded (how many events share one write depends on how
late the server woke, so chunk boundaries are timing, not output) and the wall-clock
`created` / `created_at` values written as 0. Everything else - ids, text, tool
arguments, usage, sequence numbers, the order of events - must be byte for byte what
was recorded. The set was recorded from the build before the ticker emitted stream
events (mllm_route.c, stream_fire), so the cases prove that change left the wire as
it was: every profile's gaps here are short enough for the ticker to emit them.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

CASES = [
    # name, server flags, path, headers, body, HTTP/1.x minor
    ("chat_fixed_usage", ["--profile", "fixed", "--time-scale", "0.05"], "/v1/chat/completions",
     {"x-mock-request-index": "5"},
     '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},'
     '"messages":[{"role":"user","content":"hello there"}]}', 1),
    ("chat_gpt4o", ["--profile", "gpt-4o", "--time-scale", "0.05"], "/v1/chat/completions",
     {"x-mock-request-index": "11"},
     '{"model":"gpt-4o","stream":true,"max_tokens":60,'
     '"messages":[{"role":"user","content":"tell me about fibers"}]}', 1),
    ("chat_many_per_event", ["--profile", "gemini-flash", "--time-scale", "0.2"],
     "/v1/chat/completions", {"x-mock-request-index": "3"},
     '{"model":"gpt-4o-mini","stream":true,"max_tokens":200,'
     '"messages":[{"role":"user","content":"long answer please"}]}', 1),
    ("chat_tool_call", ["--profile", "fixed", "--time-scale", "0.05"], "/v1/chat/completions",
     {"x-mock-request-index": "7"},
     '{"model":"gpt-4o","stream":true,"tool_choice":"required","messages":[{"role":"user",'
     '"content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather",'
     '"parameters":{"type":"object","properties":{"city":{"type":"string"},"days":'
     '{"type":"integer","minimum":1,"maximum":7}},"required":["city","days"]}}}]}', 1),
    ("anthropic", ["--profile", "claude-sonnet", "--time-scale", "0.05"], "/v1/messages",
     {"x-mock-request-index": "2", "anthropic-version": "2023-06-01"},
     '{"model":"claude-sonnet-4","stream":true,"max_tokens":50,'
     '"messages":[{"role":"user","content":"hi"}]}', 1),
    ("anthropic_tool", ["--profile", "fixed", "--time-scale", "0.05"], "/v1/messages",
     {"x-mock-request-index": "4", "anthropic-version": "2023-06-01"},
     '{"model":"claude-sonnet-4","stream":true,"max_tokens":100,"tool_choice":{"type":"any"},'
     '"messages":[{"role":"user","content":"look it up"}],"tools":[{"name":"lookup",'
     '"input_schema":{"type":"object","properties":{"q":{"type":"string"}},'
     '"required":["q"]}}]}', 1),
    ("responses", ["--profile", "fixed", "--time-scale", "0.05"], "/v1/responses",
     {"x-mock-request-index": "9"},
     '{"model":"gpt-4o","stream":true,"input":"write a haiku","max_output_tokens":20}', 1),
    ("http10", ["--profile", "fixed", "--time-scale", "0.05"], "/v1/chat/completions",
     {"x-mock-request-index": "6"},
     '{"model":"gpt-4o","stream":true,"max_tokens":12,'
     '"messages":[{"role":"user","content":"old client"}]}', 0),
    ("midstream_error", ["--profile", "fixed", "--time-scale", "0.05"], "/v1/chat/completions",
     {"x-mock-request-index": "8", "x-mock-inject": "midstream"},
     '{"model":"gpt-4o","stream":true,"max_tokens":20,'
     '"messages":[{"role":"user","content":"break please"}]}', 1),
    ("disconnect", ["--profile", "fixed", "--time-scale", "0.05"], "/v1/chat/completions",
     {"x-mock-request-index": "10", "x-mock-inject": "disconnect"},
     '{"model":"gpt-4o","stream":true,"max_tokens":20,'
     '"messages":[{"role":"user","content":"cut me off"}]}', 1),
]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def start(binary, flags):
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--seed", "42", *flags],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("mock-llm listening on 127.0.0.1:"):
        p.kill()
        fail(f"mock-llm did not start: {line!r} {p.stderr.read()}")
    return p, int(line.rsplit(":", 1)[1])


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = "killed"
    if rc != 0:
        fail(f"mock-llm exited {rc}: {p.stderr.read()[-2000:]}")


def fetch(port, path, headers, body, minor):
    """The whole response: read until the server closes (Connection: close) or the
    terminating chunk arrived."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    hdr = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    req = (f"POST {path} HTTP/1.{minor}\r\nHost: t\r\nContent-Type: application/json\r\n"
           f"Connection: close\r\n{hdr}Content-Length: {len(body)}\r\n\r\n{body}")
    s.sendall(req.encode())
    data = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        data += b
    s.close()
    return data


def dechunk(body):
    out, i = b"", 0
    while i < len(body):
        j = body.find(b"\r\n", i)
        if j < 0:
            return out + b"<truncated chunk size line>"
        size = int(body[i:j].split(b";")[0], 16)
        if size == 0:
            return out + b"<end>"
        if j + 2 + size > len(body):
            return out + body[j + 2:] + b"<truncated chunk>"
        out += body[j + 2:j + 2 + size]
        i = j + 2 + size + 2
    return out + b"<no terminating chunk>"


def normalize(data):
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    text = head.decode() + "\n\n" + body.decode("utf-8", "replace")
    return re.sub(r'"(created|created_at)":\d+', r'"\1":0', text)


def main():
    if len(sys.argv) < 3:
        fail("usage: test_golden.py PATH/TO/mock-llm GOLDEN_DIR [--write]")
    binary, gdir = sys.argv[1], sys.argv[2]
    write = "--write" in sys.argv[3:]
    if write:
        os.makedirs(gdir, exist_ok=True)
    bad = []
    for name, flags, path, headers, body, minor in CASES:
        p, port = start(binary, flags)
        try:
            got = normalize(fetch(port, path, headers, body, minor))
        finally:
            stop(p)
        f = os.path.join(gdir, name + ".txt")
        if write:
            with open(f, "w", newline="") as fh:
                fh.write(got)
            print(f"wrote {f} ({len(got)} bytes)")
            continue
        with open(f, newline="") as fh:
            want = fh.read()
        if got != want:
            n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                     min(len(got), len(want)))
            bad.append(f"{name}: differs at byte {n} of {len(want)}: got {got[n:n + 120]!r}, "
                       f"recorded {want[n:n + 120]!r}")
        else:
            print(f"ok {name} ({len(want)} bytes)")
    if bad:
        fail("; ".join(bad))
    print("PASS")


if __name__ == "__main__":
    main()
