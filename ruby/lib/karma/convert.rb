# frozen_string_literal: true

require "date"
require "time"

module Karma
  # Ruby arguments to protocol values: u64 Integers, day buckets
  # (YYYYMMDD Integers) and ranges.
  module Convert
    U64_MAX = (2**64) - 1
    DAY = /\A(\d{4})-?(\d{2})-?(\d{2})\z/

    module_function

    def u64(value, what)
      raise TypeError, "#{what} must be an Integer, got #{value.class}" unless value.is_a?(Integer)
      unless value.between?(0, U64_MAX)
        raise ValidationError.new("#{what} must be an Integer from 0 to 2**64-1 (#{U64_MAX}), got #{value}", kind: "argument")
      end

      value
    end

    def opt_u64(value, what)
      value.nil? ? nil : u64(value, what)
    end

    def limit(value, what = "limit")
      value.nil? ? nil : u64(value, what)
    end

    # Integer YYYYMMDD, Date, DateTime (its UTC day), Time (its UTC day) or
    # a "YYYY-MM-DD" / "YYYYMMDD" String.
    def bucket(value, what)
      case value
      when Integer then u64(value, what)
      when DateTime then ymd(value.new_offset(0))
      when Date then ymd(value)
      when Time then ymd(value.getutc)
      when String
        m = DAY.match(value)
        unless m && Date.valid_date?(m[1].to_i, m[2].to_i, m[3].to_i)
          raise ValidationError.new("#{what} must be a date YYYY-MM-DD or YYYYMMDD, got #{value.inspect}", kind: "argument")
        end

        (m[1].to_i * 10_000) + (m[2].to_i * 100) + m[3].to_i
      else
        raise TypeError, "#{what} must be a Date, Time, DateTime, \"YYYY-MM-DD\" String or Integer YYYYMMDD, got #{value.class}"
      end
    end

    def opt_bucket(value, what)
      value.nil? ? nil : bucket(value, what)
    end

    def ymd(d)
      (d.year * 10_000) + (d.month * 100) + d.day
    end

    # `range:` (a Range of dates, `[from, to]` or `{from:, to:}`) or
    # `from:`/`to:`; nil when neither is given and the range is optional.
    def range(range, from, to, required: false)
      if range
        raise ArgumentError, "give range: or from:/to:, not both" if from || to

        case range
        when Range
          raise ValidationError.new("ranges must include their end (use a..b)", kind: "argument") if range.exclude_end?

          from = range.begin
          to = range.end
        when Array
          raise ArgumentError, "range must be [from, to]" unless range.size == 2

          from, to = range
        when Hash
          from = range[:from] || range["from"]
          to = range[:to] || range["to"]
        else
          raise TypeError, "range must be a Range, [from, to] or {from:, to:}, got #{range.class}"
        end
      end
      if from.nil? && to.nil?
        raise ArgumentError, "a range is required (range: or from:/to:)" if required

        return nil
      end
      raise ArgumentError, "both from: and to: are required" if from.nil? || to.nil?

      { from: bucket(from, "range from"), to: bucket(to, "range to") }
    end

    def keys(keys, what = "keys")
      Array(keys).each_with_index.map { |k, i| u64(k, "#{what}[#{i}]") }
    end

    # `[[key, bucket, value], ...]` or `[{key:, bucket:, value:}, ...]`.
    def items(items, what = "items")
      Array(items).each_with_index.map do |item, i|
        name = "#{what}[#{i}]"
        key, bkt, value = item.is_a?(Hash) ? fetch_all(item, %i[key bucket value], name) : item
        raise ArgumentError, "#{name} must be [key, bucket, value]" unless item.is_a?(Hash) || item.is_a?(Array) && item.size == 3

        [u64(key, "#{name} key"), bucket(bkt, "#{name} bucket"), u64(value, "#{name} value")]
      end
    end

    # `[[series, key], ...]` or `[{series:, key:}, ...]`.
    def series_keys(items, what = "items")
      Array(items).each_with_index.map do |item, i|
        name = "#{what}[#{i}]"
        series, key = item.is_a?(Hash) ? fetch_all(item, %i[series key], name) : item
        raise ArgumentError, "#{name} must be [series, key]" unless item.is_a?(Hash) || item.is_a?(Array) && item.size == 2

        { series: series.to_s, key: u64(key, "#{name} key") }
      end
    end

    def fetch_all(hash, names, what)
      names.map do |n|
        next hash[n] if hash.key?(n)
        next hash[n.to_s] if hash.key?(n.to_s)

        raise ArgumentError, "#{what} needs #{n}:"
      end
    end

    # `idempotency.prune`'s before: Integer unix seconds, Time, Date (its
    # midnight UTC) or an RFC 3339 String.
    def timestamp(value, what)
      case value
      when Integer then u64(value, what)
      when Time then value.getutc.iso8601
      when DateTime then value.new_offset(0).iso8601
      when Date then Time.utc(value.year, value.month, value.day).iso8601
      when String then value
      else raise TypeError, "#{what} must be an Integer, Time, Date or String, got #{value.class}"
      end
    end

    # `request(op, **fields)`: dates become buckets, the rest is sent as is.
    def fields(fields)
      fields.transform_values { |v| field(v) }
    end

    def field(value)
      case value
      when Date, Time then bucket(value, "field")
      when Array then value.map { |v| field(v) }
      when Hash then value.transform_values { |v| field(v) }
      else value
      end
    end
  end
end
