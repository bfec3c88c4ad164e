'use strict'
// The declaration files are not hand-maintained copies that drift: index.d.ts
// must equal what the napi CLI generates from the type defs napi-derive wrote
// while the addon compiled (scripts/build.mjs), index.js must export what it
// declares, and errors.d.ts must declare the engine's error table.
// Regenerate with `npm run build` (it writes index.d.ts).

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const karma = require('..')
const native = require('../index.js')

const root = path.resolve(__dirname, '..')

test('index.d.ts is what the build generates (run `npm run build` after changing a #[napi] item)', async () => {
  const { generate, typeDefDir } = await import('../scripts/build.mjs')
  assert.ok(fs.existsSync(path.join(typeDefDir, 'karma-node')), `no type defs in ${typeDefDir}: build with scripts/build.mjs`)
  const committed = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8')
  assert.equal(committed, await generate(), 'index.d.ts is stale: run `npm run build` in node/')
})

test('index.js exports every class and function index.d.ts declares', () => {
  const dts = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8')
  const declared = [...dts.matchAll(/^export declare (?:class|function|const) (\w+)/gm)].map((m) => m[1])
  assert.ok(declared.includes('Engine') && declared.includes('Client'))
  for (const name of declared) assert.notEqual(native[name], undefined, name)
})

test('errors.d.ts declares one class per engine error code, with its code', () => {
  const dts = fs.readFileSync(path.join(root, 'errors.d.ts'), 'utf8')
  const declared = Object.fromEntries(
    [...dts.matchAll(/export declare class (\w+) extends KarmaError \{\n  static readonly code: '(\w+)'/g)].map((m) => [m[2], m[1]]),
  )
  const table = Object.fromEntries(native.__errorClasses().map(({ code, className }) => [code, className]))
  assert.deepEqual(declared, table)
  for (const name of ['KarmaError', 'ConnectionError', 'TimeoutError', 'ProtocolError', 'ClosedError']) {
    assert.match(dts, new RegExp(`export declare class ${name}\\b`))
    assert.equal(typeof karma[name], 'function')
  }
})
