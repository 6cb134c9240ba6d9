//! DUMP / RESTORE payloads (`createDumpPayload` / `verifyDumpPayload`, `src/cluster.c`):
//!
//! ```text
//! <type byte> <value payload as in an RDB file> <RDB version: u16 LE> <CRC-64 of all before: u64 LE>
//! ```
//! No magic, no key, no expire. Redis always verifies the CRC of a payload (a zero CRC is not
//! "disabled" here).

use super::consts::{RDB_VERSION_DEFAULT, RDB_VERSION_MAX};
use super::crc64::crc64;
use super::error::{RdbError, Reason};
use super::reader::{RdbReader, ReaderOptions};
use super::value::Value;
use super::writer::{validate, Encoder, WriterOptions};
use super::WriteError;

/// Redis's RESTORE reply when the footer is wrong.
pub const DUMP_VERSION_OR_CHECKSUM_ERR: &str = "ERR DUMP payload version or checksum are wrong";
/// Redis's RESTORE reply when the payload does not decode.
pub const DUMP_BAD_FORMAT_ERR: &str = "ERR Bad data format";
/// Footer: 2 bytes version + 8 bytes CRC-64.
pub const DUMP_FOOTER_BYTES: usize = 10;

/// Encodes a value as DUMP does (RDB version 10, compression on, Redis 7.0's encodings).
/// Fails only for values no RDB can hold (duplicates, NaN scores).
pub fn encode_dump(v: &Value) -> Result<Vec<u8>, WriteError> {
    validate(b"", v)?;
    let mut enc = Encoder::new(&WriterOptions::default());
    enc.value(v);
    let mut out = enc.buf;
    out.extend_from_slice(&(RDB_VERSION_DEFAULT as u16).to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a DUMP payload: checks the footer (version <= 11, CRC-64), then decodes the value
/// with full validation. A footer error is [`Reason::DumpFooter`] (answer
/// [`DUMP_VERSION_OR_CHECKSUM_ERR`]); anything else answers [`DUMP_BAD_FORMAT_ERR`].
pub fn decode_dump(payload: &[u8]) -> Result<Value, RdbError> {
    let (version, body_len) = check_footer(payload)?;
    let body = &payload[..body_len];
    let mut r = RdbReader::headerless(body, version, ReaderOptions::default());
    let v = r.typed_value()?;
    let used = r.offset();
    let Some(v) = v else {
        return Err(RdbError::new(
            0,
            None,
            Reason::Corrupt("empty collection in DUMP payload".into()),
        ));
    };
    if used != body_len as u64 {
        return Err(RdbError::new(
            used,
            None,
            Reason::Corrupt(format!(
                "{} trailing bytes after the value",
                body_len as u64 - used
            )),
        ));
    }
    Ok(v)
}

/// Checks a payload's footer (RDB version <= [`RDB_VERSION_MAX`], CRC-64); returns the version
/// and the length of the body before the footer.
fn check_footer(payload: &[u8]) -> Result<(u32, usize), RdbError> {
    if payload.len() < DUMP_FOOTER_BYTES {
        return Err(RdbError::new(
            0,
            None,
            Reason::DumpFooter(format!(
                "payload is {} bytes, shorter than its footer",
                payload.len()
            )),
        ));
    }
    let body_len = payload.len() - DUMP_FOOTER_BYTES;
    let version = u16::from_le_bytes([payload[body_len], payload[body_len + 1]]);
    if u32::from(version) > RDB_VERSION_MAX {
        return Err(RdbError::new(
            body_len as u64,
            None,
            Reason::DumpFooter(format!(
                "RDB version {version}, this codec reads up to {RDB_VERSION_MAX}"
            )),
        ));
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&payload[body_len + 2..]);
    let stored = u64::from_le_bytes(c);
    let computed = crc64(&payload[..body_len + 2]);
    if stored != computed {
        return Err(RdbError::new(
            (body_len + 2) as u64,
            None,
            Reason::DumpFooter(format!(
                "CRC-64 stored {stored:016x}, computed {computed:016x}"
            )),
        ));
    }
    Ok((u32::from(version), body_len))
}

/// FUNCTION DUMP's payload (`functionDumpCommand`): for each library, the FUNCTION2 opcode and
/// its code as an RDB string, then the footer (RDB version 10, CRC-64), as Redis 7.0 writes it.
pub fn encode_function_dump<'a>(codes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut enc = Encoder::new(&WriterOptions::default());
    for code in codes {
        enc.buf.push(super::consts::RDB_OPCODE_FUNCTION2);
        enc.string(code);
    }
    let mut out = enc.buf;
    out.extend_from_slice(&(RDB_VERSION_DEFAULT as u16).to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why a FUNCTION RESTORE payload was refused, with Redis 7.0's reply text.
#[derive(Debug, PartialEq, Eq)]
pub enum FunctionDumpError {
    /// `ERR DUMP payload version or checksum are wrong`
    Footer,
    /// A record is not a library: `ERR given type is not a function`.
    NotAFunction,
    /// `ERR Pre-GA function format not supported`
    PreGa,
    /// A record that does not decode.
    Corrupt,
}

impl FunctionDumpError {
    /// The error reply Redis gives.
    pub fn reply(&self) -> &'static str {
        match self {
            FunctionDumpError::Footer => DUMP_VERSION_OR_CHECKSUM_ERR,
            FunctionDumpError::NotAFunction => "ERR given type is not a function",
            FunctionDumpError::PreGa => "ERR Pre-GA function format not supported",
            FunctionDumpError::Corrupt => "ERR failed loading the given functions payload",
        }
    }
}

/// Decodes a FUNCTION DUMP payload into the libraries' code, in payload order.
pub fn decode_function_dump(payload: &[u8]) -> Result<Vec<bytes::Bytes>, FunctionDumpError> {
    let (version, body_len) = check_footer(payload).map_err(|_| FunctionDumpError::Footer)?;
    let body = &payload[..body_len];
    let mut r = RdbReader::headerless(body, version, ReaderOptions::default());
    let mut out = Vec::new();
    while r.offset() < body_len as u64 {
        match r.function_record() {
            Ok((_, Some(code))) => out.push(code),
            Ok((t, None)) if t == super::consts::RDB_OPCODE_FUNCTION_PRE_GA => {
                return Err(FunctionDumpError::PreGa)
            }
            Ok((_, None)) => return Err(FunctionDumpError::NotAFunction),
            Err(_) => return Err(FunctionDumpError::Corrupt),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod function_dump_tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    /// `body` with a footer that verifies (`version`, CRC-64), so the records are decoded.
    fn with_footer(body: &[u8], version: u16) -> Vec<u8> {
        let mut p = body.to_vec();
        p.extend_from_slice(&version.to_le_bytes());
        let crc = crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    fn codes_of(r: &Result<Vec<bytes::Bytes>, FunctionDumpError>) -> Option<Vec<Vec<u8>>> {
        r.as_ref()
            .ok()
            .map(|v| v.iter().map(|b| b.to_vec()).collect())
    }

    quickcheck! {
        /// Arbitrary bytes never panic, as a whole payload, as a body with a footer that
        /// verifies (any version the codec reads), and as FUNCTION2 records with arbitrary
        /// contents; what decodes re-encodes to a payload that decodes to the same libraries.
        fn function_dump_arbitrary_bytes_never_panic(data: Vec<u8>, version: u16, cut: usize) -> bool {
            let _ = decode_function_dump(&data);
            let version = version % (RDB_VERSION_MAX as u16 + 1);
            let mut records = vec![super::super::consts::RDB_OPCODE_FUNCTION2];
            records.extend_from_slice(&data);
            for body in [&data[..], &records[..], &records[..cut % (records.len() + 1)]] {
                let r = decode_function_dump(&with_footer(body, version));
                if let Some(codes) = codes_of(&r) {
                    let p = encode_function_dump(codes.iter().map(|c| &c[..]));
                    assert_eq!(codes_of(&decode_function_dump(&p)), Some(codes));
                }
            }
            true
        }

        /// Libraries' code (arbitrary bytes, and repetitive code that DUMP compresses with
        /// LZF) encodes to a payload that decodes to the same code, in order; every strict
        /// prefix and every one-byte change of the payload is refused, never mis-decoded.
        fn function_dump_round_trips(codes: Vec<(Vec<u8>, u8)>, flip: (usize, u8)) -> TestResult {
            let codes: Vec<Vec<u8>> = codes
                .into_iter()
                .map(|(c, rep)| c.repeat(usize::from(rep % 40) + 1))
                .collect();
            let p = encode_function_dump(codes.iter().map(|c| &c[..]));
            if codes_of(&decode_function_dump(&p)) != Some(codes.clone()) {
                return TestResult::failed();
            }
            let step = (p.len() / 64).max(1);
            for n in (0..p.len()).step_by(step) {
                if decode_function_dump(&p[..n]).is_ok() {
                    return TestResult::error(format!("a {n}-byte prefix decoded"));
                }
            }
            let (at, x) = (flip.0 % p.len(), flip.1 | 1);
            let mut bad = p.clone();
            bad[at] ^= x;
            TestResult::from_bool(decode_function_dump(&bad) == Err(FunctionDumpError::Footer))
        }
    }

    #[test]
    fn function_dump_round_trips_and_refuses_damage() {
        let long = format!("#!lua name=b\n{}", "-- x\n".repeat(100));
        let codes: Vec<&[u8]> = vec![b"#!lua name=a\nreturn 1", long.as_bytes()];
        let p = encode_function_dump(codes.iter().copied());
        let back = decode_function_dump(&p).unwrap();
        assert_eq!(back.iter().map(|b| &b[..]).collect::<Vec<_>>(), codes);
        assert_eq!(
            decode_function_dump(&encode_function_dump(std::iter::empty())).unwrap(),
            Vec::<bytes::Bytes>::new()
        );
        let mut bad = p.clone();
        bad[3] ^= 1;
        assert_eq!(decode_function_dump(&bad), Err(FunctionDumpError::Footer));
        // A record that is not a library, with a right footer.
        let mut other = vec![0u8, 1, b'k'];
        other.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64(&other);
        other.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_function_dump(&other),
            Err(FunctionDumpError::NotAFunction)
        );
        for n in 0..p.len() {
            assert!(decode_function_dump(&p[..n]).is_err());
        }
    }
}
