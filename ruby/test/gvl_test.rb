# frozen_string_literal: true

require "test_helper"

# Four Ruby threads in a blocking Client call at once: a fake server in this
# process answers none of them until all four requests have arrived. That
# only happens if each call released the GVL while waiting (otherwise the
# server's threads could not run and the calls would time out).
class GvlTest < Minitest::Test
  PONG = %({"protocol_version":2,"success":true,"response":"pong","error_code":null}\n)

  def test_four_threads_overlap_in_blocking_calls
    server = TCPServer.new("127.0.0.1", 0)
    lock = Mutex.new
    all_arrived = ConditionVariable.new
    waiting = 0
    most_waiting = 0
    acceptor = Thread.new do
      4.times.map do
        socket = server.accept
        Thread.new do
          socket.gets
          lock.synchronize do
            waiting += 1
            most_waiting = [most_waiting, waiting].max
            all_arrived.broadcast if waiting == 4
            all_arrived.wait(lock, 10) while waiting < 4
          end
          socket.write(PONG)
          socket.gets # keep the connection open until the client closes it
          socket.close
        end
      end
    end
    client = Karma::Client.new(url: "karma://127.0.0.1:#{server.addr[1]}", pool_size: 4, read_timeout: 10)
    answers = 4.times.map { Thread.new { client.ping } }.map(&:value)
    assert_equal ["pong"] * 4, answers
    assert_equal 4, most_waiting, "the four calls were not in flight at the same time"
  ensure
    client&.close
    server&.close
    acceptor&.kill
  end
end
