'use strict'
// The package's error classes. `KarmaError` is the base of every error the
// package raises for a failed call: `code` is the protocol's v2 `error_code`
// (`'not_found'`) or `null` for a transport failure, `kind` says where it
// came from (`'engine'`, `'server'`, `'invalid'` for an argument the client
// refused before sending, `'connection'`, `'timeout'`, `'pool_timeout'`,
// `'protocol'`, `'closed'`). There is one subclass per `error_code`; their
// names come from the engine's error table (`ErrorCode::class_name`), so
// they match the Python and Ruby bindings'. Arguments of the wrong type or
// out of range throw (or reject with) the built-in `TypeError`/`RangeError`.

class KarmaError extends Error {
  constructor(message, options) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    /** The v2 `error_code`, or `null` for a transport failure. */
    this.code = options?.code ?? new.target.code ?? null
    /** Where the failure happened. */
    this.kind = options?.kind ?? null
  }

  get name() {
    return this.constructor.name
  }
}
KarmaError.code = null

/** The server could not be reached, or the connection broke. */
class ConnectionError extends KarmaError {}
/** A read, write or connect timeout, or no pooled connection became free in time. */
class TimeoutError extends KarmaError {}
/** The server sent something that is not a protocol response. */
class ProtocolError extends ConnectionError {}
/** The Engine or Client was closed before the call. */
class ClosedError extends KarmaError {}

/**
 * The classes for `table` (the addon's `__errorClasses()`: `{ code,
 * className }` rows) and `make`, the factory the addon builds its errors
 * with.
 */
function define(table) {
  const byCode = Object.create(null)
  const byName = { KarmaError, ConnectionError, TimeoutError, ProtocolError, ClosedError }
  for (const { code, className } of table) {
    // A computed name gives the class its real `name` (stack traces, inspect).
    const cls = { [className]: class extends KarmaError {} }[className]
    cls.code = code
    byCode[code] = cls
    byName[className] = cls
  }
  const builtin = { TypeError, RangeError }

  function make(className, message, code, kind) {
    if (builtin[className]) return new builtin[className](message)
    const cls = byName[className] ?? (code && byCode[code]) ?? KarmaError
    return new cls(message, { code: code ?? null, kind })
  }

  return { classes: byName, byCode: Object.freeze(byCode), make }
}

module.exports = { define, KarmaError, ConnectionError, TimeoutError, ProtocolError, ClosedError }
