//! The cjson and cmsgpack libraries of Redis's Lua environment (what BullMQ's scripts use):
//! `cjson.encode` / `cjson.decode` / `cjson.null` with lua-cjson's rules, and
//! `cmsgpack.pack` / `cmsgpack.unpack` with lua-cmsgpack's. Parsing is serde_json's and
//! rmpv's; only the mapping to and from Lua values is here.

use mlua::{Lua, MultiValue, Table, Value};

/// Nesting limit for both libraries (lua-cjson's default is 1000; a self-referencing table
/// must not recurse forever).
const DEPTH_MAX: usize = 1000;

pub fn install(lua: &Lua) -> mlua::Result<()> {
    let cjson = lua.create_table()?;
    cjson.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let mut out = Vec::new();
            json_encode(&v, &mut out, 0)?;
            lua.create_string(&out)
        })?,
    )?;
    cjson.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let v: serde_json::Value = serde_json::from_slice(&s.as_bytes()).map_err(|e| {
                mlua::Error::RuntimeError(format!("Expected value but found invalid token: {e}"))
            })?;
            json_to_lua(lua, &v, 0)
        })?,
    )?;
    cjson.raw_set("null", Value::NULL)?;
    lua.globals().raw_set("cjson", cjson)?;

    let cmsgpack = lua.create_table()?;
    cmsgpack.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            let mut out = Vec::new();
            for v in args.iter() {
                let m = lua_to_msgpack(v, 0)?;
                rmpv::encode::write_value(&mut out, &m)
                    .map_err(|e| mlua::Error::RuntimeError(e.to_string()))?;
            }
            lua.create_string(&out)
        })?,
    )?;
    cmsgpack.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| {
            let bytes = s.as_bytes();
            let mut rd: &[u8] = &bytes;
            let mut out = Vec::new();
            while !rd.is_empty() {
                let v =
                    rmpv::decode::read_value_with_max_depth(&mut rd, DEPTH_MAX).map_err(|e| {
                        mlua::Error::RuntimeError(format!("Missing bytes in input: {e}"))
                    })?;
                out.push(msgpack_to_lua(lua, &v)?);
            }
            Ok(MultiValue::from_vec(out))
        })?,
    )?;
    lua.globals().raw_set("cmsgpack", cmsgpack)?;
    Ok(())
}

fn too_deep() -> mlua::Error {
    mlua::Error::RuntimeError("Cannot serialise, excessive nesting (1001)".to_string())
}

/// A table's array length if it is a non-empty sequence 1..n (lua-cjson encodes those as JSON
/// arrays, anything else as an object; an empty table as an object).
fn sequence_len(t: &Table) -> mlua::Result<Option<usize>> {
    let mut max = 0usize;
    let mut count = 0usize;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let i = match k {
            Value::Integer(i) if i > 0 => i as usize,
            Value::Number(n) if n > 0.0 && n.fract() == 0.0 => n as usize,
            _ => return Ok(None),
        };
        max = max.max(i);
        count += 1;
    }
    Ok((count > 0 && count == max).then_some(max))
}

fn json_number(n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    if !n.is_finite() {
        return Err(mlua::Error::RuntimeError(
            "Cannot serialise number: must not be NaN or Inf".to_string(),
        ));
    }
    out.extend_from_slice(crate::resp::fmt_g(n, 14).as_bytes());
    Ok(())
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

fn json_encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    if depth > DEPTH_MAX {
        return Err(too_deep());
    }
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Number(n) => json_number(*n, out)?,
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if let Some(n) = sequence_len(t)? {
                out.push(b'[');
                for i in 1..=n {
                    if i > 1 {
                        out.push(b',');
                    }
                    json_encode(&t.raw_get::<Value>(i)?, out, depth + 1)?;
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
                            json_number(*n, &mut num)?;
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
                    json_encode(&val, out, depth + 1)?;
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

fn json_to_lua(lua: &Lua, v: &serde_json::Value, depth: usize) -> mlua::Result<Value> {
    if depth > DEPTH_MAX {
        return Err(mlua::Error::RuntimeError(
            "Found too many nested data structures".to_string(),
        ));
    }
    Ok(match v {
        serde_json::Value::Null => Value::NULL,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, x, depth + 1)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, x) in o {
                t.raw_set(k.as_str(), json_to_lua(lua, x, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}

fn lua_to_msgpack(v: &Value, depth: usize) -> mlua::Result<rmpv::Value> {
    if depth > DEPTH_MAX {
        return Ok(rmpv::Value::Nil);
    }
    Ok(match v {
        Value::Nil => rmpv::Value::Nil,
        Value::Boolean(b) => rmpv::Value::Boolean(*b),
        Value::Integer(i) => rmpv::Value::from(*i),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                rmpv::Value::from(*n as i64)
            } else {
                rmpv::Value::F64(*n)
            }
        }
        // Bytes kept as they are: text as msgpack str, anything else as bin (unpacked to the
        // same Lua string either way).
        Value::String(s) => match String::from_utf8(s.as_bytes().to_vec()) {
            Ok(text) => rmpv::Value::String(rmpv::Utf8String::from(text)),
            Err(e) => rmpv::Value::Binary(e.into_bytes()),
        },
        Value::Table(t) => {
            if let Some(n) = sequence_len(t)? {
                let mut a = Vec::with_capacity(n);
                for i in 1..=n {
                    a.push(lua_to_msgpack(&t.raw_get::<Value>(i)?, depth + 1)?);
                }
                rmpv::Value::Array(a)
            } else {
                let mut m = Vec::new();
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, val) = pair?;
                    m.push((
                        lua_to_msgpack(&k, depth + 1)?,
                        lua_to_msgpack(&val, depth + 1)?,
                    ));
                }
                rmpv::Value::Map(m)
            }
        }
        _ => rmpv::Value::Nil,
    })
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
