# frozen_string_literal: true

require "test_helper"
require "json"
require "open3"
require "rbconfig"
require "karma_client"

# The karma_client API (Karma 1.0's Ruby client README) against a real server.
class KarmaClientTest < Minitest::Test
  DAY = Date.new(2026, 5, 5)

  def setup
    @server = KarmaServer.shared
    KarmaClient.configure do |c|
      c.host = "127.0.0.1"
      c.port = @server.port
      c.token = nil
      c.instrumenter = nil
      c.pool_size = 4
    end
    @series = fresh_series("kc")
    KarmaClient.with_client { |k| k.create_series(@series) }
  end

  def teardown
    KarmaClient.close
  end

  def with_client(&block)
    KarmaClient.with_client(&block)
  end

  def test_with_client_counts_and_reads
    with_client do |k|
      k.increment(series: @series, key: 42, bucket: DAY, value: 3)
      k.increment(series: @series, key: 42, bucket: "2026-05-06")
      k.increment(series: @series, key: 41, bucket: 20_260_504, value: 10)
      assert_equal 4, k.sum(series: @series, key: 42)
      assert_equal 3, k.sum(series: @series, key: 42, from: "2026-05-01", to: DAY)
      assert_equal 3, k.sum(series: @series, key: 42, range: Date.new(2026, 5, 1)..DAY)
      k.decrement(series: @series, key: 42, bucket: DAY, value: 1)
      assert_equal 3, k.sum(series: @series, key: 42)
    end
  end

  def test_batch_sum_and_multi_sum_answer_the_servers_rows
    other = fresh_series("kc_other")
    with_client do |k|
      k.create_series(other)
      k.batch_add(series: @series, items: [[41, DAY, 10], { key: 42, bucket: "2026-05-05", value: 15 }])
      k.increment(series: other, key: 41, bucket: DAY, value: 7)
      assert_equal [{ "key" => 41, "value" => 10 }, { "key" => 42, "value" => 15 }, { "key" => 43, "value" => 0 }],
                   k.batch_sum(series: @series, keys: [41, 42, 43])
      rows = k.multi_sum(items: [{ series: @series, key: 41 }, { series: other, key: 41 }], from: "2026-05-01", to: "2026-05-31")
      assert_equal [10, 7], rows.map { |r| r["value"] }
    end
  end

  def test_points_keys_top_info_summary_and_list
    with_client do |k|
      k.batch_set(series: @series, items: [[1, "2026-05-01", 5], [1, "2026-05-03", 6], [2, "2026-05-03", 20]])
      assert_equal({ "20260501" => 5, "20260503" => 6 }, k.points(series: @series, key: 1, from: "2026-05-01", to: "2026-05-31"))
      assert_equal [1, 2], k.series_keys(@series, limit: 10)["keys"].map { |r| r["key"] }
      assert_equal [2, 1], k.series_top(@series, limit: 2).fetch("items").map { |r| r["key"] }
      assert_equal 31, k.series_info(@series)["total"]
      assert_includes k.list_series, @series
      assert_equal 31, k.series_summary(@series)["total"]
      assert_equal "pong", k.ping
      assert k.health
    end
  end

  def test_resets_and_deletes
    with_client do |k|
      k.batch_add(series: @series, items: [[1, "2026-05-01", 1], [1, "2026-05-02", 2], [2, "2026-05-01", 4], [3, "2026-05-01", 8]])
      k.delete_range(series: @series, key: 1, from: "2026-05-02", to: "2026-05-02")
      assert_equal 1, k.sum(series: @series, key: 1)
      k.batch_delete_range(series: @series, keys: [2], from: "2026-05-01", to: "2026-05-01")
      assert_equal 0, k.sum(series: @series, key: 2)
      k.reset_counter(series: @series, key: 3)
      assert_equal 0, k.sum(series: @series, key: 3)
      k.batch_add(series: @series, items: [[4, DAY, 1], [5, DAY, 1]])
      k.batch_reset(series: @series, keys: [4])
      assert_equal [0, 1], k.batch_sum(series: @series, keys: [4, 5]).map { |r| r["value"] }
      k.reset_series(@series)
      assert_equal 0, k.sum(series: @series, key: 5)
      k.drop_series(@series)
      refute_includes k.list_series, @series
    end
  end

  def test_request_returns_a_response_with_the_idempotent_flag
    with_client do |k|
      fields = { series: @series, key: 42, bucket: DAY, value: 1, idempotency_key: "usage-event-#{@series}" }
      first = k.request("counter.increment", **fields)
      again = k.request("counter.increment", **fields)
      assert first.success?
      refute first.error?
      refute first.idempotent?
      assert again.idempotent?
      assert_nil again.error_code
      assert_equal 2, again.protocol_version
      assert_equal 1, k.sum(series: @series, key: 42)

      missing = k.request("counter.sum", series: "#{@series}_missing", key: 1)
      assert missing.error?
      assert_equal "not_found", missing.error_code
      assert_kind_of String, missing.value
    end
  end

  def test_convenience_writes_take_idempotency_keys
    with_client do |k|
      2.times { k.increment(series: @series, key: 7, bucket: DAY, idempotency_key: "job-1") }
      2.times { k.batch_add(series: @series, items: [[7, DAY, 5]], idempotency_key: "job-2") }
      assert_equal 6, k.sum(series: @series, key: 7)
      # fingerprint: is checked by the server against the request's own.
      assert_raises(KarmaClient::IdempotencyConflictError) do
        k.batch_add(series: @series, items: [[7, DAY, 1]], idempotency_key: "job-3", fingerprint: "not-the-fingerprint")
      end
      assert_equal 6, k.sum(series: @series, key: 7)
      error = assert_raises(KarmaClient::IdempotencyConflictError) do
        k.increment(series: @series, key: 7, bucket: DAY, value: 9, idempotency_key: "job-1")
      end
      assert_equal "idempotency_conflict", error.code
      assert_kind_of KarmaClient::ServerError, error
    end
  end

  def test_call_reaches_any_op
    with_client do |k|
      k.increment(series: @series, key: 3, bucket: DAY)
      assert_equal [{ "key" => 3, "total" => 1 }], k.call("tree.keys", series: @series, limit: 1000, cursor: 0)["keys"]
      assert_raises(KarmaClient::UnknownCommandError) { k.call("tree.count", series: @series) }
    end
  end

  def test_ingest_in_steps
    stream = "import-#{@series}"
    with_client do |k|
      k.ingest_begin(stream_id: stream, mode: "add")
      k.ingest_chunk(stream_id: stream, series: @series, chunk_seq: 1, items: [[42, "2026-05-05", 10]])
      k.ingest_commit(stream_id: stream)
      assert_equal 10, k.sum(series: @series, key: 42)
    end
  end

  def test_idempotency_prune_answers_the_deleted_count
    with_client do |k|
      result = k.idempotency_prune(before: Time.now.utc - (7 * 24 * 60 * 60), limit: 10_000)
      assert_kind_of Integer, result.is_a?(Hash) ? result["deleted"] : result
    end
  end

  def test_server_errors_have_their_classes_codes_and_retry_policy
    error = assert_raises(KarmaClient::NotFoundError) { with_client { |k| k.sum(series: "#{@series}_missing", key: 42) } }
    assert_equal "not_found", error.code
    refute error.retriable?
    assert_kind_of KarmaClient::Error, error
    assert_kind_of StandardError, error

    Karma::ERROR_CLASSES.each_key do |code|
      response = KarmaClient::Response.new(protocol_version: 2, success: false, value: "m", error_code: code)
      e = KarmaClient::ServerError.from_response(response)
      assert_equal code, e.code
      assert_kind_of KarmaClient::ServerError, e
      refute_equal KarmaClient::ServerError, e.class, "#{code} has its own class"
    end
    timeout = KarmaClient::ServerError.from_response(
      KarmaClient::Response.new(protocol_version: 2, success: false, value: "slow", error_code: "query_timeout")
    )
    assert_instance_of KarmaClient::QueryTimeoutError, timeout
    assert timeout.retriable?
  end

  def test_bad_arguments_raise_input_error_before_sending
    with_client do |k|
      assert_raises(KarmaClient::InputError) { k.increment(series: @series, key: -1) }
      assert_raises(KarmaClient::InputError) { k.increment(series: @series, key: 2**64) }
      assert_raises(KarmaClient::InputError) { k.increment(series: @series, key: 1, bucket: "2026-02-30") }
      assert_raises(KarmaClient::InputError) { k.sum(series: "", key: 1) }
      assert_raises(KarmaClient::InputError) { k.batch_sum(series: @series, keys: []) }
      assert_raises(KarmaClient::InputError) { k.points(series: @series, key: 1) }
      assert_raises(KarmaClient::InputError) { k.sum(series: @series, key: 1, from: "2026-05-01") }
    end
    assert_equal 2, with_client { |k| k.increment(series: @series, key: "42", value: 2, bucket: DAY) }
    assert_equal 2, with_client { |k| k.sum(series: @series, key: 42) }
  end

  def test_a_client_of_its_own_with_host_port_and_token
    secured = KarmaServer.new("--auth-token=secret").start
    karma = KarmaClient::Client.new(host: "127.0.0.1", port: secured.port, token: "secret")
    assert karma.health
    karma.create_series("tok")
    assert_equal 1, karma.increment(series: "tok", key: 1)
    denied = KarmaClient::Client.new(host: "127.0.0.1", port: secured.port, token: "wrong")
    error = assert_raises(KarmaClient::UnauthorizedError) { denied.increment(series: "tok", key: 1) }
    assert_equal "unauthorized", error.code
  ensure
    karma&.close
    denied&.close
    secured&.stop
  end

  def test_close_then_use_again_reconnects
    karma = KarmaClient.client
    karma.increment(series: @series, key: 1, bucket: DAY)
    karma.close
    assert_equal 1, karma.sum(series: @series, key: 1)
  ensure
    karma&.close
  end

  def test_unreachable_server_raises_connection_error
    port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
    karma = KarmaClient::Client.new(host: "127.0.0.1", port: port, connect_timeout: 1)
    error = assert_raises(KarmaClient::ConnectionError) { karma.ping }
    assert_kind_of KarmaClient::TransportError, error
    assert_equal port, error.port
  end

  # A server that accepts and reads but never answers: a request to it holds
  # its pooled connection until the read timeout.
  def test_a_silent_server_gives_timeout_error_and_a_busy_pool_pool_timeout
    silent = TCPServer.new("127.0.0.1", 0)
    received = Queue.new
    acceptor = Thread.new do
      socket = silent.accept
      received << socket.gets
      socket
    end
    karma = KarmaClient::Client.new(host: "127.0.0.1", port: silent.addr[1], pool_size: 1, pool_timeout: 0.05,
                                    read_timeout: 30)
    holder = Thread.new do
      karma.ping
    rescue KarmaClient::Error => e
      e
    end
    assert_match(/system\.ping/, received.pop) # the only connection is now in use
    assert_raises(KarmaClient::PoolTimeout) { karma.health }
    acceptor.value.close # the held request fails once its connection drops
    assert_kind_of KarmaClient::TransportError, holder.value

    quick = KarmaClient::Client.new(host: "127.0.0.1", port: silent.addr[1], read_timeout: 0.05)
    acceptor = Thread.new { silent.accept }
    assert_raises(KarmaClient::TimeoutError) { quick.ping }
    acceptor.value.close
  ensure
    silent&.close
  end

  def test_threads_share_the_pool
    threads = Array.new(4) do
      Thread.new { 50.times { with_client { |k| k.increment(series: @series, key: 9, bucket: DAY) } } }
    end
    threads.each(&:join)
    assert_equal 200, with_client { |k| k.sum(series: @series, key: 9) }
    assert_equal 200, KarmaClient.pool.with { |k| k.sum(series: @series, key: 9) }
    KarmaClient.pool.close
    assert_equal 200, KarmaClient.with_client { |k| k.sum(series: @series, key: 9) }, "usable again after close"
  end

  def test_instrumenter_sees_each_request
    events = []
    recorder = Object.new
    recorder.define_singleton_method(:instrument) do |name, payload, &block|
      events << [name, payload]
      block.call
    end
    KarmaClient.configure { |c| c.instrumenter = recorder }
    with_client { |k| k.increment(series: @series, key: 1, bucket: DAY) }
    assert_equal [["request.karma_client", { operation: "counter.increment", series: @series }]], events
  end

  def test_configuration_from_the_environment
    c = KarmaClient::Configuration.from_env(
      "KARMA_URL" => "tcp://10.0.0.5:9000?token=from-url", "KARMA_CONNECT_TIMEOUT" => "0.25",
      "KARMA_READ_TIMEOUT" => "2", "KARMA_WRITE_TIMEOUT" => "3", "KARMA_POOL_SIZE" => "12", "KARMA_POOL_TIMEOUT" => "0.5"
    )
    assert_equal ["10.0.0.5", 9000, "from-url"], [c.host, c.port, c.token]
    assert_equal [0.25, 2.0, 3.0, 12, 0.5], [c.connect_timeout, c.read_timeout, c.write_timeout, c.pool_size, c.pool_timeout]

    c = KarmaClient::Configuration.from_env("KARMA_HOST" => "db", "KARMA_PORT" => "7000",
                                            "KARMA_AUTH_TOKEN" => "a", "KARMA_READ_AUTH_TOKEN" => "r", "RAILS_MAX_THREADS" => "3")
    assert_equal ["db", 7000, "a", 3], [c.host, c.port, c.token, c.pool_size]
    assert_equal "r", KarmaClient::Configuration.from_env("KARMA_READ_AUTH_TOKEN" => "r").token
    assert_equal ["127.0.0.1", 8080], KarmaClient::Configuration.from_env({}).then { |d| [d.host, d.port] }

    assert_raises(KarmaClient::ConfigurationError) { KarmaClient::Configuration.from_env("KARMA_PORT" => "eighty") }
    assert_raises(KarmaClient::ConfigurationError) { KarmaClient::Configuration.from_env("KARMA_URL" => "http://x:1") }
    assert_raises(KarmaClient::ConfigurationError) { KarmaClient.configure { |cfg| cfg.pool_size = 0 } }
    assert_raises(KarmaClient::ConfigurationError) { KarmaClient::Client.new(colour: "red") }
  end

  def test_environment_drives_the_default_configuration
    script = <<~RUBY
      require "karma_client"
      KarmaClient.with_client do |k|
        k.create_series("env_#{Process.pid}")
        puts k.increment(series: "env_#{Process.pid}", key: 1, value: 5)
      end
    RUBY
    env = { "KARMA_URL" => "tcp://127.0.0.1:#{@server.port}" }
    out, status = Open3.capture2e(env, RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", script)
    assert status.success?, out
    assert_equal "5", out.strip
  end

  # Rails: the Railtie applies config.karma_client, and requests are
  # published as request.karma_client notifications. In a child process:
  # loading Rails here would change the other tests.
  def test_railtie_reads_config_karma_client_and_notifies
    script = <<~RUBY
      require "rails"
      require "json"
      require "karma_client"
      class KarmaTestApp < Rails::Application
        config.eager_load = false
        config.logger = Logger.new(nil)
        config.karma_client.host = "127.0.0.1"
        config.karma_client.port = #{@server.port}
        config.karma_client.pool_size = 2
      end
      Rails.application.initialize!
      events = []
      ActiveSupport::Notifications.subscribe("request.karma_client") { |*, payload| events << payload }
      value = KarmaClient.with_client do |k|
        k.create_series("rails_#{Process.pid}")
        k.increment(series: "rails_#{Process.pid}", key: 1, value: 4)
        k.sum(series: "rails_#{Process.pid}", key: 1)
      end
      puts JSON.generate(value: value, pool_size: KarmaClient.configuration.pool_size, events: events)
    RUBY
    out, status = Open3.capture2e(RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", script)
    assert status.success?, out
    result = JSON.parse(out.lines.last)
    assert_equal 4, result["value"]
    assert_equal 2, result["pool_size"]
    assert_equal %w[tree.create counter.increment counter.sum], result["events"].map { |e| e["operation"] }
  end
end
