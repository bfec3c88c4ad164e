'use strict'
// One script, run against an Engine (its Promise methods and its ...Sync
// methods) and against a Client talking to a real `karma` server: every
// result and every error must be identical, and the script must call every
// method of the shared surface.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const fs = require('node:fs')

const karma = require('..')
const { startServer, tempDir } = require('./helpers')

const BIG = 2n ** 63n - 1n

/** `db` recording which methods the script called. */
function recording(db, called) {
  return new Proxy(db, {
    get(target, name) {
      const v = target[name]
      if (typeof v !== 'function') return v
      called.add(name)
      return v.bind(target)
    },
  })
}

/** The Engine's `...Sync` methods behind the Promise-method names. */
function syncOf(engine) {
  return new Proxy(engine, {
    get(target, name) {
      const sync = target[`${String(name)}Sync`]
      if (typeof sync !== 'function') {
        const v = target[name]
        return typeof v === 'function' ? v.bind(target) : v
      }
      return (...args) => {
        try {
          return Promise.resolve(sync.apply(target, args))
        } catch (e) {
          return Promise.reject(e)
        }
      }
    },
  })
}

async function script(db) {
  const out = []
  async function step(name, fn) {
    try {
      out.push([name, await fn()])
    } catch (e) {
      assert.ok(e instanceof karma.KarmaError, `${name}: ${e}`)
      out.push([name, 'rejected', e.name, e.code, e.message])
    }
  }
  await step('list empty', () => db.listSeries())
  await step('inc', () => db.increment('api', 1))
  await step('inc bucket Date', () => db.increment('api', 1, { value: 5, bucket: new Date(Date.UTC(2026, 4, 1)) }))
  await step('inc bucket string', () => db.increment('api', 2, { value: 7n, bucket: '2026-05-02' }))
  await step('inc max', () => db.increment('api', 3, { value: BIG, bucket: 20260501 }))
  await step('inc max 2', () => db.increment('api', 3, { value: BIG, bucket: 20260502 }))
  await step('inc max 3', () => db.increment('api', 3, { value: 1, bucket: 20260503 }))
  await step('overflow', () => db.increment('api', 3, { value: 1, bucket: 20260504 }))
  await step('inc zero', () => db.increment('api', 1, { value: 0 }))
  await step('dec', () => db.decrement('api', 1, { value: 2, bucket: 20260501 }))
  await step('dec missing bucket', () => db.decrement('api', 1, { value: 2, bucket: 20260420 }))
  await step('consume', () => db.consume('quota', 1, 5, { value: 3, bucket: 20260501 }))
  await step('consume to the limit', () => db.consume('quota', 1, 5n, { value: 2, bucket: 20260501 }))
  await step('consume refused', () => db.consume('quota', 1, 5, { bucket: 20260501 }))
  await step('consume days', () => db.consume('quota', 1, 10, { bucket: 20260502, days: 2 }))
  await step('consume month', () => db.consume('quota', 1, 6, { bucket: 20260531, window: 'month' }))
  await step('consume year boundary', () => db.consume('quota', 2, 1, { bucket: '2027-01-01', window: 'days', days: 3 }))
  await step('consume zero limit', () => db.consume('quota', 3, 0, { bucket: 20260501 }))
  await step('consume sum', () => db.sum('quota', 1))
  await step('sum', () => db.sum('api', 1))
  await step('sum range', () => db.sum('api', 1, { from: 20260501, to: '2026-05-31' }))
  await step('sum big', () => db.sum('api', 3))
  await step('sum missing series', () => db.sum('nope', 1))
  await step('sum bad date', () => db.sum('api', 1, { from: 20260230, to: 20260301 }))
  await step('sum too many days', () => db.sum('api', 1, { from: 20200101, to: 20260101 }))
  await step('batchSum', () => db.batchSum('api', [1, 2n, 3, 4]))
  await step('multiSum', () => db.multiSum([['api', 3], ['api', 2], ['nope', 1]]))
  await step('points', () => db.points('api', 3, { from: 20260501, to: 20260503 }))
  await step('series', () => db.series('api', 2, { from: new Date(Date.UTC(2026, 4, 1)), to: 20260503 }))
  const items = []
  for (let k = 1; k < 20; k++) for (let d = 1; d < 4; d++) items.push([k, 20260500 + d, k * d])
  await step('batchAdd', () => db.batchAdd('web', items))
  await step('batchAdd zero', () => db.batchAdd('web', [[1, 20260501, 0]]))
  await step('batchSet', () => db.batchSet('web', [[1, 20260501, 100], [2, '2026-05-01', 0]]))
  await step('top', () => db.top('web', { limit: 5 }))
  await step('top range', () => db.top('web', { limit: 3, range: { from: 20260502, to: 20260502 } }))
  await step('top default', () => db.top('web'))
  await step('keys', () => db.keys('web', { limit: 7 }))
  await step('keys 2', () => db.keys('web', { cursor: 7, limit: 7 }))
  await step('keys limit 0', () => db.keys('web', { limit: 0 }))
  await step('info', () => db.info('web'))
  await step('summary', () => db.summary('web'))
  await step('summary range', () => db.summary('web', { from: '2026-05-02', to: '2026-05-03' }))
  await step('reset key', () => db.reset('web', 5))
  await step('batchReset', () => db.batchReset('web', [6, 7, 999]))
  await step('deleteRange key', () => db.deleteRange('web', { from: 20260501, to: 20260501 }, 8))
  await step('deleteRange all', () => db.deleteRange('web', { from: 20260503, to: 20260503 }))
  await step('batchDeleteRange', () => db.batchDeleteRange('web', [9, 10, 999], { from: 20260501, to: 20260502 }))
  await step('info after', () => db.info('web'))
  await step('deleteBefore', () => db.deleteBefore('web', 20260502))
  await step('compact web', () => db.compact('web'))
  await step('compact all', () => db.compact())
  await step('info compacted', () => db.info('web'))
  await step('create', () => db.createSeries('empty'))
  await step('create again', () => db.createSeries('empty'))
  await step('create bad name', () => db.createSeries('a/b'))
  await step('list', () => db.listSeries())
  await step('drop', () => db.dropSeries('empty'))
  await step('drop missing', () => db.dropSeries('empty'))
  await step('ping', () => db.ping())
  await step('health', async () => Object.keys(await db.health()).sort())
  await step('stats', async () => (await db.stats()).keys)
  await step('metrics', async () => /karma_/.test(await db.metrics()))
  await step('request sum', () => db.request('counter.sum', { series: 'api', key: 3 }))
  await step('request tree.info', () => db.request('tree.info', { series: 'api' }))
  await step('request tree.series', () =>
    db.request('tree.series', { series: 'api', range: { from: 20260501, to: 20260502 } }))
  await step('request unknown', () => db.request('nope'))
  await step('requestLine invalid', () => db.requestLine('{nope'))
  await step('requestLine v1', () => db.requestLine('{"v":1,"op":"system.ping"}'))
  await step('requestLine ping', () => db.requestLine('{"v":2,"op":"system.ping"}'))
  await step('request too large', () => db.request('system.ping', { pad: 'y'.repeat(5000) }))
  const idem = { series: 'idem', key: 1, bucket: 20260501, idempotency_key: 'k1' }
  await step('idem 1', () => db.request('counter.increment', idem))
  await step('idem 1 again', () => db.request('counter.increment', idem))
  await step('idem conflict', () => db.request('counter.increment', { ...idem, key: 2 }))
  await step('idem sum', () => db.sum('idem', 1))
  const stream = db.ingest('import-1', 'add', { granularity: 'day' })
  await step('ingest new', () => [stream.streamId, stream.mode, stream.granularity, stream.status, stream.nextChunkSeq])
  await step('ingest begin', () => stream.begin())
  await step('ingest chunk', () => stream.chunk('ingested', [[1, 20260501, 3], [2n, '2026-05-01', 4n]]))
  await step('ingest chunk 2', () => stream.chunk('ingested', [[1, new Date(Date.UTC(2026, 4, 2)), 5]]))
  await step('ingest chunk again', () => stream.chunk('ingested', [[1, 20260502, 5]], { chunkSeq: 2 }))
  await step('ingest chunk conflict', () => stream.chunk('ingested', [[1, 20260502, 6]], { chunkSeq: 2 }))
  await step('ingest chunk gap', () => stream.chunk('ingested', [[1, 20260502, 6]], { chunkSeq: 9 }))
  await step('ingest commit', () => stream.commit())
  await step('ingest committed', () => [stream.status, stream.nextChunkSeq])
  await step('ingest sum', () => db.batchSum('ingested', [1, 2]))
  const resumed = db.ingest('import-1', 'add', { granularity: 'day' })
  await step('ingest begin committed', () => resumed.begin())
  await step('ingest resumed', () => [resumed.status, resumed.nextChunkSeq])
  const replaced = db.ingest('import-2', 'replace_series')
  await step('ingest replace begin', () => replaced.begin())
  await step('ingest replace chunk', () => replaced.chunk('ingested', [[7, 20260501, 1]]))
  await step('ingest replace abort', () => replaced.abort())
  await step('ingest aborted', () => replaced.status)
  await step('ingest after abort', () => db.batchSum('ingested', [1, 7]))
  await step('ingest bad mode', () => db.ingest('import-3', 'merge').begin())
  await step('ingest unknown stream', () => db.ingest('import-4', 'add').commit())
  await step('prune none', () => db.idempotencyPrune(0))
  await step('prune all', () => db.idempotencyPrune(2 ** 40, { limit: 100 }))
  await step('snapshot', () => db.snapshotAll())
  await step('replication gap', () => db.request('replication.entries', { after_lsn: 0 }))
  await step('after snapshot', () => db.batchSum('api', [1, 2, 3]))
  await step('reset series', () => db.reset('api'))
  await step('info reset', () => db.info('api'))
  return out
}

/** Every method an Engine and a Client share (the Promise-returning ones). */
function surface() {
  const names = (cls) =>
    Object.entries(Object.getOwnPropertyDescriptors(cls.prototype))
      .filter(([n, d]) => typeof d.value === 'function' && !/Sync$/.test(n))
      .map(([n]) => n)
      .filter((n) => !['constructor', 'toString', 'close', 'ingest'].includes(n))
  const engine = names(karma.Engine).sort()
  assert.deepEqual(names(karma.Client).sort(), engine)
  const own = Object.getOwnPropertyDescriptors(karma.Engine.prototype)
  for (const n of engine) assert.equal(typeof own[`${n}Sync`]?.value, 'function', `${n}Sync`)
  return engine
}

test('Engine (async and sync) and Client give identical results', async (t) => {
  const dir = tempDir()
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const called = new Set()

  const engine = new karma.Engine(path.join(dir, 'async'), { walFsync: 'never' })
  const local = await script(recording(engine, called))
  await engine.close()

  const engine2 = new karma.Engine(path.join(dir, 'sync'), { walFsync: false })
  const localSync = await script(syncOf(engine2))
  engine2.closeSync()

  const server = await startServer(t)
  const client = new karma.Client(server.url)
  const remote = await script(recording(client, called))
  await client.close()

  if (process.env.PARITY_DUMP) for (const r of local) console.log(JSON.stringify(r, (k, v) => (typeof v === 'bigint' ? `${v}n` : v)))
  assert.equal(local.length, remote.length)
  for (let i = 0; i < local.length; i++) {
    assert.deepEqual(localSync[i], local[i])
    assert.deepEqual(remote[i], local[i])
  }
  assert.deepEqual([...called].sort(), [...surface(), 'ingest'].sort())
  // The script saw both outcomes, counters as bigint, counts as numbers.
  const by = Object.fromEntries(local.map((r) => [r[0], r.slice(1)]))
  assert.deepEqual(by.sum, [4n])
  assert.deepEqual(by['sum big'], [2n * BIG + 1n])
  assert.equal(by.overflow[1], 'ValidationError')
  assert.equal(by['sum missing series'][1], 'NotFoundError')
  assert.deepEqual(by.batchSet, [2])
  assert.deepEqual(by.batchReset, [{ reset: 2, missing: 1 }])
  assert.equal(by['consume refused'][0].allowed, false)
  assert.deepEqual(by['consume sum'], [6n])
  assert.deepEqual(by['ingest sum'], [[8n, 4n]])
  assert.deepEqual(by['ingest chunk again'][0].skipped, true)
  assert.equal(by['ingest chunk conflict'][1], 'IdempotencyConflictError')
  assert.deepEqual(by['ingest committed'], [['committed', 3]])
  assert.deepEqual(by['ingest after abort'], [[8n, 0n]])
})
