# frozen_string_literal: true

module Karma
  # The methods Karma::Engine and Karma::Client share. Each is one v2 op
  # (docs/protocol.md) sent through the native `_request` (increment and
  # decrement without an idempotency key take a typed fast path), so both
  # modes give identical results. Keyword names are the original
  # karma_client's; ranges are `range:` (a Range of dates, `[from, to]` or
  # `{from:, to:}`) or `from:`/`to:`.
  class Native
    C = Convert
    private_constant :C

    # Adds `value` to one day bucket (today, UTC, by default); returns `value`.
    def increment(series:, key:, value: 1, bucket: nil, idempotency_key: nil, fingerprint: nil)
      # The hot path, inline: a String series and an Integer (or no) bucket
      # go straight to the native call, which checks the Integers itself.
      if idempotency_key.nil? && fingerprint.nil? && series.is_a?(String) && (bucket.nil? || bucket.is_a?(Integer))
        return _change(false, series, key, value, bucket)
      end

      write_counter("counter.increment", false, series, key, value, bucket, idempotency_key, fingerprint)
    end

    # Subtracts up to `value`, never below zero; returns `value`.
    def decrement(series:, key:, value: 1, bucket: nil, idempotency_key: nil, fingerprint: nil)
      write_counter("counter.decrement", true, series, key, value, bucket, idempotency_key, fingerprint)
    end

    # A quota check and the increment it guards, in one atomic step
    # (`counter.consume`): adds `value` to the bucket (today, UTC, by
    # default) only if the window's total plus `value` stays within
    # `limit`. The window ends at the bucket: `window: :day` (default),
    # `:month` (the calendar month to date) or `days: N` (the last N days).
    # Returns a Karma::Quota (`allowed?`, `used`, `remaining`, `limit`, `range`).
    def consume(series:, key:, limit:, value: 1, bucket: nil, window: nil, days: nil, idempotency_key: nil,
                fingerprint: nil)
      window = window&.to_s
      bucket = C.opt_bucket(bucket, "bucket")
      if idempotency_key.nil? && fingerprint.nil?
        allowed, used, remaining, lim, from, to = _consume(series.to_s, key, value, limit, bucket, window, days)
        return Quota.new(allowed: allowed, used: used, remaining: remaining, limit: lim, range: from..to)
      end

      Quota.from_response(_request("counter.consume", { series: series, key: C.u64(key, "key"), value: C.u64(value, "value"),
                                                         limit: C.u64(limit, "limit"), bucket: bucket, window: window,
                                                         days: days.nil? ? nil : C.u64(days, "days"),
                                                         idempotency_key: idempotency_key, fingerprint: fingerprint }))
    end

    # The counter's total, or its sum over the range.
    def sum(series:, key:, range: nil, from: nil, to: nil)
      _request("counter.sum", { series: series, key: C.u64(key, "key"), range: C.range(range, from, to) })
    end

    # One sum per key, in order: `[Integer, ...]`.
    def batch_sum(series:, keys:, range: nil, from: nil, to: nil)
      _request("counter.batch_sum", { series: series, keys: C.keys(keys), range: C.range(range, from, to) })
        .map { |row| row["value"] }
    end

    # One sum per `[series, key]` (or `{series:, key:}`), in order.
    def multi_sum(items:, range: nil, from: nil, to: nil)
      _request("counter.multi_sum", { items: C.series_keys(items), range: C.range(range, from, to) })
        .map { |row| row["value"] }
    end

    # The non-empty buckets of one counter in the range: `{YYYYMMDD => value}`.
    def points(series:, key:, range: nil, from: nil, to: nil)
      _request("counter.series", { series: series, key: C.u64(key, "key"), range: C.range(range, from, to, required: true) })
        .to_h { |bucket, value| [Integer(bucket, 10), value] }
    end

    # Adds `[[key, bucket, value], ...]` atomically: `{"applied" =>, "total" =>}`.
    def batch_add(series:, items:, idempotency_key: nil, fingerprint: nil)
      _request("series.batch_add", { series: series, items: C.items(items), idempotency_key: idempotency_key, fingerprint: fingerprint })
    end

    # Sets exact bucket values (0 deletes the bucket): `{"applied" =>}`.
    def batch_set(series:, items:, idempotency_key: nil, fingerprint: nil)
      _request("series.batch_set", { series: series, items: C.items(items), idempotency_key: idempotency_key, fingerprint: fingerprint })
    end

    # Clears one counter, or the whole series without `key:`.
    def reset(series:, key: nil, idempotency_key: nil, fingerprint: nil)
      op = key.nil? ? "tree.reset" : "counter.reset"
      _request(op, { series: series, key: C.opt_u64(key, "key"), idempotency_key: idempotency_key, fingerprint: fingerprint })
    end

    # `{"reset" =>, "missing" =>}`.
    def batch_reset(series:, keys:, idempotency_key: nil, fingerprint: nil)
      _request("counter.batch_reset", { series: series, keys: C.keys(keys), idempotency_key: idempotency_key, fingerprint: fingerprint })
    end

    # Deletes the buckets in the range of one counter (or of the whole series).
    def delete_range(series:, key: nil, range: nil, from: nil, to: nil, idempotency_key: nil, fingerprint: nil)
      op = key.nil? ? "tree.delete_range" : "counter.delete_range"
      _request(op, { series: series, key: C.opt_u64(key, "key"), range: C.range(range, from, to, required: true),
                     idempotency_key: idempotency_key, fingerprint: fingerprint })
    end

    def batch_delete_range(series:, keys:, range: nil, from: nil, to: nil, idempotency_key: nil, fingerprint: nil)
      _request("counter.batch_delete_range", { series: series, keys: C.keys(keys), range: C.range(range, from, to, required: true),
                                               idempotency_key: idempotency_key, fingerprint: fingerprint })
    end

    def create_series(series)
      _request("tree.create", { series: series })
    end

    def drop_series(series)
      _request("tree.drop", { series: series })
    end

    def list_series
      _request("tree.list", nil)
    end

    # `{"tree", "key_count", "bucket_count", "total", ...}`.
    def info(series)
      _request("tree.info", { series: series })
    end

    # One page of keys above `cursor`, ascending.
    def keys(series, limit: 1000, cursor: nil)
      _request("tree.keys", { series: series, limit: C.limit(limit), cursor: C.opt_u64(cursor, "cursor") })
    end

    # The largest counters: `[[key, value], ...]`.
    def top(series, limit: 10, range: nil, from: nil, to: nil)
      _request("tree.top", { series: series, limit: C.limit(limit), range: C.range(range, from, to) })["items"]
        .map { |row| [row["key"], row["value"]] }
    end

    def summary(series, range: nil, from: nil, to: nil)
      _request("tree.summary", { series: series, range: C.range(range, from, to) })
    end

    # Retention: drops the buckets before `before`, then compacts.
    def delete_before(series, before:)
      _request("series.delete_before", { series: series, before: C.bucket(before, "before") })
    end

    # Removes empty counters of one series (or of all).
    def compact(series = nil)
      series.nil? ? _request("system.compact", nil) : _request("series.compact", { series: series })
    end

    def snapshot_all
      _request("snapshot.create_all", nil)
    end

    def ping
      _request("system.ping", nil)
    end

    def health
      _request("system.health", nil)
    end

    def stats
      _request("system.stats", nil)
    end

    def metrics
      _request("system.metrics", nil)
    end

    # Deletes idempotency records older than `before`; returns the count.
    def idempotency_prune(before:, limit: nil)
      v = _request("idempotency.prune", { before: C.timestamp(before, "before"), limit: C.limit(limit) })
      v.is_a?(Hash) && v.key?("deleted") ? v["deleted"] : v
    end

    # A streaming ingest: begins, yields the stream (`stream << items`
    # sends the next chunk of `series`), commits when the block returns
    # and aborts when it raises.
    def ingest(stream_id:, mode:, series: nil, granularity: nil)
      stream = Ingest.new(self, stream_id: stream_id, mode: mode, series: series, granularity: granularity)
      return stream unless block_given?

      stream.begin
      begin
        yield stream
      rescue Exception # rubocop:disable Lint/RescueException -- abort on any exit by exception, then re-raise
        begin
          stream.abort
        rescue Karma::Error
          nil # the block's exception is the one to report
        end
        raise
      end
      stream.commit
    end

    # Any v2 op: `request("tree.keys", series: "x", limit: 10)` returns the
    # `response` value; an error envelope raises its class.
    def request(op, **fields)
      _request(op.to_s, C.fields(fields))
    end

    private

    def write_counter(op, decrement, series, key, value, bucket, idempotency_key, fingerprint)
      bucket = C.opt_bucket(bucket, "bucket")
      if idempotency_key.nil? && fingerprint.nil?
        return _change(decrement, series.to_s, key, value, bucket)
      end

      _request(op, { series: series, key: C.u64(key, "key"), value: C.u64(value, "value"), bucket: bucket,
                     idempotency_key: idempotency_key, fingerprint: fingerprint })
    end
  end

  # The answer of `consume`: whether `value` was added, the window's total
  # after the request, what is left of the limit, and the window's buckets.
  Quota = Struct.new(:allowed, :used, :remaining, :limit, :range, keyword_init: true) do
    def self.from_response(h)
      new(allowed: h["allowed"], used: h["used"], remaining: h["remaining"], limit: h["limit"],
          range: h["range_from"]..h["range_to"])
    end

    def allowed?
      allowed
    end
  end

  # One streaming-ingest stream (docs/protocol.md, ingest.*). `begin`
  # continues numbering after the server's `last_chunk_seq`, so re-running
  # an interrupted import with the same stream_id resumes it.
  class Ingest
    attr_reader :stream_id, :mode, :series, :status, :next_chunk_seq

    def initialize(api, stream_id:, mode:, series: nil, granularity: nil)
      @api = api
      @stream_id = stream_id.to_s
      @mode = mode.to_s
      @series = series
      @granularity = granularity
      @next_chunk_seq = 1
      @status = "new"
    end

    def begin
      v = @api.request("ingest.begin", stream_id: @stream_id, mode: @mode, granularity: @granularity)
      @next_chunk_seq = v.fetch("last_chunk_seq", 0).to_i + 1
      note(v)
    end

    # Sends `items` (`[[key, bucket, value], ...]`) as the next chunk.
    def chunk(items, series: @series, chunk_seq: nil)
      raise ArgumentError, "no series: give ingest(series:) or chunk(items, series:)" if series.nil?

      seq = chunk_seq || @next_chunk_seq
      v = @api.request("ingest.chunk", stream_id: @stream_id, series: series.to_s, chunk_seq: Convert.u64(seq, "chunk_seq"),
                                       items: Convert.items(items))
      @next_chunk_seq = [@next_chunk_seq, seq + 1].max
      v
    end

    def <<(items)
      chunk(items)
      self
    end

    def commit
      note(@api.request("ingest.commit", stream_id: @stream_id))
    end

    def abort
      note(@api.request("ingest.abort", stream_id: @stream_id))
    end

    private

    def note(v)
      @status = v["status"] if v.is_a?(Hash) && v["status"]
      v
    end
  end
end
