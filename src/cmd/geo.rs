//! Commands: geo — GEOADD, GEODIST, GEOHASH, GEOPOS, GEOSEARCH, GEOSEARCHSTORE, GEORADIUS,
//! GEORADIUS_RO, GEORADIUSBYMEMBER, GEORADIUSBYMEMBER_RO — replies, errors, notifications and
//! propagation as Redis 7.0.
//!
//! A geo set is a plain sorted set whose scores are 52-bit interleaved geohashes
//! ([`geohash`]). GEOADD is run as the equivalent ZADD and logged as that ZADD (Redis rewrites
//! the command vector). A search visits the centre cell and its eight neighbours at the step
//! the area calls for, keeps the members inside the exact area, and sorts by distance with the
//! algorithms Redis uses (glibc's merge sort for a full sort, Redis's `pqsort` when COUNT cuts
//! the result), so ties come out in Redis's order too. The STORE forms write their destination
//! as Redis does and are logged as received (the search is deterministic, so the log replays to
//! the same state).
//!
//! Reply formats: coordinates `%.17Lf` with trailing zeros cut (RESP2 bulk, RESP3 double),
//! distances `%.4f` (a bulk string in both protocols), hashes as integers.

pub mod geohash;

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, KeySpec, K1};
use crate::ctx::{notify, Ctx};
use crate::keyspace::{Shared, Value};
use crate::resp::Reply;
use crate::types::zset::ZSet;
use crate::util::parse_i64;

use geohash::{Cell, Shape, ShapeKind};

const fn since(c: CommandSpec, version: &'static str) -> CommandSpec {
    CommandSpec {
        since: version,
        ..c
    }
}

pub static COMMANDS: &[CommandSpec] = &[
    since(
        cmd("geoadd", -5, WRITE | DENYOOM, K1, "geo", geoadd),
        "3.2.0",
    ),
    since(cmd("geodist", -4, READONLY, K1, "geo", geodist), "3.2.0"),
    since(
        cmd("geohash", -2, READONLY, K1, "geo", geohash_cmd),
        "3.2.0",
    ),
    since(cmd("geopos", -2, READONLY, K1, "geo", geopos), "3.2.0"),
    since(
        cmd("georadius", -6, WRITE | DENYOOM, K1, "geo", georadius),
        "3.2.0",
    ),
    since(
        cmd("georadius_ro", -6, READONLY, K1, "geo", georadius_ro),
        "3.2.10",
    ),
    since(
        cmd(
            "georadiusbymember",
            -5,
            WRITE | DENYOOM,
            K1,
            "geo",
            georadiusbymember,
        ),
        "3.2.0",
    ),
    since(
        cmd(
            "georadiusbymember_ro",
            -5,
            READONLY,
            K1,
            "geo",
            georadiusbymember_ro,
        ),
        "3.2.10",
    ),
    since(
        cmd("geosearch", -7, READONLY, K1, "geo", geosearch),
        "6.2.0",
    ),
    since(
        cmd(
            "geosearchstore",
            -8,
            WRITE | DENYOOM,
            KeySpec::Range(1, 2, 1),
            "geo",
            geosearchstore,
        ),
        "6.2.0",
    ),
];

const ERR_MEMBER: &str = "ERR could not decode requested zset member";
const ERR_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";

fn wrongtype() -> Reply {
    Reply::err(err::WRONGTYPE)
}

// ---------------------------------------------------------------------------------------------
// Argument parsing

/// The argument as C string functions see it: up to its first NUL byte.
fn cstr(a: &[u8]) -> &[u8] {
    match a.iter().position(|&c| c == 0) {
        Some(p) => &a[..p],
        None => a,
    }
}

/// `strcasecmp(arg, word) == 0` (also how the key finder, `CommandSpec::extra_key_positions`,
/// spots STORE/STOREDIST, so it finds every destination the command writes).
pub(crate) fn is(a: &[u8], word: &str) -> bool {
    cstr(a).eq_ignore_ascii_case(word.as_bytes())
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Redis's `getDoubleFromObject`: the whole argument must be what glibc's `strtod` reads (no
/// leading space, decimal or hex, `inf`/`infinity`), and neither NaN nor out of range.
pub fn parse_double(s: &[u8]) -> Option<f64> {
    if s.is_empty() || is_c_space(s[0]) {
        return None;
    }
    let (neg, rest) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        f64::INFINITY
    } else if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        parse_hex(&rest[2..])?
    } else {
        parse_decimal(rest)?
    };
    Some(if neg { -v } else { v })
}

/// Digits `[.digits][e[+-]digits]`, at least one mantissa digit; out of range (overflow, or a
/// nonzero value that underflows to zero) is refused as `strtod`'s ERANGE is by Redis.
fn parse_decimal(s: &[u8]) -> Option<f64> {
    let mut i = 0;
    let mut digits = 0;
    let mut nonzero = false;
    while i < s.len() && s[i].is_ascii_digit() {
        nonzero |= s[i] != b'0';
        digits += 1;
        i += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            nonzero |= s[i] != b'0';
            digits += 1;
            i += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'e' {
        i += 1;
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != s.len() {
        return None;
    }
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    if v.is_infinite() || (v == 0.0 && nonzero) {
        return None;
    }
    Some(v)
}

/// Hex digits `[.hexdigits][p[+-]digits]` after `0x`.
fn parse_hex(s: &[u8]) -> Option<f64> {
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut digits = 0;
    let mut nonzero = false;
    let mut frac = false;
    loop {
        match s.get(i) {
            Some(b'.') if !frac => frac = true,
            Some(&c) if c.is_ascii_hexdigit() => {
                let d = u64::from((c as char).to_digit(16).unwrap_or(0));
                digits += 1;
                nonzero |= d != 0;
                if mant < (1u64 << 56) {
                    mant = mant * 16 + d;
                    if frac {
                        exp -= 4;
                    }
                } else {
                    sticky |= d != 0;
                    if !frac {
                        exp += 4;
                    }
                }
            }
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'p' {
        i += 1;
        let neg = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i64 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            e = (e * 10 + i64::from(s[i] - b'0')).min(1 << 40);
            i += 1;
        }
        if i == start {
            return None;
        }
        exp = exp.saturating_add(if neg { -e } else { e });
    }
    if i != s.len() {
        return None;
    }
    // One extra bit carries the digits past the mantissa, so rounding sees them.
    let m = (mant << 1) | u64::from(sticky);
    let exp = exp - 1;
    let mut v = m as f64;
    let mut e = exp.clamp(-3000, 3000) as i32;
    while e > 0 {
        let k = e.min(1000);
        v *= 2f64.powi(k);
        e -= k;
    }
    while e < 0 {
        let k = (-e).min(1000);
        v /= 2f64.powi(k);
        e += k;
    }
    if v.is_infinite() || (v == 0.0 && nonzero) {
        return None;
    }
    Some(v)
}

/// `getDoubleFromObjectOrReply`: `msg` replaces the default error text.
fn get_double(a: &[u8], msg: Option<&str>) -> Result<f64, Reply> {
    parse_double(a).ok_or_else(|| {
        Reply::Error(format!(
            "ERR {}",
            msg.unwrap_or("value is not a valid float")
        ))
    })
}

/// C's `%f`.
fn fmt_c_f(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.is_nan() {
        return if v.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    format!("{v:.6}")
}

/// A longitude and latitude argument pair, range-checked.
fn extract_lonlat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Reply> {
    let x = get_double(lon, None)?;
    let y = get_double(lat, None)?;
    if !(geohash::LON_MIN..=geohash::LON_MAX).contains(&x)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&y)
    {
        return Err(Reply::Error(format!(
            "ERR invalid longitude,latitude pair {},{}",
            fmt_c_f(x),
            fmt_c_f(y)
        )));
    }
    Ok((x, y))
}

/// Meters per unit.
fn extract_unit(a: &[u8]) -> Result<f64, Reply> {
    if is(a, "m") {
        Ok(1.0)
    } else if is(a, "km") {
        Ok(1000.0)
    } else if is(a, "ft") {
        Ok(0.3048)
    } else if is(a, "mi") {
        Ok(1609.34)
    } else {
        Err(Reply::err(ERR_UNIT))
    }
}

/// `radius unit` → (radius, meters per unit).
fn extract_distance(r: &[u8], unit: &[u8]) -> Result<(f64, f64), Reply> {
    let d = get_double(r, Some("need numeric radius"))?;
    if d < 0.0 {
        return Err(Reply::err("ERR radius cannot be negative"));
    }
    Ok((d, extract_unit(unit)?))
}

/// `width height unit` → (width, height, meters per unit).
fn extract_box(w: &[u8], h: &[u8], unit: &[u8]) -> Result<(f64, f64, f64), Reply> {
    let w = get_double(w, Some("need numeric width"))?;
    let h = get_double(h, Some("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(Reply::err("ERR height or width cannot be negative"));
    }
    Ok((w, h, extract_unit(unit)?))
}

// ---------------------------------------------------------------------------------------------
// Reply formatting

/// `%.4f` (GEODIST and WITHDIST).
fn fmt_distance(d: f64) -> String {
    if d.is_finite() {
        format!("{d:.4}")
    } else {
        fmt_c_f(d)
    }
}

/// Redis's `ld2string(…, LD_STR_HUMAN)`: `%.17Lf` without trailing zeros, `-0` as `0`.
fn fmt_human(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return fmt_c_f(d);
    }
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// `addReplyHumanLongDouble`: a bulk string in RESP2, a double in RESP3.
fn human_reply(ctx: &Ctx, d: f64) -> Reply {
    let s = fmt_human(d);
    if ctx.client.proto >= 3 {
        Reply::Raw(Bytes::from(format!(",{s}\r\n")))
    } else {
        Reply::Bulk(Bytes::from(s))
    }
}

fn coords_reply(ctx: &Ctx, lon: f64, lat: f64) -> Reply {
    Reply::Array(vec![human_reply(ctx, lon), human_reply(ctx, lat)])
}

// ---------------------------------------------------------------------------------------------
// Lookups

enum Lookup {
    Missing,
    Found,
}

/// Look up `key` for reading (lazy expiry, LRU): WRONGTYPE unless missing or a zset.
fn lookup_zset(ctx: &mut Ctx, key: &[u8]) -> Result<Lookup, Reply> {
    match ctx.lookup(key) {
        None => Ok(Lookup::Missing),
        Some(o) => match &o.value {
            Value::ZSet(_) => Ok(Lookup::Found),
            _ => Err(wrongtype()),
        },
    }
}

/// The zset at `key` as already looked up (no side effects).
fn zset_at<'a>(ctx: &'a Ctx, key: &[u8]) -> Option<&'a ZSet> {
    match ctx.srv.dbs[ctx.client.db].keys.get(key).map(|o| &o.value) {
        Some(Value::ZSet(z)) => Some(z),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// GEOADD / GEOPOS / GEODIST / GEOHASH

fn zadd_handler() -> Option<crate::cmd::Handler> {
    crate::cmd::zset::COMMANDS
        .iter()
        .find(|c| c.name == "zadd")
        .map(|c| c.handler)
}

/// GEOADD key [NX|XX] [CH] lon lat member …: runs (and logs) `zadd key [opts] score member …`.
fn geoadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (mut nx, mut xx) = (false, false);
    let mut longidx = 2;
    while longidx < args.len() {
        let o = &args[longidx];
        if is(o, "nx") {
            nx = true;
        } else if is(o, "xx") {
            xx = true;
        } else if !is(o, "ch") {
            break;
        }
        longidx += 1;
    }
    if !(args.len() - longidx).is_multiple_of(3) || (xx && nx) {
        return Reply::err(err::SYNTAX);
    }
    let elements = (args.len() - longidx) / 3;
    let mut zargv = Vec::with_capacity(longidx + elements * 2);
    zargv.push(Bytes::from_static(b"zadd"));
    zargv.push(args[1].clone());
    for o in &args[2..longidx] {
        // ZADD reads its options the same way; one spelled with a NUL byte is passed on as
        // the option it stands for.
        if o.contains(&0) {
            zargv.push(Bytes::from(cstr(o).to_ascii_lowercase()));
        } else {
            zargv.push(o.clone());
        }
    }
    for i in 0..elements {
        let at = longidx + i * 3;
        let (lon, lat) = match extract_lonlat(&args[at], &args[at + 1]) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let score = geohash::lonlat_to_score(lon, lat).unwrap_or(0);
        zargv.push(Bytes::from(score.to_string()));
        zargv.push(args[at + 2].clone());
    }
    let Some(zadd) = zadd_handler() else {
        return Reply::err("ERR unknown command 'zadd'");
    };
    let before = ctx.dirty;
    let reply = zadd(ctx, &zargv);
    if ctx.dirty > before {
        ctx.propagate(zargv);
    }
    reply
}

fn geopos(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = lookup_zset(ctx, &args[1]) {
        return e;
    }
    let z = zset_at(ctx, &args[1]);
    let out = args[2..]
        .iter()
        .map(|m| match z.and_then(|z| z.score(m)) {
            None => Reply::NilArray,
            Some(s) => {
                let (x, y) = geohash::score_to_lonlat(s);
                coords_reply(ctx, x, y)
            }
        })
        .collect();
    Reply::Array(out)
}

fn geodist(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut to_meter = 1.0;
    if args.len() == 5 {
        match extract_unit(&args[4]) {
            Ok(u) => to_meter = u,
            Err(e) => return e,
        }
    } else if args.len() > 5 {
        return Reply::err(err::SYNTAX);
    }
    match lookup_zset(ctx, &args[1]) {
        Err(e) => return e,
        Ok(Lookup::Missing) => return Reply::Nil,
        Ok(Lookup::Found) => {}
    }
    let Some(z) = zset_at(ctx, &args[1]) else {
        return Reply::Nil;
    };
    let (Some(s1), Some(s2)) = (z.score(&args[2]), z.score(&args[3])) else {
        return Reply::Nil;
    };
    let (x1, y1) = geohash::score_to_lonlat(s1);
    let (x2, y2) = geohash::score_to_lonlat(s2);
    let d = geohash::distance(x1, y1, x2, y2) / to_meter;
    Reply::Bulk(Bytes::from(fmt_distance(d)))
}

fn geohash_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = lookup_zset(ctx, &args[1]) {
        return e;
    }
    let z = zset_at(ctx, &args[1]);
    Reply::Array(
        args[2..]
            .iter()
            .map(|m| match z.and_then(|z| z.score(m)) {
                None => Reply::Nil,
                Some(s) => Reply::Bulk(Bytes::copy_from_slice(&geohash::score_to_geohash(s))),
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Searches

/// Search around coordinates (GEORADIUS).
const RADIUS_COORDS: u32 = 1 << 0;
/// Search around a member (GEORADIUSBYMEMBER).
const RADIUS_MEMBER: u32 = 1 << 1;
/// No STORE/STOREDIST (the _RO forms).
const RADIUS_NOSTORE: u32 = 1 << 2;
/// GEOSEARCH's arguments.
const GEOSEARCH: u32 = 1 << 3;
/// GEOSEARCHSTORE (STOREDIST without a key).
const GEOSEARCHSTORE: u32 = 1 << 4;

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A member found inside the area.
#[derive(Clone, Debug)]
struct Point {
    member: Bytes,
    lon: f64,
    lat: f64,
    /// Meters until the reply converts it to the unit.
    dist: f64,
    score: f64,
}

/// Redis's `sort_gp_asc`.
fn cmp_asc(a: &Point, b: &Point) -> i32 {
    if a.dist > b.dist {
        1
    } else if a.dist == b.dist {
        0
    } else {
        -1
    }
}

/// glibc's `qsort` (a top-down merge sort that keeps the left element of equal pairs).
fn merge_sort(v: &mut [Point], cmp: &dyn Fn(&Point, &Point) -> i32) {
    if v.len() <= 1 {
        return;
    }
    let n1 = v.len() / 2;
    merge_sort(&mut v[..n1], cmp);
    merge_sort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < v.len() {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..]);
    v.clone_from_slice(&merged);
}

/// Median of three positions by `cmp` (Bentley & McIlroy's `med3`).
fn med3(v: &[Point], a: usize, b: usize, c: usize, cmp: &dyn Fn(&Point, &Point) -> i32) -> usize {
    if cmp(&v[a], &v[b]) < 0 {
        if cmp(&v[b], &v[c]) < 0 {
            b
        } else if cmp(&v[a], &v[c]) < 0 {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) > 0 {
        b
    } else if cmp(&v[a], &v[c]) < 0 {
        a
    } else {
        c
    }
}

fn insertion_sort(v: &mut [Point], cmp: &dyn Fn(&Point, &Point) -> i32) {
    for m in 1..v.len() {
        let mut l = m;
        while l > 0 && cmp(&v[l - 1], &v[l]) > 0 {
            v.swap(l, l - 1);
            l -= 1;
        }
    }
}

/// Swap the `n` elements at `a` with the `n` at `b` (ranges do not overlap).
fn vecswap(v: &mut [Point], a: usize, b: usize, n: usize) {
    for k in 0..n {
        v.swap(a + k, b + k);
    }
}

/// Redis's `pqsort`: a Bentley–McIlroy quicksort that only sorts the parts of the array that
/// overlap `[lrange, rrange]` (element positions), leaving that window sorted. The same
/// algorithm step by step, so elements of equal distance end up where Redis puts them.
fn pqsort(v: &mut [Point], lrange: usize, rrange: usize, cmp: &dyn Fn(&Point, &Point) -> i32) {
    #[cfg(test)]
    let _depth = tests::PqsortDepth::enter();
    let mut base = 0usize;
    let mut n = v.len();
    loop {
        let a = &mut v[base..base + n];
        if n < 7 {
            insertion_sort(a, cmp);
            return;
        }
        let mut pm = n / 2;
        if n > 7 {
            let mut pl = 0;
            let mut pn = n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(a, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(a, pm - d, pm, pm + d, cmp);
                pn = med3(a, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(a, pl, pm, pn, cmp);
        }
        a.swap(0, pm);
        let (mut pa, mut pb) = (1usize, 1usize);
        // pc and pd may step below pb; kept as signed positions.
        let (mut pc, mut pd) = (n as isize - 1, n as isize - 1);
        loop {
            while pb as isize <= pc {
                let r = cmp(&a[pb], &a[0]);
                if r > 0 {
                    break;
                }
                if r == 0 {
                    a.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let r = cmp(&a[pc as usize], &a[0]);
                if r < 0 {
                    break;
                }
                if r == 0 {
                    a.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            a.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = n;
        let r = pa.min(pb - pa);
        vecswap(a, 0, pb - r, r);
        let r = ((pd - pc) as usize).min(pn - pd as usize - 1);
        vecswap(a, pb, pn - r, r);
        // Elements smaller than the pivot: [0, pb - pa); greater: the last pd - pc. Each part
        // that overlaps the window is sorted on its own: they are disjoint, so the order in
        // which they are done changes nothing. Redis recurses into the left one and loops on
        // the right; recursing into the smaller one instead bounds the depth by log2(n)
        // whatever the points (crafted positions could otherwise make it n deep and overflow
        // the execution thread's stack).
        let wanted = |start: usize, len: usize| {
            (len > 1 && !(rrange < start || lrange > start + len - 1)).then_some((start, len))
        };
        let right = (pd - pc) as usize;
        let parts = (wanted(base, pb - pa), wanted(base + n - right, right));
        let (next_base, next_n) = match parts {
            (None, None) => return,
            (Some(one), None) | (None, Some(one)) => one,
            (Some(l), Some(r)) => {
                let (small, big) = if l.1 <= r.1 { (l, r) } else { (r, l) };
                pqsort_sub(v, small.0, small.1, lrange, rrange, cmp);
                big
            }
        };
        base = next_base;
        n = next_n;
    }
}

/// [`pqsort`] on `v[base..base + n]` (window positions stay absolute).
fn pqsort_sub(
    v: &mut [Point],
    base: usize,
    n: usize,
    lrange: usize,
    rrange: usize,
    cmp: &dyn Fn(&Point, &Point) -> i32,
) {
    let sub = &mut v[base..base + n];
    pqsort(
        sub,
        lrange.saturating_sub(base),
        rrange.saturating_sub(base),
        cmp,
    );
}

/// Members of `z` inside `shape`, visiting the cells as Redis does; stops once `limit` (0: no
/// limit) members are found.
fn search(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let cells = shape.search_cells();
    let mut out: Vec<Point> = Vec::new();
    let full = |out: &Vec<Point>| limit != 0 && out.len() >= limit;
    let mut last = 0usize;
    for i in 0..cells.len() {
        let c = cells[i];
        if c.is_zero() {
            continue;
        }
        if last != 0 && c == cells[last] {
            continue;
        }
        if full(&out) {
            break;
        }
        cell_members(z, c, shape, limit, &mut out);
        last = i;
    }
    out
}

/// Members whose score is in the cell's range and whose position is inside the area.
fn cell_members(z: &ZSet, c: Cell, shape: &Shape, limit: usize, out: &mut Vec<Point>) {
    let (min, max) = c.score_range();
    if min >= max {
        return;
    }
    let lo = z.partition_point(&|_, s| s < min);
    for (m, s) in z.range(lo, z.len(), false) {
        if s >= max {
            break;
        }
        let (lon, lat) = geohash::score_to_lonlat(s);
        if let Some(dist) = shape.contains(lon, lat) {
            out.push(Point {
                member: Bytes::copy_from_slice(m),
                lon,
                lat,
                dist,
                score: s,
            });
        }
        if limit != 0 && out.len() >= limit {
            break;
        }
    }
}

/// Redis's `georadiusGeneric`: `src` indexes the source key.
fn georadius_generic(ctx: &mut Ctx, args: &[Bytes], src: usize, flags: u32) -> Reply {
    let key = args[src].clone();
    let exists = match lookup_zset(ctx, &key) {
        Err(e) => return e,
        Ok(Lookup::Found) => true,
        Ok(Lookup::Missing) => false,
    };
    let member_pos = |ctx: &Ctx, m: &[u8]| {
        zset_at(ctx, &key)
            .and_then(|z| z.score(m))
            .map(geohash::score_to_lonlat)
    };
    let mut center = (0.0, 0.0);
    let mut kind = ShapeKind::Circle(0.0);
    let mut conversion = 0.0;
    let mut storekey: Option<Bytes> = None;
    let mut storedist = false;
    let base;
    if flags & RADIUS_COORDS != 0 {
        base = 6;
        match extract_lonlat(&args[2], &args[3]) {
            Ok(p) => center = p,
            Err(e) => return e,
        }
        match extract_distance(&args[4], &args[5]) {
            Ok((r, conv)) => {
                kind = ShapeKind::Circle(r);
                conversion = conv;
            }
            Err(e) => return e,
        }
    } else if flags & RADIUS_MEMBER != 0 && !exists {
        // Nothing to search: the options are still parsed to pick the reply.
        base = 5;
    } else if flags & RADIUS_MEMBER != 0 {
        base = 5;
        match member_pos(ctx, &args[2]) {
            Some(p) => center = p,
            None => return Reply::err(ERR_MEMBER),
        }
        match extract_distance(&args[3], &args[4]) {
            Ok((r, conv)) => {
                kind = ShapeKind::Circle(r);
                conversion = conv;
            }
            Err(e) => return e,
        }
    } else if flags & GEOSEARCHSTORE != 0 {
        base = 3;
        storekey = Some(args[1].clone());
    } else {
        base = 2;
    }

    let (mut withdist, mut withhash, mut withcoords) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let search_cmd = flags & GEOSEARCH != 0;
    let can_store = flags & (RADIUS_NOSTORE | GEOSEARCH) == 0;
    let remaining = args.len().saturating_sub(base);
    let mut i = 0;
    while i < remaining {
        let a = &args[base + i];
        let has = |k: usize| i + k < remaining;
        let arg = |k: usize| &args[base + i + k];
        if is(a, "withdist") {
            withdist = true;
        } else if is(a, "withhash") {
            withhash = true;
        } else if is(a, "withcoord") {
            withcoords = true;
        } else if is(a, "any") {
            any = true;
        } else if is(a, "asc") {
            sort = Sort::Asc;
        } else if is(a, "desc") {
            sort = Sort::Desc;
        } else if is(a, "count") && has(1) {
            match parse_i64(arg(1)) {
                None => return Reply::err(err::NOT_INT),
                Some(c) if c <= 0 => return Reply::err("ERR COUNT must be > 0"),
                Some(c) => count = c,
            }
            i += 1;
        } else if is(a, "store") && has(1) && can_store {
            storekey = Some(arg(1).clone());
            storedist = false;
            i += 1;
        } else if is(a, "storedist") && has(1) && can_store {
            storekey = Some(arg(1).clone());
            storedist = true;
            i += 1;
        } else if is(a, "storedist") && search_cmd && flags & GEOSEARCHSTORE != 0 {
            storedist = true;
        } else if is(a, "frommember") && has(1) && search_cmd && !fromloc {
            if exists {
                match member_pos(ctx, arg(1)) {
                    Some(p) => center = p,
                    None => return Reply::err(ERR_MEMBER),
                }
            }
            frommember = true;
            i += 1;
        } else if is(a, "fromlonlat") && has(2) && search_cmd && !frommember {
            match extract_lonlat(arg(1), arg(2)) {
                Ok(p) => center = p,
                Err(e) => return e,
            }
            fromloc = true;
            i += 2;
        } else if is(a, "byradius") && has(2) && search_cmd && !bybox {
            match extract_distance(arg(1), arg(2)) {
                Ok((r, conv)) => {
                    kind = ShapeKind::Circle(r);
                    conversion = conv;
                }
                Err(e) => return e,
            }
            byradius = true;
            i += 2;
        } else if is(a, "bybox") && has(3) && search_cmd && !byradius {
            match extract_box(arg(1), arg(2), arg(3)) {
                Ok((w, h, conv)) => {
                    kind = ShapeKind::Box(w, h);
                    conversion = conv;
                }
                Err(e) => return e,
            }
            bybox = true;
            i += 3;
        } else {
            return Reply::err(err::SYNTAX);
        }
        i += 1;
    }

    if storekey.is_some() && (withdist || withhash || withcoords) {
        return Reply::Error(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if flags & GEOSEARCHSTORE != 0 {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        ));
    }
    let name = || String::from_utf8_lossy(cstr(&args[0])).into_owned();
    if search_cmd && !(frommember || fromloc) {
        return Reply::Error(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            name()
        ));
    }
    if search_cmd && !(byradius || bybox) {
        return Reply::Error(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {}",
            name()
        ));
    }
    if any && count == 0 {
        return Reply::err("ERR the ANY argument requires COUNT argument");
    }

    if !exists {
        return match storekey {
            Some(dst) => {
                if ctx.delete(&dst) {
                    ctx.notify(notify::GENERIC, "del", &dst);
                    ctx.dirty(1);
                }
                Reply::Int(0)
            }
            None => Reply::Array(vec![]),
        };
    }

    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape {
        lon: center.0,
        lat: center.1,
        kind,
        conversion,
    };
    let limit = if any {
        usize::try_from(count).unwrap_or(usize::MAX)
    } else {
        0
    };
    let mut points = match zset_at(ctx, &key) {
        Some(z) => search(z, &shape, limit),
        None => vec![],
    };
    if points.is_empty() && storekey.is_none() {
        return Reply::Array(vec![]);
    }

    let total = points.len();
    let returned = if count == 0 || (total as u64) < count as u64 {
        total
    } else {
        count as usize
    };
    if sort != Sort::None {
        let desc = |a: &Point, b: &Point| -cmp_asc(a, b);
        let cmp: &dyn Fn(&Point, &Point) -> i32 = if sort == Sort::Asc { &cmp_asc } else { &desc };
        if returned == total {
            merge_sort(&mut points, cmp);
        } else {
            pqsort(&mut points, 0, returned - 1, cmp);
        }
    }
    points.truncate(returned);
    for p in points.iter_mut() {
        p.dist /= conversion;
    }

    match storekey {
        None => {
            let options = usize::from(withdist) + usize::from(withhash) + usize::from(withcoords);
            let out = points
                .into_iter()
                .map(|p| {
                    if options == 0 {
                        return Reply::Bulk(p.member);
                    }
                    let mut item = Vec::with_capacity(options + 1);
                    item.push(Reply::Bulk(p.member));
                    if withdist {
                        item.push(Reply::Bulk(Bytes::from(fmt_distance(p.dist))));
                    }
                    if withhash {
                        item.push(Reply::Int(geohash::cvtt_i64(p.score)));
                    }
                    if withcoords {
                        item.push(coords_reply(ctx, p.lon, p.lat));
                    }
                    Reply::Array(item)
                })
                .collect();
            Reply::Array(out)
        }
        Some(dst) => {
            if returned > 0 {
                let pairs: Vec<(Bytes, f64)> = points
                    .into_iter()
                    .map(|p| (p.member, if storedist { p.dist } else { p.score }))
                    .collect();
                let z = ZSet::from_pairs(pairs, crate::cmd::zset::zset_limits(ctx));
                ctx.set_key(dst.clone(), Value::ZSet(Shared::new(z)));
                let event = if search_cmd {
                    "geosearchstore"
                } else {
                    "georadiusstore"
                };
                ctx.notify(notify::ZSET, event, &dst);
                ctx.dirty(returned as u64);
                ctx.ready(&dst);
            } else if ctx.delete(&dst) {
                ctx.notify(notify::GENERIC, "del", &dst);
                ctx.dirty(1);
            }
            Reply::Int(returned as i64)
        }
    }
}

fn georadius(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    georadius_generic(ctx, args, 1, RADIUS_COORDS)
}
fn georadiusbymember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    georadius_generic(ctx, args, 1, RADIUS_MEMBER)
}
fn georadius_ro(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    georadius_generic(ctx, args, 1, RADIUS_COORDS | RADIUS_NOSTORE)
}
fn georadiusbymember_ro(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    georadius_generic(ctx, args, 1, RADIUS_MEMBER | RADIUS_NOSTORE)
}
fn geosearch(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    georadius_generic(ctx, args, 1, GEOSEARCH)
}
fn geosearchstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    georadius_generic(ctx, args, 2, GEOSEARCH | GEOSEARCHSTORE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn pt(d: f64, tag: u8) -> Point {
        Point {
            member: Bytes::from(vec![tag]),
            lon: 0.0,
            lat: 0.0,
            dist: d,
            score: 0.0,
        }
    }

    #[test]
    fn doubles_parse_as_strtod() {
        assert_eq!(parse_double(b"1.5"), Some(1.5));
        assert_eq!(parse_double(b"-0"), Some(-0.0));
        assert_eq!(parse_double(b"+.5"), Some(0.5));
        assert_eq!(parse_double(b"1."), Some(1.0));
        assert_eq!(parse_double(b"1e3"), Some(1000.0));
        assert_eq!(parse_double(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_double(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_double(b"0x10"), Some(16.0));
        assert_eq!(parse_double(b"0x1p-2"), Some(0.25));
        assert_eq!(parse_double(b"0X1.8P1"), Some(3.0));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"-nan",
            b"1e400",
            b"1e-400",
            b"0x",
            b"1e",
            b".",
            b"abc",
            b"1\x002",
            b"0x1p99999",
        ] {
            assert_eq!(parse_double(bad), None, "{bad:?}");
        }
        assert_eq!(parse_double(b"0e-400"), Some(0.0));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_human(13.361389338970184), "13.36138933897018433");
        assert_eq!(fmt_human(180.0), "180");
        assert_eq!(fmt_human(-1e-30), "0");
        assert_eq!(fmt_distance(166274.15156960033), "166274.1516");
        assert_eq!(fmt_distance(0.03125), "0.0312");
        assert_eq!(fmt_c_f(200.0), "200.000000");
        assert_eq!(fmt_c_f(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn option_words_stop_at_nul() {
        assert!(is(b"WithDist", "withdist"));
        assert!(is(b"m\x00junk", "m"));
        assert!(!is(b"mi", "m"));
    }

    thread_local! {
        /// (current, deepest) nesting of `pqsort` calls on this thread.
        static PQSORT_DEPTH: std::cell::Cell<(usize, usize)> =
            const { std::cell::Cell::new((0, 0)) };
    }

    /// Counts `pqsort`'s nesting while alive.
    pub(super) struct PqsortDepth;

    impl PqsortDepth {
        pub(super) fn enter() -> PqsortDepth {
            PQSORT_DEPTH.with(|d| {
                let (cur, max) = d.get();
                d.set((cur + 1, max.max(cur + 1)));
            });
            PqsortDepth
        }
    }

    impl Drop for PqsortDepth {
        fn drop(&mut self) {
            PQSORT_DEPTH.with(|d| {
                let (cur, max) = d.get();
                d.set((cur - 1, max));
            });
        }
    }

    /// McIlroy's adversary ("A Killer Adversary for Quicksort"): a comparison that decides
    /// values only as the sort asks, always so as to make its partitions as lopsided as it
    /// can. Against it `pqsort` stays within log2(n) levels (and still sorts).
    #[test]
    fn pqsort_depth_stays_logarithmic_against_an_adversary() {
        // Both orientations: the lopsided side lands left in one, right in the other.
        adversary_run(1);
        adversary_run(-1);
    }

    fn adversary_run(sign: i32) {
        let n = 4096usize;
        let gas = n as i64;
        let val = std::cell::RefCell::new(vec![gas; n]);
        let solid = std::cell::Cell::new(0i64);
        let candidate = std::cell::Cell::new(0usize);
        // Each point's index rides in its longitude.
        let cmp = |a: &Point, b: &Point| -> i32 {
            let (x, y) = (a.lon as usize, b.lon as usize);
            let mut v = val.borrow_mut();
            if v[x] == gas && v[y] == gas {
                let f = if x == candidate.get() { x } else { y };
                v[f] = solid.get();
                solid.set(solid.get() + 1);
            }
            if v[x] == gas {
                candidate.set(x);
            } else if v[y] == gas {
                candidate.set(y);
            }
            sign * (v[x] - v[y]).signum() as i32
        };
        let mut pts: Vec<Point> = (0..n)
            .map(|i| Point {
                member: Bytes::new(),
                lon: i as f64,
                lat: 0.0,
                dist: 0.0,
                score: 0.0,
            })
            .collect();
        PQSORT_DEPTH.with(|d| d.set((0, 0)));
        pqsort(&mut pts, 0, n - 1, &cmp);
        let deepest = PQSORT_DEPTH.with(|d| d.get().1);
        assert!(
            deepest <= 13,
            "pqsort nested {deepest} deep for {n} points (sign {sign})"
        );
        assert!(pts.windows(2).all(|w| cmp(&w[0], &w[1]) <= 0), "not sorted");
    }

    #[test]
    fn pqsort_sorts_the_window() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for n in [0usize, 1, 5, 7, 8, 30, 41, 100, 257] {
            for _ in 0..20 {
                let mut v: Vec<Point> = (0..n)
                    .map(|i| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        pt((seed % 17) as f64, i as u8)
                    })
                    .collect();
                let mut sorted = v.clone();
                merge_sort(&mut sorted, &cmp_asc);
                if n == 0 {
                    continue;
                }
                let hi = (seed as usize) % n;
                pqsort(&mut v, 0, hi, &cmp_asc);
                for k in 0..=hi {
                    assert_eq!(v[k].dist, sorted[k].dist, "n={n} hi={hi} k={k}");
                }
            }
        }
    }

    quickcheck! {
        fn parse_double_never_panics(s: Vec<u8>) -> bool {
            let _ = parse_double(&s);
            let mut t = b"0x".to_vec();
            t.extend_from_slice(&s);
            let _ = parse_double(&t);
            true
        }

        fn sorts_never_panic(ds: Vec<f64>, hi: usize) -> bool {
            let mut v: Vec<Point> = ds.iter().enumerate().map(|(i, &d)| pt(d, i as u8)).collect();
            let mut w = v.clone();
            merge_sort(&mut w, &cmp_asc);
            if !v.is_empty() {
                let hi = hi % v.len();
                pqsort(&mut v, 0, hi, &|a: &Point, b: &Point| -cmp_asc(a, b));
            }
            true
        }
    }
}
