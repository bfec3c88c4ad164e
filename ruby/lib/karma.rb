# frozen_string_literal: true

# Karma from Ruby: Karma::Engine (the database inside this process) and
# Karma::Client (a pooled connection to a `karma` server), with the same
# methods. See ruby/README.md.

require_relative "karma/version"
require_relative "karma/karma" # the native extension (`rake compile`)
require_relative "karma/errors" # after it: its classes come from the extension's table
require_relative "karma/convert"
require_relative "karma/api"

module Karma
  class Engine
    # In memory without `path`; durable in the directory `path` (WAL +
    # snapshots, the `karma` server's format). Options are the server's
    # flags: restore, wal, wal_fsync (:always, :everysec, :never),
    # wal_segment_bytes, wal_batch_size, wal_batch_wait_us,
    # max_request_bytes, max_response_bytes, query_timeout_ms, auth_token,
    # read_auth_token, role, dump_retention_per_tree,
    # idempotency_max_records, idempotency_max_age_seconds,
    # ingest_max_streams, ingest_max_staged_items, ingest_stream_ttl_seconds,
    # recovery_max_sources (the engine's table of options, docs/server.md).
    def self.new(path = nil, **options)
      _open(path&.to_s, options)
    end

    # Opens, yields and closes.
    def self.open(path = nil, **options)
      engine = new(path, **options)
      return engine unless block_given?

      begin
        yield engine
      ensure
        engine.close
      end
    end
  end

  class Client
    # `url` is `karma://host:port` or `tcp://host:port` (query: token,
    # pool_size, *_timeout); without it the KARMA_* environment is read
    # (KARMA_URL, or KARMA_HOST/KARMA_PORT, KARMA_TOKEN, KARMA_POOL_SIZE,
    # KARMA_*_TIMEOUT). Options override both: host, port, token,
    # pool_size, pool_timeout, connect_timeout, read_timeout,
    # write_timeout (seconds; 0 disables). Thread-safe; after fork the
    # child opens its own connections. A
    # `karma+etcd://host:port[,...]/<cluster-name>` url opens a cluster
    # (docs/cluster.md) with the same methods: each call goes to the shard
    # leaders that own its keys and answers as one server would; token,
    # pool and timeouts then come from the options only.
    def self.new(url: nil, **options)
      _open(url, options)
    end
  end
end
