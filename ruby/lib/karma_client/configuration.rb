# frozen_string_literal: true

require "uri"

module KarmaClient
  # Where the server is and how long to wait for it. Timeouts are seconds
  # (Float); 0 waits forever.
  class Configuration
    DEFAULT_HOST = "127.0.0.1"
    DEFAULT_PORT = 8080
    DEFAULT_TIMEOUT = 1.0
    DEFAULT_POOL_SIZE = 5

    attr_accessor :host, :port, :token, :connect_timeout, :read_timeout, :write_timeout,
                  :pool_size, :pool_timeout, :tcp_nodelay, :instrumenter, :logger

    # From KARMA_URL (tcp:// or karma://, `?token=`), KARMA_HOST, KARMA_PORT,
    # KARMA_TOKEN / KARMA_AUTH_TOKEN / KARMA_READ_AUTH_TOKEN (the first set),
    # KARMA_CONNECT_TIMEOUT, KARMA_READ_TIMEOUT, KARMA_WRITE_TIMEOUT,
    # KARMA_POOL_SIZE (else RAILS_MAX_THREADS) and KARMA_POOL_TIMEOUT.
    def self.from_env(env = ENV)
      config = new
      config.url = env["KARMA_URL"] if present?(env["KARMA_URL"])
      config.host = env["KARMA_HOST"] if present?(env["KARMA_HOST"])
      config.port = int_env(env, "KARMA_PORT") || config.port
      token = %w[KARMA_TOKEN KARMA_AUTH_TOKEN KARMA_READ_AUTH_TOKEN].map { |k| env[k] }.find { |t| present?(t) }
      config.token = token if token
      config.connect_timeout = float_env(env, "KARMA_CONNECT_TIMEOUT") || config.connect_timeout
      config.read_timeout = float_env(env, "KARMA_READ_TIMEOUT") || config.read_timeout
      config.write_timeout = float_env(env, "KARMA_WRITE_TIMEOUT") || config.write_timeout
      config.pool_size = int_env(env, "KARMA_POOL_SIZE") || int_env(env, "RAILS_MAX_THREADS") || config.pool_size
      config.pool_timeout = float_env(env, "KARMA_POOL_TIMEOUT") || config.pool_timeout
      config
    end

    def initialize
      @host = DEFAULT_HOST
      @port = DEFAULT_PORT
      @token = nil
      @connect_timeout = DEFAULT_TIMEOUT
      @read_timeout = DEFAULT_TIMEOUT
      @write_timeout = DEFAULT_TIMEOUT
      @pool_size = DEFAULT_POOL_SIZE
      @pool_timeout = DEFAULT_TIMEOUT
      @tcp_nodelay = true # the native client always sets TCP_NODELAY
      @instrumenter = nil
      @logger = nil
    end

    # `tcp://host:port?token=...` (karma:// too): host, port and token at once.
    def url=(value)
      uri = URI.parse(value.to_s)
      unless %w[tcp karma].include?(uri.scheme) && self.class.present?(uri.host)
        raise ConfigurationError, "a Karma URL is tcp://host:port (or karma://host:port), got #{value.inspect}"
      end

      self.host = uri.host.delete_prefix("[").delete_suffix("]")
      self.port = uri.port || DEFAULT_PORT
      token = URI.decode_www_form(uri.query.to_s).to_h["token"]
      self.token = token if self.class.present?(token)
    rescue URI::InvalidURIError, ArgumentError => e
      raise ConfigurationError, "invalid Karma URL #{value.inspect}: #{e.message}"
    end

    def validate!
      raise ConfigurationError, "host is required" unless self.class.present?(host)
      raise ConfigurationError, "port must be from 1 to 65535, got #{port.inspect}" unless integer(port)&.between?(1, 65_535)
      raise ConfigurationError, "pool_size must be greater than 0, got #{pool_size.inspect}" unless integer(pool_size)&.positive?

      %i[connect_timeout read_timeout write_timeout pool_timeout].each do |name|
        v = public_send(name)
        raise ConfigurationError, "#{name} must be a number >= 0, got #{v.inspect}" unless v.is_a?(Numeric) && v >= 0
      end
      self
    end

    # Karma::Client.new's arguments for these settings (only what is set
    # here: the native client must not read the environment again).
    def native_options
      validate!
      h = host.to_s
      h = "[#{h}]" if h.include?(":")
      { url: "karma://#{h}:#{Integer(port)}", token: self.class.present?(token) ? token.to_s : nil,
        pool_size: Integer(pool_size), pool_timeout: pool_timeout.to_f, connect_timeout: connect_timeout.to_f,
        read_timeout: read_timeout.to_f, write_timeout: write_timeout.to_f }
    end

    def self.present?(value)
      !value.nil? && !value.to_s.empty?
    end

    def self.int_env(env, name)
      return nil unless present?(env[name])

      Integer(env[name], 10)
    rescue ArgumentError
      raise ConfigurationError, "#{name} must be an integer, got #{env[name].inspect}"
    end

    def self.float_env(env, name)
      return nil unless present?(env[name])

      Float(env[name])
    rescue ArgumentError
      raise ConfigurationError, "#{name} must be a number, got #{env[name].inspect}"
    end

    private

    def integer(value)
      Integer(value)
    rescue ArgumentError, TypeError
      nil
    end
  end
end
