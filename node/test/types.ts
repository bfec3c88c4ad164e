// Type-checked by `tsc --noEmit -p test` (never run): the package's API as
// TypeScript sees it.
import { Engine, Client, Ingest, KarmaError, NotFoundError, ERROR_CLASSES } from '..'
import type { Quota, KeysPage, Point, Range } from '..'

async function usage(): Promise<bigint> {
  const engine = new Engine(null, { walFsync: 'never', wal: false })
  const hits: bigint = engine.incrementSync('api_requests', 42)
  const big: bigint = engine.incrementSync('api_requests', 2n ** 60n, { value: 5n, bucket: new Date() })
  const range: Range = { from: '2026-05-01', to: 20260531 }
  const total: bigint = await engine.sum('api_requests', 42, range)
  const points: Point[] = await engine.points('api_requests', 42, range)
  const bucket: number = points[0].bucket
  const quota: Quota = await engine.consume('api_requests', 42, 1000, { window: 'days', days: 7 })
  const allowed: boolean = quota.allowed
  engine.closeSync()

  const client = new Client('karma://127.0.0.1:8080', { poolSize: 8, readTimeoutMs: 5000 })
  const page: KeysPage = await client.keys('api_requests', { limit: 100 })
  const next: bigint | undefined | null = page.nextCursor
  const sums: bigint[] = await client.batchSum('api_requests', [1, 2n])
  try {
    await client.info('missing')
  } catch (e) {
    if (e instanceof NotFoundError) {
      const code: 'not_found' = e.code
      void code
    } else if (e instanceof KarmaError && e.kind === 'connection') {
      const code: string | null = e.code
      void code
    }
  }
  const cls: typeof KarmaError = ERROR_CLASSES.not_found
  const stream: Ingest = client.ingest('import-1', 'add', { granularity: 'day' })
  await stream.begin()
  await stream.chunk('api_requests', [[1, '2026-05-01', 3n]], { chunkSeq: 1n })
  await stream.commit()
  const seq: number = stream.nextChunkSeq
  await client.close()
  void [hits, big, bucket, allowed, next, sums, cls, seq]
  return total
}

// @ts-expect-error: counters are bigint, not number
const wrong: number = new Engine().incrementSync('s', 1)
// @ts-expect-error: keys are number | bigint
new Engine().incrementSync('s', '1')

void usage
void wrong
