//! Checksummed batches inside incr files, and the reader for incr (and plain RESP) files.
//!
//! A batch is one annotation line followed by `len` payload bytes:
//!
//! ```text
//! #SB <seq> <len> <prev-crc> <crc>\r\n<payload>
//! ```
//!
//! - `seq`: decimal, 1 for the first batch of a file, +1 for each next batch.
//! - `len`: decimal, payload length in bytes.
//! - `prev-crc`: 8 lowercase hex digits, the `crc` of the previous batch of the file
//!   (`00000000` for the first).
//! - `crc`: 8 lowercase hex digits, CRC-32 (IEEE, `crc32fast`) of
//!   `prev-crc (u32 LE) ‖ seq (u64 LE) ‖ len (u64 LE) ‖ payload`.
//!
//! The payload is whole RESP commands, optionally preceded by a `#TS:<secs>\r\n` line. Redis
//! 7.0+ skips every line starting with `#`, so it replays the payload commands and ignores the
//! rest. See docs/design-aof.md for the full format and the crash argument.

use crate::resp::{self, Parsed};

/// The start of a batch annotation line.
pub const BATCH_TAG: &[u8] = b"#SB ";
/// The start of a Redis timestamp annotation line.
pub const TS_TAG: &[u8] = b"#TS:";
/// Longest batch header line we write or accept (including CRLF); far below Redis's 1024.
pub const BATCH_HEADER_BYTES_MAX: usize = 80;

const _: () = assert!(BATCH_HEADER_BYTES_MAX < resp::LINE_BYTES_MAX);

/// Preallocated padding (`appendfsync always`, see docs/design-aof.md §Padding): lines `#\n`
/// starting at even file offsets, which Redis 7+ skips as annotations. Writing a batch over
/// padding, instead of appending, leaves the file's size alone, so `fdatasync` need not write
/// the inode. Content ending at an odd offset is followed by one `#` (the filler), which turns
/// the rest of the `#\n` line it lands on into `##\n`.
pub const PAD_LINE: &[u8] = b"#\n";
/// The end of the padding (the file's length while it is padded) is always this much past a
/// multiple of [`PAD_ALIGN`]: never at a sector boundary, where a torn write's surviving
/// fragment begins. That tells a fragment from commands Redis appended after the padding.
pub const PAD_END_RESIDUE: u64 = 2;
/// See [`PAD_END_RESIDUE`].
pub const PAD_ALIGN: u64 = 4096;
/// The smallest sector a torn write can leave (what [`PAD_END_RESIDUE`] is checked against).
pub const PAD_SECTOR: u64 = 512;

/// The padding bytes for file offsets `from..to`, laid out as [`PAD_LINE`]s at even offsets
/// (a `##\n` first when `from` is odd). `to` must be even and at least `from + 3`.
pub fn padding(from: u64, to: u64) -> Vec<u8> {
    debug_assert!(to.is_multiple_of(2) && to >= from + 3);
    let mut out = Vec::with_capacity((to - from) as usize);
    if from % 2 == 1 {
        out.push(b'#');
    }
    // Whole lines up to `to` (`[T]::repeat` copies in doubling blocks: a padding chunk is a
    // megabyte, and a 2-byte loop is slow in debug builds, the crash simulations' profile).
    let lines = ((to - from) as usize)
        .saturating_sub(out.len())
        .div_ceil(PAD_LINE.len());
    out.extend_from_slice(&PAD_LINE.repeat(lines));
    out
}

/// Fill `buf`, which sits at file offset `from`, with the bytes [`padding`] lays out there
/// (`#` at even offsets, `\n` at odd ones but a leading odd `from`, the filler `#`): the end of
/// a direct write's last block, after its content (`Appender::write_direct`).
pub fn fill_padding(buf: &mut [u8], from: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        let at = from + i as u64;
        *b = if at.is_multiple_of(2) || i == 0 {
            b'#'
        } else {
            b'\n'
        };
    }
}

/// What follows content ending at file offset `end` inside padding, so that the padding after
/// it stays whole lines: `#` at an odd offset, nothing at an even one.
pub fn pad_filler(end: u64) -> &'static [u8] {
    if end % 2 == 1 {
        b"#"
    } else {
        b""
    }
}

/// Whether `buf` is one line followed by nothing but preallocated padding to its end: what a
/// write of a batch header torn after its first bytes leaves over padding (`#S` written over
/// `#\n#\n…` reads as the line `#S#`). Only Strongbox pads its files, so such a line is our
/// torn batch, not a line of Redis's.
fn is_torn_line_over_padding(buf: &[u8]) -> bool {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let rest = &buf[nl + 1..];
    !rest.is_empty() && padding_run(rest) == rest.len()
}

/// Length of the run of padding lines (`#\n`, `##\n`) at the start of `buf`.
fn padding_run(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        if rest.starts_with(PAD_LINE) {
            at += 2;
        } else if rest.starts_with(b"##\n") {
            at += 3;
        } else if at > 0 && (rest == b"#" || rest == b"##") {
            // A torn extension of the padding ends inside a line.
            return buf.len();
        } else {
            return at;
        }
    }
}

/// Position in a file's batch chain: the last batch's seq and crc (0, 0 before the first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chain {
    /// Seq of the last batch (0 if none).
    pub seq: u64,
    /// Crc of the last batch (0 if none).
    pub crc: u32,
}

/// A parsed batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Batch sequence number within its file.
    pub seq: u64,
    /// Payload length.
    pub len: u64,
    /// Crc of the previous batch.
    pub prev_crc: u32,
    /// Crc of this batch.
    pub crc: u32,
}

/// The batch checksum.
pub fn batch_crc(prev_crc: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&prev_crc.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&(payload.len() as u64).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Append one batch (header line + payload) to `out`, advancing `chain`.
pub fn encode_batch(out: &mut Vec<u8>, chain: &mut Chain, payload: &[u8]) {
    let seq = chain.seq + 1;
    let crc = batch_crc(chain.crc, seq, payload);
    let header = format!(
        "#SB {seq} {} {:08x} {crc:08x}\r\n",
        payload.len(),
        chain.crc
    );
    debug_assert!(header.len() <= BATCH_HEADER_BYTES_MAX);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    *chain = Chain { seq, crc };
}

/// A `#TS:<secs>\r\n` line as Redis writes it.
pub fn timestamp_line(secs: i64) -> String {
    format!("#TS:{secs}\r\n")
}

fn dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn hex8(s: &[u8]) -> Option<u32> {
    if s.len() != 8 || !s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

/// Parse a batch header line (without its CRLF). Strict: exactly the form we write.
pub fn parse_header(line: &[u8]) -> Option<BatchHeader> {
    let rest = line.strip_prefix(BATCH_TAG)?;
    let mut parts = rest.split(|&b| b == b' ');
    let seq = dec(parts.next()?)?;
    let len = dec(parts.next()?)?;
    let prev_crc = hex8(parts.next()?)?;
    let crc = hex8(parts.next()?)?;
    if parts.next().is_some() || seq == 0 {
        return None;
    }
    Some(BatchHeader {
        seq,
        len,
        prev_crc,
        crc,
    })
}

/// Parse a `#TS:<secs>` line (without line ending).
pub fn parse_timestamp(line: &[u8]) -> Option<i64> {
    let digits = line.strip_prefix(TS_TAG)?;
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A command and its offset in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd<'a> {
    /// Offset of the command's first byte in the file.
    pub offset: u64,
    /// Arguments, borrowed from the file bytes.
    pub argv: Vec<&'a [u8]>,
}

/// One unit of an incr file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit<'a> {
    /// A verified batch: checksum and chain correct, payload whole commands.
    Batch {
        /// Batch seq.
        seq: u64,
        /// Offset of the header line.
        offset: u64,
        /// Offset just past the payload.
        end: u64,
        /// `#TS:` inside the batch, if any.
        timestamp: Option<i64>,
        /// The commands.
        commands: Vec<Cmd<'a>>,
    },
    /// A command outside any batch (files written by Redis): no checksum.
    Command {
        /// Offset of the command.
        offset: u64,
        /// Offset just past it.
        end: u64,
        /// Arguments.
        argv: Vec<&'a [u8]>,
    },
    /// A `#TS:` line outside a batch.
    Timestamp {
        /// Offset of the line.
        offset: u64,
        /// Offset just past it.
        end: u64,
        /// Unix seconds.
        secs: i64,
    },
    /// A run of preallocated padding lines (skipped, like Redis does): not content.
    Padding {
        /// Offset of the first line.
        offset: u64,
        /// Offset just past the last one.
        end: u64,
    },
    /// Another annotation line (skipped, like Redis does).
    Annotation {
        /// Offset of the line.
        offset: u64,
        /// Offset just past it.
        end: u64,
    },
}

impl Unit<'_> {
    /// Offset of the unit's first byte.
    pub fn offset(&self) -> u64 {
        match self {
            Unit::Batch { offset, .. }
            | Unit::Command { offset, .. }
            | Unit::Timestamp { offset, .. }
            | Unit::Padding { offset, .. }
            | Unit::Annotation { offset, .. } => *offset,
        }
    }
    /// Offset just past the unit.
    pub fn end(&self) -> u64 {
        match self {
            Unit::Batch { end, .. }
            | Unit::Command { end, .. }
            | Unit::Timestamp { end, .. }
            | Unit::Padding { end, .. }
            | Unit::Annotation { end, .. } => *end,
        }
    }
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadErrorKind {
    /// The file ends inside a unit (what a torn write looks like).
    Incomplete,
    /// Bytes that are not what we wrote: bad checksum, broken chain, bad syntax.
    Corrupt,
}

/// A reading error at a file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Offset of the unit that could not be read.
    pub offset: u64,
    /// Incomplete or corrupt.
    pub kind: ReadErrorKind,
    /// What is wrong.
    pub reason: String,
}

/// Reads the units of an incr file (or the RESP part of a base file) from its bytes.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    buf: &'a [u8],
    base: u64,
    pos: usize,
    chain: Chain,
    accept_any_chain: bool,
    batches: u64,
    stopped: bool,
    /// Padding was read and nothing but padding since (see [`BatchReader::after_padding`]).
    in_padding: bool,
}

impl<'a> BatchReader<'a> {
    /// A reader over `buf`, whose first byte is at file offset `base_offset`.
    pub fn new(buf: &'a [u8], base_offset: u64) -> Self {
        BatchReader {
            buf,
            base: base_offset,
            pos: 0,
            chain: Chain::default(),
            accept_any_chain: false,
            batches: 0,
            stopped: false,
            in_padding: false,
        }
    }

    /// File offset of the next unit.
    pub fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The chain after the last verified batch.
    pub fn chain(&self) -> Chain {
        self.chain
    }

    /// How many verified batches were read.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Whether damage whose bytes start with `rest` (the file from the error's offset) is in a
    /// batch of ours — after one of ours, starting with our tag, or a header torn over our
    /// padding — rather than among plain (Redis) commands: with no valid batch after it, it is
    /// a torn tail, which recovery may cut (docs/design-aof.md, the decision table).
    pub fn damage_is_ours(&self, rest: &[u8]) -> bool {
        self.batches > 0 || rest.starts_with(BATCH_TAG) || is_torn_line_over_padding(rest)
    }

    fn err(
        &mut self,
        at: usize,
        kind: ReadErrorKind,
        reason: String,
    ) -> Option<Result<Unit<'a>, ReadError>> {
        self.stopped = true;
        Some(Err(ReadError {
            offset: self.base + at as u64,
            kind,
            reason,
        }))
    }

    /// The next unit; `None` at a clean end of file. After an error, returns `None` until
    /// [`BatchReader::resync_at`] is called.
    #[expect(
        clippy::should_implement_trait,
        reason = "a reader with resync, not a plain iterator"
    )]
    pub fn next(&mut self) -> Option<Result<Unit<'a>, ReadError>> {
        if self.stopped || self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let rest = &self.buf[start..];
        let pad = padding_run(rest);
        if pad > 0 {
            self.pos += pad;
            self.in_padding = true;
            return Some(Ok(Unit::Padding {
                offset: self.base + start as u64,
                end: self.position(),
            }));
        }
        if self.in_padding {
            self.in_padding = false;
            if let Err(reason) = self.foreign_tail_at(start) {
                // Recovery cuts it like a torn tail (if nothing valid follows).
                return self.err(start, ReadErrorKind::Incomplete, reason);
            }
        }
        match resp::parse(rest) {
            Parsed::Incomplete => self.err(
                start,
                ReadErrorKind::Incomplete,
                "file ends inside a command".to_string(),
            ),
            Parsed::Error { offset, reason } => {
                self.err(start + offset, ReadErrorKind::Corrupt, reason)
            }
            Parsed::Command { argv, len } => {
                self.pos += len;
                Some(Ok(Unit::Command {
                    offset: self.base + start as u64,
                    end: self.position(),
                    argv,
                }))
            }
            Parsed::Annotation { line, len } => {
                if line.starts_with(BATCH_TAG) {
                    return self.batch(start, line, len);
                }
                let Some(secs) = parse_timestamp(line) else {
                    // Redis only ever writes `#TS:`; we only write `#SB ` and `#TS:`. Anything
                    // else is most likely a damaged batch header, whose payload would otherwise
                    // load as unchecked plain commands, so it is not skipped silently.
                    return self.err(
                        start,
                        ReadErrorKind::Corrupt,
                        format!(
                            "unknown annotation line '{}' (a damaged batch header?)",
                            line[..line.len().min(64)].escape_ascii()
                        ),
                    );
                };
                self.pos += len;
                Some(Ok(Unit::Timestamp {
                    offset: self.base + start as u64,
                    end: self.position(),
                    secs,
                }))
            }
        }
    }

    fn batch(
        &mut self,
        start: usize,
        line: &'a [u8],
        line_len: usize,
    ) -> Option<Result<Unit<'a>, ReadError>> {
        let Some(h) = parse_header(line) else {
            return self.err(
                start,
                ReadErrorKind::Corrupt,
                format!("malformed batch header '{}'", line.escape_ascii()),
            );
        };
        let payload_at = start + line_len;
        let avail = (self.buf.len() - payload_at) as u64;
        if h.len > avail {
            return self.err(
                start,
                ReadErrorKind::Incomplete,
                format!(
                    "batch {} declares {} payload bytes but only {avail} remain",
                    h.seq, h.len
                ),
            );
        }
        // h.len <= avail, which fits in usize.
        let end = payload_at + h.len as usize;
        let payload = &self.buf[payload_at..end];
        let crc = batch_crc(h.prev_crc, h.seq, payload);
        if crc != h.crc {
            return self.err(
                start,
                ReadErrorKind::Corrupt,
                format!(
                    "batch {} checksum mismatch: header says {:08x}, bytes give {crc:08x}",
                    h.seq, h.crc
                ),
            );
        }
        let expected = Chain {
            seq: self.chain.seq + 1,
            crc: self.chain.crc,
        };
        if !self.accept_any_chain && (h.seq != expected.seq || h.prev_crc != expected.crc) {
            return self.err(
                start,
                ReadErrorKind::Corrupt,
                format!(
                    "batch chain broken: expected seq {} after crc {:08x}, found seq {} after crc {:08x} (a batch is missing or out of place)",
                    expected.seq, expected.crc, h.seq, h.prev_crc
                ),
            );
        }
        // Payload: optional annotations (a #TS: line), then whole commands.
        let mut commands = Vec::new();
        let mut timestamp = None;
        let mut p = 0usize;
        while p < payload.len() {
            match resp::parse(&payload[p..]) {
                Parsed::Command { argv, len } => {
                    commands.push(Cmd {
                        offset: self.base + (payload_at + p) as u64,
                        argv,
                    });
                    p += len;
                }
                Parsed::Annotation { line, len } => {
                    if let Some(ts) = parse_timestamp(line) {
                        timestamp.get_or_insert(ts);
                    }
                    p += len;
                }
                Parsed::Incomplete => {
                    return self.err(
                        payload_at + p,
                        ReadErrorKind::Corrupt,
                        format!("batch {} payload ends inside a command", h.seq),
                    )
                }
                Parsed::Error { offset, reason } => {
                    return self.err(
                        payload_at + p + offset,
                        ReadErrorKind::Corrupt,
                        format!("batch {} payload: {reason}", h.seq),
                    )
                }
            }
        }
        self.pos = end;
        self.chain = Chain {
            seq: h.seq,
            crc: h.crc,
        };
        self.accept_any_chain = false;
        self.batches += 1;
        Some(Ok(Unit::Batch {
            seq: h.seq,
            offset: self.base + start as u64,
            end: self.position(),
            timestamp,
            commands,
        }))
    }

    /// Bytes after padding are either what a torn write left inside it (never loaded) or what
    /// Redis appended after it, having loaded a file Strongbox left padded (a crash): Redis
    /// writes at the end of the file, which padding always leaves [`PAD_END_RESIDUE`] past a
    /// multiple of [`PAD_ALIGN`] — never where a sector starts — and its first command after a
    /// start is always a `SELECT` (`aof_selected_db` starts at -1). So the bytes at `start`
    /// are accepted only if they begin there, with optional `#TS:` lines then `SELECT`, and
    /// the rest of the file is plain commands and `#TS:` lines (the last may be incomplete).
    fn foreign_tail_at(&self, start: usize) -> Result<(), String> {
        let at = self.base + start as u64;
        let reject = |why: &str| {
            Err(format!(
                "unexpected bytes after the preallocated padding at offset {at}: {why} (what a torn write leaves)"
            ))
        };
        if at % PAD_SECTOR != PAD_END_RESIDUE % PAD_SECTOR {
            return reject("not where the padding ended");
        }
        let mut p = start;
        let mut first = true;
        while p < self.buf.len() {
            match resp::parse(&self.buf[p..]) {
                Parsed::Annotation { line, len } if parse_timestamp(line).is_some() => p += len,
                Parsed::Annotation { .. } => return reject("an annotation other than #TS:"),
                Parsed::Command { argv, len } => {
                    if first && !argv[0].eq_ignore_ascii_case(b"SELECT") {
                        return reject("the first command is not SELECT");
                    }
                    first = false;
                    p += len;
                }
                Parsed::Incomplete => break,
                Parsed::Error { .. } => return reject("not RESP commands"),
            }
        }
        if first {
            return reject("no command");
        }
        Ok(())
    }

    /// File offset of the first batch after file offset `after` whose header parses and whose
    /// checksum verifies (its chain is not checked), if any.
    pub fn find_valid_batch_after(&self, after: u64) -> Option<u64> {
        let from = usize::try_from(after.saturating_sub(self.base))
            .ok()?
            .saturating_add(1);
        let mut i = from;
        while i < self.buf.len() {
            let hay = &self.buf[i..];
            let found = hay.windows(BATCH_TAG.len()).position(|w| w == BATCH_TAG)?;
            let at = i + found;
            // A batch header starts a line.
            let at_line_start = at == 0 || self.buf[at - 1] == b'\n';
            if at_line_start && self.batch_verifies_at(at) {
                return Some(self.base + at as u64);
            }
            i = at + 1;
        }
        None
    }

    fn batch_verifies_at(&self, at: usize) -> bool {
        let rest = &self.buf[at..];
        let window = &rest[..rest.len().min(BATCH_HEADER_BYTES_MAX)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            return false;
        };
        if nl == 0 || window[nl - 1] != b'\r' {
            return false;
        }
        let Some(h) = parse_header(&window[..nl - 1]) else {
            return false;
        };
        let payload_at = nl + 1;
        let Ok(len) = usize::try_from(h.len) else {
            return false;
        };
        let Some(payload) = rest.get(payload_at..payload_at.saturating_add(len)) else {
            return false;
        };
        batch_crc(h.prev_crc, h.seq, payload) == h.crc
    }

    /// Continue reading at file offset `offset` (a batch found by
    /// [`BatchReader::find_valid_batch_after`]), accepting whatever chain it carries.
    pub fn resync_at(&mut self, offset: u64) {
        let rel = usize::try_from(offset.saturating_sub(self.base)).unwrap_or(usize::MAX);
        self.pos = rel.min(self.buf.len());
        self.stopped = false;
        self.accept_any_chain = true;
        self.in_padding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_padding_lays_out_what_padding_does() {
        for from in 0..9u64 {
            for len in 3..40u64 {
                let to = from + len;
                if to % 2 == 1 {
                    continue;
                }
                let mut buf = vec![0u8; len as usize];
                fill_padding(&mut buf, from);
                assert_eq!(buf, padding(from, to), "from {from} to {to}");
            }
        }
        // Shorter than a padding line: the first byte is still the filler.
        let mut one = [0u8; 1];
        fill_padding(&mut one, 7);
        assert_eq!(&one, b"#");
        fill_padding(&mut one, 8);
        assert_eq!(&one, b"#");
    }
    use crate::resp::encode_command;
    use quickcheck::{quickcheck, TestResult};

    fn payload_of(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut p = Vec::new();
        for c in cmds {
            encode_command(&mut p, c);
        }
        p
    }

    fn file_of(batches: &[Vec<Vec<Vec<u8>>>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chain = Chain::default();
        for b in batches {
            encode_batch(&mut out, &mut chain, &payload_of(b));
        }
        out
    }

    fn read_all(buf: &[u8]) -> Result<Vec<Vec<Vec<Vec<u8>>>>, ReadError> {
        let mut r = BatchReader::new(buf, 0);
        let mut out = Vec::new();
        while let Some(u) = r.next() {
            match u? {
                Unit::Batch { commands, .. } => out.push(
                    commands
                        .into_iter()
                        .map(|c| c.argv.into_iter().map(<[u8]>::to_vec).collect())
                        .collect(),
                ),
                Unit::Command { argv, .. } => {
                    out.push(vec![argv.into_iter().map(<[u8]>::to_vec).collect()])
                }
                Unit::Timestamp { .. } | Unit::Annotation { .. } => out.push(vec![]),
                Unit::Padding { .. } => {}
            }
        }
        Ok(out)
    }

    /// A few small batches of small commands (quickcheck's default sizes nest to ~10^8 bytes).
    #[derive(Debug, Clone)]
    struct Batches(Vec<Vec<Vec<Vec<u8>>>>);

    impl quickcheck::Arbitrary for Batches {
        fn arbitrary(g: &mut quickcheck::Gen) -> Self {
            let mut small = quickcheck::Gen::new(24);
            let n = usize::arbitrary(g) % 6;
            Batches(
                (0..n)
                    .map(|_| {
                        let cmds = usize::arbitrary(g) % 5;
                        (0..cmds)
                            .map(|_| {
                                let args = 1 + usize::arbitrary(g) % 4;
                                (0..args)
                                    .map(|_| Vec::<u8>::arbitrary(&mut small))
                                    .collect()
                            })
                            .collect()
                    })
                    .collect(),
            )
        }
        fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
            Box::new(self.0.shrink().map(|b| Batches(clean(b))))
        }
    }

    fn clean(batches: Vec<Vec<Vec<Vec<u8>>>>) -> Vec<Vec<Vec<Vec<u8>>>> {
        batches
            .into_iter()
            .map(|b| b.into_iter().filter(|c| !c.is_empty()).collect())
            .collect()
    }

    /// A file as the `always` writer leaves it: batches, then padding to `pad_end`.
    fn padded_file(batches: &[Vec<Vec<Vec<u8>>>], pad_end: u64) -> (Vec<u8>, u64) {
        let mut f = file_of(batches);
        let content = f.len() as u64;
        f.extend_from_slice(&padding(content, pad_end));
        (f, content)
    }

    fn cmd(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn padding_is_whole_lines_after_content_of_either_parity() {
        for extra in 0..2 {
            let mut b = vec![vec![cmd(&["SET", "k", "v"])]];
            if extra == 1 {
                b.push(vec![cmd(&["SET", "kk", "v"])]);
            }
            let (f, content) = padded_file(&b, 4096 + PAD_END_RESIDUE);
            assert_eq!(f.len() as u64, 4096 + PAD_END_RESIDUE);
            let mut r = BatchReader::new(&f, 0);
            let mut units = Vec::new();
            while let Some(u) = r.next() {
                units.push(u.expect("clean"));
            }
            assert!(matches!(units.last(), Some(Unit::Padding { offset, end })
                if *offset == content && *end == f.len() as u64));
            assert_eq!(units.len(), b.len() + 1);
            // Overwriting the padding with one more batch plus its filler keeps it valid.
            let mut g = f.clone();
            let mut chain = r.chain();
            let mut next = Vec::new();
            encode_batch(
                &mut next,
                &mut chain,
                &payload_of(&[cmd(&["SET", "x", "yy"])]),
            );
            let end = content + next.len() as u64;
            next.extend_from_slice(pad_filler(end));
            g[content as usize..content as usize + next.len()].copy_from_slice(&next);
            let mut r = BatchReader::new(&g, 0);
            let mut n = 0;
            while let Some(u) = r.next() {
                if let Unit::Padding { offset, .. } = u.expect("clean after an overwrite") {
                    assert_eq!(offset, end);
                } else {
                    n += 1;
                }
            }
            assert_eq!(n, b.len() + 1);
            // What Redis's loader does: every line after the content starts with '#'.
            for line in g[end as usize..].split_inclusive(|&c| c == b'\n') {
                assert!(
                    line == b"#\n" || line == b"##\n",
                    "{:?}",
                    line.escape_ascii()
                );
            }
        }
    }

    #[test]
    fn a_fragment_inside_padding_is_a_torn_tail_and_never_loads() {
        let (mut f, content) = padded_file(&[vec![cmd(&["SET", "k", "v"])]], 8192 + 2);
        // The sector-aligned rest of a batch whose first sector (header, SELECT) was lost.
        let at = content.div_ceil(PAD_SECTOR) * PAD_SECTOR;
        let mut frag = Vec::new();
        encode_command(&mut frag, &["SELECT", "0"]);
        encode_command(&mut frag, &["SET", "lost", "1"]);
        f[at as usize..at as usize + frag.len()].copy_from_slice(&frag);
        let mut r = BatchReader::new(&f, 0);
        assert!(matches!(r.next(), Some(Ok(Unit::Batch { .. }))));
        assert!(matches!(r.next(), Some(Ok(Unit::Padding { .. }))));
        let e = r.next().expect("an error").expect_err("a fragment");
        assert_eq!((e.offset, e.kind), (at, ReadErrorKind::Incomplete));
        assert!(r.next().is_none());
    }

    #[test]
    fn commands_redis_appended_after_the_padding_load() {
        let pad_end = 4096 + PAD_END_RESIDUE;
        let (mut f, _) = padded_file(&[vec![cmd(&["SET", "k", "v"])]], pad_end);
        f.extend_from_slice(b"#TS:1700000000\r\n");
        encode_command(&mut f, &["SELECT", "0"]);
        encode_command(&mut f, &["SET", "r", "1"]);
        let all = read_all(&f).expect("redis's tail loads");
        assert_eq!(all.iter().filter(|u| !u.is_empty()).count(), 3);
        // Not SELECT first: not what Redis writes after a start.
        let (mut g, _) = padded_file(&[vec![cmd(&["SET", "k", "v"])]], pad_end);
        encode_command(&mut g, &["SET", "r", "1"]);
        let e = read_all(&g).expect_err("rejected");
        assert_eq!((e.offset, e.kind), (pad_end, ReadErrorKind::Incomplete));
    }

    #[test]
    fn a_torn_padding_extension_ends_inside_a_line() {
        for cut in [1usize, 2, 3] {
            let (f, content) = padded_file(&[vec![cmd(&["SET", "k", "v"])]], 4096 + 2);
            let f = &f[..content as usize + 4 + cut];
            let mut r = BatchReader::new(f, 0);
            assert!(matches!(r.next(), Some(Ok(Unit::Batch { .. }))));
            assert!(
                matches!(r.next(), Some(Ok(Unit::Padding { end, .. })) if end == f.len() as u64)
            );
            assert!(r.next().is_none());
        }
    }

    #[test]
    fn header_is_short_and_exact() {
        let mut out = Vec::new();
        let mut chain = Chain::default();
        encode_batch(&mut out, &mut chain, b"*1\r\n$4\r\nPING\r\n");
        let text = String::from_utf8(out.clone()).expect("ascii");
        let crc = batch_crc(0, 1, b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            text,
            format!("#SB 1 14 00000000 {crc:08x}\r\n*1\r\n$4\r\nPING\r\n")
        );
        assert_eq!(chain, Chain { seq: 1, crc });
    }

    #[test]
    fn plain_redis_lines_are_units_too() {
        let mut f = b"#TS:1650000000\r\n".to_vec();
        encode_command(&mut f, &["SET", "a", "1"]);
        f.extend_from_slice(b"#other\r\n");
        let mut r = BatchReader::new(&f, 0);
        assert!(matches!(
            r.next(),
            Some(Ok(Unit::Timestamp {
                secs: 1_650_000_000,
                ..
            }))
        ));
        assert!(matches!(
            r.next(),
            Some(Ok(Unit::Command { offset: 16, .. }))
        ));
        let e = r
            .next()
            .and_then(Result::err)
            .expect("unknown annotation is an error");
        assert_eq!(e.kind, ReadErrorKind::Corrupt);
        assert!(r.next().is_none());
    }

    #[test]
    fn truncated_batch_is_incomplete_and_a_later_valid_batch_is_found() {
        let f = file_of(&vec![
            vec![vec![
                b"SET".to_vec(),
                b"k".to_vec(),
                b"v".to_vec()
            ]];
            3
        ]);
        let one = f.len() / 3;
        let mut r = BatchReader::new(&f[..f.len() - 1], 0);
        assert!(matches!(r.next(), Some(Ok(_))));
        assert!(matches!(r.next(), Some(Ok(_))));
        let e = r.next().and_then(Result::err).expect("error");
        assert_eq!(
            (e.kind, e.offset),
            (ReadErrorKind::Incomplete, 2 * one as u64)
        );
        // Damage the second batch: the third is still found for resync.
        let mut g = f.clone();
        g[one + 30] ^= 0x01;
        let mut r = BatchReader::new(&g, 0);
        assert!(matches!(r.next(), Some(Ok(_))));
        let e = r.next().and_then(Result::err).expect("error");
        assert_eq!(e.kind, ReadErrorKind::Corrupt);
        assert_eq!(r.find_valid_batch_after(e.offset), Some(2 * one as u64));
    }

    #[test]
    fn swapped_batches_break_the_chain() {
        let f = file_of(&[
            vec![vec![b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()]],
            vec![vec![b"SET".to_vec(), b"b".to_vec(), b"2".to_vec()]],
        ]);
        let half = f.len() / 2;
        let swapped = [&f[half..], &f[..half]].concat();
        let e = read_all(&swapped).expect_err("must fail");
        assert!(e.reason.contains("chain"), "{}", e.reason);
    }

    quickcheck! {
        fn batch_round_trip(batches: Batches) -> bool {
            let batches = batches.0;
            read_all(&file_of(&batches)).ok() == Some(batches)
        }

        fn any_flipped_byte_in_a_sealed_batch_is_detected(
            batches: Batches, index: usize, bit: u8
        ) -> TestResult {
            let batches = batches.0;
            let f = file_of(&batches);
            if f.is_empty() { return TestResult::discard(); }
            let mut g = f.clone();
            let at = index % g.len();
            g[at] ^= 1 << (bit % 8);
            // Either an error, or (never) the same data: a flip must not load silently.
            TestResult::from_bool(read_all(&g).is_err())
        }

        fn arbitrary_bytes_never_panic(bytes: Vec<u8>, prefix: bool) -> bool {
            let mut buf = if prefix { b"#SB 1 5 00000000 00000000\r\n".to_vec() } else { Vec::new() };
            buf.extend_from_slice(&bytes);
            let mut r = BatchReader::new(&buf, 7);
            let mut n = 0;
            while let Some(u) = r.next() {
                n += 1;
                if let Err(e) = u {
                    if let Some(at) = r.find_valid_batch_after(e.offset) { r.resync_at(at); }
                }
                if n > buf.len() + 2 { return false; }
            }
            true
        }
    }
}
