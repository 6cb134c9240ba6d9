#!/usr/bin/env python3
"""The longest single command while the keyspace grows past a table size (issue 7, latency).

A hash table that doubles all at once stalls the one write that finds it full for the whole
rehash. This starts a server, loads --preload keys with `redis-cli --pipe`, turns on SLOWLOG
for commands over --slower-than µs, sends --grow single SETs of new keys one at a time (past
917,504 = 2^20 * 7/8 and 1,048,576 keys with the defaults, where a hashbrown index and a
doubling vector grow), and prints the slowest commands SLOWLOG saw. SLOWLOG times execution
inside the server, so the figure does not depend on the client or the network.

Usage: bench/growth_stall.py [--server strongbox|redis] [--bin PATH] [--preload 900000]
                             [--grow 160000] [--slower-than 500] [-- extra server args]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["strongbox", "redis"], default="strongbox")
    ap.add_argument("--bin", help="server binary (default: target/release/strongbox-server or redis-server)")
    ap.add_argument("--preload", type=int, default=900_000)
    ap.add_argument("--grow", type=int, default=160_000)
    ap.add_argument("--slower-than", type=int, default=500, help="SLOWLOG threshold, µs")
    ap.add_argument("extra", nargs="*", help="extra server arguments (after --)")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = a.bin or (os.path.join(root, "target/release/strongbox-server") if a.server == "strongbox" else "redis-server")
    d = tempfile.mkdtemp(prefix="growth-stall-")
    port = free_port()
    srv = subprocess.Popen([binary, "--port", str(port), "--dir", d, "--save", "", "--appendonly", "no"] + a.extra,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        data = b"".join(cmd("SET", "key:%d" % i, "x") for i in range(a.preload))
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data, check=True, stdout=subprocess.DEVNULL)
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")

        def call(*args):
            s.sendall(cmd(*args))
            return f.readline()

        call("CONFIG", "SET", "slowlog-log-slower-than", a.slower_than)
        call("CONFIG", "SET", "slowlog-max-len", 10000)
        call("SLOWLOG", "RESET")
        for i in range(a.grow):
            call("SET", "grow:%d" % i, "x")
        out = subprocess.run(["redis-cli", "-p", str(port), "--json", "SLOWLOG", "GET", "10000"],
                             capture_output=True, text=True).stdout
        import json
        entries = json.loads(out) if out.strip() else []
        durs = sorted(((e[2], " ".join(e[3])) for e in entries), reverse=True)
        dbsize = int(subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True).stdout)
        print("%s: %d keys; %d commands over %d µs; slowest: %s" % (
            a.server, dbsize, len(durs), a.slower_than,
            ", ".join("%d µs (%s)" % (d_, c) for d_, c in durs[:5]) or "none"))
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
