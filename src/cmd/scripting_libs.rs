//! The cjson, cmsgpack and bit libraries of Redis's Lua environment: `cjson.encode` /
//! `decode` / `null` and its configuration functions (`encode_max_depth`,
//! `encode_invalid_numbers`, `encode_sparse_array`, …) with lua-cjson 2.1's rules;
//! `cmsgpack.pack` / `unpack` / `unpack_one` / `unpack_limit` with lua-cmsgpack's encoding
//! (its 16 levels of nesting, floats as float32 when exact); and LuaBitOp's `bit` (32-bit
//! operations on Lua numbers). JSON parsing is serde_json's and msgpack decoding rmpv's; the
//! mapping to and from Lua values, and msgpack encoding, are here. The `struct` library is in
//! `scripting_struct.rs`.

use mlua::{Lua, MultiValue, Table, Value};

#[path = "scripting_struct.rs"]
mod structlib;

/// Nesting limit for decoding msgpack (a self-referencing or hostile input must not recurse
/// forever).
const DEPTH_MAX: usize = 1000;

/// lua-cmsgpack's LUACMSGPACK_MAX_NESTING: a table nested deeper is packed as nil (so a table
/// that contains itself packs to a bounded copy).
const MSGPACK_NESTING_MAX: usize = 16;

/// lua-cjson's configuration (`json_config_t`), kept in the Lua state's app data.
#[derive(Clone, Copy)]
struct CjsonCfg {
    sparse_convert: bool,
    sparse_ratio: i64,
    sparse_safe: i64,
    encode_max_depth: i64,
    decode_max_depth: i64,
    /// 0 off, 1 on, 2 "null".
    encode_invalid_numbers: u8,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: i64,
}

impl Default for CjsonCfg {
    fn default() -> Self {
        CjsonCfg {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            keep_buffer: true,
            precision: 14,
        }
    }
}

fn cfg(lua: &Lua) -> CjsonCfg {
    lua.app_data_ref::<CjsonCfg>()
        .map(|c| *c)
        .unwrap_or_default()
}

fn set_cfg(lua: &Lua, f: impl FnOnce(&mut CjsonCfg)) {
    let mut c = cfg(lua);
    f(&mut c);
    lua.set_app_data(c);
}

/// lua-cjson's `json_integer_option`: nil leaves the setting, else an integer in range.
fn int_option(v: &Value, fname: &str, arg: usize, min: i64, max: i64) -> mlua::Result<Option<i64>> {
    let n = match v {
        Value::Nil => return Ok(None),
        Value::Integer(i) => *i,
        Value::Number(n) => *n as i64,
        Value::String(s) => match s.to_str().ok().and_then(|t| t.trim().parse::<f64>().ok()) {
            Some(n) => n as i64,
            None => {
                return Err(bad_arg(
                    arg,
                    fname,
                    &format!("number expected, got {}", v.type_name()),
                ))
            }
        },
        other => {
            return Err(bad_arg(
                arg,
                fname,
                &format!("number expected, got {}", other.type_name()),
            ))
        }
    };
    if n < min || n > max {
        return Err(bad_arg(
            1,
            fname,
            &format!("expected integer between {min} and {max}"),
        ));
    }
    Ok(Some(n))
}

/// lua-cjson's `json_enum_option`: nil leaves it, a boolean, or one of `options` by name.
fn enum_option(v: &Value, fname: &str, options: &[&str]) -> mlua::Result<Option<u8>> {
    match v {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(*b as u8)),
        Value::String(s) => {
            let t = s.to_string_lossy();
            match options.iter().position(|o| *o == t) {
                Some(i) => Ok(Some(i as u8)),
                None => Err(bad_arg(1, fname, &format!("invalid option '{t}'"))),
            }
        }
        other => Err(bad_arg(
            1,
            fname,
            &format!("string expected, got {}", other.type_name()),
        )),
    }
}

fn bad_arg(n: usize, fname: &str, msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("bad argument #{n} to '{fname}' ({msg})"))
}

fn enum_value(lua: &Lua, v: u8, options: &[&str]) -> mlua::Result<Value> {
    Ok(if v <= 1 {
        Value::Boolean(v == 1)
    } else {
        Value::String(lua.create_string(options[v as usize])?)
    })
}

const ON_OFF: &[&str] = &["off", "on"];
const INVALID_NUMBERS: &[&str] = &["off", "on", "null"];

fn install_cjson_config(lua: &Lua, cjson: &Table) -> mlua::Result<()> {
    cjson.raw_set(
        "encode_max_depth",
        lua.create_function(|lua, v: Value| {
            if let Some(n) = int_option(&v, "encode_max_depth", 1, 1, i32::MAX as i64)? {
                set_cfg(lua, |c| c.encode_max_depth = n);
            }
            Ok(cfg(lua).encode_max_depth)
        })?,
    )?;
    cjson.raw_set(
        "decode_max_depth",
        lua.create_function(|lua, v: Value| {
            if let Some(n) = int_option(&v, "decode_max_depth", 1, 1, i32::MAX as i64)? {
                set_cfg(lua, |c| c.decode_max_depth = n);
            }
            Ok(cfg(lua).decode_max_depth)
        })?,
    )?;
    cjson.raw_set(
        "encode_number_precision",
        lua.create_function(|lua, v: Value| {
            if let Some(n) = int_option(&v, "encode_number_precision", 1, 1, 14)? {
                set_cfg(lua, |c| c.precision = n);
            }
            Ok(cfg(lua).precision)
        })?,
    )?;
    cjson.raw_set(
        "encode_keep_buffer",
        lua.create_function(|lua, v: Value| {
            if let Some(b) = enum_option(&v, "encode_keep_buffer", ON_OFF)? {
                set_cfg(lua, |c| c.keep_buffer = b == 1);
            }
            Ok(cfg(lua).keep_buffer)
        })?,
    )?;
    cjson.raw_set(
        "encode_invalid_numbers",
        lua.create_function(|lua, v: Value| {
            if let Some(b) = enum_option(&v, "encode_invalid_numbers", INVALID_NUMBERS)? {
                set_cfg(lua, |c| c.encode_invalid_numbers = b);
            }
            enum_value(lua, cfg(lua).encode_invalid_numbers, INVALID_NUMBERS)
        })?,
    )?;
    cjson.raw_set(
        "decode_invalid_numbers",
        lua.create_function(|lua, v: Value| {
            if let Some(b) = enum_option(&v, "decode_invalid_numbers", ON_OFF)? {
                set_cfg(lua, |c| c.decode_invalid_numbers = b == 1);
            }
            Ok(cfg(lua).decode_invalid_numbers)
        })?,
    )?;
    cjson.raw_set(
        "encode_sparse_array",
        lua.create_function(|lua, (convert, ratio, safe): (Value, Value, Value)| {
            let convert = enum_option(&convert, "encode_sparse_array", ON_OFF)?;
            let ratio = int_option(&ratio, "encode_sparse_array", 2, 0, i32::MAX as i64)?;
            let safe = int_option(&safe, "encode_sparse_array", 3, 0, i32::MAX as i64)?;
            set_cfg(lua, |c| {
                if let Some(b) = convert {
                    c.sparse_convert = b == 1;
                }
                if let Some(r) = ratio {
                    c.sparse_ratio = r;
                }
                if let Some(s) = safe {
                    c.sparse_safe = s;
                }
            });
            let c = cfg(lua);
            Ok((c.sparse_convert, c.sparse_ratio, c.sparse_safe))
        })?,
    )?;
    Ok(())
}

pub fn install(lua: &Lua) -> mlua::Result<()> {
    let cjson = lua.create_table()?;
    cjson.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let mut out = Vec::new();
            json_encode(&v, &mut out, 0, &cfg(lua))?;
            lua.create_string(&out)
        })?,
    )?;
    cjson.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let v: serde_json::Value = serde_json::from_slice(&s.as_bytes()).map_err(|e| {
                mlua::Error::RuntimeError(format!("Expected value but found invalid token: {e}"))
            })?;
            json_to_lua(lua, &v, 0, cfg(lua).decode_max_depth)
        })?,
    )?;
    cjson.raw_set("null", Value::NULL)?;
    install_cjson_config(lua, &cjson)?;
    lua.globals().raw_set("cjson", cjson)?;

    let cmsgpack = lua.create_table()?;
    cmsgpack.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return Err(mlua::Error::RuntimeError(
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)".into(),
                ));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                msgpack_encode(v, &mut out, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    cmsgpack.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| unpack_full(lua, &s.as_bytes(), 0, 0))?,
    )?;
    cmsgpack.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            unpack_full(lua, &s.as_bytes(), 1, offset.unwrap_or(0))
        })?,
    )?;
    cmsgpack.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (mlua::LuaString, i64, Option<i64>)| {
                unpack_full(lua, &s.as_bytes(), limit, offset.unwrap_or(0))
            },
        )?,
    )?;
    lua.globals().raw_set("cmsgpack", cmsgpack)?;
    lua.globals().raw_set("bit", bit_library(lua)?)?;
    lua.globals().raw_set("struct", structlib::library(lua)?)?;
    Ok(())
}

/// lua-cmsgpack's `mp_unpack_full`: with limit and offset 0, every value in `bytes`; else at
/// most `limit` values from `offset`, preceded by the offset of the next one (-1 at the end).
fn unpack_full(lua: &Lua, bytes: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(mlua::Error::RuntimeError(format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            bytes.len()
        )));
    }
    if offset as u64 > bytes.len() as u64 {
        return Err(mlua::Error::RuntimeError(format!(
            "Start offset {offset} greater than input length {}.",
            bytes.len()
        )));
    }
    let limit = if decode_all { i64::MAX } else { limit };
    let mut rd: &[u8] = &bytes[offset as usize..];
    let mut out = Vec::new();
    let mut count = 0;
    while !rd.is_empty() && count < limit {
        let v = rmpv::decode::read_value_with_max_depth(&mut rd, DEPTH_MAX).map_err(|e| {
            mlua::Error::RuntimeError(match e {
                rmpv::decode::Error::InvalidMarkerRead(_)
                | rmpv::decode::Error::InvalidDataRead(_) => "Missing bytes in input.".into(),
                _ => "Bad data format in input.".into(),
            })
        })?;
        out.push(msgpack_to_lua(lua, &v)?);
        count += 1;
    }
    if !decode_all {
        let next = if rd.is_empty() {
            -1
        } else {
            (bytes.len() - rd.len()) as i64
        };
        out.insert(0, Value::Integer(next));
    }
    Ok(MultiValue::from_vec(out))
}

/// LuaBitOp (`bit.*`), which Redis's Lua has: 32-bit operations whose results are signed
/// 32-bit Lua numbers.
fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    let bit = lua.create_table()?;
    let unary =
        |f: fn(i32) -> i32| lua.create_function(move |_, x: f64| Ok(f64::from(f(tobit(x)))));
    bit.raw_set("tobit", unary(|x| x)?)?;
    bit.raw_set("bnot", unary(|x| !x)?)?;
    bit.raw_set("bswap", unary(|x| x.swap_bytes())?)?;
    let fold = |name: &'static str, f: fn(i32, i32) -> i32| {
        lua.create_function(move |_, args: MultiValue| {
            let mut acc: Option<i32> = None;
            for (i, v) in args.iter().enumerate() {
                let x = bit_arg(v, i + 1, name)?;
                acc = Some(acc.map_or(x, |a| f(a, x)));
            }
            match acc {
                Some(a) => Ok(f64::from(a)),
                None => Err(bad_arg(1, name, "number expected, got no value")),
            }
        })
    };
    bit.raw_set("band", fold("band", |a, b| a & b)?)?;
    bit.raw_set("bor", fold("bor", |a, b| a | b)?)?;
    bit.raw_set("bxor", fold("bxor", |a, b| a ^ b)?)?;
    let shift = |name: &'static str, f: fn(i32, u32) -> i32| {
        lua.create_function(move |_, (x, n): (Value, Value)| {
            let x = bit_arg(&x, 1, name)?;
            let n = bit_arg(&n, 2, name)? as u32 & 31;
            Ok(f64::from(f(x, n)))
        })
    };
    bit.raw_set("lshift", shift("lshift", |x, n| ((x as u32) << n) as i32)?)?;
    bit.raw_set("rshift", shift("rshift", |x, n| ((x as u32) >> n) as i32)?)?;
    bit.raw_set("arshift", shift("arshift", |x, n| x >> n)?)?;
    bit.raw_set(
        "rol",
        shift("rol", |x, n| (x as u32).rotate_left(n) as i32)?,
    )?;
    bit.raw_set(
        "ror",
        shift("ror", |x, n| (x as u32).rotate_right(n) as i32)?,
    )?;
    bit.raw_set(
        "tohex",
        lua.create_function(|_, (x, n): (Value, Value)| {
            let mut b = bit_arg(&x, 1, "tohex")? as u32;
            let mut n = if n.is_nil() {
                8
            } else {
                bit_arg(&n, 2, "tohex")?
            };
            let digits: &[u8; 16] = if n < 0 {
                n = n.saturating_neg();
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let n = n.min(8) as usize;
            let mut buf = [b'0'; 8];
            for i in (0..n).rev() {
                buf[i] = digits[(b & 15) as usize];
                b >>= 4;
            }
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        })?,
    )?;
    Ok(bit)
}

/// LuaBitOp's argument conversion: a number (or numeric string) rounded to an integer and
/// taken modulo 2^32, as a signed 32-bit value.
fn bit_arg(v: &Value, n: usize, fname: &str) -> mlua::Result<i32> {
    let x = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(x) => *x,
        Value::String(s) => match s.to_str().ok().and_then(|t| t.trim().parse::<f64>().ok()) {
            Some(x) => x,
            None => return Err(bad_arg(n, fname, "number expected, got string")),
        },
        Value::Nil => return Err(bad_arg(n, fname, "number expected, got no value")),
        other => {
            return Err(bad_arg(
                n,
                fname,
                &format!("number expected, got {}", other.type_name()),
            ))
        }
    };
    Ok(tobit(x))
}

fn tobit(x: f64) -> i32 {
    if !x.is_finite() {
        return 0;
    }
    x.round_ties_even().rem_euclid(4_294_967_296.0) as u64 as u32 as i32
}

fn too_deep(depth: i64) -> mlua::Error {
    mlua::Error::RuntimeError(format!("Cannot serialise, excessive nesting ({depth})"))
}

fn json_number(n: f64, out: &mut Vec<u8>, cfg: &CjsonCfg) -> mlua::Result<()> {
    if !n.is_finite() {
        match cfg.encode_invalid_numbers {
            0 => {
                return Err(mlua::Error::RuntimeError(
                    "Cannot serialise number: must not be NaN or Inf".to_string(),
                ))
            }
            1 if n.is_nan() => {
                out.extend_from_slice(b"nan");
                return Ok(());
            }
            1 => {
                out.extend_from_slice(if n > 0.0 { b"inf" } else { b"-inf" });
                return Ok(());
            }
            _ => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    out.extend_from_slice(crate::resp::fmt_g(n, cfg.precision as usize).as_bytes());
    Ok(())
}

/// lua-cjson's `lua_array_length`: Some(max index) when every key is an integer ≥ 1 (holes
/// are encoded as null), None for an object (or an excessively sparse array when
/// `encode_sparse_array` converts those), an error for an excessively sparse one otherwise.
fn json_array_len(t: &Table, cfg: &CjsonCfg) -> mlua::Result<Option<usize>> {
    let mut max = 0usize;
    let mut items = 0usize;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let k = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if k.floor() != k || k < 1.0 || k > i32::MAX as f64 {
            return Ok(None);
        }
        max = max.max(k as usize);
        items += 1;
    }
    if cfg.sparse_ratio > 0
        && max as u64 > items as u64 * cfg.sparse_ratio as u64
        && max as u64 > cfg.sparse_safe as u64
    {
        if !cfg.sparse_convert {
            return Err(mlua::Error::RuntimeError(
                "Cannot serialise table: excessively sparse array".into(),
            ));
        }
        return Ok(None);
    }
    Ok((max > 0).then_some(max))
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => {
                out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
            }
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn json_encode(v: &Value, out: &mut Vec<u8>, depth: i64, cfg: &CjsonCfg) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Number(n) => json_number(*n, out, cfg)?,
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth {
                return Err(too_deep(depth));
            }
            if let Some(n) = json_array_len(t, cfg)? {
                out.push(b'[');
                for i in 1..=n {
                    if i > 1 {
                        out.push(b',');
                    }
                    json_encode(&t.raw_get::<Value>(i)?, out, depth, cfg)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, val) = pair?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => json_string(&s.as_bytes(), out),
                        Value::Integer(i) => json_string(i.to_string().as_bytes(), out),
                        Value::Number(n) => {
                            let mut num = Vec::new();
                            json_number(*n, &mut num, cfg)?;
                            json_string(&num, out);
                        }
                        other => {
                            return Err(mlua::Error::RuntimeError(format!(
                                "Cannot serialise {}: table key must be a number or string",
                                other.type_name()
                            )))
                        }
                    }
                    out.push(b':');
                    json_encode(&val, out, depth, cfg)?;
                }
                out.push(b'}');
            }
        }
        other => {
            return Err(mlua::Error::RuntimeError(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )))
        }
    }
    Ok(())
}

fn json_to_lua(lua: &Lua, v: &serde_json::Value, depth: i64, max: i64) -> mlua::Result<Value> {
    if matches!(
        v,
        serde_json::Value::Array(_) | serde_json::Value::Object(_)
    ) && depth + 1 > max
    {
        return Err(mlua::Error::RuntimeError(format!(
            "Found too many nested data structures ({})",
            depth + 1
        )));
    }
    Ok(match v {
        serde_json::Value::Null => Value::NULL,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, x, depth + 1, max)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, x) in o {
                t.raw_set(k.as_str(), json_to_lua(lua, x, depth + 1, max)?)?;
            }
            Value::Table(t)
        }
    })
}

/// lua-cmsgpack's `mp_encode_lua_type`: strings always as str, whole numbers as the smallest
/// integer, other numbers as float32 when exact else float64, tables as arrays when their keys
/// are 1..n (an empty table too) else as maps; a table at [`MSGPACK_NESTING_MAX`] and
/// functions, userdata … as nil.
fn msgpack_encode(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => msgpack_int(*i, out),
        Value::Number(n) => {
            if n.fract() == 0.0 && *n >= i64::MIN as f64 && *n < 9.223_372_036_854_776e18 {
                msgpack_int(*n as i64, out);
            } else if f64::from(*n as f32) == *n || n.is_nan() {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if level < MSGPACK_NESTING_MAX => {
            if let Some(n) = msgpack_array_len(t)? {
                msgpack_len(n, 0x90, 0xdc, out);
                for i in 1..=n {
                    msgpack_encode(&t.raw_get::<Value>(i)?, out, level + 1)?;
                }
            } else {
                // Counted first, then written pair by pair: a Rust-held Lua value takes a
                // slot of the state's (bounded) reference stack, so they are never collected.
                let mut n = 0usize;
                for pair in t.clone().pairs::<Value, Value>() {
                    pair?;
                    n += 1;
                }
                msgpack_len(n, 0x80, 0xde, out);
                for pair in t.clone().pairs::<Value, Value>().take(n) {
                    let (k, val) = pair?;
                    msgpack_encode(&k, out, level + 1)?;
                    msgpack_encode(&val, out, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

/// lua-cmsgpack's `table_is_an_array`: keys exactly 1..n (n may be 0).
fn msgpack_array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let mut max = 0usize;
    let mut count = 0usize;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let i = match k {
            Value::Integer(i) if i > 0 => i as usize,
            Value::Number(n) if n > 0.0 && n.fract() == 0.0 && n < 1e15 => n as usize,
            _ => return Ok(None),
        };
        max = max.max(i);
        count += 1;
    }
    Ok((count == max).then_some(max))
}

/// An array or map header: fix form under 16, else 16-bit or 32-bit length.
fn msgpack_len(n: usize, fix: u8, marker16: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(marker16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(marker16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn msgpack_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        if i <= 127 {
            out.push(i as u8);
        } else if i <= 0xff {
            out.extend_from_slice(&[0xcc, i as u8]);
        } else if i <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(i as u16).to_be_bytes());
        } else if i <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(i as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(i as u64).to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= -128 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn msgpack_to_lua(lua: &Lua, v: &rmpv::Value) -> mlua::Result<Value> {
    Ok(match v {
        rmpv::Value::Nil => Value::Nil,
        rmpv::Value::Boolean(b) => Value::Boolean(*b),
        rmpv::Value::Integer(i) => Value::Number(
            i.as_i64()
                .map(|x| x as f64)
                .or_else(|| i.as_u64().map(|x| x as f64))
                .unwrap_or(0.0),
        ),
        rmpv::Value::F32(f) => Value::Number(f64::from(*f)),
        rmpv::Value::F64(f) => Value::Number(*f),
        rmpv::Value::String(s) => Value::String(lua.create_string(s.as_bytes())?),
        rmpv::Value::Binary(b) => Value::String(lua.create_string(b)?),
        rmpv::Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, msgpack_to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
        rmpv::Value::Map(m) => {
            let t = lua.create_table_with_capacity(0, m.len())?;
            for (k, x) in m {
                let k = msgpack_to_lua(lua, k)?;
                if !k.is_nil() {
                    t.raw_set(k, msgpack_to_lua(lua, x)?)?;
                }
            }
            Value::Table(t)
        }
        rmpv::Value::Ext(_, b) => Value::String(lua.create_string(b)?),
    })
}
