# frozen_string_literal: true

require "test_helper"

# Karma::Client on a cluster URL (docs/cluster.md): a real etcd (Debian's
# etcd-server at /usr/bin/etcd) and two `karma` nodes, one per shard. The
# same writes and reads through the cluster and through an in-process
# Karma::Engine must answer alike.
class ClusterTest < Minitest::Test
  ETCD = "/usr/bin/etcd"
  CLUSTER = "rb"

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def tool(*args)
    env = ENV.keys.grep(/\AKARMA_/).to_h { |k| [k, nil] }
    out = IO.popen(env, [KarmaServer.binary, "cluster", "--etcd=#{@endpoint}", "--cluster-name=#{CLUSTER}", *args],
                   err: File::NULL, &:read)
    [$?.success?, out]
  end

  def wait_until(what)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
    until yield
      raise "timed out waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.1
    end
  end

  def setup
    flunk "the cluster test needs etcd at #{ETCD}: install Debian's etcd-server (scripts/test does)" unless File.exist?(ETCD)
    @dir = Dir.mktmpdir("karma-ruby-etcd")
    @endpoint = "127.0.0.1:#{free_port}"
    peer = "http://127.0.0.1:#{free_port}"
    @etcd = Process.spawn(ETCD, "--name=rb", "--data-dir=#{@dir}/etcd",
                          "--listen-client-urls=http://#{@endpoint}", "--advertise-client-urls=http://#{@endpoint}",
                          "--listen-peer-urls=#{peer}", "--initial-advertise-peer-urls=#{peer}",
                          "--initial-cluster=rb=#{peer}", in: File::NULL, out: File::NULL, err: File::NULL)
    wait_until("etcd") { tool("init", "--shards=2").first }
    @nodes = (0..1).map do |shard|
      KarmaServer.new do |port|
        ["--cluster-etcd=#{@endpoint}", "--cluster-name=#{CLUSTER}", "--shard=#{shard}", "--node-id=n#{shard}",
         "--advertise=127.0.0.1:#{port}", "--cluster-lease-ttl=2"]
      end.start
    end
    wait_until("two leaders") { tool("status").last.scan(" leader ").size == 2 }
  end

  def teardown
    @nodes&.each(&:stop)
    if @etcd
      Process.kill("TERM", @etcd)
      Process.waitpid(@etcd)
    end
    FileUtils.rm_rf(@dir) if @dir
  end

  # Writes over keys of both shards, then every kind of read.
  def script(db)
    items = (0...90).map { |k| [k % 31, 20_260_501 + (k % 4), 1 + (k % 9)] }
    keys = (0...40).to_a
    answers = [
      db.batch_add(series: "a", items: items),
      db.increment(series: "a", key: 33, value: 5, bucket: 20_260_501),
      db.batch_sum(series: "a", keys: keys),
      db.batch_sum(series: "a", keys: keys, from: 20_260_502, to: 20_260_503),
      db.multi_sum(items: [["a", 1], ["a", 2], ["a", 30]]),
      db.top("a", limit: 5),
      db.info("a"),
      db.summary("a"),
      db.keys("a", cursor: 10, limit: 6),
      db.batch_sum(series: "a", keys: keys)
    ]
    assert_raises(Karma::NotFoundError) { db.info("nope") }
    answers
  end

  def test_a_cluster_url_opens_a_client_that_answers_as_one_node
    cluster = Karma::Client.new(url: "karma+etcd://#{@endpoint}/#{CLUSTER}")
    engine = Karma::Engine.new
    assert_equal script(engine), script(cluster)
    assert_equal "pong", cluster.ping
    assert_includes cluster.inspect, "karma+etcd://"
    error = assert_raises(Karma::ValidationError) { Karma::Client.new(url: "karma+etcd://127.0.0.1:1") }
    assert_match(/invalid cluster URL/, error.message)
  ensure
    cluster&.close
    engine&.close
  end
end
