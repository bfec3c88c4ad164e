'use strict'
// u64 end to end: values above 2**53 round-trip exactly through every kind
// of result, in-process and over the network.

const test = require('node:test')
const assert = require('node:assert/strict')

const karma = require('..')
const { startServer } = require('./helpers')

const ABOVE = 2n ** 53n + 1n // the first integer a double cannot hold
const I64_MAX = 2n ** 63n - 1n

for (const mode of ['engine', 'client']) {
  test(`${mode}: counters and keys above 2**53 round-trip exactly`, async (t) => {
    const db = mode === 'engine' ? new karma.Engine() : new karma.Client((await startServer(t)).url)
    assert.equal(await db.increment('v', ABOVE, { value: ABOVE, bucket: 20260501 }), ABOVE)
    assert.equal(await db.increment('v', ABOVE, { value: 2, bucket: 20260502 }), 2n)
    assert.equal(await db.sum('v', ABOVE), ABOVE + 2n)
    assert.equal(await db.decrement('v', ABOVE, { value: 1, bucket: 20260501 }), 1n)
    assert.equal(await db.sum('v', ABOVE, { from: 20260501, to: 20260501 }), ABOVE - 1n)
    assert.deepEqual(await db.batchSum('v', [ABOVE, 1]), [ABOVE + 1n, 0n])
    assert.deepEqual(await db.multiSum([['v', ABOVE]]), [ABOVE + 1n])
    assert.deepEqual(await db.points('v', ABOVE, { from: 20260501, to: 20260502 }), [
      { bucket: 20260501, value: ABOVE - 1n },
      { bucket: 20260502, value: 2n },
    ])
    assert.deepEqual(await db.top('v'), [{ key: ABOVE, value: ABOVE + 1n }])
    const page = await db.keys('v')
    assert.deepEqual(page.keys, [{ key: ABOVE, total: ABOVE + 1n }])
    assert.equal((await db.info('v')).total, ABOVE + 1n)
    assert.equal((await db.summary('v')).total, ABOVE + 1n)
    assert.equal(await db.batchAdd('v', [[I64_MAX, 20260501, I64_MAX]]), I64_MAX)
    assert.equal(await db.sum('v', I64_MAX), I64_MAX)
    // untyped results: numbers while a double holds them, bigint above
    assert.equal(await db.request('counter.sum', { series: 'v', key: I64_MAX }), I64_MAX)
    assert.equal(await db.request('counter.sum', { series: 'v', key: 1 }), 0)
    assert.equal(typeof (await db.request('counter.sum', { series: 'v', key: 1 })), 'number')
    // small counters are bigint too: one type for every counter result
    assert.equal(await db.sum('v', 1), 0n)
    // a number above 2**53 is refused rather than rounded
    await assert.rejects(db.increment('v', 2 ** 53), RangeError)
    await assert.rejects(db.increment('v', 1, { value: Number(ABOVE) }), RangeError)
    await db.close()
  })
}

test('engine: the whole u64 range in-process', () => {
  const e = new karma.Engine()
  const max = 2n ** 64n - 1n
  assert.equal(e.incrementSync('v', max, { value: max, bucket: 20260501 }), max)
  assert.equal(e.sumSync('v', max), max)
  assert.deepEqual(e.topSync('v'), [{ key: max, value: max }])
})

test('buckets: a Date is its UTC day; strings and numbers are the same bucket', () => {
  const e = new karma.Engine()
  e.incrementSync('b', 1, { bucket: new Date('2026-05-01T23:59:59.999Z') })
  e.incrementSync('b', 1, { bucket: '2026-05-01' })
  e.incrementSync('b', 1, { bucket: 20260501 })
  e.incrementSync('b', 1, { bucket: new Date('2026-05-02T00:00:00Z') })
  assert.deepEqual(e.pointsSync('b', 1, { from: new Date(Date.UTC(2026, 4, 1)), to: '2026-05-02' }), [
    { bucket: 20260501, value: 3n },
    { bucket: 20260502, value: 1n },
  ])
})
