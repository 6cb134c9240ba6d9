//! DEBUG: the subcommands Redis's test suite and tools use, where they mean something for
//! Strongbox. Subcommands that tune a Redis internal Strongbox does not have are accepted with
//! Redis's argument checks and say so below; the rest answer "unknown subcommand".

use bytes::Bytes;

use super::help_reply;
use crate::cmd::err;
use crate::ctx::Ctx;
use crate::keyspace::Value;
use crate::resp::{Reply, OK};

/// DEBUG HELP: the subcommands Strongbox has (Redis 7.0's names and arguments).
const DEBUG_HELP: &[&str] = &[
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "PAUSE-CRON <0|1>",
    "    Stop periodic cron job processing.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from RDB.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys will generate an exception and kill the server.",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "    Examples:",
    "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
    "      the database.",
    "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
    "      existing RDB file.",
    "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
    "      file to the database.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SET-DISABLE-DENY-SCRIPTS <0|1>",
    "    Setting it to 1 allows scripts to call commands flagged as not allowed in scripts.",
    "SET-SKIP-CHECKSUM-VALIDATION <0|1>",
    "    Enables or disables checksum checks for RDB files and RESTORE's payload.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "STRINGMATCH-TEST",
    "    Run a fuzz tester against the glob matcher.",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Accepted for compatibility: Strongbox's lists have no plain (unpacked) nodes.",
    "REPLYBUFFER PEAK-RESET-TIME <NEVER||RESET|time>",
    "    Accepted for compatibility: Strongbox's reply buffers are not resized.",
    "REPLYBUFFER RESIZING <0|1>",
    "    Accepted for compatibility: Strongbox's reply buffers are not resized.",
];

/// The reply DEBUG PROTOCOL gives for an unknown type.
const PROTOCOL_TYPES_ERR: &str = "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false";

pub(super) fn debug(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    match (&sub[..], args.len()) {
        (b"help", 2) => help_reply("debug", DEBUG_HELP),
        (b"sleep", 3) => {
            // Redis blocks its event loop (nanosleep): so does this, on the execution thread.
            let secs = crate::util::parse_f64(&args[2]).unwrap_or(0.0).max(0.0);
            std::thread::sleep(std::time::Duration::from_micros((secs * 1e6) as u64));
            OK
        }
        (b"object", 3) => super::misc::debug_object(ctx, &args[2]),
        (b"reload", _) => super::misc::debug_reload(ctx, &args[2..]),
        // Clients are served meanwhile (-LOADING, or what Redis allows while loading).
        (b"loadaof", _) => {
            match crate::loading::while_serving(ctx.srv, 0, crate::aof::reload_from_files) {
                Ok(()) => {
                    tracing::warn!("Append Only File loaded by DEBUG LOADAOF");
                    OK
                }
                // Redis exits when the files do not load; the dataset here is what loaded.
                Err(e) => Reply::Error(format!("ERR Error loading the append only file: {e}")),
            }
        }
        (b"log", 3) => {
            tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(&args[2]));
            OK
        }
        (b"error", 3) => {
            // No newlines in errors.
            let msg: String = String::from_utf8_lossy(&args[2])
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                .collect();
            Reply::Error(msg)
        }
        (b"populate", 3..=5) => populate(ctx, args),
        (b"digest", 2) => Reply::StatusOwned(hex(&dataset_digest(ctx))),
        (b"digest-value", _) => {
            let db = ctx.client.db;
            let out = args[2..]
                .iter()
                // As Redis: no lookup, so a logically expired key still has its digest.
                .map(|k| {
                    let d = &ctx.srv.dbs[db];
                    let mut digest = [0u8; 20];
                    if let Some(o) = d.keys.get(k) {
                        value_digest(&mut digest, &o.value, d.expire_of(k).is_some());
                    }
                    Reply::StatusOwned(hex(&digest))
                })
                .collect();
            Reply::Array(out)
        }
        (b"protocol", 3) => protocol(ctx, &args[2]),
        (b"set-active-expire", 3) => {
            ctx.srv.active_expire_enabled = atoi(&args[2]) != 0;
            OK
        }
        (b"pause-cron", 3) => {
            ctx.srv.cron_paused = atoi(&args[2]) != 0;
            OK
        }
        (b"set-skip-checksum-validation", 3) => {
            ctx.srv.skip_checksum_validation = atoi(&args[2]) != 0;
            OK
        }
        (b"set-disable-deny-scripts", 3) => {
            ctx.srv.script_disable_deny = atoi(&args[2]) != 0;
            OK
        }
        (b"stringmatch-test", 2) => {
            stringmatch_fuzz();
            Reply::Status("Apparently Redis did not crash: test passed")
        }
        (b"change-repl-id", 2) => {
            tracing::warn!("Changing replication IDs after receiving DEBUG change-repl-id");
            crate::master::change_replid(ctx.srv);
            OK
        }
        (b"quicklist-packed-threshold", 3) => {
            // Redis's threshold above which a list element gets a node of its own ("plain"
            // node); our lists keep every element packed, so only the argument is checked.
            match crate::config::parse_memory(&String::from_utf8_lossy(&args[2])) {
                // Redis's quicklistisSetPackedThreshold: anything up to 4 GiB - 1 MiB (0 means
                // its default), despite the error text.
                Some(v) if (0..=(1i64 << 32) - (1 << 20)).contains(&v) => OK,
                _ => Reply::err(
                    "ERR argument must be a memory value bigger than 1 and smaller than 4gb",
                ),
            }
        }
        (b"replybuffer", 4) => {
            // Redis's reply buffer resizing (peak reset time, resizing on/off) tunes its
            // client output buffer allocation, which Strongbox does not have: arguments are
            // checked as Redis does, nothing else changes.
            let what = args[2].to_ascii_lowercase();
            match &what[..] {
                b"peak-reset-time" => {
                    let v = &args[3];
                    if v.eq_ignore_ascii_case(b"never")
                        || v.eq_ignore_ascii_case(b"reset")
                        || crate::util::parse_i64(v).is_some()
                    {
                        OK
                    } else {
                        Reply::err(err::NOT_INT)
                    }
                }
                b"resizing" => OK,
                _ => Reply::Error(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                    String::from_utf8_lossy(&args[1])
                )),
            }
        }
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

/// Redis's `stringmatchlen_fuzz_test`: random patterns against random strings, to show the
/// matcher neither crashes nor stalls on any of them.
fn stringmatch_fuzz() {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut hits = 0usize;
    // Redis runs 10 million rounds; fewer keep the server's pause short (it blocks, as Redis).
    for _ in 0..20_000 {
        let mut rand_bytes = || -> Vec<u8> {
            let len = rng.gen_range(0..32);
            (0..len).map(|_| rng.gen_range(0..128u8)).collect()
        };
        let pattern = rand_bytes();
        let s = rand_bytes();
        hits += usize::from(crate::util::glob_match(&pattern, &s, false));
    }
    tracing::debug!("stringmatch-test: {hits} matches");
}

/// C's `atoi`: optional spaces and sign, then digits up to the first non-digit; 0 if none.
fn atoi(s: &[u8]) -> i64 {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for &c in digits.iter().take_while(|c| c.is_ascii_digit()) {
        v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// DEBUG POPULATE count [prefix] [size]: string keys `prefix:N` = `value:N` (padded with NUL
/// bytes or cut to `size`), skipping names that exist. Not logged or replicated, as in Redis.
fn populate(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let positive = |a: &Bytes| match crate::util::parse_i64(a) {
        Some(v) if v >= 0 => Ok(v),
        Some(_) => Err(Reply::err("ERR value is out of range, must be positive")),
        None => Err(Reply::err(err::NOT_INT)),
    };
    let count = match positive(&args[2]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let size = match args.get(4).map(positive) {
        None => 0,
        Some(Ok(v)) => v as usize,
        Some(Err(e)) => return e,
    };
    if size > crate::limits::PROTO_MAX_BULK_LEN_DEFAULT as usize {
        return Reply::err("ERR value is out of range, must be positive");
    }
    let prefix: &[u8] = args.get(3).map(|p| &p[..]).unwrap_or(b"key");
    for j in 0..count {
        let mut key = prefix.to_vec();
        key.extend_from_slice(format!(":{j}").as_bytes());
        if ctx.exists(&key) {
            continue;
        }
        let mut val = format!("value:{j}").into_bytes();
        if size != 0 {
            val.resize(size, 0);
        }
        ctx.set_key(&key, Value::Str(val.into()));
    }
    OK
}

fn protocol(ctx: &mut Ctx, name: &[u8]) -> Reply {
    let resp3 = ctx.client.proto >= 3;
    let bulk = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    match &name.to_ascii_lowercase()[..] {
        b"string" => bulk("Hello World"),
        b"integer" => Reply::Int(12345),
        // Redis's test value, not π.
        #[expect(
            clippy::approx_constant,
            reason = "Redis's DEBUG PROTOCOL double is 3.141"
        )]
        b"double" => Reply::Double(3.141),
        b"bignum" => {
            let n = "1234567999999999999999999999999999999";
            if resp3 {
                Reply::Raw(Bytes::from(format!("({n}\r\n")))
            } else {
                bulk(n)
            }
        }
        b"null" => Reply::Nil,
        b"array" => Reply::Array((0..3).map(Reply::Int).collect()),
        b"set" => Reply::Set((0..3).map(Reply::Int).collect()),
        b"map" => Reply::Map(
            (0..3)
                .map(|j| (Reply::Int(j), Reply::Bool(j == 1)))
                .collect(),
        ),
        b"attrib" => {
            // An attribute is not a reply by itself: a real one follows it.
            let real = "$39\r\nSome real reply following the attribute\r\n";
            if resp3 {
                Reply::Raw(Bytes::from(format!(
                    "|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n{real}"
                )))
            } else {
                Reply::Raw(Bytes::from_static(real.as_bytes()))
            }
        }
        b"push" => {
            if !resp3 {
                return Reply::err("ERR RESP2 is not supported by this command");
            }
            // A push is out of band: a real reply follows it for clients that skip pushes.
            Reply::Raw(Bytes::from_static(
                b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\nSome real reply following the push reply\r\n",
            ))
        }
        b"true" => Reply::Bool(true),
        b"false" => Reply::Bool(false),
        b"verbatim" => Reply::Verbatim(Bytes::from_static(b"This is a verbatim\nstring")),
        _ => Reply::err(PROTOCOL_TYPES_ERR),
    }
}

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Redis's `xorDigest`: digest ^= SHA1(data). Order-free (sets, hash fields, keys).
fn xor_digest(digest: &mut [u8; 20], data: &[u8]) {
    let h = sha1_smol::Sha1::from(data).digest().bytes();
    for (d, h) in digest.iter_mut().zip(h) {
        *d ^= h;
    }
}

/// Redis's `mixDigest`: digest = SHA1(digest ^ SHA1(data)). Order-dependent (lists, streams).
fn mix_digest(digest: &mut [u8; 20], data: &[u8]) {
    xor_digest(digest, data);
    *digest = sha1_smol::Sha1::from(&digest[..]).digest().bytes();
}

/// Redis's `xorObjectDigest`, the same bytes in the same order: equal values give Redis's digest
/// (a dataset digest compares with redis-server's for the same data).
fn value_digest(digest: &mut [u8; 20], v: &Value, has_expire: bool) {
    // Redis's OBJ_* type numbers.
    let ty: u32 = match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    };
    mix_digest(digest, &ty.to_be_bytes());
    match v {
        Value::Str(s) => mix_digest(digest, &s.to_bytes()),
        Value::List(l) => {
            for e in l.iter() {
                mix_digest(digest, e.as_ref());
            }
        }
        Value::Set(s) => {
            for m in s.iter() {
                xor_digest(digest, m.as_ref());
            }
        }
        Value::ZSet(z) => {
            for (m, score) in z.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, &m);
                mix_digest(&mut e, crate::resp::fmt_g(score, 17).as_bytes());
                xor_digest(digest, &e);
            }
        }
        Value::Hash(h) => {
            for (f, val) in h.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, f.as_ref());
                mix_digest(&mut e, val.as_ref());
                xor_digest(digest, &e);
            }
        }
        Value::Stream(s) => {
            for (id, fields) in s.range(
                crate::types::stream::MIN_ID,
                crate::types::stream::MAX_ID,
                false,
            ) {
                mix_digest(digest, format!("{}.{}", id.ms, id.seq).as_bytes());
                for (f, val) in fields {
                    mix_digest(digest, f);
                    mix_digest(digest, val);
                }
            }
        }
    }
    if has_expire {
        xor_digest(digest, b"!!expire!!");
    }
}

/// Redis's `computeDatasetDigest`: per non-empty database, its number mixed in, then xored with
/// the SHA1 of every key's digest (key name mixed with its value's digest). All zeros for an
/// empty dataset.
fn dataset_digest(ctx: &mut Ctx) -> [u8; 20] {
    let mut fin = [0u8; 20];
    for (j, db) in ctx.srv.dbs.iter().enumerate() {
        if db.keys.is_empty() {
            continue;
        }
        mix_digest(&mut fin, &(j as u32).to_be_bytes());
        for (k, o) in db.keys.iter() {
            let mut d = [0u8; 20];
            mix_digest(&mut d, k.as_ref());
            value_digest(&mut d, &o.value, db.expire_of(k.as_ref()).is_some());
            // Redis's xorDigest(final, digest): the key's digest is hashed once more.
            xor_digest(&mut fin, &d);
        }
    }
    fin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b"0"), 0);
        assert_eq!(atoi(b" -12x"), -12);
        assert_eq!(atoi(b"yes"), 0);
    }
}
