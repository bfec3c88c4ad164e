'use strict'
// The option lists index.d.ts spells out (TypeScript needs them written) are
// the tables', not copies that drift: `EngineOptions` declares the engine's
// table of options (ENGINE_OPTIONS) and `ClientOptions` the client's
// (CLIENT_OPTIONS), in JavaScript's spelling and the tables' order, as the
// addon reports them.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const native = require('../index.js')

const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')

/** The field names of `export interface <name>` in index.d.ts, in order. */
function declared(name) {
  const body = dts.match(new RegExp(`export interface ${name} \\{\\n([\\s\\S]*?)\\n\\}`))
  assert.ok(body, `index.d.ts declares no interface ${name}`)
  return [...body[1].matchAll(/^ {2}(\w+)\?:/gm)].map((m) => m[1])
}

test('EngineOptions declares exactly the engine options table', () => {
  const table = native.__engineOptions()
  assert.ok(table.includes('walFsync') && table.includes('recoveryMaxSources'), String(table))
  assert.deepEqual(declared('EngineOptions'), table)
})

test('ClientOptions declares exactly the client options table', () => {
  const table = native.__clientOptions()
  assert.ok(table.includes('poolSize') && table.includes('checkoutTimeoutMs'), String(table))
  assert.deepEqual(declared('ClientOptions'), table)
})
