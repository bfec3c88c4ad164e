# frozen_string_literal: true

require "test_helper"

# The typed increment of an engine without a WAL runs with the GVL held and
# borrows the series name: it must still refuse what the other path refuses.
class FastPathTest < Minitest::Test
  def test_in_memory_increments_count_from_several_threads
    engine = Karma::Engine.new
    engine.create_series("s")
    Array.new(4) { |t| Thread.new { 1000.times { engine.increment(series: "s", key: t, bucket: 20260501) } } }.each(&:join)
    assert_equal [1000] * 4, engine.batch_sum(series: "s", keys: [0, 1, 2, 3])
    assert_equal 3, engine.decrement(series: "s", key: 0, bucket: 20260501, value: 3)
    assert_equal 997, engine.sum(series: "s", key: 0)
  ensure
    engine&.close
  end

  def test_in_memory_increment_checks_its_arguments
    engine = Karma::Engine.new(nil, wal: false)
    engine.create_series("s")
    assert_raises(Karma::ValidationError) { engine.increment(series: "s", key: -1, bucket: 20260501) }
    assert_raises(TypeError) { engine.increment(series: "s", key: 1.5) }
    assert_raises(EncodingError) { engine.increment(series: "\xff".b, key: 1) }
    assert_equal 1, engine.increment(series: :s, key: 1, bucket: 20260501) # a Symbol takes the general path
    engine.close
    assert_raises(Karma::ClosedError) { engine.increment(series: "s", key: 1) }
  end

  def test_in_memory_engine_in_a_forked_child_raises_fork_error
    engine = Karma::Engine.new
    engine.create_series("s")
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      begin
        engine.increment(series: "s", key: 1)
        writer.write("no error")
      rescue Karma::ForkError
        writer.write("ForkError")
      end
      writer.close
      exit!(0)
    end
    writer.close
    Process.wait(pid)
    assert_equal "ForkError", reader.read
    assert_equal 1, engine.increment(series: "s", key: 1, bucket: 20260501)
  ensure
    engine&.close
  end
end
