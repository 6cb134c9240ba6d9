//! Intset (`src/intset.c`): `<encoding u32 LE: 2|4|8> <length u32 LE> <length × int LE>`,
//! strictly ascending. Validated like `intsetValidateIntegrity` in deep mode.

use super::error::BlobError;

const WHAT: &str = "intset";

/// Decodes and validates an intset.
pub fn decode(blob: &[u8]) -> Result<Vec<i64>, BlobError> {
    if blob.len() < 8 {
        return Err(BlobError::new(WHAT, 0, "shorter than its 8-byte header"));
    }
    let enc = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    let len = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if !matches!(enc, 2 | 4 | 8) {
        return Err(BlobError::new(WHAT, 0, format!("invalid encoding {enc}")));
    }
    if (len as u64) * (enc as u64) + 8 != blob.len() as u64 {
        return Err(BlobError::new(
            WHAT,
            4,
            format!(
                "{len} × {enc} bytes does not match blob size {}",
                blob.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let p = 8 + i * enc;
        let d = &blob[p..p + enc];
        let v = match enc {
            2 => i64::from(i16::from_le_bytes([d[0], d[1]])),
            4 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(d);
                i64::from_le_bytes(a)
            }
        };
        if let Some(&prev) = out.last() {
            if v <= prev {
                return Err(BlobError::new(WHAT, p, "values not strictly ascending"));
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// Encodes sorted, distinct integers with the smallest encoding that fits all.
pub fn encode(sorted: &[i64]) -> Vec<u8> {
    let fits = |lo: i64, hi: i64| sorted.iter().all(|v| (lo..=hi).contains(v));
    let enc: usize = if fits(i64::from(i16::MIN), i64::from(i16::MAX)) {
        2
    } else if fits(i64::from(i32::MIN), i64::from(i32::MAX)) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + enc * sorted.len());
    out.extend_from_slice(&(enc as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for &v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..enc]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_width_and_rejects_disorder() {
        for set in [
            vec![-5i64, 0, 7],
            vec![-70000, 1],
            vec![i64::MIN, 0, i64::MAX],
            vec![],
        ] {
            assert_eq!(decode(&encode(&set)).expect("valid"), set);
        }
        let blob = encode(&[1, 2]);
        let mut bad = blob.clone();
        bad[8] = 9;
        assert!(decode(&bad).is_err());
        assert!(decode(&blob[..11]).is_err());
    }
}
