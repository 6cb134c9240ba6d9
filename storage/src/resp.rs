//! RESP commands as stored in AOF files.
//!
//! An AOF holds RESP multibulk commands (`*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per
//! argument) and, since Redis 7.0, annotation lines starting with `#` that loaders skip.
//! [`parse`] is a pure, incremental decoder over a byte slice: it never allocates from a
//! declared length before the bytes are there, and "need more bytes" is [`Parsed::Incomplete`],
//! not an error.

/// Largest argument count accepted (Redis 7 rejects multibulk lengths above `INT_MAX`).
pub const ARGS_COUNT_MAX: u64 = i32::MAX as u64;
/// Largest bulk argument accepted (Redis's `proto-max-bulk-len` default, 512 MiB).
pub const BULK_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// Longest header or annotation line, including its line ending. Redis reads these lines with
/// `fgets` into a buffer of `AOF_ANNOTATION_LINE_MAX_LEN` (1024) bytes, so longer lines break
/// its loader.
pub const LINE_BYTES_MAX: usize = 1024;
/// How many argument slots to reserve up front at most, whatever `argc` claims.
const ARGV_PREALLOC_MAX: usize = 64;

const _: () = assert!(BULK_BYTES_MAX <= u32::MAX as u64);

/// Result of parsing at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole command, `len` bytes long, arguments borrowed from the input.
    Command { argv: Vec<&'a [u8]>, len: usize },
    /// An annotation line (first byte `#`); `line` excludes the line ending, `len` includes it.
    Annotation { line: &'a [u8], len: usize },
    /// The buffer ends before the item does (possibly empty buffer).
    Incomplete,
    /// Not valid RESP at `offset` (relative to the buffer start).
    Error { offset: usize, reason: String },
}

/// Append one command in RESP multibulk form.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, argv: &[A]) {
    out.push(b'*');
    out.extend_from_slice(argv.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in argv {
        let arg = arg.as_ref();
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

enum Line<'a> {
    /// Line content (without `\r\n`) and the offset just past the line ending.
    Done(&'a [u8], usize),
    Incomplete,
    Error(usize, String),
}

/// A line ending in `\r\n` starting at `at`.
fn crlf_line(buf: &[u8], at: usize) -> Line<'_> {
    let rest = &buf[at..];
    let window = &rest[..rest.len().min(LINE_BYTES_MAX)];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            if nl == 0 || window[nl - 1] != b'\r' {
                Line::Error(at + nl, "line ends with LF without CR".to_string())
            } else {
                Line::Done(&rest[..nl - 1], at + nl + 1)
            }
        }
        None if rest.len() >= LINE_BYTES_MAX => Line::Error(
            at,
            format!("line longer than {LINE_BYTES_MAX} bytes without a line ending"),
        ),
        None => Line::Incomplete,
    }
}

/// Strict decimal: digits only, no sign, no leading `+`, at most 19 digits.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn show(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(32)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if bytes.len() > 32 {
        format!("{shown}...")
    } else {
        shown
    }
}

/// Parse the item at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let Some(&first) = buf.first() else {
        return Parsed::Incomplete;
    };
    match first {
        b'#' => annotation(buf),
        b'*' => command(buf),
        other => Parsed::Error {
            offset: 0,
            reason: format!("expected '*' (command) or '#' (annotation), found byte 0x{other:02x}"),
        },
    }
}

fn annotation(buf: &[u8]) -> Parsed<'_> {
    // Redis reads annotations with fgets: a line ends at '\n'; accept a bare LF too.
    let window = &buf[..buf.len().min(LINE_BYTES_MAX)];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let end = if nl > 0 && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            Parsed::Annotation {
                line: &buf[..end],
                len: nl + 1,
            }
        }
        None if buf.len() >= LINE_BYTES_MAX => Parsed::Error {
            offset: 0,
            reason: format!("annotation line longer than {LINE_BYTES_MAX} bytes"),
        },
        None => Parsed::Incomplete,
    }
}

fn command(buf: &[u8]) -> Parsed<'_> {
    let (header, mut at) = match crlf_line(buf, 0) {
        Line::Done(l, next) => (l, next),
        Line::Incomplete => return Parsed::Incomplete,
        Line::Error(offset, reason) => return Parsed::Error { offset, reason },
    };
    let argc = match parse_decimal(&header[1..]) {
        Some(n) if (1..=ARGS_COUNT_MAX).contains(&n) => n,
        _ => {
            return Parsed::Error {
                offset: 0,
                reason: format!("invalid argument count '{}'", show(&header[1..])),
            }
        }
    };
    let prealloc = usize::try_from(argc).map_or(ARGV_PREALLOC_MAX, |n| n.min(ARGV_PREALLOC_MAX));
    let mut argv = Vec::with_capacity(prealloc);
    for _ in 0..argc {
        let line_at = at;
        let (line, next) = match crlf_line(buf, at) {
            Line::Done(l, next) => (l, next),
            Line::Incomplete => return Parsed::Incomplete,
            Line::Error(offset, reason) => return Parsed::Error { offset, reason },
        };
        if line.first() != Some(&b'$') {
            return Parsed::Error {
                offset: line_at,
                reason: format!("expected '$' (bulk length), found '{}'", show(line)),
            };
        }
        let len = match parse_decimal(&line[1..]) {
            Some(n) if n <= BULK_BYTES_MAX => n,
            _ => {
                return Parsed::Error {
                    offset: line_at,
                    reason: format!(
                        "invalid bulk length '{}' (limit {BULK_BYTES_MAX} bytes)",
                        show(&line[1..])
                    ),
                }
            }
        };
        // `len <= BULK_BYTES_MAX` fits in usize on every supported target.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let Some(end) = next.checked_add(len) else {
            return Parsed::Incomplete;
        };
        if buf.len() < end.saturating_add(2) {
            return Parsed::Incomplete;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Parsed::Error {
                offset: end,
                reason: "bulk argument not followed by CRLF".to_string(),
            };
        }
        argv.push(&buf[next..end]);
        at = end + 2;
    }
    Parsed::Command { argv, len: at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn encodes_like_redis() {
        let mut out = Vec::new();
        encode_command(&mut out, &["SELECT", "0"]);
        assert_eq!(out, b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n");
    }

    #[test]
    fn every_strict_prefix_of_a_command_is_incomplete() {
        let mut out = Vec::new();
        encode_command(&mut out, &[&b"SET"[..], b"k", b"v\r\nx"]);
        for cut in 0..out.len() {
            assert_eq!(parse(&out[..cut]), Parsed::Incomplete, "cut {cut}");
        }
        assert!(matches!(parse(&out), Parsed::Command { len, .. } if len == out.len()));
    }

    #[test]
    fn annotations_and_errors() {
        assert_eq!(
            parse(b"#TS:17\r\n*1"),
            Parsed::Annotation {
                line: b"#TS:17",
                len: 8
            }
        );
        assert!(matches!(
            parse(b"SET k v\r\n"),
            Parsed::Error { offset: 0, .. }
        ));
        assert!(matches!(parse(b"*0\r\n"), Parsed::Error { .. }));
        assert!(matches!(
            parse(b"*1\r\n$3\r\nabcXY"),
            Parsed::Error { offset: 11, .. }
        ));
        assert!(matches!(
            parse(b"*1\r\n$-1\r\n"),
            Parsed::Error { offset: 4, .. }
        ));
        // A huge declared length is just incomplete, and nothing is allocated for it.
        assert_eq!(parse(b"*1\r\n$536870912\r\nab"), Parsed::Incomplete);
        assert!(matches!(
            parse(b"*1\r\n$536870913\r\n"),
            Parsed::Error { .. }
        ));
        assert!(matches!(
            parse(b"*99999999999999999999\r\n"),
            Parsed::Error { .. }
        ));
        let long = vec![b'#'; LINE_BYTES_MAX + 1];
        assert!(matches!(parse(&long), Parsed::Error { .. }));
    }

    quickcheck! {
        fn round_trip(args: Vec<Vec<u8>>) -> bool {
            if args.is_empty() { return true; }
            let mut out = Vec::new();
            encode_command(&mut out, &args);
            match parse(&out) {
                Parsed::Command { argv, len } => len == out.len()
                    && argv.iter().map(|a| a.to_vec()).collect::<Vec<_>>() == args,
                _ => false,
            }
        }
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let mut buf = bytes;
            buf.insert(0, b'*');
            let _ = parse(&buf);
            let _ = parse(&buf[1..]);
            true
        }
    }
}
