#!/usr/bin/ruby
# seed.rb - the post's protocol (socketry/performance fiber-vs-thread) in Ruby, written
# for fiberbench: N units, each switching M times (Fiber.yield / Thread.pass), timed
# from the first creation to the end of the last unit. Prints rows of the results CSV
# (results/README.md) on stdout, with models ruby-fiber and ruby-thread and the same
# case names and metrics as bench_seed's C rows, so Ruby here sits beside C here.
#
#   ruby bench/ruby/seed.rb [--mode full|quick|tiny] [--warming] [--header]
#
# bench_seed runs it when /usr/bin/ruby exists and appends its rows to seed.csv.
# Exit status: 0 done, 2 bad arguments.

# runs of alloc/switch; repeats of throughput and of warming (the post: 10 each); series
# of those. Full runs 3 series, so that every published figure is a median of 3 runs
# (about 2 minutes of Ruby on a quiet 2-vCPU machine). Both full and quick keep the
# post's 10 repeats, so "last repeat" means the 10th in both and make reproduce's quick
# run measures what the published full run did (~35 s of Ruby threads); quick runs
# alloc/switch once, one series. Full and quick leave the warming case out unless
# --warming (bench_seed --warming passes it on; then full runs it in the first series
# only): no README section, figure or check reads it, and one series of it cost ~24 s of
# Ruby threads in make bench's 20-minute budget (README "Time budget"). Tiny runs it.
MODES = {
  "full"  => { runs: 3, repeats: 10, warm_repeats: 10, warm_series: 1, series: 3, alloc_n: 10_000, switch_m: 10_000, tp_n: 1000, tp_m: 100 },
  "quick" => { runs: 1, repeats: 10, warm_repeats: 0, warm_series: 0, series: 1, alloc_n: 10_000, switch_m: 10_000, tp_n: 1000, tp_m: 100 },
  "tiny"  => { runs: 1, repeats: 2, warm_repeats: 2, warm_series: 1, series: 1, alloc_n: 500, switch_m: 500, tp_n: 50, tp_m: 10 },
}.freeze

def usage(io)
  io.puts "usage: ruby seed.rb [--mode full|quick|tiny] [--warming] [--header]"
end

mode = "full"
header = false
warming = false
args = ARGV.dup
until args.empty?
  a = args.shift
  case a
  when "--mode" then mode = args.shift.to_s
  when /\A--mode=(.*)\z/ then mode = $1
  when "--header" then header = true
  when "--warming" then warming = true
  when "--help", "-h" then usage($stdout); exit 0
  else
    warn "seed.rb: unknown argument '#{a}'"; usage($stderr); exit 2
  end
end
unless MODES.key?(mode)
  warn "seed.rb: --mode must be full, quick or tiny"; exit 2
end
cfg = MODES[mode]
cfg = cfg.merge(warm_repeats: 10, warm_series: 1) if warming && mode != "tiny"
cfg = cfg.merge(warm_repeats: 0, warm_series: 0) if !warming && mode != "tiny"
IMPL = "ruby-#{RUBY_VERSION}"

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def status_kb(key)
  File.foreach("/proc/self/status") { |l| return l.split[1].to_i if l.start_with?("#{key}:") }
  0
end

# Resets VmHWM to VmRSS (Linux >= 4.0); without it the delta is against the old peak.
def hwm_reset
  File.write("/proc/self/clear_refs", "5")
rescue SystemCallError
  nil
end

def run_fibers(n, m)
  fibers = Array.new(n) { Fiber.new { m.times { Fiber.yield } } }
  live = fibers
  live = live.select { |f| f.resume; f.alive? } until live.empty?
end

def run_threads(n, m)
  threads = Array.new(n) { Thread.new { m.times { Thread.pass } } }
  threads.each(&:join)
end

# One run: [seconds, VmHWM growth in bytes]
def run_once(model, n, m)
  GC.start
  hwm_reset
  rss0 = status_kb("VmRSS")
  t0 = now
  model == :fiber ? run_fibers(n, m) : run_threads(n, m)
  t = now - t0
  [t, (status_kb("VmHWM") - rss0) * 1024]
end

def stats(v)
  s = v.sort
  n = s.size
  med = n.odd? ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0
  [med, s.first, s.last, n]
end

def row(case_name, model, metric, unit, samples)
  med, mn, mx, n = stats(samples)
  puts ["seed", case_name, model, IMPL, "", "", metric, unit,
        format("%.6g", med), format("%.6g", mn), format("%.6g", mx), n].join(",")
  $stdout.flush
end

def progress(msg)
  warn "[seed.rb] #{msg}"
end

MODELS = { fiber: "ruby-fiber", thread: "ruby-thread" }.freeze
def case_name(model, what, n, m) = "seed/#{MODELS[model]}/#{IMPL}/#{what}/n=#{n}/m=#{m}"

puts "harness,case,model,impl,param,value,metric,unit,median,min,max,runs" if header

# alloc (N, 2) and switch (2, M), models interleaved.
alloc = Hash.new { |h, k| h[k] = [] }
mem = Hash.new { |h, k| h[k] = [] }
sw = Hash.new { |h, k| h[k] = [] }
cfg[:runs].times do |r|
  MODELS.each_key do |mo|
    t, h = run_once(mo, cfg[:alloc_n], 2)
    alloc[mo] << t * 1e6 / cfg[:alloc_n]
    # Only the first run's peak counts: later runs reuse the heap pages and thread
    # stacks the first one left behind, so their VmHWM hardly grows.
    mem[mo] << h.to_f / cfg[:alloc_n] if r.zero?
    t, = run_once(mo, 2, cfg[:switch_m])
    sw[mo] << t * 1e6 / (2 * cfg[:switch_m])
  end
  progress "alloc and switch: run #{r + 1}/#{cfg[:runs]}"
end
MODELS.each_key do |mo|
  c = case_name(mo, "alloc", cfg[:alloc_n], 2)
  row(c, MODELS[mo], "us_per_unit", "us", alloc[mo])
  row(c, MODELS[mo], "user_bytes_per_unit", "bytes", mem[mo])
  row(case_name(mo, "switch", 2, cfg[:switch_m]), MODELS[mo], "us_per_switch", "us", sw[mo])
end

# throughput (N, M, repeats) and warming (N, 2, repeats): first and last repeat.
tp_first = Hash.new { |h, k| h[k] = [] }
tp_last = Hash.new { |h, k| h[k] = [] }
w_first = Hash.new { |h, k| h[k] = [] }
w_last = Hash.new { |h, k| h[k] = [] }
cfg[:series].times do |s|
  MODELS.each_key do |mo|
    ups = Array.new(cfg[:repeats]) { cfg[:tp_n] / run_once(mo, cfg[:tp_n], cfg[:tp_m])[0] }
    tp_first[mo] << ups.first
    tp_last[mo] << ups.last
    if cfg[:warm_repeats].positive? && s < cfg[:warm_series]
      us = Array.new(cfg[:warm_repeats]) { run_once(mo, cfg[:alloc_n], 2)[0] * 1e6 / cfg[:alloc_n] }
      w_first[mo] << us.first
      w_last[mo] << us.last
    end
    progress "throughput x#{cfg[:repeats]} and warming x#{cfg[:warm_repeats]}: #{MODELS[mo]}, series #{s + 1}/#{cfg[:series]}"
  end
end
MODELS.each_key do |mo|
  c = case_name(mo, "throughput", cfg[:tp_n], cfg[:tp_m])
  row(c, MODELS[mo], "units_per_s", "units/s", tp_last[mo])
  row(c, MODELS[mo], "first_repeat_units_per_s", "units/s", tp_first[mo])
  next if w_first[mo].empty?

  c = case_name(mo, "warming", cfg[:alloc_n], 2)
  row(c, MODELS[mo], "cold_unit_us", "us", w_first[mo])
  row(c, MODELS[mo], "warm_unit_us", "us", w_last[mo])
end
