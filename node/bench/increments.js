'use strict'
// Increments per second from one Node thread (bench/run.sh pins it to a
// core and starts the servers on another):
//
//   * in-process: `incrementSync` and awaited `increment`, one at a time, on
//     an in-memory Engine (no WAL);
//   * networked, with CONCURRENCY (50) promises in flight: Client.increment
//     against KARMA_URL beside ioredis `incr` against REDIS_URL.
//
//   node bench/increments.js            # after `npm run build:release`
//
// Prints one JSON line per measurement.

const { Engine, Client } = require('..')

const N_SYNC = Number(process.env.N_SYNC ?? 3_000_000)
const N_ASYNC = Number(process.env.N_ASYNC ?? 200_000)
const N_NET = Number(process.env.N_NET ?? 300_000)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50)
const KEYS = 1000

// CPU time of this process since the last mark: the figure busy neighbours
// on a shared machine disturb least (wall time also counts their turns).
let cpuMark = process.cpuUsage()

function report(name, ops, seconds, extra = {}) {
  const cpu = process.cpuUsage(cpuMark)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  console.log(
    JSON.stringify({
      name,
      ops,
      seconds: +seconds.toFixed(3),
      per_second: Math.round(ops / seconds),
      cpu_us_per_op: +((cpuSeconds * 1e6) / ops).toFixed(3),
      ...extra,
    }),
  )
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9
}

/** now(), and the CPU-time mark `report` measures from. */
function begin() {
  cpuMark = process.cpuUsage()
  return now()
}

/** Runs `call(i)` N times with `concurrency` awaited loops in flight. */
async function inFlight(n, concurrency, call) {
  let next = 0
  const loop = async () => {
    while (next < n) await call(next++)
  }
  const start = begin()
  await Promise.all(Array.from({ length: concurrency }, loop))
  return now() - start
}

async function inProcess() {
  const e = new Engine()
  for (let i = 0; i < 100_000; i++) e.incrementSync('warm', i % KEYS, { bucket: 20260501 })
  let start = begin()
  for (let i = 0; i < N_SYNC; i++) e.incrementSync('bench', i % KEYS, { bucket: 20260501 })
  report('engine incrementSync (in memory)', N_SYNC, now() - start)
  // without the options object (bucket = today)
  start = begin()
  for (let i = 0; i < N_SYNC; i++) e.incrementSync('bench2', i % KEYS)
  report('engine incrementSync, no options (in memory)', N_SYNC, now() - start)
  start = begin()
  for (let i = 0; i < N_ASYNC; i++) await e.increment('bench', i % KEYS, { bucket: 20260501 })
  report('engine awaited increment (in memory)', N_ASYNC, now() - start)
  e.closeSync()
}

async function networked() {
  if (process.env.KARMA_URL) {
    const c = new Client(process.env.KARMA_URL, { poolSize: CONCURRENCY })
    await inFlight(10_000, CONCURRENCY, (i) => c.increment('warm', i % KEYS, { bucket: 20260501 }))
    const seconds = await inFlight(N_NET, CONCURRENCY, (i) => c.increment('bench', i % KEYS, { bucket: 20260501 }))
    report('Client increment', N_NET, seconds, { concurrency: CONCURRENCY })
    await c.close()
  }
  if (process.env.REDIS_URL) {
    const Redis = require('ioredis')
    const r = new Redis(process.env.REDIS_URL)
    await inFlight(10_000, CONCURRENCY, (i) => r.incr(`warm:${i % KEYS}`))
    const seconds = await inFlight(N_NET, CONCURRENCY, (i) => r.incr(`bench:${i % KEYS}`))
    report('ioredis incr', N_NET, seconds, { concurrency: CONCURRENCY })
    r.disconnect()
  }
}

;(async () => {
  if (process.env.SKIP_IN_PROCESS !== '1') await inProcess()
  await networked()
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
