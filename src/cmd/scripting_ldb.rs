//! SCRIPT DEBUG SYNC: Redis's Lua debugger (ldb) in its synchronous form. After `SCRIPT
//! DEBUG SYNC`, the client's next EVAL / EVALSHA stops before its first line and the client
//! talks to the debugger: every debugger command is answered with the session's log lines as
//! an array of status replies (Redis's `ldbSendLogs`), the server serves nobody else meanwhile
//! (their messages wait, `Server::busy_deferred`), and when the script ends the client gets the
//! `<endsession>` mark, the script's reply, and is disconnected — as Redis does.
//!
//! Commands: help, step/next, continue, list [line [ctx]], whole, eval <code>, redis <cmd>,
//! abort. Not implemented (answered as unknown commands): print, break, trace, maxlen,
//! `redis.debug()` / `redis.breakpoint()`, and the forked form (`SCRIPT DEBUG YES`, which
//! needs fork(2): refused with an error).

use bytes::Bytes;
use mlua::{Lua, Value};

use crate::client::{ClientId, Msg};
use crate::exec::Server;
use crate::resp::Reply;

/// A debugging session (Redis's `ldb` state), while its script runs.
pub struct Session {
    /// The debugging client.
    pub client: ClientId,
    /// EVAL's first argument split into lines (the script; for EVALSHA its SHA, as Redis).
    src: Vec<String>,
    /// Log lines not yet sent.
    logs: Vec<String>,
    /// Stop at the next line (and log redis.call's commands and replies meanwhile).
    pub step: bool,
    current_line: i64,
    /// The client went away: the script runs on without stopping.
    gone: bool,
}

/// Longest debugger input kept (Redis drops the session's buffer past 1 MB).
const LDB_COMMAND_ARGS_MAX: usize = 1 << 16;

/// How long the debugger sleeps between looks for the client's next command.
const POLL_MS: u64 = 2;

impl Session {
    pub fn start(client: ClientId, body: &[u8]) -> Session {
        tracing::warn!("Redis synchronous debugging eval session started");
        let text = String::from_utf8_lossy(body);
        let text = text.trim_end_matches(['\n', '\r']);
        Session {
            client,
            src: text.split('\n').map(str::to_string).collect(),
            logs: Vec::new(),
            step: true,
            current_line: 0,
            gone: false,
        }
    }

    pub fn log(&mut self, line: String) {
        self.logs.push(line);
    }

    /// The pending log lines as the reply Redis sends (newlines turned into spaces).
    pub fn take_logs(&mut self) -> Reply {
        Reply::Array(
            self.logs
                .drain(..)
                .map(|l| Reply::StatusOwned(l.replace(['\r', '\n'], " ")))
                .collect(),
        )
    }

    fn source_line(&mut self, n: i64) {
        let text = usize::try_from(n - 1)
            .ok()
            .and_then(|i| self.src.get(i))
            .map_or("<out of range source code line>", |s| s.as_str());
        let prefix = if n == self.current_line { "-> " } else { "   " };
        let line = format!("{prefix}{n:<3} {text}");
        self.logs.push(line);
    }

    fn list(&mut self, around: i64, context: i64) {
        for j in 1..=self.src.len() as i64 {
            if around != 0 && (around - j).abs() > context {
                continue;
            }
            self.source_line(j);
        }
    }
}

/// Sends the session's pending logs to the debugging client now.
fn send_logs(srv: &mut Server, client: &mut crate::client::Client) {
    if let Some(s) = srv.ldb.as_mut() {
        let r = s.take_logs();
        client.reply(r);
        client.flush(0, false);
    }
}

/// What the line hook asks the debugger to do next.
pub enum Next {
    /// Go on running the script.
    Run,
    /// Run these debugger commands (from the client), then decide again.
    Commands(Vec<Vec<Bytes>>),
}

/// At a new line of the script: stop there if stepping (log where, send it), then wait for the
/// client's commands. Called with the server lent by the script's scope.
pub fn at_line(srv: &mut Server, client: &mut crate::client::Client, line: i64) -> Next {
    let Some(s) = srv.ldb.as_mut() else {
        return Next::Run;
    };
    s.current_line = line;
    if !s.step || s.gone {
        return Next::Run;
    }
    s.step = false;
    s.log(format!("* Stopped at {line}, stop reason = step over"));
    s.source_line(line);
    send_logs(srv, client);
    next_commands(srv, client)
}

/// Waits for the debugging client's next batch of commands. Other messages wait for the end
/// of the script; if the client goes away the script runs on (Redis's `ldbRepl` C_ERR).
pub fn next_commands(srv: &mut Server, client: &mut crate::client::Client) -> Next {
    let id = client.id;
    loop {
        let Some(rx) = srv.exec_rx.as_ref() else {
            // No way to hear the client (unit tests): run without stopping.
            if let Some(s) = srv.ldb.as_mut() {
                s.gone = true;
            }
            return Next::Run;
        };
        match rx.try_recv() {
            Ok(Msg::Commands { id: from, cmds }) if from == id => {
                if cmds.iter().any(|a| a.len() > LDB_COMMAND_ARGS_MAX) {
                    continue;
                }
                return Next::Commands(cmds);
            }
            Ok(m) => {
                let gone = matches!(&m, Msg::Disconnect { id: from } | Msg::ProtocolError { id: from, .. } if *from == id);
                srv.busy_deferred.push_back(m);
                if gone {
                    if let Some(s) = srv.ldb.as_mut() {
                        s.gone = true;
                        s.step = false;
                    }
                    return Next::Run;
                }
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                std::thread::sleep(std::time::Duration::from_millis(POLL_MS));
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return Next::Run,
        }
    }
}

/// What one debugger command does.
pub enum Action {
    /// Answered (its logs are pending); read the next command.
    Answered,
    /// step / next / continue: back to the script.
    Resume,
    /// eval: run this code (the caller does, with no lock held), then answer.
    Eval(String),
    /// redis: call redis.call with these arguments (the caller does), then answer.
    Redis(Vec<Bytes>),
    /// abort: stop the script with an error.
    Abort,
}

/// The debugger commands that need nothing but the session (Redis's `ldbRepl`).
pub fn command(srv: &mut Server, argv: &[Bytes]) -> Action {
    let Some(s) = srv.ldb.as_mut() else {
        return Action::Resume;
    };
    let name =
        String::from_utf8_lossy(argv.first().map_or(&b""[..], |a| &a[..])).to_ascii_lowercase();
    let arg = |i: usize| {
        argv.get(i)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    match name.as_str() {
        "h" | "help" => {
            for l in [
                "Redis Lua debugger help:",
                "[h]elp               Show this help.",
                "[s]tep               Run current line and stop again.",
                "[n]ext               Alias for step.",
                "[c]ontinue           Run till the end of the script (no breakpoints here).",
                "[l]ist               List source code around current line.",
                "[l]ist [line]        List source code around [line].",
                "                     line = 0 means: current position.",
                "[l]ist [line] [ctx]  In this form [ctx] specifies how many lines",
                "                     to show before/after [line].",
                "[w]hole              List all source code. Alias for 'list 1 1000000'.",
                "[e]val <code>        Execute some Lua code (in a different callframe).",
                "[r]edis <cmd>        Execute a Redis command.",
                "[a]bort              Stop the execution of the script. In sync",
                "                     mode dataset changes will be retained.",
            ] {
                s.log(l.to_string());
            }
            Action::Answered
        }
        "s" | "step" | "n" | "next" => {
            s.step = true;
            Action::Resume
        }
        "c" | "continue" => Action::Resume,
        "l" | "list" => {
            let mut around = s.current_line;
            if argv.len() > 1 && arg(1) > 0 {
                around = arg(1);
            }
            let ctx = if argv.len() > 2 { arg(2) } else { 5 };
            s.list(around, ctx);
            Action::Answered
        }
        "w" | "whole" => {
            s.list(1, 1_000_000);
            Action::Answered
        }
        "e" | "eval" if argv.len() > 1 => Action::Eval(
            argv[1..]
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "a" | "abort" => Action::Abort,
        "r" | "redis" if argv.len() > 1 => Action::Redis(argv[1..].to_vec()),
        _ => {
            s.log(
                "<error> Unknown Redis Lua debugger command or wrong number of arguments."
                    .to_string(),
            );
            Action::Answered
        }
    }
}

/// Redis's `ldbEval`: the code as an expression (`return <code>`), else as a statement,
/// compiled as `@ldb_eval`; the logged result.
pub fn eval(lua: &Lua, code: &str) -> String {
    let f = lua
        .load(format!("return {code}"))
        .set_name("@ldb_eval")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .or_else(|_| {
            lua.load(code)
                .set_name("@ldb_eval")
                .set_mode(mlua::chunk::ChunkMode::Text)
                .into_function()
        });
    let f = match f {
        Ok(f) => f,
        Err(e) => return format!("<error> {}", lua_error_text(&e)),
    };
    match f.call::<Value>(()) {
        Ok(v) => format!("<retval> {}", value_repr(&v, 0)),
        Err(e) => format!("<error> {}", lua_error_text(&e)),
    }
}

fn lua_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => super::first_line(&super::innermost_message(other)).to_string(),
    }
}

/// Redis's `ldbCatStackValue`: a Lua value as the debugger shows it.
fn value_repr(v: &Value, level: usize) -> String {
    if level > 10 {
        return "<max recursion level reached! Nested table?>".to_string();
    }
    match v {
        Value::String(s) => repr(&s.as_bytes()),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => crate::resp::fmt_g(*n, 6),
        Value::Nil => "nil".to_string(),
        Value::Table(t) => {
            let mut is_array = true;
            let (mut as_array, mut full) = (Vec::new(), Vec::new());
            for (expected, (k, val)) in (1i64..).zip(t.clone().pairs::<Value, Value>().flatten()) {
                let idx = match k {
                    Value::Integer(i) => Some(i),
                    Value::Number(n) if n.fract() == 0.0 => Some(n as i64),
                    _ => None,
                };
                if idx != Some(expected) {
                    is_array = false;
                }
                let vr = value_repr(&val, level + 1);
                full.push(format!("[{}]={vr}", value_repr(&k, level + 1)));
                as_array.push(vr);
            }
            format!("{{{}}}", if is_array { as_array } else { full }.join("; "))
        }
        other => format!("\"{}@{:p}\"", other.type_name(), other.to_pointer()),
    }
}

/// sds's `sdscatrepr`: a quoted string with C escapes.
pub fn repr(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// Redis's `ldbRedisProtocolToHuman`: a reply (as RESP `proto`, the script's protocol) in the
/// debugger's notation.
pub fn reply_human(r: &Reply, proto: u8) -> String {
    let mut buf = Vec::new();
    crate::resp::encode(r, proto, &mut buf);
    let mut out = String::new();
    let mut pos = 0;
    human(&buf, &mut pos, &mut out, 0);
    out
}

fn human(b: &[u8], pos: &mut usize, out: &mut String, depth: usize) {
    let Some(&tag) = b.get(*pos) else { return };
    let Some(len) = b[*pos..].windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let line = &b[*pos + 1..*pos + len];
    let whole = &b[*pos..*pos + len];
    *pos += len + 2;
    let n = std::str::from_utf8(line)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(-1);
    let agg =
        |out: &mut String, pos: &mut usize, open: &str, close: &str, count: i64, map: bool| {
            out.push_str(open);
            for j in 0..count.max(0) {
                if depth > 64 {
                    break;
                }
                human(b, pos, out, depth + 1);
                if map {
                    out.push_str(" => ");
                    human(b, pos, out, depth + 1);
                }
                if j != count - 1 {
                    out.push(',');
                }
            }
            out.push_str(close);
        };
    match tag {
        b':' => out.push_str(&String::from_utf8_lossy(line)),
        b'$' | b'=' if n < 0 => out.push_str("NULL"),
        b'$' | b'=' => {
            let end = (*pos + n as usize).min(b.len());
            out.push_str(&repr(&b[*pos..end]));
            *pos = end + 2;
        }
        b'+' | b'-' => out.push_str(&repr(whole)),
        b'*' if n < 0 => out.push_str("NULL"),
        b'*' | b'>' => agg(out, pos, "[", "]", n, false),
        b'~' => agg(out, pos, "~(", ")", n, false),
        b'%' => agg(out, pos, "{", "}", n, true),
        b'_' => out.push_str("(null)"),
        b'#' => out.push_str(if line == b"t" { "#true" } else { "#false" }),
        b',' => {
            out.push_str("(double) ");
            out.push_str(&String::from_utf8_lossy(line));
        }
        _ => {}
    }
}
