# frozen_string_literal: true

module KarmaClient
  # karma_client's argument rules on top of Karma::Convert: Integers (or
  # Strings of digits, as Rails params arrive) for keys and values; dates
  # as Date, Time, "YYYY-MM-DD", "YYYYMMDD" or Integer YYYYMMDD. Anything
  # else raises InputError before a request is sent.
  module Arguments
    C = Karma::Convert
    private_constant :C

    module_function

    # Runs a Karma::Convert check, reporting its failure as InputError.
    def checked
      yield
    rescue Karma::ValidationError, TypeError, ArgumentError => e
      raise InputError, e.message
    end

    def string(value, what)
      s = value.to_s
      raise InputError, "#{what} is required" if s.empty?

      s
    end

    def opt_string(value, what)
      value.nil? ? nil : string(value, what)
    end

    def integer(value, what)
      return value if value.is_a?(Integer)
      return Integer(value, 10) if value.is_a?(String) && value.match?(/\A\d+\z/)

      raise InputError, "#{what} must be an integer, got #{value.inspect}"
    end

    def u64(value, what)
      v = integer(value, what)
      checked { C.u64(v, what) }
    end

    def opt_u64(value, what)
      value.nil? ? nil : u64(value, what)
    end

    def limit(value)
      v = integer(value, "limit")
      raise InputError, "limit must be greater than 0" unless v.positive?

      v
    end

    def opt_limit(value)
      value.nil? ? nil : limit(value)
    end

    def bucket(value, what)
      value = integer(value, what) if value.is_a?(String) && value.match?(/\A\d{8}\z/)
      checked { C.bucket(value, what) }
    end

    def opt_bucket(value, what)
      value.nil? ? nil : bucket(value, what)
    end

    def range(range, from, to, required: false)
      from = integer(from, "from") if from.is_a?(String) && from.match?(/\A\d{8}\z/)
      to = integer(to, "to") if to.is_a?(String) && to.match?(/\A\d{8}\z/)
      checked { C.range(range, from, to, required: required) }
    end

    def keys(keys)
      list = Array(keys)
      raise InputError, "keys must not be empty" if list.empty?

      list.each_with_index.map { |k, i| u64(k, "keys[#{i}]") }
    end

    # `[[key, bucket, value], ...]` or `[{key:, bucket:, value:}, ...]`.
    def items(items)
      list = Array(items)
      raise InputError, "items must not be empty" if list.empty?

      list.each_with_index.map do |item, i|
        name = "items[#{i}]"
        key, day, value = item.is_a?(Hash) ? fetch(item, %i[key bucket value], name) : item
        raise InputError, "#{name} must be [key, bucket, value]" unless item.is_a?(Hash) || (item.is_a?(Array) && item.size == 3)

        [u64(key, "#{name} key"), bucket(day, "#{name} bucket"), u64(value, "#{name} value")]
      end
    end

    # `[{series:, key:}, ...]` (or `[[series, key], ...]`).
    def series_keys(items)
      list = Array(items)
      raise InputError, "items must not be empty" if list.empty?

      list.each_with_index.map do |item, i|
        name = "items[#{i}]"
        series, key = item.is_a?(Hash) ? fetch(item, %i[series key], name) : item
        raise InputError, "#{name} must be {series:, key:}" unless item.is_a?(Hash) || (item.is_a?(Array) && item.size == 2)

        { series: string(series, "#{name} series"), key: u64(key, "#{name} key") }
      end
    end

    def timestamp(value, what)
      value = integer(value, what) if value.is_a?(String) && value.match?(/\A\d+\z/)
      checked { C.timestamp(value, what) }
    end

    def snapshot_file(file)
      name = string(file, "file")
      raise InputError, "file must be a file name, not a path" unless File.basename(name) == name
      raise InputError, "file must end with .tree" unless name.end_with?(".tree")

      name
    end

    def fetch(hash, names, what)
      checked { C.fetch_all(hash, names, what) }
    end
  end
end
