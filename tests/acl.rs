//! ACL users end to end (Redis 7.0): users from a config file and the command line compared with
//! redis-server's answers, an aclfile (ACL SAVE, restart, ACL LOAD, its errors), permission
//! denials and their exact texts, the ACL LOG, requirepass as the default user's password, a
//! deleted user's clients disconnected, and three clients authenticating with a username:
//! redis-cli, the `redis` crate and redis-py.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{escape, parse_frame, RawConn, ServerKind, ServerProcess, StrongboxServer};

fn cmd(c: &mut RawConn, args: &[&str]) -> String {
    escape(&c.cmd(args))
}

/// The bulk strings of an array reply (ACL LIST, ACL USERS).
fn bulks(raw: &[u8]) -> Vec<String> {
    let f = parse_frame(raw).unwrap().expect("a reply");
    f.children
        .iter()
        .map(|c| {
            let s = String::from_utf8_lossy(&c.raw).into_owned();
            s.split_once("\r\n").unwrap().1.trim_end().to_string()
        })
        .collect()
}

/// An ACL LIST line with its command rules sorted: Redis lists single commands in the
/// order of its (randomly seeded) command dictionary.
fn normalized(line: &str) -> String {
    let mut head = Vec::new();
    let mut rules = Vec::new();
    for t in line.split(' ') {
        if t.starts_with('+') || t.starts_with('-') {
            rules.push(t);
        } else {
            head.push(t);
        }
    }
    // The first rule (+@all / -@all) and the categories keep their order; single commands
    // are sorted.
    let cats: Vec<&str> = rules.iter().copied().filter(|r| r.contains('@')).collect();
    let mut singles: Vec<&str> = rules.iter().copied().filter(|r| !r.contains('@')).collect();
    singles.sort_unstable();
    format!(
        "{} {} {}",
        head.join(" "),
        cats.join(" "),
        singles.join(" ")
    )
}

const USERS_CONF: &str = "user alice on >alicepw ~app:* &news:* +@all -@dangerous\n\
user bob on >bobpw %R~r:* %W~w:* ~rw:* resetchannels -@all +get +set +config|get +publish\n\
user default on nopass ~* &* +@all\n";

#[test]
fn users_from_config_file_and_command_line_answer_as_redis() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("users.conf");
    std::fs::write(&conf, USERS_CONF).unwrap();
    let conf = conf.to_str().unwrap();
    let extra = ["--user", "carol", "on", "nopass", "~*", "+@read"];
    let sb = ServerProcess::start_with_conf(ServerKind::Strongbox, conf, &extra);
    let rd = ServerProcess::start_with_conf(ServerKind::Redis, conf, &extra);
    let (mut s, mut r) = (sb.conn(), rd.conn());
    let list_s: Vec<String> = bulks(&s.cmd(&["ACL", "LIST"]))
        .iter()
        .map(|l| normalized(l))
        .collect();
    let list_r: Vec<String> = bulks(&r.cmd(&["ACL", "LIST"]))
        .iter()
        .map(|l| normalized(l))
        .collect();
    assert_eq!(list_s, list_r);
    assert_eq!(list_s.len(), 4, "{list_s:?}");
    // Every reply below is byte-identical to redis-server's.
    let script: &[(&str, &[&str])] = &[
        ("main", &["ACL", "USERS"]),
        ("main", &["ACL", "GETUSER", "alice"]),
        ("main", &["ACL", "DRYRUN", "bob", "get", "w:1"]),
        ("main", &["ACL", "DRYRUN", "bob", "set", "w:1", "x"]),
        ("main", &["ACL", "DRYRUN", "bob", "set", "r:1", "x"]),
        ("main", &["ACL", "DRYRUN", "bob", "get", "rw:1"]),
        ("main", &["ACL", "DRYRUN", "bob", "config", "set", "x", "y"]),
        ("main", &["ACL", "DRYRUN", "alice", "flushall"]),
        ("a", &["AUTH", "alice", "nope"]),
        ("a", &["AUTH", "alice", "alicepw"]),
        ("a", &["ACL", "WHOAMI"]),
        ("a", &["SET", "app:1", "v"]),
        ("a", &["GET", "app:1"]),
        ("a", &["GET", "other"]),
        ("a", &["MSET", "app:2", "x", "other", "y"]),
        ("a", &["FLUSHALL"]),
        ("a", &["CONFIG", "GET", "port"]),
        ("a", &["PUBLISH", "news:1", "m"]),
        ("a", &["PUBLISH", "sports", "m"]),
        ("a", &["SUBSCRIBE", "sports"]),
        ("a", &["PSUBSCRIBE", "news:*"]),
        ("a", &["EVAL", "return redis.call('get','zzz')", "0"]),
        ("a", &["EVAL", "return redis.call('flushall')", "0"]),
        ("a", &["MULTI"]),
        ("a", &["SET", "app:3", "v"]),
        ("a", &["SET", "other", "v"]),
        ("a", &["EXEC"]),
        ("b", &["HELLO", "3", "AUTH", "bob", "wrong"]),
        ("b", &["AUTH", "bob", "bobpw"]),
        ("b", &["SET", "w:1", "x"]),
        ("b", &["GET", "r:1"]),
        ("b", &["GET", "w:1"]),
        ("b", &["SET", "r:1", "x"]),
        ("b", &["CONFIG", "GET", "maxmemory"]),
        ("b", &["CONFIG", "SET", "maxmemory", "0"]),
        ("b", &["DEL", "w:1"]),
        ("c", &["AUTH", "carol", "anything"]),
        ("c", &["GET", "app:1"]),
        ("c", &["SET", "app:1", "y"]),
    ];
    let mut conns: std::collections::HashMap<&str, (RawConn, RawConn)> = Default::default();
    conns.insert("main", (s, r));
    for (name, args) in script {
        let (cs, cr) = conns.entry(name).or_insert_with(|| (sb.conn(), rd.conn()));
        assert_eq!(cmd(cs, args), cmd(cr, args), "[{name}] {args:?}");
    }
    // redis-cli with --user/--pass.
    for (args, want) in [
        (
            vec!["--user", "alice", "--pass", "alicepw", "GET", "app:1"],
            "v",
        ),
        (
            vec!["--user", "alice", "--pass", "alicepw", "GET", "x"],
            "NOPERM this user has no permissions to access one of the keys used as arguments",
        ),
        (
            vec!["--user", "alice", "--pass", "bad", "PING"],
            "WRONGPASS invalid username-password pair or user is disabled.",
        ),
    ] {
        let out = Command::new("redis-cli")
            .args(["-p", &sb.port().to_string(), "--no-auth-warning"])
            .args(&args)
            .output()
            .expect("redis-cli");
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(want), "redis-cli {args:?}: {text}");
    }
}

#[test]
fn denials_are_logged_with_redis_fields_and_the_log_is_bounded() {
    let sb = StrongboxServer::start(&[]);
    let mut admin = sb.conn();
    admin.assert_cmd(
        &[
            "ACL", "SETUSER", "u", "on", ">pw", "~k*", "&c*", "+get", "+publish", "+eval",
        ],
        b"+OK\r\n",
    );
    let mut u = sb.conn();
    assert_eq!(
        cmd(&mut u, &["AUTH", "u", "bad"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\\r\\n"
    );
    u.assert_cmd(&["AUTH", "u", "pw"], b"+OK\r\n");
    for _ in 0..2 {
        u.cmd(&["GET", "x"]);
    }
    u.cmd(&["SET", "k", "v"]);
    u.cmd(&["PUBLISH", "zz", "m"]);
    u.cmd(&["EVAL", "return redis.call('get','y')", "0"]);
    u.assert_cmd(
        &["DBSIZE"],
        b"-NOPERM this user has no permissions to run the 'dbsize' command\r\n",
    );
    let raw = admin.cmd(&["ACL", "LOG"]);
    let f = parse_frame(&raw).unwrap().unwrap();
    assert_eq!(f.children.len(), 6, "{}", escape(&raw));
    let text = String::from_utf8_lossy(&raw).into_owned();
    for want in [
        "reason\r\n$3\r\nkey\r\n$7\r\ncontext\r\n$3\r\nlua\r\n$6\r\nobject\r\n$1\r\ny",
        "reason\r\n$7\r\nchannel\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$2\r\nzz\r\n$8\r\nusername\r\n$1\r\nu",
        "reason\r\n$7\r\ncommand\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$3\r\nset",
        "count\r\n:2\r\n$6\r\nreason\r\n$3\r\nkey\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$1\r\nx",
        "reason\r\n$4\r\nauth\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$4\r\nAUTH\r\n$8\r\nusername\r\n$1\r\nu",
        "age-seconds",
        "client-info",
        " user=u ",
    ] {
        assert!(text.contains(want), "ACL LOG lacks {want:?}:\n{}", escape(&raw));
    }
    // Entries are newest first; COUNT limits; acllog-max-len caps; RESET empties.
    let one = admin.cmd(&["ACL", "LOG", "1"]);
    assert_eq!(parse_frame(&one).unwrap().unwrap().children.len(), 1);
    assert!(
        String::from_utf8_lossy(&one).contains("$6\r\ndbsize"),
        "{}",
        escape(&one)
    );
    admin.assert_cmd(&["CONFIG", "SET", "acllog-max-len", "2"], b"+OK\r\n");
    for i in 0..10 {
        u.cmd(&["GET", &format!("nokey{i}")]);
    }
    assert_eq!(
        parse_frame(&admin.cmd(&["ACL", "LOG"]))
            .unwrap()
            .unwrap()
            .children
            .len(),
        2
    );
    admin.assert_cmd(&["ACL", "LOG", "RESET"], b"+OK\r\n");
    admin.assert_cmd(&["ACL", "LOG"], b"*0\r\n");
    // CLIENT LIST names the user; deleting the user disconnects its clients.
    let list = String::from_utf8_lossy(&admin.cmd(&["CLIENT", "LIST"])).into_owned();
    assert!(
        list.contains(" user=u ") && list.contains(" user=default "),
        "{list}"
    );
    admin.assert_cmd(&["ACL", "DELUSER", "u"], b":1\r\n");
    assert!(
        u.is_closed_within(Duration::from_secs(2)),
        "u's connection stayed open"
    );
    admin.assert_cmd(&["PING"], b"+PONG\r\n");
}

#[test]
fn aclfile_is_loaded_at_start_saved_and_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("users.acl");
    std::fs::write(
        &file,
        "user default on nopass ~* &* +@all\nuser alice on >alicepw ~app:* resetchannels -@all +get\nuser sel on nopass (~a* +get)\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let mut sb = StrongboxServer::start(&["--aclfile", f]);
    let mut c = sb.conn();
    assert_eq!(
        bulks(&c.cmd(&["ACL", "LIST"])),
        [
            "user alice on #bbb4ddcba8b03893ba2b4c25e6a5e8a838ccce7b0a4b4b9cf74fbd27fe1f1f7e ~app:* resetchannels -@all +get",
            "user default on nopass ~* &* +@all",
            "user sel on nopass resetchannels -@all (~a* resetchannels -@all +get)"
        ]
        .map(|s| s.to_string())
        .map(|s| s.replace("bbb4ddcba8b03893ba2b4c25e6a5e8a838ccce7b0a4b4b9cf74fbd27fe1f1f7e", &sha256_hex("alicepw")))
    );
    c.assert_cmd(
        &["ACL", "SETUSER", "bob", "on", ">bobpw", "~b:*", "+@read"],
        b"+OK\r\n",
    );
    c.assert_cmd(&["ACL", "SAVE"], b"+OK\r\n");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains("user bob on #") && saved.contains("user alice on #"),
        "{saved}"
    );
    // ACL LOAD with an error changes nothing and says where.
    std::fs::write(&file, format!("{saved}user carol +@nosuch\n")).unwrap();
    let err = cmd(&mut c, &["ACL", "LOAD"]);
    assert_eq!(
        err,
        format!("-ERR {f}:5: Error in applying operation '+@nosuch': Unknown command or category name in ACL. WARNING: ACL errors detected, no change to the previously active ACL rules was performed\\r\\n")
    );
    std::fs::write(&file, &saved).unwrap();
    drop(c);
    sb.restart();
    let mut c = sb.conn();
    let users = bulks(&c.cmd(&["ACL", "USERS"]));
    assert_eq!(users, ["alice", "bob", "default", "sel"]);
    c.assert_cmd(&["ACL", "DRYRUN", "sel", "get", "a1"], b"+OK\r\n");
    c.assert_cmd(&["AUTH", "bob", "bobpw"], b"+OK\r\n");
    c.assert_cmd(&["GET", "b:1"], b"$-1\r\n");
    // An alice client is disconnected by ACL LOAD (Redis 7.0 frees every non-default user).
    let mut a = sb.conn();
    a.assert_cmd(&["AUTH", "alice", "alicepw"], b"+OK\r\n");
    let mut admin = sb.conn();
    admin.assert_cmd(&["ACL", "LOAD"], b"+OK\r\n");
    assert!(a.is_closed_within(Duration::from_secs(2)));
    admin.assert_cmd(&["ACL", "WHOAMI"], b"$7\r\ndefault\r\n");
}

#[test]
fn aclfile_and_user_lines_together_are_refused_as_by_redis() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("u.acl");
    std::fs::write(&file, "user default on nopass ~* &* +@all\n").unwrap();
    let conf = tmp.path().join("both.conf");
    std::fs::write(
        &conf,
        format!("user alice on >pw\naclfile {}\nport 0\n", file.display()),
    )
    .unwrap();
    let out = common::run_with_timeout(
        Command::new(common::server::strongbox_bin()).arg(&conf),
        None,
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("please define either an ACL file or declare users directly in your redis.conf, but not both"), "{text}");
    let bad = tmp.path().join("bad.conf");
    std::fs::write(&bad, "user alice on >pw +nosuch\nport 0\n").unwrap();
    let out = common::run_with_timeout(
        Command::new(common::server::strongbox_bin()).arg(&bad),
        None,
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Error loading ACL rule '+nosuch' for the user named 'alice': Unknown command or category name in ACL"), "{text}");
}

#[test]
fn requirepass_is_the_default_users_password() {
    let sb = StrongboxServer::start(&[]);
    let mut admin = sb.conn();
    admin.assert_cmd(&["AUTH", "x"], b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n");
    admin.assert_cmd(&["CONFIG", "SET", "requirepass", "s3cret"], b"+OK\r\n");
    let list = bulks(&admin.cmd(&["ACL", "LIST"]));
    assert_eq!(
        list,
        [format!(
            "user default on #{} ~* &* +@all",
            sha256_hex("s3cret")
        )]
    );
    let mut c = sb.conn();
    c.assert_cmd(&["GET", "k"], b"-NOAUTH Authentication required.\r\n");
    c.assert_cmd(
        &["AUTH", "wrong"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    c.assert_cmd(&["AUTH", "s3cret"], b"+OK\r\n");
    let mut d = sb.conn();
    d.assert_cmd(&["AUTH", "default", "s3cret"], b"+OK\r\n");
    // ACL SETUSER default adds a password that AUTH accepts too.
    admin.assert_cmd(&["ACL", "SETUSER", "default", ">other"], b"+OK\r\n");
    let mut e = sb.conn();
    e.assert_cmd(&["AUTH", "other"], b"+OK\r\n");
    admin.assert_cmd(&["CONFIG", "SET", "requirepass", ""], b"+OK\r\n");
    let mut f = sb.conn();
    f.assert_cmd(&["GET", "k"], b"$-1\r\n");
    assert_eq!(
        bulks(&admin.cmd(&["ACL", "LIST"])),
        ["user default on nopass ~* &* +@all"]
    );
}

#[test]
fn redis_crate_authenticates_with_a_username() {
    let sb = StrongboxServer::start(&[]);
    let mut admin = sb.conn();
    admin.assert_cmd(
        &[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">apppw",
            "~app:*",
            "+@all",
            "-@dangerous",
        ],
        b"+OK\r\n",
    );
    let url = format!("redis://app:apppw@127.0.0.1:{}/", sb.port());
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("app:1")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let v: String = redis::cmd("GET").arg("app:1").query(&mut con).unwrap();
    assert_eq!(v, "v");
    let who: String = redis::cmd("ACL").arg("WHOAMI").query(&mut con).unwrap();
    assert_eq!(who, "app");
    let err = redis::cmd("GET")
        .arg("other")
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no permissions to access one of the keys used as arguments"),
        "{err}"
    );
    let bad = redis::Client::open(format!("redis://app:nope@127.0.0.1:{}/", sb.port())).unwrap();
    let err = bad
        .get_connection()
        .err()
        .expect("a wrong password must fail");
    assert_eq!(err.kind(), redis::ErrorKind::AuthenticationFailed, "{err}");
}

#[test]
fn redis_py_authenticates_with_a_username() {
    let sb = StrongboxServer::start(&[]);
    let dir = common::repo_root().join("tests").join("python");
    let out = common::run_with_timeout(
        Command::new("python3")
            .arg(dir.join("acl.py"))
            .args(["--port", &sb.port().to_string()])
            .current_dir(&dir),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "tests/python/acl.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256_hex(s: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(s.as_bytes())?;
            ch.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
