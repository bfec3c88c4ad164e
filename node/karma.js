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

module.exports = {
  Engine: native.Engine,
  Client: native.Client,
  ...classes,
  /** `error_code` -> class. */
  ERROR_CLASSES: byCode,
}
