#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz corpora (fuzz/corpus/<target>/seed-*).

Usage: python3 fuzz/make_seeds.py            (from the repository root; needs redis-server)

Seeds are small on purpose: libFuzzer mutates short inputs far faster, and the large Redis
fixtures in ../shared/fixtures are replayed by tests/fuzz_corpora.rs directly. Re-running this
script rewrites the same files (RDB files carry Redis's ctime/used-mem aux fields, so those bytes
differ from run to run).
"""

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")
FIXTURES = os.path.join(ROOT, "..", "..", "shared", "fixtures")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


# --- resp_request: 2-byte little-endian split point, then the client's byte stream ----------

def resp_request():
    streams = {
        "ping": cmd("PING"),
        "pipeline": cmd("SET", "k", "v") + cmd("GET", "k") + cmd("INCR", "n") + cmd("DEL", "k"),
        "inline": b"PING\r\nSET k \"a\\x41\\n b\" 'c\\'d'\r\nGET k\n\r\n",
        "inline-unbalanced": b"SET k \"abc\r\n",
        "inline-quote-then-char": b"SET k \"a\"b\r\n",
        "mixed": cmd("SET", "k", "v") + b"GET k\r\n" + cmd("DEL", "k"),
        "empty-multibulk": b"*0\r\n*-1\r\n" + cmd("PING"),
        "bad-count": b"*abc\r\n",
        "count-too-big": b"*99999999999\r\n",
        "bad-bulk-len": b"*1\r\n$-5\r\n",
        "bulk-len-leading-zero": b"*1\r\n$04\r\nPING\r\n",
        "bulk-len-plus": b"*1\r\n$+4\r\nPING\r\n",
        "bulk-too-big": b"*1\r\n$536870913\r\n",
        "expected-dollar": b"*2\r\n$3\r\nGET\r\n:1\r\n",
        "partial-bulk": b"*2\r\n$3\r\nGET\r\n$10\r\nabc",
        "binary-arg": cmd("SET", b"\x00\xff\r\n", b"\r\n\r\n"),
        "huge-count-small-body": b"*1000000\r\n$1\r\na\r\n",
        "bulk-no-crlf": b"*1\r\n$3\r\nGETxx",
        "nul-inline": b"GET a\x00b\r\n",
    }
    for name, s in streams.items():
        split = len(s) // 2
        write("resp_request", name, struct.pack("<H", split) + s)


# --- aof_storage_resp and aof_batch ---------------------------------------------------------

def batch(seq, prev_crc, payload):
    crc = zlib.crc32(struct.pack("<IQQ", prev_crc, seq, len(payload)) + payload) & 0xFFFFFFFF
    return b"#SB %d %d %08x %08x\r\n" % (seq, len(payload), prev_crc, crc) + payload, crc


def batches(payloads):
    out, crc = b"", 0
    for i, p in enumerate(payloads, 1):
        b, crc = batch(i, crc, p)
        out += b
    return out


def aof():
    plain = {
        "redis-incr": b"#TS:1700000000\r\n" + cmd("SELECT", 0) + cmd("SET", "a", "1")
        + cmd("RPUSH", "l", "x", "y") + b"#TS:1700000001\r\n" + cmd("DEL", "a"),
        "multi-exec": cmd("MULTI") + cmd("INCR", "c") + cmd("EXEC"),
        "bare-lf": b"*1\n$4\nPING\n",
        "bad-arg-count": b"*0\r\n",
        "leading-zero-len": b"*1\r\n$004\r\nPING\r\n",
        "torn": cmd("SET", "a", "1") + cmd("SET", "b", "2")[:-3],
        "long-annotation": b"#" + b"x" * 1100 + b"\r\n",
        "binary": cmd("SET", b"\x00\xff", b"\r\n\x00"),
    }
    for name, s in plain.items():
        write("aof_storage_resp", name, s)
        write("aof_batch", name, s)

    p1 = b"#TS:1700000000\r\n" + cmd("SET", "a", "1") + cmd("INCR", "n")
    p2 = cmd("MULTI") + cmd("LPUSH", "l", "x") + cmd("EXEC")
    p3 = cmd("DEL", "a")
    good = batches([p1, p2, p3])
    hand = {
        "batches": good,
        "batch-empty-payload": batches([b"", p3]),
        "batches-torn": good[:-4],
        "batch-flipped": good[:40] + bytes([good[40] ^ 1]) + good[41:],
        "batches-swapped": batches([p1]) + batch(3, 0, p3)[0],
        "batch-bad-payload": batches([b"*2\r\n$3\r\nGET\r\n"]),
        "batch-then-plain": batches([p1]) + cmd("SET", "z", "9"),
        "plain-then-batch": cmd("SET", "z", "9") + batches([p1]),
        "batch-bad-header": b"#SB 1 x 00000000 00000000\r\n" + p3,
        "batch-resync": batches([p1]) + b"garbage\r\n" + batch(2, 0, p2)[0],
        "unknown-annotation": b"#XX hello\r\n" + cmd("PING"),
    }
    for name, s in hand.items():
        write("aof_batch", name, s)
    # The sealed-payload half of the aof_batch check splits its input at 0xFF bytes.
    write("aof_batch", "payloads-ff", p1 + b"\xff" + p2 + b"\xff" + b"*1\r\n$3\r\nab")
    write("aof_storage_resp", "batches", good)

    # Heads of the real fixtures (whole files are replayed by tests/fuzz_corpora.rs).
    for sub in ("redis-7.0-aof-plain", "redis-7.0-aof-rdb-base"):
        path = os.path.join(FIXTURES, sub, "appendonly.aof.2.incr.aof")
        if os.path.exists(path):
            with open(path, "rb") as f:
                head = f.read(1500)
            write("aof_batch", sub + "-incr-head", head)
            write("aof_storage_resp", sub + "-incr-head", head)


# --- aof_manifest ----------------------------------------------------------------------------

def manifest():
    seeds = {
        "redis": b"file appendonly.aof.1.base.rdb seq 1 type b\n"
        b"file appendonly.aof.1.incr.aof seq 1 type i\n",
        "history": b"file a.2.base.aof seq 2 type b\nfile a.1.base.rdb seq 1 type h\n"
        b"file a.1.incr.aof seq 1 type h\nfile a.2.incr.aof seq 2 type i\n"
        b"file a.3.incr.aof seq 3 type i\n",
        "quoted": b"file \"a b\\x00\\n.aof\" seq 1 type i\n",
        "comment": b"# comment\nfile x seq 1 type b\n",
        "only-comment": b"#\n",
        "crlf-spaces": b"  file x seq 1 type b  \r\n",
        "case-extra-keys": b"FILE x SEQ 7 TYPE i extra val\n",
        "no-newline": b"file x seq 1 type b",
        "path": b"file ../x seq 1 type b\n",
        "dup-base": b"file x seq 1 type b\nfile y seq 2 type b\n",
        "non-monotonic": b"file x seq 2 type i\nfile y seq 2 type i\n",
        "unknown-type": b"file x seq 1 type z\n",
        "seq-zero": b"file x seq 0 type i\n",
        "seq-atoll": b"file x seq 12abc type i\n",
        "empty": b"",
        "odd-args": b"file x seq 1 type\n",
        "long-line": b"file " + b"x" * 1100 + b" seq 1 type b\n",
    }
    for name, s in seeds.items():
        write("aof_manifest", name, s)
    path = os.path.join(FIXTURES, "redis-7.0-aof-rdb-base", "appendonly.aof.manifest")
    if os.path.exists(path):
        with open(path, "rb") as f:
            write("aof_manifest", "fixture", f.read())


# --- rdb_reader: small RDB files written by redis-server, truncated variants, DUMP bodies ----

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rdb():
    if not shutil.which("redis-server"):
        print("redis-server not found: RDB seeds skipped")
        return
    tmp = tempfile.mkdtemp()
    port = free_port()
    srv = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", tmp, "--dbfilename", "dump.rdb"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cli(*args, raw=False):
        out = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args],
                             check=True, capture_output=True).stdout
        return out

    try:
        for _ in range(100):
            try:
                if cli("PING").strip() == b"PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)

        def save(name):
            cli("SAVE")
            with open(os.path.join(tmp, "dump.rdb"), "rb") as f:
                data = f.read()
            write("rdb_reader", name, data)
            return data

        def dump_body(key, name):
            # DUMP payload without its 10-byte footer: the check adds a verifying footer.
            out = subprocess.run(["redis-cli", "-p", str(port), "--no-raw", "DUMP", key],
                                 check=True, capture_output=True).stdout.strip()
            payload = eval(b"b" + out)  # redis-cli prints a C-escaped quoted string
            write("rdb_reader", "dump-" + name, payload[:-10])

        save("empty")
        cli("SET", "s", "hello")
        cli("SET", "i", "12345")
        cli("SET", "big", "a" * 200)  # LZF-compressed
        cli("SET", "e", "x", "PX", "99999999999")
        dump_body("big", "string-lzf")
        save("strings")
        cli("FLUSHALL")
        cli("RPUSH", "l", "a", "b", "1", "-7", "x" * 40)
        cli("HSET", "h", "f", "v", "n", "1")
        cli("SADD", "si", "1", "2", "3")
        cli("SADD", "ss", "a", "b")
        cli("ZADD", "z", "1.5", "a", "-inf", "b", "3", "c")
        for k, n in (("l", "list-quicklist"), ("h", "hash-listpack"), ("si", "set-intset"),
                     ("ss", "set-hashtable"), ("z", "zset-listpack")):
            dump_body(k, n)
        save("collections-small")
        cli("CONFIG", "SET", "hash-max-listpack-entries", "1")
        cli("CONFIG", "SET", "zset-max-listpack-entries", "1")
        cli("CONFIG", "SET", "set-max-intset-entries", "1")
        cli("CONFIG", "SET", "list-max-listpack-size", "2")
        cli("FLUSHALL")
        cli("RPUSH", "l", "a", "b", "c", "d", "e")
        cli("HSET", "h", "f", "v", "g", "w")
        cli("SADD", "s", "1", "2", "3")
        cli("ZADD", "z", "1", "a", "2", "b")
        for k, n in (("l", "list-multi-node"), ("h", "hash-table"), ("s", "set-table"),
                     ("z", "zset-skiplist")):
            dump_body(k, n)
        save("collections-big-encodings")
        cli("FLUSHALL")
        cli("XADD", "st", "1-1", "a", "1", "b", "2")
        cli("XADD", "st", "2-0", "a", "3")
        cli("XADD", "st", "3-0", "c", "4")
        cli("XDEL", "st", "2-0")
        cli("XGROUP", "CREATE", "st", "g", "0")
        cli("XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "STREAMS", "st", ">")
        cli("XGROUP", "CREATECONSUMER", "st", "g", "c2")
        dump_body("st", "stream")
        save("stream")
        cli("FLUSHALL")
        cli("FUNCTION", "LOAD",
            "#!lua name=lib\nredis.register_function('f', function() return 1 end)")
        cli("SELECT", "3")
        cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")
        subprocess.run(["redis-cli", "-p", str(port), "-n", "3", "SET", "k", "v"], check=True,
                       capture_output=True)
        full = save("function-db3-lfu")
        write("rdb_reader", "function-db3-lfu-truncated", full[: len(full) // 2])
        write("rdb_reader", "function-db3-lfu-no-crc", full[:-8])
        cli("CONFIG", "SET", "rdbchecksum", "no")
        save("checksum-disabled")
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    # Truncated heads of the real fixtures (whole files are replayed by the test).
    for name in ("redis-7.0-all-types.rdb", "valkey-8.0-all-types.rdb",
                 "redis-7.0-all-types-uncompressed.rdb"):
        path = os.path.join(FIXTURES, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                head = f.read(3000)
            write("rdb_reader", name.replace(".rdb", "") + "-head", head)
    write("rdb_reader", "bad-magic", b"REDIX0010\xff")
    write("rdb_reader", "version-12", b"REDIS0012\xff")
    write("rdb_reader", "valkey-80", b"VALKEY080\xff")


# --- function_dump: FUNCTION DUMP payloads (FUNCTION2 records + version 10 + CRC-64) ----------

def crc64(data):
    """Redis's CRC-64 (Jones polynomial, reflected, init 0), as storage/src/rdb/crc64.rs."""
    poly = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9 bit-reversed
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc


def rdb_string(b):
    n = len(b)
    if n < 64:
        head = bytes([n])
    elif n < 16384:
        head = bytes([0x40 | (n >> 8), n & 0xFF])
    else:
        head = b"\x80" + struct.pack(">I", n)
    return head + b


def function_payload(codes, version=10, opcode=0xF5):
    body = b"".join(bytes([opcode]) + rdb_string(c) for c in codes)
    body += struct.pack("<H", version)
    return body + struct.pack("<Q", crc64(body))


def function_dump():
    lib = b"#!lua name=t\nredis.register_function('f', function(keys, args) return 1 end)"
    lib2 = b"#!lua name=u\n" + b"-- x\n" * 40 + b"redis.register_function('g', function() return 2 end)"
    good = function_payload([lib])
    write("function_dump", "one-library", good)
    write("function_dump", "two-libraries", function_payload([lib, lib2]))
    write("function_dump", "empty", function_payload([]))
    write("function_dump", "version-11", function_payload([lib], version=11))
    write("function_dump", "version-12", function_payload([lib], version=12))
    write("function_dump", "pre-ga-opcode", function_payload([lib], opcode=0xF6))
    write("function_dump", "string-record", function_payload([b"k"], opcode=0))
    write("function_dump", "truncated", good[: len(good) // 2])
    write("function_dump", "bad-crc", good[:-1] + bytes([good[-1] ^ 1]))
    # An LZF string record (0xC3 clen ulen data) and an int-encoded one, footers verifying.
    lzf = b"\xf5\xc3\x06\x08\x02abc\x60\x02"  # "abcabcab": 3 literals, a 5-byte back-reference
    body = lzf + struct.pack("<H", 10)
    write("function_dump", "lzf-record", body + struct.pack("<Q", crc64(body)))
    body = b"\xf5\xc0\x7b" + struct.pack("<H", 10)
    write("function_dump", "int-record", body + struct.pack("<Q", crc64(body)))
    write("function_dump", "split-libraries", lib + b"\xff" + lib2 + b"\xff")


# --- acl_rules: aclfile text (each line also tried as ACL SETUSER rules) ----------------------

def acl_rules():
    files = {
        "default": b"user default on nopass ~* &* +@all\n",
        "users": b"user default on nopass ~* &* +@all\n"
                 b"user alice on >pw ~app:* %R~ro:* %W~wo:* resetchannels &news:* -@all +@read +get -config +config|get\n"
                 b"user bob off #" + b"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" + b" nopass sanitize-payload\n",
        "selectors": b"user s on nopass (~a* +get) (&ch +publish %R~r*) clearselectors (+set ~b*)\n",
        "split-selector": b"user s on (+get ~a*\n",
        "firstargs": b"user f on nopass +@all -select +select|0 -debug +debug|object\n",
        "errors": b"user e on ~* ~a &* &b <nopw #abc %X~a +nosuch +@nosuch +config|get|x +select|\n",
        "reset": b"user r on >a >b <a reset allkeys allchannels allcommands nocommands resetkeys resetchannels resetpass\n",
        "quotes": b"user q on \"~a b\" '&c' \"+get\"\nuser x \"unbalanced\n",
        "not-user": b"bogus line\n# comment\n\nuser\nuser default\nuser default on\n",
        "crlf-tabs": b"user t on nopass ~* +@all\r\n\tuser u on\r\n",
        "binary": b"user b on ~\xff\xfe &\x00 >\x80\n",
    }
    for name, data in files.items():
        write("acl_rules", name, data)


if __name__ == "__main__":
    resp_request()
    aof()
    manifest()
    rdb()
    function_dump()
    acl_rules()
