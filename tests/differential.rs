//! Differential test: every script in tests/diff/*.txt is sent to Debian's redis-server (the
//! reference) and to strongbox-server (the subject), and the raw reply bytes must be identical.
//!
//! Script format (see tests/README.md for the full description):
//!   `SET k "a b\x00"`        a command, redis-cli quoting; sent as a RESP multibulk, one reply read
//!   `# text`                 comment (also blank lines)
//!   `!sort CMD`              compare with the reply's elements sorted (map pairs kept together)
//!   `!sortpairs CMD`         sort a flat [k, v, k, v] array by pairs (RESP2 HGETALL)
//!   `!sortdeep CMD`          sort every aggregate at every depth
//!   `!replies N CMD`         the command produces N replies (SUBSCRIBE a b c -> 3); with N = 0
//!                            nothing is read (a blocking command; collect it later with `!read`)
//!   `!ignore CMD`            send and read the reply but do not compare it
//!   `!sleep MS`              pause
//!   `!proto 2|3`             send HELLO 2|3 on this connection; only the reply type is compared
//!   `!raw [N] "bytes"`       send raw bytes (escapes as in double quotes), read N replies (default 1)
//!   `!read [N]`              read N replies without sending (pub/sub messages)
//!   `!quiet`                 nothing may arrive within 100 ms
//!   `!closed`                the server must close this connection within 1 s
//!   `!newconn`               replace this connection with a new one
//!   `!conn NAME`             switch to connection NAME (created on first use; the first is "main")
//!
//! Env: `DIFF_ONLY=strings,keys` runs only those scripts; `DIFF_VERBOSE=1` prints every reply; `STRONGBOX_SERVER_BIN=/usr/bin/redis-server`
//! makes the subject real Redis, to check the scripts themselves.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{
    escape, parse_frame, RawConn, ReadError, RedisServer, ServerProcess, StrongboxServer,
};

/// How long to wait for one reply; Redis answers in microseconds, so this only bounds a hang.
const REPLY_TIMEOUT_MS: u64 = 3_000;
/// `!quiet` waits this long for (the absence of) a reply.
const QUIET_WAIT_MS: u64 = 100;
/// `!closed` waits this long for the server to close the connection.
const CLOSE_WAIT_MS: u64 = 1_000;
/// After this many subject timeouts a script is abandoned (each costs REPLY_TIMEOUT_MS).
const SUBJECT_TIMEOUTS_MAX: usize = 3;
/// Mismatches printed in full per script; the rest are counted.
const MISMATCHES_SHOWN_MAX: usize = 40;

macro_rules! diff_scripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_script(stringify!($name));
            }
        )*
        /// Every script that has a #[test] above.
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
    };
}

diff_scripts!(
    connection,
    keys,
    expire,
    strings,
    bits,
    transactions,
    pubsub,
    lists,
    hashes,
    sets,
    zsets,
    geo,
    sort,
    protocol,
    hyperloglog,
    acl,
    functions,
    scripting_struct,
);

// ---------------------------------------------------------------------------------------------
// Script parsing

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Normalize {
    None,
    Sort,
    SortPairs,
    SortDeep,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Command {
        args: Vec<Vec<u8>>,
        replies: usize,
        normalize: Normalize,
        compare: bool,
    },
    Sleep(u64),
    Proto(u8),
    Raw {
        bytes: Vec<u8>,
        replies: usize,
    },
    Read(usize),
    Quiet,
    Closed,
    NewConn,
    Conn(String),
}

#[derive(Clone, Debug)]
struct Line {
    number: usize,
    text: String,
    step: Step,
}

/// Splits a line like redis-cli (sdssplitargs): whitespace separates; `"..."` understands
/// `\n \r \t \b \a \\ \" \xHH`; `'...'` understands only `\'`; a closing quote must be followed
/// by whitespace or the end of the line.
fn split_args(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            return Ok(out);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                match b.get(i) {
                    None => return Err("unbalanced double quote".into()),
                    Some(b'\\')
                        if b.get(i + 1) == Some(&b'x')
                            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                            && b.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                    {
                        let hex =
                            std::str::from_utf8(&b[i + 2..i + 4]).map_err(|e| e.to_string())?;
                        cur.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                        i += 4;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        cur.push(match b[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        i += 2;
                    }
                    Some(b'"') => {
                        if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return Err("closing quote must be followed by a space".into());
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        cur.push(c);
                        i += 1;
                    }
                }
            } else if in_sq {
                match b.get(i) {
                    None => return Err("unbalanced single quote".into()),
                    Some(b'\\') if b.get(i + 1) == Some(&b'\'') => {
                        cur.push(b'\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return Err("closing quote must be followed by a space".into());
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        cur.push(c);
                        i += 1;
                    }
                }
            } else {
                match b.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => cur.push(c),
                }
                i += 1;
            }
        }
        out.push(cur);
    }
}

fn parse_count(tok: Option<&Vec<u8>>, default: usize) -> Result<usize, String> {
    match tok {
        None => Ok(default),
        Some(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("expected a number, got {:?}", String::from_utf8_lossy(t))),
    }
}

fn parse_line(text: &str) -> Result<Option<Step>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let mut toks = split_args(trimmed)?;
    let mut replies = 1;
    let mut normalize = Normalize::None;
    let mut compare = true;
    // Directives that stand alone.
    let first = String::from_utf8_lossy(&toks[0]).to_string();
    let rest = &toks[1..];
    let standalone = match first.as_str() {
        "!sleep" => Some(Step::Sleep(parse_count(rest.first(), 0)? as u64)),
        "!proto" => match rest.first().map(Vec::as_slice) {
            Some(b"2") => Some(Step::Proto(2)),
            Some(b"3") => Some(Step::Proto(3)),
            _ => return Err("!proto takes 2 or 3".into()),
        },
        "!raw" => {
            let (n, data) = match rest {
                [n, data @ ..] if n.iter().all(u8::is_ascii_digit) && !data.is_empty() => {
                    (parse_count(Some(n), 1)?, data)
                }
                data => (1, data),
            };
            if data.is_empty() {
                return Err("!raw needs bytes".into());
            }
            Some(Step::Raw {
                bytes: data.concat(),
                replies: n,
            })
        }
        "!read" => Some(Step::Read(parse_count(rest.first(), 1)?)),
        "!quiet" => Some(Step::Quiet),
        "!closed" => Some(Step::Closed),
        "!newconn" => Some(Step::NewConn),
        "!conn" => match rest.first() {
            Some(name) => Some(Step::Conn(String::from_utf8_lossy(name).into_owned())),
            None => return Err("!conn needs a name".into()),
        },
        _ => None,
    };
    if let Some(step) = standalone {
        return Ok(Some(step));
    }
    // Modifiers in front of a command.
    while let Some(tok) = toks.first() {
        if !tok.starts_with(b"!") {
            break;
        }
        let tok = toks.remove(0);
        match tok.as_slice() {
            b"!sort" => normalize = Normalize::Sort,
            b"!sortpairs" => normalize = Normalize::SortPairs,
            b"!sortdeep" => normalize = Normalize::SortDeep,
            b"!ignore" => compare = false,
            b"!replies" => {
                if toks.is_empty() {
                    return Err("!replies needs a count".into());
                }
                let n = toks.remove(0);
                replies = parse_count(Some(&n), 1)?;
            }
            other => {
                return Err(format!(
                    "unknown directive {}",
                    String::from_utf8_lossy(other)
                ))
            }
        }
    }
    if toks.is_empty() {
        return Err("modifier without a command".into());
    }
    Ok(Some(Step::Command {
        args: toks,
        replies,
        normalize,
        compare,
    }))
}

fn diff_dir() -> PathBuf {
    common::repo_root().join("tests").join("diff")
}

fn load_script(name: &str) -> Vec<Line> {
    let path = diff_dir().join(format!("{name}.txt"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        match parse_line(raw) {
            Ok(Some(step)) => lines.push(Line {
                number: i + 1,
                text: raw.trim().to_string(),
                step,
            }),
            Ok(None) => {}
            Err(e) => panic!("{}:{}: {e}: {raw}", path.display(), i + 1),
        }
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Running

/// What reading one reply produced.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Reply(Vec<u8>),
    Closed(Vec<u8>),
    Timeout(Vec<u8>),
    Protocol(String),
    NoConnection(String),
}

impl Outcome {
    fn is_reply(&self) -> bool {
        matches!(self, Outcome::Reply(_))
    }

    fn show(&self) -> String {
        match self {
            Outcome::Reply(b) => format!("\"{}\"", escape(b)),
            Outcome::Closed(p) if p.is_empty() => "<connection closed>".into(),
            Outcome::Closed(p) => format!("<connection closed after partial \"{}\">", escape(p)),
            Outcome::Timeout(p) if p.is_empty() => "<no reply (timeout)>".into(),
            Outcome::Timeout(p) => format!("<timeout after partial \"{}\">", escape(p)),
            Outcome::Protocol(e) => format!("<invalid RESP: {e}>"),
            Outcome::NoConnection(e) => format!("<no connection: {e}>"),
        }
    }

    fn normalized(&self, how: Normalize) -> Outcome {
        let Outcome::Reply(bytes) = self else {
            return self.clone();
        };
        if how == Normalize::None {
            return self.clone();
        }
        match parse_frame(bytes) {
            Ok(Some(f)) => Outcome::Reply(
                match how {
                    Normalize::Sort => f.sorted(),
                    Normalize::SortPairs => f.sorted_pairs(),
                    Normalize::SortDeep => f.sorted_deep(),
                    Normalize::None => f,
                }
                .raw,
            ),
            _ => self.clone(),
        }
    }
}

/// One side of the comparison: a server and its named connections.
struct Side<'a> {
    label: &'static str,
    server: &'a ServerProcess,
    conns: BTreeMap<String, Option<RawConn>>,
    timeouts: usize,
}

impl<'a> Side<'a> {
    fn new(label: &'static str, server: &'a ServerProcess) -> Self {
        Side {
            label,
            server,
            conns: BTreeMap::new(),
            timeouts: 0,
        }
    }

    fn conn(&mut self, name: &str) -> Result<&mut RawConn, String> {
        let port = self.server.port();
        let slot = self.conns.entry(name.to_string()).or_insert(None);
        if slot.is_none() {
            let mut c = RawConn::try_connect(port).map_err(|e| format!("connect: {e}"))?;
            c.set_timeout(Duration::from_millis(REPLY_TIMEOUT_MS));
            *slot = Some(c);
        }
        Ok(slot.as_mut().expect("just connected"))
    }

    fn drop_conn(&mut self, name: &str) {
        self.conns.remove(name);
    }

    fn send(&mut self, name: &str, bytes: &[u8]) -> Result<(), Outcome> {
        let c = self.conn(name).map_err(Outcome::NoConnection)?;
        c.try_send(bytes)
            .map_err(|e| Outcome::Closed(format!("write failed: {e}").into_bytes()))
    }

    fn read(&mut self, name: &str, wait: Duration) -> Outcome {
        let c = match self.conn(name) {
            Ok(c) => c,
            Err(e) => return Outcome::NoConnection(e),
        };
        let out = match c.read_reply_within(wait) {
            Ok(b) => Outcome::Reply(b),
            Err(ReadError::Closed { partial }) => Outcome::Closed(partial),
            Err(ReadError::Timeout { partial }) => Outcome::Timeout(partial),
            Err(ReadError::Protocol { error, buffered }) => {
                Outcome::Protocol(format!("{error}; buffered \"{}\"", escape(&buffered)))
            }
            Err(ReadError::Io(e)) => Outcome::Closed(format!("{e}").into_bytes()),
        };
        if matches!(out, Outcome::Timeout(_)) && wait >= Duration::from_millis(REPLY_TIMEOUT_MS) {
            self.timeouts += 1;
        }
        out
    }

    fn buffered(&self, name: &str) -> Vec<u8> {
        match self.conns.get(name) {
            Some(Some(c)) => c.buffered().to_vec(),
            _ => Vec::new(),
        }
    }

    fn closed_within(&mut self, name: &str, wait: Duration) -> bool {
        match self.conn(name) {
            Ok(c) => c.is_closed_within(wait),
            Err(_) => true,
        }
    }
}

struct Mismatch {
    line: usize,
    text: String,
    conn: String,
    detail: String,
}

struct Run<'a> {
    script: String,
    reference: Side<'a>,
    subject: Side<'a>,
    current: String,
    mismatches: Vec<Mismatch>,
}

impl Run<'_> {
    fn mismatch(&mut self, line: &Line, detail: String) {
        self.mismatches.push(Mismatch {
            line: line.number,
            text: line.text.clone(),
            conn: self.current.clone(),
            detail,
        });
    }

    /// Reads one reply from both sides and compares them.
    fn compare_one(
        &mut self,
        line: &Line,
        how: Normalize,
        compare: bool,
        wait: Duration,
        index: usize,
        total: usize,
    ) {
        let cur = self.current.clone();
        let r = self.reference.read(&cur, wait);
        let s = self.subject.read(&cur, wait);
        let (rn, sn) = (r.normalized(how), s.normalized(how));
        if std::env::var_os("DIFF_VERBOSE").is_some() {
            eprintln!(
                "{}:{} [{cur}] {}\n    -> {}",
                self.script,
                line.number,
                line.text,
                r.show()
            );
            if rn != sn {
                eprintln!("    != {}", s.show());
            }
        }
        let broken = !r.is_reply() || !s.is_reply();
        if matches!(r, Outcome::Timeout(_)) && wait >= Duration::from_millis(REPLY_TIMEOUT_MS) {
            // Real Redis never takes seconds to answer: the script expects a reply that
            // does not exist (e.g. a wrong `!replies N`).
            self.mismatch(
                line,
                format!(
                    "\n      SCRIPT ERROR: redis-server sent no reply: {}",
                    r.show()
                ),
            );
        }
        if (compare || !r.is_reply() || !s.is_reply()) && rn != sn {
            let which = if total > 1 {
                format!(" (reply {} of {total})", index + 1)
            } else {
                String::new()
            };
            let mut detail = format!(
                "{which}\n      {:<10} {}\n      {:<10} {}",
                format!("{}:", self.reference.label),
                r.show(),
                format!("{}:", self.subject.label),
                s.show()
            );
            if how != Normalize::None {
                detail.push_str(&format!(
                    "\n      (compared after {how:?}: {} vs {})",
                    rn.show(),
                    sn.show()
                ));
            }
            self.mismatch(line, detail);
        }
        if broken {
            // A closed or stuck connection: start both sides afresh so later lines line up.
            self.reference.drop_conn(&cur);
            self.subject.drop_conn(&cur);
        }
    }

    fn step(&mut self, line: &Line) {
        let cur = self.current.clone();
        match &line.step {
            Step::Command {
                args,
                replies,
                normalize,
                compare,
            } => {
                let bytes = common::encode_command(args);
                self.send_both(line, &bytes, *replies, *normalize, *compare);
            }
            Step::Raw { bytes, replies } => {
                self.send_both(line, bytes, *replies, Normalize::None, true);
            }
            Step::Read(n) => {
                for i in 0..*n {
                    self.compare_one(
                        line,
                        Normalize::None,
                        true,
                        Duration::from_millis(REPLY_TIMEOUT_MS),
                        i,
                        *n,
                    );
                }
            }
            Step::Quiet => {
                self.compare_one(
                    line,
                    Normalize::None,
                    true,
                    Duration::from_millis(QUIET_WAIT_MS),
                    0,
                    1,
                );
            }
            Step::Closed => {
                let wait = Duration::from_millis(CLOSE_WAIT_MS);
                let r = self.reference.closed_within(&cur, wait);
                let s = self.subject.closed_within(&cur, wait);
                if r != s {
                    let show = |closed: bool| if closed { "closed" } else { "still open" };
                    self.mismatch(
                        line,
                        format!(
                            "\n      {}: connection {}\n      {}: connection {}",
                            self.reference.label,
                            show(r),
                            self.subject.label,
                            show(s)
                        ),
                    );
                }
                self.reference.drop_conn(&cur);
                self.subject.drop_conn(&cur);
            }
            Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            Step::Proto(v) => {
                let hello = common::encode_command(&["HELLO", &v.to_string()]);
                let wait = Duration::from_millis(REPLY_TIMEOUT_MS);
                let _ = self.reference.send(&cur, &hello);
                let _ = self.subject.send(&cur, &hello);
                let r = self.reference.read(&cur, wait);
                let s = self.subject.read(&cur, wait);
                let kind = |o: &Outcome| match o {
                    Outcome::Reply(b) => b.first().copied(),
                    _ => None,
                };
                // The HELLO reply names the server and its version: compare only its type.
                if kind(&r).is_none() || kind(&r) != kind(&s) {
                    self.mismatch(
                        line,
                        format!(
                            "(only the reply type is compared)\n      {}: {}\n      {}: {}",
                            self.reference.label,
                            r.show(),
                            self.subject.label,
                            s.show()
                        ),
                    );
                }
            }
            Step::NewConn => {
                self.reference.drop_conn(&cur);
                self.subject.drop_conn(&cur);
            }
            Step::Conn(name) => self.current = name.clone(),
        }
    }

    fn send_both(
        &mut self,
        line: &Line,
        bytes: &[u8],
        replies: usize,
        how: Normalize,
        compare: bool,
    ) {
        let cur = self.current.clone();
        let unread = self.reference.buffered(&cur);
        if !unread.is_empty() {
            self.mismatch(
                line,
                format!(
                    "\n      SCRIPT ERROR: unread reply bytes from redis-server before this line: \"{}\"",
                    escape(&unread)
                ),
            );
        }
        let r = self.reference.send(&cur, bytes);
        let s = self.subject.send(&cur, bytes);
        if let (Err(e), _) | (_, Err(e)) = (&r, &s) {
            self.mismatch(line, format!("\n      send failed: {}", e.show()));
            self.reference.drop_conn(&cur);
            self.subject.drop_conn(&cur);
            return;
        }
        for i in 0..replies {
            let before = self.mismatches.len();
            self.compare_one(
                line,
                how,
                compare,
                Duration::from_millis(REPLY_TIMEOUT_MS),
                i,
                replies,
            );
            // After a broken connection the remaining replies cannot be read.
            if self.mismatches.len() > before && !self.reference.conns.contains_key(&cur) {
                break;
            }
        }
    }
}

fn selected(name: &str) -> bool {
    match std::env::var("DIFF_ONLY") {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|s| s.trim() == name),
        _ => true,
    }
}

fn run_script(name: &str) {
    if !selected(name) {
        eprintln!("differential/{name}: not in DIFF_ONLY, skipped");
        return;
    }
    let lines = load_script(name);
    let reference = RedisServer::start(&[]);
    let subject = StrongboxServer::start(&[]);
    let mut run = Run {
        script: format!("tests/diff/{name}.txt"),
        reference: Side::new("redis", &reference),
        subject: Side::new("strongbox", &subject),
        current: "main".to_string(),
        mismatches: Vec::new(),
    };
    let mut abandoned = None;
    for line in &lines {
        run.step(line);
        if run.subject.timeouts >= SUBJECT_TIMEOUTS_MAX {
            abandoned = Some(line.number);
            break;
        }
    }
    if run.mismatches.is_empty() && abandoned.is_none() {
        eprintln!(
            "differential/{name}: {} lines, all replies identical",
            lines.len()
        );
        return;
    }
    let mut report = format!(
        "\n{} mismatch(es) between redis-server (reference) and strongbox-server in {}:\n",
        run.mismatches.len(),
        run.script
    );
    for m in run.mismatches.iter().take(MISMATCHES_SHOWN_MAX) {
        report.push_str(&format!(
            "\n  {}:{} [conn {}]  {}{}\n",
            run.script, m.line, m.conn, m.text, m.detail
        ));
    }
    if run.mismatches.len() > MISMATCHES_SHOWN_MAX {
        report.push_str(&format!(
            "\n  ... and {} more\n",
            run.mismatches.len() - MISMATCHES_SHOWN_MAX
        ));
    }
    if let Some(n) = abandoned {
        report.push_str(&format!(
            "\n  script abandoned at line {n}: strongbox timed out {SUBJECT_TIMEOUTS_MAX} times\n"
        ));
    }
    let mut subject = subject;
    if !subject.is_running() {
        report.push_str(&format!(
            "\n  strongbox-server is no longer running!\n{}\n",
            subject.describe()
        ));
    }
    panic!("{report}");
}

// ---------------------------------------------------------------------------------------------
// Tests of the harness itself

#[test]
fn every_script_file_has_a_test() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(diff_dir()).expect("read tests/diff") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            let stem = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if !SCRIPTS.contains(&stem.as_str()) {
                missing.push(stem);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests/diff has scripts without a test; add them to diff_scripts!(...) in differential.rs: {missing:?}"
    );
    for name in SCRIPTS {
        // Parses (panics with file:line on a syntax error).
        assert!(!load_script(name).is_empty(), "{name}.txt is empty");
    }
}

#[test]
fn split_args_follows_redis_cli_quoting() {
    let s = |l: &str| split_args(l).unwrap();
    assert_eq!(
        s("SET k v"),
        vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]
    );
    assert_eq!(
        s(r#"SET "a b" "x\r\n\x00\"""#)[1..],
        [b"a b".to_vec(), b"x\r\n\x00\"".to_vec()]
    );
    assert_eq!(
        s(r"ECHO 'it\'s' ''"),
        vec![b"ECHO".to_vec(), b"it's".to_vec(), Vec::new()]
    );
    assert_eq!(s(r#"ECHO "\xzz""#)[1], b"xzz".to_vec());
    assert!(split_args(r#"ECHO "abc"def"#).is_err());
    assert!(split_args(r#"ECHO "abc"#).is_err());
}

#[test]
fn directives_parse() {
    let p = |l: &str| parse_line(l).unwrap().unwrap();
    assert_eq!(
        p("!sort !replies 2 SMEMBERS s"),
        Step::Command {
            args: vec![b"SMEMBERS".to_vec(), b"s".to_vec()],
            replies: 2,
            normalize: Normalize::Sort,
            compare: true
        }
    );
    assert_eq!(
        p(r#"!raw 2 "PING\r\n" "PING\r\n""#),
        Step::Raw {
            bytes: b"PING\r\nPING\r\n".to_vec(),
            replies: 2
        }
    );
    assert_eq!(
        p(r#"!raw "*1\r\n""#),
        Step::Raw {
            bytes: b"*1\r\n".to_vec(),
            replies: 1
        }
    );
    assert_eq!(p("!conn sub"), Step::Conn("sub".into()));
    assert_eq!(p("!proto 3"), Step::Proto(3));
    assert!(parse_line("  # comment").unwrap().is_none());
    assert!(parse_line("!bogus GET k").is_err());
}
