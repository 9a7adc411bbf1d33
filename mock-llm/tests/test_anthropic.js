// The official Anthropic SDK against mock-llm's /v1/messages: the streaming helper, raw
// stream events in order, non-streaming, max_tokens stop reason, count_tokens, and a typed
// error.
//   node test_anthropic.js PORT   (NODE_PATH points at the cached node_modules)
'use strict';
const assert = require('node:assert/strict');
const AnthropicMod = require('@anthropic-ai/sdk');
const Anthropic = AnthropicMod.default || AnthropicMod;

const port = process.argv[2];
const client = new Anthropic({ baseURL: `${process.env.MLLM_SCHEME || 'http'}://127.0.0.1:${port}`, apiKey: 'sk-ant-mock', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Say something about fibers.' }];

async function main() {
  // the stream helper accumulates the message from the events
  const stream = client.messages.stream({ model: 'claude-sonnet-4', max_tokens: 6, messages });
  let deltas = '';
  stream.on('text', (t) => { deltas += t; });
  const msg = await stream.finalMessage();
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.stop_reason, 'max_tokens');
  assert.equal(msg.usage.output_tokens, 6);
  assert.ok(msg.usage.input_tokens > 0);
  assert.equal(msg.content[0].type, 'text');
  assert.equal(msg.content[0].text, deltas);
  console.log(`anthropic stream ok: ${JSON.stringify(deltas)}`);

  // raw events, in the documented order
  const raw = await client.messages.create({ model: 'mock', max_tokens: 3, messages, stream: true });
  const types = [];
  for await (const ev of raw) types.push(ev.type);
  assert.deepEqual(types.filter((t) => t !== 'ping' && t !== 'content_block_delta'),
    ['message_start', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop']);
  assert.equal(types.filter((t) => t === 'content_block_delta').length, 3);

  const whole = await client.messages.create({ model: 'mock', max_tokens: 1000, messages });
  assert.equal(whole.type, 'message');
  assert.equal(whole.stop_reason, 'end_turn');
  assert.equal(whole.usage.output_tokens, 32);

  // count_tokens: the input_tokens a message with the same body reports
  const counted = await client.messages.countTokens({ model: 'mock', messages });
  assert.equal(counted.input_tokens, whole.usage.input_tokens);
  const withSystem = await client.messages.countTokens({ model: 'mock', messages, system: 'x'.repeat(400) });
  assert.equal(withSystem.input_tokens, whole.usage.input_tokens + 100 + 3);

  await assert.rejects(client.messages.create({ model: 'claude-99', max_tokens: 5, messages }), (e) => {
    assert.ok(e instanceof Anthropic.NotFoundError, e.constructor.name);
    assert.equal(e.status, 404);
    // in Anthropic's words, as the API answers an unknown model id
    assert.equal(e.error.error.message, 'model: claude-99');
    return true;
  });
  await assert.rejects(client.messages.countTokens({ model: 'claude-99', messages }), (e) => {
    assert.ok(e instanceof Anthropic.NotFoundError, e.constructor.name);
    assert.equal(e.error.error.message, 'model: claude-99');
    return true;
  });
  // a field error in its validator's words ("<dotted path>: <what>")
  await assert.rejects(client.messages.create({ model: 'mock', max_tokens: 5, messages: [] }), (e) => {
    assert.ok(e instanceof Anthropic.BadRequestError, e.constructor.name);
    assert.equal(e.error.error.message, 'messages: at least one message is required');
    return true;
  });
  console.log('PASS: anthropic SDK');
}

main().catch((e) => { console.error('FAIL:', e); process.exit(1); });
