#!/usr/bin/env python3
"""Strongbox vs redis-server (vs valkey-server) benchmark harness (issue 7).

One run starts every server under test with the same persistence settings, on free loopback
ports (never 6379), in fresh temporary directories, and measures:

  throughput  redis-benchmark -c 50 -t set,get,incr,lpush,hset,zadd, -P 1 and -P 16, under
              appendfsync everysec and always; plus the default suite once (everysec)
  latency     p50/p99/p99.9/max of an open-loop paced client at a fixed request rate
  memory      RSS and used_memory after loading 1M small strings, 1M-element list/hash/set/zset
  startup     time from process start until PING answers PONG (not -LOADING) with 1M keys,
              from a plain AOF, from an RDB-preamble AOF base, and from dump.rdb
  compaction  BGREWRITEAOF duration, a concurrent client's latency during it, peak extra RSS,
              under a fixed write load

Usage:
  bench/run.py                                  everything, full size, writes docs/benchmarks.md
  bench/run.py --quick                          scaled down (smoke test, ~2 minutes)
  bench/run.py --only throughput,memory         some sections only (others kept in the doc)
  bench/run.py --strongbox-bin /usr/bin/redis-server   prove the harness: redis on both sides
  bench/run.py --big                            also time-to-serving with 10M keys

Only the Python standard library is used (no redis-py needed). Benchmarks are never part of
`cargo test`.
"""

import argparse
import gc
import datetime
import hashlib
import json
import os
import platform
import random
import re
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ["throughput", "latency", "memory", "startup", "compaction"]
FORBIDDEN_PORT = 6379

# Sizes: (full, quick)
SIZES = {
    "tp_requests": (100_000, 5_000),
    "suite_requests": (100_000, 5_000),
    "elements": (1_000_000, 100_000),
    "startup_keys": (1_000_000, 100_000),
    "compaction_keys": (1_000_000, 100_000),
    "latency_seconds": (10.0, 3.0),
    "latency_rate": (2_000, 1_000),
    "load_rate": (5_000, 3_000),
    "probe_rate": (2_000, 2_000),
    "rewrites": (5, 3),
}
BIG_STARTUP_KEYS = 10_000_000
TP_TESTS = ["set", "get", "incr", "lpush", "hset", "zadd"]
SERVER_START_TIMEOUT_S = 600.0
SHUTDOWN_TIMEOUT_S = 120.0


def log(*a):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# RESP helpers (stdlib only)


def resp_cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Incomplete(Exception):
    pass


def parse_reply(buf, pos=0):
    """Parse one RESP2/RESP3 reply from buf at pos. Returns (value, newpos).
    Errors are returned as RespError instances. Raises Incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete()
    t = buf[pos : pos + 1]
    line = buf[pos + 1 : end]
    nxt = end + 2
    if t == b"+":
        return line.decode(errors="replace"), nxt
    if t == b"-":
        return RespError(line.decode(errors="replace")), nxt
    if t == b":":
        return int(line), nxt
    if t == b"$":
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise Incomplete()
        return bytes(buf[nxt : nxt + n]), nxt + n + 2
    if t in (b"*", b"~", b">"):
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        p = nxt
        for _ in range(n):
            v, p = parse_reply(buf, p)
            items.append(v)
        return items, p
    if t == b"%":
        n = int(line)
        items = []
        p = nxt
        for _ in range(2 * n):
            v, p = parse_reply(buf, p)
            items.append(v)
        return items, p
    if t == b"_":
        return None, nxt
    if t in (b",", b"#", b"("):
        return line.decode(), nxt
    raise ValueError("bad RESP type byte %r at %d" % (t, pos))


class RespError(str):
    pass


class Conn:
    """Minimal blocking RESP client."""

    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def call(self, *args):
        self.sock.sendall(resp_cmd(*args))
        return self.read_reply()

    def read_reply(self):
        while True:
            try:
                v, p = parse_reply(self.buf, 0)
                del self.buf[:p]
                return v
            except Incomplete:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def info_dict(port, section=None):
    c = Conn(port)
    try:
        r = c.call("INFO", section) if section else c.call("INFO")
    finally:
        c.close()
    if isinstance(r, RespError):
        raise RuntimeError("INFO: %s" % r)
    d = {}
    for line in r.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            d[k.strip()] = v.strip()
    return d


# ----------------------------------------------------------------------------------------------
# /proc helpers


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def private_dirty_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def children_of(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    kids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def free_port():
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p != FORBIDDEN_PORT:
            return p
    raise RuntimeError("no free port")


# ----------------------------------------------------------------------------------------------
# Servers


class Target:
    """One column of the results: a named server binary."""

    def __init__(self, name, binary, kind):
        self.name = name  # column label
        self.binary = binary
        self.kind = kind  # "redis" | "strongbox" | "valkey"

    def version(self):
        try:
            out = subprocess.run(
                [self.binary, "--version"], capture_output=True, text=True, timeout=10
            )
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except Exception as e:  # noqa: BLE001 - report whatever went wrong
            return "unknown (%s)" % e


class ServerError(RuntimeError):
    pass


class Server:
    def __init__(self, target, workdir, opts, port=None):
        self.target = target
        self.dir = workdir
        self.opts = dict(opts)
        self.port = port or free_port()
        self.proc = None
        self.start_t = None
        self.ready_s = None
        self.logpath = os.path.join(self.dir, "server.log")

    def argv(self):
        a = [self.target.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        a += ["--logfile", self.logpath]
        for k, v in self.opts.items():
            a += ["--" + k, str(v)]
        return a

    def start(self, wait=True):
        os.makedirs(self.dir, exist_ok=True)
        self.start_t = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=open(self.logpath + ".stderr", "w"),
            cwd=self.dir, start_new_session=True,
        )
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log_tail(self, n=15):
        out = []
        for p in (self.logpath, self.logpath + ".stderr"):
            try:
                with open(p, errors="replace") as f:
                    out += f.read().splitlines()[-n:]
            except OSError:
                pass
        return "\n".join(out[-n:])

    def wait_ready(self, timeout=SERVER_START_TIMEOUT_S):
        """Poll PING until +PONG (not -LOADING). Returns seconds since process start."""
        deadline = self.start_t + timeout
        ping = resp_cmd("PING")
        while True:
            if self.proc.poll() is not None:
                raise ServerError(
                    "%s exited with %s during start:\n%s"
                    % (self.target.name, self.proc.returncode, self.log_tail())
                )
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                try:
                    s.sendall(ping)
                    data = b""
                    while b"\r\n" not in data:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                finally:
                    s.close()
                if data.startswith(b"+PONG"):
                    self.ready_s = time.perf_counter() - self.start_t
                    return self.ready_s
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise ServerError("%s not ready after %.0fs" % (self.target.name, timeout))
            time.sleep(0.002)

    def call(self, *args):
        c = Conn(self.port, timeout=600)
        try:
            return c.call(*args)
        finally:
            c.close()

    def info(self, section=None):
        return info_dict(self.port, section)

    def rss_kb(self):
        return rss_kb(self.pid)

    def stop(self, graceful=True):
        if self.proc is None or self.proc.poll() is not None:
            return
        if graceful:
            try:
                c = Conn(self.port, timeout=SHUTDOWN_TIMEOUT_S)
                c.sock.sendall(resp_cmd("SHUTDOWN", "NOSAVE"))
                try:
                    c.sock.recv(4096)
                except OSError:
                    pass
                c.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
                return
            except subprocess.TimeoutExpired:
                log("%s did not exit after SHUTDOWN; SIGTERM" % self.target.name)
        self.kill()

    def kill(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                pass


LIVE_SERVERS = []


def make_server(ctx, target, tag, opts):
    d = tempfile.mkdtemp(prefix="%s-%s-" % (target.name, tag), dir=ctx.tmp)
    s = Server(target, d, opts)
    LIVE_SERVERS.append(s)
    return s


def persistence_opts(appendonly, fsync="everysec", preamble=None):
    o = {"save": "", "appendonly": "yes" if appendonly else "no", "appendfsync": fsync}
    if preamble is not None:
        o["aof-use-rdb-preamble"] = "yes" if preamble else "no"
    return o


def cleanup_dir(s):
    shutil.rmtree(s.dir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Data generation (RESP files for redis-cli --pipe)

BATCH = 1000


def gen_file(ctx, kind, n):
    path = os.path.join(ctx.tmp, "data-%s-%d.resp" % (kind, n))
    if os.path.exists(path):
        return path
    log("generating %s (%d)" % (os.path.basename(path), n))
    with open(path, "wb") as f:
        if kind == "strings":
            # SET key:NNNNNNN val:NNNNNNN (11-byte key, 11-byte value)
            for i in range(0, n):
                k = b"key:%07d" % i
                v = b"val:%07d" % i
                f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
        else:
            for start in range(0, n, BATCH):
                end = min(n, start + BATCH)
                if kind == "list":
                    args = [b"RPUSH", b"biglist"] + [b"elem:%07d" % i for i in range(start, end)]
                elif kind == "hash":
                    args = [b"HSET", b"bighash"]
                    for i in range(start, end):
                        args += [b"field:%07d" % i, b"v%07d" % i]
                elif kind == "set":
                    args = [b"SADD", b"bigset"] + [b"member:%07d" % i for i in range(start, end)]
                elif kind == "zset":
                    args = [b"ZADD", b"bigzset"]
                    for i in range(start, end):
                        args += [b"%d" % i, b"member:%07d" % i]
                else:
                    raise ValueError(kind)
                f.write(resp_cmd(*args))
    return path


def pipe_load(server, path):
    """redis-cli --pipe; returns (seconds, errors, replies). Raises on failure."""
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        r = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--pipe"],
            stdin=f, capture_output=True, text=True, timeout=3600,
        )
    dt = time.perf_counter() - t0
    out = r.stdout + r.stderr
    m = re.search(r"errors:\s*(\d+),\s*replies:\s*(\d+)", out)
    if r.returncode != 0 or not m:
        raise ServerError("redis-cli --pipe failed (rc=%d): %s" % (r.returncode, out.strip()[-400:]))
    errors, replies = int(m.group(1)), int(m.group(2))
    if errors:
        raise ServerError("redis-cli --pipe: %d errors of %d replies: %s" % (errors, replies, out.strip()[-400:]))
    return dt, errors, replies


# ----------------------------------------------------------------------------------------------
# Open-loop paced client


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def lat_summary(lat_ms):
    s = sorted(lat_ms)
    return {
        "count": len(s),
        "p50_ms": percentile(s, 50),
        "p99_ms": percentile(s, 99),
        "p999_ms": percentile(s, 99.9),
        "max_ms": s[-1] if s else float("nan"),
    }


def paced_client(port, rate, seconds, conns=4, keyspace=100_000, write_ratio=0.5, seed=1,
                 stop_event=None, origin=None):
    """Open-loop client: requests are *scheduled* at a fixed rate, round-robin over `conns`
    connections, and sent at their scheduled time even if earlier replies are outstanding
    (pipelined on the connection). Latency = reply time - scheduled time, so a stalled server
    cannot hide its stall (no coordinated omission). Returns a list of
    (scheduled_offset_s, latency_ms, ok) and the achieved send rate.

    Python's cyclic garbage collector is off meanwhile: its full collections walk every object
    of this process and pause this thread for milliseconds, which would be charged to the
    server (the measuring process itself then stalls, not the server)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _paced_client(port, rate, seconds, conns, keyspace, write_ratio, seed, stop_event,
                             origin)
    finally:
        if gc_was_enabled:
            gc.enable()


def _paced_client(port, rate, seconds, conns, keyspace, write_ratio, seed, stop_event,
                  origin=None):
    rng = random.Random(seed)
    socks = []
    sel = selectors.DefaultSelector()
    for i in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append({"sock": s, "buf": bytearray(), "pending": [], "out": bytearray()})
        sel.register(s, selectors.EVENT_READ, i)
    interval = 1.0 / rate
    total = int(rate * seconds)
    results = []
    t0 = time.perf_counter()
    if origin is not None:
        origin.append(t0)
    sent = 0
    deadline = t0 + seconds + 30.0
    outstanding = 0
    while True:
        now = time.perf_counter()
        if stop_event is not None and stop_event.is_set() and sent < total:
            total = sent
        # send everything due
        while sent < total and t0 + sent * interval <= now:
            c = socks[sent % conns]
            key = b"key:%07d" % rng.randrange(keyspace)
            if rng.random() < write_ratio:
                req = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$8\r\nabcdefgh\r\n" % (len(key), key)
            else:
                req = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
            c["out"] += req
            c["pending"].append(sent * interval)
            sent += 1
            outstanding += 1
        for c in socks:
            if c["out"]:
                try:
                    n = c["sock"].send(c["out"])
                    del c["out"][:n]
                except BlockingIOError:
                    pass
        if sent >= total and outstanding == 0:
            break
        if now > deadline:
            break
        next_t = t0 + sent * interval if sent < total else now + 0.01
        timeout = max(0.0, min(next_t - time.perf_counter(), 0.01))
        for key_, _ in sel.select(timeout):
            c = socks[key_.data]
            try:
                chunk = c["sock"].recv(1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionError("server closed a paced connection")
            c["buf"] += chunk
            recv_t = time.perf_counter() - t0
            pos = 0
            while True:
                try:
                    v, pos2 = parse_reply(c["buf"], pos)
                except Incomplete:
                    break
                pos = pos2
                sched = c["pending"].pop(0)
                outstanding -= 1
                results.append((sched, (recv_t - sched) * 1000.0, not isinstance(v, RespError)))
            del c["buf"][:pos]
    elapsed = time.perf_counter() - t0
    for c in socks:
        c["sock"].close()
    sel.close()
    lost = outstanding
    return results, sent / max(elapsed, 1e-9), lost


def probe_worker_main(argv):
    """Hidden mode: the compaction section's paced probe in a process of its own, so that no
    other thread of the measuring process (INFO polling, RSS sampling) can hold the GIL while a
    reply waits to be timed (a thread waits up to the 5 ms switch interval for it). Runs until
    SIGTERM (or `seconds`), then prints its samples as JSON, with its time origin on the
    system-wide monotonic clock (time.perf_counter)."""
    port, rate, seconds, keyspace = int(argv[0]), int(argv[1]), float(argv[2]), int(argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    origin = []
    samples, achieved, lost = paced_client(port, rate, seconds, conns=1, keyspace=keyspace,
                                           write_ratio=0.5, seed=3, stop_event=stop,
                                           origin=origin)
    print(json.dumps({"origin": origin[0] if origin else None, "samples": samples,
                      "achieved": achieved, "lost": lost}))


def load_worker_main(argv):
    """Hidden mode: fixed-rate write load (batched SETs every millisecond) for the compaction
    section, run as a separate process so it does not share the measuring client's GIL."""
    port, rate, seconds, keyspace = int(argv[0]), int(argv[1]), float(argv[2]), int(argv[3])
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    rng = random.Random(7)
    tick = 0.002
    t0 = time.perf_counter()
    sent = 0
    replies = 0
    errors = 0
    pending = bytearray()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        now = time.perf_counter()
        elapsed = now - t0
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        out = []
        while sent < due:
            k = b"key:%07d" % rng.randrange(keyspace)
            out.append(b"*3\r\n$3\r\nSET\r\n$11\r\n%s\r\n$8\r\nloadload\r\n" % k)
            sent += 1
        if out:
            pending += b"".join(out)
        if pending:
            try:
                n = s.send(pending)
                del pending[:n]
            except BlockingIOError:
                pass
        try:
            while True:
                data = s.recv(1 << 16)
                if not data:
                    raise ConnectionError("closed")
                replies += data.count(b"\r\n")
                errors += data.count(b"-")
        except BlockingIOError:
            pass
        time.sleep(tick)
    s.setblocking(True)
    s.settimeout(30)
    if pending:
        s.sendall(pending)
    try:
        while replies < sent:
            data = s.recv(1 << 16)
            if not data:
                break
            replies += data.count(b"\r\n")
            errors += data.count(b"-")
    except OSError:
        pass
    print(json.dumps({"sent": sent, "replies": replies, "errors": errors,
                      "rate": sent / max(time.perf_counter() - t0, 1e-9)}))


# ----------------------------------------------------------------------------------------------
# Context and results


class Ctx:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.tmp = tempfile.mkdtemp(prefix="strongbox-bench-", dir=args.tmpdir)
        self.targets = []
        self.results = {}
        self.failures = []

    def size(self, name):
        full, quick = SIZES[name]
        return quick if self.quick else full

    def fail(self, section, target, what, err):
        msg = "%s / %s / %s: %s" % (section, target.name, what, str(err).strip().replace("\n", " | ")[:600])
        log("FAILED " + msg)
        self.failures.append(msg)


def ratio(a, b):
    try:
        if a is None or b is None or b == 0:
            return None
        return a / b
    except TypeError:
        return None


# ----------------------------------------------------------------------------------------------
# Section 1: throughput


def parse_bench_csv(text):
    rows = {}
    for line in text.splitlines():
        if not line.startswith('"') or line.startswith('"test"'):
            continue
        parts = [p.strip('"') for p in line.split('","')]
        if len(parts) >= 8:
            try:
                rows[parts[0]] = {
                    "rps": float(parts[1]), "avg_ms": float(parts[2]), "p50_ms": float(parts[4]),
                    "p99_ms": float(parts[6]), "max_ms": float(parts[7]),
                }
            except ValueError:
                pass
        elif len(parts) >= 2:
            try:
                rows[parts[0]] = {"rps": float(parts[1])}
            except ValueError:
                pass
    return rows


def redis_benchmark(port, test, n, clients, pipeline, extra=()):
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "--csv",
           "-n", str(n), "-c", str(clients), "-P", str(pipeline), "-t", test] + list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    rows = parse_bench_csv(r.stdout)
    err = None
    errtext = (r.stdout + r.stderr)
    m = re.search(r"(Error[^\n]*)", errtext)
    if r.returncode != 0 or m:
        err = (m.group(1) if m else "redis-benchmark rc=%d: %s" % (r.returncode, errtext.strip()[-300:]))
    return rows, err, " ".join(shlex.quote(c) for c in cmd)


def start_all(ctx, section, tag, opts):
    """Start one server per target (all alive at once, so runs can be interleaved)."""
    servers = {}
    for target in ctx.targets:
        s = make_server(ctx, target, tag, opts)
        try:
            s.start()
            servers[target.name] = s
        except Exception as e:  # noqa: BLE001
            ctx.fail(section, target, "start (%s)" % tag, e)
            s.kill()
    return servers


def stop_all(servers):
    for s in servers.values():
        s.stop()
        cleanup_dir(s)


def bench_interleaved(ctx, servers, test, n, pipeline, repeat, label, store):
    """Run `test` `repeat` times on every server, alternating the order each round; store the
    run with the median rps per target (all rps values kept in 'all_rps')."""
    got = {name: [] for name in servers}
    failed = {}
    for rep in range(repeat):
        order = list(servers.items())
        if rep % 2:
            order.reverse()
        for name, s in order:
            if name in failed:
                continue
            rows, err, _ = redis_benchmark(s.port, test, n, 50, pipeline)
            if err or not rows:
                failed[name] = err or "no CSV output"
                target = next(t for t in ctx.targets if t.name == name)
                ctx.fail("throughput", target, label, failed[name])
                continue
            got[name].append({k: v for k, v in rows.items() if "needed to benchmark" not in k})
    for name in servers:
        if name in failed:
            store(test.upper(), name, {"error": failed[name]})
            continue
        runs = got[name]
        for row_name in runs[0]:
            vals = sorted((r[row_name] for r in runs if row_name in r), key=lambda x: x["rps"])
            med = dict(vals[len(vals) // 2])
            med["all_rps"] = [v["rps"] for v in vals]
            store(row_name, name, med)
            log("throughput %-32s %-10s %10.0f rps  (runs: %s)" % (
                label if len(runs[0]) == 1 else row_name, name, med["rps"],
                ", ".join("%.0f" % v for v in med["all_rps"])))


PIPELINED_REQUESTS_FACTOR = 10


def section_throughput(ctx):
    n = ctx.size("tp_requests")
    repeat = ctx.args.repeat or (1 if ctx.quick else 3)
    # -P 16 runs ten times the requests: 100k of them last ~0.1 s, too short to measure.
    n16 = n * PIPELINED_REQUESTS_FACTOR
    res = {"n": n, "n16": n16, "repeat": repeat, "runs": {}, "suite": {},
           "suite_n": ctx.size("suite_requests")}
    for fsync in ("everysec", "always"):
        servers = start_all(ctx, "throughput", "tp-" + fsync, persistence_opts(True, fsync))
        try:
            for p in (1, 16):
                for t in TP_TESTS:
                    key = "%s|P%d|%s" % (fsync, p, t.upper())

                    def store(_row, name, row, key=key):
                        res["runs"].setdefault(key, {})[name] = row

                    bench_interleaved(ctx, servers, t, n if p == 1 else n16, p, repeat, key,
                                      store)
        finally:
            stop_all(servers)
    # default suite once, everysec; each test on its own so one failure doesn't stop the rest
    suite_tests = ["ping_inline", "ping_mbulk", "set", "get", "incr", "lpush", "rpush", "lpop",
                   "rpop", "sadd", "hset", "spop", "zadd", "zpopmin", "lrange_100", "lrange_300",
                   "lrange_500", "lrange_600", "mset"]
    servers = start_all(ctx, "throughput", "suite", persistence_opts(True, "everysec"))
    try:
        for t in suite_tests:
            def store(row_name, name, row):
                res["suite"].setdefault(row_name, {})[name] = row

            bench_interleaved(ctx, servers, t, res["suite_n"], 1, 1, "suite " + t, store)
    finally:
        stop_all(servers)
    return res


# ----------------------------------------------------------------------------------------------
# Section 2: latency


LATENCY_KEYS = 100_000


def fill_keys(port, n, batch=1000):
    """MSET key:NNNNNNN -> 8-byte value for n keys (the keyspace of paced_client)."""
    c = Conn(port, timeout=120)
    try:
        for start in range(0, n, batch):
            args = ["MSET"]
            for i in range(start, min(n, start + batch)):
                args += [b"key:%07d" % i, b"abcdefgh"]
            r = c.call(*args)
            if isinstance(r, RespError):
                raise ServerError("MSET: %s" % r)
    finally:
        c.close()


def section_latency(ctx):
    rate = ctx.args.latency_rate or ctx.size("latency_rate")
    secs = ctx.size("latency_seconds")
    repeat = ctx.args.repeat or (1 if ctx.quick else 3)
    res = {"rate": rate, "seconds": secs, "conns": 4, "repeat": repeat, "runs": {}}
    for fsync in ("everysec", "always"):
        servers = start_all(ctx, "latency", "lat-" + fsync, persistence_opts(True, fsync))
        per_run = {name: [] for name in servers}
        failed = {}
        try:
            for name, s in servers.items():
                fill_keys(s.port, LATENCY_KEYS)  # so that GETs hit
            for rep in range(repeat):
                order = list(servers.items())
                if rep % 2:
                    order.reverse()
                for name, s in order:
                    if name in failed:
                        continue
                    target = next(t for t in ctx.targets if t.name == name)
                    try:
                        samples, achieved, lost = paced_client(s.port, rate, secs, conns=4,
                                                               write_ratio=0.5, seed=rep + 1)
                    except Exception as e:  # noqa: BLE001
                        failed[name] = str(e)[:300]
                        ctx.fail("latency", target, fsync, e)
                        continue
                    summ = lat_summary([l for (_, l, ok) in samples])
                    errs = sum(1 for (_, _, ok) in samples if not ok)
                    summ.update({"achieved_rate": achieved, "errors": errs, "lost": lost})
                    if errs or lost:
                        ctx.fail("latency", target, fsync, "%d error replies, %d unanswered" % (errs, lost))
                    per_run[name].append(summ)
                    log("latency %-9s %-10s p50 %.3f p99 %.3f max %.3f ms" % (
                        fsync, name, summ["p50_ms"], summ["p99_ms"], summ["max_ms"]))
        finally:
            stop_all(servers)
        for target in ctx.targets:
            name = target.name
            if name in failed or not per_run.get(name):
                res["runs"].setdefault(fsync, {})[name] = {"error": failed.get(name, "not started")}
                continue
            runs = per_run[name]
            med = {k: statistics.median(r[k] for r in runs)
                   for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "achieved_rate")}
            med["worst_max_ms"] = max(r["max_ms"] for r in runs)
            med["runs"] = runs
            res["runs"].setdefault(fsync, {})[name] = med
    return res


# ----------------------------------------------------------------------------------------------
# Section 3: memory

MEM_CHECK = {
    "strings": ("DBSIZE",),
    "list": ("LLEN", "biglist"),
    "list-depth1": ("LLEN", "biglist"),
    "hash": ("HLEN", "bighash"),
    "set": ("SCARD", "bigset"),
    "zset": ("ZCARD", "bigzset"),
}


def settle_rss(s, rounds=5, pause=0.2):
    """RSS after it stops moving (allocator background work)."""
    last = s.rss_kb()
    for _ in range(rounds):
        time.sleep(pause)
        cur = s.rss_kb()
        if abs(cur - last) < 64:
            return cur
        last = cur
    return last


# Memory cases beyond each server's defaults: kind -> (data file kind, extra options for every
# server). "list" runs with each server's own default list-compress-depth (Strongbox 1, Redis 0:
# a documented deviation); "list-depth1" with compression on in every server, like for like.
MEM_EXTRA_OPTS = {"list-depth1": ("list", {"list-compress-depth": "1"})}


def section_memory(ctx):
    n = ctx.size("elements")
    res = {"n": n, "runs": {}}
    for kind in ("strings", "list", "list-depth1", "hash", "set", "zset"):
        data_kind, extra = MEM_EXTRA_OPTS.get(kind, (kind, {}))
        path = gen_file(ctx, data_kind, n)
        for target in ctx.targets:
            opts = persistence_opts(False)
            opts.update(extra)
            s = make_server(ctx, target, "mem-" + kind, opts)
            try:
                s.start()
                base_rss = settle_rss(s)
                base_used = int(s.info("memory").get("used_memory", "0") or 0)
                dt, _, _ = pipe_load(s, path)
                cnt = s.call(*MEM_CHECK[kind])
                if cnt != n:
                    raise ServerError("after load %s = %r, expected %d" % (" ".join(MEM_CHECK[kind]), cnt, n))
                rss = settle_rss(s)
                mi = s.info("memory")
                used = int(mi.get("used_memory", "0") or 0)
                enc = s.call("OBJECT", "ENCODING", "key:0000000" if kind == "strings" else
                             {"list": "biglist", "hash": "bighash", "set": "bigset", "zset": "bigzset"}[data_kind])
                depth = None
                if data_kind == "list":
                    got = s.call("CONFIG", "GET", "list-compress-depth")
                    if isinstance(got, list) and len(got) == 2:
                        depth = got[1].decode() if isinstance(got[1], bytes) else str(got[1])
                row = {
                    "rss_kb": rss, "base_rss_kb": base_rss, "delta_rss_kb": rss - base_rss,
                    "used_memory": used, "base_used_memory": base_used,
                    "delta_used_memory": used - base_used if used else None,
                    "load_s": dt,
                    "encoding": enc.decode() if isinstance(enc, bytes) else str(enc),
                }
                if depth is not None:
                    row["list_compress_depth"] = depth
                res["runs"].setdefault(kind, {})[target.name] = row
                log("memory %-8s %-10s dRSS %8.1f MiB  used_memory %8.1f MiB  (%s)" % (
                    kind, target.name, row["delta_rss_kb"] / 1024.0, used / 1048576.0, row["encoding"]))
            except Exception as e:  # noqa: BLE001
                ctx.fail("memory", target, kind, e)
                res["runs"].setdefault(kind, {})[target.name] = {"error": str(e)[:300]}
            finally:
                s.stop()
                cleanup_dir(s)
    return res


# ----------------------------------------------------------------------------------------------
# Section 4: time to serving


def wait_rewrite_done(s, timeout=3600):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        i = s.info("persistence")
        if "aof_rewrite_in_progress" not in i:
            raise ServerError("INFO persistence has no aof_rewrite_in_progress: cannot time the rewrite")
        if i.get("aof_rewrite_in_progress", "0") == "0" and i.get("aof_rewrite_scheduled", "0") == "0":
            st = i.get("aof_last_bgrewrite_status", "ok")
            if st != "ok":
                raise ServerError("aof_last_bgrewrite_status:%s" % st)
            return time.perf_counter() - t0, i
        time.sleep(0.01)
    raise ServerError("rewrite not finished after %ss" % timeout)


def wait_bgsave_done(s, timeout=3600):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        i = s.info("persistence")
        if i.get("rdb_bgsave_in_progress", "0") == "0":
            return
        time.sleep(0.01)
    raise ServerError("bgsave not finished")


def dir_size(d):
    tot = 0
    for root, _, files in os.walk(d):
        for f in files:
            if f.startswith("server.log"):
                continue
            try:
                tot += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return tot


def startup_case(ctx, target, case, nkeys, path):
    """Load nkeys, persist according to `case`, restart, time to PONG. Returns a dict."""
    if case == "aof-plain":
        opts = persistence_opts(True, "no", preamble=False)
    elif case == "aof-rdb-base":
        opts = persistence_opts(True, "no", preamble=True)
    else:  # dump.rdb
        opts = persistence_opts(False)
    s = make_server(ctx, target, "start-" + case, opts)
    try:
        s.start()
        pipe_load(s, path)
        if case == "aof-rdb-base":
            # An automatic rewrite (auto-aof-rewrite-percentage) may be running after a big load:
            # let it finish, then ask for ours (redis refuses a second one while it runs).
            wait_rewrite_done(s)
            r = s.call("BGREWRITEAOF")
            if isinstance(r, RespError) and "already in progress" in str(r):
                wait_rewrite_done(s)
                r = s.call("BGREWRITEAOF")
            if isinstance(r, RespError):
                raise ServerError("BGREWRITEAOF: %s" % r)
            wait_rewrite_done(s)
        elif case == "dump.rdb":
            r = s.call("SAVE")
            if isinstance(r, RespError):
                raise ServerError("SAVE: %s" % r)
        s.stop()
        size = dir_size(s.dir)
        if os.path.isdir(os.path.join(s.dir, "appendonlydir")):
            files = sorted(os.listdir(os.path.join(s.dir, "appendonlydir")))
        else:
            files = sorted(f for f in os.listdir(s.dir) if not f.startswith("server.log"))
        # drop the page cache effect as far as we can without root-only knobs: not attempted;
        # both servers read warm files (they were just written).
        # Restarted `repeat` times on the same files: one restart is too noisy on a shared
        # machine (the median is kept, every figure recorded).
        times = []
        for _ in range(ctx.args.repeat or (1 if ctx.quick else 3)):
            s2 = Server(target, s.dir, opts)
            LIVE_SERVERS.append(s2)
            s2.start(wait=False)
            times.append(s2.wait_ready())
            dbsize = s2.call("DBSIZE")
            rss = s2.rss_kb()
            s2.stop()
            if dbsize != nkeys:
                raise ServerError("after restart DBSIZE=%r, expected %d (files: %s)" % (dbsize, nkeys, files))
        return {"seconds": statistics.median(times), "all_seconds": times, "bytes": size,
                "files": files, "rss_kb": rss}
    finally:
        s.kill()
        cleanup_dir(s)


def section_startup(ctx):
    sizes = [ctx.size("startup_keys")]
    if ctx.args.big:
        sizes.append(BIG_STARTUP_KEYS)
    res = {"sizes": sizes, "runs": {}}
    for nkeys in sizes:
        path = gen_file(ctx, "strings", nkeys)
        for case in ("aof-plain", "aof-rdb-base", "dump.rdb"):
            key = "%d|%s" % (nkeys, case)
            for target in ctx.targets:
                try:
                    row = startup_case(ctx, target, case, nkeys, path)
                    res["runs"].setdefault(key, {})[target.name] = row
                    log("startup %-22s %-10s %.3f s (%s)" % (key, target.name, row["seconds"], ",".join(row["files"])))
                except Exception as e:  # noqa: BLE001
                    ctx.fail("startup", target, key, e)
                    res["runs"].setdefault(key, {})[target.name] = {"error": str(e)[:300]}
        if nkeys >= BIG_STARTUP_KEYS:
            try:
                os.unlink(path)
            except OSError:
                pass
    return res


# ----------------------------------------------------------------------------------------------
# Section 5: compaction


class RssSampler(threading.Thread):
    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.stop_ev = threading.Event()
        self.peak_total_kb = 0  # parent RSS + children RSS
        self.peak_private_kb = 0  # parent RSS + children Private_Dirty (true COW cost)
        self.children_seen = set()
        self.samples = 0

    def run(self):
        n = 0
        while not self.stop_ev.is_set():
            parent = rss_kb(self.pid)
            kids = children_of(self.pid)
            self.children_seen.update(kids)
            kid_rss = sum(rss_kb(k) for k in kids)
            self.peak_total_kb = max(self.peak_total_kb, parent + kid_rss)
            if kids and n % 5 == 0:
                priv = sum(private_dirty_kb(k) for k in kids)
                self.peak_private_kb = max(self.peak_private_kb, parent + priv)
            elif not kids:
                self.peak_private_kb = max(self.peak_private_kb, parent)
            n += 1
            self.samples = n
            time.sleep(self.interval)


def strongbox_fields(info):
    """The server's own compaction and log figures from INFO persistence (strongbox only)."""
    return {k: int(v) for k, v in info.items()
            if (k.startswith("strongbox_compaction_") or k.startswith("strongbox_aof_last_")
                or k == "aof_delayed_fsync") and str(v).lstrip("-").isdigit()}


def section_compaction(ctx):
    nkeys = ctx.size("compaction_keys")
    load_rate = ctx.args.load_rate or ctx.size("load_rate")
    probe_rate = ctx.args.probe_rate or ctx.size("probe_rate")
    rewrites = ctx.args.rewrites or ctx.size("rewrites")
    gap_s = 1.0
    res = {"keys": nkeys, "load_rate": load_rate, "probe_rate": probe_rate, "rewrites": rewrites,
           "gap_s": gap_s, "runs": {}}
    path = gen_file(ctx, "strings", nkeys)
    for target in ctx.targets:
        s = make_server(ctx, target, "compact", persistence_opts(True, "everysec", preamble=True))
        load = None
        probe = None
        try:
            s.start()
            pipe_load(s, path)
            # settle: first rewrite so the base holds the data, as a long-running server would
            time.sleep(0.5)
            base_rss = settle_rss(s)
            pre_s = 2.0
            # the probe and the load stop when told; this only bounds them
            est_total = 300.0
            load = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--load-worker", str(s.port),
                 str(load_rate), str(est_total + 5), str(nkeys)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            probe = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--probe-worker", str(s.port),
                 str(probe_rate), str(est_total), str(nkeys)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            t_origin = time.perf_counter()  # replaced by the probe's own origin below
            time.sleep(pre_s)
            windows, durations, peaks, internal = [], [], [], []
            rss_before_first = s.rss_kb()
            children = set()
            for _ in range(rewrites):
                sampler = RssSampler(s.pid)
                rss_before = s.rss_kb()
                sampler.start()
                t_start = time.perf_counter()
                r = s.call("BGREWRITEAOF")
                if isinstance(r, RespError):
                    raise ServerError("BGREWRITEAOF: %s" % r)
                dur, pinfo = wait_rewrite_done(s)
                t_end = time.perf_counter()
                sampler.stop_ev.set()
                sampler.join()
                children.update(sampler.children_seen)
                windows.append((t_start - t_origin, t_end - t_origin))
                durations.append(dur)
                peaks.append((sampler.peak_total_kb - rss_before,
                              sampler.peak_private_kb - rss_before))
                internal.append(strongbox_fields(pinfo))
                # the next rewrite starts after a pause: the probe's "outside" samples are taken
                # between the rewrites, under the same load
                time.sleep(gap_s)
            probe.send_signal(signal.SIGTERM)
            try:
                pout, perr = probe.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                probe.kill()
                pout, perr = "", "probe did not stop"
            load.send_signal(signal.SIGTERM)
            try:
                lout, _ = load.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                load.kill()
                lout = ""
            try:
                pr = json.loads(pout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise ServerError("probe worker: %s" % (perr or pout)[-300:])
            samples, achieved, lost = pr["samples"], pr["achieved"], pr["lost"]
            # The rewrite windows were timed from t_origin; the probe's samples from its own
            # origin (same monotonic clock).
            shift = (pr["origin"] or t_origin) - t_origin
            samples = [(t + shift, l, ok) for (t, l, ok) in samples]

            def in_window(t):
                return any(w0 <= t <= w1 for (w0, w1) in windows)

            # samples scheduled while any rewrite ran, pooled; "outside" = the rest after the
            # first second (the probe's own start-up)
            during = [l for (t, l, ok) in samples if in_window(t)]
            outside = [l for (t, l, ok) in samples if t >= 1.0 and not in_window(t)]
            errs = sum(1 for (_, _, ok) in samples if not ok)

            def rewrite_offset_ms(t):
                return min(((t - w0) * 1000.0 for (w0, w1) in windows if w0 <= t <= w1),
                           default=None)

            # where in a rewrite the slowest probe requests were scheduled (ms after its start)
            worst = sorted(((l, rewrite_offset_ms(t)) for (t, l, ok) in samples if in_window(t)),
                           reverse=True)[:40]
            row = {
                "during_worst_ms_at_ms": [(round(l, 3), round(o, 1)) for (l, o) in worst],
                "duration_s": statistics.median(durations),
                "durations_s": durations,
                "windows_s": windows,
                "during": lat_summary(during), "outside": lat_summary(outside),
                "probe_achieved_rate": achieved,
                "probe_errors": errs, "probe_lost": lost,
                "rss_before_kb": rss_before_first, "base_rss_kb": base_rss,
                "peak_extra_total_kb": max(p[0] for p in peaks),
                "peak_extra_private_kb": max(p[1] for p in peaks),
                "children": sorted(children),
                "internal": internal,
                "load": json.loads(lout.strip().splitlines()[-1]) if lout.strip() else None,
            }
            for k in ("strongbox_compaction_max_stall_us", "strongbox_compaction_max_round_us",
                      "strongbox_compaction_stalls_over_1ms"):
                if any(k in x for x in internal):
                    row[k] = max(x.get(k, 0) for x in internal)
            if errs or lost:
                ctx.fail("compaction", target, "probe", "%d error replies, %d unanswered" % (errs, lost))
            res["runs"][target.name] = row
            log("compaction %-10s %d rewrites, median %.3f s, during p99 %.3f max %.3f ms (n=%d), "
                "outside p99 %.3f max %.3f ms (n=%d), probe %.0f req/s, peak extra RSS %.1f MiB "
                "(children %s)" % (
                    target.name, rewrites, row["duration_s"], row["during"]["p99_ms"],
                    row["during"]["max_ms"], row["during"]["count"], row["outside"]["p99_ms"],
                    row["outside"]["max_ms"], row["outside"]["count"], achieved,
                    row["peak_extra_total_kb"] / 1024.0, row["children"]))
            for i, x in enumerate(internal):
                if x:
                    log("compaction %-10s rewrite %d: %s" % (target.name, i + 1, " ".join(
                        "%s=%s" % (k.replace("strongbox_", ""), v) for k, v in sorted(x.items()))))
        except Exception as e:  # noqa: BLE001
            ctx.fail("compaction", target, "bgrewriteaof", e)
            res["runs"][target.name] = {"error": str(e)[:300]}
        finally:
            if load is not None and load.poll() is None:
                load.kill()
            if probe is not None and probe.poll() is None:
                probe.kill()
            s.stop()
            cleanup_dir(s)
    return res


# ----------------------------------------------------------------------------------------------
# Machine description


def machine_info(tmpdir):
    d = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    d["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    d["mem_total_gib"] = round(int(line.split()[1]) / 1048576.0, 1)
                if line.startswith("MemAvailable:"):
                    d["mem_available_gib"] = round(int(line.split()[1]) / 1048576.0, 1)
    except OSError:
        pass
    try:
        out = subprocess.run(["df", "-hT", tmpdir], capture_output=True, text=True).stdout.splitlines()
        if len(out) >= 2:
            p = out[1].split()
            d["disk"] = "%s (%s), %s total, %s free, mounted on %s" % (p[0], p[1], p[2], p[4], p[6])
    except (OSError, IndexError):
        pass
    try:
        d["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return d


# ----------------------------------------------------------------------------------------------
# Reporting


def fmt_num(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if abs(v) >= 1000:
            return "{:,.0f}{}".format(v, unit)
        if abs(v) >= 10:
            return "{:.1f}{}".format(v, unit)
        return "{:.3f}{}".format(v, unit)
    return "{:,}{}".format(v, unit)


def fmt_ratio(r, goal=None, higher_better=True):
    if r is None:
        return "—"
    s = "%.2f" % r
    if goal is not None and s == "%.2f" % goal:
        s = "%.3f" % r  # don't print 0.50 ✗ for 0.504
    if goal is not None:
        ok = r >= goal if higher_better else r <= goal
        s += " ✓" if ok else " ✗"
    return s


class Table:
    def __init__(self, title, cols, note=None):
        self.title = title
        self.cols = cols
        self.rows = []
        self.note = note

    def add(self, row):
        self.rows.append([str(c) for c in row])

    def markdown(self):
        out = []
        if self.title:
            out.append("#### " + self.title)
            out.append("")
        if self.note:
            out.append(self.note)
            out.append("")
        def esc(c):
            return c.replace("|", "\\|")

        out.append("| " + " | ".join(esc(c) for c in self.cols) + " |")
        out.append("|" + "|".join("---" for _ in self.cols) + "|")
        for r in self.rows:
            out.append("| " + " | ".join(esc(c) for c in r) + " |")
        out.append("")
        return "\n".join(out)

    def text(self):
        widths = [len(c) for c in self.cols]
        for r in self.rows:
            for i, c in enumerate(r):
                widths[i] = max(widths[i], len(c))
        out = ["", "== " + (self.title or "")]
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(self.cols)))
        for r in self.rows:
            out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)))
        return "\n".join(out)


def val(d, key):
    if not isinstance(d, dict) or "error" in d:
        return None
    return d.get(key)


def cell(d, key, scale=1.0, unit=""):
    if not isinstance(d, dict):
        return "not run"
    if "error" in d:
        return "FAILED"
    v = d.get(key)
    if v is None:
        return "—"
    return fmt_num(v * scale if isinstance(v, (int, float)) else v, unit)


def ratio_cols(ctx, runs, key, scale=1.0, goal=None, higher_better=True):
    """cells for each target then ratios of each non-redis target against redis."""
    cells = [cell(runs.get(t.name), key, scale) for t in ctx.targets]
    base = val(runs.get("redis"), key)
    for t in ctx.targets[1:]:
        cells.append(fmt_ratio(ratio(val(runs.get(t.name), key), base), goal, higher_better))
    return cells


def headers(ctx, metric):
    cols = [metric] + [t.name for t in ctx.targets]
    cols += ["%s / redis" % t.name for t in ctx.targets[1:]]
    return cols


def tables_for(ctx, section, res):
    T = []
    if section == "throughput":
        t = Table("Throughput, requests/s (higher is better; goal ≥ 1.0, `always` -P 16 ≥ 1.5)",
                  headers(ctx, "appendfsync · pipeline · test"),
                  note="`redis-benchmark -q --csv -n %d -c 50 -P 1 -t <test>` and `-n %d -P 16` (each "
                       "test run alone), appendonly yes, save '', fresh servers per appendfsync policy, "
                       "all servers up at once and runs interleaved server by server; median of %d "
                       "run(s) per line."
                       % (res["n"], res.get("n16", res["n"]), res.get("repeat", 1)))
        for key, runs in res["runs"].items():
            fsync, p, test = key.split("|")
            goal = 1.5 if (fsync == "always" and p == "P16") else 1.0
            t.add(["%s · %s · %s" % (fsync, p.replace("P", "-P "), test)] +
                  ratio_cols(ctx, runs, "rps", goal=goal))
        T.append(t)
        t2 = Table("Latency inside redis-benchmark (p99 ms, lower is better)", headers(ctx, "appendfsync · pipeline · test"))
        for key, runs in res["runs"].items():
            fsync, p, test = key.split("|")
            t2.add(["%s · %s · %s" % (fsync, p.replace("P", "-P "), test)] + ratio_cols(ctx, runs, "p99_ms", higher_better=False))
        T.append(t2)
        if res["suite"]:
            t3 = Table("Default suite, requests/s (higher is better)", headers(ctx, "test"),
                       note="`redis-benchmark -q --csv -n %d -t <test>` for each test of the default "
                            "suite (50 clients, -P 1), appendonly yes, appendfsync everysec." % res["suite_n"])
            for name, runs in res["suite"].items():
                t3.add([name] + ratio_cols(ctx, runs, "rps", goal=1.0))
            T.append(t3)
    elif section == "latency":
        t = Table("Latency under a fixed rate, ms (lower is better)", headers(ctx, "appendfsync · percentile"),
                  note="Open-loop paced client (bench/run.py `paced_client`): %d req/s for %.0f s over 4 "
                       "connections, 50%% SET / 50%% GET on 100k keys filled beforehand by MSET (8-byte values). Each request "
                       "is sent at its scheduled time even if earlier replies are outstanding, and its "
                       "latency is measured from the scheduled time, so stalls are not hidden "
                       "(no coordinated omission). Python client: includes ~0.05–0.2 ms of client "
                       "overhead, the same for every server. Servers up together, runs interleaved; "
                       "each figure is the median over %d run(s)." % (res["rate"], res["seconds"],
                                                                    res.get("repeat", 1)))
        for fsync, runs in res["runs"].items():
            for k, lab in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max"),
                           ("worst_max_ms", "worst max of all runs")):
                t.add(["%s · %s" % (fsync, lab)] + ratio_cols(ctx, runs, k, higher_better=False,
                                                              goal=None))
            t.add(["%s · achieved req/s" % fsync] + [cell(runs.get(x.name), "achieved_rate") for x in ctx.targets] + ["" for _ in ctx.targets[1:]])
        T.append(t)
    elif section == "memory":
        t = Table("Memory after loading %s elements, MiB (lower is better; goal ≤ 0.75)" % "{:,}".format(res["n"]),
                  headers(ctx, "data · measure"),
                  note="appendonly no, save ''. RSS = VmRSS from /proc/<pid>/status minus the RSS of the "
                       "same server just started (empty); used_memory = INFO memory minus its empty value. "
                       "Strings: `SET key:NNNNNNN val:NNNNNNN`; collections: one key, members like "
                       "`member:NNNNNNN` (hash values `vNNNNNNN`, zset score = index), loaded by "
                       "`redis-cli --pipe` in batches of %d. `list` runs each server with its own default "
                       "`list-compress-depth` (Strongbox 1, Redis 0); `list-depth1` the same data with "
                       "`--list-compress-depth 1` on every server (Redis then LZF-compresses interior "
                       "nodes too): like for like." % BATCH)
        for kind, runs in res["runs"].items():
            t.add(["%s · RSS − baseline" % kind] + ratio_cols(ctx, runs, "delta_rss_kb", 1 / 1024.0, goal=0.75, higher_better=False))
            t.add(["%s · used_memory − baseline" % kind] + ratio_cols(ctx, runs, "delta_used_memory", 1 / 1048576.0, goal=0.75, higher_better=False))
            t.add(["%s · encoding" % kind] + [cell(runs.get(x.name), "encoding") for x in ctx.targets] + ["" for _ in ctx.targets[1:]])
            if any(isinstance(r, dict) and "list_compress_depth" in r for r in runs.values()):
                t.add(["%s · list-compress-depth" % kind] + [cell(runs.get(x.name), "list_compress_depth") for x in ctx.targets] + ["" for _ in ctx.targets[1:]])
        T.append(t)
    elif section == "startup":
        t = Table("Time to serving, seconds (lower is better; goal ≤ 0.5)", headers(ctx, "keys · from"),
                  note="Load N keys (`SET key:NNNNNNN val:NNNNNNN`) with redis-cli --pipe, persist, "
                       "SHUTDOWN NOSAVE, restart on the same directory and time from process start "
                       "(fork/exec) until PING answers +PONG (not -LOADING); DBSIZE is checked after; median "
                       "of --repeat restarts (3; 1 with --quick) on the same files. "
                       "aof-plain: appendonly yes, aof-use-rdb-preamble no, the keys in the incr log. "
                       "aof-rdb-base: appendonly yes, preamble yes, BGREWRITEAOF before shutdown so the "
                       "base is an RDB. dump.rdb: appendonly no, SAVE. Files are warm in the page cache.")
        for key, runs in res["runs"].items():
            nkeys, case = key.split("|")
            t.add(["{:,} · {}".format(int(nkeys), case)] + ratio_cols(ctx, runs, "seconds", goal=0.5, higher_better=False))
            t.add(["{:,} · {} bytes on disk".format(int(nkeys), case)] + ratio_cols(ctx, runs, "bytes", higher_better=False))
        T.append(t)
    elif section == "compaction":
        t = Table("Compaction (BGREWRITEAOF) under write load (lower is better; goal p99 ≤ 2 ms)",
                  headers(ctx, "measure"),
                  note="%s keys loaded, appendonly yes, everysec, aof-use-rdb-preamble yes. A separate "
                       "process writes SETs at %d/s over the keyspace; a paced probe (1 connection, "
                       "%d req/s, 50%% SET/GET, open loop: latency from each request's scheduled "
                       "time) measures latency. %d BGREWRITEAOFs are run back to back, the first 2 s "
                       "into the load, each sent %.0f s after the previous one finished (INFO shows "
                       "aof_rewrite_in_progress:0 and aof_rewrite_scheduled:0, polled every 10 ms); "
                       "'during' pools the probe samples scheduled while any of them ran, 'outside' "
                       "the samples between and after them (same load, same probe: the machine's "
                       "noise floor). Duration = median of the rewrites. Peak extra RSS = max over the "
                       "rewrites of (server RSS + RSS of its child processes) − RSS before it; "
                       "'private' counts children by Private_Dirty (the real copy-on-write cost) "
                       "instead of RSS (which double counts pages shared with the parent). The "
                       "server-measured rows are strongbox's INFO strongbox_compaction_* (max over "
                       "the rewrites)."
                       % ("{:,}".format(res["keys"]), res["load_rate"], res["probe_rate"],
                          res.get("rewrites", 1), res.get("gap_s", 0)))
        runs = res["runs"]

        def lat(d, which, key):
            x = val(d, which)
            return x[key] if x else None

        def kib(key):
            return lambda d: val(d, key) / 1024.0 if val(d, key) is not None else None

        rows = [
            ("duration s", lambda d: val(d, "duration_s")),
            ("probe p50 ms during", lambda d: lat(d, "during", "p50_ms")),
            ("probe p99 ms during", lambda d: lat(d, "during", "p99_ms")),
            ("probe p99.9 ms during", lambda d: lat(d, "during", "p999_ms")),
            ("probe max ms during", lambda d: lat(d, "during", "max_ms")),
            ("probe samples during", lambda d: lat(d, "during", "count")),
            ("probe p50 ms outside", lambda d: lat(d, "outside", "p50_ms")),
            ("probe p99 ms outside", lambda d: lat(d, "outside", "p99_ms")),
            ("probe max ms outside", lambda d: lat(d, "outside", "max_ms")),
            ("probe samples outside", lambda d: lat(d, "outside", "count")),
            ("peak extra RSS MiB (parent+child RSS)", kib("peak_extra_total_kb")),
            ("peak extra MiB (parent RSS+child private)", kib("peak_extra_private_kb")),
            ("RSS before MiB", kib("rss_before_kb")),
            ("server-measured longest compaction work in one round µs",
             lambda d: val(d, "strongbox_compaction_max_stall_us")),
            ("server-measured longest execution round µs",
             lambda d: val(d, "strongbox_compaction_max_round_us")),
        ]
        for label, f in rows:
            cells = []
            for x in ctx.targets:
                d = runs.get(x.name)
                if d is None:
                    cells.append("not run")
                elif "error" in d:
                    cells.append("FAILED")
                else:
                    cells.append(fmt_num(f(d)))
            base = f(runs.get("redis")) if runs.get("redis") and "error" not in runs.get("redis") else None
            for x in ctx.targets[1:]:
                d = runs.get(x.name)
                v = f(d) if d and "error" not in d else None
                cells.append(fmt_ratio(ratio(v, base), None))
            t.add([label] + cells)
        T.append(t)
    return T


def describe_machine_md(m):
    return ("- CPU: %s × %s (nproc)\n- Memory: %s GiB total, %s GiB available at start\n- Kernel: %s\n"
            "- Disk (temp dirs): %s\n- Load average at start: %s\n" % (
                m.get("cpu", "?"), m.get("nproc"), m.get("mem_total_gib"), m.get("mem_available_gib"),
                m.get("kernel"), m.get("disk", "?"), " ".join(m.get("loadavg", []))))


DOC_HEADER = """# Benchmarks

Generated by `bench/run.py` (issue 7). Each section below is replaced only when it is run again,
and records its own command, date and machine. Ratios are strongbox / redis (and valkey / redis
where present): for throughput higher is better; for latency, memory, time to serving and
compaction lower is better. ✓/✗ marks the issue-7 goal for that line. FAILED means the command
errored against that server (see the failure list of the section); "not run" means it was not
attempted.

Reproduce: `bench/run.py` (full, ~20–30 min here), `bench/run.py --quick` (smoke, ~1–2 min),
`bench/run.py --only latency,memory`, `bench/run.py --big` (adds 10M-key start-up).
These are benchmarks, never timed tests in CI: the machine is shared and noisy (see the load
average recorded with each section, and the noise floor measured redis-vs-redis in bench/README.md).

"""


def write_doc(ctx, machine, tables_by_section, cmdline, date, versions):
    path = ctx.args.out
    existing = ""
    if os.path.exists(path):
        existing = open(path).read()
    blocks = {}
    for sec in SECTIONS:
        m = re.search(r"<!-- bench:%s -->.*?<!-- /bench:%s -->\n?" % (sec, sec), existing, re.S)
        if m:
            blocks[sec] = m.group(0)
    for sec, tables in tables_by_section.items():
        fails = [f for f in ctx.failures if f.startswith(sec + " /")]
        body = ["<!-- bench:%s -->" % sec, "## %s" % sec.capitalize(), "",
                "Command: `%s`  " % cmdline, "Date: %s  " % date,
                "Servers: %s" % "; ".join("%s: %s" % (t.name, versions[t.name]) for t in ctx.targets),
                "", describe_machine_md(machine)]
        for t in tables:
            body.append(t.markdown())
        if fails:
            body.append("Failures:\n")
            body += ["- %s" % f for f in fails]
            body.append("")
        body.append("<!-- /bench:%s -->\n" % sec)
        blocks[sec] = "\n".join(body)
    out = DOC_HEADER + "\n".join(blocks[s] for s in SECTIONS if s in blocks)
    # Hand-written sections (anything after the last generated block, e.g. tuning notes) stay.
    ends = [m.end() for m in re.finditer(r"<!-- /bench:\w+ -->\n?", existing)]
    if ends:
        tail = existing[max(ends):]
        if tail.strip():
            out = out.rstrip("\n") + "\n\n" + tail.lstrip("\n")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(out)
    log("wrote %s" % path)


# ----------------------------------------------------------------------------------------------
# Main


def render_only(args):
    with open(args.render) as f:
        data = json.load(f)
    args.quick = False
    ctx = Ctx.__new__(Ctx)
    ctx.args = args
    ctx.quick = False
    ctx.results = data["results"]
    ctx.failures = data.get("failures", [])
    binaries = data.get("binaries", {})
    names = list(data["versions"].keys())
    ctx.targets = [Target(n, binaries.get(n, "?"), n) for n in names]
    tables = {sec: tables_for(ctx, sec, ctx.results[sec]) for sec in SECTIONS if sec in ctx.results}
    for sec, ts in tables.items():
        for t in ts:
            print(t.text())
    if not args.no_write:
        write_doc(ctx, data["machine"], tables, data["command"], data["date"], data["versions"])
    return 0


def build_strongbox():
    log("cargo build --release --bin strongbox-server")
    r = subprocess.run(["cargo", "build", "--release", "--bin", "strongbox-server"], cwd=REPO)
    if r.returncode != 0:
        raise SystemExit("cargo build failed (rc=%d); use --no-build or --strongbox-bin" % r.returncode)
    return os.path.join(REPO, "target", "release", "strongbox-server")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        load_worker_main(sys.argv[2:])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-worker":
        probe_worker_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="comma-separated sections: %s" % ",".join(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="scaled-down sizes (smoke test)")
    ap.add_argument("--big", action="store_true", help="also time-to-serving with 10M keys")
    ap.add_argument("--strongbox-bin", help="server binary for the strongbox column (skips the build)")
    ap.add_argument("--redis-bin", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    ap.add_argument("--valkey-bin", default=shutil.which("valkey-server"),
                    help="third column if given or on PATH; --valkey-bin '' to disable")
    ap.add_argument("--no-build", action="store_true", help="use target/release/strongbox-server as is")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"),
                    help="markdown output (sections not run are kept)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not write the markdown")
    ap.add_argument("--json", help="also write raw results as JSON here")
    ap.add_argument("--tmpdir", default=None, help="parent of the temporary data dirs (default $TMPDIR)")
    ap.add_argument("--render", metavar="JSON",
                    help="re-render the markdown from a --json file of an earlier run (no servers)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="throughput and latency runs per line, median kept (default 3, --quick 1)")
    ap.add_argument("--latency-rate", type=int, default=None, help="req/s of the latency section")
    ap.add_argument("--load-rate", type=int, default=None, help="SET/s of the compaction write load")
    ap.add_argument("--probe-rate", type=int, default=None,
                    help="req/s of the compaction probe (default 2000)")
    ap.add_argument("--rewrites", type=int, default=None,
                    help="BGREWRITEAOFs per server in the compaction section, pooled (default 5, --quick 3)")
    args = ap.parse_args()

    if args.render:
        return render_only(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error("unknown section(s): %s" % ",".join(bad))
    for tool in ("redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            ap.error("%s not on PATH (apt-get install redis-tools)" % tool)

    if args.strongbox_bin:
        sb = args.strongbox_bin
    elif args.no_build:
        sb = os.path.join(REPO, "target", "release", "strongbox-server")
    else:
        sb = build_strongbox()
    if not os.path.exists(sb):
        ap.error("strongbox binary %s does not exist" % sb)

    ctx = Ctx(args)
    # Run a private copy: target/release is shared and may be rebuilt by someone else mid-run.
    sb_copy = os.path.join(ctx.tmp, "strongbox-server.bench-copy")
    shutil.copy2(sb, sb_copy)
    with open(sb_copy, "rb") as f:
        sb_sha = hashlib.sha256(f.read()).hexdigest()[:12]
    ctx.targets = [Target("redis", args.redis_bin, "redis"), Target("strongbox", sb_copy, "strongbox")]
    if args.valkey_bin:
        ctx.targets.append(Target("valkey", args.valkey_bin, "valkey"))
    versions = {t.name: t.version() for t in ctx.targets}
    versions["strongbox"] += ", %s sha256 %s…" % (sb, sb_sha)
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    if rev and not args.strongbox_bin and not args.no_build:
        versions["strongbox"] += ", built from %s" % rev
    elif args.no_build:
        mtime = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(sb)))
        versions["strongbox"] += ", binary as built at %s (--no-build; HEAD now %s)" % (mtime, rev or "?")
    machine = machine_info(ctx.tmp)
    cmdline = " ".join(shlex.quote(a) for a in ["bench/run.py"] + sys.argv[1:])
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    log("machine: %s" % json.dumps(machine))
    for t in ctx.targets:
        log("%s: %s (%s)" % (t.name, t.binary, versions[t.name]))

    funcs = {"throughput": section_throughput, "latency": section_latency, "memory": section_memory,
             "startup": section_startup, "compaction": section_compaction}
    tables_by_section = {}
    t_all = time.perf_counter()
    try:
        for sec in SECTIONS:
            if sec not in only:
                continue
            log("=== section %s" % sec)
            t0 = time.perf_counter()
            try:
                ctx.results[sec] = funcs[sec](ctx)
            except Exception as e:  # noqa: BLE001 - record and continue with the next section
                ctx.failures.append("%s / all / section: %s" % (sec, e))
                log("section %s aborted: %s" % (sec, e))
                continue
            log("section %s took %.1f s" % (sec, time.perf_counter() - t0))
            tables_by_section[sec] = tables_for(ctx, sec, ctx.results[sec])
    finally:
        for s in LIVE_SERVERS:
            s.kill()
        shutil.rmtree(ctx.tmp, ignore_errors=True)

    print("\nMachine: %s" % json.dumps(machine))
    for sec, tables in tables_by_section.items():
        for t in tables:
            print(t.text())
    if ctx.failures:
        print("\nFailures:")
        for f in ctx.failures:
            print("  - " + f)
    print("\nTotal %.1f s" % (time.perf_counter() - t_all))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "date": date, "command": cmdline, "versions": versions,
                       "binaries": {t.name: (sb if t.name == "strongbox" else t.binary) for t in ctx.targets},
                       "results": ctx.results, "failures": ctx.failures}, f, indent=1, default=str)
    if not args.no_write and tables_by_section:
        write_doc(ctx, machine, tables_by_section, cmdline, date, versions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
