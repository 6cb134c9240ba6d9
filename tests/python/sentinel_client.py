"""redis-py's Sentinel client against Strongbox servers watched by real Sentinels
(driven by tests/sentinel.rs, which kills the master between the phases).

    sentinel_client.py --sentinels P1,P2,P3 --phase write --first 0 --count 200
    sentinel_client.py --sentinels P1,P2,P3 --phase check --count 200

write: through Sentinel.master_for, SET key:<i> for i in [first, first+count), each
acknowledged only once a replica has it too (WAIT 1); prints the master's port.
check: through a fresh Sentinel client (it asks the sentinels who the master is now), every
key of [0, count) must be there with its value; a read through slave_for works too."""
import argparse
import time

import redis
from redis.sentinel import Sentinel

ap = argparse.ArgumentParser()
ap.add_argument("--sentinels", required=True)
ap.add_argument("--phase", choices=["write", "check"], required=True)
ap.add_argument("--first", type=int, default=0)
ap.add_argument("--count", type=int, required=True)
a = ap.parse_args()

sentinel = Sentinel([("127.0.0.1", int(p)) for p in a.sentinels.split(",")], socket_timeout=5)
master = sentinel.master_for("mymaster", socket_timeout=5)

if a.phase == "write":
    # Writes during a failover fail until the client finds the new master: retry each one
    # (a write that got no reply may or may not have happened; SET is idempotent).
    deadline = time.time() + 60
    for i in range(a.first, a.first + a.count):
        while True:
            try:
                master.set(f"key:{i}", f"value:{i}")
                acked = master.execute_command("WAIT", 1, 5000)
                if acked >= 1:
                    break
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
                pass
            assert time.time() < deadline, f"key:{i} never acknowledged by a replica"
            time.sleep(0.05)
    host, port = sentinel.discover_master("mymaster")
    print(f"master {port}")
else:
    missing = [i for i in range(a.count) if master.get(f"key:{i}") != f"value:{i}".encode()]
    assert not missing, f"{len(missing)} acknowledged keys lost, first {missing[:10]}"
    # A replica being reconfigured after the failover may still be syncing: give it time.
    replica = sentinel.slave_for("mymaster", socket_timeout=5)
    deadline = time.time() + 30
    while True:
        try:
            if replica.get(f"key:{a.count - 1}") == f"value:{a.count - 1}".encode():
                break
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        assert time.time() < deadline, "no replica serves the data"
        time.sleep(0.1)
    host, port = sentinel.discover_master("mymaster")
    print(f"master {port}")
print("ok: sentinel_client", a.phase)
