#!/usr/bin/env node
// Builds the addon with plain `cargo build` (sharing the workspace's target
// directory, so the engine compiled for the `karma` server is reused; the
// napi CLI's build would pass `--target` and compile everything a second
// time) and copies it to the file name the generated `index.js` loads.
//
//   node scripts/build.mjs [--release] [--dts <file>]
//
// napi-derive writes the TypeScript of every `#[napi]` item into
// NAPI_TYPE_DEF_TMP_FOLDER while the crate compiles; `--dts` turns that into
// a declaration file with the napi CLI's own generator (`npm run dts`
// regenerates index.d.ts, test/dts.test.js fails when it is stale).

import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(dirname(fileURLToPath(import.meta.url)))
const repo = dirname(here)
const args = process.argv.slice(2)
const release = args.includes('--release')
const dtsAt = args.indexOf('--dts')
const dtsOut = dtsAt >= 0 ? resolve(args[dtsAt + 1] ?? 'index.d.ts') : null
const profile = release ? 'release' : 'debug'
const targetDir = resolve(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'))

export const typeDefDir = join(targetDir, 'napi-type-defs', profile)

/** The `.node` file name index.js requires on this platform. */
export function addonName() {
  const { platform, arch } = process
  const abi = platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : platform === 'win32' ? '-msvc' : ''
  return `karma.${platform}-${arch}${abi}.node`
}

function isMusl() {
  const report = process.report?.getReport?.()
  return !report?.header?.glibcVersionRuntime
}

function libraryName() {
  if (process.platform === 'win32') return 'karma_node.dll'
  return process.platform === 'darwin' ? 'libkarma_node.dylib' : 'libkarma_node.so'
}

function build() {
  mkdirSync(typeDefDir, { recursive: true })
  const env = { ...process.env, NAPI_TYPE_DEF_TMP_FOLDER: typeDefDir }
  // A fresh type-def folder (or one another profile wrote) needs the crate
  // recompiled even when cargo thinks it is up to date: napi-build reruns on
  // this variable.
  if (!existsSync(join(typeDefDir, 'karma-node'))) env.NAPI_FORCE_BUILD_KARMA_NODE = String(Date.now())
  const cargo = ['build', '-p', 'karma-node', ...(release ? ['--release'] : [])]
  console.log(`+ cargo ${cargo.join(' ')}`)
  const run = spawnSync('cargo', cargo, { cwd: repo, env, stdio: 'inherit' })
  if (run.status !== 0) process.exit(run.status ?? 1)
  const from = join(targetDir, profile, libraryName())
  const to = join(here, addonName())
  copyFileSync(from, to)
  console.log(`+ cp ${from} ${to}`)
}

/** index.d.ts as the napi CLI would write it, from the type-def folder. */
export async function generate() {
  const { generateTypeDef } = await import('@napi-rs/cli')
  const { dts } = await generateTypeDef({ typeDefDir, cwd: here, declareBindingTarget: true })
  return dts
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  build()
  if (dtsOut) {
    writeFileSync(dtsOut, await generate())
    console.log(`+ wrote ${dtsOut}`)
  }
}
