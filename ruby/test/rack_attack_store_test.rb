# frozen_string_literal: true

require "test_helper"
require "rack"
require "rack/mock"
require "rack/attack"
require "karma/rack_attack_store"

# Rack::Attack reads Time.now: tests pin it (thread-safely, unlike
# Minitest's stub) so a throttle period never ends in the middle of a test.
module PinnedTime
  class << self
    attr_accessor :now
  end

  def now
    PinnedTime.now || super
  end
end
Time.singleton_class.prepend(PinnedTime)

# Debian's rack-attack throttling a small Rack app with the Karma store, on
# an in-process Engine and on a Client to a real server.
module RackAttackStoreTests
  NOW = Time.utc(2026, 12, 5, 10, 0, 0)
  LIMIT = 5
  PERIOD = 60

  APP = Rack::Attack.new(->(_env) { [200, { "content-type" => "text/plain" }, ["ok"]] })

  def setup
    @store = Karma::RackAttackStore.new(karma, series: fresh_series("rack_attack"), clock: -> { @now })
    @now = NOW
    Rack::Attack.clear_configuration
    Rack::Attack.enabled = true
    Rack::Attack.cache.store = @store
    Rack::Attack.throttle("requests/ip", limit: LIMIT, period: PERIOD, &:ip)
  end

  def teardown
    PinnedTime.now = nil
    Rack::Attack.clear_configuration
  end

  def get(ip)
    PinnedTime.now = @now
    Rack::MockRequest.new(APP).get("/", "REMOTE_ADDR" => ip).status
  end

  def test_a_throttle_lets_exactly_limit_requests_through_per_discriminator
    a = Array.new(LIMIT + 3) { get("10.0.0.1") }
    b = Array.new(LIMIT + 1) { get("10.0.0.2") }
    assert_equal [200] * LIMIT + [429] * 3, a
    assert_equal [200] * LIMIT + [429], b
    # The next period starts a new count.
    @now += PERIOD
    assert_equal [200] * LIMIT + [429], Array.new(LIMIT + 1) { get("10.0.0.1") }
  end

  def test_concurrent_requests_are_counted_exactly
    statuses = Queue.new
    Array.new(4) { Thread.new { 10.times { statuses << get("10.0.0.9") } } }.each(&:join)
    all = Array.new(statuses.size) { statuses.pop }
    assert_equal LIMIT, all.count(200)
    assert_equal 40 - LIMIT, all.count(429)
  end

  def test_increment_answers_the_new_count
    assert_equal 1, @store.increment("k", 1, expires_in: 30)
    assert_equal 4, @store.increment("k", 3, expires_in: 30)
    assert_equal 4, @store.read("k")
  end

  def test_written_entries_expire_and_can_be_deleted
    @store.write("ban:1.2.3.4", 1, expires_in: 600)
    assert_equal 1, @store.read("ban:1.2.3.4")
    @now += 599
    assert_equal 1, @store.read("ban:1.2.3.4")
    @now += 1
    assert_nil @store.read("ban:1.2.3.4")
    @store.write("ban:1.2.3.4", 2, expires_in: 600)
    assert_equal 2, @store.read("ban:1.2.3.4")
    @store.delete("ban:1.2.3.4")
    assert_nil @store.read("ban:1.2.3.4")
    assert_nil @store.read("never-written")
  end

  def test_fail2ban_bans_through_the_store
    Rack::Attack.blocklist("fail2ban") do |req|
      Rack::Attack::Fail2Ban.filter("pentest-#{req.ip}", maxretry: 2, findtime: 60, bantime: 300) do
        req.path.include?("wp-admin")
      end
    end
    probe = lambda do |path|
      PinnedTime.now = @now
      Rack::MockRequest.new(APP).get(path, "REMOTE_ADDR" => "10.9.9.9").status
    end
    assert_equal 403, probe.call("/wp-admin") # a probe is blocked, and counted
    assert_equal 200, probe.call("/") # one strike: not banned yet
    assert_equal 403, probe.call("/wp-admin") # the second strike bans
    assert_equal 403, probe.call("/") # banned, for every path
    @now += 301
    assert_equal 200, probe.call("/")
  end

  def test_expired_periods_are_cleaned_by_retention
    3.times { get("10.0.0.3") }
    series = @store.series
    assert_operator karma.info(series)["bucket_count"], :>, 0
    @now += 2 * 86_400 # two days later: everything counted before is past its expiry day
    get("10.0.0.4")
    assert_equal 1, karma.info(series)["bucket_count"], "only today's counter is left"
  end
end

class RackAttackStoreEngineTest < Minitest::Test
  include RackAttackStoreTests

  def karma
    @karma ||= Karma::Engine.new(nil, wal: false)
  end

  def teardown
    super
    @karma&.close
  end
end

class RackAttackStoreClientTest < Minitest::Test
  include RackAttackStoreTests

  def karma
    @karma ||= Karma::Client.new(url: KarmaServer.shared.url)
  end

  def test_fails_open_when_the_server_is_unreachable
    port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
    Rack::Attack.cache.store = Karma::RackAttackStore.new(Karma::Client.new(url: "karma://127.0.0.1:#{port}", connect_timeout: 1))
    assert_equal [200] * (LIMIT + 2), Array.new(LIMIT + 2) { get("10.0.0.1") }
  end
end
