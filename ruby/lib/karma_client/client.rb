# frozen_string_literal: true

module KarmaClient
  # karma_client's client: one method per v2 op with karma_client's names
  # and keywords, returning the server's `response` value as is (e.g.
  # batch_sum answers `[{"key"=>41, "value"=>10}, ...]`); an error envelope
  # raises its ServerError subclass. Backed by a native, pooled
  # Karma::Client, so one instance serves many threads.
  class Client
    A = Arguments
    private_constant :A

    attr_reader :configuration

    # `Client.new(host:, port:, token:, ...)`, `Client.new(configuration)`
    # or `Client.new({host: ...})`; unset settings come from
    # KarmaClient.configuration. No connection is opened until the first call.
    def initialize(configuration = nil, **options)
      @configuration = build_configuration(configuration, options)
      @native_options = @configuration.native_options
      @lock = Mutex.new
      @native = nil
    end

    # Closes the connections; a later call opens new ones.
    def close
      native = @lock.synchronize do
        n = @native
        @native = nil
        n
      end
      native&.close
      nil
    end

    # Any op; returns the whole Response (success or error) without raising
    # on an error envelope.
    def request(op, **fields)
      op = op.to_s
      payload = fields.compact
      instrument(op, payload) do
        envelope = translate_errors { native._envelope(op, Karma::Convert.fields(payload)) }
        Response.from_envelope(envelope)
      end
    end

    # Any op; returns the `response` value, or raises the error's class.
    def call(op, **fields)
      response = request(op, **fields)
      raise ServerError.from_response(response) if response.error?

      response.value
    end

    def ping = call("system.ping")
    def health = call("system.health")
    def stats = call("system.stats")
    def metrics = call("system.metrics")

    def create_series(series) = call("tree.create", series: A.string(series, "series"))
    def drop_series(series) = call("tree.drop", series: A.string(series, "series"))
    def list_series = call("tree.list")
    def series_info(series) = call("tree.info", series: A.string(series, "series"))
    def compact_series(series) = call("series.compact", series: A.string(series, "series"))
    def compact_all = call("system.compact")

    def reset_series(series, idempotency_key: nil, fingerprint: nil)
      call("tree.reset", series: A.string(series, "series"), **idem(idempotency_key, fingerprint))
    end

    def series_keys(series, limit:, cursor: nil)
      call("tree.keys", series: A.string(series, "series"), limit: A.limit(limit), cursor: A.opt_u64(cursor, "cursor"))
    end

    def series_summary(series, range: nil, from: nil, to: nil)
      call("tree.summary", series: A.string(series, "series"), range: A.range(range, from, to))
    end

    def series_top(series, limit:, range: nil, from: nil, to: nil)
      call("tree.top", series: A.string(series, "series"), limit: A.limit(limit), range: A.range(range, from, to))
    end

    def series_points(series, range: nil, from: nil, to: nil)
      call("tree.series", series: A.string(series, "series"), range: A.range(range, from, to, required: true))
    end

    def delete_before(series, before:)
      call("series.delete_before", series: A.string(series, "series"), before: A.bucket(before, "before"))
    end

    def increment(series:, key:, value: 1, bucket: nil, idempotency_key: nil, fingerprint: nil)
      counter_write("counter.increment", series, key, value, bucket, idempotency_key, fingerprint)
    end

    def decrement(series:, key:, value: 1, bucket: nil, idempotency_key: nil, fingerprint: nil)
      counter_write("counter.decrement", series, key, value, bucket, idempotency_key, fingerprint)
    end

    def sum(series:, key:, range: nil, from: nil, to: nil)
      call("counter.sum", series: A.string(series, "series"), key: A.u64(key, "key"), range: A.range(range, from, to))
    end

    def points(series:, key:, range: nil, from: nil, to: nil)
      call("counter.series", series: A.string(series, "series"), key: A.u64(key, "key"),
                             range: A.range(range, from, to, required: true))
    end

    def batch_sum(series:, keys:, range: nil, from: nil, to: nil)
      call("counter.batch_sum", series: A.string(series, "series"), keys: A.keys(keys), range: A.range(range, from, to))
    end

    def multi_sum(items:, range: nil, from: nil, to: nil)
      call("counter.multi_sum", items: A.series_keys(items), range: A.range(range, from, to))
    end

    def batch_add(series:, items:, idempotency_key: nil, fingerprint: nil)
      call("series.batch_add", series: A.string(series, "series"), items: A.items(items), **idem(idempotency_key, fingerprint))
    end

    def batch_set(series:, items:, idempotency_key: nil, fingerprint: nil)
      call("series.batch_set", series: A.string(series, "series"), items: A.items(items), **idem(idempotency_key, fingerprint))
    end

    def reset_counter(series:, key:, idempotency_key: nil, fingerprint: nil)
      call("counter.reset", series: A.string(series, "series"), key: A.u64(key, "key"), **idem(idempotency_key, fingerprint))
    end

    def batch_reset(series:, keys:, idempotency_key: nil, fingerprint: nil)
      call("counter.batch_reset", series: A.string(series, "series"), keys: A.keys(keys), **idem(idempotency_key, fingerprint))
    end

    # One counter's buckets in the range, or (without key:) the whole series'.
    def delete_range(series:, key: nil, range: nil, from: nil, to: nil, idempotency_key: nil, fingerprint: nil)
      call(key.nil? ? "tree.delete_range" : "counter.delete_range",
           series: A.string(series, "series"), key: A.opt_u64(key, "key"),
           range: A.range(range, from, to, required: true), **idem(idempotency_key, fingerprint))
    end

    def batch_delete_range(series:, keys:, range: nil, from: nil, to: nil, idempotency_key: nil, fingerprint: nil)
      call("counter.batch_delete_range", series: A.string(series, "series"), keys: A.keys(keys),
                                         range: A.range(range, from, to, required: true), **idem(idempotency_key, fingerprint))
    end

    def ingest_begin(stream_id:, mode:, granularity: "day")
      call("ingest.begin", stream_id: A.string(stream_id, "stream_id"), mode: A.string(mode, "mode"), granularity: granularity)
    end

    def ingest_chunk(stream_id:, series:, chunk_seq:, items:)
      call("ingest.chunk", stream_id: A.string(stream_id, "stream_id"), series: A.string(series, "series"),
                           chunk_seq: A.u64(chunk_seq, "chunk_seq"), items: A.items(items))
    end

    def ingest_commit(stream_id:) = call("ingest.commit", stream_id: A.string(stream_id, "stream_id"))
    def ingest_abort(stream_id:) = call("ingest.abort", stream_id: A.string(stream_id, "stream_id"))

    def snapshot_create(series) = call("snapshot.create", series: A.string(series, "series"))
    def snapshot_create_all = call("snapshot.create_all")
    def snapshot_list = call("snapshot.list")
    def snapshot_info = call("snapshot.info")
    def snapshot_verify = call("snapshot.verify")
    def snapshot_load(file) = call("snapshot.load", file: A.snapshot_file(file))
    def snapshot_fetch(file) = call("snapshot.fetch", file: A.snapshot_file(file))

    def snapshot_fetch_chunk(file, offset:, limit:)
      call("snapshot.fetch_chunk", file: A.snapshot_file(file), offset: A.u64(offset, "offset"), limit: A.limit(limit))
    end

    def recovery_checkpoint(source:, offset:, event_id: nil)
      call("recovery.checkpoint", source: A.string(source, "source"), offset: A.string(offset, "offset"),
                                  event_id: A.opt_string(event_id, "event_id"))
    end

    def recovery_status(source: nil) = call("recovery.status", source: A.opt_string(source, "source"))

    def reconciliation_report(checked_points:, mismatch_count:, absolute_drift: 0, max_abs_delta: 0)
      call("reconciliation.report", checked_points: A.integer(checked_points, "checked_points"),
                                    mismatch_count: A.integer(mismatch_count, "mismatch_count"),
                                    absolute_drift: A.integer(absolute_drift, "absolute_drift"),
                                    max_abs_delta: A.integer(max_abs_delta, "max_abs_delta"))
    end

    def replication_status = call("replication.status")

    def replication_entries(after_lsn:, limit: nil)
      call("replication.entries", after_lsn: A.u64(after_lsn, "after_lsn"), limit: A.opt_limit(limit))
    end

    def idempotency_prune(before:, limit: nil)
      call("idempotency.prune", before: A.timestamp(before, "before"), limit: A.opt_limit(limit))
    end

    def inspect
      "#<KarmaClient::Client #{@native_options[:url]}>"
    end

    private

    def counter_write(op, series, key, value, bucket, idempotency_key, fingerprint)
      call(op, series: A.string(series, "series"), key: A.u64(key, "key"), value: A.u64(value, "value"),
               bucket: A.opt_bucket(bucket, "bucket"), **idem(idempotency_key, fingerprint))
    end

    def idem(idempotency_key, fingerprint)
      { idempotency_key: A.opt_string(idempotency_key, "idempotency_key"), fingerprint: A.opt_string(fingerprint, "fingerprint") }
    end

    def native
      @native || @lock.synchronize do
        @native ||= translate_errors { Karma::Client.new(**@native_options) }
      end
    end

    def build_configuration(configuration, options)
      config = case configuration
               when nil then KarmaClient.configuration.dup
               when Configuration then configuration.dup
               when Hash then apply(KarmaClient.configuration.dup, configuration)
               else raise ConfigurationError, "expected a KarmaClient::Configuration or a Hash, got #{configuration.class}"
               end
      apply(config, options)
    end

    def apply(config, options)
      options.each do |name, value|
        setter = "#{name}="
        raise ConfigurationError, "unknown Karma client option #{name.inspect}" unless config.respond_to?(setter)

        config.public_send(setter, value)
      end
      config
    end

    # The native gem's exceptions as karma_client's classes.
    def translate_errors
      yield
    rescue Karma::ConnectionError => e
      raise ConnectionError.new(e.message, host: @configuration.host, port: @configuration.port)
    rescue Karma::TimeoutError => e
      raise PoolTimeout, e.message if e.kind == "pool_timeout"

      raise TimeoutError.new(e.message, host: @configuration.host, port: @configuration.port)
    rescue Karma::ProtocolError => e
      raise ProtocolError, e.message
    rescue Karma::ValidationError => e
      raise ConfigurationError, e.message if e.kind == "invalid"

      raise InputError, e.message
    rescue TypeError, ArgumentError => e
      raise InputError, e.message
    end

    # `request.karma_client` through the configured instrumenter, else
    # ActiveSupport::Notifications when it is loaded.
    def instrument(op, fields, &block)
      instrumenter = @configuration.instrumenter
      instrumenter ||= ActiveSupport::Notifications if defined?(ActiveSupport::Notifications)
      return yield unless instrumenter.respond_to?(:instrument)

      instrumenter.instrument("request.karma_client", operation: op, series: fields[:series], &block)
    end
  end
end
