# Job classes and configuration for tests/ruby/sidekiq.rb: loaded by the driver (to enqueue)
# and by the `sidekiq -r` worker process it starts (to run). REDIS_URL names the server.
require "sidekiq"

REDIS_URL = ENV.fetch("REDIS_URL")
# Sidekiq 6.4 calls SADD the redis-rb 4.8 way that warns about 5.0 on every push.
Redis.sadd_returns_boolean = false if Redis.respond_to?(:sadd_returns_boolean=)

Sidekiq.configure_client { |config| config.redis = {url: REDIS_URL} }
Sidekiq.configure_server do |config|
  config.redis = {url: REDIS_URL}
  # Poll the schedule and retry sets every ~1 s, and skip the 10 s start-up wait.
  Sidekiq.options[:poll_interval_average] = 1
end

# Records n² under its argument, so the driver can check every job ran once, with its args.
class SquareJob
  include Sidekiq::Worker

  def perform(n)
    Sidekiq.redis { |r| r.hset("sq:results", n.to_s, (n * n).to_s) }
  end
end

# Fails on its first attempt, succeeds on the retry Sidekiq schedules for it.
class FlakyJob
  include Sidekiq::Worker
  sidekiq_options retry: 3
  sidekiq_retry_in { |_count, _exception| 1 }

  def perform(name)
    tries = Sidekiq.redis { |r| r.incr("sq:tries:#{name}") }
    raise "failing the first attempt on purpose" if tries == 1
    Sidekiq.redis { |r| r.set("sq:done:#{name}", tries) }
  end
end

# Used by the kill -9 test: marks its job id done.
class DurableJob
  include Sidekiq::Worker

  def perform(id, payload)
    raise "payload of #{id} damaged" unless payload == "x" * (id.split("-")[1].to_i % 300)
    Sidekiq.redis { |r| r.sadd("sq:durable:done", id) }
  end
end
