//! Redis 7.0 Functions: FUNCTION LOAD / DELETE / FLUSH / LIST / DUMP / RESTORE / STATS / KILL /
//! HELP, FCALL and FCALL_RO.
//!
//! Libraries live in [`Functions`] (`Server::functions`): name → code and registered functions,
//! with a Lua state of their own (another [`Engine`] than EVAL's, as in Redis, so SCRIPT FLUSH
//! leaves them alone). The sandbox, `redis.*` API, reply conversions, time limit and effects
//! logging are EVAL's (`scripting.rs`): a library's code runs once at load in an environment
//! holding only the load API (`redis.register_function`, `redis.log`, the constants), then its
//! functions run as `callback(keys, args)` under EVAL's rules, reported as `@user_function`.
//!
//! Libraries are part of the dataset: RDB images (dump.rdb, RDB AOF bases) hold one FUNCTION2
//! record per library before the first database (`library_codes`, `load_from_rdb`), a RESP AOF
//! base starts with one `FUNCTION LOAD` per library, and FUNCTION LOAD / DELETE / FLUSH /
//! RESTORE are logged as the commands they are. FLUSHALL keeps them (as Redis).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use mlua::{MultiValue, Value};

use crate::cmd::scripting::{self, Engine, Running};
use crate::cmd::{cmd, flags::*, CommandSpec, KeySpec};
use crate::ctx::Ctx;
use crate::exec::Server;
use crate::resp::{Reply, OK};

use crate::cmd::scripting::KEYS_AFTER_NUMKEYS;

pub static COMMANDS: &[CommandSpec] = &[
    cmd(
        "fcall",
        -3,
        NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | STALE,
        KEYS_AFTER_NUMKEYS,
        "scripting",
        fcall,
    ),
    cmd(
        "fcall_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE,
        KEYS_AFTER_NUMKEYS,
        "scripting",
        fcall_ro,
    ),
    CommandSpec {
        // Redis 7.0's names, arities and flags, in the order its COMMAND shows them. The
        // container keeps NOSCRIPT: dispatch checks the container's flags.
        subcommands: &[
            ("stats", 2, NOSCRIPT | ALLOW_BUSY),
            ("kill", 2, NOSCRIPT | ALLOW_BUSY),
            ("delete", 3, WRITE | NOSCRIPT),
            ("restore", -3, WRITE | DENYOOM | NOSCRIPT),
            ("load", -3, WRITE | DENYOOM | NOSCRIPT),
            ("dump", 2, NOSCRIPT),
            ("list", -2, NOSCRIPT),
            ("help", 2, LOADING | STALE),
            ("flush", -2, WRITE | NOSCRIPT),
        ],
        ..cmd(
            "function",
            -2,
            NOSCRIPT,
            KeySpec::None,
            "scripting",
            function,
        )
    },
];

/// Script flags (Redis's `scripts_flags_def`, in its order: FUNCTION LIST shows them so).
pub const NO_WRITES: u32 = 1 << 0;
pub const ALLOW_OOM: u32 = 1 << 1;
pub const ALLOW_STALE: u32 = 1 << 2;
pub const NO_CLUSTER: u32 = 1 << 3;
pub const ALLOW_CROSS_SLOT_KEYS: u32 = 1 << 4;
const SCRIPT_FLAGS: &[(u32, &str)] = &[
    (NO_WRITES, "no-writes"),
    (ALLOW_OOM, "allow-oom"),
    (ALLOW_STALE, "allow-stale"),
    (NO_CLUSTER, "no-cluster"),
    (ALLOW_CROSS_SLOT_KEYS, "allow-cross-slot-keys"),
];

/// The flags of the function `name` (FCALL's argument), if it exists.
pub(crate) fn function_flags(srv: &crate::exec::Server, name: &[u8]) -> Option<u32> {
    srv.functions.set.find(name).map(|(_, f)| f.flags)
}

/// A script flag by its name (`#!lua flags=...` of EVAL scripts).
pub(crate) fn script_flag(name: &str) -> Option<u32> {
    SCRIPT_FLAGS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(f, _)| *f)
}

/// FUNCTION LOAD gives a library's code this long to register its functions (Redis's
/// `LOAD_TIMEOUT_MS`); loads from files and RESTORE have no limit.
const LOAD_TIMEOUT_MS: u128 = 500;

const NAME_ERR: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// The libraries and their Lua state.
#[derive(Default)]
pub struct Functions {
    eng: Option<Box<Engine>>,
    set: Libs,
}

/// Libraries by name (case-sensitive, as Redis), and every function by lower-case name (FCALL
/// finds functions whatever the case, as Redis's dictionary does) → its library.
#[derive(Default)]
struct Libs {
    libs: BTreeMap<String, Library>,
    index: HashMap<String, String>,
}

struct Library {
    code: Bytes,
    funcs: BTreeMap<String, Func>,
}

struct Func {
    callback: mlua::RegistryKey,
    flags: u32,
    desc: Option<Bytes>,
}

impl Libs {
    fn functions(&self) -> usize {
        self.libs.values().map(|l| l.funcs.len()).sum()
    }

    fn unlink(&mut self, name: &str) -> Option<Library> {
        let lib = self.libs.remove(name)?;
        for f in lib.funcs.keys() {
            self.index.remove(&f.to_ascii_lowercase());
        }
        Some(lib)
    }

    fn link(&mut self, name: String, lib: Library) {
        for f in lib.funcs.keys() {
            self.index.insert(f.to_ascii_lowercase(), name.clone());
        }
        self.libs.insert(name, lib);
    }

    /// The library and function FCALL names (any case).
    fn find(&self, name: &[u8]) -> Option<(&str, &Func)> {
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        let lib = self.libs.get(self.index.get(&name)?)?;
        lib.funcs
            .iter()
            .find(|(n, _)| n.to_ascii_lowercase() == name)
            .map(|(n, f)| (n.as_str(), f))
    }
}

impl Functions {
    fn engine(&mut self) -> Result<&Engine, String> {
        if self.eng.is_none() {
            self.eng = Some(Box::new(
                Engine::new().map_err(|e| format!("cannot start the Lua engine: {e}"))?,
            ));
        }
        Ok(self.eng.as_deref().expect("engine just created"))
    }

    /// Compile `code` and add (or with `replace`, replace) its library; returns its name.
    fn create(&mut self, code: &Bytes, replace: bool, timeout: bool) -> Result<String, String> {
        let Functions { eng, set } = self;
        if eng.is_none() {
            *eng = Some(Box::new(
                Engine::new().map_err(|e| format!("cannot start the Lua engine: {e}"))?,
            ));
        }
        create_in(eng.as_deref().expect("engine"), set, code, replace, timeout)
    }
}

/// Redis's `functionsVerifyName`.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The `#!<engine> name=<lib>` line (Redis's `functionExtractLibMetaData`): (engine, library
/// name, where the code after the line starts, at its newline so line numbers stay right).
fn parse_meta(code: &[u8]) -> Result<(Vec<u8>, Vec<u8>, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    // As strchr on the C string: a NUL ends it.
    let text_end = code.iter().position(|&c| c == 0).unwrap_or(code.len());
    let Some(nl) = code[..text_end].iter().position(|&c| c == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = match crate::resp::split_args(&code[..nl]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = parts[0].get(2..).unwrap_or_default().to_vec();
    let mut name: Option<Vec<u8>> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_vec());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        ));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    Ok((engine, name, nl))
}

/// One function as `redis.register_function` received it.
struct Registered {
    name: String,
    callback: mlua::RegistryKey,
    flags: u32,
    desc: Option<Bytes>,
}

fn reg_err(msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("ERR {msg}"))
}

/// A string argument as Lua's C API takes one (`lua_isstring`: numbers too, as text).
fn lua_string(lua: &mlua::Lua, v: Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(v)
            .ok()
            .flatten()
            .map(|s| s.as_bytes().to_vec()),
        _ => None,
    }
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name=...,
/// callback=..., flags={...}, description=...}` (Redis's `luaRegisterFunction`).
fn register(lua: &mlua::Lua, args: MultiValue, out: &RefCell<Vec<Registered>>) -> mlua::Result<()> {
    let args: Vec<Value> = args.into_iter().collect();
    let (name, callback, flags, desc) = match args.as_slice() {
        [Value::Table(t)] => {
            let (mut name, mut callback, mut flags, mut desc) = (None, None, 0u32, None);
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Value::String(k) = k else {
                    return Err(reg_err("unknown argument given to redis.register_function"));
                };
                match &k.as_bytes()[..] {
                    b"function_name" => match lua_string(lua, v) {
                        Some(s) => name = Some(s),
                        _ => return Err(reg_err("function_name argument given to redis.register_function must be a string")),
                    },
                    b"description" => match lua_string(lua, v) {
                        Some(s) => desc = Some(Bytes::from(s)),
                        _ => return Err(reg_err("description argument given to redis.register_function must be a string")),
                    },
                    b"callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => return Err(reg_err("callback argument given to redis.register_function must be a function")),
                    },
                    b"flags" => {
                        let Value::Table(ft) = v else {
                            return Err(reg_err("flags argument to redis.register_function must be a table representing function flags"));
                        };
                        for f in ft.sequence_values::<Value>() {
                            let Value::String(f) = f? else {
                                return Err(reg_err("unknown flag given"));
                            };
                            let fb = f.as_bytes();
                            let Some((bit, _)) = SCRIPT_FLAGS.iter().find(|(_, n)| n.as_bytes() == &fb[..]) else {
                                return Err(reg_err("unknown flag given"));
                            };
                            flags |= bit;
                        }
                    }
                    _ => return Err(reg_err("unknown argument given to redis.register_function")),
                }
            }
            let Some(name) = name else {
                return Err(reg_err("redis.register_function must get a function name argument"));
            };
            let Some(callback) = callback else {
                return Err(reg_err("redis.register_function must get a callback argument"));
            };
            (name, callback, flags, desc)
        }
        [_] => return Err(reg_err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")),
        [name, callback] => {
            let Some(name) = lua_string(lua, name.clone()) else {
                return Err(reg_err("first argument to redis.register_function must be a string"));
            };
            let Value::Function(callback) = callback else {
                return Err(reg_err("second argument to redis.register_function must be a function"));
            };
            (name, callback.clone(), 0, None)
        }
        _ => return Err(reg_err("wrong number of arguments to redis.register_function")),
    };
    if !valid_name(&name) {
        return Err(reg_err(NAME_ERR));
    }
    let name = String::from_utf8(name).map_err(|_| reg_err(NAME_ERR))?;
    let mut out = out.borrow_mut();
    if out.iter().any(|r| r.name == name) {
        return Err(reg_err("Function already exists in the library"));
    }
    out.push(Registered {
        name,
        callback: lua.create_registry_value(callback)?,
        flags,
        desc,
    });
    Ok(())
}

/// Redis's `functionsCreateWithLibraryCtx`, into `set`.
fn create_in(
    eng: &Engine,
    set: &mut Libs,
    code: &Bytes,
    replace: bool,
    timeout: bool,
) -> Result<String, String> {
    let (engine, name, body_at) = parse_meta(code)?;
    if !valid_name(&name) {
        return Err(NAME_ERR.into());
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!(
            "Engine '{}' not found",
            String::from_utf8_lossy(&engine)
        ));
    }
    let name = String::from_utf8(name).map_err(|_| NAME_ERR.to_string())?;
    if set.libs.contains_key(&name) && !replace {
        return Err(format!("Library '{name}' already exists"));
    }
    let lua = &eng.lua;
    let chunk = lua
        .load(&code[body_at..])
        .set_name("@user_function")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .map_err(|e| {
            let msg = match &e {
                mlua::Error::SyntaxError { message, .. } => message.clone(),
                other => other.to_string(),
            };
            format!("Error compiling function: {}", scripting::first_line(&msg))
        })?;
    let registered = RefCell::new(Vec::new());
    let loader: mlua::Function = lua
        .registry_value(&eng.load_lib)
        .map_err(|e| e.to_string())?;
    let redis: mlua::Table = lua.registry_value(&eng.redis).map_err(|e| e.to_string())?;
    if timeout {
        let started = std::time::Instant::now();
        let _ = lua.set_hook(
            mlua::HookTriggers::new().every_nth_instruction(100_000),
            move |_, _| {
                if started.elapsed().as_millis() > LOAD_TIMEOUT_MS {
                    return Err(mlua::Error::RuntimeError(
                        "ERR FUNCTION LOAD timeout".into(),
                    ));
                }
                Ok(mlua::VmState::Continue)
            },
        );
    }
    let ran = lua.scope(|scope| {
        let api = lua.create_table()?;
        let reg = &registered;
        api.raw_set(
            "register_function",
            scope.create_function(move |lua, a: MultiValue| register(lua, a, reg))?,
        )?;
        for pair in redis.clone().pairs::<Value, Value>() {
            let (k, v) = pair?;
            if let Value::String(s) = &k {
                let s = s.as_bytes();
                if &s[..] == b"log" || s.starts_with(b"LOG_") || s.starts_with(b"REDIS_VERSION") {
                    api.raw_set(k.clone(), v)?;
                }
            }
        }
        let (ok, err): (bool, Value) = loader.call((chunk, api))?;
        Ok((
            ok,
            if ok {
                None
            } else {
                Some(error_text(lua, &err))
            },
        ))
    });
    if timeout {
        lua.remove_hook();
        // (it replaced the scripts' time limit hook: the next FCALL sets that again)
        eng.time_limit_hook_replaced();
    }
    match ran {
        Ok((true, _)) => {}
        Ok((false, e)) => {
            return Err(format!(
                "Error registering functions: {}",
                e.unwrap_or_default()
            ))
        }
        Err(e) => {
            return Err(format!(
                "Error registering functions: {}",
                scripting::one_line(&scripting::innermost_message(&e))
            ))
        }
    }
    let registered = registered.into_inner();
    if registered.is_empty() {
        return Err("No functions registered".into());
    }
    for r in &registered {
        if let Some(owner) = set.index.get(&r.name.to_ascii_lowercase()) {
            if *owner != name {
                return Err(format!("Function {} already exists", r.name));
            }
        }
    }
    set.unlink(&name);
    let lib = Library {
        code: code.clone(),
        funcs: registered
            .into_iter()
            .map(|r| {
                (
                    r.name,
                    Func {
                        callback: r.callback,
                        flags: r.flags,
                        desc: r.desc,
                    },
                )
            })
            .collect(),
    };
    set.link(name.clone(), lib);
    lua.expire_registry_values();
    Ok(name)
}

/// What a library's code raised while loading, as Redis reports it.
fn error_text(lua: &mlua::Lua, v: &Value) -> String {
    let text = match v {
        Value::Table(t) => match (t.raw_get::<Value>("err"), t.raw_get::<Value>("sb_error")) {
            (Ok(Value::String(s)), _) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            // An error of the server's own, with where it was raised (the prelude's handler).
            (_, Ok(Value::Error(e))) => scripting::innermost_message(&e),
            _ => "ERR unknown error".to_string(),
        },
        Value::Error(e) => scripting::innermost_message(e),
        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        other => lua
            .coerce_string(other.clone())
            .ok()
            .flatten()
            .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
            .unwrap_or_else(|| other.type_name().to_string()),
    };
    scripting::one_line(&text)
}

// ---------------------------------------------------------------------------------------------
// Persistence

/// Every library's code, in name order: written as FUNCTION2 records before the first
/// database of an RDB image, or as FUNCTION LOAD commands at the start of a RESP AOF base.
pub fn library_codes(srv: &Server) -> Vec<Bytes> {
    srv.functions
        .set
        .libs
        .values()
        .map(|l| l.code.clone())
        .collect()
}

/// A FUNCTION2 record of an RDB image being loaded. A library that does not compile (or
/// registers nothing) fails the load, as in Redis; one that exists already is replaced if
/// `replace`, else fails it.
pub fn load_from_rdb(srv: &mut Server, code: &Bytes, replace: bool) -> Result<(), String> {
    srv.functions
        .create(code, replace, false)
        .map(|_| ())
        .map_err(|e| format!("Failed loading library, {e}"))
}

/// Drop every library (FUNCTION FLUSH; DEBUG RELOAD and a replica's full sync before they
/// load a file, as Redis's `emptyData`).
pub fn clear(srv: &mut Server) {
    srv.fast_scripts.clear();
    srv.functions = Functions::default();
}

/// Libraries and functions (INFO memory `number_of_libraries` / `number_of_functions`).
pub fn counts(srv: &Server) -> (usize, usize) {
    (srv.functions.set.libs.len(), srv.functions.set.functions())
}

/// (bytes of the functions' Lua state, bytes of the libraries' code): INFO memory
/// `used_memory_vm_functions` and `used_memory_functions`.
pub fn memory(srv: &Server) -> (usize, usize) {
    let f = &srv.functions;
    (
        f.eng.as_ref().map_or(0, |e| e.lua.used_memory()),
        f.set.libs.values().map(|l| l.code.len()).sum(),
    )
}

// ---------------------------------------------------------------------------------------------
// FCALL

fn fcall(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    call(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    call(ctx, args, true)
}

fn call(ctx: &mut Ctx, args: &[Bytes], ro: bool) -> Reply {
    let Some((fname, f)) = ctx.srv.functions.set.find(&args[1]) else {
        return Reply::err("ERR Function not found");
    };
    let fname = fname.to_string();
    let fflags = f.flags;
    let numkeys = match crate::util::parse_i64(&args[2]) {
        Some(n) => n,
        None => return Reply::err("ERR Bad number of keys provided"),
    };
    if numkeys > args.len() as i64 - 3 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return Reply::err("ERR Number of keys can't be negative");
    }
    let no_writes = fflags & NO_WRITES != 0;
    if ro && !no_writes {
        return Reply::err("ERR Can not execute a script with write flag using *_ro command.");
    }
    if ctx.srv.hot.maxmemory != 0 {
        // Redis derives FCALL's flags from the function's: without `allow-oom` or `no-writes`
        // it is a `denyoom` command, refused while memory is over `maxmemory`; with
        // `allow-oom` its commands may grow the dataset anyway.
        if fflags & (ALLOW_OOM | NO_WRITES) == 0 && ctx.srv.pre_command_oom {
            return Reply::err(crate::evict::OOM_ERR);
        }
        if fflags & ALLOW_OOM != 0 {
            ctx.srv.pre_command_oom = false;
        }
    }
    if !no_writes {
        if crate::replica::refuse_write(ctx.srv, ctx.client) {
            return Reply::err(crate::replica::READONLY_ERR);
        }
        // FCALL goes through Redis's scriptPrepareForRun, as EVAL with flags does.
        if let Some(e) = crate::persist::disk_error(ctx.srv) {
            return Reply::Error(e.script_error());
        }
    }
    let Some(eng) = ctx.srv.functions.eng.take() else {
        return Reply::err("ERR Function not found");
    };
    let (f, runner) = {
        let lua = &eng.lua;
        let Some((_, func)) = ctx.srv.functions.set.find(&args[1]) else {
            ctx.srv.functions.eng = Some(eng);
            return Reply::err("ERR Function not found");
        };
        match (
            lua.registry_value::<mlua::Function>(&func.callback),
            lua.registry_value::<mlua::Function>(&eng.run_fn),
        ) {
            (Ok(f), Ok(r)) => (f, r),
            _ => {
                ctx.srv.functions.eng = Some(eng);
                return Reply::err("ERR Function not found");
            }
        }
    };
    let (keys, argv) = args[3..].split_at(numkeys as usize);
    let what = Running {
        name: &fname,
        source: "@user_function",
        read_only: ro || no_writes,
        command: args,
    };
    let reply = scripting::execute(ctx, &eng, runner, f, keys, argv, &what);
    ctx.srv.functions.eng = Some(eng);
    reply
}

// ---------------------------------------------------------------------------------------------
// FUNCTION

fn function(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_lowercase();
    let n = args.len();
    let arity_ok = match &sub[..] {
        b"delete" => n == 3,
        b"dump" | b"help" | b"kill" | b"stats" => n == 2,
        b"flush" | b"list" => n >= 2,
        b"load" | b"restore" => n >= 3,
        _ => {
            return Reply::Error(format!(
                "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
                String::from_utf8_lossy(&args[1])
            ))
        }
    };
    if !arity_ok {
        return Reply::Error(format!(
            "ERR wrong number of arguments for 'function|{}' command",
            String::from_utf8_lossy(&sub)
        ));
    }
    let writes = matches!(&sub[..], b"delete" | b"flush" | b"load" | b"restore");
    if writes {
        // FCALL names may now run other code: none counts as fast any more (`exec.rs`).
        ctx.srv.fast_scripts.clear();
        if crate::replica::refuse_write(ctx.srv, ctx.client) {
            return Reply::err(crate::replica::READONLY_ERR);
        }
        if let Some(e) = crate::persist::disk_error(ctx.srv) {
            return Reply::Error(e.command_error());
        }
    }
    let reply = match &sub[..] {
        b"load" => load(ctx, args),
        b"delete" => {
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            match ctx.srv.functions.set.unlink(&name) {
                Some(_) => OK,
                None => Reply::err("ERR Library not found"),
            }
        }
        b"flush" => {
            if n > 3 {
                return syntax_error(&args[1]);
            }
            if n == 3 {
                let mode = args[2].to_ascii_lowercase();
                if mode != b"sync" && mode != b"async" {
                    return Reply::err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
                }
            }
            clear(ctx.srv);
            OK
        }
        b"list" => return list(ctx, args),
        b"dump" => {
            let codes = library_codes(ctx.srv);
            return Reply::Bulk(Bytes::from(strongbox_storage::rdb::encode_function_dump(
                codes.iter().map(|c| &c[..]),
            )));
        }
        b"restore" => restore(ctx, args),
        b"stats" => {
            let (libs, funcs) = counts(ctx.srv);
            return Reply::Map(vec![
                (
                    Reply::Bulk(Bytes::from_static(b"running_script")),
                    // (answered only while a script is busy: its hook serves this)
                    match &ctx.srv.script_run {
                        None => Reply::Nil,
                        Some(r) => Reply::Map(vec![
                            (
                                Reply::Bulk(Bytes::from_static(b"name")),
                                Reply::Bulk(Bytes::from(r.name.clone())),
                            ),
                            (
                                Reply::Bulk(Bytes::from_static(b"command")),
                                Reply::Array(r.command.iter().cloned().map(Reply::Bulk).collect()),
                            ),
                            (
                                Reply::Bulk(Bytes::from_static(b"duration_ms")),
                                Reply::Int(r.started.elapsed().as_millis() as i64),
                            ),
                        ]),
                    },
                ),
                (
                    Reply::Bulk(Bytes::from_static(b"engines")),
                    Reply::Map(vec![(
                        Reply::Bulk(Bytes::from_static(b"LUA")),
                        Reply::Map(vec![
                            (
                                Reply::Bulk(Bytes::from_static(b"libraries_count")),
                                Reply::Int(libs as i64),
                            ),
                            (
                                Reply::Bulk(Bytes::from_static(b"functions_count")),
                                Reply::Int(funcs as i64),
                            ),
                        ]),
                    )]),
                ),
            ]);
        }
        b"kill" => return crate::cmd::scripting::kill_running(ctx.srv, false),
        _ => return help(),
    };
    if writes && !matches!(reply, Reply::Error(_)) {
        // Logged as the command it is (Redis propagates FUNCTION's writes so).
        ctx.dirty(1);
        ctx.propagate(args.to_vec());
    }
    reply
}

fn syntax_error(sub: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn load(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut replace = false;
    let mut pos = 2;
    while pos < args.len() - 1 {
        let a = &args[pos];
        pos += 1;
        if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
            continue;
        }
        return Reply::Error(format!(
            "ERR Unknown option given: {}",
            String::from_utf8_lossy(a)
        ));
    }
    if pos >= args.len() {
        return Reply::err("ERR Function code is missing");
    }
    // The master's stream and the log's replay are obeyed whatever the time (as Redis).
    // (The log's replay runs as client 0.)
    let timeout = !ctx.client.must_obey();
    match ctx.srv.functions.create(&args[pos], replace, timeout) {
        Ok(name) => Reply::Bulk(Bytes::from(name)),
        Err(e) => Reply::Error(format!("ERR {e}")),
    }
}

fn restore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 4 {
        return syntax_error(&args[1]);
    }
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    let policy =
        match args.get(3).map(|a| a.to_ascii_lowercase()) {
            None => Policy::Append,
            Some(p) if p == b"append" => Policy::Append,
            Some(p) if p == b"replace" => Policy::Replace,
            Some(p) if p == b"flush" => Policy::Flush,
            Some(_) => return Reply::err(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ),
        };
    let codes = match strongbox_storage::rdb::decode_function_dump(&args[2]) {
        Ok(c) => c,
        Err(e) => return Reply::err(e.reply()),
    };
    let fns = &mut ctx.srv.functions;
    let eng = match fns.engine() {
        Ok(_) => fns.eng.as_deref().expect("engine"),
        Err(e) => return Reply::Error(format!("ERR {e}")),
    };
    let mut new = Libs::default();
    for code in &codes {
        if let Err(e) = create_in(eng, &mut new, code, false, false) {
            return Reply::Error(format!("ERR {e}"));
        }
    }
    if policy == Policy::Flush {
        fns.set = new;
        return OK;
    }
    // Redis's `libraryJoin`: nothing changes unless every library can go in.
    let dst = &mut fns.set;
    for name in new.libs.keys() {
        if dst.libs.contains_key(name) && policy != Policy::Replace {
            return Reply::Error(format!("ERR Library {name} already exists"));
        }
    }
    for (f, lib) in &new.index {
        if let Some(owner) = dst.index.get(f) {
            if !new.libs.contains_key(owner) {
                let shown = new.libs[lib]
                    .funcs
                    .keys()
                    .find(|n| n.to_ascii_lowercase() == *f)
                    .cloned()
                    .unwrap_or_else(|| f.clone());
                return Reply::Error(format!("ERR Function {shown} already exists"));
            }
        }
    }
    let Libs { libs, .. } = new;
    for (name, lib) in libs {
        dst.unlink(&name);
        dst.link(name, lib);
    }
    OK
}

fn list(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut with_code = false;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if !with_code && a.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
            i += 1;
            continue;
        }
        if pattern.is_none() && a.eq_ignore_ascii_case(b"libraryname") {
            if i >= args.len() - 1 {
                return Reply::err("ERR library name argument was not given");
            }
            pattern = Some(&args[i + 1]);
            i += 2;
            continue;
        }
        return Reply::Error(format!(
            "ERR Unknown argument {}",
            String::from_utf8_lossy(a)
        ));
    }
    let bulk = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    let mut out = Vec::new();
    for (name, lib) in &ctx.srv.functions.set.libs {
        if let Some(p) = pattern {
            if !crate::util::glob_match(p, name.as_bytes(), false) {
                continue;
            }
        }
        let funcs = lib
            .funcs
            .iter()
            .map(|(fname, f)| {
                Reply::Map(vec![
                    (bulk("name"), Reply::Bulk(Bytes::from(fname.clone()))),
                    (
                        bulk("description"),
                        f.desc.clone().map_or(Reply::Nil, Reply::Bulk),
                    ),
                    (
                        bulk("flags"),
                        Reply::Set(
                            SCRIPT_FLAGS
                                .iter()
                                .filter(|(b, _)| f.flags & b != 0)
                                .map(|(_, n)| Reply::Status(n))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let mut m = vec![
            (bulk("library_name"), Reply::Bulk(Bytes::from(name.clone()))),
            (bulk("engine"), bulk("LUA")),
            (bulk("functions"), Reply::Array(funcs)),
        ];
        if with_code {
            m.push((bulk("library_code"), Reply::Bulk(lib.code.clone())));
        }
        out.push(Reply::Map(m));
    }
    Reply::Array(out)
}

fn help() -> Reply {
    Reply::Array(
        [
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
            "HELP",
            "    Prints this help.",
        ]
        .iter()
        .map(|l| Reply::StatusOwned((*l).to_string()))
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::testutil::server_and_client;
    use quickcheck::{QuickCheck, TestResult};

    fn run(srv: &mut Server, c: &mut Client, args: &[&[u8]]) -> Reply {
        crate::testutil::call(srv, c, args, false)
    }

    const LIB: &[u8] = b"#!lua name=t\nredis.register_function('w', function(keys, args) redis.call('SET', keys[1], args[1]); return redis.call('INCR', keys[2]) end)\nredis.register_function{function_name='r', flags={'no-writes'}, callback=function(keys) return redis.call('GET', keys[1]) end}";

    /// FUNCTION LOAD is logged as itself; an FCALL's writes as one MULTI/EXEC and FCALL not
    /// at all; a read-only FCALL logs nothing.
    #[test]
    fn function_writes_are_logged_as_commands_and_effects() {
        let (mut srv, mut c) = server_and_client();
        let (sink, log) = crate::durability::RecordingSink::new();
        srv.log.set_sink(Some(sink), 0);
        let r = run(&mut srv, &mut c, &[b"FUNCTION", b"LOAD", LIB]);
        assert!(matches!(&r, Reply::Bulk(b) if &b[..] == b"t"), "{r:?}");
        let r = run(&mut srv, &mut c, &[b"FCALL", b"w", b"2", b"x", b"n", b"v"]);
        assert!(matches!(r, Reply::Int(1)), "{r:?}");
        let r = run(&mut srv, &mut c, &[b"FCALL_RO", b"r", b"1", b"x"]);
        assert!(matches!(&r, Reply::Bulk(b) if &b[..] == b"v"), "{r:?}");
        srv.log.submit();
        let text = String::from_utf8(log.lock().expect("log").clone()).expect("utf8");
        assert!(
            text.contains("$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"),
            "{text:?}"
        );
        let expected = "*1\r\n$5\r\nMULTI\r\n\
                        *3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\nv\r\n\
                        *2\r\n$4\r\nINCR\r\n$1\r\nn\r\n\
                        *1\r\n$4\r\nEXEC\r\n";
        assert!(text.ends_with(expected), "{text:?}");
        assert!(!text.contains("FCALL"), "{text:?}");
    }

    /// Arbitrary library code and arbitrary RESTORE payloads (random, or a real payload with
    /// bytes changed) never panic: each answers, and the loaded library keeps working.
    #[test]
    fn arbitrary_code_and_payloads_never_panic() {
        fn prop(code: Vec<u8>, payload: Vec<u8>, flips: Vec<(u16, u8)>) -> TestResult {
            let (mut srv, mut c) = server_and_client();
            run(&mut srv, &mut c, &[b"FUNCTION", b"LOAD", LIB]);
            let mut with_meta = b"#!lua name=q\n".to_vec();
            with_meta.extend_from_slice(&code);
            let _ = run(&mut srv, &mut c, &[b"FUNCTION", b"LOAD", &code]);
            let _ = run(
                &mut srv,
                &mut c,
                &[b"FUNCTION", b"LOAD", b"REPLACE", &with_meta],
            );
            let _ = run(&mut srv, &mut c, &[b"FUNCTION", b"RESTORE", &payload]);
            let Reply::Bulk(dump) = run(&mut srv, &mut c, &[b"FUNCTION", b"DUMP"]) else {
                return TestResult::failed();
            };
            let mut damaged = dump.to_vec();
            for (at, x) in flips {
                let n = damaged.len();
                damaged[at as usize % n] ^= x;
            }
            let _ = run(
                &mut srv,
                &mut c,
                &[b"FUNCTION", b"RESTORE", &damaged, b"REPLACE"],
            );
            let r = run(&mut srv, &mut c, &[b"FCALL_RO", b"r", b"1", b"nokey"]);
            TestResult::from_bool(matches!(r, Reply::Nil))
        }
        QuickCheck::new()
            .tests(200)
            .quickcheck(prop as fn(Vec<u8>, Vec<u8>, Vec<(u16, u8)>) -> TestResult);
    }
}
