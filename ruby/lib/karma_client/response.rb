# frozen_string_literal: true

module KarmaClient
  # One v2 response envelope, success or error (Client#request).
  class Response
    attr_reader :protocol_version, :value, :error_code

    # From the envelope Hash the native client returns.
    def self.from_envelope(envelope)
      unless envelope.is_a?(Hash) && [true, false].include?(envelope["success"])
        raise ProtocolError.new("not a v2 response envelope: #{envelope.inspect}", payload: envelope)
      end

      new(protocol_version: envelope["protocol_version"], success: envelope["success"],
          value: envelope["response"], error_code: envelope["error_code"], idempotent: envelope["idempotent"])
    end

    def initialize(protocol_version:, success:, value:, error_code:, idempotent: nil)
      @protocol_version = protocol_version
      @success = success
      @value = value
      @error_code = error_code
      @idempotent = idempotent
    end

    def success?
      @success
    end

    def error?
      !@success
    end

    # True when the server answered a repeated idempotency_key from its
    # record instead of applying the write again.
    def idempotent?
      @idempotent == true
    end
  end
end
