'use strict'
// The `karma-counters` package: `Engine` (the database in this process) and
// `Client` (a pooled connection to a `karma` server), same methods on both,
// and the error classes.
//
//   const { Engine, Client, NotFoundError } = require('karma-counters')
//
// Counters are u64: results that are counters are `bigint`, arguments take a
// safe-integer `number` or a `bigint` (see README.md).

const native = require('./index.js')
const errors = require('./errors.js')

const { classes, byCode, make } = errors.define(native.__errorClasses())
// Per thread: each worker thread that loads the package registers its own.
native.__registerErrorFactory(make)

// The hot path (src/fast.rs): `increment` and `decrement` (and the
// Engine's `...Sync` twins) read their options object here, where a
// property read costs a few nanoseconds instead of an N-API call each, and
// pass plain values to internal native helpers (taken off the prototypes:
// they are not API). Anything but a plain object whose names are all known
// goes to the full native method, so every error (a misspelt name, an
// array) stays exactly its own.
const bindSync = internal(native.Engine.prototype, '__bindSync')
for (const [name, decrement] of [['incrementSync', false], ['decrementSync', true]]) {
  // The engine's own function for this method, made on first use.
  const bound = Symbol(name)
  withPlainOptions(native.Engine.prototype, name, function (series, key, value, bucket) {
    const fast = this[bound] ?? (this[bound] = bindSync.call(this, decrement))
    return fast(series, key, value, bucket)
  })
}
const change = internal(native.Client.prototype, '__change')
for (const [name, decrement] of [['increment', false], ['decrement', true]]) {
  withPlainOptions(native.Client.prototype, name, function (series, key, value, bucket) {
    return change.call(this, decrement, series, key, value, bucket)
  })
}

/** Removes an internal helper from `proto`, returning it. */
function internal(proto, name) {
  const helper = proto[name]
  delete proto[name]
  return helper
}

/** Replaces `proto[name](series, key, options)` by one calling `plain(series, key, value, bucket)`. */
function withPlainOptions(proto, name, plain) {
  const full = proto[name]
  const method = {
    [name](series, key, options) {
      if (options === undefined || options === null) return plain.call(this, series, key, undefined, undefined)
      if (onlyChangeOptions(options)) return plain.call(this, series, key, options.value, options.bucket)
      return full.call(this, series, key, options)
    },
  }[name]
  Object.defineProperty(proto, name, { ...Object.getOwnPropertyDescriptor(proto, name), value: method })
}

/** `{ value?, bucket? }` and nothing else (inherited enumerable names count, as natively). */
function onlyChangeOptions(options) {
  if (typeof options !== 'object' || Array.isArray(options)) return false
  for (const name in options) if (name !== 'value' && name !== 'bucket') return false
  return true
}

module.exports = {
  Engine: native.Engine,
  Client: native.Client,
  Ingest: native.Ingest,
  ...classes,
  /** `error_code` -> class. */
  ERROR_CLASSES: byCode,
}
