// mock-llm --tls as real clients meet it: the official openai SDK over HTTPS with the
// server's own certificate verified (NODE_EXTRA_CA_CERTS, set for this process by
// test_openai_npm.sh), a long multi-turn prompt, concurrent streams, and clients that
// do not speak TLS: each gets its connection closed and the server keeps serving.
//   node test_tls.js PORT
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const crypto = require('node:crypto');
const OpenAI = require('openai');

const port = Number(process.argv[2]);
const client = new OpenAI({ baseURL: `https://127.0.0.1:${port}/v1`, apiKey: 'sk-mock', maxRetries: 0 });

// Resolves when the server closes the socket; fails after ms.
function closedWithin(sock, ms, what) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { sock.destroy(); reject(new Error(`${what}: still open after ${ms} ms`)); }, ms);
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(t); resolve(); });
    sock.resume();
  });
}

async function streamOnce(messages, maxTokens) {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o', messages, stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens,
  });
  let deltas = 0, usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (c && c.delta.content) deltas++;
    if (c && c.finish_reason) finish = c.finish_reason;
  }
  return { deltas, usage, finish };
}

async function main() {
  // The certificate names 127.0.0.1 and localhost, and verifies (no opt-out anywhere).
  const cert = fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS);
  for (const host of ['127.0.0.1', 'localhost']) {
    const s = tls.connect({ host: '127.0.0.1', port, servername: host === 'localhost' ? host : undefined, ca: cert });
    await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    assert.ok(s.authorized, `${host}: ${s.authorizationError}`);
    assert.match(s.getPeerCertificate().subjectaltname, /IP Address:127\.0\.0\.1/);
    s.end();
  }

  // A real conversation: a ~50 KB system prompt and a multi-turn history, streamed.
  const system = 'You are a careful assistant. '.repeat(1800); // ~50 KB
  const history = [{ role: 'system', content: system }];
  for (let i = 0; i < 6; i++) {
    history.push({ role: 'user', content: `Question ${i}: ${'why are fibers cheap? '.repeat(40)}` });
    history.push({ role: 'assistant', content: `Answer ${i}: ${'because they are small. '.repeat(40)}` });
  }
  history.push({ role: 'user', content: 'And threads?' });
  const r = await streamOnce(history, 6);
  assert.equal(r.deltas, 6);
  assert.equal(r.finish, 'length');
  assert.ok(r.usage.prompt_tokens > 12000, `prompt_tokens ${r.usage.prompt_tokens}`);

  // 40 concurrent streams over 40 TLS connections.
  const all = await Promise.all(Array.from({ length: 40 }, (_, i) =>
    streamOnce([{ role: 'user', content: `stream ${i}` }], 8)));
  for (const x of all) assert.equal(x.deltas, 8);

  // Clients that do not speak TLS get a close, not a hang, and do not hurt the server.
  const garbage = net.connect(port, '127.0.0.1', () => garbage.write(crypto.randomBytes(3000)));
  await closedWithin(garbage, 3000, 'garbage handshake');
  const plain = net.connect(port, '127.0.0.1', () =>
    plain.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
  await closedWithin(plain, 3000, 'plain HTTP on the TLS port');
  // A client that starts a handshake and stops in the middle is closed by the header
  // timeout, not held forever; here we only check the server still answers meanwhile.
  const half = net.connect(port, '127.0.0.1', () => half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
  half.on('error', () => {});
  const again = await streamOnce([{ role: 'user', content: 'still there?' }], 3);
  assert.equal(again.deltas, 3);
  half.destroy();

  const metrics = await (await fetch(`https://127.0.0.1:${port}/metrics`)).text();
  const failures = Number(/mllm_tls_handshake_failures_total (\d+)/.exec(metrics)[1]);
  assert.ok(failures >= 2, `handshake failures counted: ${failures}`);
  console.log(`tls ok: verified certificate, 50 KB prompt (${r.usage.prompt_tokens} prompt tokens), 40 concurrent streams, ${failures} bad handshakes closed`);
}

main().catch((e) => { console.error(e); process.exit(1); });
