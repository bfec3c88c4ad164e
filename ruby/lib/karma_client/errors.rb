# frozen_string_literal: true

module KarmaClient
  # Every error of this API. The classes are karma_client's, so `rescue`
  # clauses written for it keep working.
  class Error < StandardError; end

  # Bad settings (configure, env vars, Client.new options).
  class ConfigurationError < Error; end

  # An argument rejected before anything was sent (negative key, bad date...).
  class InputError < Error; end

  # No pooled connection became free within pool_timeout.
  class PoolTimeout < Error; end

  # The server could not be reached or the connection failed.
  class TransportError < Error
    attr_reader :host, :port

    def initialize(message = nil, host: nil, port: nil)
      super(message)
      @host = host
      @port = port
    end
  end

  class ConnectionError < TransportError; end
  class TimeoutError < TransportError; end

  # The server answered something that is not a v2 response.
  class ProtocolError < Error
    attr_reader :payload

    def initialize(message = nil, payload: nil)
      super(message)
      @payload = payload
    end
  end

  # An error envelope from the server: `#code` is its error_code.
  class ServerError < Error
    # Codes where the same request may succeed later (the server was busy,
    # a replica was behind, or something failed inside the server).
    RETRIABLE = %w[query_timeout replication_gap replication_error internal_error].freeze

    attr_reader :code, :protocol_version, :response

    def initialize(message = nil, code: "server_error", protocol_version: nil, response: nil)
      super(message)
      @code = code
      @protocol_version = protocol_version
      @response = response
    end

    def retriable?
      RETRIABLE.include?(code)
    end

    # The exception for an error Response.
    def self.from_response(response)
      klass = CLASSES.fetch(response.error_code, ServerError)
      message = response.value.is_a?(String) ? response.value : response.value.to_s
      klass.new(message, code: response.error_code || "server_error",
                         protocol_version: response.protocol_version, response: response)
    end
  end

  # One class per error_code (the eight karma_client named, and the rest),
  # named by the engine's table (ValidationError, NotFoundError, ...).
  ServerError::CLASSES = Karma::Native.error_classes.to_h do |code, name|
    [code, const_set(name, Class.new(ServerError))]
  end.freeze
end
