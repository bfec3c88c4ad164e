# frozen_string_literal: true

module Karma
  # `#code` is the v2 `error_code` (nil for transport failures); `#kind`
  # says where the error came from (`engine`, `server`, `invalid`,
  # `argument`, `connection`, `timeout`, `pool_timeout`, `protocol`,
  # `closed`, `fork`). Shared by Error and ValidationError, which cannot
  # have a common superclass.
  module Coded
    attr_reader :code, :kind

    def initialize(message = nil, code: self.class::DEFAULT_CODE, kind: nil)
      super(message)
      @code = code
      @kind = kind
    end
  end

  # Every error this gem raises.
  class Error < StandardError
    include Coded
    DEFAULT_CODE = nil

    # Karma::ValidationError is an ArgumentError (Ruby's class for bad
    # arguments), so it cannot also inherit from this class; `rescue
    # Karma::Error` catches it all the same.
    def self.===(other)
      super || (self == Karma::Error && other.is_a?(Karma::ValidationError))
    end
  end

  # `validation_error`, and the gem's own argument checks (negative
  # Integers, Integers over 2**64-1, bad dates).
  class ValidationError < ArgumentError
    include Coded
    DEFAULT_CODE = "validation_error"
  end

  # One class per v2 error_code (docs/protocol.md), named by the engine's
  # table (InvalidJsonError, NotFoundError, ...), so a new code gets its
  # class without an edit here.
  ERROR_CLASSES = Native.error_classes.to_h do |code, name|
    [code, const_defined?(name, false) ? const_get(name, false) : const_set(name, Class.new(Error))]
  end.freeze

  # The server could not be reached, or the connection broke mid-request
  # (a write may or may not have been applied).
  class ConnectionError < Error; end
  # A connect/read/write timeout, or no pooled connection free in time.
  class TimeoutError < Error; end
  # The server sent something that is not a v2 response.
  class ProtocolError < Error; end
  # The Engine or Client was closed.
  class ClosedError < Error; end
  # An Engine used in a process forked after it was opened.
  class ForkError < Error; end

  # Called by the native extension to build an exception.
  def self.__error(class_name, message, code, kind)
    const_get(class_name).new(message, code: code, kind: kind)
  end
end
