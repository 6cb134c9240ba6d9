//! The Redis 7 AOF manifest (`<appendfilename>.manifest`).
//!
//! One line per file: `file <name> seq <n> type <b|h|i>\n`, base first, then history, then
//! incr lines in order. Parsing follows `aofLoadManifestFromFile` (Redis 7.0–7.4): lines read
//! as with `fgets` into a 1024-byte buffer, lines starting with `#` skipped, whitespace trimmed,
//! split like `sdssplitargs` (quotes understood), keys case-insensitive, unknown keys ignored,
//! and the same error texts. Formatting follows `aofInfoFormat`, quoting odd names like
//! `sdscatrepr`.

use std::fmt;

/// Longest manifest line Redis reads (`MANIFEST_MAX_LINE`), excluding the terminating NUL.
pub const MANIFEST_LINE_BYTES_MAX: usize = 1024;

/// The type of a file listed in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// `b`: the base (snapshot) file, RDB or RESP.
    Base,
    /// `h`: history, replaced by a rewrite and waiting for deletion; never loaded.
    History,
    /// `i`: incremental RESP file, loaded in manifest order after the base.
    Incr,
}

impl FileType {
    /// The type character as written in the manifest.
    pub fn as_char(self) -> char {
        match self {
            FileType::Base => 'b',
            FileType::History => 'h',
            FileType::Incr => 'i',
        }
    }
}

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// File name (a base name inside the AOF directory).
    pub name: String,
    /// Sequence number (non-zero).
    pub seq: u64,
    /// Type.
    pub kind: FileType,
}

/// A parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file, if any.
    pub base: Option<ManifestEntry>,
    /// History files (not loaded).
    pub history: Vec<ManifestEntry>,
    /// Incr files in load order (strictly increasing seq).
    pub incr: Vec<ManifestEntry>,
}

/// A manifest parse error, with Redis's wording for `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line number (0 when the error is not about one line).
    pub line_number: usize,
    /// The offending line (trimmed), if any.
    pub line: Option<String>,
    /// Redis's error text, e.g. "Invalid AOF manifest file format".
    pub reason: &'static str,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.line {
            Some(line) => write!(
                f,
                "{} (reading the manifest file, at line {}: '{}')",
                self.reason, self.line_number, line
            ),
            None => f.write_str(self.reason),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Redis's texts.
pub const ERR_EMPTY: &str = "Found an empty AOF manifest";
/// Redis's text for a line without a line ending within 1024 bytes.
pub const ERR_TOO_LONG: &str = "The AOF manifest file contains too long line";
/// Redis's text for a malformed line.
pub const ERR_FORMAT: &str = "Invalid AOF manifest file format";
/// Redis's text for a file name with a directory part.
pub const ERR_PATH: &str = "File can't be a path, just a filename";
/// Redis's text for two `type b` lines.
pub const ERR_DUP_BASE: &str = "Found duplicate base file information";
/// Redis's text for incr seqs not strictly increasing.
pub const ERR_NON_MONOTONIC: &str = "Found a non-monotonic sequence number";
/// Redis's text for a type other than b, h, i.
pub const ERR_UNKNOWN_TYPE: &str = "Unknown AOF file type";

impl Manifest {
    /// Parse manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::default();
        let mut max_incr_seq = 0u64;
        let mut line_number = 0usize;
        let mut rest = bytes;
        loop {
            if rest.is_empty() {
                if line_number == 0 {
                    return Err(ManifestError {
                        line_number: 0,
                        line: None,
                        reason: ERR_EMPTY,
                    });
                }
                break;
            }
            // fgets(buf, MANIFEST_MAX_LINE + 1): up to 1024 bytes, or through the first '\n'.
            let window = &rest[..rest.len().min(MANIFEST_LINE_BYTES_MAX)];
            let chunk_len = window
                .iter()
                .position(|&b| b == b'\n')
                .map_or(window.len(), |nl| nl + 1);
            let chunk = &rest[..chunk_len];
            rest = &rest[chunk_len..];
            line_number += 1;
            if chunk.first() == Some(&b'#') {
                continue;
            }
            let err = |reason, line: &[u8]| ManifestError {
                line_number,
                line: Some(String::from_utf8_lossy(line).into_owned()),
                reason,
            };
            // Redis handles the line as a C string: it ends at the first NUL.
            let chunk = chunk.split(|&b| b == 0).next().unwrap_or_default();
            if !chunk.contains(&b'\n') {
                return Err(err(ERR_TOO_LONG, chunk));
            }
            let line = trim(chunk);
            if line.is_empty() {
                return Err(err(ERR_FORMAT, line));
            }
            let argv = split_args(line).ok_or_else(|| err(ERR_FORMAT, line))?;
            if argv.len() < 6 || argv.len() % 2 != 0 {
                return Err(err(ERR_FORMAT, line));
            }
            let mut name: Option<String> = None;
            let mut seq = 0u64;
            let mut kind: Option<u8> = None;
            for pair in argv.chunks_exact(2) {
                let (key, value) = (&pair[0], &pair[1]);
                if key.eq_ignore_ascii_case(b"file") {
                    let n = String::from_utf8(value.clone()).map_err(|_| err(ERR_FORMAT, line))?;
                    if n.contains('/') || n.contains('\\') {
                        return Err(err(ERR_PATH, line));
                    }
                    name = Some(n);
                } else if key.eq_ignore_ascii_case(b"seq") {
                    seq = atoll(value);
                } else if key.eq_ignore_ascii_case(b"type") {
                    kind = value.first().copied();
                }
            }
            let (Some(name), Some(kind)) = (name, kind) else {
                return Err(err(ERR_FORMAT, line));
            };
            // A name whose quoted form would not fit in a line could be read but never written
            // back (Redis has the same limit on both sides): refuse it now, not at the next
            // manifest switch.
            let mut formatted = Vec::new();
            format_entry(
                &mut formatted,
                &ManifestEntry {
                    name: name.clone(),
                    seq,
                    kind: FileType::Incr,
                },
            );
            if formatted.len() > MANIFEST_LINE_BYTES_MAX {
                return Err(err(ERR_TOO_LONG, line));
            }
            if seq == 0 || name.is_empty() {
                return Err(err(ERR_FORMAT, line));
            }
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err(err(ERR_DUP_BASE, line));
                    }
                    m.base = Some(ManifestEntry {
                        name,
                        seq,
                        kind: FileType::Base,
                    });
                }
                b'h' => m.history.push(ManifestEntry {
                    name,
                    seq,
                    kind: FileType::History,
                }),
                b'i' => {
                    if seq <= max_incr_seq {
                        return Err(err(ERR_NON_MONOTONIC, line));
                    }
                    max_incr_seq = seq;
                    m.incr.push(ManifestEntry {
                        name,
                        seq,
                        kind: FileType::Incr,
                    });
                }
                _ => return Err(err(ERR_UNKNOWN_TYPE, line)),
            }
        }
        Ok(m)
    }

    /// Format as Redis writes it: base, history, incr; one `\n`-terminated line each.
    pub fn format(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let all = self.base.iter().chain(&self.history).chain(&self.incr);
        for e in all {
            format_entry(&mut out, e);
        }
        out
    }

    /// Whether the manifest lists nothing to load.
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.incr.is_empty()
    }

    /// The seq the next new incr file gets (Redis: `++curr_incr_file_seq`, where
    /// `curr_incr_file_seq` is the seq of the last incr line read).
    pub fn next_incr_seq(&self) -> u64 {
        self.incr.last().map_or(1, |e| e.seq + 1)
    }

    /// The seq the next new base file gets.
    pub fn next_base_seq(&self) -> u64 {
        self.base.as_ref().map_or(1, |e| e.seq + 1)
    }
}

/// Trim `" \t\r\n"` from both ends, like `sdstrim`.
fn trim(mut s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while s.first().is_some_and(ws) {
        s = &s[1..];
    }
    while s.last().is_some_and(ws) {
        s = &s[..s.len() - 1];
    }
    s
}

/// `atoll`: optional whitespace, optional sign, digits; stops at the first non-digit. A
/// negative value is returned as its two's complement, so it is non-zero like in C.
fn atoll(s: &[u8]) -> u64 {
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut v: u64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.wrapping_mul(10).wrapping_add(u64::from(s[i] - b'0'));
        i += 1;
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// `sdssplitargs`: whitespace-separated tokens, `"..."` with C escapes (`\xHH`, `\n`, …) and
/// `'...'` with `\'`; a closing quote must be followed by whitespace or the end. `None` on
/// unbalanced quotes.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && line[p].is_ascii_whitespace() {
            p += 1;
        }
        if p >= line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                let c = *line.get(p)?;
                if c == b'\\'
                    && line.get(p + 1) == Some(&b'x')
                    && line.get(p + 2).copied().is_some_and(is_hex)
                    && line.get(p + 3).copied().is_some_and(is_hex)
                {
                    cur.push(hex_val(line[p + 2]) * 16 + hex_val(line[p + 3]));
                    p += 3;
                } else if c == b'\\' && p + 1 < line.len() {
                    p += 1;
                    cur.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // Closing quote must be followed by a space or nothing.
                    if p + 1 < line.len() && !line[p + 1].is_ascii_whitespace() {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                let c = *line.get(p)?;
                if c == b'\\' && line.get(p + 1) == Some(&b'\'') {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if p + 1 < line.len() && !line[p + 1].is_ascii_whitespace() {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                match line.get(p) {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => inq = true,
                    Some(b'\'') => insq = true,
                    Some(&c) => cur.push(c),
                }
            }
            p += 1;
        }
        out.push(cur);
    }
}

/// `sdsneedsrepr`, plus `'`: Redis leaves a `'` unquoted, which its own `sdssplitargs` then
/// reads as an unbalanced quote; quoting it is still read correctly by Redis.
/// One manifest line, as Redis's `aofInfoFormat` writes it.
fn format_entry(out: &mut Vec<u8>, e: &ManifestEntry) {
    out.extend_from_slice(b"file ");
    if needs_repr(e.name.as_bytes()) {
        repr(out, e.name.as_bytes());
    } else {
        out.extend_from_slice(e.name.as_bytes());
    }
    out.extend_from_slice(format!(" seq {} type {}\n", e.seq, e.kind.as_char()).as_bytes());
}

fn needs_repr(s: &[u8]) -> bool {
    s.iter().any(|&c| {
        matches!(c, b'\\' | b'"' | b'\'' | b'\n' | b'\r' | b'\t' | 7 | 8)
            || !(0x20..0x7f).contains(&c)
            || c == b' '
    })
}

/// `sdscatrepr`.
fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if (0x20..0x7f).contains(&c) => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    const REDIS_EXAMPLE: &str = "file appendonly.aof.2.base.rdb seq 2 type b\n\
file appendonly.aof.1.incr.aof seq 1 type h\n\
file appendonly.aof.2.incr.aof seq 2 type h\n\
file appendonly.aof.3.incr.aof seq 3 type h\n\
file appendonly.aof.4.incr.aof seq 4 type i\n\
file appendonly.aof.5.incr.aof seq 5 type i\n";

    #[test]
    fn parses_and_formats_redis_example_byte_for_byte() {
        let m = Manifest::parse(REDIS_EXAMPLE.as_bytes()).expect("parse");
        assert_eq!(m.base.as_ref().map(|b| b.seq), Some(2));
        assert_eq!(m.history.len(), 3);
        assert_eq!(m.incr.len(), 2);
        assert_eq!(m.next_incr_seq(), 6);
        assert_eq!(m.format(), REDIS_EXAMPLE.as_bytes());
    }

    #[test]
    fn fixture_manifests_parse() {
        for dir in ["redis-7.0-aof-plain", "redis-7.0-aof-rdb-base"] {
            let path = format!(
                "{}/../../shared/fixtures/{dir}/appendonly.aof.manifest",
                env!("CARGO_MANIFEST_DIR")
            );
            let bytes = std::fs::read(&path).expect("fixture manifest");
            let m = Manifest::parse(&bytes).expect("parse");
            assert_eq!(m.format(), bytes);
        }
    }

    #[test]
    fn comments_crlf_unknown_keys_and_case_are_accepted() {
        let m = Manifest::parse(
            b"# comment\nFILE a.1.base.aof SEQ 1 TYPE b startoffset 10 endoffset 20\r\nfile a.1.incr.aof seq 1 type i\n",
        )
        .expect("parse");
        assert_eq!(
            m.base.as_ref().map(|b| b.name.as_str()),
            Some("a.1.base.aof")
        );
        assert_eq!(m.incr.len(), 1);
    }

    #[test]
    fn errors_use_redis_wording() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ERR_EMPTY),
            (b"file a seq 1 type i", ERR_TOO_LONG),
            (b"file a seq 1 type i\n\nfile b seq 2 type i\n", ERR_FORMAT),
            (b"file a seq 1\n", ERR_FORMAT),
            (b"file a seq 0 type i\n", ERR_FORMAT),
            (b"file d/a seq 1 type i\n", ERR_PATH),
            (b"file a seq 1 type b\nfile b seq 2 type b\n", ERR_DUP_BASE),
            (
                b"file a seq 2 type i\nfile b seq 1 type i\n",
                ERR_NON_MONOTONIC,
            ),
            (b"file a seq 1 type x\n", ERR_UNKNOWN_TYPE),
            (b"file \"a seq 1 type i\n", ERR_FORMAT),
        ];
        for (input, want) in cases {
            let got = Manifest::parse(input).expect_err("must fail");
            assert_eq!(
                got.reason,
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn odd_names_are_quoted_and_read_back() {
        let m = Manifest {
            base: None,
            history: vec![],
            incr: vec![ManifestEntry {
                name: "we ird\"\t\u{1}.aof".to_string(),
                seq: 3,
                kind: FileType::Incr,
            }],
        };
        let text = m.format();
        assert_eq!(text, b"file \"we ird\\\"\\t\\x01.aof\" seq 3 type i\n");
        assert_eq!(Manifest::parse(&text).expect("parse"), m);
    }

    quickcheck! {
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let _ = Manifest::parse(&bytes);
            true
        }
        fn format_parse_round_trip(names: Vec<String>) -> bool {
            let incr: Vec<ManifestEntry> = names
                .into_iter()
                .filter(|n| !n.is_empty() && !n.contains(['/', '\\', '\0']))
                .enumerate()
                .map(|(i, name)| ManifestEntry { name, seq: i as u64 + 1, kind: FileType::Incr })
                .collect();
            if incr.is_empty() { return true; }
            let m = Manifest { base: None, history: vec![], incr };
            let text = m.format();
            // Lines longer than Redis's limit are not representable; skip those inputs.
            if text.split(|&b| b == b'\n').any(|l| l.len() >= MANIFEST_LINE_BYTES_MAX) { return true; }
            Manifest::parse(&text) == Ok(m)
        }
    }
}
