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

/**
 * Starts `karma` on a free port with its own data directory (no fsync, as
 * the other bindings' tests); `t.after` stops it. Resolves to `{ url, port }`.
 *
 * Ready means the child itself logged `server.start` (it does once it is
 * listening), not that something accepts on the port: between `freePort()`
 * and the bind, a server of a test running in parallel can take the port,
 * and a connect check would then hand out that other server (other flags,
 * other data). A child that could not bind exits, and another port is tried.
 */
async function startServer(t, ...flags) {
  for (let attempt = 1; ; attempt++) {
    const started = await spawnServer(t, flags)
    if (started.url) return started
    if (attempt === 5 || !/cannot listen/.test(started.stderr)) {
      throw new Error(`karma exited with ${started.exited} before listening: ${started.stderr}`)
    }
  }
}

// A server logs `server.start` once it listens; a cluster node logs
// `cluster.serving` on each change of role instead, and is ready once it
// leads or follows (before that it is a read-only standby).
const READY = /"event":"server\.start"|"event":"cluster\.serving","message":"mode=(Leader|Follower)/

/** One try of `startServer`: `{ url, port }`, or `{ exited, stderr }`. */
async function spawnServer(t, flags) {
  const port = await freePort()
  const dir = tempDir('karma-node-server-')
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KARMA_')))
  // A flag may be a function of the port (a cluster node's `--advertise`).
  const extra = flags.map((f) => (typeof f === 'function' ? f(port) : f))
  const args = ['--bind=127.0.0.1', `--port=${port}`, `--directory=${dir}`, '--log=true', '--wal-fsync=false', ...extra]
  const child = spawn(serverBinary(), args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
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
  let stderr = ''
  const listening = await new Promise((resolve) => {
    const onData = (d) => {
      stderr += d
      if (READY.test(stderr)) finish(true)
    }
    const finish = (ok) => {
      child.stderr.off('data', onData)
      child.stderr.resume() // keep draining the few later log lines
      resolve(ok)
    }
    child.stderr.on('data', onData)
    child.once('exit', () => finish(false))
  })
  return listening ? { url: `karma://127.0.0.1:${port}`, port } : { exited, stderr }
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

module.exports = { REPO, serverBinary, tempDir, freePort, startServer, fakeServer }
