// What real AI apps send, through the official SDKs unchanged: prompts of 1 KiB, 64 KiB
// and just under the 1 MiB body limit, a ~50 KB system prompt with a multi-turn history,
// tool calls with the SDKs' tool helpers (streamed and not, with the follow-up turn),
// and the Responses API (create, stream, responses.stream, max_output_tokens, function
// tools). usage.prompt_tokens is checked against mock-llm's stated rule:
// ceil(bytes / 4) + 3 per message + 3 (tools add their JSON's bytes).
//   node test_sdk_traffic.js PORT   (NODE_PATH points at the cached node_modules)
'use strict';
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const AnthropicMod = require('@anthropic-ai/sdk');
const Anthropic = AnthropicMod.default || AnthropicMod;

const port = process.argv[2];
const scheme = process.env.MLLM_SCHEME || 'http'; // https: test_openai_npm.sh runs it over TLS too
const openai = new OpenAI({ baseURL: `${scheme}://127.0.0.1:${port}/v1`, apiKey: 'sk-mock', maxRetries: 0 });
// openai 4's chat helpers (stream, parse, runTools) are under beta, from 5 on on
// chat.completions: the tests run on both (4 is what test_openai_npm.sh installs)
const chatHelpers = openai.chat.completions.stream ? openai.chat.completions : openai.beta.chat.completions;
const anthropic = new Anthropic({ baseURL: `${scheme}://127.0.0.1:${port}`, apiKey: 'sk-ant-mock', maxRetries: 0 });

const prose = (n) => 'the quick brown fox jumps over the lazy dog and '.repeat(Math.ceil(n / 48)).slice(0, n);
const rule = (bytes, messages) => Math.ceil(bytes / 4) + 3 * messages + 3;

// A ~50 KB system prompt and ten turns of history before the question.
function history() {
  const msgs = [{ role: 'system', content: prose(50 * 1024) }];
  for (let i = 0; i < 5; i++) {
    msgs.push({ role: 'user', content: `question ${i}: ${prose(300)}` });
    msgs.push({ role: 'assistant', content: `answer ${i}: ${prose(500)}` });
  }
  msgs.push({ role: 'user', content: 'And now, the summary?' });
  return msgs;
}
const bytesOf = (msgs) => msgs.reduce((n, m) => n + Buffer.byteLength(m.content), 0);

const weather = {
  name: 'get_weather',
  description: 'The weather of a city',
  parameters: {
    type: 'object',
    properties: {
      city: { type: 'string' },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      days: { type: 'integer', minimum: 1, maximum: 7 },
    },
    required: ['city', 'unit', 'days'],
  },
};
function checkWeatherArgs(a) {
  assert.equal(typeof a.city, 'string');
  assert.ok(['celsius', 'fahrenheit'].includes(a.unit), a.unit);
  assert.ok(Number.isInteger(a.days) && a.days >= 1 && a.days <= 7, String(a.days));
}

async function openaiLongPrompts() {
  for (const size of [1024, 64 * 1024, (1 << 20) - 600]) {
    const messages = [{ role: 'user', content: prose(size) }];
    const stream = await openai.chat.completions.create({
      model: 'mock', messages, stream: true, stream_options: { include_usage: true }, max_tokens: 3,
    });
    let usage = null, text = '';
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      text += c.choices[0]?.delta?.content ?? '';
    }
    assert.equal(usage.prompt_tokens, rule(size, 1), `prompt of ${size} bytes`);
    assert.equal(usage.completion_tokens, 3);
    assert.ok(text.length > 0);
  }
  const msgs = history();
  const whole = await openai.chat.completions.create({ model: 'gpt-4o', messages: msgs, max_tokens: 4 });
  assert.equal(whole.usage.prompt_tokens, rule(bytesOf(msgs), msgs.length));
  assert.equal(whole.choices[0].finish_reason, 'length');
  console.log(`openai long prompts ok (history: ${whole.usage.prompt_tokens} prompt tokens)`);
}

async function openaiTools() {
  const tools = [{ type: 'function', function: weather }];
  const messages = [{ role: 'user', content: 'Weather in Lyon?' }];

  // raw stream: the first tool_calls delta has index, id, type, name; arguments follow
  // in fragments; finish_reason tool_calls
  const raw = await openai.chat.completions.create({ model: 'mock', messages, tools, stream: true,
    tool_choice: 'required', stream_options: { include_usage: true } });
  let args = '', head = null, finish = null, fragments = 0, usage = null;
  for await (const c of raw) {
    if (c.usage) usage = c.usage;
    const d = c.choices[0]?.delta;
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    for (const tc of d?.tool_calls ?? []) {
      if (!head) head = tc;
      assert.equal(tc.index, 0);
      if (tc.function?.arguments) { args += tc.function.arguments; fragments++; }
    }
  }
  assert.equal(head.type, 'function');
  assert.equal(head.function.name, 'get_weather');
  assert.match(head.id, /^call_/);
  assert.equal(finish, 'tool_calls');
  assert.ok(fragments > 1, `${fragments} argument fragments`);
  checkWeatherArgs(JSON.parse(args));
  assert.equal(usage.completion_tokens, Math.ceil(args.length / 4));
  assert.ok(usage.prompt_tokens > rule(Buffer.byteLength(messages[0].content), 1), 'tools count');

  // the SDK's stream helper accumulates the same call
  const helper = chatHelpers.stream({ model: 'mock', messages, tools,
    tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  let doneArgs = null;
  helper.on('tool_calls.function.arguments.done', (e) => { doneArgs = e.arguments; });
  const final = await helper.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  checkWeatherArgs(JSON.parse(call.function.arguments));
  assert.equal(doneArgs, call.function.arguments);

  // a call that does not fit max_tokens is cut there, as the API cuts it: the helper's
  // accumulated arguments stop mid-JSON and finish_reason is "length", not "tool_calls"
  // (before, the whole call came whatever max_tokens said)
  const cutHelper = chatHelpers.stream({ model: 'mock', messages, tools, max_tokens: 3,
    tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  const cutFinal = await cutHelper.finalChatCompletion();
  assert.equal(cutFinal.choices[0].finish_reason, 'length');
  const cutArgs = cutFinal.choices[0].message.tool_calls[0].function.arguments;
  assert.ok(cutArgs.length > 0 && cutArgs.length <= 12, cutArgs);
  assert.throws(() => JSON.parse(cutArgs));
  assert.equal(cutFinal.usage?.completion_tokens ?? 3, 3);

  // runTools: the SDK calls our function with the parsed arguments, sends the result
  // back as a role "tool" message, and mock-llm answers that turn with text
  const seen = [];
  for (const stream of [false, true]) {
    const runner = chatHelpers.runTools({
      model: 'gpt-4o', messages, stream,
      tools: [{ type: 'function', function: { ...weather, parse: JSON.parse,
        function: (a) => { seen.push(a); return { temperature: 21, sky: 'clear' }; } } }],
    });
    const content = await runner.finalContent();
    assert.ok(typeof content === 'string' && content.length > 0);
    const all = runner.messages;
    assert.equal(all.filter((m) => m.role === 'tool').length, 1);
  }
  assert.equal(seen.length, 2);
  seen.forEach(checkWeatherArgs);

  // non-streaming, and tool_choice none gives text
  const whole = await openai.chat.completions.create({ model: 'mock', messages, tools, tool_choice: 'required' });
  checkWeatherArgs(JSON.parse(whole.choices[0].message.tool_calls[0].function.arguments));
  assert.equal(whole.choices[0].message.content, null);
  const none = await openai.chat.completions.create({ model: 'mock', messages, tools, tool_choice: 'none' });
  assert.equal(none.choices[0].finish_reason, 'stop');
  assert.ok(none.choices[0].message.content.length > 0);
  await assert.rejects(openai.chat.completions.create({ model: 'mock', messages, tool_choice: 'required' }),
    (e) => { assert.ok(e instanceof OpenAI.BadRequestError); assert.equal(e.param, 'tool_choice'); return true; });
  console.log(`openai tools ok: ${args}`);
}

async function openaiResponses() {
  // non-streaming, input as a string, with instructions
  const r = await openai.responses.create({ model: 'gpt-4o', input: 'Say hi.', instructions: prose(400) });
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.ok(r.output_text.length > 0);
  assert.equal(r.usage.input_tokens, rule(400 + 7, 2));
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);

  // streaming: the documented event order, sequence numbers 0, 1, 2, ...
  const stream = await openai.responses.create({ model: 'mock', input: [{ role: 'user', content: 'hi' }], stream: true });
  const types = [];
  let text = '', seq = 0, completed = null;
  for await (const ev of stream) {
    assert.equal(ev.sequence_number, seq++);
    types.push(ev.type);
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed') completed = ev.response;
  }
  const distinct = types.filter((t, i) => t !== types[i - 1]);
  assert.deepEqual(distinct, ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added', 'response.output_text.delta', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.completed']);
  assert.equal(completed.output[0].content[0].text, text);
  assert.equal(completed.usage.output_tokens, 32);

  // the SDK's responses.stream helper and max_output_tokens: status incomplete
  const helper = openai.responses.stream({ model: 'mock', input: 'hi', max_output_tokens: 5 });
  let deltas = 0;
  helper.on('response.output_text.delta', () => { deltas++; });
  const fin = await helper.finalResponse();
  assert.equal(deltas, 5);
  assert.equal(fin.output[0].content[0].text.length > 0, true);
  const incomplete = await openai.responses.create({ model: 'mock', input: 'hi', max_output_tokens: 5 });
  assert.equal(incomplete.status, 'incomplete');
  assert.equal(incomplete.incomplete_details.reason, 'max_output_tokens');
  assert.equal(incomplete.usage.output_tokens, 5);

  // function tools: a function_call item with arguments in deltas, then the follow-up
  const tools = [{ type: 'function', ...weather }];
  const fs = openai.responses.stream({ model: 'mock', input: 'Weather in Lyon?', tools });
  let argDeltas = '';
  fs.on('response.function_call_arguments.delta', (e) => { argDeltas += e.delta; });
  const fr = await fs.finalResponse();
  const call = fr.output[0];
  assert.equal(call.type, 'function_call');
  assert.equal(call.name, 'get_weather');
  assert.equal(call.arguments, argDeltas);
  checkWeatherArgs(JSON.parse(call.arguments));
  const follow = await openai.responses.create({ model: 'mock', tools, input: [
    { role: 'user', content: 'Weather in Lyon?' },
    { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
    { type: 'function_call_output', call_id: call.call_id, output: '{"temperature":21}' },
  ] });
  assert.equal(follow.output[0].type, 'message');
  assert.ok(follow.output_text.length > 0);

  // errors in the API's shape, typed by the SDK
  await assert.rejects(openai.responses.create({ model: 'gpt-99', input: 'x' }),
    (e) => { assert.ok(e instanceof OpenAI.NotFoundError); assert.equal(e.code, 'model_not_found'); return true; });
  await assert.rejects(openai.responses.create({ model: 'mock', input: [] }),
    (e) => { assert.ok(e instanceof OpenAI.BadRequestError); assert.equal(e.param, 'input'); return true; });
  console.log(`openai responses ok: ${JSON.stringify(r.output_text.slice(0, 40))}`);
}

async function anthropicTraffic() {
  // ~50 KB system prompt and a multi-turn history
  const msgs = history();
  const system = msgs.shift().content;
  const m = await anthropic.messages.create({ model: 'claude-sonnet-4', max_tokens: 5, system, messages: msgs });
  assert.equal(m.usage.input_tokens, rule(Buffer.byteLength(system) + bytesOf(msgs), msgs.length + 1));
  for (const size of [1024, 64 * 1024, (1 << 20) - 600]) {
    const s = anthropic.messages.stream({ model: 'mock', max_tokens: 2, messages: [{ role: 'user', content: prose(size) }] });
    const fin = await s.finalMessage();
    assert.equal(fin.usage.input_tokens, rule(size, 1));
  }

  // tool_use with input_json_delta, through the stream helper
  const tools = [{ name: weather.name, description: weather.description, input_schema: weather.parameters }];
  const messages = [{ role: 'user', content: 'Weather in Lyon?' }];
  const ts = anthropic.messages.stream({ model: 'claude-sonnet-4', max_tokens: 200, tools,
    tool_choice: { type: 'any' }, messages });
  let partial = '';
  ts.on('inputJson', (p) => { partial += p; });
  const fin = await ts.finalMessage();
  assert.equal(fin.stop_reason, 'tool_use');
  const use = fin.content[0];
  assert.equal(use.type, 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.match(use.id, /^toolu_/);
  checkWeatherArgs(use.input);
  assert.deepEqual(JSON.parse(partial), use.input);

  // the follow-up turn with the tool_result is answered with text
  const follow = await anthropic.messages.create({ model: 'claude-sonnet-4', max_tokens: 50, tools, messages: [
    ...messages,
    { role: 'assistant', content: fin.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '21 degrees, clear' }] },
  ] });
  assert.equal(follow.content[0].type, 'text');
  assert.ok(['end_turn', 'max_tokens'].includes(follow.stop_reason));

  // non-streaming tool_use with a named tool
  const named = await anthropic.messages.create({ model: 'mock', max_tokens: 200, tools,
    tool_choice: { type: 'tool', name: 'get_weather' }, messages });
  checkWeatherArgs(named.content[0].input);

  // a tool_use cut at max_tokens: the stream helper's input_json_delta fragments stop
  // mid-JSON and stop_reason is "max_tokens"; the whole message's block has input {}
  const cs = anthropic.messages.stream({ model: 'mock', max_tokens: 3, tools,
    tool_choice: { type: 'any' }, messages });
  let cutPartial = '';
  cs.on('inputJson', (p) => { cutPartial += p; });
  const cutFin = await cs.finalMessage();
  assert.equal(cutFin.stop_reason, 'max_tokens');
  assert.equal(cutFin.content[0].type, 'tool_use');
  assert.ok(cutPartial.length > 0 && cutPartial.length <= 12, cutPartial);
  assert.throws(() => JSON.parse(cutPartial));
  assert.equal(cutFin.usage.output_tokens, 3);
  const cutWhole = await anthropic.messages.create({ model: 'mock', max_tokens: 3, tools,
    tool_choice: { type: 'any' }, messages });
  assert.equal(cutWhole.stop_reason, 'max_tokens');
  assert.deepEqual(cutWhole.content[0].input, {});
  console.log(`anthropic traffic ok: ${JSON.stringify(use.input)}`);
}

// Structured outputs: response_format json_schema (chat) and text.format (Responses)
// are answered with JSON valid against the schema, so the SDKs' parse helpers work; the
// prose mock-llm answered before made every one of them throw a SyntaxError.
async function structuredOutputs() {
  const person = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      age: { type: 'integer', minimum: 0, maximum: 120 },
      tags: { type: 'array', items: { type: 'string' } },
      nick: { anyOf: [{ type: 'string' }, { type: 'null' }] },
      unit: { type: 'string', enum: ['metric', 'imperial'] },
    },
    required: ['name', 'age', 'tags', 'nick', 'unit'],
    additionalProperties: false,
  };
  const check = (p) => {
    assert.equal(typeof p.name, 'string');
    assert.ok(Number.isInteger(p.age) && p.age >= 0 && p.age <= 120, String(p.age));
    assert.ok(Array.isArray(p.tags) && p.tags.every((t) => typeof t === 'string'));
    assert.ok(p.nick === null || typeof p.nick === 'string');
    assert.ok(['metric', 'imperial'].includes(p.unit), p.unit);
  };
  const rf = { type: 'json_schema', json_schema: { name: 'person', schema: person, strict: true } };
  const messages = [{ role: 'user', content: 'Who is it?' }];
  const parsed = await chatHelpers.parse({ model: 'mock', messages, response_format: rf });
  assert.equal(parsed.choices[0].finish_reason, 'stop');
  check(parsed.choices[0].message.parsed);
  // streamed: the content deltas join into the same JSON, usage counts its tokens
  const stream = await openai.chat.completions.create({ model: 'mock', messages, response_format: rf,
    stream: true, stream_options: { include_usage: true } });
  let text = '', usage = null, deltas = 0;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    const d = c.choices[0]?.delta?.content;
    if (d) { text += d; deltas++; }
  }
  check(JSON.parse(text));
  assert.ok(deltas > 1, `${deltas} deltas`);
  assert.equal(usage.completion_tokens, Math.ceil(Buffer.byteLength(text) / 4));
  // (the stream helper fills message.parsed for zod formats only: read the content)
  const helper = chatHelpers.stream({ model: 'mock', messages, response_format: rf });
  check(JSON.parse((await helper.finalChatCompletion()).choices[0].message.content));
  // json_object: some JSON object
  const jo = await openai.chat.completions.create({ model: 'mock', messages, response_format: { type: 'json_object' } });
  assert.equal(typeof JSON.parse(jo.choices[0].message.content), 'object');
  // a tool call still wins when the request forces one
  const tc = await openai.chat.completions.create({ model: 'mock', messages, response_format: rf,
    tools: [{ type: 'function', function: weather }], tool_choice: 'required' });
  assert.equal(tc.choices[0].finish_reason, 'tool_calls');
  // the Responses API: text.format, through responses.parse and the stream helper
  const format = { type: 'json_schema', name: 'person', schema: person, strict: true };
  const rp = await openai.responses.parse({ model: 'mock', input: 'Who?', text: { format } });
  assert.equal(rp.status, 'completed');
  check(rp.output_parsed);
  const rs = openai.responses.stream({ model: 'mock', input: 'Who?', text: { format } });
  const fin = await rs.finalResponse();
  check(JSON.parse(fin.output[0].content[0].text));
  // JSON that does not fit max_tokens is cut there, as the real API cuts it:
  // finish_reason "length", and parse() refuses it with LengthFinishReasonError (named
  // by its message: openai 4 does not export the class from the package's root).
  // Before, the whole JSON came with finish_reason "stop" whatever max_tokens said.
  await assert.rejects(chatHelpers.parse({ model: 'mock', messages, response_format: rf, max_tokens: 5 }),
    (e) => { assert.match(e.constructor.name + e.message, /LengthFinishReasonError|length limit/); return true; });
  const cut = await openai.chat.completions.create({ model: 'mock', messages, response_format: rf,
    max_completion_tokens: 5, stream: true, stream_options: { include_usage: true } });
  let cutText = '', cutFin = null, cutUsage = null;
  for await (const c of cut) {
    if (c.usage) cutUsage = c.usage;
    cutText += c.choices[0]?.delta?.content || '';
    cutFin = c.choices[0]?.finish_reason || cutFin;
  }
  assert.equal(cutFin, 'length');
  assert.equal(cutUsage.completion_tokens, 5);
  assert.throws(() => JSON.parse(cutText));
  const rcut = await openai.responses.create({ model: 'mock', input: 'Who?', max_output_tokens: 5,
    text: { format: { type: 'json_schema', name: 'person', schema: person, strict: true } } });
  assert.equal(rcut.status, 'incomplete');
  assert.equal(rcut.incomplete_details.reason, 'max_output_tokens');
  // a response_format mock-llm does not know is refused, as OpenAI refuses it
  await assert.rejects(openai.chat.completions.create({ model: 'mock', messages, response_format: { type: 'yaml' } }),
    (e) => { assert.ok(e instanceof OpenAI.BadRequestError); assert.equal(e.param, 'response_format'); return true; });
  console.log(`structured outputs ok: ${text.slice(0, 60)}`);
}

// Stop sequences: chat's stop and Anthropic's stop_sequences end the text before the
// first one it would contain (finish_reason "stop"; stop_reason "stop_sequence" with the
// sequence). They were accepted and ignored: the text went on through them.
async function stopSequences() {
  const messages = [{ role: 'user', content: 'Tell me.' }];
  const at = (i) => ({ headers: { 'x-mock-request-index': String(i) } });
  // a request index whose text has " the" after its first few words
  let idx = -1, full = '';
  for (let i = 1000; i < 1100 && idx < 0; i++) {
    const r = await openai.chat.completions.create({ model: 'mock', messages }, at(i));
    const t = r.choices[0].message.content;
    if (t.indexOf(' the') > 8) { idx = i; full = t; }
  }
  assert.ok(idx >= 0, 'no text with " the" in 100 requests');
  const cut = full.indexOf(' the');
  const check = (text, label) => {
    assert.ok(!text.includes(' the'), `${label}: the stop sequence is in the text: ${text}`);
    assert.equal(full.slice(0, text.length), text, `${label}: not the same text up to the stop`);
    assert.ok(text.length <= cut && cut - text.length < 16, `${label}: cut at ${text.length}, the sequence at ${cut}`);
  };
  const r = await openai.chat.completions.create({ model: 'mock', messages, stop: [' the', 'zzz'] }, at(idx));
  assert.equal(r.choices[0].finish_reason, 'stop');
  check(r.choices[0].message.content, 'chat');
  assert.ok(r.usage.completion_tokens < 32);
  const stream = await openai.chat.completions.create({ model: 'mock', messages, stop: ' the', stream: true,
    stream_options: { include_usage: true } }, at(idx));
  let text = '', finish = null, usage = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    text += c.choices[0]?.delta?.content || '';
  }
  assert.equal(finish, 'stop');
  check(text, 'chat stream');
  assert.equal(usage.completion_tokens, r.usage.completion_tokens);
  // a sequence the text starts with: an empty answer
  const first = await openai.chat.completions.create({ model: 'mock', messages, stop: [full.slice(0, 2)] }, at(idx));
  assert.equal(first.choices[0].message.content, '');
  assert.equal(first.choices[0].finish_reason, 'stop');
  await assert.rejects(openai.chat.completions.create({ model: 'mock', messages, stop: ['a', 'b', 'c', 'd', 'e'] }),
    (e) => { assert.ok(e instanceof OpenAI.BadRequestError); assert.equal(e.param, 'stop'); return true; });
  // Anthropic
  const m = await anthropic.messages.create({ model: 'mock', max_tokens: 100, messages, stop_sequences: [' the'] }, at(idx));
  assert.equal(m.stop_reason, 'stop_sequence');
  assert.equal(m.stop_sequence, ' the');
  check(m.content[0].text, 'anthropic');
  const ms = anthropic.messages.stream({ model: 'mock', max_tokens: 100, messages, stop_sequences: ['qqq', ' the'] }, at(idx));
  const fin = await ms.finalMessage();
  assert.equal(fin.stop_reason, 'stop_sequence');
  assert.equal(fin.stop_sequence, ' the');
  check(fin.content[0].text, 'anthropic stream');
  console.log(`stop sequences ok: ${JSON.stringify(r.choices[0].message.content)} (index ${idx})`);
}

// logprobs (top_logprobs 3) and n: 3, streamed and not, through the SDK: every choice
// index, logprobs.content per token (token, logprob <= 0, bytes = the token's UTF-8,
// top_logprobs sorted with the chosen token first), the streamed chunks' logprobs those
// of their own tokens, the same values streamed and not (drawn per request index), the
// SDK's stream helper accumulating every choice; bad values rejected with OpenAI's 400.
async function logprobsAndN() {
  const messages = [{ role: 'user', content: 'Three answers, with their log probabilities.' }];
  const opts = { headers: { 'x-mock-request-index': '9090' } };
  const body = { model: 'gpt-4o', messages, max_tokens: 6, n: 3, logprobs: true, top_logprobs: 3 };
  const checkEntry = (e) => {
    assert.equal(typeof e.token, 'string');
    assert.ok(e.logprob <= 0);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
    assert.equal(e.top_logprobs.length, 3);
    assert.equal(e.top_logprobs[0].token, e.token);
    assert.equal(e.top_logprobs[0].logprob, e.logprob);
    for (let i = 1; i < 3; i++) assert.ok(e.top_logprobs[i].logprob < e.top_logprobs[i - 1].logprob);
    for (const t of e.top_logprobs) assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
  };
  const whole = await openai.chat.completions.create(body, opts);
  assert.equal(whole.choices.length, 3);
  assert.equal(whole.usage.completion_tokens, 18);
  whole.choices.forEach((c, i) => {
    assert.equal(c.index, i);
    assert.equal(c.logprobs.refusal, null);
    assert.equal(c.logprobs.content.length, 6);
    c.logprobs.content.forEach(checkEntry);
    assert.equal(c.logprobs.content.map((e) => e.token).join(''), c.message.content);
  });
  const stream = await openai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, opts);
  const text = ['', '', ''], lps = [[], [], []], fin = [null, null, null];
  let usage = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.finish_reason) fin[ch.index] = ch.finish_reason;
      const t = ch.delta?.content;
      if (t) {
        text[ch.index] += t;
        assert.equal(ch.logprobs.content.map((e) => e.token).join(''), t);
        lps[ch.index].push(...ch.logprobs.content);
      }
    }
  }
  assert.equal(usage.completion_tokens, 18);
  for (let i = 0; i < 3; i++) {
    assert.equal(text[i], whole.choices[i].message.content, `choice ${i} streamed`);
    assert.deepEqual(lps[i], whole.choices[i].logprobs.content, `choice ${i} logprobs streamed`);
    assert.equal(fin[i], 'length');
  }
  assert.ok(new Set(text).size > 1, 'three identical choices');
  // the SDK's stream helper puts every choice together
  const helper = chatHelpers.stream({ ...body }, opts);
  const final = await helper.finalChatCompletion();
  assert.equal(final.choices.length, 3);
  for (let i = 0; i < 3; i++) assert.equal(final.choices[i].message.content, whole.choices[i].message.content);
  // logprobs alone, no top_logprobs: empty top_logprobs lists
  const one = await openai.chat.completions.create({ model: 'mock', messages, max_tokens: 2, logprobs: true });
  assert.equal(one.choices.length, 1);
  assert.deepEqual(one.choices[0].logprobs.content.map((e) => e.top_logprobs.length), [0, 0]);
  for (const [bad, param] of [[{ n: 0 }, 'n'], [{ n: 129 }, 'n'], [{ top_logprobs: 2 }, 'top_logprobs'],
    [{ logprobs: true, top_logprobs: 21 }, 'top_logprobs']]) {
    await assert.rejects(openai.chat.completions.create({ model: 'mock', messages, ...bad }),
      (e) => { assert.ok(e instanceof OpenAI.BadRequestError); assert.equal(e.param, param); return true; });
  }
  console.log(`logprobs and n ok: ${JSON.stringify(text)}`);
}

async function main() {
  await openaiLongPrompts();
  await openaiTools();
  await openaiResponses();
  await anthropicTraffic();
  await structuredOutputs();
  await stopSequences();
  await logprobsAndN();
  console.log(`PASS: SDK traffic over ${scheme} (long prompts, tools, Responses API, structured outputs, stop sequences, logprobs and n)`);
}

main().catch((e) => { console.error('FAIL:', e); process.exit(1); });
