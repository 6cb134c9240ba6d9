#!/usr/bin/env python3
"""What one write + fdatasync costs on this disk: appended vs over durable padding.

    python3 bench/fsync_padding.py [--dir D] [--n N] [--size BYTES ...] [--chunk BYTES ...]

For each write size: N iterations of write(size) + fdatasync, (a) appending to an empty
file, (b) over padding fsynced beforehand, (c) over padding extended CHUNK bytes at a time
inside the loop (as the `always` log writer does). Prints p50 / mean / p99 / max in µs.
See docs/design-aof.md §3.3 and docs/benchmarks.md ("Padding").
"""
import argparse
import os
import time


def run(path, size, n, mode, chunk=0):
    buf = b"x" * size
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    pad_end = 0
    if mode == "pre":
        os.write(fd, b" " * (size * n + 4096))
        os.fsync(fd)
        pad_end = size * n + 4096
    pos = 0
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter()
        if mode == "chunk" and pos + size > pad_end:
            os.pwrite(fd, b" " * chunk, pad_end)
            pad_end += chunk
            os.fdatasync(fd)
        os.pwrite(fd, buf, pos)
        pos += size
        os.fdatasync(fd)
        lat.append(time.perf_counter() - a)
    total = time.perf_counter() - t0
    os.close(fd)
    os.unlink(path)
    lat.sort()
    us = lambda x: x * 1e6
    return "p50 %5.0f  mean %5.0f  p99 %5.0f  max %6.0f µs" % (
        us(lat[n // 2]), us(total / n), us(lat[n * 99 // 100]), us(lat[-1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=".")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--size", type=int, nargs="+", default=[2200, 36000])
    ap.add_argument("--chunk", type=int, nargs="+", default=[262144, 1 << 20])
    a = ap.parse_args()
    path = os.path.join(a.dir, "fsync_padding.tmp")
    for size in a.size:
        print("%6d B appended       %s" % (size, run(path, size, a.n, "append")))
        print("%6d B over padding   %s" % (size, run(path, size, a.n, "pre")))
        for c in a.chunk:
            print("%6d B padding %7d %s" % (size, c, run(path, size, a.n, "chunk", c)))


if __name__ == "__main__":
    main()
