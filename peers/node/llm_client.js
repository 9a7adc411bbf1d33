#!/usr/bin/env node
// peers/node/llm_client.js - N concurrent streaming chat completions against mock-llm
// from Node, through the official `openai` npm SDK on the event loop, measured from
// inside the process. The Node twin of build/bin/wl-llm and peers/ruby/llm_client.rb:
// the same request, the same request index per conversation (so every model meets the
// same draws), the same metrics, one JSON object on stdout in the same shape
// (peers/bench.py turns runs into results/peers.csv).
//
//   NODE_PATH=~/.cache/fiberbench/npm/node_modules \
//     node peers/node/llm_client.js --target 127.0.0.1:PORT --n N [--max-tokens T]
//          [--timeout S] [--retries R] [--per-conv FILE]
//
// One OpenAI client for all conversations, as an app has (the SDK's keep-alive agent,
// no cap on sockets); each conversation is `chat.completions.create({stream: true})`
// with 'x-mock-request-index: i' and `for await` over its chunks (the SDK parses the SSE
// and JSON), timed from the user's arrival (all arrive at once). The SDK retries by
// itself (maxRetries, 2 by default, as the other clients imitate); attempts are counted
// through the SDK's `fetch` option. A deadline per conversation aborts it (signal).
//
// Exit status: 0 run done (failed conversations are counted, not fatal), 2 bad usage.
'use strict';
const fs = require('node:fs');

function usage(msg) {
  process.stderr.write(`llm_client.js: ${msg} (see --help)\n`);
  process.exit(2);
}

// Conversation i's prompt, padded with "fibers " to promptBytes bytes when that is longer
// (the same rule in every peer client; real requests carry kilobytes of prompt).
function promptFor(i, promptBytes) {
  const base = `Conversation ${i}: tell me about fibers.`;
  if (promptBytes <= base.length) return base;
  const pad = promptBytes - base.length - 1;
  return base + ' ' + 'fibers '.repeat(Math.floor(pad / 7) + 1).slice(0, pad);
}

function parseArgs(argv) {
  const o = { target: null, n: 100, maxTokens: 64, timeout: 120, retries: 2, perConv: null,
    promptBytes: 0, transport: 'node-fetch' };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    const val = () => {
      if (k + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++k];
    };
    const int = (lo, hi) => {
      const s = val();
      if (!/^\d+$/.test(s) || +s < lo || +s > hi) usage(`${a} must be ${lo}..${hi}`);
      return +s;
    };
    switch (a) {
      case '--target': o.target = val(); break;
      case '--n': o.n = int(1, 1000000); break;
      case '--max-tokens': o.maxTokens = int(1, 100000); break;
      case '--prompt-bytes': o.promptBytes = int(0, 1048576); break;
      case '--retries': o.retries = int(0, 10); break;
      case '--timeout': {
        const s = val();
        if (!(+s > 0)) usage('--timeout must be > 0');
        o.timeout = +s;
        break;
      }
      case '--per-conv': o.perConv = val(); break;
      case '--transport': {
        // node-fetch: what openai@4 uses by default (passed in, as the harness measures it);
        // sdk-default: whatever the installed SDK uses on its own (openai@5 and later:
        // Node's global fetch, undici) - the review's probe of the current SDK
        o.transport = val();
        if (o.transport !== 'node-fetch' && o.transport !== 'sdk-default')
          usage('--transport must be node-fetch or sdk-default');
        break;
      }
      case '--model': if (val() !== 'openai') usage('--model must be openai'); break;
      case '--help':
        process.stdout.write('usage: node llm_client.js --target 127.0.0.1:PORT [--n N] ' +
          '[--max-tokens T] [--prompt-bytes B] [--timeout S] [--retries R] [--per-conv FILE] ' +
          '[--transport node-fetch|sdk-default]\n');
        process.exit(0);
        break;
      default: usage(`unknown argument '${a}'`);
    }
  }
  const m = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})$/.exec(o.target || '');
  if (!m || +m[2] < 1 || +m[2] > 65535) usage(`bad --target '${o.target}' (want 127.x.x.x:PORT: loopback only)`);
  return o;
}

function statusKiB(key) {
  try {
    for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
      if (line.startsWith(`${key}:`)) return parseInt(line.slice(key.length + 1), 10);
    }
  } catch (e) { /* not Linux */ }
  return -1;
}

const now = () => performance.now() / 1000;

// Gaps between deltas, log-bucketed like wl-llm (4 buckets per octave of µs).
const ITL_BUCKETS = 96;
const itl = new Array(ITL_BUCKETS).fill(0);
function itlAdd(gapS) {
  const us = gapS * 1e6;
  const b = us < 1 ? 0 : Math.floor(4 * Math.log2(us));
  itl[Math.min(b, ITL_BUCKETS - 1)]++;
}

// 'ECONNREFUSED' for a system error under the SDK's wrapper, 'http 503' for a status,
// 'timeout' for our deadline, else the error's class.
function causeOf(e, aborted) {
  if (aborted) return 'timeout';
  if (e && typeof e.status === 'number') return `http ${e.status}`;
  // the SDK throws an APIError without a status for an error event inside the stream
  if (e && e.constructor && e.constructor.name === 'APIError') return 'error frame';
  let c = e;
  for (let k = 0; k < 4 && c; k++) {
    if (c.code && /^E[A-Z]+$/.test(c.code)) return c.code;
    if (c.errno && typeof c.errno === 'string' && /^E[A-Z]+$/.test(c.errno)) return c.errno;
    c = c.cause;
  }
  if (e && /before \[DONE\]|terminated|premature/i.test(e.message || '')) return 'stream ended before [DONE]';
  return (e && e.constructor && e.constructor.name) || 'unknown';
}

function quantile(v, p) {
  if (!v.length) return 0;
  const k = Math.min(Math.max(Math.floor(p * v.length + 0.999999), 1), v.length);
  return v[k - 1];
}

function itlQuantile(p) {
  const n = itl.reduce((a, b) => a + b, 0);
  if (!n) return 0;
  const rank = Math.floor(p * n + 0.999999);
  let seen = 0;
  for (let b = 0; b < ITL_BUCKETS; b++) {
    seen += itl[b];
    if (seen >= rank) return 2 ** ((b + 1) / 4) / 1000;
  }
  return 0;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  // loaded before the baseline, so the baseline includes the SDK
  const OpenAI = require('openai');
  const sdkVersion = require('openai/version').VERSION;
  const attempts = new Map();
  // attempts are counted per request index around whichever fetch carries the requests
  const counted = (f) => (url, init) => {
    const h = init && init.headers;
    const i = h && (h['x-mock-request-index'] ?? (h.get && h.get('x-mock-request-index')));
    if (i !== undefined && i !== null) attempts.set(+i, (attempts.get(+i) || 0) + 1);
    return f(url, init);
  };
  const opts = {
    baseURL: `http://${o.target}/v1`, apiKey: 'sk-mock', maxRetries: o.retries,
    // per request until its headers; the deadline below bounds the whole conversation
    timeout: o.timeout * 1000,
  };
  if (o.transport === 'node-fetch') {
    const nodeFetch = require('node-fetch');
    opts.fetch = counted(nodeFetch.default || nodeFetch);
  } else {
    globalThis.fetch = counted(globalThis.fetch);
  }
  const client = new OpenAI(opts);
  if (global.gc) global.gc();
  const rssBase = statusKiB('VmRSS');
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const convs = Array.from({ length: o.n }, () => ({
    arrival: t0, start: null, firstToken: null, end: null, lastDelta: null, tokens: 0,
    deltas: 0, ok: false, cause: null,
  }));
  let live = 0, peak = 0, started = 0;

  async function conv(i) {
    const c = convs[i];
    live++; started++;
    if (live > peak) peak = live;
    c.start = now();
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.max(c.arrival + o.timeout - now(), 0.001) * 1000);
    try {
      const stream = await client.chat.completions.create({
        model: 'mock', stream: true, stream_options: { include_usage: true },
        max_tokens: o.maxTokens,
        messages: [{ role: 'user', content: promptFor(i, o.promptBytes) }],
      }, { headers: { 'x-mock-request-index': String(i) }, signal: ac.signal });
      let done = false;
      for await (const chunk of stream) {
        const ch = chunk.choices && chunk.choices[0];
        const content = ch && ch.delta && ch.delta.content;
        if (content) {
          const t = now();
          if (c.firstToken === null) c.firstToken = t;
          else itlAdd(t - c.lastDelta);
          c.lastDelta = t;
          c.deltas++;
        }
        if (chunk.usage && chunk.usage.completion_tokens) {
          c.tokens = chunk.usage.completion_tokens;
          done = true;
        }
      }
      // The SDK swallows [DONE] and ends the iteration the same way when the stream is
      // cut short, so the usage chunk (include_usage: mock-llm sends it last, right before
      // [DONE]) is the mark of a complete stream: without it the conversation failed,
      // however many deltas came (as the C, Python, Go and Ruby clients count it).
      if (!done) throw new Error('stream ended before [DONE]');
      c.ok = true;
    } catch (e) {
      c.cause = causeOf(e, ac.signal.aborted);
    } finally {
      clearTimeout(timer);
      c.end = now();
      live--;
    }
  }

  await Promise.all(convs.map((_, i) => conv(i)));
  const cu = process.cpuUsage(cpu0);
  const cpu = (cu.user + cu.system) / 1e6;
  const rssPeak = statusKiB('VmHWM');

  let ok = 0, failed = 0, tokens = 0, retries = 0, last = t0;
  const causes = {};
  convs.forEach((c, i) => {
    if (c.end > last) last = c.end;
    retries += Math.max((attempts.get(i) || 1) - 1, 0);
    if (c.ok) { ok++; tokens += c.tokens || c.deltas; } else {
      failed++;
      causes[c.cause || 'unknown'] = (causes[c.cause || 'unknown'] || 0) + 1;
    }
  });
  const elapsed = last - t0;
  const ttft = (c) => (c.firstToken - c.arrival) * 1000;
  const num = (a, b) => a - b;
  const all = convs.filter((c) => c.firstToken !== null).map(ttft).sort(num);
  const first25 = convs.slice(0, 25).filter((c) => c.firstToken !== null).map(ttft).sort(num);
  const rest = convs.slice(25).filter((c) => c.firstToken !== null).map(ttft).sort(num);
  const total = convs.filter((c) => c.ok).map((c) => (c.end - c.arrival) * 1000).sort(num);
  const u26 = convs.length > 25 && convs[25].firstToken !== null ? ttft(convs[25]) : -1;
  let nofile = -1;
  try {
    const m = /Max open files\s+\d+\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) nofile = +m[1];
  } catch (e) { /* not Linux */ }
  const out = {
    model: 'openai', kind: 'fiber', runtime: `node-${process.versions.node}`,
    library: `openai-${sdkVersion}`, n: o.n, ok, failed, not_started: 0, retries,
    elapsed_s: elapsed, conv_per_s: elapsed > 0 ? ok / elapsed : 0, tokens,
    tokens_per_s: elapsed > 0 ? tokens / elapsed : 0,
    ttft_p50_ms: quantile(all, 0.5), ttft_p99_ms: quantile(all, 0.99),
    ttft_max_ms: all.length ? all[all.length - 1] : 0, ttft_user26_ms: u26,
    ttft_first25_p50_ms: quantile(first25, 0.5), ttft_rest_p50_ms: quantile(rest, 0.5),
    ttft_rest_p99_ms: quantile(rest, 0.99), total_p50_ms: quantile(total, 0.5),
    total_p99_ms: quantile(total, 0.99), itl_p50_ms: itlQuantile(0.5),
    itl_p99_ms: itlQuantile(0.99), itl_gaps: itl.reduce((a, b) => a + b, 0),
    rss_base_kib: rssBase, rss_peak_kib: rssPeak, cpu_s: cpu,
    cpu_s_per_1k_tokens: tokens ? cpu / (tokens / 1000) : 0, peak_live: peak,
    units_started: started, spawn_failed: 0, spawn_errno: '', nofile, causes,
  };
  if (o.perConv) {
    const rel = (t) => (t === null ? '-1' : ((t - t0) * 1000).toFixed(3));
    const lines = ['index,arrival_ms,start_ms,first_token_ms,end_ms,tokens,attempts,ok,cause'];
    convs.forEach((c, i) => lines.push([i, rel(c.arrival), rel(c.start), rel(c.firstToken), rel(c.end),
      c.tokens, attempts.get(i) || 0, c.ok ? 1 : 0, `"${(c.cause || '').replace(/"/g, "'")}"`].join(',')));
    fs.writeFileSync(o.perConv, `${lines.join('\n')}\n`);
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  process.stderr.write(`llm_client.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
