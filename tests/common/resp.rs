//! RESP2/RESP3 framing for tests: encode commands, find where one reply ends, split a reply into
//! its elements (so a test can sort them), and escape bytes for readable failure messages.
//!
//! The decoder is a pure function over bytes: `Ok(None)` means "need more bytes", never an error.

use std::fmt;

/// Nesting deeper than this is treated as a protocol error (Redis itself nests a handful of
/// levels at most; this only stops a runaway reply from overflowing the test's stack).
pub const NESTING_DEPTH_MAX: usize = 64;

/// One complete RESP value, keeping its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The type byte: `+ - : $ * _ , # ! = ( % ~ > |`.
    pub kind: u8,
    /// Every byte of the value, including any nested values.
    pub raw: Vec<u8>,
    /// Length of the type byte + header line (`*3\r\n`), i.e. where the first child starts.
    pub header_len: usize,
    /// Nested values of aggregates (`* ~ > % |`; maps and attributes list key, value, key, ...).
    pub children: Vec<Frame>,
}

/// The bytes do not form valid RESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RESP at byte {}: {}", self.offset, self.reason)
    }
}

impl Frame {
    /// True for aggregate kinds whose children can be reordered.
    pub fn is_aggregate(&self) -> bool {
        matches!(self.kind, b'*' | b'~' | b'>' | b'%' | b'|') && self.header_len < self.raw.len()
    }

    /// True for `-` errors and `!` blob errors.
    pub fn is_error(&self) -> bool {
        matches!(self.kind, b'-' | b'!')
    }

    /// The value with its top-level elements sorted by their bytes; a map's key/value pairs are
    /// sorted as pairs. Non-aggregates are returned unchanged.
    pub fn sorted(&self) -> Frame {
        let pairs = matches!(self.kind, b'%' | b'|');
        self.sorted_by(if pairs { 2 } else { 1 })
    }

    /// The value with its top-level elements sorted in groups of two (for RESP2 flat
    /// field/value arrays such as HGETALL or ZRANGE WITHSCORES).
    pub fn sorted_pairs(&self) -> Frame {
        self.sorted_by(2)
    }

    /// The value with every aggregate at every depth sorted (maps by pair).
    pub fn sorted_deep(&self) -> Frame {
        let mut copy = self.clone();
        copy.children = copy.children.iter().map(Frame::sorted_deep).collect();
        copy.rebuild_raw();
        copy.sorted()
    }

    fn sorted_by(&self, group: usize) -> Frame {
        if !self.is_aggregate() || !self.children.len().is_multiple_of(group) {
            return self.clone();
        }
        let mut groups: Vec<Vec<Frame>> =
            self.children.chunks(group).map(<[Frame]>::to_vec).collect();
        groups.sort_by(|a, b| {
            let ka: Vec<&[u8]> = a.iter().map(|f| f.raw.as_slice()).collect();
            let kb: Vec<&[u8]> = b.iter().map(|f| f.raw.as_slice()).collect();
            ka.cmp(&kb)
        });
        let mut copy = self.clone();
        copy.children = groups.into_iter().flatten().collect();
        copy.rebuild_raw();
        copy
    }

    fn rebuild_raw(&mut self) {
        let mut raw = self.raw[..self.header_len].to_vec();
        for c in &self.children {
            raw.extend_from_slice(&c.raw);
        }
        self.raw = raw;
    }
}

/// Parses one complete RESP value at the start of `buf`.
/// Returns `Ok(None)` if `buf` holds only a prefix of a value.
/// An attribute (`|`) is returned on its own; see [`reply_len`] for "attribute + value".
pub fn parse_frame(buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    parse_at(buf, 0, 0).map(|o| o.map(|(frame, _)| frame))
}

/// Length of the first complete reply in `buf` (an attribute and the value it annotates count
/// as one reply), or `Ok(None)` if the reply is incomplete.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let mut pos = 0;
    loop {
        match parse_at(buf, pos, 0)? {
            None => return Ok(None),
            Some((frame, end)) => {
                if frame.kind == b'|' {
                    pos = end;
                    continue;
                }
                return Ok(Some(end));
            }
        }
    }
}

fn err<T>(offset: usize, reason: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError {
        offset,
        reason: reason.into(),
    })
}

/// Finds the `\r\n` ending the line that starts at `start`; returns the index of `\r`.
fn line_end(buf: &[u8], start: usize) -> Option<usize> {
    buf.get(start..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| start + i)
}

fn parse_int(line: &[u8], offset: usize) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map_or_else(
            || err(offset, format!("bad length/count {:?}", escape(line))),
            Ok,
        )
}

fn parse_at(
    buf: &[u8],
    start: usize,
    depth: usize,
) -> Result<Option<(Frame, usize)>, ProtocolError> {
    if depth > NESTING_DEPTH_MAX {
        return err(start, "nesting too deep");
    }
    let Some(&kind) = buf.get(start) else {
        return Ok(None);
    };
    let Some(eol) = line_end(buf, start + 1) else {
        // The header line may legitimately be split across reads; reject only obvious garbage.
        if !b"+-:$*_,#!=(%~>|".contains(&kind) {
            return err(start, format!("unknown type byte {:?}", kind as char));
        }
        return Ok(None);
    };
    let line = &buf[start + 1..eol];
    let header_end = eol + 2;
    let header_len = header_end - start;
    let simple = |end: usize| Frame {
        kind,
        raw: buf[start..end].to_vec(),
        header_len: end - start,
        children: Vec::new(),
    };
    match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' => Ok(Some((simple(header_end), header_end))),
        b'_' => {
            if !line.is_empty() {
                return err(start, "null (_) with payload");
            }
            Ok(Some((simple(header_end), header_end)))
        }
        b'$' | b'!' | b'=' => {
            if line == b"?" {
                return err(start, "streamed strings are not supported");
            }
            let len = parse_int(line, start + 1)?;
            if len == -1 && kind == b'$' {
                return Ok(Some((simple(header_end), header_end)));
            }
            let Ok(len) = usize::try_from(len) else {
                return err(start + 1, format!("negative length {len}"));
            };
            let end = header_end + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return err(end - 2, "bulk payload not followed by CRLF");
            }
            Ok(Some((simple(end), end)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            if line == b"?" {
                return err(start, "streamed aggregates are not supported");
            }
            let count = parse_int(line, start + 1)?;
            if count == -1 && kind == b'*' {
                return Ok(Some((simple(header_end), header_end)));
            }
            let Ok(mut count) = usize::try_from(count) else {
                return err(start + 1, format!("negative count {count}"));
            };
            if matches!(kind, b'%' | b'|') {
                count *= 2;
            }
            let mut children = Vec::with_capacity(count.min(1024));
            let mut pos = header_end;
            for _ in 0..count {
                match parse_at(buf, pos, depth + 1)? {
                    None => return Ok(None),
                    Some((child, end)) => {
                        children.push(child);
                        pos = end;
                    }
                }
            }
            let frame = Frame {
                kind,
                raw: buf[start..pos].to_vec(),
                header_len,
                children,
            };
            Ok(Some((frame, pos)))
        }
        other => err(start, format!("unknown type byte {:?}", other as char)),
    }
}

/// Encodes a command as a RESP multibulk (`*N\r\n$len\r\narg\r\n...`).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bytes as a readable string: printable ASCII as is, `\r \n \t \\ \"` escaped, the rest `\xHH`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_incomplete_replies() {
        assert_eq!(reply_len(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(reply_len(b"+OK\r"), Ok(None));
        assert_eq!(reply_len(b"$3\r\nabc\r\n+x"), Ok(Some(9)));
        assert_eq!(reply_len(b"$3\r\nabc\r"), Ok(None));
        assert_eq!(reply_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(reply_len(b"*2\r\n:1\r\n"), Ok(None));
        assert_eq!(reply_len(b"*2\r\n:1\r\n*-1\r\n"), Ok(Some(13)));
        assert_eq!(reply_len(b"%1\r\n+a\r\n,1.5\r\n"), Ok(Some(14)));
        assert_eq!(reply_len(b"|1\r\n+a\r\n+b\r\n:1\r\n"), Ok(Some(16)));
        assert_eq!(reply_len(b"=7\r\ntxt:abc\r\n"), Ok(Some(13)));
        assert!(reply_len(b"?x\r\n").is_err());
        assert!(reply_len(b"$3\r\nabcde\r\n").is_err());
    }

    #[test]
    fn sorting_keeps_elements_byte_exact() {
        let f = parse_frame(b"*3\r\n$1\r\nc\r\n$1\r\na\r\n$1\r\nb\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(f.sorted().raw, b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
        let m = parse_frame(b"%2\r\n+b\r\n:1\r\n+a\r\n:2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(m.sorted().raw, b"%2\r\n+a\r\n:2\r\n+b\r\n:1\r\n");
        let p = parse_frame(b"*4\r\n+b\r\n:1\r\n+a\r\n:2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.sorted_pairs().raw, b"*4\r\n+a\r\n:2\r\n+b\r\n:1\r\n");
    }

    #[test]
    fn encode_and_escape() {
        assert_eq!(
            encode_command(&["GET", "k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
        assert_eq!(escape(b"a\r\n\x00\""), "a\\r\\n\\x00\\\"");
    }
}
