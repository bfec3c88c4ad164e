'use strict'
// A Client on a cluster URL (`karma+etcd://host:port/<cluster>`,
// docs/cluster.md): a real etcd (Debian's etcd-server at /usr/bin/etcd) and
// two shards of one `karma` node each. The same script runs through the
// cluster and an in-process Engine and must give the same answers; the
// single-counter writes, pipelined for a server, take the pooled path here.
// Fails (never skips) without etcd: scripts/test installs it.

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const karma = require('..')
const { serverBinary, tempDir, freePort, startServer } = require('./helpers')

const ETCD = '/usr/bin/etcd'
const CLUSTER = 'js'
const BUCKET = 20260501

/** Runs `karma cluster <args>` against etcd at `endpoint`. */
function clusterTool(endpoint, ...args) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KARMA_')))
  const tool = [`--etcd=${endpoint}`, `--cluster-name=${CLUSTER}`]
  return spawnSync(serverBinary(), ['cluster', ...tool, ...args], { env, encoding: 'utf8' })
}

async function until(what, probe) {
  const deadline = Date.now() + 60_000
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within 60 s`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** etcd and 2 shards of one node each; resolves to the cluster URL. */
async function startCluster(t) {
  assert.ok(fs.existsSync(ETCD), `the cluster test needs etcd at ${ETCD}: install Debian's etcd-server`)
  const [clientPort, peerPort] = [await freePort(), await freePort()]
  const endpoint = `127.0.0.1:${clientPort}`
  const peer = `http://127.0.0.1:${peerPort}`
  const dir = tempDir('karma-node-etcd-')
  const etcd = spawn(
    ETCD,
    [
      '--name=js',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://${endpoint}`,
      `--advertise-client-urls=http://${endpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=js=${peer}`,
    ],
    { stdio: 'ignore' },
  )
  // Registered first, so it runs after the nodes' (t.after runs in reverse).
  t.after(async () => {
    const done = new Promise((resolve) => etcd.once('exit', resolve))
    etcd.kill('SIGTERM')
    await done
    fs.rmSync(dir, { recursive: true, force: true })
  })
  await until('etcd start', () => clusterTool(endpoint, 'init', '--shards=2').status === 0)
  for (const shard of [0, 1]) {
    await startServer(
      t,
      `--cluster-etcd=${endpoint}`,
      `--cluster-name=${CLUSTER}`,
      `--shard=${shard}`,
      `--node-id=n${shard}`,
      (port) => `--advertise=127.0.0.1:${port}`,
      '--cluster-lease-ttl=2',
    )
  }
  await until('both shards electing a leader', () => clusterTool(endpoint, 'status').stdout.split(' leader ').length === 3)
  return `karma+etcd://${endpoint}/${CLUSTER}`
}

/** Writes and reads on 20 keys (both shards), errors included. */
async function script(db) {
  const out = []
  for (let key = 1; key <= 20; key++) {
    out.push(await db.increment('s', key, { bucket: BUCKET, value: key })) // karma.js's fast path
    out.push(await db.increment('s', key, { bucket: BUCKET })) // value defaults to 1
  }
  out.push(await db.decrement('s', 3, { bucket: BUCKET, value: 2 }))
  out.push(await db.consume('s', 4, 7, { bucket: BUCKET }))
  out.push(await db.consume('s', 4, 7, { bucket: BUCKET, value: 10 }))
  out.push(await db.sum('s', 5))
  out.push(await db.batchSum('s', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 99]))
  out.push(await db.sum('missing', 1).catch((e) => [e.constructor.name, e.code]))
  out.push(await db.increment('s', -1).catch((e) => [e.constructor.name, e.code]))
  return out
}

test('a cluster URL opens a Client that answers as one node does', async (t) => {
  const url = await startCluster(t)
  const client = new karma.Client(url, { poolSize: 2 })
  t.after(() => client.close())
  assert.match(client.toString(), /karma\+etcd:\/\//)
  const engine = new karma.Engine()
  t.after(() => engine.close())

  const got = await script(client)
  assert.deepEqual(got, await script(engine))
  // Not vacuous: the sums hold what was written (key k: k + 1).
  assert.deepEqual(got.at(-3).slice(0, 3), [2n, 3n, 2n])
})

test('a bad cluster URL is refused at construction', () => {
  assert.throws(() => new karma.Client('karma+etcd://127.0.0.1:1'), /cluster URL/)
  // Nothing listens on loopback port 9: etcd is unreachable.
  assert.throws(() => new karma.Client(`karma+etcd://127.0.0.1:9/${CLUSTER}`), (e) => e instanceof karma.ConnectionError)
})
