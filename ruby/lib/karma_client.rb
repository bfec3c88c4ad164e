# frozen_string_literal: true

# `require "karma_client"`: the API of Karma 1.0's pure-Ruby karma_client
# gem (KarmaClient.configure / with_client, KarmaClient::Client, Response,
# the error classes, the Railtie), implemented on the native Karma::Client
# of this gem. An application switches by replacing `gem "karma_client"`
# with `gem "karma-counters"` in its Gemfile; its code stays as it is.

require "karma"
require_relative "karma_client/version"
require_relative "karma_client/errors"
require_relative "karma_client/configuration"
require_relative "karma_client/response"
require_relative "karma_client/arguments"
require_relative "karma_client/client"
require_relative "karma_client/railtie" if defined?(Rails::Railtie)

module KarmaClient
  @lock = Mutex.new

  # What KarmaClient.pool answers: the shared client behind the two calls
  # the 1.0 pool had.
  module Pool
    def self.with(&block)
      KarmaClient.with_client(&block)
    end

    def self.close
      KarmaClient.close
    end
  end

  class << self
    # The process-wide settings, read from the KARMA_* environment on first use.
    def configuration
      @lock.synchronize { @configuration ||= Configuration.from_env }
    end

    # Yields the configuration to change it, then checks it. Clients built
    # from the old settings are closed; the next with_client uses the new ones.
    def configure
      config = configuration
      yield config
      config.validate!
      close
      config
    end

    # Yields the shared client. It is thread-safe (its connections are
    # pooled natively: pool_size connections, pool_timeout to wait for one),
    # so Puma and Sidekiq threads all use the same one; connections are
    # opened lazily, and a forked child opens its own.
    def with_client
      yield shared_client
    end

    # karma_client's pool object: `KarmaClient.pool.with { |karma| ... }`
    # is with_client, `KarmaClient.pool.close` is close.
    def pool
      Pool
    end

    # A new client with its own pool, from the current configuration.
    def client
      Client.new(configuration)
    end

    # Closes the shared client's connections (e.g. at shutdown).
    def close
      old = @lock.synchronize do
        c = @shared
        @shared = nil
        c
      end
      old&.close
      nil
    end

    private

    def shared_client
      @lock.synchronize { @shared ||= Client.new(@configuration ||= Configuration.from_env) }
    end
  end
end
