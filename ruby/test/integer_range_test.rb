# frozen_string_literal: true

require "test_helper"

# Counters are u64 but protocol v2 requests stop at 2**63-1: what each path
# does with the integers in between (the README's "Integer range").
class IntegerRangeTest < Minitest::Test
  I64_MAX = (2**63) - 1
  U64_MAX = (2**64) - 1

  def test_the_engines_typed_calls_take_u64
    engine = Karma::Engine.new
    engine.create_series("s")
    assert_equal 1, engine.increment(series: "s", key: U64_MAX, bucket: 20260501)
    assert_equal U64_MAX, engine.increment(series: "s", key: 1, value: U64_MAX, bucket: 20260501)
    assert_equal U64_MAX, engine.batch_sum(series: "s", keys: [1]).first, "answers may exceed 2**63-1"
    assert_equal I64_MAX + 1, engine.consume(series: "s", key: 2, limit: I64_MAX + 1, bucket: 20260501).limit
  ensure
    engine&.close
  end

  def test_protocol_requests_stop_at_2_63_minus_1
    engine = Karma::Engine.new
    engine.create_series("s")
    assert_equal 0, engine.sum(series: "s", key: I64_MAX)
    error = assert_raises(Karma::InvalidJsonError) { engine.sum(series: "s", key: I64_MAX + 1) }
    assert_equal "invalid_json", error.code
    assert_raises(Karma::InvalidJsonError) do
      engine.increment(series: "s", key: I64_MAX + 1, bucket: 20260501, idempotency_key: "k")
    end
  ensure
    engine&.close
  end

  def test_the_client_refuses_them_before_sending
    client = Karma::Client.new(url: KarmaServer.shared.url)
    series = fresh_series("range")
    client.create_series(series)
    assert_equal 1, client.increment(series: series, key: I64_MAX, bucket: 20260501)
    error = assert_raises(Karma::ValidationError) { client.increment(series: series, key: I64_MAX + 1, bucket: 20260501) }
    assert_match(/largest integer protocol v2 accepts/, error.message)
    assert_raises(Karma::ValidationError) { client.consume(series: series, key: 1, limit: I64_MAX + 1) }
    assert_raises(Karma::InvalidJsonError) { client.sum(series: series, key: I64_MAX + 1) }
  ensure
    client&.close
  end

  def test_beyond_u64_is_refused_everywhere
    engine = Karma::Engine.new
    [-1, U64_MAX + 1].each do |bad|
      assert_raises(Karma::ValidationError) { engine.increment(series: "s", key: bad) }
      assert_raises(Karma::ValidationError) { engine.sum(series: "s", key: bad) }
    end
  ensure
    engine&.close
  end
end
