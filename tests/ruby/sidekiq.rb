# Sidekiq (Debian's ruby-sidekiq 6.4 on redis-rb 4.8) against the server under test:
#   ruby sidekiq.rb --port P                      jobs, a scheduled job and a retried one run
#                                                 by a real `sidekiq` worker process
#   ruby sidekiq.rb --port P --phase enqueue --n N   enqueue N jobs, print their ids
#   ruby sidekiq.rb --port P --phase work --n N      run a worker until N jobs are done,
#                                                    print the ids done
# (the last two are tests/clients.rs's kill -9 test, run around a kill -9 of the server).
require "optparse"
require "timeout"

opts = {phase: "run", n: 0}
OptionParser.new do |o|
  o.on("--port P", Integer) { |v| opts[:port] = v }
  o.on("--phase PHASE", String) { |v| opts[:phase] = v }
  o.on("--n N", Integer) { |v| opts[:n] = v }
end.parse!
raise "--port is required" unless opts[:port]

ENV["REDIS_URL"] = "redis://127.0.0.1:#{opts[:port]}/0"
JOBS = File.expand_path("sidekiq_jobs.rb", __dir__)
require JOBS
require "sidekiq/api"

def check(cond, what)
  raise "check failed: #{what}" unless cond
end

# Runs a `sidekiq` worker process while the block polls; stops it with TERM (Sidekiq's
# graceful shutdown) and returns its log if the block fails.
def with_worker
  log = File.join(Dir.tmpdir, "sidekiq-#{Process.pid}.log")
  pid = spawn("sidekiq", "-r", JOBS, "-c", "3", "-t", "5", "-q", "default",
    [:out, :err] => log)
  begin
    yield
  rescue StandardError, Timeout::Error
    warn "--- sidekiq log ---\n#{File.exist?(log) ? File.read(log) : "(none)"}"
    raise
  ensure
    Process.kill("TERM", pid)
    Timeout.timeout(30) { Process.wait(pid) }
    File.delete(log) if File.exist?(log)
  end
end

def wait_until(what, seconds = 60)
  deadline = Time.now + seconds
  until yield
    raise Timeout::Error, "timed out waiting for #{what}" if Time.now > deadline
    sleep 0.1
  end
end

require "tmpdir"

case opts[:phase]
when "run"
  Sidekiq.redis(&:flushdb)
  # Jobs pushed one by one and in bulk, a scheduled one, and one that fails once.
  (1..5).each { |n| SquareJob.perform_async(n) }
  Sidekiq::Client.push_bulk("class" => SquareJob, "args" => (6..20).map { |n| [n] })
  SquareJob.perform_in(2, 100)
  FlakyJob.perform_async("flaky")
  check(Sidekiq::Queue.new("default").size == 21, "21 jobs queued")
  check(Sidekiq::ScheduledSet.new.size == 1, "1 job scheduled")
  with_worker do
    wait_until("all jobs done") do
      Sidekiq.redis { |r| r.hlen("sq:results") == 21 && r.exists?("sq:done:flaky") }
    end
    results = Sidekiq.redis { |r| r.hgetall("sq:results") }
    expected = ((1..20).to_a + [100]).to_h { |n| [n.to_s, (n * n).to_s] }
    check(results == expected, "results #{results.inspect}")
    check(Sidekiq.redis { |r| r.get("sq:done:flaky") } == "2", "flaky job retried once")
    wait_until("the stats to settle") do
      Sidekiq::Stats.new.processed >= 23 && Sidekiq::Stats.new.failed >= 1
    end
    stats = Sidekiq::Stats.new
    check(stats.failed == 1, "1 failure counted, got #{stats.failed}")
    check(stats.enqueued == 0 && stats.scheduled_size == 0 && stats.retry_size == 0,
      "queues, schedule and retries empty: #{stats.enqueued}/#{stats.scheduled_size}/#{stats.retry_size}")
    check(Sidekiq::ProcessSet.new.size == 1, "the worker's heartbeat is visible")
  end
  puts "sidekiq: 20 jobs, 1 scheduled, 1 retried: ok"
when "enqueue"
  Sidekiq.redis(&:flushdb)
  opts[:n].times do |i|
    id = "job-#{i}"
    DurableJob.perform_async(id, "x" * (i % 300))
    puts id
    $stdout.flush
  end
when "work"
  # Until every job is done, or the queue is empty and nothing more got done for 2 s (jobs
  # lost: the ids printed then fall short of those enqueued).
  with_worker do
    last, since = -1, Time.now
    wait_until("#{opts[:n]} jobs done", 120) do
      done = Sidekiq.redis { |r| r.scard("sq:durable:done") }
      last, since = done, Time.now if done != last
      done >= opts[:n] || (Sidekiq::Queue.new("default").size == 0 && Time.now - since > 2)
    end
  end
  puts Sidekiq.redis { |r| r.smembers("sq:durable:done") }.sort
else
  raise "unknown phase #{opts[:phase]}"
end
