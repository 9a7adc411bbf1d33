#!/usr/bin/python3
"""peers/python/llm_client.py - N concurrent streaming chat completions against mock-llm
from Python, on one concurrency model, measured from inside the process. The Python twin
of build/bin/wl-llm and peers/ruby/llm_client.rb: the same request, the same request
index per conversation (so every model meets the same draws), the same metrics, one JSON
object on stdout in the same shape (peers/bench.py turns runs into results/peers.csv).

    /usr/bin/python3 peers/python/llm_client.py --model M --target 127.0.0.1:PORT --n N

Models:
  thread    a threading.Thread per conversation, http.client streaming (the blocking
            code most Python services have: requests and urllib3 sit on http.client)
  asyncio   an asyncio task per conversation on the standard library's streams
            (asyncio.open_connection), HTTP/1.1 and chunked decoding by hand: what
            asyncio itself costs, with no HTTP library on top
  httpx     an asyncio task per conversation on one shared httpx.AsyncClient set up as
            the official openai Python SDK sets up AsyncOpenAI's (its default limits:
            1,000 connections, 100 kept alive; 5 s to connect): the transport a Python
            AI app streams through (the SDK itself is not packaged in Debian)
  aiohttp   an asyncio task per conversation on one aiohttp.ClientSession (connector
            limit lifted likewise): the other common asyncio HTTP client

Every conversation POSTs {"stream":true} to /v1/chat/completions with
'x-mock-request-index: i', parses the SSE stream event by event (json.loads of each
chunk, as an app does to use the delta), and times the first content delta from the
user's arrival (all users arrive at once), so waiting for a thread or the loop is in it.
Retries like the OpenAI SDKs (2 by default): connection refused/reset, 408, 409, 429,
5xx before the stream starts, honouring retry-after-ms.

Debian's python3 (3.11) standard library; python3-httpx and python3-aiohttp only for
their models. Exit status: 0 run done (failed conversations are counted, not fatal),
2 bad usage.
"""
import argparse
import gc
import http.client
import json
import math
import random
import re
import resource
import socket
import sys
import threading
import time

MODELS = ("thread", "asyncio", "httpx", "aiohttp")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
now = time.monotonic


def status_kib(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


class Conv:
    """What one conversation saw; times are time.monotonic() seconds, None = did not
    happen."""
    __slots__ = ("arrival", "start", "first_token", "end_t", "last_delta", "tokens",
                 "deltas", "attempts", "ok", "cause")

    def __init__(self, arrival):
        self.arrival = arrival
        self.start = self.first_token = self.end_t = self.last_delta = None
        self.tokens = self.deltas = self.attempts = 0
        self.ok = False
        self.cause = None


# Gaps between deltas, log-bucketed like wl-llm (4 buckets per octave of microseconds):
# one histogram for the run. A list update is atomic under the GIL.
ITL_BUCKETS = 96
ITL = [0] * ITL_BUCKETS


def itl_add(gap_s):
    us = gap_s * 1e6
    b = 0 if us < 1.0 else int(4.0 * math.log2(us))
    ITL[min(b, ITL_BUCKETS - 1)] += 1


class StreamFailed(Exception):
    pass


class RetryableStatus(Exception):
    def __init__(self, code, retry_after_ms):
        super().__init__(f"http {code}")
        self.retry_after_ms = retry_after_ms


class DeadlineHit(Exception):
    pass


class SSE:
    """Server-Sent Events, the WHATWG way (as peers/ruby/sse.rb): lines end in CRLF, LF
    or CR (a CR at the end of one chunk may be half of a CRLF), a blank line dispatches,
    data lines are joined with "\\n", ':' starts a comment. feed() returns the data of
    the events the chunk completed."""
    MAX = 1 << 20
    LINE = re.compile(rb"\r\n|\n|\r")

    def __init__(self):
        self.buf = b""
        self.data = None

    def feed(self, chunk):
        buf = self.buf + chunk
        out = []
        pos = 0
        while True:
            m = self.LINE.search(buf, pos)
            if not m or (m.group() == b"\r" and m.end() == len(buf)):
                break
            line = buf[pos:m.start()]
            pos = m.end()
            if not line:
                if self.data is not None:
                    out.append(self.data)
                    self.data = None
                continue
            if line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            if field != b"data":
                continue
            if value.startswith(b" "):
                value = value[1:]
            self.data = value if self.data is None else self.data + b"\n" + value
        self.buf = buf[pos:]
        if len(self.buf) > self.MAX:
            raise StreamFailed("SSE line over 1 MiB")
        return out


def on_data(data, c):
    """One chat chunk, counted into c. Returns 'done' at [DONE], 'error' on an error
    frame, else None."""
    if data == b"[DONE]":
        return "done"
    j = json.loads(data)
    if j.get("error"):
        return "error"
    ch = j.get("choices")
    if ch:
        content = (ch[0].get("delta") or {}).get("content")
        if content:
            t = now()
            if c.first_token is None:
                c.first_token = t
            else:
                itl_add(t - c.last_delta)
            c.last_delta = t
            c.deltas += 1
    u = j.get("usage")
    if u and u.get("completion_tokens"):
        c.tokens = u["completion_tokens"]
    return None


class Consumer:
    """Feeds one attempt's body chunks through the SSE parser into its conversation."""

    def __init__(self, c, deadline):
        self.c = c
        self.deadline = deadline
        self.sse = SSE()
        self.state = None

    def feed(self, chunk):
        if now() > self.deadline:
            raise DeadlineHit("timeout")
        for d in self.sse.feed(chunk):
            if self.state is None:
                self.state = on_data(d, self.c)
        return self.state is not None

    def finish(self):
        if self.state == "error":
            raise StreamFailed("error frame")
        if self.state != "done":
            raise StreamFailed("stream ended before [DONE]")


PROMPT_BYTES_MAX = 1 << 20


def prompt_for(i, prompt_bytes=0):
    """Conversation i's prompt: "Conversation i: tell me about fibers.", padded with
    "fibers " to prompt_bytes bytes when that is longer (the same rule in every peer
    client: real requests carry kilobytes of prompt; 0 keeps the short one)."""
    base = f"Conversation {i}: tell me about fibers."
    if prompt_bytes <= len(base):
        return base
    pad = prompt_bytes - len(base) - 1
    return base + " " + ("fibers " * (pad // 7 + 1))[:pad]


def body_for(i, max_tokens, prompt_bytes=0):
    return json.dumps({"model": "mock", "stream": True,
                       "stream_options": {"include_usage": True}, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": prompt_for(i, prompt_bytes)}]},
                      separators=(",", ":")).encode()


def headers_for(i, attempt):
    # x-stainless-retry-count is what the official SDKs send on a retry
    return {"content-type": "application/json", "accept": "text/event-stream",
            "x-mock-request-index": str(i), "x-stainless-retry-count": str(attempt - 1)}


def retry_delay(attempt, retry_after_ms):
    """The OpenAI SDKs' backoff: retry-after-ms when given, else 0.5 s x 2^attempt (8 s
    cap) less up to 25% jitter."""
    if retry_after_ms is not None and 0 <= retry_after_ms <= 60000:
        return retry_after_ms / 1000.0
    return min(0.5 * 2 ** min(attempt, 5), 8.0) * (1.0 - 0.25 * random.random())


def retry_after(get):
    v = get("retry-after-ms")
    if v and v.strip().isdigit():
        return int(v)
    v = get("retry-after")
    if v and v.strip().isdigit():
        return int(v) * 1000
    return None


# httpx (h11) and aiohttp's names for a body cut short by the server
CUT_STREAM = {"RemoteProtocolError", "ClientPayloadError", "ServerDisconnectedError"}


def os_error_in(e):
    """The OSError with an errno that e is, or that a library wrapped into it (httpx's
    ConnectError, aiohttp's ClientConnectorError), else None."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno:
            return e
        e = e.__cause__ or e.__context__ or getattr(e, "os_error", None)
        seen += 1
    return None


def cause_of(e):
    """ConnectionRefusedError -> ECONNREFUSED (also wrapped by a library); ours by
    message; others by class."""
    if isinstance(e, (StreamFailed, RetryableStatus, DeadlineHit)):
        return str(e)
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    # the server closed the connection inside the body: each library names it its own way
    if isinstance(e, http.client.IncompleteRead) or type(e).__name__ in CUT_STREAM:
        return "stream ended before [DONE]"
    oe = os_error_in(e)
    if oe is not None:
        import errno
        return errno.errorcode.get(oe.errno, f"errno {oe.errno}")
    return type(e).__name__


RETRY_ERRORS = (ConnectionRefusedError, ConnectionResetError, BrokenPipeError)


def should_retry(o, c, e):
    """The delay before the next attempt, or None when this failure is final."""
    if not isinstance(e, RETRY_ERRORS + (RetryableStatus,)) and not isinstance(
            os_error_in(e), RETRY_ERRORS):
        return None
    d = retry_delay(c.attempts - 1, getattr(e, "retry_after_ms", None))
    if c.attempts <= o.retries and c.first_token is None and now() + d < c.arrival + o.timeout:
        return d
    return None


# ---- thread: http.client ----------------------------------------------------------

def conv_thread(o, i, c):
    deadline = c.arrival + o.timeout
    c.start = now()
    while True:
        c.attempts += 1
        conn = None
        try:
            conn = http.client.HTTPConnection(o.host, o.port,
                                              timeout=max(deadline - now(), 0.001))
            conn.request("POST", "/v1/chat/completions", body=body_for(i, o.max_tokens, o.prompt_bytes),
                         headers=headers_for(i, c.attempts))
            res = conn.getresponse()
            if res.status != 200:
                res.read()
                if res.status in RETRY_STATUS:
                    raise RetryableStatus(res.status, retry_after(res.getheader))
                raise StreamFailed(f"http {res.status}")
            cons = Consumer(c, deadline)
            while True:
                chunk = res.read1(65536)
                if not chunk or cons.feed(chunk):
                    break
            cons.finish()
            c.ok = True
            break
        except Exception as e:  # noqa: BLE001 - every failure is counted by its cause
            d = should_retry(o, c, e)
            if d is None:
                c.cause = cause_of(e)
                break
            time.sleep(d)
        finally:
            if conn:
                conn.close()
    c.end_t = now()


class Live:
    """Counts units alive at once (the peak is the concurrency the model reached)."""

    def __init__(self):
        self.mu = threading.Lock()
        self.live = self.peak = self.started = self.spawn_failed = 0
        self.spawn_errno = ""

    def enter(self):
        with self.mu:
            self.live += 1
            self.started += 1
            self.peak = max(self.peak, self.live)

    def leave(self):
        with self.mu:
            self.live -= 1

    def failed(self, err):
        with self.mu:
            self.spawn_failed += 1
            if not self.spawn_errno:
                self.spawn_errno = err


def spawn_errno(e):
    m = str(e)
    if "can't start new thread" in m or "Resource temporarily unavailable" in m:
        return "EAGAIN"
    if isinstance(e, MemoryError) or "Cannot allocate memory" in m:
        return "ENOMEM"
    return type(e).__name__


def run_thread(o, convs, live):
    def unit(i, c):
        live.enter()
        try:
            conv_thread(o, i, c)
        finally:
            live.leave()

    threads = []
    for i, c in enumerate(convs):
        t = threading.Thread(target=unit, args=(i, c), daemon=True)
        try:
            t.start()
            threads.append(t)
        except (RuntimeError, MemoryError) as e:
            live.failed(spawn_errno(e))
            c.cause = f"not started (Thread.start: {spawn_errno(e)})"
            c.start = c.end_t = now()
    for t in threads:
        t.join()


# ---- asyncio: standard-library streams --------------------------------------------

async def conv_asyncio(o, i, c):
    import asyncio
    deadline = c.arrival + o.timeout
    c.start = now()
    body = body_for(i, o.max_tokens, o.prompt_bytes)
    hdr = "".join(f"{k}: {v}\r\n" for k, v in headers_for(i, 1).items() if
                  k != "x-stainless-retry-count")
    while True:
        c.attempts += 1
        w = None
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() +
                                          max(deadline - now(), 0.001)):
                r, w = await asyncio.open_connection(o.host, o.port)
                w.write((f"POST /v1/chat/completions HTTP/1.1\r\nHost: {o.host}\r\n{hdr}"
                         f"x-stainless-retry-count: {c.attempts - 1}\r\n"
                         f"content-length: {len(body)}\r\n\r\n").encode() + body)
                head = await r.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ", 2)
                if len(parts) < 2 or not parts[1].isdigit():
                    raise StreamFailed("bad status line")
                code = int(parts[1])
                h = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k:
                        h[k.strip().lower()] = v.strip()
                chunked = "chunked" in h.get("transfer-encoding", "").lower()
                if code != 200:
                    if code in RETRY_STATUS:
                        raise RetryableStatus(code, retry_after(h.get))
                    raise StreamFailed(f"http {code}")
                cons = Consumer(c, deadline)
                if chunked:
                    while True:
                        size_line = await r.readuntil(b"\r\n")
                        size = int(size_line.split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            break
                        data = await r.readexactly(size + 2)
                        if cons.feed(data[:-2]):
                            break
                else:
                    while True:
                        data = await r.read(65536)
                        if not data or cons.feed(data):
                            break
                cons.finish()
            c.ok = True
            break
        except asyncio.IncompleteReadError:
            c.cause = "stream ended before [DONE]"
            break
        except Exception as e:  # noqa: BLE001
            d = should_retry(o, c, e)
            if d is None:
                c.cause = cause_of(e)
                break
            await asyncio.sleep(d)
        finally:
            if w:
                w.close()
    c.end_t = now()


# ---- httpx and aiohttp: the libraries an asyncio app uses -------------------------

async def conv_httpx(o, client, i, c):
    import asyncio
    deadline = c.arrival + o.timeout
    c.start = now()
    url = f"http://{o.host}:{o.port}/v1/chat/completions"
    body = body_for(i, o.max_tokens, o.prompt_bytes)
    while True:
        c.attempts += 1
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() +
                                          max(deadline - now(), 0.001)):
                async with client.stream("POST", url, content=body,
                                         headers=headers_for(i, c.attempts)) as res:
                    if res.status_code != 200:
                        await res.aread()
                        if res.status_code in RETRY_STATUS:
                            raise RetryableStatus(res.status_code, retry_after(res.headers.get))
                        raise StreamFailed(f"http {res.status_code}")
                    cons = Consumer(c, deadline)
                    async for chunk in res.aiter_raw():
                        if cons.feed(chunk):
                            break
                    cons.finish()
            c.ok = True
            break
        except Exception as e:  # noqa: BLE001
            d = should_retry(o, c, e)
            if d is None:
                c.cause = cause_of(e)
                break
            await asyncio.sleep(d)
    c.end_t = now()


async def conv_aiohttp(o, session, i, c):
    import asyncio
    deadline = c.arrival + o.timeout
    c.start = now()
    url = f"http://{o.host}:{o.port}/v1/chat/completions"
    body = body_for(i, o.max_tokens, o.prompt_bytes)
    while True:
        c.attempts += 1
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() +
                                          max(deadline - now(), 0.001)):
                async with session.post(url, data=body,
                                        headers=headers_for(i, c.attempts)) as res:
                    if res.status != 200:
                        await res.read()
                        if res.status in RETRY_STATUS:
                            raise RetryableStatus(res.status, retry_after(res.headers.get))
                        raise StreamFailed(f"http {res.status}")
                    cons = Consumer(c, deadline)
                    async for chunk in res.content.iter_any():
                        if cons.feed(chunk):
                            break
                    cons.finish()
            c.ok = True
            break
        except Exception as e:  # noqa: BLE001
            d = should_retry(o, c, e)
            if d is None:
                c.cause = cause_of(e)
                break
            await asyncio.sleep(d)
    c.end_t = now()


def run_async(o, convs, live):
    import asyncio

    async def unit(i, c, client):
        live.enter()
        try:
            if o.model == "asyncio":
                await conv_asyncio(o, i, c)
            elif o.model == "httpx":
                await conv_httpx(o, client, i, c)
            else:
                await conv_aiohttp(o, client, i, c)
        except BaseException as e:  # noqa: BLE001 - a cancellation is counted too
            if c.cause is None:
                c.cause = cause_of(e)
            c.end_t = now()
        finally:
            live.leave()

    async def main():
        client = None
        if o.model == "httpx":
            import httpx
            # AsyncOpenAI's own client: the SDK's DEFAULT_CONNECTION_LIMITS (1,000
            # connections, 100 kept alive) and its 5 s connect timeout; its 600 s read
            # timeout is left to the deadline each conversation carries
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000,
                                                           max_keepalive_connections=100),
                                       timeout=httpx.Timeout(o.timeout, connect=5.0))
        elif o.model == "aiohttp":
            import aiohttp
            client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                           timeout=aiohttp.ClientTimeout(total=None))
        tasks = []
        try:
            for i, c in enumerate(convs):
                try:
                    tasks.append(asyncio.create_task(unit(i, c, client)))
                except MemoryError as e:
                    live.failed(spawn_errno(e))
                    c.cause = "not started (create_task: ENOMEM)"
                    c.start = c.end_t = now()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if client is not None:
                await client.aclose() if o.model == "httpx" else await client.close()

    asyncio.run(main())


# ---- the report ---------------------------------------------------------------------

def quantile(v, p):
    """Nearest rank, as wl-llm and the Ruby client: the ceil(p*n)-th smallest."""
    if not v:
        return 0.0
    k = min(max(int(p * len(v) + 0.999999), 1), len(v))
    return v[k - 1]


def itl_quantile(p):
    n = sum(ITL)
    if not n:
        return 0.0
    rank = int(p * n + 0.999999)
    seen = 0
    for b, cnt in enumerate(ITL):
        seen += cnt
        if seen >= rank:
            return 2.0 ** ((b + 1) / 4.0) / 1000.0
    return 0.0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--target", required=True, help="mock-llm, loopback IPv4 H:P")
    ap.add_argument("--n", type=int, default=100, help="conversations (default 100)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max_tokens asked (64)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds per conversation, from arrival (default 120)")
    ap.add_argument("--retries", type=int, default=2, help="retries before the stream (2)")
    ap.add_argument("--per-conv", help="also write one CSV line per conversation")
    ap.add_argument("--prompt-bytes", type=int, default=0,
                    help="pad each prompt to this many bytes (default 0: the short prompt)")
    o = ap.parse_args(argv)
    if not 0 <= o.prompt_bytes <= PROMPT_BYTES_MAX:
        ap.error(f"--prompt-bytes must be 0..{PROMPT_BYTES_MAX}")
    if not 1 <= o.n <= 1_000_000:
        ap.error("--n must be 1..1000000")
    if not 1 <= o.max_tokens <= 100_000:
        ap.error("--max-tokens must be 1..100000")
    if not o.timeout > 0:
        ap.error("--timeout must be > 0")
    if not 0 <= o.retries <= 10:
        ap.error("--retries must be 0..10")
    m = re.fullmatch(r"(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})", o.target)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        ap.error(f"bad --target '{o.target}' (want 127.x.x.x:PORT: loopback only)")
    o.host, o.port = m.group(1), int(m.group(2))
    return o


def main(argv):
    o = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # load what the model needs before the baseline, so the baseline includes it
    if o.model in ("asyncio", "httpx", "aiohttp"):
        import asyncio  # noqa: F401
        if o.model == "httpx":
            import httpx  # noqa: F401
        elif o.model == "aiohttp":
            import aiohttp  # noqa: F401
    gc.collect()
    rss_base = status_kib("VmRSS")
    cpu0 = time.process_time()
    t0 = now()
    convs = [Conv(t0) for _ in range(o.n)]
    live = Live()
    if o.model == "thread":
        run_thread(o, convs, live)
    else:
        run_async(o, convs, live)
    cpu = time.process_time() - cpu0
    rss_peak = status_kib("VmHWM")

    ok = sum(1 for c in convs if c.ok)
    failed = o.n - ok
    causes = {}
    for c in convs:
        if not c.ok:
            k = c.cause or "unknown"
            causes[k] = causes.get(k, 0) + 1
    tokens = sum((c.tokens or c.deltas) for c in convs if c.ok)
    last_end = max((c.end_t or t0) for c in convs)
    elapsed = last_end - t0

    def ttft(c):
        return (c.first_token - c.arrival) * 1000.0

    alls = sorted(ttft(c) for c in convs if c.first_token)
    first25 = sorted(ttft(c) for c in convs[:25] if c.first_token)
    rest = sorted(ttft(c) for c in convs[25:] if c.first_token)
    total = sorted((c.end_t - c.arrival) * 1000.0 for c in convs if c.ok)
    u26 = ttft(convs[25]) if len(convs) > 25 and convs[25].first_token else -1
    libs = {"thread": "http.client", "asyncio": "asyncio-streams"}
    if o.model == "httpx":
        import httpx
        libs["httpx"] = f"httpx-{httpx.__version__}"
    elif o.model == "aiohttp":
        import aiohttp
        libs["aiohttp"] = f"aiohttp-{aiohttp.__version__}"
    out = {
        "model": o.model, "kind": "thread" if o.model == "thread" else "fiber",
        "runtime": f"python-{sys.version.split()[0]}", "library": libs[o.model],
        "n": o.n, "ok": ok, "failed": failed, "not_started": live.spawn_failed,
        "retries": sum(max(c.attempts - 1, 0) for c in convs),
        "elapsed_s": elapsed, "conv_per_s": ok / elapsed if elapsed > 0 else 0,
        "tokens": tokens, "tokens_per_s": tokens / elapsed if elapsed > 0 else 0,
        "ttft_p50_ms": quantile(alls, 0.5), "ttft_p99_ms": quantile(alls, 0.99),
        "ttft_max_ms": alls[-1] if alls else 0, "ttft_user26_ms": u26,
        "ttft_first25_p50_ms": quantile(first25, 0.5),
        "ttft_rest_p50_ms": quantile(rest, 0.5), "ttft_rest_p99_ms": quantile(rest, 0.99),
        "total_p50_ms": quantile(total, 0.5), "total_p99_ms": quantile(total, 0.99),
        "itl_p50_ms": itl_quantile(0.5), "itl_p99_ms": itl_quantile(0.99),
        "itl_gaps": sum(ITL),
        "rss_base_kib": rss_base, "rss_peak_kib": rss_peak, "cpu_s": cpu,
        "cpu_s_per_1k_tokens": cpu / (tokens / 1000.0) if tokens else 0,
        "peak_live": live.peak, "units_started": live.started,
        "spawn_failed": live.spawn_failed, "spawn_errno": live.spawn_errno, "nofile": hard,
        "causes": causes,
    }
    if o.per_conv:
        def rel(t):
            return f"{(t - t0) * 1000.0:.3f}" if t is not None else "-1"
        with open(o.per_conv, "w") as f:
            f.write("index,arrival_ms,start_ms,first_token_ms,end_ms,tokens,attempts,ok,cause\n")
            for i, c in enumerate(convs):
                cause = (c.cause or "").replace('"', "'")
                f.write(f"{i},{rel(c.arrival)},{rel(c.start)},{rel(c.first_token)},"
                        f"{rel(c.end_t)},{c.tokens},{c.attempts},{int(c.ok)},\"{cause}\"\n")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
