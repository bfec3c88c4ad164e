# frozen_string_literal: true

require "minitest/autorun"
require "fileutils"
require "socket"
require "tmpdir"
require "karma"

REPO = File.expand_path("../..", __dir__)

# A `karma` process on a free port with its own data directory (stopped at exit).
class KarmaServer
  attr_reader :port, :directory

  def self.binary
    ENV.fetch("KARMA_SERVER_BIN", File.join(REPO, "target", "debug", "karma"))
  end

  def self.shared
    @shared ||= new.start.tap { |s| at_exit { s.stop } }
  end

  # `extra` flags, plus those the block returns for the chosen port (a
  # cluster node advertises its own address).
  def initialize(*extra, &flags_for_port)
    @extra = extra
    @directory = Dir.mktmpdir("karma-ruby-server")
    server = TCPServer.new("127.0.0.1", 0)
    @port = server.addr[1]
    server.close
    @extra += flags_for_port.call(@port) if flags_for_port
  end

  def url
    "karma://127.0.0.1:#{@port}"
  end

  def start
    env = ENV.keys.grep(/\AKARMA_/).to_h { |k| [k, nil] }
    @pid = Process.spawn(env, self.class.binary, "--bind=127.0.0.1", "--port=#{@port}", "--directory=#{@directory}",
                         "--log=false", "--wal-fsync=false", *@extra, in: File::NULL, out: File::NULL)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    loop do
      raise "karma exited before accepting" if Process.waitpid(@pid, Process::WNOHANG)

      begin
        TCPSocket.new("127.0.0.1", @port).close
        return self
      rescue SystemCallError
        raise "karma did not accept on port #{@port} within 30 s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.02
      end
    end
  end

  def stop
    return unless @pid

    Process.kill("TERM", @pid)
    Process.waitpid(@pid)
    @pid = nil
    FileUtils.rm_rf(@directory)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
end

# A series name no other test uses (tests share the server).
module SeriesNames
  @seq = 0
  def self.fresh(prefix)
    @seq += 1
    "#{prefix}_#{Process.pid}_#{@seq}_#{rand(1 << 30)}"
  end
end

def fresh_series(prefix = "s")
  SeriesNames.fresh(prefix)
end
