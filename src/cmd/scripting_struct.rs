//! Redis's `struct` library: `struct.pack`, `struct.unpack` and `struct.size` as Redis 7.0
//! ships them (Roberto Ierusalimschy's struct.c, `deps/lua/src/lua_struct.c`), built for
//! x86-64 Linux as Debian's redis-server is: little-endian natively, `short` 2 bytes, `int` 4,
//! `long` and `size_t` 8, alignment (`!`) at most 8 by default, integers of up to 32 bytes.
//!
//! Format letters: `>` / `<` big / little endian, `![n]` alignment, `x` a zero byte, `b`/`B`,
//! `h`/`H`, `l`/`L`, `T`, `i[n]`/`I[n]` signed / unsigned integers, `c[n]` n bytes (packing:
//! `c0` is the whole string; unpacking: `c0` takes its length from the previous result), `s` a
//! zero-terminated string, `f` / `d` float / double, ` ` ignored. `unpack` returns the values,
//! then the position after the last byte read.
//!
//! Where the C code relies on x86-64's conversions (a double out of an integer's range, shifts
//! of 64 bits or more), the same results are computed here. Limits: a packed string is refused
//! past the Lua state's own memory limit (before anything is allocated for it), and `unpack`
//! returns at most what Lua 5.1's C stack takes (`stack overflow (too many results)`, one
//! result earlier than Redis: mlua keeps a stack slot of its own).

use mlua::{Lua, MultiValue, Table, Value};

/// struct.c's MAXINTSIZE: the largest integer (`i32`, `I32`) in bytes.
const INT_BYTES_MAX: usize = 32;

/// struct.c's MAXALIGN on x86-64 (`!` without a number).
const ALIGN_DEFAULT: usize = 8;

/// Lua 5.1's LUAI_MAXCSTACK: the C stack slots a C function may use (arguments and results).
const C_STACK_SLOTS_MAX: usize = 8000;

/// A packed string may not be longer than the Lua state may hold.
const PACK_BYTES_MAX: usize = crate::cmd::scripting::LUA_MEMORY_MAX;

/// The options of a format so far (struct.c's Header).
struct Header {
    little: bool,
    align: usize,
}

impl Default for Header {
    fn default() -> Self {
        // (native: little-endian; no alignment)
        Header {
            little: true,
            align: 1,
        }
    }
}

/// A format string, read as the C code reads it (it ends at the first zero byte).
struct Format<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Format<'a> {
    fn new(s: &'a [u8]) -> Self {
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        Format {
            bytes: &s[..end],
            at: 0,
        }
    }

    fn next_option(&mut self) -> Option<u8> {
        let c = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    /// struct.c's getnum: the number that follows, else `default`.
    fn number(&mut self, default: usize) -> mlua::Result<usize> {
        let mut a: i32 = 0;
        let mut any = false;
        while let Some(&c) = self.bytes.get(self.at).filter(|c| c.is_ascii_digit()) {
            let d = i32::from(c - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(lua_error("integral size overflow".into()));
            }
            a = a * 10 + d;
            self.at += 1;
            any = true;
        }
        Ok(if any { a as usize } else { default })
    }
}

/// A `luaL_error` of the library (the caller's position is added as for any library error).
fn lua_error(msg: String) -> mlua::Error {
    mlua::Error::RuntimeError(msg)
}

/// `luaL_argerror`: `bad argument #n to '<name>' (msg)`, with the name the caller used (`?`
/// when there is none, as under `pcall(struct.pack, ...)`).
fn arg_error(lua: &Lua, narg: usize, msg: &str) -> mlua::Error {
    let (name, method) = lua
        .inspect_stack(0, |d| {
            let n = d.names();
            (
                n.name.map(|s| s.into_owned()),
                n.name_what == Some("method"),
            )
        })
        .unwrap_or((None, false));
    let name = name.unwrap_or_else(|| "?".into());
    if method {
        if narg == 1 {
            return lua_error(format!("calling '{name}' on bad self ({msg})"));
        }
        return lua_error(format!("bad argument #{} to '{name}' ({msg})", narg - 1));
    }
    lua_error(format!("bad argument #{narg} to '{name}' ({msg})"))
}

/// Lua 5.1's type names, as `luaL_typerror` prints them.
fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

fn type_error(lua: &Lua, args: &MultiValue, narg: usize, expected: &str) -> mlua::Error {
    let msg = format!("{expected} expected, got {}", type_name(args.get(narg - 1)));
    arg_error(lua, narg, &msg)
}

/// `luaL_checklstring`: a string, or a number as Lua writes it.
fn check_string(lua: &Lua, args: &MultiValue, narg: usize) -> mlua::Result<mlua::LuaString> {
    match args.get(narg - 1) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => Ok(s),
            None => Err(type_error(lua, args, narg, "string")),
        },
        _ => Err(type_error(lua, args, narg, "string")),
    }
}

/// `luaL_checknumber`: a number, or a string Lua reads as one.
fn check_number(lua: &Lua, args: &MultiValue, narg: usize) -> mlua::Result<f64> {
    match args.get(narg - 1) {
        Some(v) => match to_number(lua, v)? {
            Some(n) => Ok(n),
            None => Err(type_error(lua, args, narg, "number")),
        },
        None => Err(type_error(lua, args, narg, "number")),
    }
}

/// `lua_tonumber` (None where `lua_isnumber` is false).
fn to_number(lua: &Lua, v: &Value) -> mlua::Result<Option<f64>> {
    Ok(match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(_) => lua.coerce_number(v.clone())?,
        _ => None,
    })
}

/// A double to a signed 64-bit integer as x86-64's `cvttsd2si` does it (what C's cast
/// compiles to): out of range or NaN gives the "integer indefinite" value, i64::MIN.
fn x86_i64(d: f64) -> i64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if !(-TWO63..TWO63).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// A double to an unsigned 64-bit integer as gcc compiles the cast for x86-64.
fn x86_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d.is_nan() || d < TWO63 {
        x86_i64(d) as u64
    } else {
        (x86_i64(d - TWO63) as u64) ^ (1 << 63)
    }
}

/// struct.c's optsize: the size of option `opt` (0 for the options without one).
fn option_size(opt: u8, fmt: &mut Format<'_>) -> mlua::Result<usize> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => fmt.number(1)?,
        b'i' | b'I' => {
            let n = fmt.number(4)?;
            if n > INT_BYTES_MAX {
                return Err(lua_error(format!(
                    "integral size {n} is larger than limit of {INT_BYTES_MAX}"
                )));
            }
            n
        }
        _ => 0,
    })
}

/// struct.c's gettoalign: the padding before an item of `size` bytes at `len`.
fn padding(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & size.wrapping_sub(1)) & size.wrapping_sub(1)
}

/// struct.c's controloptions: endianness, alignment, spaces; any other letter is an error.
fn control_option(lua: &Lua, opt: u8, fmt: &mut Format<'_>, h: &mut Header) -> mlua::Result<()> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = fmt.number(ALIGN_DEFAULT)?;
            if !a.is_power_of_two() {
                return Err(lua_error(format!("alignment {a} is not a power of 2")));
            }
            h.align = a;
        }
        _ => {
            let msg = format!(
                "invalid format option '{}'",
                String::from_utf8_lossy(&[opt])
            );
            return Err(arg_error(lua, 1, &msg));
        }
    }
    Ok(())
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> mlua::Result<()> {
    if out.len() + bytes.len() > PACK_BYTES_MAX {
        return Err(lua_error("not enough memory".into()));
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// struct.pack(fmt, ...)
fn pack(lua: &Lua, mut args: MultiValue) -> mlua::Result<mlua::LuaString> {
    let fmt_s = check_string(lua, &args, 1)?;
    // struct.c pushes a nil after the arguments (its mark before the string buffer): a
    // missing argument is that nil ("got nil", not "got no value").
    args.push_back(Value::Nil);
    let fmt_b = fmt_s.as_bytes();
    let mut fmt = Format::new(&fmt_b);
    let mut h = Header::default();
    let mut arg = 2;
    let mut total: usize = 0;
    let mut out = Vec::new();
    while let Some(opt) = fmt.next_option() {
        let mut size = option_size(opt, &mut fmt)?;
        let pad = padding(total, &h, opt, size);
        total = total.wrapping_add(pad);
        push_bytes(&mut out, &[0u8; INT_BYTES_MAX][..pad])?;
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, &args, arg)?;
                arg += 1;
                let mut v = if n < 0.0 {
                    x86_i64(n) as u64
                } else {
                    x86_u64(n)
                };
                let mut buf = [0u8; INT_BYTES_MAX];
                for i in 0..size {
                    let at = if h.little { i } else { size - 1 - i };
                    buf[at] = v as u8;
                    v >>= 8;
                }
                push_bytes(&mut out, &buf[..size])?;
            }
            b'x' => push_bytes(&mut out, &[0])?,
            b'f' => {
                let f = check_number(lua, &args, arg)? as f32;
                arg += 1;
                let b = if h.little {
                    f.to_le_bytes()
                } else {
                    f.to_be_bytes()
                };
                push_bytes(&mut out, &b)?;
            }
            b'd' => {
                let d = check_number(lua, &args, arg)?;
                arg += 1;
                let b = if h.little {
                    d.to_le_bytes()
                } else {
                    d.to_be_bytes()
                };
                push_bytes(&mut out, &b)?;
            }
            b'c' | b's' => {
                let s = check_string(lua, &args, arg)?;
                arg += 1;
                let s = s.as_bytes();
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // (struct.c names the argument after the string: `arg` was incremented)
                    return Err(arg_error(lua, arg, "string too short"));
                }
                push_bytes(&mut out, &s[..size])?;
                if opt == b's' {
                    push_bytes(&mut out, &[0])?;
                    size += 1;
                }
            }
            _ => control_option(lua, opt, &mut fmt, &mut h)?,
        }
        total = total.wrapping_add(size);
    }
    lua.create_string(&out)
}

/// struct.c's getinteger, with x86-64's shifts (the count taken modulo 64) where the C code
/// shifts by 64 or more (sizes 0 and over 8).
fn read_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut add = |b: u8| l = (l << 8) | u64::from(b);
    if little {
        bytes.iter().rev().for_each(|&b| add(b));
    } else {
        bytes.iter().for_each(|&b| add(b));
    }
    if !signed {
        return l as f64;
    }
    let shift = (bytes.len() as u32).wrapping_mul(8).wrapping_sub(1) & 63;
    let mask = u64::MAX << shift;
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

/// struct.unpack(fmt, data [, pos])
fn unpack(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let fmt_s = check_string(lua, &args, 1)?;
    let fmt_b = fmt_s.as_bytes();
    let data_s = check_string(lua, &args, 2)?;
    let data = data_s.as_bytes();
    let ld = data.len();
    // luaL_optinteger: nil or absent is 1; the integer cast to size_t (a negative offset
    // becomes huge, and fails as "data string too short").
    let mut pos = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(v) => match to_number(lua, v)? {
            Some(n) => x86_i64(n) as usize,
            None => return Err(type_error(lua, &args, 3, "number")),
        },
    };
    if pos == 0 {
        return Err(arg_error(lua, 3, "offset must be 1 or greater"));
    }
    pos -= 1;
    let mut fmt = Format::new(&fmt_b);
    let mut h = Header::default();
    let mut out: Vec<Value> = Vec::new();
    let too_short = |size: usize, pos: usize| !(size <= ld && pos <= ld - size);
    while let Some(opt) = fmt.next_option() {
        let mut size = option_size(opt, &mut fmt)?;
        pos = pos.wrapping_add(padding(pos, &h, opt, size));
        if too_short(size, pos) {
            return Err(arg_error(lua, 2, "data string too short"));
        }
        // luaL_checkstack(L, 2, ...): the arguments and the results so far, and two more; one
        // more here, as mlua keeps a slot of its own when it returns the results (so the
        // largest unpack has one result less than Redis's).
        if args.len() + out.len() + 3 > C_STACK_SLOTS_MAX {
            return Err(lua_error("stack overflow (too many results)".into()));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = read_integer(&data[pos..pos + size], h.little, opt.is_ascii_lowercase());
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let f = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(f)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let d = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    // The length is the previous result (a number, or a string that reads as
                    // one), which it replaces.
                    let prev = match out.last() {
                        Some(v) => to_number(lua, v)?,
                        None => None,
                    };
                    let Some(n) = prev else {
                        return Err(lua_error("format 'c0' needs a previous size".into()));
                    };
                    size = x86_u64(n) as usize;
                    out.pop();
                    if too_short(size, pos) {
                        return Err(arg_error(lua, 2, "data string too short"));
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(lua_error("unfinished string in data".into()));
                };
                size = len + 1;
                out.push(Value::String(lua.create_string(&data[pos..pos + len])?));
            }
            _ => control_option(lua, opt, &mut fmt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    // lua_pushinteger(pos + 1): size_t to ptrdiff_t to a Lua number.
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(MultiValue::from_vec(out))
}

/// struct.size(fmt): the packed size of a format without variable-length items. A letter
/// that is no option counts 0 bytes, as in struct.c (only other characters are refused).
fn size(lua: &Lua, args: MultiValue) -> mlua::Result<f64> {
    let fmt_s = check_string(lua, &args, 1)?;
    let fmt_b = fmt_s.as_bytes();
    let mut fmt = Format::new(&fmt_b);
    let mut h = Header::default();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next_option() {
        let size = option_size(opt, &mut fmt)?;
        pos = pos.wrapping_add(padding(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(lua, 1, "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(lua, 1, "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            control_option(lua, opt, &mut fmt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(pos as i64 as f64)
}

/// The `struct` table.
pub(super) fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", lua.create_function(pack)?)?;
    t.raw_set("unpack", lua.create_function(unpack)?)?;
    t.raw_set("size", lua.create_function(size)?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_conversions_match_the_c_casts() {
        assert_eq!(x86_i64(-1.5), -1);
        assert_eq!(x86_i64(1e300), i64::MIN);
        assert_eq!(x86_i64(f64::NAN), i64::MIN);
        assert_eq!(x86_u64(1.8446744073709552e19), 0);
        assert_eq!(x86_u64(9.3e18), 9_300_000_000_000_000_000);
        assert_eq!(x86_u64(f64::NAN), 1 << 63);
    }

    #[test]
    fn integers_read_back_as_struct_c_reads_them() {
        assert_eq!(read_integer(&[0xff, 0xff], true, true), -1.0);
        assert_eq!(read_integer(&[0xff, 0xff], true, false), 65535.0);
        assert_eq!(read_integer(&[0x01, 0x00], false, false), 256.0);
        assert_eq!(read_integer(&[], true, true), 0.0);
    }

    #[test]
    fn padding_is_struct_c_gettoalign() {
        let h = Header {
            little: true,
            align: 8,
        };
        assert_eq!(padding(1, &h, b'i', 4), 3);
        assert_eq!(padding(3, &h, b'd', 8), 5);
        assert_eq!(padding(3, &h, b'c', 8), 0);
        assert_eq!(padding(5, &Header::default(), b'i', 4), 0);
    }
}
