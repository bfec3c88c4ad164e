# frozen_string_literal: true

require "test_helper"

# One script of every method, run against Karma::Engine and against
# Karma::Client (to a real `karma` process): the results must be identical.
class ParityTest < Minitest::Test
  D1 = Date.new(2026, 5, 1)
  D2 = Date.new(2026, 5, 2)

  # Returns [label, result-or-error] for each step.
  def script(k, s)
    out = []
    step = lambda do |label, &blk|
      out << [label, blk.call]
    rescue Karma::Error, ArgumentError, TypeError => e
      out << [label, [e.class.name, e.respond_to?(:code) ? e.code : nil, e.message]]
    end
    other = "#{s}_other"
    step.call(:create) { k.create_series(s) }
    step.call(:create_other) { k.create_series(other) }
    step.call(:create_again) { k.create_series(s) }
    step.call(:list) { k.list_series.include?(s) }
    step.call(:ping) { k.ping }
    step.call(:inc_date) { k.increment(series: s, key: 42, bucket: D1, value: 3) }
    step.call(:inc_time) { k.increment(series: s, key: 42, bucket: Time.utc(2026, 5, 2, 23, 59)) }
    step.call(:inc_datetime) { k.increment(series: s, key: 7, bucket: DateTime.new(2026, 5, 2, 23, 0, 0, "-02:00"), value: 5) }
    step.call(:inc_string) { k.increment(series: s, key: 7, bucket: "2026-05-01", value: 2) }
    step.call(:inc_int) { k.increment(series: s, key: 8, bucket: 20260501, value: 2**40) }
    step.call(:inc_idem) { k.increment(series: s, key: 9, bucket: D1, idempotency_key: "ev-1") }
    step.call(:inc_idem_again) { k.increment(series: s, key: 9, bucket: D1, idempotency_key: "ev-1") }
    step.call(:inc_idem_conflict) { k.increment(series: s, key: 9, bucket: D1, value: 2, idempotency_key: "ev-1") }
    step.call(:sum_missing_series) { k.sum(series: "#{s}_nope", key: 1) }
    step.call(:inc_negative) { k.increment(series: s, key: -1) }
    step.call(:inc_too_big) { k.increment(series: s, key: 2**64) }
    step.call(:inc_max) { k.increment(series: s, key: 2**63 - 1, bucket: D1) }
    step.call(:inc_bad_date) { k.increment(series: s, key: 1, bucket: "2026-02-30") }
    step.call(:inc_bad_type) { k.increment(series: s, key: "1") }
    step.call(:dec) { k.decrement(series: s, key: 42, bucket: D1, value: 1) }
    step.call(:dec_below_zero) { k.decrement(series: s, key: 42, bucket: D2, value: 100) }
    step.call(:sum) { k.sum(series: s, key: 42) }
    step.call(:sum_range) { k.sum(series: s, key: 7, range: D1..D2) }
    step.call(:sum_from_to) { k.sum(series: s, key: 7, from: "2026-05-02", to: 20260502) }
    step.call(:sum_array_range) { k.sum(series: s, key: 7, range: [D1, D1]) }
    step.call(:sum_exclusive) { k.sum(series: s, key: 7, range: D1...D2) }
    step.call(:sum_reversed) { k.sum(series: s, key: 7, from: D2, to: D1) }
    step.call(:batch_sum) { k.batch_sum(series: s, keys: [42, 7, 99]) }
    step.call(:multi_sum) { k.multi_sum(items: [[s, 7], { series: other, key: 7 }], from: D1, to: D2) }
    step.call(:points) { k.points(series: s, key: 7, from: D1, to: D2) }
    step.call(:points_no_range) { k.points(series: s, key: 7) }
    step.call(:batch_add) { k.batch_add(series: other, items: [[1, D1, 5], { key: 2, bucket: "2026-05-02", value: 6 }]) }
    step.call(:batch_set) { k.batch_set(series: other, items: [[1, D1, 50]]) }
    step.call(:other_sum) { k.batch_sum(series: other, keys: [1, 2]) }
    step.call(:info) { k.info(s) }
    step.call(:keys) { k.keys(s, limit: 2) }
    step.call(:keys_cursor) { k.keys(s, limit: 2, cursor: 8) }
    step.call(:top) { k.top(s, limit: 2) }
    step.call(:top_range) { k.top(s, limit: 5, range: D1..D1) }
    step.call(:summary) { k.summary(s, range: D1..D2) }
    step.call(:consume) { k.consume(series: s, key: 70, limit: 3, value: 2, bucket: D1).to_h }
    step.call(:consume_over) { k.consume(series: s, key: 70, limit: 3, value: 2, bucket: D1).to_h }
    step.call(:consume_days) { k.consume(series: s, key: 70, limit: 10, days: 2, bucket: D2).to_h }
    step.call(:consume_month) { k.consume(series: s, key: 70, limit: 10, window: :month, bucket: D2).to_h }
    step.call(:consume_idem) { k.consume(series: s, key: 71, limit: 1, bucket: D1, idempotency_key: "q-1").to_h }
    step.call(:consume_idem_again) { k.consume(series: s, key: 71, limit: 1, bucket: D1, idempotency_key: "q-1").to_h }
    step.call(:consume_zero_days) { k.consume(series: s, key: 70, limit: 10, days: 0) }
    step.call(:consume_zero_value) { k.consume(series: s, key: 70, limit: 10, value: 0) }
    step.call(:consume_bad_window) { k.consume(series: s, key: 70, limit: 10, window: :year) }
    step.call(:consume_days_no_n) { k.consume(series: s, key: 70, limit: 10, window: :days) }
    step.call(:consume_month_days) { k.consume(series: s, key: 70, limit: 10, window: :month, days: 3) }
    step.call(:consume_negative) { k.consume(series: s, key: 70, limit: -1) }
    step.call(:consume_no_limit) { k.request("counter.consume", series: s, key: 70) }
    step.call(:after_consume) { k.batch_sum(series: s, keys: [70, 71]) }
    step.call(:delete_range_key) { k.delete_range(series: s, key: 7, from: D1, to: D1) }
    step.call(:after_delete_range) { k.points(series: s, key: 7, range: D1..D2) }
    step.call(:batch_delete_range) { k.batch_delete_range(series: s, keys: [42, 1234], range: D2..D2) }
    step.call(:reset_key) { k.reset(series: s, key: 8) }
    step.call(:batch_reset) { k.batch_reset(series: s, keys: [9, 4321]) }
    step.call(:delete_before) { k.delete_before(s, before: D2) }
    step.call(:compact) { k.compact(s) }
    step.call(:compact_all) { k.compact }
    step.call(:after) { k.batch_sum(series: s, keys: [42, 7, 8, 9]) }
    step.call(:request) { k.request("counter.sum", series: s, key: 42, range: { from: D1, to: D2 }) }
    step.call(:request_unknown) { k.request("tree.count", series: s) }
    step.call(:request_negative) { k.request("counter.increment", series: s, key: -5) }
    step.call(:ingest) do
      k.ingest(stream_id: "#{s}-import", mode: "add", series: s) do |stream|
        stream << [[500, D1, 1]]
        stream.chunk([[501, D1, 2]])
      end
    end
    step.call(:after_ingest) { k.batch_sum(series: s, keys: [500, 501]) }
    step.call(:ingest_aborted) do
      k.ingest(stream_id: "#{s}-aborted", mode: "add", series: s) do |stream|
        stream << [[600, D1, 1]]
        raise ArgumentError, "the block failed"
      end
    end
    step.call(:after_abort) { k.sum(series: s, key: 600) }
    step.call(:reset_series) { k.reset(series: other) }
    step.call(:drop) { k.drop_series(other) }
    step.call(:drop_missing) { k.drop_series(other) }
    step.call(:health_status) { k.health.is_a?(Hash) }
    step.call(:stats) { k.stats.is_a?(Hash) }
    step.call(:metrics) { k.metrics.include?("karma_") }
    step.call(:prune) { k.idempotency_prune(before: Time.now - 3600).is_a?(Integer) }
    out
  end

  def test_engine_and_client_give_identical_results
    series = fresh_series("parity")
    engine = Karma::Engine.new
    client = Karma::Client.new(url: KarmaServer.shared.url)
    from_engine = script(engine, series)
    from_client = script(client, series)
    from_engine.zip(from_client).each do |(label, e), (_, c)|
      assert_equal e, c, "step #{label}: engine #{e.inspect}, client #{c.inspect}"
    end
    results = from_engine.to_h
    assert_equal 2, results[:sum] # 3 + 1 - 1, and the D2 bucket floored at 0
    assert_equal [2, 7, 0], results[:batch_sum]
    # 23:00 at -02:00 on May 2 is May 3 in UTC: outside the range.
    assert_equal({ 20260501 => 2 }, results[:points])
    assert_equal "Karma::IdempotencyConflictError", results[:inc_idem_conflict][0]
    assert_equal "Karma::ValidationError", results[:inc_negative][0]
    assert_equal "Karma::ValidationError", results[:inc_too_big][0]
    assert_equal "Karma::NotFoundError", results[:sum_missing_series][0]
    assert_equal "Karma::UnknownCommandError", results[:request_unknown][0]
    assert_equal({ allowed: true, used: 2, remaining: 1, limit: 3, range: 20260501..20260501 }, results[:consume])
    assert_equal({ allowed: false, used: 2, remaining: 1, limit: 3, range: 20260501..20260501 }, results[:consume_over])
    assert_equal [true, 3, 20260501..20260502], results[:consume_days].values_at(:allowed, :used, :range)
    assert_equal [true, 4, 20260501..20260502], results[:consume_month].values_at(:allowed, :used, :range)
    assert_equal results[:consume_idem], results[:consume_idem_again]
    assert_equal "Karma::ValidationError", results[:consume_zero_days][0]
    assert_equal "Karma::ValidationError", results[:consume_no_limit][0]
    assert_equal [4, 1], results[:after_consume]
    assert_equal [1, 2], results[:after_ingest]
    assert_equal "ArgumentError", results[:ingest_aborted][0]
  ensure
    engine&.close
    client&.close
  end
end
