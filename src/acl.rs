//! ACL users (Redis 7.0): the user table, the rule language of ACL SETUSER / `user` lines /
//! aclfile, the permission check of the command path, and the ACL LOG.
//!
//! Every command and subcommand of the command table gets an id (table order, subcommands
//! after their parents); a user's allowed commands are a bitmap over those ids, built from the
//! same ACL categories COMMAND INFO reports (`cmd::server::command::acl_categories`). Clients
//! hold an `Arc<User>`: a change to a user replaces the `Arc` in every client authenticated as
//! it, and the command path only reads `User::superuser` (allcommands + allkeys + allchannels)
//! before it does any other work, so the default user of a server without ACL rules pays one
//! load and one branch per command.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::cmd::keyfind::{self, CommandKeys, KeyRef};
use crate::cmd::{table, CommandSpec};
use crate::util::glob_match;

/// ACL categories in Redis 7.0's order (ACL CAT, the describe algorithm).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Entries of the ACL LOG grouped together when they repeat within this time (Redis's
/// ACL_LOG_GROUPING_MAX_TIME_DELTA).
const LOG_GROUPING_MS: i64 = 60_000;

pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// One command or subcommand of the table, as the ACL sees it.
pub struct AclCmd {
    /// `get`, `config|get`.
    pub fullname: String,
    /// Bit i set: in `CATEGORIES[i]`.
    pub cats: u32,
    pub parent: Option<usize>,
    pub subs: Vec<usize>,
    /// NO_AUTH commands are allowed to every user (Redis: AUTH, HELLO, QUIT, RESET).
    pub no_auth: bool,
    /// Redis 7.0's key specs of the command (None: a command Redis 7.0 does not have).
    pub keys: Option<&'static CommandKeys>,
}

pub struct Registry {
    pub cmds: Vec<AclCmd>,
    /// (address of the table's spec, id), sorted by address.
    by_spec: Vec<(usize, usize)>,
    /// Bitmap words per user (one more bit than commands: the "future commands" bit).
    words: usize,
}

impl Registry {
    fn build() -> Registry {
        let mut cmds: Vec<AclCmd> = Vec::new();
        let mut by_spec = Vec::new();
        let all = &table().all;
        let mut subs_of = Vec::new();
        for &c in all.iter() {
            by_spec.push((c as *const CommandSpec as usize, cmds.len()));
            cmds.push(AclCmd {
                fullname: c.name.to_string(),
                cats: cat_bits(&crate::cmd::server::command::acl_categories(c, None)),
                parent: None,
                subs: Vec::new(),
                no_auth: c.has(crate::cmd::flags::NO_AUTH),
                keys: keyfind::lookup(c.name),
            });
            subs_of.push(crate::cmd::server::command::subcommands(c));
        }
        for (i, &c) in all.iter().enumerate() {
            for s in subs_of[i] {
                let id = cmds.len();
                let fullname = format!("{}|{}", c.name, s.0);
                cmds.push(AclCmd {
                    keys: keyfind::lookup(&fullname),
                    fullname,
                    cats: cat_bits(&crate::cmd::server::command::acl_categories(c, Some(*s))),
                    parent: Some(i),
                    subs: Vec::new(),
                    no_auth: false,
                });
                cmds[i].subs.push(id);
            }
        }
        by_spec.sort_unstable();
        let words = (cmds.len() + 1).div_ceil(64);
        Registry {
            cmds,
            by_spec,
            words,
        }
    }

    fn future_bit(&self) -> usize {
        self.cmds.len()
    }

    /// The id of a table command.
    pub fn id_of(&self, spec: &'static CommandSpec) -> Option<usize> {
        let addr = spec as *const CommandSpec as usize;
        self.by_spec
            .binary_search_by_key(&addr, |e| e.0)
            .ok()
            .map(|i| self.by_spec[i].1)
    }

    /// The id of the command `argv` runs: the subcommand's when `spec` has subcommands and
    /// argv[1] names one.
    pub fn id_for_call(&self, spec: &'static CommandSpec, argv: &[Bytes]) -> Option<usize> {
        let id = self.id_of(spec)?;
        let c = &self.cmds[id];
        if !c.subs.is_empty() && argv.len() >= 2 {
            let plen = spec.name.len() + 1;
            for &s in &c.subs {
                if self.cmds[s].fullname.as_bytes()[plen..].eq_ignore_ascii_case(&argv[1]) {
                    return Some(s);
                }
            }
        }
        Some(id)
    }

    /// A command or `parent|sub` by name (case-insensitive).
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.cmds
            .iter()
            .position(|c| c.fullname.eq_ignore_ascii_case(name))
    }
}

fn cat_bits(cats: &[&str]) -> u32 {
    let mut b = 0;
    for c in cats {
        if let Some(i) = CATEGORIES.iter().position(|x| x == c) {
            b |= 1 << i;
        }
    }
    b
}

pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::build)
}

pub fn category_bit(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

pub const KEY_READ: u8 = 1;
pub const KEY_WRITE: u8 = 2;
pub const KEY_ALL: u8 = 3;

/// The permission a key needs for the flags of its key spec (Redis's ACLSelectorCheckKey).
fn key_permission(spec_flags: u16) -> u8 {
    use crate::cmd::keyfind::flags::{ACCESS, DELETE, INSERT, UPDATE};
    let mut need = 0;
    if spec_flags & ACCESS != 0 {
        need |= KEY_READ;
    }
    if spec_flags & (INSERT | DELETE | UPDATE) != 0 {
        need |= KEY_WRITE;
    }
    need
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub flags: u8,
    pub pattern: Bytes,
}

impl KeyPattern {
    fn describe(&self, out: &mut String) {
        out.push_str(match self.flags {
            KEY_READ => "%R~",
            KEY_WRITE => "%W~",
            _ => "~",
        });
        out.push_str(&String::from_utf8_lossy(&self.pattern));
    }
}

/// A user's permissions (Redis's root selector; selectors `(...)` are not supported).
#[derive(Clone, Debug)]
pub struct User {
    pub name: Bytes,
    pub enabled: bool,
    pub nopass: bool,
    /// None, Some(true) = sanitize-payload, Some(false) = skip-sanitize-payload.
    pub sanitize: Option<bool>,
    /// SHA-256 hex of each password, in the order added.
    pub passwords: Vec<String>,
    pub allowed: Vec<u64>,
    /// Allowed first arguments of otherwise denied commands (`+select|0`): (id, arg).
    pub firstargs: Vec<(usize, Bytes)>,
    pub allcommands: bool,
    pub allkeys: bool,
    pub allchannels: bool,
    pub keys: Vec<KeyPattern>,
    pub channels: Vec<Bytes>,
    /// allcommands && allkeys && allchannels: no check at all on the command path.
    pub superuser: bool,
    /// Redis 7 selectors `(...)`: each a set of permissions (only the permission fields are
    /// used); a command is allowed if the root or any selector allows it.
    pub selectors: Vec<User>,
}

/// Why a command was denied (Redis's ACL_DENIED_*), with the argument at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Cmd,
    Key(usize),
    Channel(usize),
}

/// An error of the rule language (Redis's `ACLSetUserStringError` texts).
pub mod rule_err {
    pub const UNKNOWN: &str = "Unknown command or category name in ACL";
    pub const SYNTAX: &str = "Syntax error";
    pub const KEYS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns";
    pub const CHANNELS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels";
    pub const NO_SUCH_PASSWORD: &str =
        "The password you are trying to remove from the user does not exist";
    pub const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
    pub const FIRSTARG_OF_SUB: &str = "Allowing first-arg of a subcommand is not supported";
}

pub fn hash_password(p: &[u8]) -> String {
    let d = Sha256::digest(p);
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c.is_ascii_whitespace() || c == 0 || c == 0x0b)
}

/// Constant-time comparison of two hex hashes.
fn same_hash(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl User {
    /// A new user as ACL SETUSER creates it: off, no passwords, no commands, no keys, and the
    /// channels of `acl-pubsub-default`.
    pub fn new(name: &[u8], allchannels_default: bool) -> User {
        let r = registry();
        User {
            name: Bytes::copy_from_slice(name),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            allowed: vec![0; r.words],
            firstargs: Vec::new(),
            allcommands: false,
            allkeys: false,
            allchannels: allchannels_default,
            keys: Vec::new(),
            channels: Vec::new(),
            superuser: false,
            selectors: Vec::new(),
        }
    }

    /// Redis's default user: `on nopass ~* &* +@all`.
    pub fn default_user() -> User {
        let mut u = User::new(b"default", false);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(op.as_bytes(), false);
        }
        u
    }

    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    fn bit(&self, id: usize) -> bool {
        self.allowed[id / 64] & (1 << (id % 64)) != 0
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if on {
            self.allowed[id / 64] |= 1 << (id % 64);
        } else {
            self.allowed[id / 64] &= !(1 << (id % 64));
            self.allcommands = false;
        }
    }

    /// Allow or deny a command and (for a container) its subcommands.
    fn change_perm(&mut self, id: usize, on: bool) {
        self.set_bit(id, on);
        self.firstargs.retain(|(i, _)| *i != id);
        for &s in &registry().cmds[id].subs {
            self.set_bit(s, on);
        }
    }

    fn set_category(&mut self, cat: u32, on: bool) {
        let r = registry();
        for (id, c) in r.cmds.iter().enumerate() {
            if c.cats & cat != 0 {
                self.change_perm(id, on);
            }
        }
    }

    fn finish(&mut self) {
        self.superuser = self.allcommands && self.allkeys && self.allchannels;
    }

    /// Apply one rule (ACL SETUSER's grammar). `Err` carries Redis's error text.
    pub fn apply(&mut self, op: &[u8], allchannels_default: bool) -> Result<(), &'static str> {
        let r = self.apply_inner(op, allchannels_default, false);
        self.finish();
        r
    }

    /// `(rule rule ...)`: a new selector from the rules inside the parentheses.
    fn add_selector(&mut self, op: &[u8], allchannels_default: bool) -> Result<(), &'static str> {
        let inner = &op[1..op.len() - 1];
        let rules = crate::resp::split_args(inner).ok_or(rule_err::SYNTAX)?;
        let mut sel = User::new(b"", allchannels_default);
        for r in &rules {
            sel.apply_inner(r, allchannels_default, true)?;
        }
        sel.finish();
        self.selectors.push(sel);
        Ok(())
    }

    fn apply_inner(
        &mut self,
        op: &[u8],
        allchannels_default: bool,
        selector: bool,
    ) -> Result<(), &'static str> {
        if op.is_empty() {
            return Ok(());
        }
        let lower = op.to_ascii_lowercase();
        if selector
            && (matches!(
                &lower[..],
                b"on"
                    | b"off"
                    | b"skip-sanitize-payload"
                    | b"sanitize-payload"
                    | b"nopass"
                    | b"resetpass"
                    | b"reset"
                    | b"clearselectors"
            ) || matches!(op[0], b'>' | b'#' | b'<' | b'!' | b'('))
        {
            return Err(rule_err::SYNTAX);
        }
        match &lower[..] {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"skip-sanitize-payload" => self.sanitize = Some(false),
            b"sanitize-payload" => self.sanitize = Some(true),
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"reset" => {
                self.nopass = false;
                self.passwords.clear();
                self.keys.clear();
                self.allkeys = false;
                self.channels.clear();
                self.allchannels = allchannels_default;
                self.enabled = false;
                self.sanitize = Some(true);
                self.set_all(false);
                self.selectors.clear();
            }
            b"clearselectors" => self.selectors.clear(),
            // As Redis's ACLSetSelector: `~*` and `&*` (like `allkeys` / `allchannels`) are
            // matched before the pattern rules, so they are never "a pattern after the *
            // pattern" (ACL LIST's `&*` applies again to a user that has it already).
            b"allkeys" | b"~*" => {
                self.allkeys = true;
                self.keys.clear();
            }
            b"resetkeys" => {
                self.keys.clear();
                self.allkeys = false;
            }
            b"allchannels" | b"&*" => {
                self.allchannels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.channels.clear();
                self.allchannels = false;
            }
            b"allcommands" | b"+@all" => self.set_all(true),
            b"nocommands" | b"-@all" => self.set_all(false),
            _ => match op[0] {
                b'>' | b'#' => {
                    let h = if op[0] == b'>' {
                        hash_password(&op[1..])
                    } else {
                        if !valid_hash(&op[1..]) {
                            return Err(rule_err::BAD_HASH);
                        }
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    };
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                b'<' | b'!' => {
                    let h = if op[0] == b'<' {
                        hash_password(&op[1..])
                    } else {
                        if !valid_hash(&op[1..]) {
                            return Err(rule_err::BAD_HASH);
                        }
                        String::from_utf8_lossy(&op[1..]).into_owned()
                    };
                    match self.passwords.iter().position(|p| *p == h) {
                        Some(i) => {
                            self.passwords.remove(i);
                        }
                        None => return Err(rule_err::NO_SUCH_PASSWORD),
                    }
                }
                b'(' if op.len() >= 2 && op[op.len() - 1] == b')' => {
                    self.add_selector(op, allchannels_default)?
                }
                b'~' | b'%' => self.add_key_pattern(op)?,
                b'&' => {
                    if self.allchannels {
                        return Err(rule_err::CHANNELS_AFTER_ALL);
                    }
                    let pat = &op[1..];
                    if has_spaces(pat) {
                        return Err(rule_err::SYNTAX);
                    }
                    if pat == b"*" {
                        self.allchannels = true;
                        self.channels.clear();
                    } else if !self.channels.iter().any(|c| &c[..] == pat) {
                        self.channels.push(Bytes::copy_from_slice(pat));
                    }
                }
                b'+' | b'-' if op.len() > 1 && op[1] == b'@' => {
                    let name = std::str::from_utf8(&op[2..]).map_err(|_| rule_err::UNKNOWN)?;
                    let cat = category_bit(name).ok_or(rule_err::UNKNOWN)?;
                    self.set_category(cat, op[0] == b'+');
                }
                b'+' | b'-' => {
                    let name = std::str::from_utf8(&op[1..]).map_err(|_| rule_err::UNKNOWN)?;
                    let reg = registry();
                    if let Some(id) = reg.lookup(name) {
                        self.change_perm(id, op[0] == b'+');
                    } else if op[0] == b'+' && name.contains('|') {
                        // `+select|0`: a first argument of an otherwise denied command.
                        let (cmd, arg) = name.rsplit_once('|').unwrap_or((name, ""));
                        let id = reg.lookup(cmd).ok_or(rule_err::UNKNOWN)?;
                        if reg.cmds[id].parent.is_some() {
                            return Err(rule_err::FIRSTARG_OF_SUB);
                        }
                        if arg.is_empty() {
                            return Err(rule_err::SYNTAX);
                        }
                        if !reg.cmds[id].subs.is_empty() {
                            return Err(rule_err::UNKNOWN);
                        }
                        let arg = Bytes::copy_from_slice(arg.to_ascii_lowercase().as_bytes());
                        if !self.firstargs.iter().any(|(i, a)| *i == id && *a == arg) {
                            self.firstargs.push((id, arg));
                        }
                    } else {
                        return Err(rule_err::UNKNOWN);
                    }
                }
                _ => return Err(rule_err::SYNTAX),
            },
        }
        Ok(())
    }

    fn set_all(&mut self, on: bool) {
        let fill = if on { u64::MAX } else { 0 };
        for w in self.allowed.iter_mut() {
            *w = fill;
        }
        self.allcommands = on;
        self.firstargs.clear();
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), &'static str> {
        if self.allkeys {
            return Err(rule_err::KEYS_AFTER_ALL);
        }
        let (flags, pat) = if op[0] == b'%' {
            let mut flags = 0u8;
            let mut i = 1;
            loop {
                match op.get(i).map(|c| c.to_ascii_uppercase()) {
                    Some(b'R') if flags & KEY_READ == 0 => flags |= KEY_READ,
                    Some(b'W') if flags & KEY_WRITE == 0 => flags |= KEY_WRITE,
                    Some(b'~') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(rule_err::SYNTAX),
                }
                i += 1;
            }
            if flags == 0 {
                return Err(rule_err::SYNTAX);
            }
            (flags, &op[i..])
        } else {
            (KEY_ALL, &op[1..])
        };
        if pat == b"*" && flags == KEY_ALL {
            self.allkeys = true;
            self.keys.clear();
            return Ok(());
        }
        if has_spaces(pat) {
            return Err(rule_err::SYNTAX);
        }
        match self.keys.iter_mut().find(|k| &k.pattern[..] == pat) {
            Some(k) => k.flags |= flags,
            None => self.keys.push(KeyPattern {
                flags,
                pattern: Bytes::copy_from_slice(pat),
            }),
        }
        Ok(())
    }

    /// Whether `password` logs this user in (disabled users never log in).
    pub fn check_password(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let h = hash_password(password);
        self.passwords
            .iter()
            .fold(false, |ok, p| ok | same_hash(p, &h))
    }

    /// A new connection as this (default) user is authenticated without AUTH.
    pub fn logs_in_without_password(&self) -> bool {
        self.enabled && self.nopass
    }

    /// The permission check of the command path (Redis's ACLCheckAllUserCommandPerm): the
    /// root permissions, then each selector; when all deny, the most relevant denial (a
    /// channel's over a key's over the command's, as Redis ranks them).
    pub fn check(&self, spec: &'static CommandSpec, argv: &[Bytes]) -> Result<(), Denied> {
        if self.superuser {
            return Ok(());
        }
        // The call's keys, found once for all selectors (as Redis's aclKeyResultCache).
        let mut keys = None;
        let mut err = match self.check_one(spec, argv, &mut keys) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // Redis ranks by kind, then (same kind) by the argument's index: the later one wins.
        let rank = |d: &Denied| match d {
            Denied::Cmd => (1, 0),
            Denied::Key(i) => (2, *i),
            Denied::Channel(i) => (4, *i),
        };
        for s in &self.selectors {
            match s.check_one(spec, argv, &mut keys) {
                Ok(()) => return Ok(()),
                Err(e) if rank(&e) > rank(&err) => err = e,
                Err(_) => {}
            }
        }
        Err(err)
    }

    /// Whether some selector (the root first) allows the call and grants `need`
    /// ([`KEY_READ`], [`KEY_WRITE`]) on every key: Redis's
    /// `ACLUserCheckCmdWithUnrestrictedKeyAccess`, which SORT asks before it reads keys named
    /// by its BY and GET patterns.
    pub fn unrestricted_key_access(
        &self,
        spec: &'static CommandSpec,
        argv: &[Bytes],
        need: u8,
    ) -> bool {
        if self.superuser {
            return true;
        }
        let mut keys = None;
        std::iter::once(self)
            .chain(self.selectors.iter())
            .any(|s| s.check_one(spec, argv, &mut keys).is_ok() && s.all_keys_allowed(need))
    }

    /// allkeys, or a `*` pattern with `need` (Redis's ACLSelectorHasUnrestrictedKeyAccess).
    fn all_keys_allowed(&self, need: u8) -> bool {
        self.allkeys
            || self
                .keys
                .iter()
                .any(|k| k.flags & need == need && &k.pattern[..] == b"*")
    }

    /// One selector's check (Redis's ACLSelectorCheckCmd): the command, then each key against
    /// the flags of the key spec that found it (ACCESS needs read permission; INSERT, DELETE
    /// and UPDATE write permission; a key with none of them any pattern that matches it),
    /// then the channels. `keys` caches the call's keys between selectors.
    fn check_one(
        &self,
        spec: &'static CommandSpec,
        argv: &[Bytes],
        keys: &mut Option<Vec<KeyRef>>,
    ) -> Result<(), Denied> {
        if self.superuser {
            return Ok(());
        }
        let reg = registry();
        let id = reg.id_for_call(spec, argv);
        if !self.allcommands && !spec.has(crate::cmd::flags::NO_AUTH) {
            let Some(id) = id else {
                return Err(Denied::Cmd);
            };
            if !self.bit(id) {
                let first_ok = argv.len() >= 2
                    && self
                        .firstargs
                        .iter()
                        .any(|(i, a)| *i == id && a.eq_ignore_ascii_case(&argv[1]));
                if !first_ok {
                    return Err(Denied::Cmd);
                }
            }
        }
        if !self.allkeys {
            match id.and_then(|id| reg.cmds[id].keys) {
                Some(ck) if ck.has_keys() => {
                    let found = keys.get_or_insert_with(|| {
                        let mut v = Vec::new();
                        ck.keys(argv, &mut v);
                        v
                    });
                    for k in found.iter() {
                        if !self.key_allowed(&argv[k.pos], key_permission(k.flags)) {
                            return Err(Denied::Key(k.pos));
                        }
                    }
                }
                Some(_) => {}
                None => {
                    // A command Redis 7.0 does not have: by its table flags.
                    let need = if spec.is_write() { KEY_WRITE } else { KEY_READ };
                    for p in spec.key_positions(argv) {
                        if !self.key_allowed(&argv[p], need) {
                            return Err(Denied::Key(p));
                        }
                    }
                }
            }
        }
        if !self.allchannels {
            let (first, pattern) = match spec.name {
                "publish" | "spublish" => (1, false),
                "subscribe" | "ssubscribe" => (1, false),
                "psubscribe" => (1, true),
                _ => return Ok(()),
            };
            let last = if matches!(spec.name, "publish" | "spublish") {
                2.min(argv.len())
            } else {
                argv.len()
            };
            for (i, ch) in argv.iter().enumerate().take(last).skip(first) {
                if !self.channel_allowed(ch, pattern) {
                    return Err(Denied::Channel(i));
                }
            }
        }
        Ok(())
    }

    pub fn key_allowed(&self, key: &[u8], need: u8) -> bool {
        self.allkeys
            || self
                .keys
                .iter()
                .any(|k| k.flags & need == need && glob_match(&k.pattern, key, false))
    }

    pub fn channel_allowed(&self, ch: &[u8], is_pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|p| {
                if is_pattern {
                    &p[..] == ch
                } else {
                    glob_match(p, ch, false)
                }
            })
    }

    fn flag_names(&self) -> Vec<&'static str> {
        let mut v = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            v.push("nopass");
        }
        match self.sanitize {
            Some(false) => v.push("skip-sanitize-payload"),
            Some(true) => v.push("sanitize-payload"),
            None => {}
        }
        v
    }

    pub fn keys_string(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        let mut s = String::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            k.describe(&mut s);
        }
        s
    }

    pub fn channels_string(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        let v: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        v.join(" ")
    }

    /// Redis 7.0's ACLDescribeSelectorCommandRules: +@all or -@all, then the best-fitting
    /// categories, then single commands, so that the rules rebuild the same bitmap.
    pub fn commands_string(&self) -> String {
        let reg = registry();
        let additive = !self.bit(reg.future_bit());
        let mut fake = User::new(b"", false);
        let mut rules = String::new();
        if additive {
            rules.push_str("-@all ");
            fake.set_all(false);
        } else {
            rules.push_str("+@all ");
            fake.set_all(true);
        }
        let mut temp = self.clone();
        let mut applied = [false; 21];
        loop {
            let mut best: Option<usize> = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0usize);
            for (j, _) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (mut on, mut off) = (0usize, 0usize);
                for (id, c) in reg.cmds.iter().enumerate() {
                    if c.cats & (1 << j) != 0 {
                        if temp.bit(id) {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(b) = best else { break };
            fake.set_category(1 << b, additive);
            temp.set_category(1 << b, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(CATEGORIES[b]);
            rules.push(' ');
            applied[b] = true;
        }
        // Single commands, parents before their subcommands.
        let mut order = Vec::with_capacity(reg.cmds.len());
        for (id, c) in reg.cmds.iter().enumerate() {
            if c.parent.is_none() {
                order.push(id);
                order.extend_from_slice(&c.subs);
            }
        }
        for id in order {
            let userbit = self.bit(id);
            if userbit != fake.bit(id) {
                rules.push(if userbit { '+' } else { '-' });
                rules.push_str(&reg.cmds[id].fullname);
                rules.push(' ');
                fake.change_perm(id, userbit);
            }
            if !userbit {
                for (i, a) in &self.firstargs {
                    if *i == id {
                        rules.push('+');
                        rules.push_str(&reg.cmds[id].fullname);
                        rules.push('|');
                        rules.push_str(&String::from_utf8_lossy(a));
                        rules.push(' ');
                    }
                }
            }
        }
        rules.pop();
        rules
    }

    /// ACL LIST's line without the leading `user `: `name on #hash ~* &* +@all`.
    pub fn describe(&self) -> String {
        let mut s = self.name_str();
        for f in self.flag_names() {
            s.push(' ');
            s.push_str(f);
        }
        for p in &self.passwords {
            s.push_str(" #");
            s.push_str(p);
        }
        s.push(' ');
        s.push_str(&self.describe_permissions());
        for sel in &self.selectors {
            s.push_str(" (");
            s.push_str(&sel.describe_permissions());
            s.push(')');
        }
        s
    }

    /// Keys, channels and commands as ACL LIST writes them (`~* &* +@all`).
    pub fn describe_permissions(&self) -> String {
        let mut s = String::new();
        if self.allkeys {
            s.push_str("~* ");
        } else {
            for k in &self.keys {
                k.describe(&mut s);
                s.push(' ');
            }
        }
        if self.allchannels {
            s.push_str("&* ");
        } else {
            s.push_str("resetchannels ");
            for c in &self.channels {
                s.push('&');
                s.push_str(&String::from_utf8_lossy(c));
                s.push(' ');
            }
        }
        s.push_str(&self.commands_string());
        s
    }

    pub fn flags(&self) -> Vec<&'static str> {
        self.flag_names()
    }
}

/// One ACL LOG entry (Redis 7.0's fields).
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub ctime_ms: i64,
    pub client_info: String,
}

pub const CTX_TOPLEVEL: &str = "toplevel";
pub const CTX_MULTI: &str = "multi";
pub const CTX_LUA: &str = "lua";

/// The server's users and ACL LOG.
pub struct Acl {
    /// Sorted by name, as Redis's radix tree lists them.
    pub users: BTreeMap<Bytes, Arc<User>>,
    pub log: VecDeque<LogEntry>,
    /// The `requirepass` last applied to the default user.
    pub requirepass: String,
}

impl Default for Acl {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert(
            Bytes::from_static(b"default"),
            Arc::new(User::default_user()),
        );
        Acl {
            users,
            log: VecDeque::new(),
            requirepass: String::new(),
        }
    }
}

/// Redis's `ACLSetUser` over a list of rules on a copy: all or nothing. Err(rule, text).
pub fn apply_rules<'a>(
    mut u: User,
    rules: impl IntoIterator<Item = &'a [u8]>,
    allchannels_default: bool,
) -> Result<User, (Vec<u8>, &'static str)> {
    for r in rules {
        if let Err(e) = u.apply(r, allchannels_default) {
            return Err((r.to_vec(), e));
        }
    }
    Ok(u)
}

impl Acl {
    pub fn default_user(&self) -> Arc<User> {
        match self.users.get(&b"default"[..]) {
            Some(u) => u.clone(),
            None => Arc::new(User::default_user()),
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<&Arc<User>> {
        self.users.get(name)
    }

    /// Apply `requirepass` to the default user, as Redis 7 does at start and on CONFIG SET:
    /// `resetpass`, then `>pass` or `nopass`.
    pub fn set_requirepass(&mut self, pass: &str) -> Option<(Arc<User>, Arc<User>)> {
        self.requirepass = pass.to_string();
        let old = self.default_user();
        let mut u = (*old).clone();
        let _ = u.apply(b"resetpass", false);
        if pass.is_empty() {
            let _ = u.apply(b"nopass", false);
        } else {
            let mut op = b">".to_vec();
            op.extend_from_slice(pass.as_bytes());
            let _ = u.apply(&op, false);
        }
        let new = Arc::new(u);
        self.users
            .insert(Bytes::from_static(b"default"), new.clone());
        Some((old, new))
    }

    /// Add an entry, or count a repeat of a recent similar one (moved to the head).
    #[allow(clippy::too_many_arguments)]
    pub fn log_event(
        &mut self,
        reason: &'static str,
        context: &'static str,
        object: String,
        username: String,
        now_ms: i64,
        client_info: String,
        max_len: usize,
    ) {
        if let Some(i) = self.log.iter().position(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now_ms - e.ctime_ms <= LOG_GROUPING_MS
        }) {
            if let Some(mut e) = self.log.remove(i) {
                e.count += 1;
                e.ctime_ms = now_ms;
                e.client_info = client_info;
                self.log.push_front(e);
            }
        } else {
            self.log.push_front(LogEntry {
                count: 1,
                reason,
                context,
                object,
                username,
                ctime_ms: now_ms,
                client_info,
            });
        }
        while self.log.len() > max_len {
            self.log.pop_back();
        }
    }
}

/// Redis's ACLMergeSelectorArguments: `(+get` `~a*)` become one `(+get ~a*)` rule. Err is the
/// argument that opened a selector never closed.
pub fn merge_selector_args(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, Vec<u8>> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, &a) in args.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(a);
            if a.last() == Some(&b')') {
                if let Some((_, sel)) = open.take() {
                    out.push(sel);
                }
            }
            continue;
        }
        if a.first() == Some(&b'(') && a.last() != Some(&b')') {
            open = Some((j, a.to_vec()));
            continue;
        }
        out.push(a.to_vec());
    }
    match open {
        Some((j, _)) => Err(args[j].to_vec()),
        None => Ok(out),
    }
}

/// Usernames: no spaces or NUL (Redis's ACLStringHasSpaces).
pub fn valid_username(name: &[u8]) -> bool {
    !has_spaces(name)
}

/// Parse an ACL file's text into users (Redis 7.0's ACLLoadFromFile checks and messages):
/// every line `user <name> <rules...>`, each user once. The default user is created if not
/// listed. Err is Redis's message, ending with its "no change" warning.
pub fn parse_acl_file(
    text: &str,
    path: &str,
    allchannels_default: bool,
) -> Result<BTreeMap<Bytes, Arc<User>>, String> {
    let mut users: BTreeMap<Bytes, Arc<User>> = BTreeMap::new();
    let mut errors = String::new();
    for (n, raw) in text.split('\n').enumerate() {
        let lineno = n + 1;
        let line = raw.trim_matches([' ', '\t', '\r', '\n']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(argv) = crate::resp::split_args(line.as_bytes()) else {
            errors.push_str(&format!("{path}:{lineno}: Syntax error. "));
            continue;
        };
        if argv.is_empty() {
            continue;
        }
        if argv[0] != b"user" || argv.len() < 2 {
            errors.push_str(&format!(
                "{path}:{lineno} should start with user keyword followed by the username. "
            ));
            continue;
        }
        if !valid_username(&argv[1]) {
            errors.push_str(&format!(
                "{path}:{lineno}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(&argv[1])
            ));
            continue;
        }
        if users.contains_key(&argv[1][..]) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {lineno}. ",
                String::from_utf8_lossy(&argv[1])
            ));
            continue;
        }
        let rules: Vec<&[u8]> = argv[2..].iter().map(|a| &a[..]).collect();
        let rules = match merge_selector_args(&rules) {
            Ok(r) => r,
            Err(open) => {
                errors.push_str(&format!(
                    "{path}:{lineno}: Unmatched parenthesis in acl selector starting at '{}'. ",
                    String::from_utf8_lossy(&open)
                ));
                continue;
            }
        };
        let u = User::new(&argv[1], allchannels_default);
        match apply_rules(u, rules.iter().map(|a| &a[..]), allchannels_default) {
            Ok(u) => {
                users.insert(Bytes::copy_from_slice(&argv[1]), Arc::new(u));
            }
            Err((op, e)) => {
                errors.push_str(&format!(
                    "{path}:{lineno}: Error in applying operation '{}': {e}. ",
                    String::from_utf8_lossy(&op)
                ));
            }
        }
    }
    if !errors.is_empty() {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        return Err(errors);
    }
    if !users.contains_key(&b"default"[..]) {
        users.insert(
            Bytes::from_static(b"default"),
            Arc::new(User::default_user()),
        );
    }
    Ok(users)
}

/// ACL SAVE's text: one `user` line per user, sorted by name.
pub fn acl_file_text(users: &BTreeMap<Bytes, Arc<User>>) -> String {
    let mut s = String::new();
    for u in users.values() {
        s.push_str("user ");
        s.push_str(&u.describe());
        s.push('\n');
    }
    s
}

/// Random hex of `bits` bits rounded up to a nibble (ACL GENPASS).
pub fn genpass(bits: usize) -> String {
    use rand::RngCore;
    let chars = bits.div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut s = String::with_capacity(chars + 1);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s.truncate(chars);
    s
}

/// The user of a client before the server assigns one (the replication master's client, tools):
/// the default user's permissions.
pub fn unrestricted_default() -> Arc<User> {
    static U: OnceLock<Arc<User>> = OnceLock::new();
    U.get_or_init(|| Arc::new(User::default_user())).clone()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn user(rules: &[&str]) -> User {
        apply_rules(
            User::new(b"u", false),
            rules.iter().map(|r| r.as_bytes()),
            false,
        )
        .unwrap()
    }

    #[test]
    fn describe_matches_redis_simple_forms() {
        assert_eq!(
            User::default_user().describe(),
            "default on nopass ~* &* +@all"
        );
        let u = user(&["on", ">p1", "~app:*", "+@all", "-@dangerous"]);
        assert!(u.describe().starts_with(
            "u on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a ~app:* resetchannels +@all -@dangerous"
        ), "{}", u.describe());
        let u = user(&[
            "+get", "+@string", "-set", "&ch*", "%R~r*", "%W~w*", "%RW~x*",
        ]);
        assert_eq!(
            u.describe(),
            "u off %R~r* %W~w* ~x* resetchannels &ch* -@all +@string -set"
        );
        let u = user(&["allcommands", "nocommands", "+get", "resetkeys", "allkeys"]);
        assert_eq!(u.describe(), "u off ~* resetchannels -@all +get");
        let u = user(&["+@all", "-get", "+get"]);
        assert_eq!(u.describe(), "u off resetchannels +@all");
        let u = user(&["reset"]);
        assert_eq!(u.describe(), "u off sanitize-payload resetchannels -@all");
    }

    #[test]
    fn rule_errors_and_checks() {
        let mut u = User::new(b"x", false);
        assert_eq!(u.apply(b"foo", false), Err(rule_err::SYNTAX));
        assert_eq!(u.apply(b"+nosuch", false), Err(rule_err::UNKNOWN));
        assert_eq!(u.apply(b"#abc", false), Err(rule_err::BAD_HASH));
        assert_eq!(u.apply(b"<nopw", false), Err(rule_err::NO_SUCH_PASSWORD));
        assert_eq!(u.apply(b"%X~a", false), Err(rule_err::SYNTAX));
        u.apply(b"~*", false).unwrap();
        assert_eq!(u.apply(b"~a", false), Err(rule_err::KEYS_AFTER_ALL));
        // `~*` / `&*` again are not "a pattern after *" (Redis matches them as allkeys /
        // allchannels): ACL LIST's `&*` of a user made under `acl-pubsub-default allchannels`.
        assert_eq!(u.apply(b"~*", false), Ok(()));
        let mut all = User::new(b"y", true);
        assert_eq!(all.apply(b"&*", true), Ok(()));
        assert_eq!(all.apply(b"&c", true), Err(rule_err::CHANNELS_AFTER_ALL));
        let u = user(&["on", ">pw", "+get", "~k*"]);
        assert!(u.check_password(b"pw") && !u.check_password(b"no"));
        let get = table().get(b"get").unwrap();
        let set = table().get(b"set").unwrap();
        let a = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(u.check(get, &a(&["get", "k1"])), Ok(()));
        assert_eq!(u.check(get, &a(&["get", "x"])), Err(Denied::Key(1)));
        assert_eq!(u.check(set, &a(&["set", "k", "v"])), Err(Denied::Cmd));
        let cfg = table().get(b"config").unwrap();
        let u = user(&["+config|get"]);
        assert_eq!(u.check(cfg, &a(&["config", "GET", "x"])), Ok(()));
        assert_eq!(
            u.check(cfg, &a(&["config", "set", "x", "y"])),
            Err(Denied::Cmd)
        );
        assert!(User::default_user().superuser);
    }

    #[test]
    fn selectors_add_permissions() {
        let merged =
            merge_selector_args(&[b"on" as &[u8], b"(+get", b"~b*)", b"(~a* +set)"]).unwrap();
        assert_eq!(merged[1], b"(+get ~b*)".to_vec());
        assert_eq!(
            merge_selector_args(&[b"(+get" as &[u8]]).unwrap_err(),
            b"(+get".to_vec()
        );
        let u = user(&["on", "nopass", "(~a* +get)", "(&ch +publish %R~r*)"]);
        assert_eq!(
            u.describe(),
            "u on nopass resetchannels -@all (~a* resetchannels -@all +get) (%R~r* resetchannels &ch -@all +publish)"
        );
        let a = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        let get = table().get(b"get").unwrap();
        let set = table().get(b"set").unwrap();
        let publish = table().get(b"publish").unwrap();
        assert_eq!(u.check(get, &a(&["get", "a1"])), Ok(()));
        assert_eq!(u.check(get, &a(&["get", "zz"])), Err(Denied::Key(1)));
        assert_eq!(u.check(set, &a(&["set", "a", "1"])), Err(Denied::Cmd));
        assert_eq!(u.check(publish, &a(&["publish", "ch", "1"])), Ok(()));
        assert_eq!(
            u.check(publish, &a(&["publish", "zz", "1"])),
            Err(Denied::Channel(1))
        );
        let mut u = u;
        assert_eq!(u.apply(b"(on)", false), Err(rule_err::SYNTAX));
        u.apply(b"clearselectors", false).unwrap();
        assert_eq!(u.describe(), "u on nopass resetchannels -@all");
    }

    #[test]
    fn genpass_lengths() {
        assert_eq!(genpass(256).len(), 64);
        assert_eq!(genpass(5).len(), 2);
        assert_eq!(genpass(1).len(), 1);
    }

    // ---- Properties: the rule language and the aclfile parser never panic, and what ACL LIST
    // (describe) and ACL SAVE write reads back to the same user. ----

    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn pick<'a>(g: &mut Gen, xs: &[&'a str]) -> &'a str {
        g.choose(xs).copied().unwrap_or("")
    }

    /// A short pattern or password over an alphabet without spaces, quotes or parentheses.
    ///
    /// Outside this alphabet ACL LIST's line does not always apply back (no panic, but
    /// these stay out of the round-trip properties):
    /// - a `)` ending a pattern inside a selector closes the selector early (Redis's
    ///   ACLMergeSelectorArguments reads it the same way);
    /// - a quote in a root pattern is accepted, and ACL SAVE writes it unquoted, so the
    ///   aclfile's sdssplitargs-style reader refuses the line (as Redis);
    /// - `+select|a b`: a first argument with a space describes as two rules (as Redis);
    /// - non-UTF-8 key/channel patterns describe lossily (U+FFFD), so ACL LIST/SAVE change
    ///   their bytes (Redis writes the raw bytes): `~a\xff ~a\xfe` saves as one pattern;
    /// - `%R~*` then `%W~*` merge into a `~*` pattern that is not `allkeys`: with another
    ///   pattern, the line `~* ~a` then fails with "Adding a pattern after the * pattern"
    ///   (Redis merges the flags and describes the pattern the same way).
    fn word(g: &mut Gen) -> String {
        let n = usize::arbitrary(g) % 4;
        (0..n)
            .map(|_| {
                pick(
                    g,
                    &["a", "b", "*", "?", ":", "[", "]", "^", "-", "Z", "0", "\\"],
                )
            })
            .collect()
    }

    /// One well-formed (or nearly) rule of ACL SETUSER's grammar.
    fn rule(g: &mut Gen, in_selector: bool) -> String {
        let reg = registry();
        match u8::arbitrary(g) % 14 {
            0 if !in_selector => pick(
                g,
                &[
                    "on",
                    "off",
                    "nopass",
                    "resetpass",
                    "reset",
                    "sanitize-payload",
                    "skip-sanitize-payload",
                    "clearselectors",
                ],
            )
            .to_string(),
            1 => pick(
                g,
                &[
                    "allkeys",
                    "allchannels",
                    "allcommands",
                    "nocommands",
                    "resetkeys",
                    "resetchannels",
                    "+@all",
                    "-@all",
                    "ALLKEYS",
                    "-@ALL",
                ],
            )
            .to_string(),
            2 if !in_selector => {
                let pw = pick(g, &["pw", "x", "", "secret"]);
                match u8::arbitrary(g) % 4 {
                    0 => format!(">{pw}"),
                    1 => format!("<{pw}"),
                    2 => format!("#{}", hash_password(pw.as_bytes())),
                    _ => format!("!{}", hash_password(pw.as_bytes())),
                }
            }
            3 | 4 => format!("~{}", word(g)),
            5 => format!(
                "%{}~{}",
                pick(g, &["R", "W", "RW", "WR", "r", "w", "", "RR", "X"]),
                word(g)
            ),
            6 | 7 => format!("&{}", word(g)),
            8 => format!(
                "{}@{}",
                pick(g, &["+", "-"]),
                g.choose(CATEGORIES).copied().unwrap_or("read")
            ),
            9 | 10 => {
                let c = &reg.cmds[usize::arbitrary(g) % reg.cmds.len()];
                format!("{}{}", pick(g, &["+", "-"]), c.fullname)
            }
            11 => format!(
                "+{}|{}",
                pick(
                    g,
                    &["select", "debug", "config", "get", "client|kill", "nosuch"]
                ),
                pick(g, &["0", "1", "object", "", "GET"])
            ),
            12 if !in_selector => {
                let n = usize::arbitrary(g) % 4;
                let inner: Vec<String> = (0..n).map(|_| rule(g, true)).collect();
                format!("({})", inner.join(" "))
            }
            _ => pick(
                g,
                &[
                    "+get",
                    "-get",
                    "+config|get",
                    "~k*",
                    "%R~x",
                    "&ch",
                    "+@read",
                ],
            )
            .to_string(),
        }
    }

    /// Rules as ACL SETUSER receives them: well-formed ones, selectors split over several
    /// arguments as a client sends `(+get ~a*)`, and (with `junk`) arbitrary bytes.
    #[derive(Clone, Debug)]
    pub(crate) struct Rules(pub(crate) Vec<Vec<u8>>);

    impl Rules {
        fn gen(g: &mut Gen, junk: bool) -> Rules {
            let n = usize::arbitrary(g) % 12;
            let mut out = Vec::new();
            for _ in 0..n {
                if junk && bool::arbitrary(g) {
                    match u8::arbitrary(g) % 4 {
                        0 => out.push(Vec::<u8>::arbitrary(g)),
                        1 => {
                            let mut v = rule(g, false).into_bytes();
                            v.extend(Vec::<u8>::arbitrary(g));
                            out.push(v);
                        }
                        2 => out.push(
                            pick(
                                g,
                                &[
                                    "(", ")", "()", "( )", "(on)", "((~a))", "(\"a", "~a b", "%",
                                    "%~", "+", "-", "+@", "#", "+|", "+get|",
                                ],
                            )
                            .as_bytes()
                            .to_vec(),
                        ),
                        _ => {
                            let mut v = vec![*g.choose(b"~%&+-(<>#!").unwrap_or(&b'~')];
                            v.extend(Vec::<u8>::arbitrary(g));
                            out.push(v);
                        }
                    }
                    continue;
                }
                let r = rule(g, false);
                if r.starts_with('(') && r.contains(' ') && bool::arbitrary(g) {
                    out.extend(r.split(' ').map(|a| a.as_bytes().to_vec()));
                } else {
                    out.push(r.into_bytes());
                }
            }
            Rules(out)
        }
    }

    #[derive(Clone, Debug)]
    struct GoodRules(Rules);
    #[derive(Clone, Debug)]
    pub(crate) struct AnyRules(pub(crate) Rules);

    impl Arbitrary for GoodRules {
        fn arbitrary(g: &mut Gen) -> Self {
            GoodRules(Rules::gen(g, false))
        }
        fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
            Box::new(self.0 .0.shrink().map(|v| GoodRules(Rules(v))))
        }
    }

    impl Arbitrary for AnyRules {
        fn arbitrary(g: &mut Gen) -> Self {
            AnyRules(Rules::gen(g, true))
        }
        fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
            Box::new(self.0 .0.shrink().map(|v| AnyRules(Rules(v))))
        }
    }

    /// The user ACL SETUSER leaves: the rules merged as Redis merges selector arguments, then
    /// each applied on its own (a failing rule changes nothing), so there is always a user.
    fn build(name: &[u8], rules: &[Vec<u8>], allch: bool) -> User {
        let args: Vec<&[u8]> = rules.iter().map(|r| &r[..]).collect();
        let merged = match merge_selector_args(&args) {
            Ok(m) => m,
            Err(_) => rules
                .iter()
                .filter(|r| !r.starts_with(b"("))
                .cloned()
                .collect(),
        };
        let mut u = User::new(name, allch);
        for r in &merged {
            let before = u.describe();
            if u.apply(r, allch).is_err() {
                assert_eq!(u.describe(), before, "failed rule {r:?} changed the user");
            }
        }
        u
    }

    /// ACL LIST's line for `u` (without `user <name>`) applied to a fresh user, the way a
    /// client pastes it into ACL SETUSER.
    fn reapply(u: &User, allch: bool) -> Result<User, String> {
        let d = u.describe();
        let tokens: Vec<&[u8]> = d.split(' ').skip(1).map(str::as_bytes).collect();
        let merged = merge_selector_args(&tokens).map_err(|o| {
            format!(
                "unmatched selector {:?} in {d:?}",
                String::from_utf8_lossy(&o)
            )
        })?;
        apply_rules(
            User::new(&u.name, allch),
            merged.iter().map(|r| &r[..]),
            allch,
        )
        .map_err(|(r, e)| format!("{d:?}: rule {:?}: {e}", String::from_utf8_lossy(&r)))
    }

    /// Arbitrary rule lists (well-formed rules mixed with arbitrary bytes, split selectors,
    /// unbalanced parentheses) never panic, a failing rule leaves the user as it was, and the
    /// user's describe / GETUSER strings and its permission check answer.
    #[test]
    fn arbitrary_rules_never_panic() {
        fn prop(rules: AnyRules, allch: bool, key: Vec<u8>) -> bool {
            let rules = &rules.0 .0;
            let args: Vec<&[u8]> = rules.iter().map(|r| &r[..]).collect();
            let _ = merge_selector_args(&args);
            let _ = apply_rules(User::new(b"u", allch), args.iter().copied(), allch);
            let mut d = User::default_user();
            for r in rules {
                let _ = d.apply(r, allch);
            }
            let u = build(b"u", rules, allch);
            let _ = (
                u.describe(),
                u.keys_string(),
                u.channels_string(),
                u.flags(),
            );
            let get = table().get(b"get").expect("get");
            let _ = u.check(get, &[Bytes::from_static(b"get"), Bytes::from(key)]);
            true
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(AnyRules, bool, Vec<u8>) -> bool);
    }

    /// ACL LIST's line, applied back to a fresh user, describes the same user (and permits the
    /// same commands).
    #[test]
    fn describe_round_trips() {
        fn prop(rules: GoodRules, allch: bool) -> bool {
            let u = build(b"u", &rules.0 .0, allch);
            match reapply(&u, allch) {
                Ok(again) => {
                    assert_eq!(again.describe(), u.describe(), "from {:?}", rules.0 .0);
                    assert_eq!(again.allowed, u.allowed);
                    true
                }
                Err(e) => panic!("{e} (from {:?})", rules.0 .0),
            }
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(GoodRules, bool) -> bool);
    }

    /// Arbitrary aclfile text never panics; when it loads, the default user is there, and the
    /// text ACL SAVE writes loads back to the same users.
    #[test]
    fn arbitrary_acl_files_never_panic() {
        fn prop(lines: Vec<(u8, AnyRules, String)>, allch: bool) -> bool {
            let mut text = String::new();
            for (kind, rules, junk) in &lines {
                match kind % 5 {
                    0 => text.push_str(junk),
                    1 => text.push_str(&format!("# {junk}")),
                    _ => {
                        text.push_str(if *kind % 7 == 0 { "USER" } else { "user" });
                        text.push(' ');
                        text.push_str(&format!("u{}", kind % 3));
                        for r in &rules.0 .0 {
                            text.push(' ');
                            text.push_str(&String::from_utf8_lossy(r));
                        }
                    }
                }
                text.push(if kind % 2 == 0 { '\n' } else { '\r' });
                text.push('\n');
            }
            let _ = parse_acl_file(
                &lines.iter().map(|l| l.2.as_str()).collect::<String>(),
                "f",
                allch,
            );
            if let Ok(users) = parse_acl_file(&text, "f", allch) {
                assert!(users.contains_key(&b"default"[..]));
                let _ = acl_file_text(&users);
            }
            true
        }
        QuickCheck::new()
            .tests(200)
            .quickcheck(prop as fn(Vec<(u8, AnyRules, String)>, bool) -> bool);
    }

    /// An aclfile of well-formed users loads; ACL SAVE's text of it loads back to the same text.
    #[test]
    fn acl_file_save_load_round_trips() {
        fn prop(users: Vec<GoodRules>, allch: bool) -> bool {
            let mut text = String::new();
            for (i, rules) in users.iter().take(8).enumerate() {
                let u = build(format!("u{i}").as_bytes(), &rules.0 .0, allch);
                text.push_str(&format!("user {}\n", u.describe()));
            }
            let loaded =
                parse_acl_file(&text, "f", allch).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let saved = acl_file_text(&loaded);
            let again =
                parse_acl_file(&saved, "f", allch).unwrap_or_else(|e| panic!("{e}\n{saved}"));
            assert_eq!(acl_file_text(&again), saved);
            true
        }
        QuickCheck::new()
            .tests(100)
            .quickcheck(prop as fn(Vec<GoodRules>, bool) -> bool);
    }

    #[test]
    fn acl_file_round_trip() {
        let text = "user default on nopass ~* &* +@all\nuser alice on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a ~app:* resetchannels +@all -@dangerous\n";
        let users = parse_acl_file(text, "f", false).unwrap();
        let again = parse_acl_file(&acl_file_text(&users), "f", false).unwrap();
        assert_eq!(acl_file_text(&users), acl_file_text(&again));
        assert!(parse_acl_file("bogus\n", "f", false)
            .unwrap_err()
            .contains("f:1 should start with user keyword followed by the username."));
    }
}
