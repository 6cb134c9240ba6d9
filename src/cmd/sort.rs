//! Commands: SORT and SORT_RO over lists, sets and sorted sets — BY (with `*` and `->field`
//! patterns; a pattern without `*` means "don't sort"), LIMIT, GET (including `#`), ASC/DESC,
//! ALPHA, STORE — as Redis 7.0's `sortCommandGeneric`.
//!
//! Elements compare numerically (ties broken by the elements' bytes) or, with ALPHA, by bytes
//! (the C locale's `strcoll`). Missing BY values sort as 0 (numeric) or first (ALPHA).

use bytes::Bytes;

use crate::cmd::{cmd, err, flags::*, CommandSpec, K1};
use crate::ctx::{notify, Ctx};
use crate::keyspace::Value;
use crate::resp::Reply;
use crate::types::list::List;
use crate::util::{parse_f64, parse_i64};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("sort", -2, WRITE | DENYOOM, K1, "generic", sort),
    cmd("sort_ro", -2, READONLY, K1, "generic", sort_ro),
];

fn sort(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    sort_generic(ctx, args, true)
}

/// Redis's `lookupKeyByPattern`: the string (or hash field) named by `pattern` with its first
/// `*` replaced by `subst`; `#` is `subst` itself.
fn lookup_by_pattern(ctx: &mut Ctx, pattern: &[u8], subst: &[u8]) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(Bytes::copy_from_slice(subst));
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let (postfix, field) = match after.windows(2).position(|w| w == b"->") {
        Some(p) if p + 2 < after.len() => (&after[..p], Some(&after[p + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(postfix);
    let o = ctx.lookup(&key)?;
    match (&o.value, field) {
        (Value::Str(s), None) => Some(s.to_bytes()),
        (Value::Hash(h), Some(f)) => h.get(f),
        _ => None,
    }
}

struct Item {
    elem: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

fn sort_generic(ctx: &mut Ctx, args: &[Bytes], readonly: bool) -> Reply {
    let key = &args[1];
    let (mut desc, mut alpha) = (false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut dontsort = false;
    let mut sortby: Option<Bytes> = None;
    let mut store: Option<Bytes> = None;
    let mut gets: Vec<Bytes> = Vec::new();
    // Keys named by BY and GET patterns are not among the call's keys: Redis reads them only
    // for a user allowed to read every key (asked once, when a pattern needs it).
    let mut full_read: Option<bool> = None;
    let mut may_read_any_key = |ctx: &Ctx| {
        *full_read.get_or_insert_with(|| {
            let name: &[u8] = if readonly { b"sort_ro" } else { b"sort" };
            crate::cmd::table().get(name).is_some_and(|spec| {
                ctx.client
                    .user
                    .unrestricted_key_access(spec, args, crate::acl::KEY_READ)
            })
        })
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = args[j].to_ascii_lowercase();
        if a == b"asc" {
            desc = false;
        } else if a == b"desc" {
            desc = true;
        } else if a == b"alpha" {
            alpha = true;
        } else if a == b"limit" && left >= 2 {
            match (parse_i64(&args[j + 1]), parse_i64(&args[j + 2])) {
                (Some(s), Some(c)) => {
                    limit_start = s;
                    limit_count = c;
                }
                _ => return Reply::err(err::NOT_INT),
            }
            j += 2;
        } else if a == b"store" && left >= 1 && !readonly {
            store = Some(args[j + 1].clone());
            j += 1;
        } else if a == b"by" && left >= 1 {
            let p = args[j + 1].clone();
            // As C's strchr: up to a NUL byte.
            if !p
                .split(|&b| b == 0)
                .next()
                .is_some_and(|p| p.contains(&b'*'))
            {
                dontsort = true;
            } else if !may_read_any_key(ctx) {
                return Reply::err(
                    "ERR BY option of SORT denied due to insufficient ACL permissions.",
                );
            }
            sortby = Some(p);
            j += 1;
        } else if a == b"get" && left >= 1 {
            if !may_read_any_key(ctx) {
                return Reply::err(
                    "ERR GET option of SORT denied due to insufficient ACL permissions.",
                );
            }
            gets.push(args[j + 1].clone());
            j += 1;
        } else {
            return Reply::err(err::SYNTAX);
        }
        j += 1;
    }

    // Snapshot the elements in the container's order.
    enum Kind {
        List,
        Set,
        ZSet,
    }
    let (kind, elems): (Kind, Vec<Bytes>) = match ctx.lookup(key) {
        None => (Kind::List, vec![]),
        Some(o) => match &o.value {
            Value::List(l) => (Kind::List, l.iter().collect()),
            Value::Set(s) => (Kind::Set, s.iter().collect()),
            Value::ZSet(z) => (Kind::ZSet, z.iter().map(|(m, _)| m).collect()),
            _ => return Reply::err(err::WRONGTYPE),
        },
    };
    // A set has no order of its own: sort it when the result is stored, or goes to a script
    // (Redis's CLIENT_SCRIPT rule, so a script sees the same order everywhere).
    let in_script = ctx.srv.script_run.is_some();
    if dontsort && matches!(kind, Kind::Set) && (store.is_some() || in_script) {
        dontsort = false;
        alpha = true;
        sortby = None;
    }
    let n = elems.len() as i64;
    let mut start = limit_start.max(0);
    let mut end = if limit_count < 0 {
        n - 1
    } else {
        start.saturating_add(limit_count) - 1
    };
    if start >= n {
        start = n - 1;
        end = n - 2;
    }
    if end >= n {
        end = n - 1;
    }

    let mut items: Vec<Item> = if dontsort && matches!(kind, Kind::List | Kind::ZSet) {
        // Direct range in the container order (reversed for DESC).
        let mut v = Vec::new();
        if end >= start && n > 0 {
            let count = (end - start + 1) as usize;
            let mut ordered = elems;
            if desc {
                ordered.reverse();
            }
            v = ordered
                .into_iter()
                .skip(start as usize)
                .take(count)
                .map(|elem| Item {
                    elem,
                    score: 0.0,
                    cmp: None,
                })
                .collect();
            end -= start;
            start = 0;
        }
        v
    } else {
        elems
            .into_iter()
            .map(|elem| Item {
                elem,
                score: 0.0,
                cmp: None,
            })
            .collect()
    };

    if !dontsort {
        let mut conversion_error = false;
        for it in items.iter_mut() {
            let byval = match &sortby {
                Some(p) => match lookup_by_pattern(ctx, p, &it.elem) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if alpha {
                if sortby.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match parse_sort_score(&byval) {
                    Some(s) => it.score = s,
                    None => conversion_error = true,
                }
            }
        }
        if conversion_error {
            return Reply::err("ERR One or more scores can't be converted into double");
        }
        let by_pattern = sortby.is_some();
        items.sort_by(|a, b| {
            let o = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.elem.cmp(&b.elem))
            } else if by_pattern {
                match (&a.cmp, &b.cmp) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => c_strcmp(x, y),
                }
            } else {
                c_strcmp(&a.elem, &b.elem)
            };
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }

    // Output [start, end].
    let window: Vec<Bytes> = if end >= start && start >= 0 && !items.is_empty() {
        items
            .into_iter()
            .skip(start as usize)
            .take((end - start + 1) as usize)
            .map(|i| i.elem)
            .collect()
    } else {
        vec![]
    };
    let mut out: Vec<Option<Bytes>> = Vec::new();
    if gets.is_empty() {
        out.extend(window.into_iter().map(Some));
    } else {
        for e in &window {
            for g in &gets {
                out.push(lookup_by_pattern(ctx, g, e));
            }
        }
    }
    match store {
        None => Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                .collect(),
        ),
        Some(dst) => {
            let len = out.len();
            if len > 0 {
                let l = List::from_items_with(
                    out.into_iter().map(Option::unwrap_or_default).collect(),
                    ctx.cfg_i64("list-max-listpack-size"),
                    ctx.cfg_i64("list-compress-depth"),
                );
                ctx.set_key(dst.clone(), Value::List(crate::keyspace::Shared::new(l)));
                ctx.notify(notify::LIST, "sortstore", &dst);
                ctx.dirty(len as u64);
                ctx.ready(&dst);
            } else {
                ctx.expire_if_needed(&dst);
                if ctx.delete(&dst) {
                    ctx.notify(notify::GENERIC, "del", &dst);
                    ctx.dirty(1);
                }
            }
            Reply::Int(len as i64)
        }
    }
}

/// `strtod` over the whole value, refusing NaN (Redis's SORT numeric conversion).
fn parse_sort_score(v: &[u8]) -> Option<f64> {
    if let Some(i) = parse_i64(v) {
        return Some(i as f64);
    }
    // strtod accepts leading whitespace; a trailing part makes it fail.
    let t = v
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .map_or(&v[v.len()..], |p| &v[p..]);
    parse_f64(t)
}

/// C `strcmp` on NUL-terminated copies: bytes after an embedded NUL are ignored.
fn c_strcmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let cut = |x: &[u8]| -> usize { x.iter().position(|&c| c == 0).unwrap_or(x.len()) };
    a[..cut(a)].cmp(&b[..cut(b)])
}
