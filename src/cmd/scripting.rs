//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT LOAD / EXISTS / FLUSH / KILL /
//! DEBUG, with Redis 7.0's semantics: `KEYS` / `ARGV`, `redis.call` / `redis.pcall`,
//! `redis.error_reply` / `redis.status_reply`, `redis.sha1hex`, `redis.log`, `redis.setresp`
//! (RESP3 replies inside the script, and Redis's conversions both ways), `redis.set_repl`,
//! `redis.acl_check_cmd`, `#!lua` shebangs with their flags (`no-writes`, `allow-oom`, …,
//! checked before the script runs as for functions), read-only globals, and the error texts
//! (`... script: <sha>, on @user_script:<line>.`).
//!
//! Lua 5.1 (vendored through mlua), with the base, table, string and math libraries, as Redis
//! loads them, in a sandbox like Redis 7's: each run gets a fresh read-only environment (a
//! global assigned or rawset does not outlive the script), the library tables and `redis` are
//! read-only proxies, source text only (no bytecode), and no `loadfile`, `dofile`, `setfenv`,
//! `getfenv`, `newproxy`, `print` — nor `coroutine` (Redis has it; a coroutine would escape
//! the hook). `rename-command` applies. cjson, cmsgpack, bit and struct are there
//! (`scripting_libs.rs`, `scripting_struct.rs`). `pcall(redis.call, ...)` catches an
//! error object that is not Redis's string (`redis.pcall` returns Redis's error table).
//!
//! A long script: past `busy-reply-threshold` (`lua-time-limit`) the hook serves the other
//! clients every time it runs (`exec::serve_while_busy`, Redis's `processEventsWhileBlocked`):
//! they are answered `-BUSY`, except for SCRIPT KILL / FUNCTION KILL (which stop a script that
//! has not written), SHUTDOWN NOSAVE and what Redis allows while busy. With `io-threads 1` a
//! round that may run a script runs on a thread of its own (`exec::run_inline`), so the event
//! loop keeps reading the other clients meanwhile. SCRIPT DEBUG SYNC runs the next EVAL in
//! Redis's debugger (`scripting_ldb.rs`); SCRIPT DEBUG YES (a forked session) is refused.
//!
//! Durability: as Redis 7 (effects replication), a script is logged as the write commands it
//! ran, wrapped in MULTI/EXEC when there are several, so recovery applies a script whole or
//! not at all and replays no Lua; its reply waits for the log like a transaction's.

use std::collections::HashMap;

#[path = "scripting_ldb.rs"]
pub(crate) mod ldb;

use bytes::Bytes;
use mlua::{Lua, LuaOptions, MultiValue, StdLib, Value};

use crate::cmd::{cmd, flags::*, CommandSpec, KeySpec};
use crate::ctx::Ctx;
use crate::resp::{Reply, OK};

/// EVAL/FCALL keys: `numkeys` at index 2, the keys after it.
pub(crate) const KEYS_AFTER_NUMKEYS: KeySpec = KeySpec::NumKeys {
    numkeys_idx: 2,
    first: 3,
    step: 1,
};

pub static COMMANDS: &[CommandSpec] = &[
    cmd(
        "eval",
        -3,
        NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | STALE,
        KEYS_AFTER_NUMKEYS,
        "scripting",
        eval,
    ),
    cmd(
        "evalsha",
        -3,
        NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | STALE,
        KEYS_AFTER_NUMKEYS,
        "scripting",
        evalsha,
    ),
    cmd(
        "eval_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE,
        KEYS_AFTER_NUMKEYS,
        "scripting",
        eval_ro,
    ),
    cmd(
        "evalsha_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE,
        KEYS_AFTER_NUMKEYS,
        "scripting",
        evalsha_ro,
    ),
    CommandSpec {
        // Redis 7.0's names, arities and flags, so COMMAND shows them (SCRIPT DEBUG is not
        // implemented). The container keeps NOSCRIPT: dispatch checks the container's flags.
        subcommands: &[
            ("debug", 3, NOSCRIPT),
            ("exists", -3, NOSCRIPT),
            ("flush", -2, NOSCRIPT),
            ("help", 2, LOADING | STALE),
            ("kill", 2, NOSCRIPT | ALLOW_BUSY),
            ("load", 3, NOSCRIPT | STALE),
        ],
        ..cmd("script", -2, NOSCRIPT, KeySpec::None, "scripting", script)
    },
];

/// Run once per engine, with the full base library still there. It strips what Redis's
/// environment does not have, makes the library tables read-only (seen through proxies), and
/// returns the function each script runs under: a fresh, read-only environment per run (an
/// assignment to a global, or a read of one that does not exist, is an error at the script's
/// line, as in Redis 7; nothing a script does to its globals outlives it), with everything the
/// script raises (a string, an error table, anything) caught and handed back as a value.
const PRELUDE: &str = r#"
local R = __sb_redis
local where_ = __sb_where
__sb_redis, __sb_where = nil, nil
local G = _G
local setfenv_, error_, type_, rawget_, rawset_, setmetatable_, tostring_ =
  setfenv, error, type, rawget, rawset, setmetatable, tostring
-- Not in Redis's environment: files, environments, userdata with finalizers, printing, and
-- coroutines (a running coroutine would escape the time limit's hook).
loadfile, dofile, setfenv, getfenv, newproxy, print, coroutine = nil, nil, nil, nil, nil, nil, nil
-- Source text only: bytecode would break the VM's memory safety (Redis patches it out).
local loadstring_ = loadstring
loadstring = function(s, name)
  if type_(s) == "string" and s:byte(1) == 27 then
    return nil, "binary chunks are not allowed"
  end
  return loadstring_(s, name)
end
local concat_ = table.concat
load = function(reader, name)
  local parts = {}
  while true do
    local p = reader()
    if p == nil or p == "" then break end
    parts[#parts + 1] = p
  end
  return loadstring(concat_(parts), name)
end
-- The tables a script must not change (library proxies, environments, their metatables):
-- setmetatable on them says so as Redis 7's read-only tables do.
local protected = setmetatable_({}, { __mode = "k" })
local function readonly(t)
  local p = setmetatable_({}, {
    __index = t,
    __newindex = function() error_("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
  protected[p] = true
  return p
end
setmetatable = function(t, mt)
  if protected[t] then error_("Attempt to modify a readonly table", 0) end
  return setmetatable_(t, mt)
end
getmetatable("").__metatable = readonly({})
local shared = {
  string = readonly(string), table = readonly(table), math = readonly(math),
  cjson = readonly(cjson), cmsgpack = readonly(cmsgpack), bit = readonly(bit),
  struct = readonly(struct), redis = readonly(R),
}
local env_mt
env_mt = {
  __index = function(env, name)
    if name == "_G" then return env end
    local v = shared[name]
    if v ~= nil then return v end
    v = rawget_(G, name)
    if v ~= nil then return v end
    error_("Script attempted to access nonexistent global variable '" .. tostring_(name) .. "'", 2)
  end,
  __newindex = function()
    error_("Attempt to modify a readonly table", 2)
  end,
}
-- getmetatable(_G) gives a read-only view of the environment's metatable.
env_mt.__metatable = readonly(env_mt)
-- As Redis 7's error handler: what a script raises becomes an error table that says where
-- it was raised (a string as `ERR <text>`); an error of the server's own (redis.call's,
-- the time limit's) passes as it is.
local function handler(err)
  -- The innermost frame of the script itself (not error(), not our metamethods).
  local source, line
  for level = 2, 12 do
    local what, l, src = where_(level)
    if what == nil then break end
    if src == "@user_script" or src == "@user_function" then source, line = src, l break end
  end
  -- An error of the server's own (a library function's, redis.call's, the kill's): with
  -- where it was raised, for the reply.
  if type_(err) == "userdata" then return { sb_error = err, line = line } end
  if type_(err) ~= "table" then
    err = { err = "ERR " .. tostring_(err) }
  end
  if line then
    rawset(err, "source", source)
    rawset(err, "line", line)
  end
  return err
end
local xpcall_ = xpcall
local function run(f, keys, argv)
  local env = setmetatable_({ KEYS = keys, ARGV = argv }, env_mt)
  protected[env] = true
  setfenv_(f, env)
  return xpcall_(f, handler)
end
-- A function of a library (FCALL) runs as `callback(keys, args)`, in its library's
-- environment.
local function run_fn(f, keys, argv)
  return xpcall_(function() return f(keys, argv) end, handler)
end
-- FUNCTION LOAD: the library's code runs once in an environment of its own that holds only
-- `redis` (the load API: register_function, log, ...), as in Redis 7.0; once loaded, the
-- same environment (which its functions keep) answers as a script's: the libraries, the
-- full `redis` table, read-only globals.
local function load_lib(chunk, api)
  local loading = true
  local api_proxy = setmetatable_({}, {
    __index = function(_, name)
      local v = rawget_(api, name)
      if v == nil then
        error_("Script attempted to access nonexistent global variable '" .. tostring_(name) .. "'", 2)
      end
      return v
    end,
    __newindex = function() error_("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
  local env
  local function guarded_rawset(t, k, v)
    if t == env then error_("Attempt to modify a readonly table", 0) end
    return rawset_(t, k, v)
  end
  local lib_mt = {
    __index = function(env, name)
      if name == "redis" and loading then return api_proxy end
      if not loading then
        -- As a script's environment (env_mt), raising at the caller's line.
        if name == "_G" then return env end
        -- The environment outlives a call: rawset on it fails as on Redis's read-only
        -- globals.
        if name == "rawset" then return guarded_rawset end
        local v = shared[name]
        if v ~= nil then return v end
        v = rawget_(G, name)
        if v ~= nil then return v end
      end
      error_("Script attempted to access nonexistent global variable '" .. tostring_(name) .. "'", 2)
    end,
    __newindex = function() error_("Attempt to modify a readonly table", 2) end,
  }
  lib_mt.__metatable = readonly(lib_mt)
  env = setmetatable_({}, lib_mt)
  protected[env] = true
  setfenv_(chunk, env)
  local ok, err = xpcall_(chunk, handler)
  loading = false
  return ok, err
end
-- The runners, and the real `redis` table (the server sets `call` and `pcall` in it for each
-- run).
return run, R, run_fn, load_lib
"#;

/// The Lua state and the script cache (by lower-case SHA1 hex). FUNCTION has an engine of
/// its own (`function.rs`: another Lua state, as in Redis), which uses `run_fn` and `load_lib`.
pub struct Engine {
    pub(crate) lua: Lua,
    /// The function every script runs under (the prelude's result).
    runner: mlua::RegistryKey,
    /// The real `redis` table (scripts see a read-only proxy of it).
    pub(crate) redis: mlua::RegistryKey,
    /// Runs a library's function (FCALL): `run_fn(f, keys, args)`.
    pub(crate) run_fn: mlua::RegistryKey,
    /// Runs a library's code at FUNCTION LOAD: `load_lib(chunk, api)`.
    pub(crate) load_lib: mlua::RegistryKey,
    scripts: HashMap<String, mlua::RegistryKey>,
    /// The `#!lua flags=...` of each cached script that has a shebang (function.rs's flag
    /// bits); a script without one runs in Redis's compatibility mode.
    shebang_flags: HashMap<String, u32>,
    /// Total bytes of the cached script bodies (INFO `used_memory_scripts_eval` role).
    body_bytes: usize,
    /// The last body EVAL ran and its SHA1: the same script again skips the SHA1 (a third of
    /// what EVAL itself costs outside the script's run).
    last_body: (Vec<u8>, String),
    /// What `redis.setresp`, `redis.set_repl` and `redis.acl_check_cmd` (created once, not per
    /// run: a scoped function per run costs as much as a short script) share with the run.
    run: std::sync::Arc<RunShared>,
}

/// The running script's settings its static library functions read and write.
#[derive(Default)]
struct RunShared {
    /// redis.setresp: the protocol of the script's commands' replies.
    proto: std::sync::atomic::AtomicU8,
    /// redis.set_repl(redis.REPL_NONE): the following commands are not logged.
    repl_none: std::sync::atomic::AtomicBool,
    /// The caller's user (redis.acl_check_cmd).
    user: std::sync::Mutex<Option<std::sync::Arc<crate::acl::User>>>,
    /// The running script's time limit (its start, `busy-reply-threshold` in ms), for the
    /// hook; None between runs and when there is no limit.
    deadline: std::sync::Mutex<Option<(std::time::Instant, u128)>>,
    /// The running script was stopped (SCRIPT KILL, FUNCTION KILL, SHUTDOWN NOSAVE, or no
    /// client to serve past the threshold): every line and command it reaches fails.
    killed: std::sync::atomic::AtomicBool,
    /// The time limit's hook is set. It is set once and stays (setting a hook per run cost
    /// 4k instructions); a debugging session, a kill (which re-arms it on every line) and
    /// FUNCTION LOAD's own hook replace it, and clear this so that the next run sets it again.
    hook_armed: std::sync::atomic::AtomicBool,
}

fn sha1_hex(body: &[u8]) -> String {
    // (by hand: the digest's Display went through the formatter per byte, 3.5k instructions
    // per EVAL)
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut s = String::with_capacity(2 * digest.len());
    for b in digest {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

impl Engine {
    pub(crate) fn new() -> Result<Engine, String> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        let redis = lua.create_table().map_err(|e| e.to_string())?;
        let set = |name: &str, f: mlua::Function| redis.raw_set(name, f);
        let le = |e: mlua::Error| e.to_string();
        set(
            "error_reply",
            lua.create_function(|lua, msg: mlua::LuaString| {
                // Redis's luaPushErrorBuff on "-<msg>": the code is the first word when there
                // is a space, else ERR; a trailing newline is trimmed.
                let b = msg.as_bytes();
                let b = b.strip_prefix(b"-").unwrap_or(&b);
                let (code, text): (&[u8], &[u8]) = match b.iter().position(|&c| c == b' ') {
                    Some(i) => (&b[..i], &b[i + 1..]),
                    None => (b"ERR", b),
                };
                let mut text = text;
                while let [rest @ .., b'\r' | b'\n'] = text {
                    text = rest;
                }
                let mut err = code.to_vec();
                err.push(b' ');
                err.extend_from_slice(text);
                let t = lua.create_table()?;
                t.raw_set("err", lua.create_string(&err)?)?;
                Ok(t)
            })
            .map_err(le)?,
        )
        .map_err(le)?;
        set(
            "status_reply",
            lua.create_function(|lua, msg: mlua::LuaString| {
                let t = lua.create_table()?;
                t.raw_set("ok", msg)?;
                Ok(t)
            })
            .map_err(le)?,
        )
        .map_err(le)?;
        set(
            "sha1hex",
            lua.create_function(|lua, a: MultiValue| {
                // Redis's luaRedisSha1hexCommand: exactly one argument, a string or number.
                let s = match (a.len(), a.front()) {
                    (1, Some(Value::String(s))) => s.as_bytes().to_vec(),
                    (1, Some(Value::Integer(i))) => i.to_string().into_bytes(),
                    (1, Some(Value::Number(n))) => crate::resp::fmt_g(*n, 14).into_bytes(),
                    _ => {
                        return command_error(lua, "ERR wrong number of arguments", true);
                    }
                };
                Ok(Value::String(lua.create_string(sha1_hex(&s))?))
            })
            .map_err(le)?,
        )
        .map_err(le)?;
        set(
            "log",
            lua.create_function(|_, (level, msg): (i64, mlua::LuaString)| {
                let msg = String::from_utf8_lossy(&msg.as_bytes()).into_owned();
                match level {
                    0 => tracing::debug!("{msg}"),
                    1 | 2 => tracing::info!("{msg}"),
                    _ => tracing::warn!("{msg}"),
                }
                Ok(())
            })
            .map_err(le)?,
        )
        .map_err(le)?;
        // Effects replication is the only mode (Redis 7): these answer as Redis 7 does.
        set(
            "replicate_commands",
            lua.create_function(|_, ()| Ok(true)).map_err(le)?,
        )
        .map_err(le)?;
        for (name, v) in [
            ("LOG_DEBUG", 0),
            ("LOG_VERBOSE", 1),
            ("LOG_NOTICE", 2),
            ("LOG_WARNING", 3),
            ("REPL_NONE", 0),
            ("REPL_AOF", 1),
            ("REPL_SLAVE", 2),
            ("REPL_REPLICA", 2),
            ("REPL_ALL", 3),
        ] {
            redis.raw_set(name, v).map_err(le)?;
        }
        // The Redis version scripts see (7.0.15: "7.0.15" and 0x00070f).
        let num = crate::REDIS_COMPAT_VERSION
            .split('.')
            .map(|p| p.parse::<i64>().unwrap_or(0))
            .fold(0i64, |acc, p| (acc << 8) | p);
        redis
            .raw_set("REDIS_VERSION", crate::REDIS_COMPAT_VERSION)
            .map_err(le)?;
        redis.raw_set("REDIS_VERSION_NUM", num).map_err(le)?;
        // (the time limit's hook finds the run's `redis.pcall` through it)
        lua.set_named_registry_value(REDIS_KEY, &redis)
            .map_err(le)?;
        lua.globals().raw_set("__sb_redis", redis).map_err(le)?;
        super::scripting_libs::install(&lua).map_err(le)?;
        // For the prelude's error handler: (what, line, source) of the function `level`
        // frames up from this one's caller.
        let where_ = lua
            .create_function(|lua, level: usize| {
                Ok(lua
                    .inspect_stack(level, |d| {
                        let src = d.source();
                        (
                            src.what.to_string(),
                            d.current_line().map(|l| l as i64),
                            src.source.map(|s| s.into_owned()),
                        )
                    })
                    .map_or((None, None, None), |(w, l, s)| (Some(w), l, s)))
            })
            .map_err(le)?;
        lua.globals().raw_set("__sb_where", where_).map_err(le)?;
        lua.set_memory_limit(LUA_MEMORY_MAX).map_err(le)?;
        // A new collection cycle starts as soon as the last one ends (pause 100%, Lua's
        // default is 200%): the state stays near its live size (unit/scripting's "EVAL does
        // not leak" wants under 100 KB after 10,000 runs) without a GC step per run, which
        // cost more (a protected call each).
        lua.gc_set_mode(mlua::prelude::LuaGcMode::Incremental(
            mlua::prelude::LuaGcIncParams::default().pause(GC_PAUSE_PERCENT),
        ));
        let (runner, redis, run_fn, load_lib): (
            mlua::Function,
            mlua::Table,
            mlua::Function,
            mlua::Function,
        ) = lua.load(PRELUDE).set_name("=prelude").eval().map_err(le)?;
        let run = std::sync::Arc::new(RunShared::default());
        // redis.setresp(2|3): the protocol of the script's commands' replies.
        let shared = run.clone();
        let setresp = lua
            .create_function(move |lua, a: MultiValue| {
                if a.len() != 1 {
                    return command_error(lua, "ERR redis.setresp() requires one argument.", true);
                }
                let n = first_int(&a);
                if n != 2 && n != 3 {
                    return command_error(lua, "ERR RESP version must be 2 or 3.", true);
                }
                shared
                    .proto
                    .store(n as u8, std::sync::atomic::Ordering::Relaxed);
                Ok(Value::Nil)
            })
            .map_err(le)?;
        redis.raw_set("setresp", setresp).map_err(le)?;
        // redis.set_repl(flags): REPL_NONE keeps the following commands out of the log. The log
        // is both the AOF and the replication stream, so REPL_AOF and REPL_REPLICA alone cannot
        // be told apart from REPL_ALL: both log.
        let shared = run.clone();
        let set_repl = lua
            .create_function(move |lua, a: MultiValue| {
                if a.len() != 1 {
                    return command_error(lua, "ERR redis.set_repl() requires two arguments.", true);
                }
                let flags = first_int(&a);
                if flags & !3 != 0 {
                    return command_error(lua, "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.", true);
                }
                shared
                    .repl_none
                    .store(flags == 0, std::sync::atomic::Ordering::Relaxed);
                Ok(Value::Nil)
            })
            .map_err(le)?;
        redis.raw_set("set_repl", set_repl).map_err(le)?;
        // redis.acl_check_cmd(cmd, ...): may the caller's user run it (keys included)?
        let shared = run.clone();
        let acl_check = lua
            .create_function(move |lua, a: MultiValue| {
                let argv = match command_argv(a) {
                    Ok(argv) => argv,
                    Err(msg) => return command_error(lua, msg, true),
                };
                if argv.is_empty() {
                    return command_error(
                        lua,
                        "ERR Please specify at least one argument for this redis lib call",
                        true,
                    );
                }
                let Some(spec) = crate::exec::lookup_command(&argv[0]) else {
                    return command_error(
                        lua,
                        "ERR Invalid command passed to redis.acl_check_cmd()",
                        true,
                    );
                };
                let user = shared
                    .user
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                Ok(Value::Boolean(
                    user.is_some_and(|u| u.check(spec, &argv).is_ok()),
                ))
            })
            .map_err(le)?;
        redis.raw_set("acl_check_cmd", acl_check).map_err(le)?;
        let runner = lua.create_registry_value(runner).map_err(le)?;
        let redis = lua.create_registry_value(redis).map_err(le)?;
        let run_fn = lua.create_registry_value(run_fn).map_err(le)?;
        let load_lib = lua.create_registry_value(load_lib).map_err(le)?;
        Ok(Engine {
            lua,
            runner,
            redis,
            run_fn,
            load_lib,
            scripts: HashMap::new(),
            shebang_flags: HashMap::new(),
            body_bytes: 0,
            last_body: (Vec::new(), String::new()),
            run,
        })
    }

    /// Another hook replaced the time limit's (FUNCTION LOAD's): the next run sets it again.
    pub(crate) fn time_limit_hook_replaced(&self) {
        self.run
            .hook_armed
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Compile `body` (once) and cache it; returns its SHA1.
    fn load(&mut self, body: &[u8]) -> Result<String, String> {
        let sha = if !self.last_body.1.is_empty() && self.last_body.0 == body {
            self.last_body.1.clone()
        } else {
            let sha = sha1_hex(body);
            // (a body too large to be worth keeping twice is not remembered)
            if body.len() <= LAST_BODY_BYTES_MAX {
                self.last_body = (body.to_vec(), sha.clone());
            }
            sha
        };
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = parse_shebang(body).map_err(|e| format!("ERR {e}"))?;
        // The shebang line is left out (its newline kept, so line numbers stay).
        let f = self
            .lua
            .load(&body[shebang_len..])
            .set_name("@user_script")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!(
                    "ERR Error compiling script (new function): {}",
                    first_line(&msg)
                )
            })?;
        let key = self
            .lua
            .create_registry_value(f)
            .map_err(|e| format!("ERR {e}"))?;
        self.scripts.insert(sha.clone(), key);
        if let Some(flags) = flags {
            self.shebang_flags.insert(sha.clone(), flags);
        }
        self.body_bytes += body.len();
        Ok(sha)
    }
}

/// Redis 7's `evalExtractShebangFlags`: a body starting with `#!` must name the `lua` engine
/// and may give `flags=a,b` (the flags of `redis.register_function`). Returns the flags (None
/// without a shebang: compatibility mode) and the shebang line's length.
fn parse_shebang(body: &[u8]) -> Result<(Option<u32>, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((None, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let Some(engine) = parts.next() else {
        return Err("Invalid engine in script shebang".into());
    };
    if engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = 0;
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        // As sdssplitlen: "flags=" is no flag at all, "a,,b" has an empty one.
        if list.is_empty() {
            continue;
        }
        for name in list.split(',') {
            match super::function::script_flag(name) {
                Some(f) => flags |= f,
                None => return Err(format!("Unexpected flag in script shebang: {name}")),
            }
        }
    }
    Ok((Some(flags), end))
}

/// The command flags of an EVAL* / FCALL* call whose script declares flags (Redis's
/// `evalGetCommandFlags` / `fcallGetCommandFlags` with `scriptFlagsToCmdFlags`); `cmd_flags`
/// unchanged for a script without (compatibility mode) or one not found.
pub(crate) fn declared_command_flags(
    srv: &crate::exec::Server,
    name: &str,
    argv: &[Bytes],
    cmd_flags: u32,
) -> u32 {
    use super::function::{ALLOW_OOM, ALLOW_STALE, NO_WRITES};
    let Some(body_or_name) = argv.get(1) else {
        return cmd_flags;
    };
    let declared = match name {
        "eval" | "eval_ro" => parse_shebang(body_or_name).ok().and_then(|(f, _)| f),
        "evalsha" | "evalsha_ro" => srv.scripting.as_ref().and_then(|e| {
            let sha = String::from_utf8_lossy(body_or_name).to_ascii_lowercase();
            e.shebang_flags.get(&sha).copied()
        }),
        _ => super::function::function_flags(srv, body_or_name),
    };
    let Some(sf) = declared else {
        return cmd_flags;
    };
    let mut f = cmd_flags & !(STALE | DENYOOM | WRITE | MAY_REPLICATE);
    if sf & (ALLOW_OOM | NO_WRITES) == 0 {
        f |= DENYOOM;
    }
    if sf & NO_WRITES == 0 {
        f |= WRITE;
    }
    if sf & ALLOW_STALE != 0 {
        f |= STALE;
    }
    f
}

/// Redis 7's `scriptPrepareForRun` for a script with a shebang (or a function, whose flags
/// `function.rs` checks the same way): whether it may run now.
fn shebang_refuses(ctx: &mut Ctx, flags: u32, ro: bool) -> Option<Reply> {
    use super::function::{ALLOW_OOM, ALLOW_STALE, NO_WRITES};
    if flags & ALLOW_STALE == 0 && crate::replica::stale_only(ctx.srv, ctx.client) {
        return Some(Reply::err("MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script."));
    }
    if flags & NO_WRITES == 0 {
        if crate::replica::refuse_write(ctx.srv, ctx.client) {
            return Some(Reply::err(crate::replica::READONLY_ERR));
        }
        if let Some(e) = crate::persist::disk_error(ctx.srv) {
            return Some(Reply::Error(e.script_error()));
        }
        if ro {
            return Some(Reply::err(
                "ERR Can not execute a script with write flag using *_ro command.",
            ));
        }
        if crate::master::refuse_write(ctx.srv, ctx.client) {
            return Some(Reply::err(crate::master::NOREPLICAS_ERR));
        }
    }
    if ctx.srv.hot.maxmemory != 0 {
        if ctx.srv.pre_command_oom && flags & (ALLOW_OOM | NO_WRITES) == 0 {
            return Some(Reply::err("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'"));
        }
        if flags & ALLOW_OOM != 0 {
            ctx.srv.pre_command_oom = false;
        }
    }
    None
}

/// mlua's messages carry a traceback after the first line.
pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn engine(ctx: &mut Ctx) -> Result<Box<Engine>, Reply> {
    match ctx.srv.scripting.take() {
        Some(e) => Ok(e),
        None => Engine::new()
            .map(Box::new)
            .map_err(|e| Reply::Error(format!("ERR cannot start the Lua engine: {e}"))),
    }
}

fn eval(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    run(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    run(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    run(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    run(ctx, args, true, true)
}

fn run(ctx: &mut Ctx, args: &[Bytes], by_sha: bool, read_only: bool) -> Reply {
    let Some(numkeys) = crate::util::parse_i64(&args[2]) else {
        return Reply::err("ERR value is not an integer or out of range");
    };
    if numkeys < 0 {
        return Reply::err("ERR Number of keys can't be negative");
    }
    if numkeys as usize > args.len() - 3 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    let mut eng = match engine(ctx) {
        Ok(e) => e,
        Err(r) => return r,
    };
    // SCRIPT DEBUG SYNC: this run is a debugging session (`scripting_ldb.rs`).
    let debugging = ctx.srv.ldb_sync.contains(&ctx.client.id);
    if debugging {
        ctx.srv.ldb = Some(ldb::Session::start(ctx.client.id, &args[1]));
    }
    let reply = run_in(ctx, &mut eng, args, numkeys as usize, by_sha, read_only);
    ctx.srv.scripting = Some(eng);
    if let Some(mut s) = ctx.srv.ldb.take() {
        // Redis's ldbEndSession: the end mark, then the script's reply, then the client is
        // disconnected (the end of the session).
        s.log("<endsession>".to_string());
        ctx.client.reply(s.take_logs());
        ctx.client.close_after_reply = true;
        ctx.srv.ldb_sync.remove(&ctx.client.id);
        tracing::warn!("Redis synchronous debugging eval session ended");
    }
    reply
}

fn run_in(
    ctx: &mut Ctx,
    eng: &mut Engine,
    args: &[Bytes],
    numkeys: usize,
    by_sha: bool,
    read_only: bool,
) -> Reply {
    let sha = if by_sha {
        let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        if !eng.scripts.contains_key(&sha) {
            return Reply::err("NOSCRIPT No matching script. Please use EVAL.");
        }
        sha
    } else {
        match eng.load(&args[1]) {
            Ok(sha) => sha,
            Err(e) => return Reply::Error(e),
        }
    };
    let lua = &eng.lua;
    let (f, runner): (mlua::Function, mlua::Function) = match (
        eng.scripts.get(&sha).map(|k| lua.registry_value(k)),
        lua.registry_value(&eng.runner),
    ) {
        (Some(Ok(f)), Ok(r)) => (f, r),
        _ => return Reply::err("NOSCRIPT No matching script. Please use EVAL."),
    };
    let (keys, argv) = args[3..].split_at(numkeys);
    let mut read_only = read_only;
    if let Some(&flags) = eng.shebang_flags.get(&sha) {
        if let Some(r) = shebang_refuses(ctx, flags, read_only) {
            return r;
        }
        read_only |= flags & super::function::NO_WRITES != 0;
    } else if crate::replica::stale_only(ctx.srv, ctx.client) {
        // A script without flags does not run on a stale replica (Redis's compatibility mode).
        return Reply::err(crate::replica::MASTERDOWN_ERR);
    }
    let what = Running {
        name: &sha,
        source: "@user_script",
        read_only,
        command: args,
    };
    execute(ctx, eng, runner, f, keys, argv, &what)
}

/// The script running now (`Server::script_run`), as SCRIPT KILL, FUNCTION KILL and the
/// BUSY replies need it (Redis's `scriptRunCtx` flags).
#[derive(Debug, Clone)]
pub struct ScriptRun {
    /// Its name for FUNCTION STATS (`f_<sha>` for EVAL, as Redis names them), the command
    /// that runs it and when it started.
    pub name: String,
    pub command: Vec<Bytes>,
    pub started: std::time::Instant,
    /// EVAL (else FCALL): which KILL may stop it, and the BUSY text.
    pub eval: bool,
    /// Past `busy-reply-threshold`: other clients are served from its hook, answered BUSY.
    pub timed_out: bool,
    /// SCRIPT KILL / FUNCTION KILL asked for it to stop.
    pub killed: bool,
    /// It ran a write command: it can no longer be killed (only SHUTDOWN NOSAVE stops it).
    pub dirty: bool,
    /// Sent by our master: never killed.
    pub from_master: bool,
}

const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
const KILLED_MSG: &str = "Script killed by user with SCRIPT KILL...";

/// The `-BUSY` error for other clients while the running script is past its threshold.
pub fn busy_error(srv: &crate::exec::Server) -> &'static str {
    match &srv.script_run {
        Some(r) if !r.eval => BUSY_FUNCTION,
        _ => BUSY_EVAL,
    }
}

/// SCRIPT KILL (`is_eval`) and FUNCTION KILL: Redis's `scriptKill`.
pub(crate) fn kill_running(srv: &mut crate::exec::Server, is_eval: bool) -> Reply {
    let Some(r) = srv.script_run.as_mut() else {
        return Reply::err("NOTBUSY No scripts in execution right now.");
    };
    if r.from_master {
        return Reply::err("UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed.");
    }
    if r.dirty {
        return Reply::err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
    }
    if is_eval != r.eval {
        return Reply::err(if r.eval { BUSY_EVAL } else { BUSY_FUNCTION });
    }
    r.killed = true;
    OK
}

/// What runs: for the error texts (`script: <name>, on <source>:<line>.`) and the checks.
pub(crate) struct Running<'a> {
    /// The script's SHA1, or the function's name.
    pub name: &'a str,
    /// The chunk name: `@user_script` (EVAL) or `@user_function` (FCALL).
    pub source: &'a str,
    /// Write commands are refused (`*_RO`, or a function with `no-writes`).
    pub read_only: bool,
    /// The command that runs it (FUNCTION STATS shows it while it runs).
    pub command: &'a [Bytes],
}

/// Run `f` through `runner` (the prelude's `run` or `run_fn`) with `keys` and `argv`, as the
/// calling client: `redis.call`/`pcall` in place, the time limit armed, the writes logged as
/// one unit; the reply as Redis converts it.
pub(crate) fn execute(
    ctx: &mut Ctx,
    eng: &Engine,
    runner: mlua::Function,
    f: mlua::Function,
    keys: &[Bytes],
    argv: &[Bytes],
    what: &Running<'_>,
) -> Reply {
    let lua = &eng.lua;
    let read_only = what.read_only;
    let (sha, source) = (what.name, what.source);
    let redis: mlua::Table = match lua.registry_value(&eng.redis) {
        Ok(t) => t,
        Err(e) => return Reply::Error(format!("ERR {e}")),
    };
    // While a memory limit is set, mlua guards every operation with a protected call (two C
    // closures allocated, then a pcall): that was a third of a short EVAL. What is built
    // around the run (KEYS, ARGV, the run's functions) is bounded by the request itself, so
    // the limit is lifted for it and applies to the script's own run (`run_limited`).
    let _ = lua.set_memory_limit(0);
    let to_table = |items: &[Bytes]| -> mlua::Result<mlua::Table> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, a) in items.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(&a[..])?)?;
        }
        Ok(t)
    };
    let (keys, argv) = match (to_table(keys), to_table(argv)) {
        (Ok(k), Ok(a)) => (k, a),
        (Err(e), _) | (_, Err(e)) => {
            let _ = lua.set_memory_limit(LUA_MEMORY_MAX);
            return Reply::Error(format!("ERR {e}"));
        }
    };
    // The script's commands run as the caller, in its database and with RESP2 replies (as
    // Redis); a SELECT inside the script does not outlive it.
    let db_before = ctx.client.db;
    let proto_before = ctx.client.proto;
    ctx.client.proto = 2;
    // Past `busy-reply-threshold` (`lua-time-limit`, 5 s) the hook serves the other clients
    // (BUSY, SCRIPT KILL, SHUTDOWN NOSAVE: `exec::serve_while_busy`) every time it runs, as
    // Redis's; once killed, every line the script reaches and every command it calls fails, so
    // even a script that catches errors ends. Where no client can be served (unit tests) the
    // script is stopped at the threshold instead. Its writes so far are kept, as after any
    // error in a script.
    let limit_ms = ctx.srv.cfg.get_i64("busy-reply-threshold").max(0) as u128;
    let started = std::time::Instant::now();
    ctx.srv.script_time_ms = Some(ctx.now_ms);
    ctx.srv.script_run = Some(ScriptRun {
        name: if source == "@user_script" {
            format!("f_{sha}")
        } else {
            sha.to_string()
        },
        command: what.command.to_vec(),
        started,
        eval: source == "@user_script",
        timed_out: false,
        killed: false,
        dirty: false,
        from_master: ctx.client.is_master,
    });
    let debugging = ctx.srv.ldb.is_some();
    let run_shared = eng.run.clone();
    let run: &RunShared = &run_shared;
    run.killed
        .store(false, std::sync::atomic::Ordering::Relaxed);
    *run.deadline.lock().unwrap_or_else(|p| p.into_inner()) =
        (limit_ms > 0).then_some((started, limit_ms));
    if debugging {
        run.hook_armed
            .store(false, std::sync::atomic::Ordering::Relaxed);
        arm_debugger(lua);
    } else if limit_ms > 0
        && !run
            .hook_armed
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        arm_time_limit(lua, run_shared.clone(), false);
    }
    ctx.srv.log.begin_unit();
    run.proto.store(2, std::sync::atomic::Ordering::Relaxed);
    run.repl_none
        .store(false, std::sync::atomic::Ordering::Relaxed);
    *run.user.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx.client.user.clone());
    let mut counted = false;
    let outcome = {
        // The script's commands reach the server through this (the execution thread's own
        // data, lent to the scope for the script's run).
        let cell = std::sync::Mutex::new((&mut *ctx.srv, &mut *ctx.client));
        let cell = &cell;
        lua.scope(|scope| {
            // For the hook (which must be 'static): serve the other clients, and say whether
            // the script was killed (SCRIPT KILL, FUNCTION KILL, SHUTDOWN NOSAVE). It goes
            // through `redis.pcall` with a marker no script can make (a light userdata), so
            // that a run creates no third function: each costs as much as a short script.
            let serve = |srv: &mut crate::exec::Server| {
                if let Some(r) = srv.script_run.as_mut() {
                    if !r.timed_out {
                        r.timed_out = true;
                        tracing::warn!(
                            "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the {} command. Script name is: {}.",
                            started.elapsed().as_millis(),
                            if r.eval { "SCRIPT KILL" } else { "FUNCTION KILL" },
                            sha
                        );
                    }
                }
                let served = crate::exec::serve_while_busy(srv);
                let kill =
                    srv.script_run.as_ref().is_some_and(|r| r.killed) || srv.shutdown.is_some();
                i64::from(served) | i64::from(kill) << 1
            };
            for (name, raise) in [("call", true), ("pcall", false)] {
                let func = scope.create_function(move |lua, a: MultiValue| {
                    if !raise && a.front().is_some_and(is_serve_marker) {
                        return Ok(Value::Integer(match cell.try_lock() {
                            Ok(mut g) => serve(g.0),
                            Err(_) => 1,
                        }));
                    }
                    if run.killed.load(std::sync::atomic::Ordering::Relaxed) {
                        return command_error(lua, &format!("ERR {KILLED_MSG}"), raise);
                    }
                    // Never re-entered (no command runs Lua); refuse rather than wait.
                    let Ok(mut g) = cell.try_lock() else {
                        return command_error(lua, "ERR redis.call re-entered", raise);
                    };
                    let (srv, client) = &mut *g;
                    // redis.setresp / redis.set_repl since the last command (`RunShared`).
                    client.proto = run.proto.load(std::sync::atomic::Ordering::Relaxed);
                    srv.script_repl_none = run.repl_none.load(std::sync::atomic::Ordering::Relaxed);
                    call_logged(lua, srv, client, a, read_only, raise)
                })?;
                redis.raw_set(name, func)?;
            }
            if debugging {
                let redis_call: mlua::Function = redis.raw_get("call")?;
                let at_line = scope.create_function(move |lua, line: i64| {
                    debugger_at_line(lua, cell, &redis_call, line)
                })?;
                lua.set_named_registry_value(LDB_KEY, at_line)?;
            }
            let (ok, v): (bool, Value) = run_limited(lua, || runner.call((f, keys, argv)))?;
            let resp3 = run.proto.load(std::sync::atomic::Ordering::Relaxed) >= 3;
            counted = outcome_counted(ok, &v);
            Ok(if ok {
                lua_to_reply(&v, resp3, proto_before)?
            } else {
                Reply::Error(raised_error(lua, &v, sha, source))
            })
        })
    };
    let _ = redis.raw_set("call", Value::Nil);
    let _ = redis.raw_set("pcall", Value::Nil);
    *run.user.lock().unwrap_or_else(|p| p.into_inner()) = None;
    ctx.srv.script_repl_none = false;
    ctx.srv.script_time_ms = None;
    *run.deadline.lock().unwrap_or_else(|p| p.into_inner()) = None;
    if debugging {
        let _ = lua.unset_named_registry_value(LDB_KEY);
    }
    // The debugger's hook, or the time limit's re-armed on every line by a kill, goes; the
    // next run sets the time limit's again.
    if debugging || run.killed.swap(false, std::sync::atomic::Ordering::Relaxed) {
        lua.remove_hook();
        run.hook_armed
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
    ctx.srv.script_run = None;
    ctx.srv.log.end_unit();
    ctx.client.db = db_before;
    ctx.client.proto = proto_before;
    // Effects were logged command by command inside the unit; EVAL itself adds nothing.
    ctx.propagate_nothing();
    let _ = lua.set_memory_limit(LUA_MEMORY_MAX);
    if counted && matches!(outcome, Ok(Reply::Error(_))) {
        // Not counted again as EVAL's reply (`exec::call`); EVAL still counts as failed.
        ctx.srv.script_error_counted = true;
    }
    match outcome {
        Ok(r) => r,
        Err(e) => Reply::Error(format!(
            "ERR {} script: {sha}, on {source}:0.",
            one_line(&innermost_message(&e))
        )),
    }
}

/// `f` (the script's run) under the Lua state's memory limit, lifted again after it (see
/// `execute`).
fn run_limited<R>(lua: &Lua, f: impl FnOnce() -> mlua::Result<R>) -> mlua::Result<R> {
    lua.set_memory_limit(LUA_MEMORY_MAX)?;
    let r = f();
    let _ = lua.set_memory_limit(0);
    r
}

/// Where the scope keeps the debugger's line function (SCRIPT DEBUG SYNC sessions).
const LDB_KEY: &str = "sb_ldb_at_line";

/// A debugging session's hook: every line of the script itself goes to the debugger (which
/// has no time limit, as Redis's sync sessions stop a script only when asked).
fn arm_debugger(lua: &Lua) {
    let _ = lua.set_hook(mlua::HookTriggers::new().every_line(), move |lua, debug| {
        let in_script = debug.source().source.is_some_and(|s| s == "@user_script");
        if !in_script {
            return Ok(mlua::VmState::Continue);
        }
        let line = debug.current_line().map_or(0, |l| l as i64);
        lua.named_registry_value::<mlua::Function>(LDB_KEY)
            .and_then(|f| f.call::<()>(line))?;
        Ok(mlua::VmState::Continue)
    });
}

type Lent<'a, 'b> = std::sync::Mutex<(&'a mut crate::exec::Server, &'b mut crate::client::Client)>;

/// The debugger at a line: stop if stepping, then run the client's commands until one resumes
/// the script (the server is locked only between Lua calls, so `eval` and `redis` can use it).
fn debugger_at_line(
    lua: &Lua,
    cell: &Lent<'_, '_>,
    redis_call: &mlua::Function,
    line: i64,
) -> mlua::Result<()> {
    let lock = || {
        cell.lock()
            .map_err(|_| mlua::Error::RuntimeError("debugger state poisoned".into()))
    };
    let mut next = {
        let mut g = lock()?;
        let (srv, client) = &mut *g;
        ldb::at_line(srv, client, line)
    };
    loop {
        let ldb::Next::Commands(cmds) = next else {
            return Ok(());
        };
        let mut resume = false;
        for argv in &cmds {
            let action = {
                let mut g = lock()?;
                ldb::command(g.0, argv)
            };
            match action {
                ldb::Action::Answered => {}
                ldb::Action::Resume => {
                    // What the client pipelined after it is dropped, as Redis's ldbRepl
                    // drops its buffer.
                    resume = true;
                    break;
                }
                ldb::Action::Eval(code) => {
                    let out = ldb::eval(lua, &code);
                    if let Some(s) = lock()?.0.ldb.as_mut() {
                        s.log(out);
                    }
                }
                ldb::Action::Redis(args) => {
                    // redis.call with stepping on, so that it logs the command and its reply.
                    if let Some(s) = lock()?.0.ldb.as_mut() {
                        s.step = true;
                    }
                    let mut a = MultiValue::new();
                    for x in &args {
                        a.push_back(Value::String(lua.create_string(&x[..])?));
                    }
                    let _ = redis_call.call::<Value>(a);
                    if let Some(s) = lock()?.0.ldb.as_mut() {
                        s.step = false;
                    }
                }
                ldb::Action::Abort => {
                    // The batch is answered by the end of the session (its logs, the error).
                    return Err(mlua::Error::external(Raised {
                        msg: "ERR script aborted for user request".into(),
                        line,
                        counted: false,
                    }));
                }
            }
            let mut g = lock()?;
            let (srv, client) = &mut *g;
            send_debugger_logs(srv, client, false);
        }
        let mut g = lock()?;
        let (srv, client) = &mut *g;
        // The batch of debugger commands is answered.
        client.flush(0, true);
        if resume {
            return Ok(());
        }
        next = ldb::next_commands(srv, client);
    }
}

/// The debugger's pending logs to its client (answering one command).
fn send_debugger_logs(
    srv: &mut crate::exec::Server,
    client: &mut crate::client::Client,
    completes_batch: bool,
) {
    if let Some(s) = srv.ldb.as_mut() {
        let r = s.take_logs();
        client.reply(r);
        client.flush(0, completes_batch);
    }
}

/// The real `redis` table, in the registry: the hook calls the run's `redis.pcall` in it to
/// serve the other clients.
const REDIS_KEY: &str = "sb_redis";

/// The argument the hook passes to the run's `redis.pcall` to have it serve the other clients
/// (a light userdata: scripts cannot make one).
static SERVE_MARKER: u8 = 0;

fn serve_marker() -> mlua::LightUserData {
    mlua::LightUserData(std::ptr::addr_of!(SERVE_MARKER) as *mut std::ffi::c_void)
}

fn is_serve_marker(v: &Value) -> bool {
    matches!(v, Value::LightUserData(p) if *p == serve_marker())
}

/// The time limit's hook. Until the deadline it looks at the clock every
/// [`HOOK_INSTRUCTIONS`] VM instructions (a line hook would cost a Rust call per line: a
/// 10M-iteration loop took 14 times as long). Past it, every time it runs it serves the other
/// clients (the run's `redis.pcall`, given the serve marker); once the script is killed it
/// raises, and re-arms itself on every line as well, so that a script that catches the error
/// (`pcall` in a loop) fails again at its next line outside the catch and ends. Between runs
/// (no deadline in `run`) it does nothing.
fn arm_time_limit(lua: &Lua, run: std::sync::Arc<RunShared>, every_line: bool) {
    let triggers = if every_line {
        mlua::HookTriggers::new()
            .every_line()
            .every_nth_instruction(1000)
    } else {
        mlua::HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS)
    };
    // (a hook that cannot be set leaves the script unbounded, as in Redis)
    let _ = lua.set_hook(triggers, move |lua, debug| {
        // Raised at the script's line, as Redis reports it.
        let raise = |msg: String| {
            let line = debug.current_line().map_or(0, |l| l as i64);
            Err(mlua::Error::external(Raised {
                msg: format!("ERR {msg}"),
                line,
                counted: false,
            }))
        };
        let deadline = *run.deadline.lock().unwrap_or_else(|p| p.into_inner());
        let Some((started, limit_ms)) = deadline else {
            return Ok(mlua::VmState::Continue);
        };
        if run.killed.load(std::sync::atomic::Ordering::Relaxed) {
            return raise(KILLED_MSG.into());
        }
        if started.elapsed().as_millis() < limit_ms {
            return Ok(mlua::VmState::Continue);
        }
        let served = lua
            .named_registry_value::<mlua::Table>(REDIS_KEY)
            .and_then(|redis| redis.raw_get::<mlua::Function>("pcall"))
            .and_then(|f| f.call::<i64>(serve_marker()))
            .map(|bits| (bits & 1 != 0, bits & 2 != 0));
        let msg = match served {
            Ok((true, false)) => return Ok(mlua::VmState::Continue),
            Ok((true, true)) => {
                tracing::warn!("Lua script killed by user with SCRIPT KILL.");
                KILLED_MSG.to_string()
            }
            // Nobody to serve (unit tests): stop the script rather than run forever.
            _ => format!(
                "Script stopped after busy-reply-threshold ({limit_ms} ms): no client can be served while it runs"
            ),
        };
        run.killed.store(true, std::sync::atomic::Ordering::Relaxed);
        run.hook_armed
            .store(false, std::sync::atomic::Ordering::Relaxed);
        arm_time_limit(lua, run.clone(), true);
        raise(msg)
    });
}

/// A command's error as `redis.call` raises it (with the script's line: a C function's caller
/// frame survives even a `return redis.call(...)`) or `redis.pcall` returns it (Redis's error
/// table).
fn command_error(lua: &Lua, msg: &str, raise: bool) -> mlua::Result<Value> {
    command_error_counted(lua, msg, raise, false)
}

/// [`command_error`] for an error already counted in the error stats (a command's error
/// reply, or a command refused by the script checks, counted there as Redis's afterErrorReply
/// does): if the script passes it on as its own error, EVAL's reply is not counted again
/// (Redis's `ignore_error_stats_update` field of the error table).
fn command_error_counted(lua: &Lua, msg: &str, raise: bool, counted: bool) -> mlua::Result<Value> {
    if raise {
        let line = lua
            .inspect_stack(1, |d| d.current_line())
            .flatten()
            .map_or(0, |l| l as i64);
        return Err(mlua::Error::external(Raised {
            msg: msg.to_string(),
            line,
            counted,
        }));
    }
    let t = lua.create_table()?;
    t.raw_set("err", msg)?;
    if counted {
        t.raw_set(COUNTED_FIELD, true)?;
    }
    Ok(Value::Table(t))
}

/// The error table's field that marks an error already counted (Redis's name).
const COUNTED_FIELD: &str = "ignore_error_stats_update";

/// Whether a script's outcome (`ok`, and its value) is an error that was counted when a
/// command produced it.
fn outcome_counted(ok: bool, v: &Value) -> bool {
    let flagged =
        |t: &mlua::Table| matches!(t.raw_get::<Value>(COUNTED_FIELD), Ok(Value::Boolean(true)));
    match v {
        Value::Table(t) if !ok => match t.raw_get::<Value>("sb_error") {
            Ok(Value::Error(e)) => find_raised(&e).is_some_and(|r| r.counted),
            _ => flagged(t),
        },
        Value::Table(t) => flagged(t),
        Value::Error(e) if !ok => find_raised(e).is_some_and(|r| r.counted),
        _ => false,
    }
}

/// A `redis.call` whose command answered an error: raised to the script, reported by EVAL as
/// the command's error at the line of the call.
#[derive(Debug)]
struct Raised {
    msg: String,
    line: i64,
    /// Already counted in the error stats (see [`command_error_counted`]).
    counted: bool,
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Raised {}

fn find_raised(e: &mlua::Error) -> Option<&Raised> {
    match e {
        mlua::Error::ExternalError(x) => x.downcast_ref::<Raised>(),
        mlua::Error::CallbackError { cause, .. } => find_raised(cause),
        mlua::Error::WithContext { cause, .. } => find_raised(cause),
        _ => None,
    }
}

/// What a script raised, as EVAL's error reply (Redis 7's wording): an error table as its
/// `err` text, with `script: <sha>, on <source>:<line>.` when it says where; a string with
/// the script's position as `ERR <text> script: ...`.
fn raised_error(lua: &Lua, v: &Value, sha: &str, source: &str) -> String {
    match v {
        Value::Table(t) if matches!(t.raw_get::<Value>("sb_error"), Ok(Value::Error(_))) => {
            let Ok(Value::Error(e)) = t.raw_get::<Value>("sb_error") else {
                return format!("ERR script: {sha}, on {source}:0.");
            };
            if let Some(r) = find_raised(&e) {
                return format!(
                    "{} script: {sha}, on {source}:{}.",
                    one_line(&r.msg),
                    r.line
                );
            }
            // A library function's error (luaL_error's): where it was raised, then the text.
            let line = t.raw_get::<Option<i64>>("line").ok().flatten().unwrap_or(0);
            format!(
                "ERR {}:{line}: {} script: {sha}, on {source}:{line}.",
                source.trim_start_matches('@'),
                one_line(&innermost_message(&e))
            )
        }
        Value::Table(t) => {
            let text = |k: &str| match t.raw_get::<Value>(k) {
                Ok(Value::String(s)) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
                Ok(Value::Integer(i)) => Some(i.to_string()),
                Ok(Value::Number(n)) => Some((n as i64).to_string()),
                _ => None,
            };
            let Some(err) = text("err") else {
                return format!(
                    "ERR {} script: {sha}, on {source}:0.",
                    one_line(&describe(lua, v))
                );
            };
            let err = one_line(err.strip_prefix('-').unwrap_or(&err));
            match (text("source"), text("line")) {
                (Some(src), Some(line)) => format!("{err} script: {sha}, on {src}:{line}."),
                _ => err,
            }
        }
        Value::Error(e) => match find_raised(e) {
            Some(r) => format!(
                "{} script: {sha}, on {source}:{}.",
                one_line(&r.msg),
                r.line
            ),
            None => format!(
                "ERR {} script: {sha}, on {source}:0.",
                one_line(&innermost_message(e))
            ),
        },
        other => {
            let msg = one_line(&describe(lua, other));
            let line = msg
                .strip_prefix(source.trim_start_matches('@'))
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0);
            format!("ERR {msg} script: {sha}, on {source}:{line}.")
        }
    }
}

/// `tostring` of a raised value (never fails: a broken `__tostring` gives its type).
fn describe(lua: &Lua, v: &Value) -> String {
    match v {
        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        Value::Nil => "nil".to_string(),
        other => match lua.coerce_string(other.clone()) {
            Ok(Some(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => other.type_name().to_string(),
        },
    }
}

/// Error replies are one line: CR and LF become spaces (as Redis does).
pub(crate) fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// `script_call`, and in a debugging session that steps, the command and its error logged as
/// Redis's debugger logs them.
/// The first argument as an integer (0 if it is not a number).
fn first_int(a: &MultiValue) -> i64 {
    match a.front() {
        Some(Value::Integer(i)) => *i,
        Some(Value::Number(n)) => *n as i64,
        _ => 0,
    }
}

/// The arguments of `redis.call` & co. as a command's argv, or Redis's error text.
fn command_argv(a: MultiValue) -> Result<Vec<Bytes>, &'static str> {
    let mut argv = Vec::with_capacity(a.len());
    for v in a {
        match v {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            // As Redis 7.0 formats a Lua number argument: whole numbers as integers, others
            // with 17 significant digits (Lua's own tostring keeps only 14).
            Value::Integer(i) => argv.push(Bytes::from(i.to_string())),
            Value::Number(n) => argv.push(Bytes::from(number_arg(n))),
            _ => return Err("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(argv)
}

fn call_logged(
    lua: &Lua,
    srv: &mut crate::exec::Server,
    client: &mut crate::client::Client,
    a: MultiValue,
    read_only: bool,
    raise: bool,
) -> mlua::Result<Value> {
    if let Some(s) = srv.ldb.as_mut().filter(|s| s.step) {
        let mut line = String::from("<redis>");
        for (j, v) in a.iter().enumerate() {
            if j == 10 {
                line.push_str(&format!(" ... ({} more)", a.len() - j - 1));
                break;
            }
            line.push(' ');
            line.push_str(&describe(lua, v));
        }
        s.log(line);
    }
    let r = script_call(lua, srv, client, a, read_only, raise);
    if let Some(s) = srv.ldb.as_mut().filter(|s| s.step) {
        let err = match &r {
            Err(e) => find_raised(e).map(|x| x.msg.clone()),
            Ok(Value::Table(t)) => t.raw_get::<Option<String>>("err").ok().flatten(),
            Ok(_) => None,
        };
        if let Some(e) = err {
            // Logged as the error's text (Redis's err_buffer has no ERR code).
            s.log(format!("<error> {}", e.strip_prefix("ERR ").unwrap_or(&e)));
        }
    }
    r
}

/// `redis.call` (`raise`) / `redis.pcall`: run one command as the script's client.
fn script_call(
    lua: &Lua,
    srv: &mut crate::exec::Server,
    client: &mut crate::client::Client,
    a: MultiValue,
    read_only: bool,
    raise: bool,
) -> mlua::Result<Value> {
    let fail = |msg: &str| command_error(lua, msg, raise);
    let fail_counted = |msg: &str| command_error_counted(lua, msg, raise, true);
    let mut argv = match command_argv(a) {
        Ok(argv) => argv,
        Err(msg) => return fail(msg),
    };
    if argv.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    // `rename-command` applies to scripts too (a removed command is unknown here as well).
    let renamed_ok = crate::exec::apply_renames(&mut argv);
    let Some(spec) = crate::exec::lookup_command(&argv[0]).filter(|_| renamed_ok) else {
        let msg = "ERR Unknown Redis command called from script";
        crate::exec::count_error(&mut srv.stats, msg);
        return fail_counted(msg);
    };
    // A command refused here counts as a rejected call of it (Redis's scriptCall:
    // `incrCommandStatsOnError(cmd, ERROR_COMMAND_REJECTED)`), as one refused before it ran.
    let stat = crate::cmd::server::stat_name(spec, &argv);
    let reject = |srv: &mut crate::exec::Server, msg: &str| {
        srv.stats.per_cmd.entry(stat).or_default().rejected += 1;
        crate::exec::count_error(&mut srv.stats, msg);
        fail_counted(msg)
    };
    let n = argv.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return reject(
            srv,
            "ERR Wrong number of args calling Redis command from script",
        );
    }
    // BLPOP & co. are NOSCRIPT; BLMPOP, BZMPOP and XREAD run without blocking (they are
    // called as EXEC calls them), except that XREAD's BLOCK option is refused (below).
    // DEBUG SET-DISABLE-DENY-SCRIPTS 1 lifts NOSCRIPT (Redis's script_disable_deny_script).
    // A container's or its subcommand's (CLUSTER RESET is NOSCRIPT, CLUSTER INFO is not).
    let noscript = (spec.flags | crate::exec::effective_flags(spec, &argv)) & NOSCRIPT != 0;
    if noscript && !srv.script_disable_deny {
        return reject(srv, "ERR This Redis command is not allowed from script");
    }
    // Scripts run as the calling user (Redis's scriptVerifyACL).
    if !client.user.superuser {
        if let Err(d) = client.user.check(spec, &argv) {
            crate::cmd::acl::log_denied(srv, client, spec, &argv, d, crate::acl::CTX_LUA);
            return reject(srv, crate::cmd::acl::script_denied_error(d));
        }
    }
    if read_only && (spec.is_write() || spec.has(MAY_REPLICATE)) {
        return reject(
            srv,
            "ERR Write commands are not allowed from read-only scripts.",
        );
    }
    if spec.is_write() && crate::replica::refuse_write(srv, client) {
        return reject(srv, crate::replica::READONLY_ERR);
    }
    // A stale replica (`replica-serve-stale-data no`) runs an `allow-stale` script, but only
    // the `stale` commands inside it (Redis's scriptVerifyAllowStale).
    if !spec.has(crate::cmd::flags::STALE) && crate::replica::stale_only(srv, client) {
        return reject(srv, "ERR Can not execute the command on a stale replica");
    }
    // As Redis's scriptVerifyWriteCommandAllow: only until the script's first write (it is not
    // stopped half-way through its writes when replicas drop meanwhile).
    let wrote = srv.script_run.as_ref().is_some_and(|r| r.dirty);
    if spec.is_write() && !wrote && crate::master::refuse_write(srv, client) {
        return reject(srv, crate::master::NOREPLICAS_ERR);
    }
    if spec.is_write() {
        if let Some(e) = crate::persist::disk_error(srv) {
            return reject(srv, &e.command_error());
        }
    }
    // Over `maxmemory` when the script started: no command that may grow the dataset, until
    // the script has written (Redis does not stop a script half-way through its writes).
    if srv.hot.maxmemory != 0 && srv.pre_command_oom && spec.has(DENYOOM) && !client.is_master {
        return reject(srv, crate::evict::OOM_ERR);
    }
    if spec.is_write() {
        srv.pre_command_oom = false;
        // From now on SCRIPT KILL cannot stop it (Redis's SCRIPT_WRITE_DIRTY).
        if let Some(r) = srv.script_run.as_mut() {
            r.dirty = true;
        }
    }
    if matches!(spec.name, "xread" | "xreadgroup") && xread_blocks(&argv) {
        return fail(&format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            String::from_utf8_lossy(&argv[0])
        ));
    }
    srv.monitor_in_script = true;
    let r = crate::exec::call(srv, client, spec, &argv, true);
    srv.monitor_in_script = false;
    if let Some(s) = srv.ldb.as_mut().filter(|s| s.step) {
        // The debugger logs the replies of a line it steps over (`call_logged` the rest).
        if !matches!(r, Reply::Error(_)) {
            s.log(format!("<reply> {}", ldb::reply_human(&r, client.proto)));
        }
    }
    if let Reply::Error(msg) = &r {
        // Counted by `call`, as the command's error reply.
        return fail_counted(msg);
    }
    reply_to_lua(lua, &r, client.proto >= 3)
}

/// A Lua number as a command argument, as Redis 7.0 writes it (`%.17g`; whole numbers within
/// 2^53 as integers).
fn number_arg(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        (n as i64).to_string()
    } else {
        crate::resp::fmt_g(n, 17)
    }
}

/// A command's reply as the script sees it: Redis 7's RESP2 conversions by default, its RESP3
/// ones after `redis.setresp(3)` (`resp3`): maps as `{map={k=v}}`, sets as `{set={e=true}}`,
/// doubles as `{double=n}`, big numbers as `{big_number=s}`, verbatim strings as
/// `{verbatim_string={format=f, string=s}}`, booleans as booleans, nulls as nil.
fn reply_to_lua(lua: &Lua, r: &Reply, resp3: bool) -> mlua::Result<Value> {
    Ok(match r {
        Reply::Int(i) => Value::Number(*i as f64),
        Reply::Bool(b) if resp3 => Value::Boolean(*b),
        Reply::Bool(b) => Value::Number(if *b { 1.0 } else { 0.0 }),
        Reply::Verbatim(b) if resp3 => verbatim_table(lua, b"txt", b)?,
        Reply::Bulk(b) | Reply::Verbatim(b) => Value::String(lua.create_string(&b[..])?),
        // Pre-encoded replies (LRANGE's arrays of bulks, doubles): as the RESP they are.
        Reply::Raw(b) => {
            let mut pos = 0;
            match raw_to_lua(lua, b, &mut pos, 0, resp3)? {
                Some(v) => v,
                None => Value::Boolean(false),
            }
        }
        Reply::SmallBulk(b) => Value::String(lua.create_string(b.as_ref())?),
        Reply::Double(d) if resp3 => single_field(lua, "double", Value::Number(*d))?,
        Reply::Double(d) => {
            Value::String(lua.create_string(crate::resp::fmt_double(*d).as_bytes())?)
        }
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Status(s) => status_table(lua, s)?,
        Reply::StatusOwned(s) => status_table(lua, s)?,
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", e.as_str())?;
            Value::Table(t)
        }
        Reply::Set(v) if resp3 => {
            let t = lua.create_table_with_capacity(0, v.len())?;
            for x in v {
                t.raw_set(reply_to_lua(lua, x, resp3)?, true)?;
            }
            single_field(lua, "set", Value::Table(t))?
        }
        Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => {
            let t = lua.create_table_with_capacity(v.len(), 0)?;
            for (i, x) in v.iter().enumerate() {
                t.raw_set(i + 1, reply_to_lua(lua, x, resp3)?)?;
            }
            Value::Table(t)
        }
        Reply::Map(m) if resp3 => {
            let t = lua.create_table_with_capacity(0, m.len())?;
            for (k, v) in m {
                let k = reply_to_lua(lua, k, resp3)?;
                if !k.is_nil() {
                    t.raw_set(k, reply_to_lua(lua, v, resp3)?)?;
                }
            }
            single_field(lua, "map", Value::Table(t))?
        }
        Reply::Map(m) => {
            let t = lua.create_table_with_capacity(m.len() * 2, 0)?;
            for (i, (k, v)) in m.iter().enumerate() {
                t.raw_set(2 * i + 1, reply_to_lua(lua, k, resp3)?)?;
                t.raw_set(2 * i + 2, reply_to_lua(lua, v, resp3)?)?;
            }
            Value::Table(t)
        }
    })
}

/// `{name = v}`.
fn single_field(lua: &Lua, name: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(name, v)?;
    Ok(Value::Table(t))
}

/// `{verbatim_string = {format = f, string = s}}`.
fn verbatim_table(lua: &Lua, format: &[u8], s: &[u8]) -> mlua::Result<Value> {
    let inner = lua.create_table()?;
    inner.raw_set("format", lua.create_string(format)?)?;
    inner.raw_set("string", lua.create_string(s)?)?;
    single_field(lua, "verbatim_string", Value::Table(inner))
}

/// One RESP value of a pre-encoded reply, converted as `reply_to_lua` converts the same
/// reply; None when the bytes end or are not RESP (never for the server's own encodings).
fn raw_to_lua(
    lua: &Lua,
    b: &[u8],
    pos: &mut usize,
    depth: usize,
    resp3: bool,
) -> mlua::Result<Option<Value>> {
    let Some(&tag) = b.get(*pos) else {
        return Ok(None);
    };
    let Some(len) = b[*pos..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &b[*pos + 1..*pos + len];
    *pos += len + 2;
    let text = String::from_utf8_lossy(line);
    let int = || text.parse::<i64>().ok();
    Ok(Some(match tag {
        b'+' => status_table(lua, &text)?,
        b'-' => {
            let t = lua.create_table()?;
            t.raw_set("err", &*text)?;
            Value::Table(t)
        }
        b':' => Value::Number(int().unwrap_or(0) as f64),
        b'#' if resp3 => Value::Boolean(line == b"t"),
        b'#' => Value::Number(if line == b"t" { 1.0 } else { 0.0 }),
        b'_' if resp3 => Value::Nil,
        b'_' => Value::Boolean(false),
        b',' if resp3 => single_field(
            lua,
            "double",
            Value::Number(text.parse::<f64>().unwrap_or(0.0)),
        )?,
        b',' => Value::String(lua.create_string(line)?),
        b'(' if resp3 => single_field(lua, "big_number", Value::String(lua.create_string(line)?))?,
        b'(' => Value::String(lua.create_string(line)?),
        b'$' | b'=' => {
            let Some(n) = int() else { return Ok(None) };
            if n < 0 {
                return Ok(Some(if resp3 {
                    Value::Nil
                } else {
                    Value::Boolean(false)
                }));
            }
            let n = n as usize;
            let Some(body) = b.get(*pos..*pos + n) else {
                return Ok(None);
            };
            *pos += n + 2;
            match (tag, resp3) {
                (b'=', true) if n >= 4 => verbatim_table(lua, &body[..3], &body[4..])?,
                (b'=', false) if n >= 4 => Value::String(lua.create_string(&body[4..])?),
                _ => Value::String(lua.create_string(body)?),
            }
        }
        // An attribute is not shown to scripts: the reply after it is.
        b'|' => {
            let Some(n) = int() else { return Ok(None) };
            for _ in 0..n.max(0) * 2 {
                if raw_to_lua(lua, b, pos, depth + 1, resp3)?.is_none() {
                    return Ok(None);
                }
            }
            return raw_to_lua(lua, b, pos, depth, resp3);
        }
        b'*' | b'~' | b'>' | b'%' => {
            let Some(n) = int() else { return Ok(None) };
            if n < 0 {
                return Ok(Some(if resp3 {
                    Value::Nil
                } else {
                    Value::Boolean(false)
                }));
            }
            if depth > REPLY_DEPTH_MAX {
                return Ok(None);
            }
            let keyed = resp3 && matches!(tag, b'~' | b'%');
            let n = if tag == b'%' {
                n as usize * 2
            } else {
                n as usize
            };
            let t = lua.create_table_with_capacity(n.min(1 << 16), 0)?;
            let mut i = 0;
            while i < n {
                let Some(v) = raw_to_lua(lua, b, pos, depth + 1, resp3)? else {
                    return Ok(None);
                };
                if keyed && tag == b'%' {
                    let Some(val) = raw_to_lua(lua, b, pos, depth + 1, resp3)? else {
                        return Ok(None);
                    };
                    if !v.is_nil() {
                        t.raw_set(v, val)?;
                    }
                    i += 2;
                    continue;
                }
                if keyed {
                    if !v.is_nil() {
                        t.raw_set(v, true)?;
                    }
                } else {
                    t.raw_set(i + 1, v)?;
                }
                i += 1;
            }
            match (keyed, tag) {
                (true, b'%') => single_field(lua, "map", Value::Table(t))?,
                (true, _) => single_field(lua, "set", Value::Table(t))?,
                _ => Value::Table(t),
            }
        }
        _ => return Ok(None),
    }))
}

fn status_table(lua: &Lua, s: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("ok", s)?;
    Ok(Value::Table(t))
}

/// Nesting depth of a script's reply past which the rest is replaced by an error (a table
/// that contains itself would otherwise recurse forever; Redis stops at its Lua stack limit).
const REPLY_DEPTH_MAX: usize = 1000;

/// A script's Lua state may hold at most this much memory (Redis sets no limit; a script
/// building an endless table must not take the server down).
pub(crate) const LUA_MEMORY_MAX: usize = 1 << 30;

/// The Lua collector's pause (see `Engine::new`).
const GC_PAUSE_PERCENT: i32 = 100;

/// The largest script body `Engine::load` remembers as the last one.
const LAST_BODY_BYTES_MAX: usize = 4096;

/// How often (in VM instructions) a running script checks its time.
const HOOK_INSTRUCTIONS: u32 = 100_000;

/// What a script returned, as the reply (Redis 7's `luaReplyToRedisReply`): `resp3` is the
/// script's protocol (`redis.setresp`), `caller_proto` the caller's (for the forms the reply
/// enum has no variant for: big numbers, verbatim strings of any format).
fn lua_to_reply(v: &Value, resp3: bool, caller_proto: u8) -> mlua::Result<Reply> {
    lua_to_reply_at(v, 0, resp3, caller_proto)
}

fn lua_to_reply_at(v: &Value, depth: usize, resp3: bool, proto: u8) -> mlua::Result<Reply> {
    if depth > REPLY_DEPTH_MAX {
        return Ok(Reply::err("ERR reached lua stack limit"));
    }
    Ok(match v {
        Value::Nil => Reply::Nil,
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(i) => Reply::Int(*i),
        // Truncated toward zero, as C's (long long) cast on x86: out of range and NaN give
        // INT64_MIN, as Redis answers.
        Value::Number(n) => Reply::Int(if *n >= i64::MIN as f64 && *n < -(i64::MIN as f64) {
            *n as i64
        } else {
            i64::MIN
        }),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                let b = e.as_bytes();
                let b = b.strip_prefix(b"-").unwrap_or(&b);
                return Ok(Reply::Error(one_line(&String::from_utf8_lossy(b))));
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                // A status is one line (as Redis: CR and LF become spaces).
                return Ok(Reply::StatusOwned(one_line(&String::from_utf8_lossy(
                    &s.as_bytes(),
                ))));
            }
            match t.raw_get::<Value>("double") {
                Ok(Value::Number(n)) => return Ok(Reply::Double(n)),
                Ok(Value::Integer(i)) => return Ok(Reply::Double(i as f64)),
                _ => {}
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
                let digits = one_line(&String::from_utf8_lossy(&s.as_bytes()));
                return Ok(if proto >= 3 {
                    Reply::Raw(Bytes::from(format!("({digits}\r\n")))
                } else {
                    Reply::Bulk(Bytes::from(digits))
                });
            }
            if let Ok(Value::Table(vt)) = t.raw_get::<Value>("verbatim_string") {
                if let (Ok(Value::String(f)), Ok(Value::String(s))) =
                    (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
                {
                    let (f, s) = (f.as_bytes(), s.as_bytes());
                    return Ok(if proto >= 3 {
                        // Redis's addReplyVerbatim: a 3-byte format, then ':'.
                        let mut fmt = [b' '; 3];
                        for (d, c) in fmt.iter_mut().zip(f.iter()) {
                            *d = *c;
                        }
                        let mut out = format!("={}\r\n", s.len() + 4).into_bytes();
                        out.extend_from_slice(&fmt);
                        out.push(b':');
                        out.extend_from_slice(&s);
                        out.extend_from_slice(b"\r\n");
                        Reply::Raw(Bytes::from(out))
                    } else {
                        Reply::Bulk(Bytes::copy_from_slice(&s))
                    });
                }
            }
            if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
                let mut out = Vec::new();
                for pair in m.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    out.push((
                        lua_to_reply_at(&k, depth + 1, resp3, proto)?,
                        lua_to_reply_at(&v, depth + 1, resp3, proto)?,
                    ));
                }
                return Ok(Reply::Map(out));
            }
            if let Ok(Value::Table(m)) = t.raw_get::<Value>("set") {
                let mut out = Vec::new();
                for pair in m.pairs::<Value, Value>() {
                    let (k, _) = pair?;
                    out.push(lua_to_reply_at(&k, depth + 1, resp3, proto)?);
                }
                return Ok(Reply::Set(out));
            }
            let mut out = Vec::new();
            let mut i = 1;
            loop {
                let x: Value = t.raw_get(i)?;
                if x.is_nil() {
                    break;
                }
                out.push(lua_to_reply_at(&x, depth + 1, resp3, proto)?);
                i += 1;
            }
            Reply::Array(out)
        }
        _ => Reply::Nil,
    })
}

pub(crate) fn innermost_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => innermost_message(cause),
        mlua::Error::WithContext { cause, .. } => innermost_message(cause),
        mlua::Error::RuntimeError(s) => s.clone(),
        // The only scoped callback a script can still hold after its scope is the library
        // loader's `redis.register_function` (kept by a function that captured its table).
        mlua::Error::CallbackDestructed => {
            "redis.register_function can only be called on FUNCTION LOAD command".into()
        }
        other => other.to_string(),
    }
}

fn script(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    match (&sub[..], args.len()) {
        (b"load", 3) => {
            let mut eng = match engine(ctx) {
                Ok(e) => e,
                Err(r) => return r,
            };
            let r = eng.load(&args[2]);
            ctx.srv.scripting = Some(eng);
            match r {
                Ok(sha) => Reply::Bulk(Bytes::from(sha)),
                Err(e) => Reply::Error(e),
            }
        }
        (b"exists", n) if n >= 3 => {
            let eng = ctx.srv.scripting.as_deref();
            Reply::Array(
                args[2..]
                    .iter()
                    .map(|s| {
                        let sha = String::from_utf8_lossy(s).to_ascii_lowercase();
                        Reply::Int(eng.is_some_and(|e| e.scripts.contains_key(&sha)) as i64)
                    })
                    .collect(),
            )
        }
        (b"flush", 2) => flush(ctx),
        (b"flush", 3) => {
            let mode = args[2].to_ascii_lowercase();
            if mode != b"async" && mode != b"sync" {
                return Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
            flush(ctx)
        }
        (b"kill", 2) => kill_running(ctx.srv, true),
        (b"debug", 3) => match &args[2].to_ascii_lowercase()[..] {
            b"no" => {
                ctx.srv.ldb_sync.remove(&ctx.client.id);
                OK
            }
            b"sync" => {
                ctx.srv.ldb_sync.insert(ctx.client.id);
                OK
            }
            // Redis forks a child for this form; here only the synchronous debugger exists.
            b"yes" => Reply::err(
                "ERR SCRIPT DEBUG YES (a forked debugging session) is not supported: use SCRIPT DEBUG SYNC",
            ),
            _ => Reply::err("ERR Use SCRIPT DEBUG YES/SYNC/NO"),
        },
        (b"help", 2) => Reply::Array(
            [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|l| Reply::StatusOwned((*l).to_string()))
            .collect(),
        ),
        (b"flush", _) => Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
        (b"load" | b"exists" | b"kill" | b"help" | b"debug", _) => Reply::Error(format!(
            "ERR wrong number of arguments for 'script|{}' command",
            String::from_utf8_lossy(&sub)
        )),
        _ => Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(&args[1])
        )),
    }
}

fn flush(ctx: &mut Ctx) -> Reply {
    // A new Lua state: nothing of the old one (globals, garbage) survives a flush.
    ctx.srv.scripting = None;
    OK
}

/// Bytes held by cached script bodies (INFO memory `used_memory_scripts_eval`).
pub fn cached_bytes(srv: &crate::exec::Server) -> usize {
    srv.scripting.as_ref().map_or(0, |e| e.body_bytes)
}

/// Cached scripts (INFO memory `number_of_cached_scripts`).
pub fn cached_scripts(srv: &crate::exec::Server) -> usize {
    srv.scripting.as_ref().map_or(0, |e| e.scripts.len())
}

/// Bytes the Lua state uses (INFO memory `used_memory_lua`).
pub fn lua_memory(srv: &crate::exec::Server) -> usize {
    srv.scripting.as_ref().map_or(0, |e| e.lua.used_memory())
}

/// XREAD/XREADGROUP argv with a BLOCK option (among the options before STREAMS).
fn xread_blocks(argv: &[Bytes]) -> bool {
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if a.eq_ignore_ascii_case(b"streams") {
            return false;
        } else if a.eq_ignore_ascii_case(b"block") {
            return true;
        } else if a.eq_ignore_ascii_case(b"group") {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"count") {
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::exec::Server;
    use crate::testutil::server_and_client;
    use quickcheck::{QuickCheck, TestResult};

    fn eval_in(srv: &mut Server, c: &mut Client, script: &[u8], args: &[&[u8]]) -> Reply {
        let mut argv = vec![Bytes::from_static(b"EVAL"), Bytes::copy_from_slice(script)];
        argv.extend(args.iter().map(|a| Bytes::copy_from_slice(a)));
        let mut ctx = Ctx::new(srv, c, 0);
        eval(&mut ctx, &argv)
    }

    /// Pieces of Lua that scripts are made of, so that generated scripts get past the parser
    /// and reach redis.call, conversions, errors and the sandbox.
    const PIECES: &[&str] = &[
        "return ",
        "redis.call(",
        "redis.pcall(",
        "'SET'",
        "'INCR'",
        "'GET'",
        "'LPUSH'",
        "'HGETALL'",
        "KEYS[1]",
        "ARGV[1]",
        "'k'",
        ", ",
        ")",
        "{",
        "}",
        "1e309",
        "-0",
        "0.1",
        "nil",
        "true",
        "false",
        "error(",
        "pcall(",
        "function() ",
        " end",
        "local x = ",
        "x",
        " .. ",
        "#",
        "string.rep('x', 3)",
        "redis.error_reply('E')",
        "redis.status_reply('S')",
        "{err='e'}",
        "{ok='o'}",
        "\n",
        "; ",
        " ",
        "tostring(",
        "tonumber(",
        "rawset(_G, 'a', 1)",
        "setmetatable({}, {__index = function() error('m') end}).z",
        "loadstring('return 1')",
        "redis.sha1hex(",
        "cjson.encode(",
        "cjson.decode(",
        "cmsgpack.pack(",
        "cmsgpack.unpack(",
        "'[1,{\"a\":'",
        "'\\147\\1\\2'",
        "'\\219\\255\\255\\255\\255'",
        "cjson.null",
        "'\\0'",
        "math.huge",
        "-math.huge",
        "0/0",
        "{1, {2, {3}}}",
    ];

    /// Arbitrary scripts, and arbitrary arrangements of script pieces, never panic the server:
    /// every EVAL answers a reply (an error for most), and the engine keeps working.
    #[test]
    fn arbitrary_scripts_never_panic_and_always_answer() {
        fn prop(bytes: Vec<u8>, picks: Vec<u8>) -> TestResult {
            let (mut srv, mut c) = server_and_client();
            let _ = eval_in(&mut srv, &mut c, &bytes, &[b"0"]);
            let script: String = picks
                .iter()
                .map(|&p| PIECES[p as usize % PIECES.len()])
                .collect();
            let _ = eval_in(&mut srv, &mut c, script.as_bytes(), &[b"1", b"k", b"v"]);
            let after = eval_in(&mut srv, &mut c, b"return 1 + 1", &[b"0"]);
            TestResult::from_bool(matches!(after, Reply::Int(2)))
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(Vec<u8>, Vec<u8>) -> TestResult);
    }

    /// cjson.decode and cmsgpack.unpack of arbitrary bytes answer (a value or an error) and
    /// never panic; what cmsgpack packs, it unpacks to the same reply.
    #[test]
    fn arbitrary_bytes_to_cjson_and_cmsgpack_never_panic() {
        fn prop(bytes: Vec<u8>, n: i64, s: String) -> TestResult {
            let (mut srv, mut c) = server_and_client();
            for script in [
                &b"return cjson.decode(ARGV[1])"[..],
                b"return {cmsgpack.unpack(ARGV[1])}",
                b"return cjson.encode({ARGV[1], {k = ARGV[1]}})",
            ] {
                let _ = eval_in(&mut srv, &mut c, script, &[b"0", &bytes]);
            }
            // Numbers, text and arbitrary bytes survive pack then unpack.
            let script = b"local v = {tonumber(ARGV[1]), ARGV[2], {ARGV[3]}};
                           local u = cmsgpack.unpack(cmsgpack.pack(v));
                           return {u[1] == v[1] and 1 or 0, u[2] == v[2] and 1 or 0,
                                   u[3][1] == v[3][1] and 1 or 0}";
            let r = eval_in(
                &mut srv,
                &mut c,
                script,
                &[b"0", n.to_string().as_bytes(), s.as_bytes(), &bytes],
            );
            TestResult::from_bool(matches!(
                r,
                Reply::Array(ref items) if items.iter().all(|i| matches!(i, Reply::Int(1)))
            ))
        }
        QuickCheck::new()
            .tests(200)
            .quickcheck(prop as fn(Vec<u8>, i64, String) -> TestResult);
    }

    /// struct.pack / unpack / size answer (never panic) on any format, data and offset, and
    /// what pack packs from integers in range, unpack reads back, in any byte order and
    /// alignment.
    #[test]
    fn arbitrary_struct_formats_never_panic_and_round_trip() {
        const LETTERS: &[u8] = b"<>!x bBhHlLTiIcsfd0123456789 z\0";
        const SIGNED: &[&str] = &["h", "i", "l", "i2", "i3", "i8", "i16", "b"];
        fn prop(picks: Vec<u8>, data: Vec<u8>, nums: Vec<i16>, pos: i8) -> TestResult {
            let (mut srv, mut c) = server_and_client();
            let fmt: Vec<u8> = picks
                .iter()
                .take(40)
                .map(|&p| LETTERS[usize::from(p) % LETTERS.len()])
                .collect();
            let pos = pos.to_string();
            for (script, args) in [
                (
                    &b"return struct.pack(ARGV[1], ARGV[2], ARGV[3], ARGV[2], ARGV[3])"[..],
                    [&fmt[..], &data[..], b"-7"],
                ),
                (
                    b"return {struct.unpack(ARGV[1], ARGV[2], tonumber(ARGV[3]))}",
                    [&fmt[..], &data[..], pos.as_bytes()],
                ),
                (b"return struct.size(ARGV[1])", [&fmt[..], b"", b""]),
            ] {
                let mut argv: Vec<&[u8]> = vec![b"0"];
                argv.extend(args);
                let _ = eval_in(&mut srv, &mut c, script, &argv);
            }
            // Round trip: a signed item per number (`b` only for the numbers a byte holds).
            let mut fmt = String::from(match picks.first().map_or(0, |p| p % 3) {
                0 => "<",
                1 => ">!4",
                _ => "!8",
            });
            let mut args = vec![b"0".to_vec(), Vec::new()];
            for (i, n) in nums.iter().take(20).enumerate() {
                let letter = match SIGNED[i % SIGNED.len()] {
                    "b" if i8::try_from(*n).is_err() => "h",
                    l => l,
                };
                fmt.push_str(letter);
                args.push(n.to_string().into_bytes());
            }
            args[1] = fmt.into_bytes();
            let script = b"local v = {} for i = 2, #ARGV do v[#v + 1] = tonumber(ARGV[i]) end
                           local u = {struct.unpack(ARGV[1], struct.pack(ARGV[1], unpack(v)))}
                           if #u ~= #v + 1 then return -1 end
                           for i = 1, #v do if u[i] ~= v[i] then return -2 - i end end
                           return 1";
            let argv: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let r = eval_in(&mut srv, &mut c, script, &argv);
            TestResult::from_bool(matches!(r, Reply::Int(1)))
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(Vec<u8>, Vec<u8>, Vec<i16>, i8) -> TestResult);
    }

    /// A script's writes reach the log as the commands they were, in one MULTI/EXEC, and the
    /// EVAL not at all; a read-only script logs nothing.
    #[test]
    fn script_writes_are_logged_in_one_unit() {
        let (mut srv, mut c) = server_and_client();
        let (sink, log) = crate::durability::RecordingSink::new();
        srv.log.set_sink(Some(sink), 0);
        let r = eval_in(
            &mut srv,
            &mut c,
            b"redis.call('SET', KEYS[1], 'a'); redis.call('SET', KEYS[2], 'b'); return 1",
            &[b"2", b"x", b"y"],
        );
        assert!(matches!(r, Reply::Int(1)), "{r:?}");
        let r = eval_in(&mut srv, &mut c, b"return redis.call('GET', 'x')", &[b"0"]);
        assert!(matches!(r, Reply::Bulk(_) | Reply::SmallBulk(_)), "{r:?}");
        srv.log.submit();
        let text = String::from_utf8(log.lock().expect("log").clone()).expect("utf8");
        let expected = "*1\r\n$5\r\nMULTI\r\n\
                        *3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\na\r\n\
                        *3\r\n$3\r\nSET\r\n$1\r\ny\r\n$1\r\nb\r\n\
                        *1\r\n$4\r\nEXEC\r\n";
        assert!(text.ends_with(expected), "{text:?}");
        assert!(
            !text.contains("EVAL") && text.matches("MULTI").count() == 1,
            "{text:?}"
        );
    }

    /// `redis.set_repl(redis.REPL_NONE)` keeps the commands after it out of the log until the
    /// script sets REPL_ALL again; the next script logs as usual; invalid flags are refused.
    #[test]
    fn set_repl_none_keeps_commands_out_of_the_log() {
        let (mut srv, mut c) = server_and_client();
        let (sink, log) = crate::durability::RecordingSink::new();
        srv.log.set_sink(Some(sink), 0);
        let r = eval_in(
            &mut srv,
            &mut c,
            b"redis.call('SET', 'a', '1'); redis.set_repl(redis.REPL_NONE); redis.call('SET', 'b', '2'); redis.set_repl(redis.REPL_ALL); redis.call('SET', 'c', '3'); redis.set_repl(redis.REPL_NONE); return 1",
            &[b"0"],
        );
        assert!(matches!(r, Reply::Int(1)), "{r:?}");
        let r = eval_in(&mut srv, &mut c, b"redis.call('SET', 'd', '4')", &[b"0"]);
        assert!(matches!(r, Reply::Nil), "{r:?}");
        let r = eval_in(&mut srv, &mut c, b"redis.set_repl(12345)", &[b"0"]);
        assert!(
            matches!(&r, Reply::Error(e) if e.starts_with("ERR Invalid replication flags")),
            "{r:?}"
        );
        srv.log.submit();
        let text = String::from_utf8(log.lock().expect("log").clone()).expect("utf8");
        for (key, logged) in [("a", true), ("b", false), ("c", true), ("d", true)] {
            let cmd = format!("$1\r\n{key}\r\n");
            assert_eq!(text.contains(&cmd), logged, "{key}: {text:?}");
        }
        // Every key was written all the same.
        for key in ["a", "b", "c", "d"] {
            let r = eval_in(
                &mut srv,
                &mut c,
                format!("return redis.call('EXISTS', '{key}')").as_bytes(),
                &[b"0"],
            );
            assert!(matches!(r, Reply::Int(1)), "{key}: {r:?}");
        }
    }
}
