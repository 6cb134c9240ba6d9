//! RESP: the request parser (multibulk and inline commands) and the reply encoder (RESP2/RESP3).
//!
//! The parser is incremental: [`RequestParser::parse`] consumes complete commands from the front of
//! a `BytesMut` and keeps a partially received multibulk command in its own state, so a huge
//! pipeline or a huge argument is scanned once. Nothing is allocated from a client-declared length
//! before the bytes have arrived (capacities are capped by what is buffered).

use bytes::{Buf, Bytes, BytesMut};

use crate::limits::{
    ARGS_PREALLOC_MAX, GUEST_BULK_BYTES_MAX, GUEST_MULTIBULK_COUNT_MAX, INLINE_BYTES_MAX,
    MULTIBULK_COUNT_MAX,
};

const GUEST_MULTIBULK: &str = "unauthenticated multibulk length";
const GUEST_BULK: &str = "unauthenticated bulk length";

/// A protocol error: the connection answers `-ERR Protocol error: <msg>` and is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    pub fn reply_text(&self) -> String {
        format!("ERR Protocol error: {}", self.0)
    }

    /// The command is over a limit for unauthenticated clients (it may be fine once an AUTH
    /// still in flight has been executed).
    pub fn is_guest_limit(&self) -> bool {
        self.0 == GUEST_MULTIBULK || self.0 == GUEST_BULK
    }
}

/// Arguments at least this long count at their declared length while they arrive (Redis's
/// `PROTO_MBULK_BIG_ARG`, above which it allocates the whole argument at once).
pub const BIG_ARG_BYTES: usize = 32 * 1024;

#[derive(Debug, Default)]
pub struct RequestParser {
    /// Arguments still expected by the multibulk command being received (0 = none in progress).
    pending_args: usize,
    args: Vec<Bytes>,
    /// Bytes of `args` (the arguments of the command being received, out of the buffer).
    args_bytes: usize,
    /// Apply Redis's limits for clients that have not authenticated: at most
    /// `GUEST_MULTIBULK_COUNT_MAX` arguments and `GUEST_BULK_BYTES_MAX` bytes per argument.
    pub guest: bool,
}

/// Outcome of one parse step.
pub enum Parsed {
    Command(Vec<Bytes>),
    /// More bytes are needed.
    Incomplete,
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a multibulk command has been started but not completed.
    pub fn in_progress(&self) -> bool {
        self.pending_args > 0
    }

    /// The query buffer's size as Redis shows it (CLIENT LIST `qbuf`), and the memory it
    /// stands for (`tot-mem`, `maxmemory-clients`). The size is `buf` without the `$<len>` line
    /// of a bulk argument being received (Redis drops it before the argument's bytes arrive),
    /// so a client sending a big argument shows the bytes of it received so far. The memory of
    /// an argument of at least [`BIG_ARG_BYTES`] being received is its declared length (with its
    /// CRLF): Redis allocates that at once; we take it as the bytes arrive, but they all must
    /// arrive and be held before the command can run. The arguments of the command already
    /// received (out of `buf`, Redis's `argv`) count in the memory too.
    pub fn query_buffer_bytes(&self, buf: &[u8]) -> (usize, usize) {
        if self.pending_args == 0 {
            return (buf.len(), buf.len());
        }
        let whole = (buf.len(), buf.len() + self.args_bytes);
        if buf.first() != Some(&b'$') {
            return whole;
        }
        // A `$<len>` line is at most "$" + 20 digits + CRLF.
        let head = &buf[..buf.len().min(24)];
        let Some(end) = find_crlf(head, 0) else {
            return whole;
        };
        let received = buf.len() - (end + 2);
        let declared = match parse_i64(&buf[1..end]) {
            Some(l) if l >= BIG_ARG_BYTES as i64 => (l as u64).saturating_add(2),
            _ => 0,
        };
        let declared = declared.min(usize::MAX as u64) as usize;
        (received, received.max(declared) + self.args_bytes)
    }

    /// Parse one command from the front of `buf`. Empty commands (`*0`, blank inline lines) are
    /// skipped. `bulk_max` is `proto-max-bulk-len`.
    pub fn parse(&mut self, buf: &mut BytesMut, bulk_max: u64) -> Result<Parsed, ProtocolError> {
        if self.pending_args == 0 && !self.guest {
            if let Some(args) = parse_complete(buf, bulk_max) {
                return Ok(Parsed::Command(args));
            }
        }
        loop {
            if self.pending_args == 0 {
                if buf.is_empty() {
                    return Ok(Parsed::Incomplete);
                }
                if buf[0] != b'*' {
                    match parse_inline(buf)? {
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Parsed::Command(args)),
                        None => return Ok(Parsed::Incomplete),
                    }
                }
                let Some(line_end) = find_crlf(buf, 0) else {
                    if buf.len() > INLINE_BYTES_MAX {
                        return Err(ProtocolError("too big mbulk count string".into()));
                    }
                    return Ok(Parsed::Incomplete);
                };
                let count = parse_i64(&buf[1..line_end]);
                let count = match count {
                    Some(c)
                        if c > GUEST_MULTIBULK_COUNT_MAX
                            && self.guest
                            && c <= MULTIBULK_COUNT_MAX =>
                    {
                        return Err(ProtocolError(GUEST_MULTIBULK.into()))
                    }
                    Some(c) if c <= MULTIBULK_COUNT_MAX => c,
                    _ => return Err(ProtocolError("invalid multibulk length".into())),
                };
                buf.advance(line_end + 2);
                if count <= 0 {
                    continue;
                }
                self.pending_args = count as usize;
                self.args = Vec::with_capacity((count as usize).min(ARGS_PREALLOC_MAX));
            }
            // Receive bulk arguments.
            while self.pending_args > 0 {
                if buf.is_empty() {
                    return Ok(Parsed::Incomplete);
                }
                if buf[0] != b'$' {
                    let c = buf[0] as char;
                    return Err(ProtocolError(format!("expected '$', got '{c}'")));
                }
                let Some(line_end) = find_crlf(buf, 0) else {
                    if buf.len() > INLINE_BYTES_MAX {
                        return Err(ProtocolError("too big bulk count string".into()));
                    }
                    return Ok(Parsed::Incomplete);
                };
                let len = match parse_i64(&buf[1..line_end]) {
                    Some(l) if l >= 0 && (l as u64) <= bulk_max => l as usize,
                    _ => return Err(ProtocolError("invalid bulk length".into())),
                };
                if self.guest && len > GUEST_BULK_BYTES_MAX {
                    return Err(ProtocolError(GUEST_BULK.into()));
                }
                let need = line_end + 2 + len + 2;
                if buf.len() < need {
                    // Reserve for the declared bulk only up to what a read can bring; the buffer
                    // grows as bytes actually arrive.
                    return Ok(Parsed::Incomplete);
                }
                buf.advance(line_end + 2);
                let arg = buf.split_to(len).freeze();
                buf.advance(2);
                self.args_bytes += arg.len();
                self.args.push(arg);
                self.pending_args -= 1;
            }
            self.args_bytes = 0;
            return Ok(Parsed::Command(std::mem::take(&mut self.args)));
        }
    }
}

/// Most arguments the fast path takes (longer commands go through the incremental path).
const FAST_ARGS_MAX: usize = 16;

/// The fast path of [`RequestParser::parse`]: a multibulk command that is entirely in `buf` and
/// well formed is cut out with one split, its arguments being slices of that one frozen block.
/// Anything else (incomplete, malformed, empty, long) returns None and leaves `buf` untouched for
/// the incremental path, which gives the same result and the exact protocol errors.
#[inline]
fn parse_complete(buf: &mut BytesMut, bulk_max: u64) -> Option<Vec<Bytes>> {
    let b: &[u8] = buf;
    if b.first() != Some(&b'*') {
        return None;
    }
    let (count, mut at) = fast_len(b, 1)?;
    if count == 0 || count > FAST_ARGS_MAX {
        return None;
    }
    let mut spans = [(0usize, 0usize); FAST_ARGS_MAX];
    for span in spans.iter_mut().take(count) {
        if b.get(at) != Some(&b'$') {
            return None;
        }
        let (len, start) = fast_len(b, at + 1)?;
        if len as u64 > bulk_max {
            return None;
        }
        let end = start + len;
        // The bulk and its CRLF must be there (the CRLF's bytes are not checked, as in the
        // incremental path and in Redis).
        if end + 2 > b.len() {
            return None;
        }
        *span = (start, end);
        at = end + 2;
    }
    let frame = buf.split_to(at).freeze();
    Some(
        spans[..count]
            .iter()
            .map(|&(s, e)| frame.slice(s..e))
            .collect(),
    )
}

/// A length header's digits at `b[i..]` followed by CRLF: (value, index after the CRLF). Only the
/// plain form (`0`, or digits without a leading zero, at most 18 of them) is taken; anything else
/// is left to the incremental path and `parse_i64`, which agree with it on that form.
#[inline]
fn fast_len(b: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut i = start;
    let mut v: usize = 0;
    loop {
        let c = *b.get(i)?;
        match c {
            b'0'..=b'9' => {
                if i > start && v == 0 {
                    return None; // leading zero
                }
                if i - start >= 18 {
                    return None;
                }
                v = v * 10 + (c - b'0') as usize;
                i += 1;
            }
            b'\r' if i > start => {
                return if *b.get(i + 1)? == b'\n' {
                    Some((v, i + 2))
                } else {
                    None
                };
            }
            _ => return None,
        }
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = memchr(b'\r', &buf[i..]) {
        let at = i + p;
        if at + 1 < buf.len() {
            if buf[at + 1] == b'\n' {
                return Some(at);
            }
            i = at + 1;
        } else {
            return None;
        }
    }
    None
}

#[inline]
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parse a signed decimal integer exactly as Redis's `string2ll` (no spaces, no leading '+').
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Parse an inline command line. Returns `None` when the line is not complete yet.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_BYTES_MAX {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let mut end = nl;
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let args = split_args(&buf[..end])
        .ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
    buf.advance(nl + 1);
    Ok(Some(args.into_iter().map(Bytes::from).collect()))
}

/// Split a line into arguments the way Redis's `sdssplitargs` (and redis-cli) does: whitespace
/// separated, "double quotes" with C escapes (\n \r \t \b \a \\ \" \xHH), 'single quotes' with \'.
/// Returns `None` on unbalanced quotes or a closing quote not followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n || line[i] == 0 {
            // Like sdssplitargs, a NUL ends the line.
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n || line[i] == 0 {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(h(line[i + 2]) * 16 + h(line[i + 3]));
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n || line[i] == 0 {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// A reply, encoded according to the client's protocol version by [`encode`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Status(&'static str),
    StatusOwned(String),
    /// Full error text without the leading '-', e.g. `ERR syntax error`.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// A bulk string read from the keyspace without a copy to the heap: GET and MGET of a short
    /// string value (see `Reply::bulk_of`). Encoded exactly as `Bulk`.
    SmallBulk(crate::types::compact::CompactBytes),
    /// Null bulk (RESP2 `$-1`, RESP3 `_`).
    Nil,
    /// Null array (RESP2 `*-1`, RESP3 `_`).
    NilArray,
    Array(Vec<Reply>),
    /// RESP3 map; RESP2 flat array.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set; RESP2 array.
    Set(Vec<Reply>),
    /// RESP3 double; RESP2 bulk string.
    Double(f64),
    /// RESP3 boolean; RESP2 integer 1/0.
    Bool(bool),
    /// RESP3 push; RESP2 array.
    Push(Vec<Reply>),
    /// RESP3 verbatim string `=len\r\ntxt:...`; RESP2 bulk.
    Verbatim(Bytes),
    /// Pre-encoded bytes, written as they are.
    Raw(Bytes),
}

pub const OK: Reply = Reply::Status("OK");

impl Reply {
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }
    /// A bulk reply with a stored string: a short one is carried inline, a long one shares
    /// the stored buffer. Neither allocates.
    #[inline]
    pub fn bulk_of(s: &crate::types::compact::CompactBytes) -> Reply {
        if s.is_inline() {
            Reply::SmallBulk(s.clone())
        } else {
            Reply::Bulk(s.to_bytes())
        }
    }
    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
    /// Approximate encoded size, for output-buffer accounting.
    pub fn approx_size(&self) -> usize {
        match self {
            Reply::Bulk(b) | Reply::Verbatim(b) | Reply::Raw(b) => b.len() + 16,
            Reply::SmallBulk(b) => b.len() + 16,
            Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => {
                16 + v.iter().map(Reply::approx_size).sum::<usize>()
            }
            Reply::Map(v) => {
                16 + v
                    .iter()
                    .map(|(a, b)| a.approx_size() + b.approx_size())
                    .sum::<usize>()
            }
            Reply::Error(s) | Reply::StatusOwned(s) => s.len() + 3,
            _ => 24,
        }
    }
}

/// Format a double as Redis 7.0 does in replies (`%.17g`, with `inf`/`-inf`).
pub fn fmt_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    fmt_g(d, 17)
}

/// C's `%.<prec>g`.
pub fn fmt_g(d: f64, prec: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let prec = prec.max(1);
    let e = format!("{:.*e}", prec - 1, d);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Encode `r` for a client speaking protocol `proto` (2 or 3).
pub fn encode(r: &Reply, proto: u8, out: &mut Vec<u8>) {
    match r {
        Reply::Status(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::StatusOwned(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(s) => {
            out.push(b'-');
            // Errors never contain newlines (Redis replaces them with spaces).
            for &c in s.as_bytes() {
                out.push(if c == b'\r' || c == b'\n' { b' ' } else { c });
            }
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(i) => {
            out.push(b':');
            push_int(out, *i);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => push_bulk(out, b),
        Reply::SmallBulk(b) => push_bulk(out, b),
        Reply::Nil => {
            if proto >= 3 {
                out.extend_from_slice(b"_\r\n")
            } else {
                out.extend_from_slice(b"$-1\r\n")
            }
        }
        Reply::NilArray => {
            if proto >= 3 {
                out.extend_from_slice(b"_\r\n")
            } else {
                out.extend_from_slice(b"*-1\r\n")
            }
        }
        Reply::Array(v) => {
            push_header(out, b'*', v.len());
            for x in v {
                encode(x, proto, out);
            }
        }
        Reply::Set(v) => {
            push_header(out, if proto >= 3 { b'~' } else { b'*' }, v.len());
            for x in v {
                encode(x, proto, out);
            }
        }
        Reply::Push(v) => {
            push_header(out, if proto >= 3 { b'>' } else { b'*' }, v.len());
            for x in v {
                encode(x, proto, out);
            }
        }
        Reply::Map(v) => {
            if proto >= 3 {
                push_header(out, b'%', v.len());
            } else {
                push_header(out, b'*', v.len() * 2);
            }
            for (k, x) in v {
                encode(k, proto, out);
                encode(x, proto, out);
            }
        }
        Reply::Double(d) => {
            let s = fmt_double(*d);
            if proto >= 3 {
                out.push(b',');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            } else {
                push_bulk(out, s.as_bytes());
            }
        }
        Reply::Bool(b) => {
            if proto >= 3 {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
            } else {
                out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
            }
        }
        Reply::Verbatim(b) => {
            if proto >= 3 {
                push_header(out, b'=', b.len() + 4);
                out.extend_from_slice(b"txt:");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            } else {
                push_bulk(out, b);
            }
        }
        Reply::Raw(b) => out.extend_from_slice(b),
    }
}

#[inline]
fn push_int(out: &mut Vec<u8>, i: i64) {
    if (0..10).contains(&i) {
        out.push(b'0' + i as u8);
        return;
    }
    out.extend_from_slice(itoa_buf(i).as_bytes());
}

/// An integer's decimal text, on the stack.
pub(crate) struct IntBuf {
    buf: [u8; 20],
    start: usize,
}
impl IntBuf {
    pub(crate) fn new(i: i64) -> IntBuf {
        itoa_buf(i)
    }
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(i: i64) -> IntBuf {
    let mut buf = [0u8; 20];
    let mut pos = 20;
    let neg = i < 0;
    let mut v = i.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        pos -= 1;
        buf[pos] = b'-';
    }
    IntBuf { buf, start: pos }
}

/// `<tag><n>\r\n` in one copy (aggregate and bulk headers).
#[inline]
fn push_header(out: &mut Vec<u8>, tag: u8, n: usize) {
    if n < 10 {
        out.extend_from_slice(&[tag, b'0' + n as u8, b'\r', b'\n']);
        return;
    }
    if n < 100 {
        out.extend_from_slice(&[
            tag,
            b'0' + (n / 10) as u8,
            b'0' + (n % 10) as u8,
            b'\r',
            b'\n',
        ]);
        return;
    }
    out.push(tag);
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

#[inline]
fn push_bulk(out: &mut Vec<u8>, b: &[u8]) {
    push_header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Builds an array of bulk strings directly in its wire form (identical in RESP2 and RESP3),
/// so a long range reply (LRANGE …) costs one buffer instead of one `Bytes` and one `Reply`
/// per element.
pub struct BulkArrayWriter {
    buf: Vec<u8>,
}

impl BulkArrayWriter {
    /// Start an array of exactly `n` elements; `size_hint` is the expected payload bytes.
    pub fn new(n: usize, size_hint: usize) -> Self {
        let mut buf = Vec::with_capacity(size_hint + n * 8 + 16);
        push_header(&mut buf, b'*', n);
        BulkArrayWriter { buf }
    }

    #[inline]
    pub fn bulk(&mut self, b: &[u8]) {
        push_bulk(&mut self.buf, b);
    }

    /// An integer sent as its decimal bulk string (how packed integer elements are returned).
    #[inline]
    pub fn bulk_int(&mut self, i: i64) {
        push_bulk(&mut self.buf, itoa_buf(i).as_bytes());
    }

    pub fn finish(self) -> Reply {
        Reply::Raw(Bytes::from(self.buf))
    }
}

/// Encode a command as a RESP multibulk (used for the log and MONITOR-like feeds).
pub fn encode_command(out: &mut Vec<u8>, argv: &[Bytes]) {
    // One reservation for the whole command (headers are at most 24 bytes each).
    let need: usize = argv.iter().map(|a| a.len() + 24).sum::<usize>() + 24;
    out.reserve(need);
    push_header(out, b'*', argv.len());
    for a in argv {
        push_bulk(out, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn query_buffer_counts_big_arguments_at_their_declared_length() {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nset\r\n$100000\r\nvvvv"[..]);
        assert!(matches!(p.parse(&mut buf, 1 << 20), Ok(Parsed::Incomplete)));
        // Shown: the 4 bytes of the big argument; counted: its 100000 + CRLF and "set".
        assert_eq!(p.query_buffer_bytes(&buf), (4, 100_002 + 3));
        // A small argument counts as received.
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nget\r\n$100\r\nkk"[..]);
        assert!(matches!(p.parse(&mut buf, 1 << 20), Ok(Parsed::Incomplete)));
        assert_eq!(p.query_buffer_bytes(&buf), (2, 2 + 3));
        // Nothing pending: the buffer as it is.
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*1\r"[..]);
        let mut p = RequestParser::new();
        assert!(matches!(p.parse(&mut buf, 1 << 20), Ok(Parsed::Command(_))));
        assert_eq!(p.query_buffer_bytes(&buf), (3, 3));
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = vec![];
        loop {
            match p.parse(&mut buf, 512 * 1024 * 1024)? {
                Parsed::Command(c) => out.push(c),
                Parsed::Incomplete => return Ok(out),
            }
        }
    }

    #[test]
    fn multibulk_and_inline() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nset \"x y\" 'z'\r\n\r\n*0\r\nPING\n")
            .unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(
            cmds[1],
            vec![Bytes::from("set"), Bytes::from("x y"), Bytes::from("z")]
        );
        assert_eq!(cmds[2], vec![Bytes::from("PING")]);
    }

    #[test]
    fn protocol_errors_have_redis_texts() {
        assert_eq!(
            parse_all(b"*x\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").unwrap_err().0,
            "invalid bulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\n+x\r\n").unwrap_err().0,
            "expected '$', got '+'"
        );
        assert_eq!(
            parse_all(b"set \"a\r\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
        assert_eq!(
            parse_all(b"*1\r\n$99999999999\r\n").unwrap_err().0,
            "invalid bulk length"
        );
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1000000000\r\n$536870912\r\nab"[..]);
        assert!(matches!(
            p.parse(&mut buf, 512 * 1024 * 1024),
            Ok(Parsed::Incomplete)
        ));
        assert!(p.args.capacity() <= ARGS_PREALLOC_MAX);
    }

    #[test]
    fn double_formatting_matches_redis() {
        assert_eq!(fmt_double(1.5), "1.5");
        assert_eq!(fmt_double(3.0), "3");
        assert_eq!(fmt_double(0.1), "0.10000000000000001");
        assert_eq!(fmt_double(f64::INFINITY), "inf");
        assert_eq!(fmt_double(1e20), "1e+20");
        assert_eq!(fmt_double(1e-5), "1.0000000000000001e-05");
        assert_eq!(fmt_double(1.5e-5), "1.5e-05");
        assert_eq!(fmt_double(-2.5), "-2.5");
        assert_eq!(fmt_double(123456789.0), "123456789");
    }

    fn encode_cmd(args: &[Vec<u8>]) -> Vec<u8> {
        let a: Vec<Bytes> = args.iter().map(|x| Bytes::from(x.clone())).collect();
        let mut out = vec![];
        encode_command(&mut out, &a);
        out
    }

    fn encode_cmd_reference(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn headers_and_integers_at_digit_boundaries() {
        for n in [0usize, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65536] {
            let args = vec![vec![b'x'; n]; (n % 13) + 1];
            assert_eq!(encode_cmd(&args), encode_cmd_reference(&args), "len {n}");
        }
        let many = vec![b"a".to_vec(); 120];
        assert_eq!(encode_cmd(&many), encode_cmd_reference(&many));
        for i in [0i64, 9, 10, -1, -9, -10, 99, 100, i64::MAX, i64::MIN] {
            let mut out = vec![];
            encode(&Reply::Int(i), 2, &mut out);
            assert_eq!(out, format!(":{i}\r\n").into_bytes());
        }
    }

    #[test]
    fn fast_len_agrees_with_parse_i64() {
        for s in [
            &b"0"[..],
            b"1",
            b"9",
            b"10",
            b"00",
            b"01",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"123456789012345678",
            b"1234567890123456789",
            b"12a",
        ] {
            let mut line = s.to_vec();
            line.extend_from_slice(b"\r\n");
            if let Some((v, next)) = fast_len(&line, 0) {
                assert_eq!(Some(v as i64), parse_i64(s), "{s:?}");
                assert_eq!(next, line.len());
            }
        }
        assert_eq!(fast_len(b"12\r\n", 0), Some((12, 4)));
        assert_eq!(fast_len(b"12\r", 0), None);
        assert_eq!(fast_len(b"12\rx", 0), None);
        assert_eq!(fast_len(b"\r\n", 0), None);
    }

    #[test]
    fn fast_path_leaves_incomplete_and_odd_input_to_the_incremental_path() {
        // Complete: one split, arguments are slices.
        let mut p = RequestParser::new();
        let mut buf =
            BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPI"[..]);
        match p.parse(&mut buf, 1 << 20).unwrap() {
            Parsed::Command(c) => {
                assert_eq!(c, vec![Bytes::from("SET"), Bytes::from("k"), Bytes::new()])
            }
            Parsed::Incomplete => panic!("complete command"),
        }
        assert_eq!(&buf[..], b"*1\r\n$4\r\nPI");
        assert!(matches!(
            p.parse(&mut buf, 1 << 20).unwrap(),
            Parsed::Incomplete
        ));
        buf.extend_from_slice(b"NG\r\n");
        match p.parse(&mut buf, 1 << 20).unwrap() {
            Parsed::Command(c) => assert_eq!(c, vec![Bytes::from("PING")]),
            Parsed::Incomplete => panic!("complete command"),
        }
        // More arguments than the fast path takes, and a bulk over the limit.
        let args: Vec<Vec<u8>> = (0..100).map(|i| format!("a{i}").into_bytes()).collect();
        assert_eq!(parse_all(&encode_cmd(&args)).unwrap()[0].len(), 100);
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
        match p.parse(&mut buf, 4) {
            Err(e) => assert_eq!(e.0, "invalid bulk length"),
            Ok(_) => panic!("bulk over proto-max-bulk-len accepted"),
        }
    }

    quickcheck! {
        fn encode_int_matches_format(i: i64) -> bool {
            let mut out = vec![];
            encode(&Reply::Int(i), 3, &mut out);
            out == format!(":{i}\r\n").into_bytes()
        }

        fn encode_command_matches_reference(cmd: Vec<Vec<u8>>) -> bool {
            encode_cmd(&cmd) == encode_cmd_reference(&cmd)
        }

        fn roundtrip(cmds: Vec<Vec<Vec<u8>>>) -> TestResult {
            let cmds: Vec<_> = cmds.into_iter().filter(|c| !c.is_empty()).collect();
            let mut stream = vec![];
            for c in &cmds { stream.extend(encode_cmd(c)); }
            let parsed = parse_all(&stream).unwrap();
            let parsed: Vec<Vec<Vec<u8>>> = parsed.into_iter().map(|c| c.into_iter().map(|b| b.to_vec()).collect()).collect();
            TestResult::from_bool(parsed == cmds)
        }

        fn any_split_parses_the_same(cmds: Vec<Vec<Vec<u8>>>, splits: Vec<usize>) -> TestResult {
            let cmds: Vec<_> = cmds.into_iter().filter(|c| !c.is_empty()).collect();
            let mut stream = vec![];
            for c in &cmds { stream.extend(encode_cmd(c)); }
            let mut p = RequestParser::new();
            let mut buf = BytesMut::new();
            let mut got = vec![];
            let mut pos = 0;
            let mut cuts: Vec<usize> = splits.into_iter().map(|s| if stream.is_empty() { 0 } else { s % (stream.len() + 1) }).collect();
            cuts.push(stream.len());
            cuts.sort();
            for cut in cuts {
                if cut < pos { continue; }
                buf.extend_from_slice(&stream[pos..cut]);
                pos = cut;
                while let Parsed::Command(c) = p.parse(&mut buf, 1 << 29).unwrap() {
                    got.push(c.into_iter().map(|b| b.to_vec()).collect::<Vec<_>>());
                }
            }
            TestResult::from_bool(got == cmds)
        }

        fn fast_len_is_parse_i64_on_what_it_takes(n: u64, junk: Vec<u8>) -> bool {
            let mut line = n.to_string().into_bytes();
            line.extend_from_slice(&junk);
            let end = line.len();
            line.extend_from_slice(b"\r\n");
            match fast_len(&line, 0) {
                Some((v, _)) => parse_i64(&line[..end]) == Some(v as i64),
                None => true,
            }
        }

        fn arbitrary_bytes_never_panic(data: Vec<u8>) -> bool {
            let _ = parse_all(&data);
            true
        }
    }
}
