// The error classes of karma-counters (errors.js). The per-code classes
// mirror the engine's error table; test/dts.test.js checks this file against
// it.

/** Where a failure happened. */
export type ErrorKind =
  | 'engine'
  | 'server'
  | 'invalid'
  | 'connection'
  | 'timeout'
  | 'pool_timeout'
  | 'protocol'
  | 'closed'

/** The protocol's v2 `error_code`s. */
export type ErrorCode =
  | 'invalid_json'
  | 'unsupported_protocol'
  | 'unknown_command'
  | 'validation_error'
  | 'not_found'
  | 'unauthorized'
  | 'forbidden'
  | 'request_too_large'
  | 'response_too_large'
  | 'query_timeout'
  | 'idempotency_conflict'
  | 'replication_gap'
  | 'replication_error'
  | 'internal_error'
  | 'limit_exceeded'

export interface KarmaErrorOptions {
  code?: ErrorCode | null
  kind?: ErrorKind | null
  cause?: unknown
}

/** The base of every error a failed call rejects (or throws) with. */
export declare class KarmaError extends Error {
  constructor(message?: string, options?: KarmaErrorOptions)
  /** The class's `error_code`; `null` on KarmaError and the transport classes. */
  static readonly code: ErrorCode | null
  /** The v2 `error_code`, or `null` for a transport failure. */
  readonly code: ErrorCode | null
  readonly kind: ErrorKind | null
}

/** The server could not be reached, or the connection broke. */
export declare class ConnectionError extends KarmaError {}
/** A connect, read or write timeout, or no pooled connection became free in time. */
export declare class TimeoutError extends KarmaError {}
/** The server answered something that is not a protocol response. */
export declare class ProtocolError extends ConnectionError {}
/** The Engine or Client was closed before the call. */
export declare class ClosedError extends KarmaError {}

/** `error_code` `invalid_json`. */
export declare class InvalidJsonError extends KarmaError {
  static readonly code: 'invalid_json'
  readonly code: 'invalid_json'
}

/** `error_code` `unsupported_protocol`. */
export declare class UnsupportedProtocolError extends KarmaError {
  static readonly code: 'unsupported_protocol'
  readonly code: 'unsupported_protocol'
}

/** `error_code` `unknown_command`. */
export declare class UnknownCommandError extends KarmaError {
  static readonly code: 'unknown_command'
  readonly code: 'unknown_command'
}

/** `error_code` `validation_error`. */
export declare class ValidationError extends KarmaError {
  static readonly code: 'validation_error'
  readonly code: 'validation_error'
}

/** `error_code` `not_found`. */
export declare class NotFoundError extends KarmaError {
  static readonly code: 'not_found'
  readonly code: 'not_found'
}

/** `error_code` `unauthorized`. */
export declare class UnauthorizedError extends KarmaError {
  static readonly code: 'unauthorized'
  readonly code: 'unauthorized'
}

/** `error_code` `forbidden`. */
export declare class ForbiddenError extends KarmaError {
  static readonly code: 'forbidden'
  readonly code: 'forbidden'
}

/** `error_code` `request_too_large`. */
export declare class RequestTooLargeError extends KarmaError {
  static readonly code: 'request_too_large'
  readonly code: 'request_too_large'
}

/** `error_code` `response_too_large`. */
export declare class ResponseTooLargeError extends KarmaError {
  static readonly code: 'response_too_large'
  readonly code: 'response_too_large'
}

/** `error_code` `query_timeout`. */
export declare class QueryTimeoutError extends KarmaError {
  static readonly code: 'query_timeout'
  readonly code: 'query_timeout'
}

/** `error_code` `idempotency_conflict`. */
export declare class IdempotencyConflictError extends KarmaError {
  static readonly code: 'idempotency_conflict'
  readonly code: 'idempotency_conflict'
}

/** `error_code` `replication_gap`. */
export declare class ReplicationGapError extends KarmaError {
  static readonly code: 'replication_gap'
  readonly code: 'replication_gap'
}

/** `error_code` `replication_error`. */
export declare class ReplicationError extends KarmaError {
  static readonly code: 'replication_error'
  readonly code: 'replication_error'
}

/** `error_code` `internal_error`. */
export declare class InternalError extends KarmaError {
  static readonly code: 'internal_error'
  readonly code: 'internal_error'
}

/** `error_code` `limit_exceeded`. */
export declare class LimitExceededError extends KarmaError {
  static readonly code: 'limit_exceeded'
  readonly code: 'limit_exceeded'
}
