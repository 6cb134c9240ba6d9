#!/usr/bin/env python3
"""Does this disk overlap concurrent fdatasyncs of one file? (issue 4: pipelined group commit)

N threads share one file; each loops: append a chunk (under a lock, so the file grows as a log
does), then fdatasync. With one thread this is the `appendfsync always` writer today (one fsync
in flight). If the device served two flushes at once, two threads would give about twice the
fsyncs per second at the same latency, and keeping two fsyncs in flight (fsync of batch N while
batch N+1 is written) would pay off. If fsyncs/s stay flat while latency doubles, the device
serializes flushes and pipelining them gains nothing.

Usage: bench/fsync_overlap.py [--dir DIR] [--count 1000] [--chunk 32768] [--threads 1,2,3]
Python threads release the GIL in os.write/os.fdatasync, so the syscalls do overlap.
"""
import argparse
import os
import tempfile
import threading
import time


def run(path, threads, count, chunk):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    lock = threading.Lock()
    buf = b"x" * chunk
    lat = [0.0] * threads

    def worker(i):
        for _ in range(count):
            with lock:
                os.write(fd, buf)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat[i] += time.perf_counter() - t

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    el = time.perf_counter() - t0
    os.close(fd)
    os.unlink(path)
    n = threads * count
    return n / el, sum(lat) / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None, help="directory on the disk to test (default: a temp dir)")
    ap.add_argument("--count", type=int, default=1000, help="fsyncs per thread")
    ap.add_argument("--chunk", type=int, default=32768, help="bytes appended before each fsync")
    ap.add_argument("--threads", default="1,2,3")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="fsync-overlap-")
    for th in [int(x) for x in a.threads.split(",")]:
        rate, us = run(os.path.join(d, "f"), th, a.count, a.chunk)
        print("threads=%d  fsyncs/s=%6.0f  mean fdatasync latency=%5.0f us" % (th, rate, us))
    if not a.dir:
        os.rmdir(d)


if __name__ == "__main__":
    main()
