//! Redis 7.0's key specs and how Redis finds a call's keys with them.
//!
//! The data is [`super::keyspecs::COMMANDS`], generated from Redis 7.0.15's command descriptions
//! (scripts/gen-keyspecs.py): for every command and subcommand its key specs as Redis declares
//! them and the key-finding procedure it has, if any. This module answers, as redis-server:
//!
//! - COMMAND INFO's `key_specs` and legacy `first/last/step` + `movablekeys` ([`CommandKeys::legacy_range`]);
//! - which arguments of a call are keys and with which flags ([`CommandKeys::keys`], Redis's
//!   `getKeysFromCommandWithSpecs`): the key specs when they are complete and their flags fixed,
//!   else the command's key-finding procedure, which resolves VARIABLE_FLAGS per call (SET with
//!   GET, BITFIELD with SET/INCRBY, SORT with STORE, …).
//!
//! The ACL checks each key against the flags of the key spec that found it (src/acl.rs), and
//! COMMAND GETKEYS[ANDFLAGS] prints them. The dispatch path keeps `CommandSpec::key_positions`.
//! Everything here bounds its loops by `argv.len()` and never indexes out of range, whatever the
//! arguments (numkeys of any size, keywords missing or last).

use bytes::Bytes;

/// Key spec flags, with Redis's bit values (CMD_KEY_*).
pub mod flags {
    pub const RO: u16 = 1 << 0;
    pub const RW: u16 = 1 << 1;
    pub const OW: u16 = 1 << 2;
    pub const RM: u16 = 1 << 3;
    pub const ACCESS: u16 = 1 << 4;
    pub const UPDATE: u16 = 1 << 5;
    pub const INSERT: u16 = 1 << 6;
    pub const DELETE: u16 = 1 << 7;
    pub const NOT_KEY: u16 = 1 << 8;
    pub const INCOMPLETE: u16 = 1 << 9;
    pub const VARIABLE_FLAGS: u16 = 1 << 10;

    /// The names COMMAND INFO and GETKEYSANDFLAGS print, in Redis's order.
    pub const NAMES: &[(u16, &str)] = &[
        (RO, "RO"),
        (RW, "RW"),
        (OW, "OW"),
        (RM, "RM"),
        (ACCESS, "access"),
        (UPDATE, "update"),
        (INSERT, "insert"),
        (DELETE, "delete"),
        (NOT_KEY, "not_key"),
        (INCOMPLETE, "incomplete"),
        (VARIABLE_FLAGS, "variable_flags"),
    ];
}

use flags::*;

/// Where the search for a spec's keys begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bs {
    /// At this argument.
    Index(i32),
    /// After this keyword, searched from `startfrom` (negative: from the end, backwards).
    Keyword(&'static str, i32),
    Unknown,
}

/// How a spec's keys are found from where the search began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fk {
    /// `lastkey` relative to the first key (negative: from the end of argv); `limit` > 0 with
    /// `lastkey` -1: 1/limit of the remaining arguments.
    Range {
        lastkey: i32,
        step: i32,
        limit: i32,
    },
    /// The key count at `keynumidx`, the first key at `firstkey` (both relative to the begin).
    Keynum {
        keynumidx: i32,
        firstkey: i32,
        step: i32,
    },
    Unknown,
}

#[derive(Clone, Copy, Debug)]
pub struct KeySpecDef {
    /// Empty: none.
    pub notes: &'static str,
    pub flags: u16,
    pub bs: Bs,
    pub fk: Fk,
}

/// Redis's key-finding procedures (`get_keys_function` in its command descriptions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gk {
    BitfieldGetKeys,
    BlmpopGetKeys,
    BzmpopGetKeys,
    EvalGetKeys,
    FunctionGetKeys,
    GeoradiusGetKeys,
    LmpopGetKeys,
    MigrateGetKeys,
    SetGetKeys,
    SintercardGetKeys,
    SortGetKeys,
    SortROGetKeys,
    XreadGetKeys,
    ZmpopGetKeys,
    ZunionInterDiffGetKeys,
    ZunionInterDiffStoreGetKeys,
}

/// One command or subcommand (`parent|sub`) of Redis 7.0.
#[derive(Debug)]
pub struct CommandKeys {
    pub name: &'static str,
    pub getkeys: Option<Gk>,
    pub specs: &'static [KeySpecDef],
}

/// A key argument of a call: its index in argv and the flags of the spec that found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: u16,
}

/// The key specs of a command or subcommand by its full lower-case name (`get`, `object|encoding`).
pub fn lookup(fullname: &str) -> Option<&'static CommandKeys> {
    let all = super::keyspecs::COMMANDS;
    all.binary_search_by(|c| c.name.cmp(fullname))
        .ok()
        .map(|i| &all[i])
}

/// `strcasecmp(arg, word) == 0` as C sees `arg`: up to its first NUL byte.
fn c_eq(arg: &[u8], word: &str) -> bool {
    let end = arg.iter().position(|&b| b == 0).unwrap_or(arg.len());
    arg[..end].eq_ignore_ascii_case(word.as_bytes())
}

/// C's `atoi` (leading blanks, a sign, digits; anything else ends it; 0 if none), saturated.
fn atoi(arg: &[u8]) -> i64 {
    let mut i = 0;
    while i < arg.len() && matches!(arg[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match arg.get(i) {
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
    let mut v: i64 = 0;
    while let Some(d) = arg.get(i).filter(|d| d.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    if neg {
        -v
    } else {
        v
    }
}

impl CommandKeys {
    /// Some spec is a real key (not NOT_KEY).
    fn has_key_spec(&self) -> bool {
        self.specs.iter().any(|s| s.flags & NOT_KEY == 0)
    }

    /// Redis's `doesCommandHaveKeys`: a key-finding procedure or a real key spec.
    pub fn has_keys(&self) -> bool {
        self.getkeys.is_some() || self.has_key_spec()
    }

    /// The keys of `argv` (argv[0] the command; a subcommand's name at argv[1]) with their
    /// flags, as Redis's `getKeysFromCommandWithSpecs` finds them: the key specs when the
    /// command has real ones without VARIABLE_FLAGS and they all apply, else its key-finding
    /// procedure. Empty when the arguments do not hold the keys the specs expect.
    pub fn keys(&self, argv: &[Bytes], out: &mut Vec<KeyRef>) {
        out.clear();
        let varflags = self.specs.iter().any(|s| s.flags & VARIABLE_FLAGS != 0);
        if self.has_key_spec() && !varflags && self.keys_by_specs(argv, out) {
            return;
        }
        out.clear();
        if let Some(gk) = self.getkeys {
            getkeys_proc(gk, argv, out);
        }
    }

    /// Redis's `getKeysUsingKeySpecs` without NOT_KEY specs: false (and `out` meaningless)
    /// when a spec's arguments are out of range or INCOMPLETE.
    fn keys_by_specs(&self, argv: &[Bytes], out: &mut Vec<KeyRef>) -> bool {
        let argc = argv.len() as i64;
        for spec in self.specs {
            if spec.flags & NOT_KEY != 0 {
                continue;
            }
            let mut first: i64 = match spec.bs {
                Bs::Index(pos) => i64::from(pos),
                Bs::Keyword(word, startfrom) => {
                    let startfrom = i64::from(startfrom);
                    let start = if startfrom > 0 {
                        startfrom
                    } else {
                        argc + startfrom
                    };
                    let end = if startfrom > 0 { argc - 1 } else { 1 };
                    let mut found = 0;
                    let mut i = start;
                    while i != end {
                        if i >= argc || i < 1 {
                            break;
                        }
                        if c_eq(&argv[i as usize], word) {
                            found = i + 1;
                            break;
                        }
                        i = if start <= end { i + 1 } else { i - 1 };
                    }
                    if found == 0 {
                        continue; // keyword not found: no keys from this spec
                    }
                    found
                }
                Bs::Unknown => return false,
            };
            let (last, step) = match spec.fk {
                Fk::Range {
                    lastkey,
                    step,
                    limit,
                } => {
                    let (lastkey, limit) = (i64::from(lastkey), i64::from(limit));
                    let last = if lastkey >= 0 {
                        first + lastkey
                    } else if limit == 0 {
                        argc + lastkey
                    } else {
                        first + ((argc - first) / limit + lastkey)
                    };
                    (last, i64::from(step))
                }
                Fk::Keynum {
                    keynumidx,
                    firstkey,
                    step,
                } => {
                    let keynumidx = i64::from(keynumidx);
                    if keynumidx >= argc {
                        return false;
                    }
                    let Some(numkeys) = argv
                        .get((first + keynumidx) as usize)
                        .and_then(|a| crate::util::parse_i64(a))
                        .filter(|&n| n >= 0)
                    else {
                        return false;
                    };
                    first += i64::from(firstkey);
                    // Redis adds the count as a C int.
                    (first + i64::from(numkeys as i32) - 1, i64::from(step))
                }
                Fk::Unknown => return false,
            };
            if last >= argc || last < first || first >= argc {
                return false;
            }
            let mut i = first;
            while i <= last {
                if i >= 0 && i < argc {
                    out.push(KeyRef {
                        pos: i as usize,
                        flags: spec.flags,
                    });
                }
                i += step.max(1);
            }
            if spec.flags & INCOMPLETE != 0 {
                return false;
            }
        }
        true
    }

    /// COMMAND INFO's legacy (first, last, step) and whether the command has `movablekeys`
    /// (Redis's `populateCommandLegacyRangeSpec`).
    pub fn legacy_range(&self) -> (i64, i64, i64, bool) {
        let mut movable = false;
        if self.specs.is_empty() {
            return (0, 0, 0, false);
        }
        if let [s] = self.specs {
            if let (Bs::Index(pos), Fk::Range { lastkey, step, .. }) = (s.bs, s.fk) {
                let last = if lastkey < 0 { lastkey } else { pos + lastkey };
                let incomplete = s.flags & INCOMPLETE != 0;
                return (pos.into(), last.into(), step.into(), incomplete);
            }
        }
        let (mut first, mut last) = (i64::MAX, 0u32);
        let mut prev_last = 0u32;
        for s in self.specs {
            let (Bs::Index(pos), Fk::Range { lastkey, step, .. }) = (s.bs, s.fk) else {
                movable = true;
                continue;
            };
            if step != 1 || (prev_last != 0 && i64::from(prev_last) != i64::from(pos) - 1) {
                movable = true;
                continue;
            }
            if s.flags & INCOMPLETE != 0 {
                movable = true;
            }
            first = first.min(pos.into());
            let abs = if lastkey >= 0 { lastkey + pos } else { lastkey };
            // Redis compares as unsigned, so a negative (from the end) last key wins.
            last = last.max(abs as u32);
            prev_last = last;
        }
        if first == i64::MAX {
            return (0, 0, 0, true);
        }
        // Printed as a C int: a negative (from the end) last key stays negative.
        (first, i64::from(last as i32), 1, movable)
    }
}

/// Redis's key-finding procedures (db.c), with the flags they give (0 where Redis gives none:
/// procedures of commands whose key specs are complete).
fn getkeys_proc(gk: Gk, argv: &[Bytes], out: &mut Vec<KeyRef>) {
    let argc = argv.len();
    let mut push = |pos: usize, flags: u16| {
        if pos < argc {
            out.push(KeyRef { pos, flags });
        }
    };
    // (destination, numkeys, first key) for the `genericGetKeys` family.
    let generic = |store: usize, count: usize, first: usize| (store, count, first);
    let g = match gk {
        Gk::SintercardGetKeys
        | Gk::ZunionInterDiffGetKeys
        | Gk::LmpopGetKeys
        | Gk::ZmpopGetKeys => Some(generic(0, 1, 2)),
        Gk::ZunionInterDiffStoreGetKeys => Some(generic(1, 2, 3)),
        Gk::EvalGetKeys | Gk::FunctionGetKeys | Gk::BlmpopGetKeys | Gk::BzmpopGetKeys => {
            Some(generic(0, 2, 3))
        }
        _ => None,
    };
    if let Some((store, count, first)) = g {
        let Some(arg) = argv.get(count) else {
            return;
        };
        // atoi truncated to a C int, as Redis.
        let num = i64::from(atoi(arg) as i32);
        if num < 1 || num > (argc as i64 - first as i64) {
            return;
        }
        for i in 0..num as usize {
            push(first + i, 0);
        }
        if store != 0 {
            push(store, 0);
        }
        return;
    }
    match gk {
        Gk::SortROGetKeys => push(1, RO | ACCESS),
        Gk::SortGetKeys => {
            push(1, RO | ACCESS);
            let mut store = None;
            let mut i = 2;
            while i < argc {
                let a = &argv[i];
                if c_eq(a, "limit") {
                    i += 2;
                } else if c_eq(a, "get") || c_eq(a, "by") {
                    i += 1;
                } else if c_eq(a, "store") && i + 1 < argc {
                    store = Some(i + 1);
                }
                i += 1;
            }
            if let Some(p) = store {
                push(p, OW | UPDATE);
            }
        }
        Gk::MigrateGetKeys => {
            let (mut first, mut num) = (3usize, 1usize);
            if argc > 6 {
                let mut i = 6;
                while i < argc {
                    let a = &argv[i];
                    if c_eq(a, "keys") {
                        if !argv[3].is_empty() {
                            num = 0; // a syntax error MIGRATE reports itself
                        } else {
                            first = i + 1;
                            num = argc - first;
                        }
                        break;
                    }
                    if c_eq(a, "auth") {
                        i += 1;
                    } else if c_eq(a, "auth2") {
                        i += 2;
                    }
                    i += 1;
                }
            }
            for p in first..first + num {
                push(p, RW | ACCESS | DELETE);
            }
        }
        Gk::GeoradiusGetKeys => {
            let mut stored = None;
            let mut i = 5;
            while i < argc {
                let a = &argv[i];
                if (c_eq(a, "store") || c_eq(a, "storedist")) && i + 1 < argc {
                    stored = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            push(1, 0);
            if let Some(p) = stored {
                push(p, 0);
            }
        }
        Gk::XreadGetKeys => {
            let mut streams = None;
            let mut i = 1;
            while i < argc {
                let a = &argv[i];
                if c_eq(a, "block") || c_eq(a, "count") {
                    i += 1;
                } else if c_eq(a, "group") {
                    i += 2;
                } else if c_eq(a, "noack") {
                } else if c_eq(a, "streams") {
                    streams = Some(i);
                    break;
                } else {
                    break;
                }
                i += 1;
            }
            let Some(s) = streams else { return };
            let num = argc - s - 1;
            if num == 0 || !num.is_multiple_of(2) {
                return;
            }
            for p in s + 1..argc - num / 2 {
                push(p, 0);
            }
        }
        Gk::SetGetKeys => {
            let get = argv.iter().skip(3).any(|a| {
                a.len() >= 3
                    && a[..3].eq_ignore_ascii_case(b"get")
                    && a.get(3).is_none_or(|&b| b == 0)
            });
            push(
                1,
                if get {
                    RW | ACCESS | UPDATE
                } else {
                    OW | UPDATE
                },
            );
        }
        Gk::BitfieldGetKeys => {
            let mut readonly = true;
            let mut i = 2;
            while i < argc {
                let rem = argc - i - 1;
                let a = &argv[i];
                if c_eq(a, "get") && rem >= 2 {
                    i += 2;
                } else if (c_eq(a, "set") || c_eq(a, "incrby")) && rem >= 3 {
                    readonly = false;
                    break;
                } else if c_eq(a, "overflow") && rem >= 1 {
                    i += 1;
                } else {
                    readonly = false; // a syntax error: assume the worst, as Redis
                    break;
                }
                i += 1;
            }
            push(
                1,
                if readonly {
                    RO | ACCESS
                } else {
                    RW | ACCESS | UPDATE
                },
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn keys(name: &str, call: &str) -> Vec<(usize, u16)> {
        let mut out = Vec::new();
        lookup(name).unwrap().keys(&argv(call), &mut out);
        out.into_iter().map(|k| (k.pos, k.flags)).collect()
    }

    #[test]
    fn table_is_sorted_and_complete() {
        let all = crate::cmd::keyspecs::COMMANDS;
        assert!(all.windows(2).all(|w| w[0].name < w[1].name));
        assert!(lookup("get").is_some() && lookup("object|encoding").is_some());
        assert!(lookup("nosuch").is_none());
        // Every command of the table is Redis 7.0's but WAITAOF (Redis 7.2).
        let missing: Vec<&str> = crate::cmd::table()
            .all
            .iter()
            .map(|c| c.name)
            .filter(|n| lookup(n).is_none())
            .collect();
        assert_eq!(missing, vec!["waitaof"]);
    }

    #[test]
    fn variable_flags_resolve_per_call() {
        assert_eq!(keys("set", "set k v"), vec![(1, OW | UPDATE)]);
        assert_eq!(keys("set", "set k v GET"), vec![(1, RW | ACCESS | UPDATE)]);
        assert_eq!(
            keys("bitfield", "bitfield k get u4 0"),
            vec![(1, RO | ACCESS)]
        );
        assert_eq!(
            keys("bitfield", "bitfield k get u4 0 set u4 0 1"),
            vec![(1, RW | ACCESS | UPDATE)]
        );
        assert_eq!(
            keys("sort", "sort k limit 0 1 store d"),
            vec![(1, RO | ACCESS), (6, OW | UPDATE)]
        );
    }

    #[test]
    fn specs_find_keys_and_bad_counts_find_none() {
        assert_eq!(
            keys("lmove", "lmove a b left right"),
            vec![(1, RW | ACCESS | DELETE), (2, RW | INSERT)]
        );
        assert_eq!(
            keys("eval", "eval s 2 a b"),
            vec![(3, RW | ACCESS | UPDATE), (4, RW | ACCESS | UPDATE)]
        );
        assert_eq!(keys("eval", "eval s 3 a b"), vec![]);
        assert_eq!(keys("eval", "eval s 99999999999999999999 a"), vec![]);
        assert_eq!(keys("zunionstore", "zunionstore d 0 a"), vec![]);
        assert_eq!(keys("spublish", "spublish ch m"), vec![]);
        assert_eq!(
            keys("xread", "xread streams a b 0 0"),
            vec![(2, RO | ACCESS), (3, RO | ACCESS)]
        );
        assert_eq!(
            // Redis's spec takes half the arguments after STREAMS, rounded down.
            keys("xread", "xread streams a b 0"),
            vec![(2, RO | ACCESS)]
        );
    }

    #[test]
    fn any_arguments_give_keys_in_range_and_never_panic() {
        let words: [&[u8]; 12] = [
            b"k",
            b"-1",
            b"0",
            b"1",
            b"2",
            b"99999999999",
            b"store",
            b"keys",
            b"streams",
            b"get",
            b"",
            b"STORE\0x",
        ];
        let mut out = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for c in crate::cmd::keyspecs::COMMANDS {
            for n in 0..12 {
                for _ in 0..20 {
                    let mut argv = vec![Bytes::from_static(c.name.as_bytes())];
                    for _ in 0..n {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        argv.push(Bytes::from_static(words[(seed % 12) as usize]));
                    }
                    c.keys(&argv, &mut out);
                    assert!(
                        out.iter().all(|k| k.pos >= 1 && k.pos < argv.len()),
                        "{}",
                        c.name
                    );
                }
            }
            let _ = c.legacy_range();
        }
    }
}
