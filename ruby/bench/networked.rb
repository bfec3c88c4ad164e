# frozen_string_literal: true

# Networked increments/s from Ruby threads: Karma::Client `increment`
# against a running `karma` server beside redis-rb `INCR` against a running
# redis-server, in one run (bench/networked.sh starts both, pinned).
#
#   ruby -Ilib bench/networked.rb KARMA_PORT REDIS_PORT [threads] [calls per thread]
require "karma"
require "redis"

karma_port = Integer(ARGV.fetch(0))
redis_port = Integer(ARGV.fetch(1))
threads = Integer(ARGV.fetch(2, "4"))
per_thread = Integer(ARGV.fetch(3, "50000"))

def run(label, threads, per_thread)
  clients = Array.new(threads) { |t| yield(t) }
  start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  Array.new(threads) { |t| Thread.new { clients[t].call(per_thread) } }.each(&:join)
  elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - start
  cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu
  total = threads * per_thread
  # Client CPU per call: what the load generator itself spends, the figure
  # least disturbed by other processes on a shared machine.
  puts format("%-40s %d threads x %d = %d calls in %.3f s = %.0f/s (client CPU %.1f us/call)",
              label, threads, per_thread, total, elapsed, total / elapsed, cpu * 1e6 / total)
  total / elapsed
end

karma = Karma::Client.new(url: "karma://127.0.0.1:#{karma_port}", pool_size: threads)
karma.create_series("bench") unless karma.list_series.include?("bench")
karma.reset(series: "bench")
redis = Array.new(threads) { Redis.new(host: "127.0.0.1", port: redis_port) }
redis[0].del(*Array.new(threads) { |t| "bench:#{t}" })

results = {}
2.times do |round|
  results[:karma] = run("karma Client#increment (round #{round + 1})", threads, per_thread) do |t|
    ->(n) { n.times { karma.increment(series: "bench", key: t, bucket: 20_260_501) } }
  end
  results[:redis] = run("redis-rb INCR (round #{round + 1})", threads, per_thread) do |t|
    ->(n) { n.times { redis[t].incr("bench:#{t}") } }
  end
end
counted = karma.batch_sum(series: "bench", keys: Array.new(threads) { |t| t })
incrs = redis[0].mget(*Array.new(threads) { |t| "bench:#{t}" }).map(&:to_i)
raise "karma counted #{counted}" unless counted.all? { |c| c == 2 * per_thread }
raise "redis counted #{incrs}" unless incrs.all? { |c| c == 2 * per_thread }

puts format("ratio karma/redis (last round): %.2fx", results[:karma] / results[:redis])
