'use strict'
// Promises run off the JavaScript thread: many in flight on a Client, the
// event loop ticking while durable (fsync always) writes are pending, and an
// Engine shared with worker threads by path.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Worker } = require('node:worker_threads')

const karma = require('..')
const { REPO, startServer } = require('./helpers')

/** A directory on the build disk (os.tmpdir() may be tmpfs, where fsync is free). */
function diskDir(t) {
  const base = path.join(REPO, 'target', 'node-test')
  fs.mkdirSync(base, { recursive: true })
  const dir = fs.mkdtempSync(path.join(base, 'engine-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('client: 1,000 concurrent in-flight promises all resolve', async (t) => {
  const server = await startServer(t)
  const c = new karma.Client(server.url)
  const calls = []
  for (let i = 0; i < 1000; i++) calls.push(c.increment('many', i % 10, { bucket: 20260501 }))
  const results = await Promise.all(calls)
  assert.equal(results.length, 1000)
  assert.ok(results.every((v) => v === 1n))
  assert.deepEqual(await c.batchSum('many', [0, 9]), [100n, 100n])
  const sums = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.sum('many', i % 10)))
  assert.ok(sums.every((v) => v === 100n))
  await c.close()
})

test('engine: the event loop keeps ticking while durable writes are pending', async (t) => {
  const e = new karma.Engine(diskDir(t), { walFsync: 'always' })
  let ticks = 0
  let timerFired = false
  let settled = 0
  let settledWhenTimerFired = -1
  let ticking = true
  const tick = () => {
    ticks++
    if (ticking) setImmediate(tick)
  }
  setImmediate(tick)
  setTimeout(() => {
    timerFired = true
    settledWhenTimerFired = settled
  }, 0)
  const writes = []
  for (let i = 0; i < 200; i++) {
    writes.push(e.increment('durable', i % 7, { bucket: 20260501 }).then(() => settled++))
  }
  for (let chunk = 0; chunk < 20; chunk++) {
    const items = []
    for (let k = 0; k < 10_000; k++) items.push([k + chunk * 10_000, 20260501, 1])
    writes.push(e.batchAdd('durable-batch', items).then(() => settled++))
  }
  // Nothing settles synchronously: the calls returned before any write ran.
  assert.equal(settled, 0)
  try {
    await Promise.all(writes)
  } finally {
    ticking = false
  }
  assert.equal(settled, writes.length)
  assert.ok(timerFired, 'the timer fired while the writes were pending')
  assert.ok(settledWhenTimerFired < writes.length, 'the timer fired before the last write settled')
  assert.ok(ticks > 1, `the loop ticked ${ticks} times while the writes were pending`)
  assert.equal(e.sumSync('durable', 0), 29n)
  await e.close()
})

test('worker threads: an Engine shared by path, a Client per thread', async (t) => {
  const dir = diskDir(t)
  const server = await startServer(t)
  const main = new karma.Engine(dir, { walFsync: 'never' })
  main.incrementSync('shared', 1, { bucket: 20260501 })
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const karma = require(${JSON.stringify(path.resolve(__dirname, '..'))})
    ;(async () => {
      const e = new karma.Engine(workerData.dir, { walFsync: 'never' })
      for (let i = 0; i < 100; i++) await e.increment('shared', 1, { bucket: 20260501 })
      const c = new karma.Client(workerData.url)
      await Promise.all(Array.from({ length: 50 }, () => c.increment('w', 1, { bucket: 20260501 })))
      const error = await e.info('missing').catch((err) => err)
      parentPort.postMessage({ sum: await e.sum('shared', 1), remote: await c.sum('w', 1), error: error.constructor.name })
      await c.close()
    })()
  `
  const results = await Promise.all(
    [0, 1].map(
      () =>
        new Promise((resolve, reject) => {
          const w = new Worker(code, { eval: true, workerData: { dir, url: server.url } })
          w.once('message', resolve)
          w.once('error', reject)
        }),
    ),
  )
  for (const r of results) assert.equal(r.error, 'NotFoundError')
  assert.equal(main.sumSync('shared', 1), 201n)
  const c = new karma.Client(server.url)
  assert.equal(await c.sum('w', 1), 100n)
  main.closeSync()
})
