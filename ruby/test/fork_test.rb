# frozen_string_literal: true

require "test_helper"

class ForkTest < Minitest::Test
  def test_a_client_works_in_a_forked_child
    series = fresh_series("fork")
    client = Karma::Client.new(url: KarmaServer.shared.url)
    client.create_series(series)
    client.increment(series: series, key: 1, bucket: 20260501)
    pid = fork do
      client.increment(series: series, key: 1, bucket: 20260501, value: 2)
      exit!(client.sum(series: series, key: 1) == 3 ? 0 : 1)
    end
    _, status = Process.wait2(pid)
    assert status.success?, "the child could not use the inherited client"
    assert_equal 3, client.sum(series: series, key: 1)
  ensure
    client&.close
  end

  def test_an_inherited_engine_raises_a_clear_error_in_the_child
    Dir.mktmpdir do |dir|
      engine = Karma::Engine.new(dir)
      engine.create_series("s")
      reader, writer = IO.pipe
      pid = fork do
        reader.close
        begin
          engine.ping
          writer.write("no error")
        rescue Karma::ForkError => e
          writer.write("ForkError: #{e.message}")
        end
        writer.close
        exit!(0)
      end
      writer.close
      Process.wait(pid)
      message = reader.read
      assert_match(/\AForkError: .*open a new Engine in the child/, message)
      assert_equal "pong", engine.ping, "the parent's engine keeps working"
      engine.close
    end
  end
end
