# frozen_string_literal: true

# In-process increments/s from one Ruby thread (release build:
# `cd ruby && PROFILE=release rake compile`, then
# `taskset -c 1 ruby -Ilib bench/increments.rb [count]`).
require "karma"

count = Integer(ARGV.fetch(0, "2000000"))
engine = Karma::Engine.new(nil, wal: false)
engine.create_series("bench")
keys = 1024
start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
i = 0
while i < count
  engine.increment(series: "bench", key: i % keys, bucket: 20260501)
  i += 1
end
elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - start
cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu
total = engine.sum(series: "bench", key: 0) * keys
# The CPU-time rate is the one to compare on a shared machine: the wall
# clock also counts the time other processes held the core.
puts format("ruby in-process increment (wal off): %d calls in %.3f s wall = %.0f/s; %.3f s CPU = %.0f/s (check %d)",
            count, elapsed, count / elapsed, cpu, count / cpu, total)
