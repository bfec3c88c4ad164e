# frozen_string_literal: true

require "test_helper"

class ErrorsTest < Minitest::Test
  def test_each_error_code_has_its_class_carrying_the_code
    Karma::ERROR_CLASSES.each do |code, klass|
      error = Karma::Native.error_for_code(code, "message for #{code}")
      assert_instance_of klass, error
      assert_equal code, error.code
      assert_equal "message for #{code}", error.message
      assert Karma::Error === error, "rescue Karma::Error must catch #{klass}" # rubocop:disable Style/CaseEquality
    end
  end

  def test_validation_error_is_an_argument_error_and_a_karma_error
    engine = Karma::Engine.new
    engine.create_series("s")
    [-1, 2**64].each do |bad|
      error = assert_raises(Karma::ValidationError) { engine.increment(series: "s", key: bad) }
      assert_kind_of ArgumentError, error
      assert_equal "validation_error", error.code
      caught = begin
        engine.increment(series: "s", key: 1, value: bad)
      rescue Karma::Error => e
        e
      end
      assert_instance_of Karma::ValidationError, caught
    end
  ensure
    engine&.close
  end

  def test_transport_failures_are_connection_errors
    server = TCPServer.new("127.0.0.1", 0)
    port = server.addr[1]
    server.close
    client = Karma::Client.new(url: "karma://127.0.0.1:#{port}", connect_timeout: 1)
    error = assert_raises(Karma::ConnectionError) { client.ping }
    assert_nil error.code
    assert_equal "connection", error.kind
  end

  def test_a_closed_engine_raises_closed_error
    engine = Karma::Engine.new
    engine.close
    assert_raises(Karma::ClosedError) { engine.ping }
    engine.close # idempotent
  end
end
