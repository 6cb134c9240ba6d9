// The bodies of the fuzz targets, shared by two crates (so there is one copy):
//
// - fuzz/fuzz_targets/<target>.rs: `#[path = "../checks.rs"] mod checks;` and
//   `fuzz_target!(|data| checks::check_<target>(data))`;
// - tests/fuzz_corpora.rs (root `strongbox` package): `#[path = "../fuzz/checks.rs"] mod checks;`,
//   replaying every file under fuzz/corpus/<target>/ and fuzz/regressions/<target>/.
//
// Each `check_<target>` must return normally for every input: a panic (failed assertion) is a
// bug in the decoder under test (or in the property stated here). Every loop over decoder
// output is bounded by the input length, so a decoder that stops making progress fails an
// assertion instead of hanging.
//
// This file is `include`d as a module, so it has no inner attributes or `//!` docs.

use bytes::{Bytes, BytesMut};

use strongbox::acl::{self, User};
use strongbox::limits::{INLINE_BYTES_MAX, PROTO_MAX_BULK_LEN_DEFAULT};
use strongbox::resp::{encode_command as encode_request, Parsed as ReqParsed, RequestParser};
use strongbox_storage::aof::batch::{encode_batch, BatchReader, Chain, ReadErrorKind, Unit};
use strongbox_storage::aof::manifest::{Manifest, ERR_EMPTY};
use strongbox_storage::rdb::consts::RDB_VERSION_MAX;
use strongbox_storage::rdb::crc64::crc64;
use strongbox_storage::rdb::{
    decode_dump, decode_function_dump, encode_dump, encode_function_dump, FunctionDumpError,
    RdbReader, ReaderOptions,
};
use strongbox_storage::resp::{self as aof_resp, Parsed as AofParsed};

/// Inputs up to this length are also checked at every prefix / split point (quadratic work).
const EXHAUSTIVE_BYTES_MAX: usize = 256;
/// Longer inputs are checked at this many prefix / split points.
const SAMPLED_POINTS: usize = 8;

/// Cut points in `0..len`: all of them for short inputs, else a spread plus the ends.
fn cut_points(len: usize) -> Vec<usize> {
    if len <= EXHAUSTIVE_BYTES_MAX {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..SAMPLED_POINTS)
        .map(|i| i * len / SAMPLED_POINTS)
        .collect();
    v.push(len - 1);
    v
}

// ---------------------------------------------------------------------------------------------
// resp_request: the server's request parser (src/resp.rs).
// ---------------------------------------------------------------------------------------------

/// What parsing a byte stream fed in chunks produced.
#[derive(Debug, Default, PartialEq)]
pub struct RequestOutcome {
    /// Commands, in order.
    pub commands: Vec<Vec<Bytes>>,
    /// The protocol error that ended parsing, if any (the connection would be closed).
    pub error: Option<String>,
    /// Bytes left in the buffer at the end (when no error).
    pub rest: Vec<u8>,
    /// Whether a multibulk command was half received at the end (when no error).
    pub in_progress: bool,
}

/// Feed `chunks` one after the other into one parser, parsing until `Incomplete` after each,
/// as a connection does after each read.
pub fn parse_request_chunks(chunks: &[&[u8]]) -> RequestOutcome {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut out = RequestOutcome::default();
    'feed: for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match parser.parse(&mut buf, PROTO_MAX_BULK_LEN_DEFAULT) {
                Ok(ReqParsed::Command(args)) => {
                    assert!(!args.is_empty(), "the parser returned an empty command");
                    assert!(buf.len() < before, "a command consumed no bytes");
                    out.commands.push(args);
                    assert!(
                        out.commands.len() <= total,
                        "more commands than input bytes"
                    );
                }
                Ok(ReqParsed::Incomplete) => break,
                Err(e) => {
                    assert!(!e.0.is_empty(), "protocol error without a message");
                    out.error = Some(e.0);
                    break 'feed;
                }
            }
        }
    }
    if out.error.is_none() {
        out.rest = buf.to_vec();
        out.in_progress = parser.in_progress();
    }
    out
}

/// Input: two bytes (u16 LE) choosing a split point, then the byte stream a client sends.
///
/// Properties: no panic; the stream parsed whole, split in two at the chosen point, and (when
/// short) fed one byte at a time gives the same commands, the same error and the same leftover
/// state; the commands re-encoded as multibulk parse back to themselves.
pub fn check_resp_request(data: &[u8]) {
    let (split, stream) = match data {
        [a, b, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])) % (rest.len() + 1),
            rest,
        ),
        _ => (0, data),
    };
    let whole = parse_request_chunks(&[stream]);
    // Error texts may legitimately differ with chunking only for lines longer than the
    // inline limit (checked before the line ending has arrived), so compare them below that.
    let comparable = |o: &RequestOutcome| {
        if stream.len() <= INLINE_BYTES_MAX {
            (
                o.commands.clone(),
                o.error.clone(),
                o.rest.clone(),
                o.in_progress,
            )
        } else {
            let err = o.error.as_ref().map(|_| String::new());
            (o.commands.clone(), err, o.rest.clone(), o.in_progress)
        }
    };
    let halves = parse_request_chunks(&[&stream[..split], &stream[split..]]);
    assert_eq!(
        comparable(&whole),
        comparable(&halves),
        "splitting the stream at {split} changed the result"
    );
    if stream.len() <= EXHAUSTIVE_BYTES_MAX {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let trickle = parse_request_chunks(&bytes);
        assert_eq!(
            comparable(&whole),
            comparable(&trickle),
            "feeding the stream one byte at a time changed the result"
        );
    }
    let mut encoded = Vec::new();
    for c in &whole.commands {
        encode_request(&mut encoded, c);
    }
    let again = parse_request_chunks(&[&encoded]);
    assert_eq!(
        again,
        RequestOutcome {
            commands: whole.commands.clone(),
            ..RequestOutcome::default()
        },
        "re-encoded commands did not parse back to themselves"
    );
}

// ---------------------------------------------------------------------------------------------
// aof_storage_resp: the AOF's RESP decoder (storage/src/resp.rs).
// ---------------------------------------------------------------------------------------------

/// Input: the bytes of an AOF (commands and `#` annotation lines).
///
/// Properties: no panic; every item has a non-zero length within the buffer; an item parses the
/// same from exactly its own bytes; every strict prefix of an item is `Incomplete` (never an
/// error: that is what tells a torn tail from corruption); a command re-encoded parses back.
pub fn check_aof_storage_resp(data: &[u8]) {
    let mut at = 0usize;
    let mut steps = 0usize;
    while at < data.len() {
        steps += 1;
        assert!(steps <= data.len(), "more items than input bytes");
        let rest = &data[at..];
        let parsed = aof_resp::parse(rest);
        let len = match &parsed {
            AofParsed::Command { argv, len } => {
                assert!(!argv.is_empty(), "command without arguments at {at}");
                let mut enc = Vec::new();
                aof_resp::encode_command(&mut enc, argv);
                assert_eq!(
                    aof_resp::parse(&enc),
                    AofParsed::Command {
                        argv: argv.clone(),
                        len: enc.len()
                    },
                    "re-encoded command at {at} did not parse back"
                );
                *len
            }
            AofParsed::Annotation { line, len } => {
                assert!(!line.contains(&b'\n'), "annotation line contains LF");
                assert_eq!(rest.get(len.wrapping_sub(1)), Some(&b'\n'));
                *len
            }
            AofParsed::Incomplete => return,
            AofParsed::Error { offset, reason } => {
                assert!(*offset <= rest.len(), "error offset past the input");
                assert!(!reason.is_empty(), "error without a reason");
                return;
            }
        };
        assert!(
            len > 0 && len <= rest.len(),
            "item length {len} at {at} (rest {})",
            rest.len()
        );
        assert_eq!(
            aof_resp::parse(&rest[..len]),
            parsed,
            "item at {at} parses differently from exactly its own bytes"
        );
        for k in cut_points(len) {
            assert_eq!(
                aof_resp::parse(&rest[..k]),
                AofParsed::Incomplete,
                "a {k}-byte prefix of the {len}-byte item at {at} is not Incomplete"
            );
        }
        at += len;
    }
}

// ---------------------------------------------------------------------------------------------
// aof_batch: the incr-file reader (storage/src/aof/batch.rs).
// ---------------------------------------------------------------------------------------------

/// A unit's (offset, end).
type UnitSpan = (u64, u64);
/// A reading error's (offset, kind, reason).
type ReadFailure = (u64, ReadErrorKind, String);

/// Reads `file` to the end, resyncing after errors as recovery's skip mode does. Checks the
/// structural invariants and returns the units read (offset, end) and the errors.
fn read_units(file: &[u8], resync: bool) -> (Vec<UnitSpan>, Vec<ReadFailure>) {
    let len = file.len() as u64;
    let mut reader = BatchReader::new(file, 0);
    let mut units = Vec::new();
    let mut errors = Vec::new();
    let mut last_end = 0u64;
    let mut steps = 0usize;
    while let Some(item) = reader.next() {
        steps += 1;
        assert!(steps <= file.len() + 2, "reader made no progress");
        match item {
            Ok(unit) => {
                let (offset, end) = (unit.offset(), unit.end());
                assert!(
                    last_end <= offset && offset < end && end <= len,
                    "unit {offset}..{end} after {last_end} in a {len}-byte file"
                );
                assert_eq!(reader.position(), end, "position is not the unit's end");
                match &unit {
                    Unit::Batch { commands, .. } => {
                        for c in commands {
                            assert!(!c.argv.is_empty(), "empty command in a batch");
                            assert!(offset < c.offset && c.offset < end, "command outside batch");
                        }
                    }
                    Unit::Command { argv, .. } => assert!(!argv.is_empty(), "empty command"),
                    Unit::Timestamp { .. } | Unit::Annotation { .. } | Unit::Padding { .. } => {}
                }
                last_end = end;
                units.push((offset, end));
            }
            Err(e) => {
                assert!(e.offset <= len, "error offset {} past the end", e.offset);
                assert!(
                    e.offset >= last_end,
                    "error offset before the last unit's end"
                );
                assert!(!e.reason.is_empty(), "error without a reason");
                assert!(reader.next().is_none(), "reader went on after an error");
                let at = if resync {
                    reader.find_valid_batch_after(e.offset)
                } else {
                    None
                };
                errors.push((e.offset, e.kind, e.reason));
                if let Some(at) = at {
                    assert!(at > e.offset && at < len, "resync point {at} out of range");
                    reader.resync_at(at);
                    last_end = at;
                }
            }
        }
    }
    (units, errors)
}

/// Files up to this length are cut at every point; longer ones near unit boundaries.
const BATCH_FILE_EXHAUSTIVE_BYTES_MAX: usize = 64;
/// At most this many units of a longer file get their boundaries probed.
const BATCH_UNITS_PROBED_MAX: usize = 32;

/// Where to cut a file of sealed batches: everywhere when short, else around each unit's
/// start, header line ending and end (where a torn write is most likely to be misread), plus a
/// spread of points.
fn batch_cut_points(file: &[u8], units: &[UnitSpan]) -> Vec<usize> {
    if file.len() <= BATCH_FILE_EXHAUSTIVE_BYTES_MAX {
        return (0..file.len()).collect();
    }
    let mut cuts = cut_points(file.len());
    for &(offset, end) in units.iter().take(BATCH_UNITS_PROBED_MAX) {
        let (offset, end) = (offset as usize, end as usize);
        cuts.extend([offset + 1, end - 1]);
        if let Some(lf) = file[offset..end].iter().position(|&b| b == b'\n') {
            cuts.extend([offset + lf.saturating_sub(1), offset + lf, offset + lf + 1]);
        }
    }
    cuts.retain(|&c| c < file.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Input: arbitrary bytes, used twice.
///
/// 1. As an incr file: no panic, units in order within the file, resync after errors
///    terminates.
/// 2. As batch payloads (split at 0xFF bytes) sealed with correct headers and checksums: a
///    batch is either read or fails as corrupt in its payload, never for its checksum or chain;
///    and the file built from the batches that were read, cut at any point, reads as the units
///    wholly before the cut followed by at most one `Incomplete` error — a torn tail never
///    looks like corruption.
pub fn check_aof_batch(data: &[u8]) {
    read_units(data, true);

    let mut good = Vec::new();
    let mut good_chain = Chain::default();
    for payload in data.split(|&b| b == 0xff).take(16) {
        let mut file = Vec::new();
        let mut chain = Chain::default();
        encode_batch(&mut file, &mut chain, payload);
        let (units, errors) = read_units(&file, false);
        match (units.len(), errors.first()) {
            (1, None) => {
                assert_eq!(units[0], (0, file.len() as u64));
                encode_batch(&mut good, &mut good_chain, payload);
            }
            (0, Some((_, kind, reason))) => {
                assert_eq!(*kind, ReadErrorKind::Corrupt, "sealed batch: {reason}");
                assert!(
                    reason.starts_with("batch 1 payload"),
                    "a correctly sealed batch failed other than in its payload: {reason}"
                );
            }
            other => panic!("a one-batch file read as {other:?}"),
        }
    }
    let (all, errors) = read_units(&good, false);
    assert!(
        errors.is_empty(),
        "batches that read alone fail together: {errors:?}"
    );
    for cut in batch_cut_points(&good, &all) {
        let (units, errors) = read_units(&good[..cut], false);
        let whole: Vec<UnitSpan> = all.iter().copied().filter(|u| u.1 <= cut as u64).collect();
        assert_eq!(units, whole, "cut at {cut}: different units");
        match errors.as_slice() {
            [] => assert_eq!(units.last().map_or(0, |u| u.1), cut as u64),
            [(_, ReadErrorKind::Incomplete, _)] => {}
            other => panic!("cut at {cut} of a good file: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// aof_manifest: the manifest codec (storage/src/aof/manifest.rs).
// ---------------------------------------------------------------------------------------------

/// Input: manifest file bytes.
///
/// Properties: no panic; a manifest that parses formats to bytes that parse to an equal
/// manifest. (A manifest listing no file at all — only comment lines — formats to no bytes,
/// which Redis and we reject as "Found an empty AOF manifest"; that is the one exception.)
pub fn check_aof_manifest(data: &[u8]) {
    let Ok(m) = Manifest::parse(data) else {
        return;
    };
    let text = m.format();
    let listed = usize::from(m.base.is_some()) + m.history.len() + m.incr.len();
    if listed == 0 {
        assert!(text.is_empty());
        let e = Manifest::parse(&text).expect_err("an empty manifest must not parse");
        assert_eq!(e.reason, ERR_EMPTY);
        return;
    }
    match Manifest::parse(&text) {
        Ok(again) => assert_eq!(again, m, "format() then parse() changed the manifest"),
        Err(e) => panic!(
            "format() wrote a manifest that does not parse: {e}\n{}",
            text.escape_ascii()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// rdb_reader: the RDB reader and DUMP payload decoder (storage/src/rdb).
// ---------------------------------------------------------------------------------------------

/// Input: RDB file bytes (also tried as a DUMP payload body).
///
/// Properties: no panic; the reader makes progress with every item, stays within the input,
/// stops for good after EOF or an error; `decode_dump` of the raw bytes and of the bytes with a
/// correct footer never panics, and a decoded value re-encodes with `encode_dump` and decodes to
/// an equal value. The in-memory reader (`RdbReader::from_slice`, used to load at start) returns
/// exactly what the streaming reader returns: items, offsets and errors.
pub fn check_rdb_reader(data: &[u8]) {
    check_slice_reader_agrees(data);
    if let Ok(mut reader) = RdbReader::new(data) {
        let mut items = 0usize;
        loop {
            items += 1;
            assert!(items <= data.len() + 1, "more items than input bytes");
            let before = reader.offset();
            match reader.next_item() {
                Ok(Some(_)) => assert!(reader.offset() > before, "an item consumed no bytes"),
                Ok(None) | Err(_) => break,
            }
        }
        assert!(
            matches!(reader.next_item(), Ok(None)),
            "reader went on after the end"
        );
        assert!(
            reader.offset() <= data.len() as u64,
            "offset past the input"
        );
    }

    // The bytes as a DUMP payload (footer checked first: almost always a footer error).
    let _ = decode_dump(data);
    // The bytes as a DUMP body, with a footer that verifies, so the value decoder is reached.
    let mut payload = data.to_vec();
    payload.extend_from_slice(&(RDB_VERSION_MAX as u16).to_le_bytes());
    let crc = crc64(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    if let Ok(value) = decode_dump(&payload) {
        let encoded = encode_dump(&value).expect("a decoded value must encode");
        let again = decode_dump(&encoded).expect("an encoded value must decode");
        assert_eq!(
            again.canonical(),
            value.canonical(),
            "DUMP round trip changed the value"
        );
    }
}

fn check_slice_reader_agrees(data: &[u8]) {
    check_readers_agree(data, false);
    check_readers_agree(data, true);
}

/// The streaming reader and the slice reader give the same items, offsets and errors; with
/// `borrowed`, the slice reader runs `next_item_ref` (plain string entries parsed in place).
fn check_readers_agree(data: &[u8], borrowed: bool) {
    let opts = ReaderOptions::default();
    let (a, b) = (
        RdbReader::with_options(data, opts),
        RdbReader::from_slice(data, opts),
    );
    let (mut a, mut b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(x), Err(y)) => {
            assert_eq!(x.to_string(), y.to_string(), "header errors differ");
            return;
        }
        (x, y) => panic!(
            "header: streaming reader {:?}, slice reader {:?}",
            x.err().map(|e| e.to_string()),
            y.err().map(|e| e.to_string())
        ),
    };
    loop {
        let x = a.next_item();
        let y = if borrowed {
            b.next_item_ref().map(|i| i.map(|i| i.into_item()))
        } else {
            b.next_item()
        };
        assert_eq!(a.offset(), b.offset(), "offsets differ");
        match (x, y) {
            (Ok(Some(x)), Ok(Some(y))) => assert!(x == y, "items differ: {x:?} / {y:?}"),
            (Ok(None), Ok(None)) => break,
            (Err(x), Err(y)) => {
                assert_eq!(x.to_string(), y.to_string(), "errors differ");
                break;
            }
            (x, y) => panic!(
                "streaming reader {:?}, slice reader {:?}",
                x.map_err(|e| e.to_string()),
                y.map_err(|e| e.to_string())
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// function_dump: the FUNCTION DUMP / RESTORE payload codec (storage/src/rdb/dump.rs).
// ---------------------------------------------------------------------------------------------

/// `body` followed by a footer that verifies (RDB version 10, CRC-64).
fn with_dump_footer(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&10u16.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

fn function_codes(r: &Result<Vec<Bytes>, FunctionDumpError>) -> Option<Vec<Vec<u8>>> {
    r.as_ref()
        .ok()
        .map(|v| v.iter().map(|b| b.to_vec()).collect())
}

/// Input: a FUNCTION RESTORE payload (also tried as a body with a footer that verifies, and
/// split at `0xFF` bytes into libraries' code).
///
/// Properties: no panic; libraries that decode re-encode to a payload that decodes to the same
/// code; the input's pieces as libraries encode and decode back, in order, and every strict
/// prefix of that payload is refused.
pub fn check_function_dump(data: &[u8]) {
    let _ = decode_function_dump(data);
    let decoded = decode_function_dump(&with_dump_footer(data));
    if let Some(codes) = function_codes(&decoded) {
        let p = encode_function_dump(codes.iter().map(|c| &c[..]));
        assert_eq!(
            function_codes(&decode_function_dump(&p)),
            Some(codes),
            "re-encoded libraries decode differently"
        );
    }
    let codes: Vec<&[u8]> = data.split(|&b| b == 0xff).take(16).collect();
    let p = encode_function_dump(codes.iter().copied());
    assert_eq!(
        function_codes(&decode_function_dump(&p)),
        Some(codes.iter().map(|c| c.to_vec()).collect()),
        "libraries did not round trip"
    );
    for k in cut_points(p.len()) {
        assert!(
            decode_function_dump(&p[..k]).is_err(),
            "a {k}-byte prefix of a {}-byte payload decoded",
            p.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// acl_rules: the ACL rule language and aclfile parser (src/acl.rs).
// ---------------------------------------------------------------------------------------------

/// Input: aclfile text (lossily UTF-8); each line is also tried as ACL SETUSER's rules (split
/// at spaces, selector arguments merged as Redis merges them).
///
/// Properties: no panic; a file that loads has the default user, and the text ACL SAVE writes
/// for it parses; a rule that fails leaves the user as it was; every user describes itself.
pub fn check_acl_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for allch in [false, true] {
        if let Ok(users) = acl::parse_acl_file(&text, "f", allch) {
            assert!(users.contains_key(&b"default"[..]), "no default user");
            let _ = acl::parse_acl_file(&acl::acl_file_text(&users), "f", allch);
        }
    }
    for line in data.split(|&b| b == b'\n').take(64) {
        let args: Vec<&[u8]> = line.split(|&b| b == b' ').take(64).collect();
        let merged = match acl::merge_selector_args(&args) {
            Ok(m) => m,
            Err(open) => {
                assert!(
                    open.first() == Some(&b'('),
                    "unmatched selector not at a '('"
                );
                args.iter().map(|a| a.to_vec()).collect()
            }
        };
        let _ = acl::apply_rules(User::new(b"u", false), merged.iter().map(|r| &r[..]), false);
        let mut u = User::default_user();
        for r in &merged {
            let before = u.describe();
            if u.apply(r, false).is_err() {
                assert_eq!(u.describe(), before, "a failing rule changed the user");
            }
        }
        let _ = (u.keys_string(), u.channels_string(), u.flags());
    }
}
