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
    # snapshots, the `karma` server's format). Options are the engine's
    # table of the server's flags, by their snake_case names (e.g.
    # wal_fsync: :everysec; docs/server.md, "Options").
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
    # `url` is `karma://host:port` or `tcp://host:port` (its query takes
    # the client options); without it the KARMA_* environment is read
    # (KARMA_URL, or KARMA_HOST/KARMA_PORT and the variables of the client
    # options). Options override both: host, port, pool_timeout (an alias
    # of checkout_timeout) and the client options table's names (token,
    # pool_size, the timeouts in seconds with 0 disabling, ...:
    # client/src/options.rs). Thread-safe; after fork the child opens its
    # own connections. A `karma+etcd://host:port[,...]/<cluster-name>` url
    # opens a cluster (docs/cluster.md) with the same methods: each call
    # goes to the shard leaders that own its keys and answers as one server
    # would; token, pool and timeouts then come from the options only.
    def self.new(url: nil, **options)
      _open(url, options)
    end
  end
end
