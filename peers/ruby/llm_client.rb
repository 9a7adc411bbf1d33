#!/usr/bin/env ruby
# frozen_string_literal: true
#
# peers/ruby/llm_client.rb - N concurrent streaming chat completions against mock-llm from
# Ruby, on one concurrency model, measured from inside the process. The Ruby twin of
# build/bin/wl-llm: the same request, the same request index per conversation (so every
# model meets the same draws), the same metrics, and one JSON object on stdout in the
# same shape (peers/ruby/bench.py turns runs into results/ruby.csv).
#
#   ruby peers/ruby/llm_client.rb --model M --target 127.0.0.1:PORT --n N [options]
#
# Models (what the post recommends against, and what it recommends):
#   thread         a Thread per conversation, Net::HTTP streaming (read_body with a block)
#   pool           25 threads taking conversations from a Queue, like Sidekiq's default
#   async          plain Net::HTTP inside Async tasks: Async 1.x sets a Fiber scheduler,
#                  so Net::HTTP's waits (connect, read) yield to the reactor by themselves
#   async-http     Async::HTTP::Internet (the Async-native client) inside Async tasks
#
# Every conversation POSTs {"stream":true} to /v1/chat/completions with
# 'x-mock-request-index: i', parses the SSE stream event by event (JSON.parse of each
# chunk, as an app does to use the delta), and times the first content delta from the
# user's arrival (all users arrive at once), so queueing for a thread or a pool slot is
# in it.
#
# Standard library plus Debian's ruby-async / ruby-async-http (loaded only by the async
# models). Exit status: 0 run done (failed conversations are counted, not fatal), 2 bad
# usage.

require 'json'
require 'net/http'
require 'optparse'
require 'socket'
require_relative 'sse'

OPT = {
  model: nil, target: nil, n: 100, max_tokens: 64, timeout: 120.0, workers: 25,
  retries: 2, per_conv: nil, prompt_bytes: 0
}.freeze

MODELS = %w[thread pool async async-http].freeze

def usage_error(msg)
  warn "llm_client.rb: #{msg} (see --help)"
  exit 2
end

def parse_args(argv)
  o = OPT.dup
  op = OptionParser.new do |p|
    p.banner = 'usage: ruby peers/ruby/llm_client.rb --model M --target 127.0.0.1:PORT [options]'
    p.on('--model M', MODELS, "#{MODELS.join(' | ')}") { |v| o[:model] = v }
    p.on('--target H:P', 'mock-llm, loopback IPv4') { |v| o[:target] = v }
    p.on('--n N', Integer, 'conversations (default 100)') { |v| o[:n] = v }
    p.on('--max-tokens T', Integer, 'max_tokens asked (default 64)') { |v| o[:max_tokens] = v }
    p.on('--timeout S', Float, 'per conversation, from arrival (default 120)') { |v| o[:timeout] = v }
    p.on('--workers W', Integer, 'pool threads (default 25)') { |v| o[:workers] = v }
    p.on('--retries R', Integer, 'retries before the stream starts (default 2)') { |v| o[:retries] = v }
    p.on('--per-conv FILE', 'also write one CSV line per conversation') { |v| o[:per_conv] = v }
    p.on('--prompt-bytes B', Integer, 'pad each prompt to B bytes (default 0: short)') { |v| o[:prompt_bytes] = v }
    p.on('--help', 'this text') { puts p; exit 0 }
  end
  begin
    op.parse!(argv)
  rescue OptionParser::ParseError => e
    usage_error(e.message)
  end
  usage_error("unexpected argument '#{argv.first}'") unless argv.empty?
  usage_error('--model and --target are required') unless o[:model] && o[:target]
  usage_error('--n must be 1..1000000') unless (1..1_000_000).cover?(o[:n])
  usage_error('--max-tokens must be 1..100000') unless (1..100_000).cover?(o[:max_tokens])
  usage_error('--timeout must be > 0') unless o[:timeout].positive?
  usage_error('--workers must be 1..10000') unless (1..10_000).cover?(o[:workers])
  usage_error('--retries must be 0..10') unless (0..10).cover?(o[:retries])
  usage_error('--prompt-bytes must be 0..1048576') unless (0..1_048_576).cover?(o[:prompt_bytes])
  host, port = o[:target].split(':', 2)
  usage_error("bad --target '#{o[:target]}' (want 127.x.x.x:PORT: loopback only)") unless
    host =~ /\A127\.\d{1,3}\.\d{1,3}\.\d{1,3}\z/ && port =~ /\A\d{1,5}\z/ && port.to_i.between?(1, 65_535)
  o[:host] = host
  o[:port] = port.to_i
  o
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def status_kib(key)
  File.foreach('/proc/self/status') { |l| return l.split[1].to_i if l.start_with?("#{key}:") }
  -1
rescue SystemCallError
  -1
end

# What one conversation saw; times are CLOCK_MONOTONIC seconds, nil = did not happen.
Conv = Struct.new(:arrival, :start, :first_token, :end_t, :last_delta, :tokens, :deltas,
                  :attempts, :ok, :cause)

# Gaps between deltas, log-bucketed like wl-llm (4 buckets per octave of microseconds):
# one histogram for the run, not per conversation.
ITL_BUCKETS = 96
ITL = Array.new(ITL_BUCKETS, 0)

def itl_add(gap_s)
  us = gap_s * 1e6
  b = us < 1.0 ? 0 : (4.0 * Math.log2(us)).to_i
  b = ITL_BUCKETS - 1 if b >= ITL_BUCKETS
  ITL[b] += 1
end

# One chat chunk: counts it into c. Returns :done at [DONE], :error on an error frame.
def on_data(data, c)
  return :done if data == '[DONE]'

  j = JSON.parse(data)
  return :error if j['error']

  ch = j['choices']&.first
  if ch
    content = ch.dig('delta', 'content')
    if content && !content.empty?
      t = now
      if c.first_token
        itl_add(t - c.last_delta)
      else
        c.first_token = t
      end
      c.last_delta = t
      c.deltas += 1
      $sink = ($sink ^ content.hash) & 0xffffffff # the "broadcast": touch every delta
    end
  end
  u = j['usage']
  c.tokens = u['completion_tokens'] if u && u['completion_tokens']
  nil
end
$sink = 0

RETRY_STATUS = %w[408 409 429 500 502 503 504].freeze
RETRY_ERRORS = [Errno::ECONNREFUSED, Errno::ECONNRESET, Errno::EPIPE].freeze

# The OpenAI SDKs' backoff: retry-after-ms when given, else 0.5 s x 2^attempt (8 s cap)
# less up to 25% jitter.
def retry_delay(attempt, retry_after_ms)
  return retry_after_ms / 1000.0 if retry_after_ms&.between?(0, 60_000)

  [0.5 * (2**[attempt, 5].min), 8.0].min * (1.0 - 0.25 * rand)
end

# Conversation i's prompt, padded with "fibers " to prompt_bytes bytes when that is longer
# (the same rule in every peer client; real requests carry kilobytes of prompt).
def prompt_for(i, prompt_bytes)
  base = "Conversation #{i}: tell me about fibers."
  return base if prompt_bytes <= base.bytesize

  pad = prompt_bytes - base.bytesize - 1
  "#{base} #{('fibers ' * (pad / 7 + 1))[0, pad]}"
end

def body_for(i, max_tokens, prompt_bytes = 0)
  JSON.generate({ model: 'mock', stream: true, stream_options: { include_usage: true },
                  max_tokens: max_tokens,
                  messages: [{ role: 'user', content: prompt_for(i, prompt_bytes) }] })
end

class RetryableStatus < StandardError
  attr_reader :retry_after_ms

  def initialize(code, retry_after_ms)
    super("http #{code}")
    @retry_after_ms = retry_after_ms
  end
end

class StreamFailed < StandardError; end

# A deadline that fires while a conversation waits for a read, whatever the model.
class DeadlineHit < StandardError; end

# Runs one attempt's stream through the SSE parser; raises on a protocol failure.
def consume(c, deadline)
  sse = SSE.new
  state = nil
  yield(lambda do |chunk|
    raise DeadlineHit, 'timeout' if now > deadline
    return if state

    sse.feed(chunk) do |data|
      next if state

      state = on_data(data, c)
    end
  end)
  raise StreamFailed, 'error frame' if state == :error
  raise StreamFailed, 'stream ended before [DONE]' unless state == :done
end

# One conversation on Net::HTTP: the code a Rails app has, unchanged on every model.
def conv_nethttp(o, i, c)
  deadline = c.arrival + o[:timeout]
  c.start = now
  begin
    c.attempts += 1
    http = Net::HTTP.new(o[:host], o[:port])
    http.open_timeout = [deadline - now, 0.001].max
    http.read_timeout = [deadline - now, 0.001].max
    http.start do
      req = Net::HTTP::Post.new('/v1/chat/completions',
                                'content-type' => 'application/json',
                                'accept' => 'text/event-stream',
                                'x-mock-request-index' => i.to_s)
      req.body = body_for(i, o[:max_tokens], o[:prompt_bytes])
      http.request(req) do |res|
        unless res.code == '200'
          res.read_body
          ra = res['retry-after-ms']&.to_i || (res['retry-after'] && res['retry-after'].to_i * 1000)
          raise RetryableStatus.new(res.code, ra) if RETRY_STATUS.include?(res.code)

          raise StreamFailed, "http #{res.code}"
        end
        consume(c, deadline) { |feed| res.read_body { |chunk| feed.call(chunk) } }
      end
    end
    c.ok = true
  rescue RetryableStatus, *RETRY_ERRORS => e
    ra = e.respond_to?(:retry_after_ms) ? e.retry_after_ms : nil
    delay = retry_delay(c.attempts - 1, ra)
    if c.attempts <= o[:retries] && c.first_token.nil? && now + delay < deadline
      sleep delay
      retry
    end
    c.cause = cause_of(e)
  rescue StandardError => e
    c.cause = cause_of(e)
  ensure
    c.end_t = now
  end
end

# One conversation on Async::HTTP::Internet (shared client, HTTP/1.1 connection pool).
def conv_async_http(o, internet, i, c)
  deadline = c.arrival + o[:timeout]
  c.start = now
  url = "http://#{o[:host]}:#{o[:port]}/v1/chat/completions"
  begin
    c.attempts += 1
    headers = [['content-type', 'application/json'], ['accept', 'text/event-stream'],
               ['x-mock-request-index', i.to_s]]
    res = internet.post(url, headers, [body_for(i, o[:max_tokens], o[:prompt_bytes])])
    begin
      unless res.status == 200
        res.read
        ra = res.headers['retry-after-ms']&.to_i
        raise RetryableStatus.new(res.status, ra) if RETRY_STATUS.include?(res.status.to_s)

        raise StreamFailed, "http #{res.status}"
      end
      consume(c, deadline) { |feed| res.body.each { |chunk| feed.call(chunk) } }
    ensure
      res.close
    end
    c.ok = true
  rescue RetryableStatus, *RETRY_ERRORS => e
    ra = e.respond_to?(:retry_after_ms) ? e.retry_after_ms : nil
    delay = retry_delay(c.attempts - 1, ra)
    if c.attempts <= o[:retries] && c.first_token.nil? && now + delay < deadline
      sleep delay
      retry
    end
    c.cause = cause_of(e)
  rescue StandardError => e
    c.cause = cause_of(e)
  ensure
    c.end_t = now
  end
end

# "Errno::EMFILE" -> "EMFILE"; other exceptions by class, plus a short message for ours.
def cause_of(e)
  case e
  when SystemCallError then e.class.name.split('::').last
  when StreamFailed, RetryableStatus, DeadlineHit then e.message
  else e.class.name
  end
end

# Counts units (threads, fibers) alive at once.
class Live
  attr_reader :peak, :started, :spawn_failed, :spawn_errno

  def initialize
    @mu = Mutex.new
    @live = 0
    @peak = 0
    @started = 0
    @spawn_failed = 0
    @spawn_errno = ''
  end

  def enter
    @mu.synchronize do
      @live += 1
      @started += 1
      @peak = @live if @live > @peak
    end
  end

  def leave
    @mu.synchronize { @live -= 1 }
  end

  def failed(err)
    @mu.synchronize do
      @spawn_failed += 1
      @spawn_errno = err if @spawn_errno.empty?
    end
  end
end

# The errno a failed Thread.new or Fiber creation reports, from its message.
def spawn_errno(e)
  m = e.message
  return 'EAGAIN' if m =~ /Resource temporarily unavailable|EAGAIN/
  return 'ENOMEM' if m =~ /Cannot allocate memory|ENOMEM|can't alloc/

  e.class.name
end

def run_thread(o, convs, live)
  threads = []
  convs.each_with_index do |c, i|
    begin
      threads << Thread.new do
        live.enter
        conv_nethttp(o, i, c)
      ensure
        live.leave
      end
    rescue ThreadError, NoMemoryError, SystemCallError => e
      live.failed(spawn_errno(e))
      c.cause = "not started (Thread.new: #{spawn_errno(e)})"
    end
  end
  threads.each(&:join)
end

def run_pool(o, convs, live)
  q = Queue.new
  convs.each_index { |i| q << i }
  q.close
  workers = Array.new([o[:workers], convs.size].min) do
    Thread.new do
      live.enter
      while (i = q.pop)
        c = convs[i]
        if now > c.arrival + o[:timeout]
          c.start = c.end_t = now
          c.cause = 'timeout in queue'
          next
        end
        conv_nethttp(o, i, c)
      end
    ensure
      live.leave
    end
  end
  workers.each(&:join)
end

def run_async(o, convs, live, http)
  require 'async'
  internet = nil
  if http
    require 'async/http/internet'
    internet = Async::HTTP::Internet.new
  end
  Async do |task|
    convs.each_with_index do |c, i|
      begin
        task.async do
          live.enter
          http ? conv_async_http(o, internet, i, c) : conv_nethttp(o, i, c)
        ensure
          live.leave
        end
      rescue FiberError, NoMemoryError, SystemCallError => e
        live.failed(spawn_errno(e))
        c.cause = "not started (fiber: #{spawn_errno(e)})"
      end
    end
  end
  internet&.close
end

def quantile(v, p)
  return 0.0 if v.empty?

  k = (p * v.size + 0.999999).to_i.clamp(1, v.size) # nearest rank: ceil(p*n)
  v[k - 1]
end

def itl_quantile(p)
  n = ITL.sum
  return 0.0 if n.zero?

  rank = (p * n + 0.999999).to_i
  seen = 0
  ITL.each_with_index do |cnt, b|
    seen += cnt
    return 2.0**((b + 1) / 4.0) / 1000.0 if seen >= rank
  end
  0.0
end

def main
  o = parse_args(ARGV.dup)
  soft, hard = Process.getrlimit(:NOFILE)
  Process.setrlimit(:NOFILE, hard) if soft < hard
  n = o[:n]
  # load what the model needs before the baseline, so the baseline includes the library
  if o[:model].start_with?('async')
    require 'async'
    require 'async/http/internet' if o[:model] == 'async-http'
  end
  GC.start
  rss_base = status_kib('VmRSS')
  gc0 = GC.stat
  cpu0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  t0 = now
  convs = Array.new(n) { Conv.new(t0, nil, nil, nil, nil, 0, 0, 0, false, nil) }
  live = Live.new
  case o[:model]
  when 'thread' then run_thread(o, convs, live)
  when 'pool' then run_pool(o, convs, live)
  when 'async' then run_async(o, convs, live, false)
  when 'async-http' then run_async(o, convs, live, true)
  end
  cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu0
  rss_peak = status_kib('VmHWM')
  gc1 = GC.stat

  ok = convs.count(&:ok)
  failed = n - ok
  causes = Hash.new(0)
  convs.each { |c| causes[c.cause || 'unknown'] += 1 unless c.ok }
  tokens = convs.sum { |c| c.ok ? (c.tokens.positive? ? c.tokens : c.deltas) : 0 }
  last_end = convs.map { |c| c.end_t || t0 }.max
  elapsed = last_end - t0
  ttft = ->(c) { (c.first_token - c.arrival) * 1000.0 }
  all = convs.select(&:first_token).map(&ttft).sort
  first25 = convs.first(25).select(&:first_token).map(&ttft).sort
  rest = (convs[25..] || []).select(&:first_token).map(&ttft).sort
  total = convs.select(&:ok).map { |c| (c.end_t - c.arrival) * 1000.0 }.sort
  u26 = convs[25]&.first_token ? ttft.call(convs[25]) : -1
  out = {
    model: o[:model], kind: o[:model].start_with?('async') ? 'fiber' : 'thread',
    runtime: "ruby-#{RUBY_VERSION}", n: n, ok: ok, failed: failed,
    not_started: live.spawn_failed, retries: convs.sum { |c| [c.attempts - 1, 0].max },
    elapsed_s: elapsed, conv_per_s: elapsed.positive? ? ok / elapsed : 0,
    tokens: tokens, tokens_per_s: elapsed.positive? ? tokens / elapsed : 0,
    ttft_p50_ms: quantile(all, 0.5), ttft_p99_ms: quantile(all, 0.99),
    ttft_max_ms: all.last || 0, ttft_user26_ms: u26,
    ttft_first25_p50_ms: quantile(first25, 0.5), ttft_rest_p50_ms: quantile(rest, 0.5),
    ttft_rest_p99_ms: quantile(rest, 0.99), total_p50_ms: quantile(total, 0.5),
    total_p99_ms: quantile(total, 0.99),
    itl_p50_ms: itl_quantile(0.5), itl_p99_ms: itl_quantile(0.99), itl_gaps: ITL.sum,
    rss_base_kib: rss_base, rss_peak_kib: rss_peak, cpu_s: cpu,
    cpu_s_per_1k_tokens: tokens.positive? ? cpu / (tokens / 1000.0) : 0,
    peak_live: live.peak, units_started: live.started, spawn_failed: live.spawn_failed,
    spawn_errno: live.spawn_errno, nofile: hard,
    gc_count: gc1[:count] - gc0[:count], gc_major: gc1[:major_gc_count] - gc0[:major_gc_count],
    causes: causes
  }
  if o[:per_conv]
    rel = ->(t) { t ? format('%.3f', (t - t0) * 1000.0) : '-1' }
    File.open(o[:per_conv], 'w') do |f|
      f.puts 'index,arrival_ms,start_ms,first_token_ms,end_ms,tokens,attempts,ok,cause'
      convs.each_with_index do |c, i|
        f.puts [i, rel.call(c.arrival), rel.call(c.start), rel.call(c.first_token),
                rel.call(c.end_t), c.tokens, c.attempts, c.ok ? 1 : 0,
                "\"#{(c.cause || '').tr('"', "'")}\""].join(',')
      end
    end
  end
  puts JSON.generate(out)
end

main if $PROGRAM_NAME == __FILE__
