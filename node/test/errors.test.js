'use strict'
// Each protocol error code rejects with its own class, in-process and over
// the network; transport failures are ConnectionError / TimeoutError /
// ProtocolError; bad arguments are TypeError / RangeError.

const test = require('node:test')
const assert = require('node:assert/strict')

const karma = require('..')
const { startServer, fakeServer, freePort } = require('./helpers')

const CODES = {
  invalid_json: 'InvalidJsonError',
  unsupported_protocol: 'UnsupportedProtocolError',
  unknown_command: 'UnknownCommandError',
  validation_error: 'ValidationError',
  not_found: 'NotFoundError',
  unauthorized: 'UnauthorizedError',
  forbidden: 'ForbiddenError',
  request_too_large: 'RequestTooLargeError',
  response_too_large: 'ResponseTooLargeError',
  query_timeout: 'QueryTimeoutError',
  idempotency_conflict: 'IdempotencyConflictError',
  replication_gap: 'ReplicationGapError',
  replication_error: 'ReplicationError',
  internal_error: 'InternalError',
  limit_exceeded: 'LimitExceededError',
}

/** Asserts `promise` rejects with exactly class `name` and `code`. */
async function rejectsWith(promise, name, code, kinds = ['engine', 'server']) {
  const cls = karma[name]
  let error
  await assert.rejects(promise, (e) => {
    error = e
    return true
  })
  assert.equal(error.constructor, cls, `${error.name}: ${error.message}`)
  assert.ok(error instanceof karma.KarmaError && error instanceof Error)
  assert.equal(error.code, code)
  assert.equal(error.name, name)
  assert.ok(kinds.includes(error.kind), error.kind)
  assert.ok(error.message.length > 0)
  return error
}

test('one class per error code, named as in the engine table', () => {
  assert.deepEqual(Object.keys(karma.ERROR_CLASSES).sort(), Object.keys(CODES).sort())
  for (const [code, name] of Object.entries(CODES)) {
    const cls = karma[name]
    assert.equal(karma.ERROR_CLASSES[code], cls)
    assert.equal(cls.name, name)
    assert.equal(cls.code, code)
    assert.ok(cls.prototype instanceof karma.KarmaError)
    const e = new cls('m')
    assert.equal(e.code, code)
    assert.equal(String(e), `${name}: m`)
  }
  assert.ok(karma.ProtocolError.prototype instanceof karma.ConnectionError)
  assert.ok(karma.TimeoutError.prototype instanceof karma.KarmaError)
  assert.ok(karma.ClosedError.prototype instanceof karma.KarmaError)
})

for (const mode of ['engine', 'client']) {
  async function open(t, ...flags) {
    if (mode === 'engine') return new karma.Engine()
    return new karma.Client((await startServer(t, ...flags)).url)
  }

  test(`${mode}: envelope errors, validation, not found, idempotency, replication gap`, async (t) => {
    const db = await open(t)
    await rejectsWith(db.requestLine('{'), 'InvalidJsonError', 'invalid_json')
    await rejectsWith(db.requestLine('{"v":1,"op":"system.ping"}'), 'UnsupportedProtocolError', 'unsupported_protocol')
    await rejectsWith(db.request('no.such_op'), 'UnknownCommandError', 'unknown_command')
    await rejectsWith(db.request('system.ping', { pad: 'x'.repeat(5000) }), 'RequestTooLargeError', 'request_too_large')
    const e = await rejectsWith(db.increment('s', 1, { value: 0 }), 'ValidationError', 'validation_error')
    assert.equal(e.message, 'Field value must be greater than 0')
    const nf = await rejectsWith(db.info('missing'), 'NotFoundError', 'not_found')
    assert.equal(nf.message, 'Tree "missing" not found')
    const inc = { series: 's', key: 1, bucket: 20260501, idempotency_key: 'k' }
    await db.request('counter.increment', inc)
    await rejectsWith(db.request('counter.increment', { ...inc, key: 2 }), 'IdempotencyConflictError', 'idempotency_conflict')
    if (mode === 'engine') await db.snapshotAll().catch(() => {}) // in memory: no snapshot, see below
    await db.close()
  })

  test(`${mode}: unauthorized and forbidden`, async (t) => {
    if (mode === 'engine') {
      const e = new karma.Engine(null, { authToken: 'w', readAuthToken: 'r' })
      await rejectsWith(e.request('system.ping'), 'UnauthorizedError', 'unauthorized')
      assert.equal(await e.request('system.ping', { token: 'r' }), 'pong')
      await rejectsWith(e.request('counter.increment', { series: 's', key: 1, token: 'r' }), 'ForbiddenError', 'forbidden')
      const slave = new karma.Engine(null, { role: 'slave' })
      const f = await rejectsWith(slave.increment('s', 1), 'ForbiddenError', 'forbidden')
      assert.equal(f.message, 'Slave role cannot execute command increment')
      assert.throws(() => slave.incrementSync('s', 1), karma.ForbiddenError)
      return
    }
    const server = await startServer(t, '--auth-token=w', '--read-auth-token=r')
    await rejectsWith(new karma.Client(server.url).ping(), 'UnauthorizedError', 'unauthorized')
    const reader = new karma.Client(server.url, { token: 'r' })
    assert.equal(await reader.ping(), 'pong')
    await rejectsWith(reader.increment('s', 1), 'ForbiddenError', 'forbidden')
    assert.equal(await new karma.Client(`${server.url}?token=w`).increment('s', 1), 1n)
  })

  test(`${mode}: response too large`, async (t) => {
    const db = mode === 'engine' ? new karma.Engine(null, { maxResponseBytes: 100 }) : await open(t, '--max-response-bytes=100')
    for (let i = 0; i < 10; i++) await db.createSeries(`series-with-a-long-name-${i}`)
    await rejectsWith(db.request('tree.list'), 'ResponseTooLargeError', 'response_too_large')
  })

  test(`${mode}: query timeout`, async (t) => {
    const db =
      mode === 'engine'
        ? new karma.Engine(null, { queryTimeoutMs: 1, maxResponseBytes: 0 })
        : new karma.Client(
            (await startServer(t, '--query-timeout-ms=1', '--max-response-bytes=0', '--max-request-bytes=1048576')).url,
            { readTimeoutMs: 30_000 },
          )
    for (let chunk = 0; chunk < 30; chunk++) {
      const items = []
      for (let k = 0; k < 10_000; k++) items.push([k + chunk * 10_000, 20260101, 1])
      await db.batchAdd('big', items)
    }
    let error = null
    for (let i = 0; i < 20 && !error; i++) {
      await db.request('tree.series', { series: 'big', range: { from: 20260101, to: 20260101 } }).catch((e) => (error = e))
    }
    assert.ok(error, 'a 300000-counter scan never exceeded the 1 ms query timeout')
    assert.equal(error.constructor, karma.QueryTimeoutError)
    assert.equal(error.code, 'query_timeout')
  })
}

test('replication gap (durable engine and server)', async (t) => {
  const { tempDir } = require('./helpers')
  const dir = tempDir()
  t.after(() => require('node:fs').rmSync(dir, { recursive: true, force: true }))
  const server = await startServer(t)
  for (const db of [new karma.Engine(dir, { walFsync: 'never' }), new karma.Client(server.url)]) {
    await db.increment('s', 1, { bucket: 20260501 })
    await db.snapshotAll()
    const e = await rejectsWith(db.request('replication.entries', { after_lsn: 0 }), 'ReplicationGapError', 'replication_gap')
    assert.match(e.message, /bootstrap from snapshot/)
    await db.close()
  }
})

test('replication_error, internal_error and limit_exceeded come from no client request; their classes exist', () => {
  // engine/tests/errors.rs says the same: replication_error comes from
  // applying a master's WAL, internal_error from engine faults.
  for (const code of ['replication_error', 'internal_error', 'limit_exceeded']) {
    const cls = karma.ERROR_CLASSES[code]
    const e = new cls('why', { kind: 'server' })
    assert.equal(e.code, code)
    assert.equal(e.kind, 'server')
  }
})

test('arguments: RangeError above 2**53 as a number, TypeError for the wrong type; thrown by Sync, rejected by async', async () => {
  const e = new karma.Engine()
  assert.throws(() => e.incrementSync('s', 2 ** 53), RangeError)
  assert.throws(() => e.incrementSync('s', -1), RangeError)
  assert.throws(() => e.incrementSync('s', 1.5), RangeError)
  assert.throws(() => e.incrementSync('s', 2n ** 64n), RangeError)
  assert.throws(() => e.incrementSync('s', -1n), RangeError)
  assert.throws(() => e.incrementSync('s', '1'), TypeError)
  assert.throws(() => e.incrementSync(1, 1), TypeError)
  assert.throws(() => e.incrementSync('s', 1, { valeu: 2 }), /unknown option "valeu"/)
  assert.throws(() => e.sumSync('s', 1, { from: 20260101 }), TypeError)
  assert.throws(() => e.incrementSync('s', 1, { bucket: 'May 1' }), karma.ValidationError)
  await assert.rejects(e.increment('s', 2 ** 53), RangeError)
  await assert.rejects(e.batchSum('s', [1, -2]), /keys\[1\] must be an integer/)
  assert.throws(() => new karma.Engine(null, { walFsnyc: 'never' }), TypeError)
})

test('client: u64 above 2**63-1 is refused before sending (the wire takes i64)', async (t) => {
  const server = await startServer(t)
  const c = new karma.Client(server.url)
  const e = await rejectsWith(c.increment('s', 2n ** 63n), 'ValidationError', 'validation_error', ['invalid'])
  assert.match(e.message, /9223372036854775807/)
  const engine = new karma.Engine()
  assert.equal(engine.incrementSync('s', 2n ** 64n - 1n), 1n)
})

test('transport: connection refused, read timeout, pool timeout, garbage', async (t) => {
  const refused = new karma.Client(`karma://127.0.0.1:${await freePort()}`, { connectTimeoutMs: 1000 })
  const ce = await refused.ping().catch((e) => e)
  assert.equal(ce.constructor, karma.ConnectionError)
  assert.equal(ce.code, null)
  assert.equal(ce.kind, 'connection')
  assert.match(ce.message, /caused by|refused/i)

  const silent = await fakeServer(t, 'silent')
  const slow = new karma.Client(`karma://127.0.0.1:${silent.port}`, { readTimeoutMs: 200 })
  const te = await slow.sum('s', 1).catch((e) => e)
  assert.equal(te.constructor, karma.TimeoutError)
  assert.equal(te.kind, 'timeout')

  const silent2 = await fakeServer(t, 'silent')
  const one = new karma.Client(`karma://127.0.0.1:${silent2.port}`, {
    poolSize: 1,
    readTimeoutMs: 2000,
    checkoutTimeoutMs: 100,
  })
  const holder = one.sum('s', 1).catch((e) => e)
  await silent2.arrived // the only connection is busy now
  const pe = await one.sum('s', 2).catch((e) => e)
  assert.equal(pe.constructor, karma.TimeoutError)
  assert.equal(pe.kind, 'pool_timeout')
  assert.equal((await holder).kind, 'timeout')

  const garbage = await fakeServer(t, 'garbage')
  const g = new karma.Client(`karma://127.0.0.1:${garbage.port}`)
  const ge = await g.ping().catch((e) => e)
  assert.equal(ge.constructor, karma.ProtocolError)
  assert.ok(ge instanceof karma.ConnectionError)
})

test('closed: calls after close reject with ClosedError; close is idempotent', async () => {
  const e = new karma.Engine()
  assert.equal(e.closed, false)
  await e.close()
  assert.equal(e.closed, true)
  await assert.rejects(e.ping(), karma.ClosedError)
  assert.throws(() => e.pingSync(), karma.ClosedError)
  await e.close()
  e.closeSync()
})

test('client hot path (pipelined increment, decrement, consume): bad arguments and a closed client reject', async () => {
  // Nothing listens there: every rejection below happens before connecting.
  const c = new karma.Client(`karma://127.0.0.1:${await freePort()}`)
  await assert.rejects(c.increment(1, 1), TypeError)
  await assert.rejects(c.increment('s', 2 ** 53), RangeError)
  await assert.rejects(c.decrement('s', 1, { valeu: 2 }), /unknown option "valeu"/)
  await assert.rejects(c.increment('s', 1, [1]), TypeError)
  await assert.rejects(c.consume('s', 1, -1), RangeError)
  await rejectsWith(c.increment('s', 1, { value: 2n ** 63n }), 'ValidationError', 'validation_error', ['invalid'])
  await c.close()
  assert.equal(c.closed, true)
  await assert.rejects(c.increment('s', 1), karma.ClosedError)
  await assert.rejects(c.consume('s', 1, 5), karma.ClosedError)
})

test('ingest: bad arguments throw, like the constructors', () => {
  const e = new karma.Engine()
  assert.throws(() => e.ingest(1, 'add'), TypeError)
  assert.throws(() => e.ingest('id', 'add', { granularty: 'day' }), /unknown option "granularty"/)
  const s = e.ingest('id', 'add')
  assert.equal(s.status, 'new')
  assert.equal(s.nextChunkSeq, 1)
})
