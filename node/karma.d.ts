// Types of the karma-counters package (karma.js): the classes and shapes of
// the generated index.d.ts (from the Rust doc comments) and the error
// classes of errors.d.ts.

export { Engine, Client, Ingest } from './index'
export type {
  BucketRange,
  ChangeOptions,
  ChunkOptions,
  ClientOptions,
  ConsumeOptions,
  DeleteCounts,
  EngineOptions,
  IngestOptions,
  KeysOptions,
  KeysPage,
  KeyTotal,
  KeyValue,
  Point,
  PruneOptions,
  Quota,
  Range,
  ResetCounts,
  SeriesInfo,
  SeriesSummary,
  TopOptions,
} from './index'
export * from './errors'

import type { ErrorCode, KarmaError } from './errors'
/** `error_code` -> its class. */
export declare const ERROR_CLASSES: { readonly [code in ErrorCode]: typeof KarmaError }
