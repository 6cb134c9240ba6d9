//! Key specs against redis-server 7.0: COMMAND INFO's `key_specs`, first/last/step and
//! `movablekeys` for every command and subcommand, COMMAND GETKEYS / GETKEYSANDFLAGS for
//! representative calls (VARIABLE_FLAGS commands, key counts, keywords, bad arguments), and
//! the ACL's per-key decisions: users with `%R~`, `%W~` and `~` patterns (and selectors) run
//! the same calls on both servers and must be allowed or refused alike, with the same reply
//! bytes and the same ACL LOG entries.

mod common;

use common::{escape, parse_frame, Frame, RawConn, RedisServer, StrongboxServer};

fn frame(raw: &[u8]) -> Frame {
    parse_frame(raw).unwrap().expect("a complete reply")
}

/// Commands and subcommands Strongbox has that Redis 7.0 does not (Redis 7.2's).
const NOT_IN_REDIS_7_0: &[&str] = &["waitaof", "client|no-touch", "client|setinfo"];

/// src/cmd/keyspecs.rs is what scripts/gen-keyspecs.py makes of Redis 7.0.15's command
/// descriptions (the source scripts/redis-suite.sh unpacks; REDIS_SUITE_SRC elsewhere).
#[test]
fn generated_key_specs_are_up_to_date() {
    let root = common::repo_root();
    let src = std::env::var("REDIS_SUITE_SRC").unwrap_or_else(|_| {
        format!(
            "{}/.cache/strongbox/redis-7.0.15",
            std::env::var("HOME").unwrap()
        )
    });
    let commands = format!("{src}/src/commands");
    assert!(
        std::path::Path::new(&commands).is_dir(),
        "no Redis command descriptions at {commands} (scripts/redis-suite.sh --fetch-only)"
    );
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/gen-keyspecs.py"))
        .arg(&commands)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked_in = std::fs::read(root.join("src/cmd/keyspecs.rs")).unwrap();
    assert!(
        out.stdout == checked_in,
        "src/cmd/keyspecs.rs differs from scripts/gen-keyspecs.py's output: regenerate it"
    );
}

#[test]
fn command_info_key_specs_match_redis_for_every_command() {
    let sb = StrongboxServer::start(&[]);
    let rd = RedisServer::start(&[]);
    for proto in ["2", "3"] {
        let (mut s, mut r) = (sb.conn(), rd.conn());
        s.cmd(&["HELLO", proto]);
        r.cmd(&["HELLO", proto]);
        let list = frame(&s.cmd(&["COMMAND", "LIST"]));
        let names: Vec<String> = list
            .children
            .iter()
            .map(|c| {
                let raw = String::from_utf8_lossy(&c.raw).into_owned();
                raw.split_once("\r\n").unwrap().1.trim_end().to_string()
            })
            .collect();
        assert!(names.len() > 300, "{} names", names.len());
        let mut compared = 0;
        for name in &names {
            let (a, b) = (
                s.cmd(&["COMMAND", "INFO", name]),
                r.cmd(&["COMMAND", "INFO", name]),
            );
            let (fa, fb) = (frame(&a), frame(&b));
            let (ea, eb) = (&fa.children[0], &fb.children[0]);
            if eb.children.is_empty() {
                assert!(
                    NOT_IN_REDIS_7_0.contains(&name.as_str()),
                    "redis-server has no {name}"
                );
                continue;
            }
            // first key, last key, step; key specs (exact bytes).
            for i in [3, 4, 5, 8] {
                assert_eq!(
                    escape(&ea.children[i].raw),
                    escape(&eb.children[i].raw),
                    "COMMAND INFO {name} element {i} (RESP{proto})"
                );
            }
            let movable = |e: &Frame| {
                e.children[2]
                    .children
                    .iter()
                    .any(|f| f.raw.starts_with(b"+movablekeys"))
            };
            assert_eq!(movable(ea), movable(eb), "{name} movablekeys");
            compared += 1;
        }
        assert!(compared + NOT_IN_REDIS_7_0.len() >= names.len());
    }
}

/// Calls for COMMAND GETKEYS[ANDFLAGS] (split on spaces; `""` is an empty argument).
const GETKEYS_CALLS: &[&str] = &[
    "set k v",
    "set k v get",
    "set k v GET ex 10",
    "set k v ex get",
    "bitfield k get u4 0",
    "bitfield k get u4 0 set u4 0 1",
    "bitfield k incrby u4 0 1",
    "bitfield k overflow sat",
    "bitfield k bogus",
    "bitfield_ro k get u4 0",
    "sort k",
    "sort k store d",
    "sort k by x get y store d limit 0 1",
    "sort k store",
    "sort_ro k by x",
    "copy a b",
    "lmove a b left right",
    "blmove a b left right 0",
    "getdel k",
    "getex k persist",
    "expire k 10",
    "bitop and d a b c",
    "eval \"\" 0",
    "eval \"\" 2 a b",
    "eval \"\" 3 a b",
    "eval \"\" -1 a",
    "eval_ro \"\" 1 a",
    "evalsha x 1 a",
    "fcall f 1 a",
    "fcall_ro f 2 a b",
    "zunionstore d 2 a b",
    "zunionstore d 0 a",
    "zunionstore d x a",
    "zunion 2 a b",
    "zinterstore d 2 a b weights 1 2",
    "zdiffstore d 1 a",
    "sintercard 2 a b",
    "sintercard 3 a b",
    "lmpop 2 a b left",
    "blmpop 0 2 a b left",
    "zmpop 1 a min",
    "bzmpop 0 1 a min",
    "xread streams a b 0 0",
    "xread streams a b 0",
    "xread count 1 block 0 streams a 0",
    "xreadgroup group g c streams a 0",
    "xreadgroup group g c streams a b 0",
    "georadius k 0 0 1 m store d",
    "georadius k 0 0 1 m storedist d",
    "georadiusbymember k m 1 m store d storedist e",
    "georadius_ro k 0 0 1 m store d",
    "geosearchstore d s frommember m byradius 1 m",
    "migrate h 1 k 0 10",
    "migrate h 1 \"\" 0 10 keys a b",
    "migrate h 1 \"\" 0 10 auth p keys a",
    "migrate h 1 k 0 10 keys a",
    "object encoding k",
    "object freq k",
    "object nosuch k",
    "object",
    "memory usage k",
    "xinfo stream k",
    "xgroup create k g 0",
    "xgroup createconsumer k g c",
    "spublish ch m",
    "ssubscribe a b",
    "publish ch m",
    "get",
    "get k x",
    "nosuchcommand k",
    "mset a 1 b 2",
    "mset a 1 b",
    "msetnx a 1 b 2",
    "del a b c",
    "exists a b",
    "touch a",
    "rename a b",
    "renamenx a b",
    "smove a b m",
    "rpoplpush a b",
    "pfcount a b",
    "pfmerge d a b",
    "hexists h f",
    "sismember s m",
    "strlen k",
    "type k",
    "restore k 0 x",
    "watch a b",
    "unlink a b",
    "linsert k before a b",
    "xadd k * f v",
    "xadd k nomkstream maxlen 1 * f v",
    "xautoclaim k g c 0 0",
    "zrangestore d s 0 1",
    "pfdebug getreg k",
    "setrange k 0 v",
    "incr k",
];

fn words(call: &str) -> Vec<String> {
    call.split(' ')
        .map(|w| {
            if w == "\"\"" {
                String::new()
            } else {
                w.to_string()
            }
        })
        .collect()
}

#[test]
fn getkeys_and_flags_match_redis() {
    let sb = StrongboxServer::start(&[]);
    let rd = RedisServer::start(&[]);
    let mut mismatches = Vec::new();
    for proto in ["2", "3"] {
        let (mut s, mut r) = (sb.conn(), rd.conn());
        s.cmd(&["HELLO", proto]);
        r.cmd(&["HELLO", proto]);
        for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
            for call in GETKEYS_CALLS {
                let mut args = vec!["COMMAND".to_string(), sub.to_string()];
                args.extend(words(call));
                let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
                let (a, b) = (s.cmd(&args), r.cmd(&args));
                if a != b {
                    mismatches.push(format!(
                        "RESP{proto} COMMAND {sub} {call}\n  strongbox {}\n  redis     {}",
                        escape(&a),
                        escape(&b)
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Users whose key permissions differ: read-only, write-only, both through selectors.
const USERS: &[&[&str]] = &[
    &[
        "r", "on", "nopass", "+@all", "%R~r*", "%R~rw*", "%W~w*", "%W~rw*",
    ],
    &["ronly", "on", "nopass", "+@all", "%R~*"],
    &["wonly", "on", "nopass", "+@all", "%W~*"],
    &["plain", "on", "nopass", "+@all", "~rw*", "%R~r*"],
    &["sel", "on", "nopass", "(%R~r* +@all)", "(%W~w* +@all)"],
    &["sortuser", "on", "nopass", "+@all", "~rw*", "%R~v*"],
    &["sortall", "on", "nopass", "+@all", "%R~*", "~rw*"],
];

/// Calls run as every user: keys named r*, w*, rw*, v* and others.
const ACL_CALLS: &[&str] = &[
    "get r1",
    "get w1",
    "set w1 v",
    "set r1 v",
    "set w1 v get",
    "set rw1 v get",
    "set w1 v ex 100 get",
    "set w1 get",
    "set rw1 v ex get",
    "setnx w1 v",
    "incr w1",
    "incr rw1",
    "append w1 x",
    "getdel w1",
    "getdel rw1",
    "getex r1",
    "getex r1 persist",
    "copy r1 w1",
    "copy w1 r1",
    "copy rw1 rw2",
    "lpush w2 a",
    "lpush rw3 a b",
    "lmove rw3 w2 left right",
    "lmove r2 w2 left right",
    "rpoplpush rw3 w2",
    "lrange r2 0 -1",
    "expire w1 100",
    "expire r1 100",
    "exists r1 w1",
    "exists r1 o1",
    "touch w1",
    "type w1",
    "strlen w1",
    "del w1",
    "del r1",
    "unlink rw1 w1",
    "bitop and w3 r1 r2",
    "bitop and w3 w1",
    "bitop or rw4 rw1 rw2",
    "bitfield w4 get u4 0",
    "bitfield w4 set u4 0 1",
    "bitfield r4 get u4 0",
    "bitfield r4 incrby u4 0 1",
    "bitfield_ro r4 get u4 0",
    "sort rw5",
    "sort r5 store w5",
    "sort r5 store r6",
    "sort w5 store w6",
    "sort rw5 by v*",
    "sort rw5 by nosort",
    "sort rw5 get v*",
    "sort rw5 get #",
    "sort_ro r5 by v*",
    "sort_ro r5 get v*",
    "hset w7 f v",
    "hexists w7 f",
    "hexists r7 f",
    "sismember r8 m",
    "sintercard 2 r1 w1",
    "sintercard 2 r1 r2",
    "zunionstore w9 2 r1 r2",
    "zunionstore w9 0 r1",
    "zunionstore r9 1 r1",
    "zinterstore rw9 2 rw1 w1",
    "pfcount r1 w1",
    "pfmerge w10 r1",
    "pfadd w10 a",
    "rename rw1 rw2",
    "rename r1 w1",
    "smove rw1 w1 m",
    "mset w1 1 w2 2",
    "mset w1 1 r2 2",
    "msetnx rw1 1 rw2 2",
    "mget r1 rw1",
    "mget r1 w1",
    "eval \"return 1\" 1 rw1",
    "eval \"return 1\" 1 r1",
    "eval \"return 1\" 0 r1",
    "eval_ro \"return 1\" 1 r1",
    "geoadd w11 0 0 m",
    "georadius r11 0 0 1 m store w11",
    "georadius r11 0 0 1 m storedist r12",
    "geosearchstore w11 r11 frommember m byradius 1 m",
    "xadd w12 1-1 f v",
    "xread streams r12 0",
    "xlen w12",
    "object encoding r1",
    "object encoding w1",
    "memory usage w99",
    "memory usage r99",
    "dump r1",
    "restore w13 0 x",
    "watch r1",
    "watch w1",
    "lmpop 2 rw3 w2 left",
    "blmpop 0.01 1 w2 left",
    "zadd w14 1 a",
    "zrangestore w15 r14 0 1",
];

/// Runs every call as every user on one server, returning each reply and, for a NOPERM
/// error, the ACL LOG entry's reason, context, object and username.
fn acl_transcript(port: u16) -> Vec<String> {
    let mut admin = RawConn::connect(port);
    for u in USERS {
        let mut args = vec!["ACL", "SETUSER"];
        args.extend_from_slice(u);
        let reply = admin.cmd(&args);
        assert_eq!(reply, b"+OK\r\n", "ACL SETUSER {u:?}: {}", escape(&reply));
    }
    let mut out = Vec::new();
    for u in USERS {
        let user = u[0];
        admin.cmd(&["FLUSHALL"]);
        for (k, v) in [("r1", "1"), ("rw1", "2"), ("v1", "3"), ("w1", "4")] {
            admin.cmd(&["SET", k, v]);
        }
        admin.cmd(&["RPUSH", "rw5", "1", "2"]);
        admin.cmd(&["RPUSH", "r5", "1", "2"]);
        let mut c = RawConn::connect(port);
        let auth = c.cmd(&["AUTH", user, "x"]);
        assert_eq!(auth, b"+OK\r\n", "AUTH {user}: {}", escape(&auth));
        for call in ACL_CALLS {
            let args = words(call);
            let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
            admin.cmd(&["ACL", "LOG", "RESET"]);
            let reply = c.cmd(&args);
            out.push(format!("{user}: {call} -> {}", escape(&reply)));
            if reply.starts_with(b"-NOPERM") {
                let log = frame(&admin.cmd(&["ACL", "LOG", "1"]));
                let entry = &log.children[0];
                let mut fields = Vec::new();
                for pair in entry.children.chunks(2) {
                    let key = String::from_utf8_lossy(&pair[0].raw).into_owned();
                    if ["reason", "context", "object", "username"]
                        .iter()
                        .any(|f| key.contains(&format!("\r\n{f}\r\n")))
                    {
                        fields.push(escape(&pair[1].raw));
                    }
                }
                out.push(format!("    log {}", fields.join(" ")));
            }
            // ACL DRYRUN must agree with the call itself.
            let mut dry = vec!["ACL", "DRYRUN", user];
            dry.extend_from_slice(&args);
            out.push(format!("    dryrun {}", escape(&admin.cmd(&dry))));
        }
    }
    out
}

#[test]
fn acl_key_permissions_follow_key_spec_flags_as_redis() {
    let sb = StrongboxServer::start(&[]);
    let rd = RedisServer::start(&[]);
    let (a, b) = (acl_transcript(sb.port()), acl_transcript(rd.port()));
    assert_eq!(a.len(), b.len());
    let diffs: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("strongbox {x}\nredis     {y}"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    // The transcript is not vacuous: both refusals and successes of each kind occur.
    let refusals = b.iter().filter(|l| l.contains("-NOPERM")).count();
    assert!(
        refusals > 50 && refusals < b.len() / 2,
        "{refusals} refusals"
    );
    assert!(b.iter().any(|l| l.contains("BY option of SORT denied")));
}
