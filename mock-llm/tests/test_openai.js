// The official openai SDK against mock-llm: streaming with usage, non-streaming, model
// list, typed errors, the SDK's own retries on 503, and an error frame mid-stream.
//   node test_openai.js PORT   (NODE_PATH points at the cached node_modules)
'use strict';
const assert = require('node:assert/strict');
const OpenAI = require('openai');

const port = process.argv[2];
// MLLM_SCHEME=https: the same test over TLS (test_openai_npm.sh trusts the server's
// certificate for this process only, with NODE_EXTRA_CA_CERTS).
const baseURL = `${process.env.MLLM_SCHEME || 'http'}://127.0.0.1:${port}/v1`;
const client = new OpenAI({ baseURL, apiKey: 'sk-mock', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Say something about fibers.' }];

async function main() {
  const models = await client.models.list();
  const ids = models.data.map((m) => m.id);
  for (const want of ['mock', 'gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4']) assert.ok(ids.includes(want), want);

  // streaming, capped: role first, 5 content deltas, finish "length", then usage
  const stream = await client.chat.completions.create({
    model: 'mock', messages, stream: true, stream_options: { include_usage: true }, max_tokens: 5,
  });
  let text = '', deltas = 0, finish = null, usage = null, id = null, role = null;
  for await (const chunk of stream) {
    id = id ?? chunk.id;
    assert.equal(chunk.id, id);
    assert.equal(chunk.model, 'mock');
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) { text += c.delta.content; deltas++; }
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(deltas, 5);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 5);
  assert.equal(usage.total_tokens, usage.prompt_tokens + 5);
  console.log(`stream ok: ${JSON.stringify(text)}`);

  // the SDK's stream helper (runner) accumulates the same answer
  const runner = helpers(client).stream({ model: 'gpt-4o', messages, max_tokens: 4 });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'length');
  assert.ok(final.choices[0].message.content.length > 0);

  const whole = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].finish_reason, 'stop');
  assert.equal(whole.usage.completion_tokens, 32);

  await assert.rejects(client.chat.completions.create({ model: 'gpt-99', messages }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e.constructor.name);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  // n above OpenAI's 128 (n 2..128 are answered: test_sdk_traffic.js)
  await assert.rejects(client.chat.completions.create({ model: 'mock', messages, n: 129 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'n');
    assert.equal(e.code, 'integer_above_max_value');
    return true;
  });
  await assert.rejects(
    client.chat.completions.create({ model: 'mock', messages }, { headers: { 'x-mock-inject': '429' } }),
    (e) => { assert.ok(e instanceof OpenAI.RateLimitError); assert.equal(header(e, 'retry-after-ms'), '10'); return true; });
  await assert.rejects(
    client.chat.completions.create({ model: 'mock', messages }, { headers: { 'x-mock-inject': '500' } }),
    (e) => { assert.ok(e instanceof OpenAI.InternalServerError); return true; });

  // the SDK retries a 503 twice, honouring retry-after-ms (10 ms here)
  const before = await metric('mllm_requests_total{status="503"}');
  const retrying = new OpenAI({ baseURL, apiKey: 'sk-mock', maxRetries: 2 });
  await assert.rejects(
    retrying.chat.completions.create({ model: 'mock', messages }, { headers: { 'x-mock-inject': '503' } }),
    (e) => { assert.equal(e.status, 503); return true; });
  assert.equal((await metric('mllm_requests_total{status="503"}')) - before, 3);

  // an error frame in the middle of a stream raises from the iterator
  const broken = await client.chat.completions.create(
    { model: 'mock', messages, stream: true }, { headers: { 'x-mock-inject': 'midstream' } });
  let got = 0;
  await assert.rejects((async () => { for await (const c of broken) { if (c.choices[0]?.delta?.content) got++; } })(),
    (e) => { assert.ok(e instanceof OpenAI.APIError, e.constructor.name); return true; });
  assert.ok(got > 0);
  console.log('PASS: openai SDK');
}

// The SDK's majors differ where these tests touch them: openai 4's chat helpers (stream,
// parse, runTools) are under beta and an error's headers a plain object; from 5 on they
// are on chat.completions and a fetch Headers. The tests run on both (4 is what
// test_openai_npm.sh installs; a new user gets the latest).
function helpers(c) { return c.chat.completions.stream ? c.chat.completions : c.beta.chat.completions; }
function header(e, name) { return typeof e.headers?.get === 'function' ? e.headers.get(name) : e.headers[name]; }

async function metric(name) {
  const text = await (await fetch(`${baseURL.slice(0, -3)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return Number(line.split(' ')[1]);
}

main().catch((e) => { console.error('FAIL:', e); process.exit(1); });
