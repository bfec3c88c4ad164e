# frozen_string_literal: true

module Karma
  # Every error this gem raises. `#code` is the v2 `error_code` (nil for
  # transport failures); `#kind` says where it came from (`engine`,
  # `server`, `invalid`, `argument`, `connection`, `timeout`,
  # `pool_timeout`, `protocol`, `closed`, `fork`).
  class Error < StandardError
    attr_reader :code, :kind

    def initialize(message = nil, code: nil, kind: nil)
      super(message)
      @code = code
      @kind = kind
    end

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
    attr_reader :code, :kind

    def initialize(message = nil, code: "validation_error", kind: nil)
      super(message)
      @code = code
      @kind = kind
    end
  end

  # One class per v2 error_code (docs/protocol.md).
  class InvalidJsonError < Error; end
  class UnsupportedProtocolError < Error; end
  class UnknownCommandError < Error; end
  class NotFoundError < Error; end
  class UnauthorizedError < Error; end
  class ForbiddenError < Error; end
  class RequestTooLargeError < Error; end
  class ResponseTooLargeError < Error; end
  class QueryTimeoutError < Error; end
  class IdempotencyConflictError < Error; end
  class ReplicationGapError < Error; end
  class ReplicationError < Error; end
  class InternalError < Error; end
  class LimitExceededError < Error; end

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

  ERROR_CLASSES = {
    "invalid_json" => InvalidJsonError,
    "unsupported_protocol" => UnsupportedProtocolError,
    "unknown_command" => UnknownCommandError,
    "validation_error" => ValidationError,
    "not_found" => NotFoundError,
    "unauthorized" => UnauthorizedError,
    "forbidden" => ForbiddenError,
    "request_too_large" => RequestTooLargeError,
    "response_too_large" => ResponseTooLargeError,
    "query_timeout" => QueryTimeoutError,
    "idempotency_conflict" => IdempotencyConflictError,
    "replication_gap" => ReplicationGapError,
    "replication_error" => ReplicationError,
    "internal_error" => InternalError,
    "limit_exceeded" => LimitExceededError
  }.freeze

  # Called by the native extension to build an exception.
  def self.__error(class_name, message, code, kind)
    const_get(class_name).new(message, code: code, kind: kind)
  end
end
