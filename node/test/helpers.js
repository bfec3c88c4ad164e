'use strict'
// Test helpers: a real `karma` server per call of `startServer` (the binary
// from KARMA_SERVER_BIN, else target/debug/karma), temporary directories,
// and a fake server for transport failures.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const REPO = path.resolve(__dirname, '..', '..')

function serverBinary() {
  const bin = process.env.KARMA_SERVER_BIN || path.join(REPO, 'target', 'debug', 'karma')
  if (!fs.existsSync(bin)) {
    throw new Error(`karma server binary ${bin} missing: run \`cargo build -p karma-server\` or set KARMA_SERVER_BIN`)
  }
  return bin
}

function tempDir(prefix = 'karma-node-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

/** A port nothing listens on (bound, then released). */
async function freePort() {
  const srv = net.createServer()
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address()
  await new Promise((resolve) => srv.close(resolve))
  return port
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    sock.once('connect', () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => resolve(false))
  })
}

/**
 * Starts `karma` on a free port with its own data directory (no fsync, as
 * the other bindings' tests); `t.after` stops it. Resolves to `{ url, port }`.
 */
async function startServer(t, ...flags) {
  const port = await freePort()
  const dir = tempDir('karma-node-server-')
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KARMA_')))
  const args = ['--bind=127.0.0.1', `--port=${port}`, `--directory=${dir}`, '--log=false', '--wal-fsync=false', ...flags]
  const child = spawn(serverBinary(), args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  let exited = null
  child.once('exit', (code) => (exited = code))
  t.after(async () => {
    if (exited === null) {
      const done = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await done
    }
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const deadline = Date.now() + 30_000
  for (;;) {
    if (exited !== null) throw new Error(`karma exited with ${exited} before accepting: ${stderr}`)
    if (await canConnect(port)) return { url: `karma://127.0.0.1:${port}`, port }
    if (Date.now() > deadline) throw new Error(`karma did not accept on port ${port} within 30 s`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A TCP server that reads requests and never answers (`silent`) or answers
 * garbage (`garbage`); `t.after` closes it. Resolves to `{ port, arrived }`,
 * `arrived` resolving when the first request line came in.
 */
async function fakeServer(t, mode) {
  const sockets = new Set()
  let arrived
  const first = new Promise((resolve) => (arrived = resolve))
  const srv = net.createServer((sock) => {
    sockets.add(sock)
    sock.on('error', () => {})
    sock.on('data', () => {
      arrived()
      if (mode === 'garbage') sock.write('this is not json\n')
    })
  })
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const s of sockets) s.destroy()
    srv.close()
  })
  return { port: srv.address().port, arrived: first }
}

module.exports = { REPO, tempDir, freePort, startServer, fakeServer }
