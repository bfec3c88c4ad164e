# frozen_string_literal: true

require "digest"
require "karma"

module Karma
  # A Rack::Attack cache store on Karma:
  #
  #   Rack::Attack.cache.store = Karma::RackAttackStore.new(Karma::Client.new)
  #
  # (or an in-process Karma::Engine). Rack::Attack's string keys become
  # counters of one series of the store's own (key = 63 bits of the key's
  # SHA-256, stable across processes and restarts). Each counter lives
  # in the day bucket in which its entry expires, so:
  #
  # * `increment` is one `counter.consume` with an unreachable limit: an
  #   atomic add that answers the new total, so concurrent requests each see
  #   a distinct count (an increment then a sum could both see the last one);
  # * expired entries go with the retention op `series.delete_before`, run
  #   once per UTC day by this store (or by calling #cleanup).
  #
  # Rack::Attack's throttle keys carry their period number, so a key is never
  # counted again once its period is over. Keys that are written (Fail2Ban
  # and Allow2Ban bans) are reused: their expiry time is kept in a second
  # counter and #read ignores an entry past it.
  #
  # Like Rack::Attack's Redis proxy it fails open: when the server cannot be
  # reached (Karma::ConnectionError, Karma::TimeoutError) every method
  # answers nil, and Rack::Attack lets the request through.
  class RackAttackStore
    # The limit `increment` consumes against: never reached, so every add
    # is allowed (the protocol's integers stop at 2**63-1).
    NO_LIMIT = (2**63) - 1
    DAY = 86_400

    attr_reader :karma, :series

    # `karma` is a Karma::Engine or Karma::Client; `series` is created if
    # missing. `clock` answers the current Time (tests pass their own).
    def initialize(karma, series: "rack_attack", clock: -> { Time.now })
      @karma = karma
      @series = series.to_s
      @clock = clock
      @cleaned_day = nil
      @lock = Mutex.new
      @created = false
    end

    # Adds `amount` to `key`'s count and answers the new count.
    def increment(key, amount = 1, options = {})
      amount = Integer(amount)
      return read(key) if amount.zero?

      now = @clock.call.to_i
      failing_open do
        housekeeping(now)
        quota = @karma.consume(series: @series, key: counter(key), value: amount, limit: NO_LIMIT,
                               bucket: expiry_day(now, options[:expires_in]))
        quota.used
      end
    end

    # The count or written value of `key`; nil when absent or expired.
    def read(key, _options = nil)
      now = @clock.call.to_i
      failing_open do
        housekeeping(now)
        value, expires_at = @karma.batch_sum(series: @series, keys: [counter(key), expiry_counter(key)])
        value.zero? || (expires_at.positive? && expires_at <= now) ? nil : value
      end
    end

    # Sets `key` to the Integer `value`, for `expires_in` seconds if given.
    def write(key, value, options = {})
      value = Integer(value)
      raise ArgumentError, "Karma::RackAttackStore stores Integers from 0, got #{value}" if value.negative?

      now = @clock.call.to_i
      expires_in = options[:expires_in]
      failing_open do
        housekeeping(now)
        delete_counters(key)
        day = expiry_day(now, expires_in)
        items = []
        items << [counter(key), day, value] if value.positive?
        items << [expiry_counter(key), day, now + expires_in.to_i] if value.positive? && expires_in
        @karma.batch_set(series: @series, items: items) unless items.empty?
        true
      end
    end

    def delete(key, _options = nil)
      failing_open do
        delete_counters(key)
        true
      end
    end

    # Keys are stored hashed, so a pattern cannot be matched: this clears
    # every entry of the store's series (Rack::Attack.reset! calls it with
    # its own prefix, which every key of the store carries).
    def delete_matched(_matcher, _options = nil)
      failing_open do
        ensure_series
        @karma.reset(series: @series)
        true
      end
    end

    # Drops every entry that expired before today (UTC).
    def cleanup(now = @clock.call.to_i)
      failing_open do
        ensure_series
        @karma.delete_before(@series, before: day_of(now))
        @cleaned_day = day_of(now)
        true
      end
    end

    private

    # The counter of a Rack::Attack key: 63 bits of its SHA-256, since
    # the protocol's integers stop at 2**63-1.
    def counter(key)
      Digest::SHA256.digest(key.to_s).unpack1("Q>") >> 1
    end

    # The counter holding a written key's expiry time (unix seconds).
    def expiry_counter(key)
      Digest::SHA256.digest("expires_at\0#{key}").unpack1("Q>") >> 1
    end

    def delete_counters(key)
      ensure_series
      @karma.batch_reset(series: @series, keys: [counter(key), expiry_counter(key)])
    end

    # The bucket (YYYYMMDD, UTC) of the day the entry expires: the same for
    # every increment of one throttle period, since Rack::Attack's expires_in
    # counts down to the period's end.
    def expiry_day(now, expires_in)
      day_of(now + expires_in.to_i)
    end

    def day_of(unix)
      t = Time.at(unix).utc
      (t.year * 10_000) + (t.month * 100) + t.day
    end

    # Creates the series once, and cleans expired entries once per day.
    def housekeeping(now)
      ensure_series
      cleanup(now) unless @cleaned_day == day_of(now)
    end

    def ensure_series
      return if @created

      @lock.synchronize do
        next if @created

        @karma.create_series(@series) unless @karma.list_series.include?(@series)
        @created = true
      end
    end

    def failing_open
      yield
    rescue Karma::ConnectionError, Karma::TimeoutError
      nil
    end
  end
end
