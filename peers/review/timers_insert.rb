# peers/review/timers_insert.rb - review probe (not in make test): the cost of one
# schedule + cancel in timers 4.1.1 (Async 1.30's timers) with n cancelled handles
# left in its sorted Array (all at one deadline, as Net::HTTP read_timeout derived from one
# conversation deadline gives).   ruby peers/review/timers_insert.rb
require 'timers/events'
[10_000, 100_000, 200_000].each do |n|
  ev = Timers::Events.new
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  deadline = 1000.0
  n.times { h = ev.schedule(deadline, proc {}); h.cancel! }
  dt = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
  puts "n=#{n}: #{(dt / n * 1e6).round(2)} us per schedule+cancel, size left #{ev.size}"
end
