#!/usr/bin/env python3
"""Compaction (BGREWRITEAOF) of a dataset of a few huge collections, under a write load that
touches them: the server's own figures (INFO persistence strongbox_compaction_*) and RSS growth.

    python3 bench/bigkeys.py --server target/release/strongbox-server [--elements 3000000]

Builds one hash, one list and one zset of --elements each (or those named by --types) (plus --small small string keys),
then runs BGREWRITEAOF while a writer process sends HSET/RPUSH/ZADD to the huge keys and SETs
to small keys, paced (--rate commands/s), and a probe measures its own round trips. Prints one
JSON object. The server runs with --appendonly yes --appendfsync everysec in a temp dir.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def info(c):
    return c.info("persistence")


def rewrite(c):
    """BGREWRITEAOF, after any rewrite in progress (the server may start one on its own)."""
    while True:
        while info(c)["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        try:
            c.bgrewriteaof()
            return
        except redis.ResponseError as e:
            if "in progress" not in str(e):
                raise
            time.sleep(0.05)


def build(c, n, small, types):
    batch = 1000
    for start in range(0, n, batch):
        end = min(n, start + batch)
        p = c.pipeline(transaction=False)
        if "hash" in types:
            p.execute_command("HSET", "bighash", *[x for i in range(start, end) for x in ("field:%d" % i, "value:%d" % i)])
        if "list" in types:
            p.execute_command("RPUSH", "biglist", *["element:%d" % i for i in range(start, end)])
        if "zset" in types:
            p.execute_command("ZADD", "bigzset", *[x for i in range(start, end) for x in (i * 0.5, "member:%d" % i)])
        if "set" in types:
            p.execute_command("SADD", "bigset", *["member:%d" % i for i in range(start, end)])
        p.execute()
    for start in range(0, small, batch):
        p = c.pipeline(transaction=False)
        for i in range(start, min(small, start + batch)):
            p.set("key:%07d" % i, "v%d" % i)
        p.execute()


def writer(port, rate, stop_at, types):
    c = redis.Redis(port=port)
    i = 0
    # A fifth kind of write when there is a huge set (the default mix keeps its four).
    kinds = 5 if "set" in types else 4
    t0 = time.perf_counter()
    while time.perf_counter() < stop_at:
        due = int((time.perf_counter() - t0) * rate)
        if i >= due:
            time.sleep(0.001)
            continue
        p = c.pipeline(transaction=False)
        while i < due:
            m = i % kinds
            if m == 0 and "hash" in types:
                p.hset("bighash", "field:%d" % (i * 7919 % 10_000_000), "w%d" % i)
            elif m == 1 and "list" in types:
                # A job queue: producers push at the tail, workers pop at the head.
                p.rpush("biglist", "w%d" % i)
                p.lpop("biglist")
            elif m == 2 and "zset" in types:
                p.zadd("bigzset", {"member:%d" % (i * 7919 % 10_000_000): i})
            elif m == 3 and "set" in types:
                p.sadd("bigset", "member:%d" % (i * 7919 % 10_000_000))
            else:
                p.set("key:%07d" % (i % 100_000), "w%d" % i)
            i += 1
        p.execute()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--elements", type=int, default=3_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--server-args", default="",
                    help="extra server arguments, e.g. '--list-compress-depth 0'")
    ap.add_argument("--types", default="hash,list,zset",
                    help="huge collections to build, comma-separated: hash, list, zset, set "
                         "(list alone: a job queue)")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="bigkeys-")
    port = free_port()
    srv = subprocess.Popen([args.server, "--port", str(port), "--dir", d, "--save", "",
                            "--appendonly", "yes", "--appendfsync", "everysec"] + args.server_args.split(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = redis.Redis(port=port)
        for _ in range(100):
            try:
                c.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        types = set(args.types.split(","))
        build(c, args.elements, args.small, types)
        # A first rewrite so the measured one starts from a compact log, as in steady state.
        rewrite(c)
        while info(c)["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        time.sleep(0.5)
        rss0 = rss_kib(srv.pid)
        stop_at = time.perf_counter() + 3600
        w = multiprocessing.Process(target=writer, args=(port, args.rate, stop_at, types))
        w.start()
        time.sleep(0.3)
        probe = redis.Redis(port=port)
        lat = []
        t0 = time.perf_counter()
        rewrite(c)
        peak = rss0
        while True:
            t = time.perf_counter()
            probe.get("key:0000001")
            lat.append((time.perf_counter() - t) * 1000)
            peak = max(peak, rss_kib(srv.pid))
            if len(lat) % 20 == 0 and not info(c)["aof_rewrite_in_progress"]:
                break
            time.sleep(0.002)
        dur = time.perf_counter() - t0
        w.terminate()
        w.join()
        st = info(c)
        lat.sort()
        out = {
            "types": args.types,
            "elements": args.elements,
            "duration_s": round(dur, 3),
            "rss_before_mib": round(rss0 / 1024, 1),
            "rss_peak_growth_mib": round((peak - rss0) / 1024, 1),
            "probe_p99_ms": round(lat[int(len(lat) * 0.99)], 3),
            "probe_max_ms": round(lat[-1], 3),
        }
        for k, v in st.items():
            if str(k).startswith("strongbox_compaction_"):
                out[k] = v
        print(json.dumps(out, indent=1))
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
