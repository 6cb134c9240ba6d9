//! `rdb-check`: read a whole RDB file with the server's reader (`RdbReader`: header, every
//! opcode and value, deep listpack/ziplist/intset checks, CRC-64) and report what is in it, like
//! redis-check-rdb and valkey-check-rdb `--stats`.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use strongbox_storage::rdb::{Item, RdbError, RdbReader, Value};

use crate::{escape_bytes, Finding, Severity, EXIT_INVALID, EXIT_OK};

/// Read buffer for the file.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// Longest key shown in messages.
const KEY_SHOWN_BYTES_MAX: usize = 64;

/// Per-type statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeStats {
    /// Keys of this type.
    pub keys: u64,
    /// Elements (string: 1; list/set/zset/hash: members; stream: entries).
    pub elements: u64,
    /// Bytes the keys and values take in the file.
    pub bytes: u64,
    /// The largest key by bytes in the file: (key, bytes, elements).
    pub largest: Option<(String, u64, u64)>,
}

/// Per-database statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Keys.
    pub keys: u64,
    /// Keys with an expire.
    pub expires: u64,
    /// Keys whose expire is already in the past (a master skips them when loading).
    pub already_expired: u64,
    /// RESIZEDB hint: (db_size, expires_size).
    pub resize_hint: Option<(u64, u64)>,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// What reading the file found.
#[derive(Debug, Clone, Default)]
pub struct RdbCheck {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// RDB version (0 when the header did not read).
    pub version: u32,
    /// AUX fields in file order: (offset, key, value).
    pub aux: Vec<(u64, String, String)>,
    /// Per database.
    pub dbs: BTreeMap<u32, DbStats>,
    /// Per type name.
    pub types: BTreeMap<&'static str, TypeStats>,
    /// Function libraries.
    pub functions: u64,
    /// Module AUX records: (offset, module).
    pub module_aux: Vec<(u64, String)>,
    /// Empty collections skipped by the reader (Redis 7 skips them too).
    pub empty_keys_skipped: u64,
    /// Stored checksum, when EOF was reached: None before RDB 5, Some(0) disabled.
    pub checksum: Option<Option<u64>>,
    /// Offset of the EOF opcode.
    pub eof_offset: Option<u64>,
    /// Bytes after the checksum.
    pub trailing_bytes: u64,
    /// The last key read whole: (db, key, offset).
    pub last_good_key: Option<(u32, String, u64)>,
    /// Findings.
    pub findings: Vec<Finding>,
}

impl RdbCheck {
    /// No error findings and EOF reached.
    pub fn valid(&self) -> bool {
        self.checksum.is_some() && !self.findings.iter().any(|f| f.severity == Severity::Error)
    }
    /// Total keys.
    pub fn keys(&self) -> u64 {
        self.dbs.values().map(|d| d.keys).sum()
    }
}

fn elements(v: &Value) -> u64 {
    match v {
        Value::String(_) => 1,
        Value::List(l) => l.len() as u64,
        Value::Set(s) => s.len() as u64,
        Value::ZSet(z) => z.len() as u64,
        Value::Hash(h) => h.len() as u64,
        Value::Stream(s) => s.entries.len() as u64,
    }
}

fn show(b: &[u8]) -> String {
    escape_bytes(b, KEY_SHOWN_BYTES_MAX)
}

fn error_finding(path: &str, e: &RdbError, last_good: &Option<(u32, String, u64)>) -> Finding {
    let key = e
        .key
        .as_ref()
        .map(|k| format!(" while reading key '{}'", show(k)))
        .unwrap_or_default();
    let after = last_good
        .as_ref()
        .map(|(db, k, off)| format!(" (last key read whole: db {db} '{k}' at offset {off})"))
        .unwrap_or_default();
    Finding::new(
        path,
        e.offset,
        Severity::Error,
        format!("RDB error{key}: {}{after}", e.reason),
    )
}

/// Read and check the whole file. `now_ms` decides which expires are already past.
pub fn check_rdb(path: &Path, now_ms: i64, show_progress: bool) -> Result<RdbCheck, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("Cannot open file {}: {e}", path.display()))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let bar = crate::progress::bytes_bar(show_progress, size, "reading");
    let input = BufReader::with_capacity(
        READ_BUFFER_BYTES,
        crate::progress::ProgressRead::new(file, &bar),
    );
    let shown = path.display().to_string();
    let mut out = RdbCheck {
        path: path.to_path_buf(),
        size,
        ..RdbCheck::default()
    };
    let mut reader = match RdbReader::new(input) {
        Ok(r) => r,
        Err(e) => {
            out.findings.push(error_finding(&shown, &e, &None));
            bar.finish_and_clear();
            return Ok(out);
        }
    };
    out.version = reader.version();
    let mut db = 0u32;
    let now = now_ms;
    loop {
        let at = reader.offset();
        match reader.next_item() {
            Ok(None) => break,
            Ok(Some(item)) => match item {
                Item::Aux { key, value } => {
                    out.aux.push((at, show(&key), show(&value)));
                }
                Item::SelectDb(n) => {
                    db = n;
                    out.dbs.entry(n).or_default();
                }
                Item::ResizeDb {
                    db_size,
                    expires_size,
                } => {
                    out.dbs.entry(db).or_default().resize_hint = Some((db_size, expires_size));
                }
                Item::Entry(e) => {
                    let bytes = reader.offset() - at;
                    let d = out.dbs.entry(e.db).or_default();
                    d.keys += 1;
                    d.bytes += bytes;
                    if let Some(t) = e.expire_ms {
                        d.expires += 1;
                        if t < now {
                            d.already_expired += 1;
                        }
                    }
                    let n = elements(&e.value);
                    let t = out.types.entry(e.value.type_name()).or_default();
                    t.keys += 1;
                    t.elements += n;
                    t.bytes += bytes;
                    if t.largest.as_ref().is_none_or(|(_, b, _)| bytes > *b) {
                        t.largest = Some((format!("{}:{}", e.db, show(&e.key)), bytes, n));
                    }
                    out.last_good_key = Some((e.db, show(&e.key), at));
                }
                Item::Function(_) => out.functions += 1,
                Item::ModuleAux { module, .. } => {
                    out.findings.push(Finding::new(
                        &shown,
                        at,
                        Severity::Warning,
                        format!(
                            "module AUX data for module '{module}' (skipped; Strongbox has no modules and refuses to load it)"
                        ),
                    ));
                    out.module_aux.push((at, module));
                }
                Item::Eof { checksum } => {
                    out.eof_offset = Some(at);
                    out.checksum = Some(checksum);
                    break;
                }
            },
            Err(e) => {
                out.findings
                    .push(error_finding(&shown, &e, &out.last_good_key));
                break;
            }
        }
    }
    out.empty_keys_skipped = reader.stats().empty_keys_skipped;
    if out.checksum.is_some() {
        let end = reader.offset();
        let mut rest = reader.into_inner();
        let mut trailing = 0u64;
        let mut buf = [0u8; 8192];
        loop {
            match rest.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => trailing += n as u64,
                Err(e) => {
                    out.findings.push(Finding::new(
                        &shown,
                        end + trailing,
                        Severity::Error,
                        format!("read error: {e}"),
                    ));
                    break;
                }
            }
        }
        out.trailing_bytes = trailing;
        if trailing > 0 {
            out.findings.push(Finding::new(
                &shown,
                end,
                Severity::Warning,
                format!(
                    "{trailing} bytes after the RDB checksum (a RESP tail of an old-style AOF? an .rdb file should end here)"
                ),
            ));
        }
        if out.checksum == Some(Some(0)) {
            out.findings.push(Finding::new(
                &shown,
                end.saturating_sub(8),
                Severity::Info,
                "the checksum is 0: written with rdbchecksum no, so the content is not verified by CRC-64",
            ));
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// As JSON.
pub fn to_json(c: &RdbCheck) -> Json {
    json!({
        "file": c.path.display().to_string(),
        "size": c.size,
        "valid": c.valid(),
        "version": c.version,
        "aux": c.aux.iter().map(|(o, k, v)| json!({"offset": o, "key": k, "value": v})).collect::<Vec<_>>(),
        "keys": c.keys(),
        "dbs": c.dbs.iter().map(|(n, d)| (n.to_string(), json!({
            "keys": d.keys, "expires": d.expires, "already_expired": d.already_expired,
            "bytes": d.bytes,
            "resize_hint": d.resize_hint.map(|(a, b)| json!({"db_size": a, "expires_size": b})),
        }))).collect::<serde_json::Map<_, _>>(),
        "types": c.types.iter().map(|(t, s)| (t.to_string(), json!({
            "keys": s.keys, "elements": s.elements, "bytes": s.bytes,
            "largest": s.largest.as_ref().map(|(k, b, n)| json!({"key": k, "bytes": b, "elements": n})),
        }))).collect::<serde_json::Map<_, _>>(),
        "functions": c.functions,
        "module_aux": c.module_aux.iter().map(|(o, m)| json!({"offset": o, "module": m})).collect::<Vec<_>>(),
        "empty_keys_skipped": c.empty_keys_skipped,
        "eof_offset": c.eof_offset,
        "checksum": c.checksum.map(|x| x.map(|v| format!("{v:016x}"))),
        "trailing_bytes": c.trailing_bytes,
        "last_good_key": c.last_good_key.as_ref().map(|(db, k, o)| json!({"db": db, "key": k, "offset": o})),
        "findings": c.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
    })
}

/// Text report (redis-check-rdb's `[offset N]` style).
pub fn print_text(c: &RdbCheck, stats: bool, out: &mut dyn Write) {
    let _ = writeln!(out, "[offset 0] Checking RDB file {}", c.path.display());
    if c.version > 0 {
        let _ = writeln!(out, "[offset 9] RDB version {}", c.version);
    }
    for (o, k, v) in &c.aux {
        let _ = writeln!(out, "[offset {o}] AUX FIELD {k} = '{v}'");
    }
    for f in &c.findings {
        let _ = writeln!(out, "{f}");
    }
    if let (Some(eof), Some(sum)) = (c.eof_offset, c.checksum) {
        let what = match sum {
            None => "no checksum (RDB version < 5)".to_string(),
            Some(0) => "checksum disabled (0)".to_string(),
            Some(v) => format!("Checksum OK ({v:016x})"),
        };
        let _ = writeln!(out, "[offset {eof}] {what}");
        let _ = writeln!(out, "[offset {}] \\o/ RDB looks OK! \\o/", c.size);
    }
    let expires: u64 = c.dbs.values().map(|d| d.expires).sum();
    let expired: u64 = c.dbs.values().map(|d| d.already_expired).sum();
    let _ = writeln!(out, "[info] {} keys read", c.keys());
    let _ = writeln!(out, "[info] {expires} expires");
    let _ = writeln!(out, "[info] {expired} already expired");
    if c.functions > 0 {
        let _ = writeln!(out, "[info] {} function libraries", c.functions);
    }
    if c.empty_keys_skipped > 0 {
        let _ = writeln!(out, "[info] {} empty keys skipped", c.empty_keys_skipped);
    }
    if stats {
        for (n, d) in &c.dbs {
            let hint = d
                .resize_hint
                .map(|(a, b)| format!(" (RESIZEDB hint: {a} keys, {b} expires)"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "[db {n}] keys={} expires={} already_expired={} bytes={}{hint}",
                d.keys, d.expires, d.already_expired, d.bytes
            );
        }
        for (t, s) in &c.types {
            let largest = s
                .largest
                .as_ref()
                .map(|(k, b, n)| format!(" largest='{k}' ({b} bytes, {n} elements)"))
                .unwrap_or_default();
            let avg = s.bytes.checked_div(s.keys).unwrap_or(0);
            let _ = writeln!(
                out,
                "[type {t}] keys={} elements={} bytes={} avg_bytes={avg}{largest}",
                s.keys, s.elements, s.bytes
            );
        }
    }
    if !c.valid() {
        let _ = writeln!(out, "RDB file {} is not valid", c.path.display());
    }
}

/// Run `rdb-check`; returns the exit code.
pub fn run(
    path: &Path,
    stats: bool,
    json_out: bool,
    quiet: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let progress = crate::progress::enabled(quiet, json_out);
    match check_rdb(path, now, progress) {
        Ok(c) => {
            if json_out {
                let _ = writeln!(out, "{:#}", to_json(&c));
            } else {
                print_text(&c, stats, out);
            }
            if c.valid() {
                EXIT_OK
            } else {
                EXIT_INVALID
            }
        }
        Err(e) => {
            if json_out {
                let _ = writeln!(
                    out,
                    "{}",
                    json!({"file": path.display().to_string(), "valid": false, "error": e})
                );
            } else {
                let _ = writeln!(err, "{e}");
            }
            EXIT_INVALID
        }
    }
}
