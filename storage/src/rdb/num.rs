//! Number ↔ text conversions with Redis's exact rules.

/// Parses `s` as Redis's `string2ll` / listpack's `lpStringToInt64` do: strictly — optional
/// `-`, no `+`, no leading zeros (except "0" itself), no "-0", no spaces, at most 20 bytes,
/// within i64.
pub fn canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let v: i64 = text.parse().ok()?;
    // Rust's parser accepts "+1" and "007"; re-formatting rejects every non-canonical form.
    if v.to_string().as_bytes() == s {
        Some(v)
    } else {
        None
    }
}

/// Formats a double as C's `printf("%.17g")` does (glibc), which is how Redis 7.0 prints scores
/// (`addReplyDouble`) and stores them in listpacks (`d2string`): "inf", "-inf", "nan", "0",
/// "-0", integers without a decimal point, and an exponent form `1.5e-300` outside
/// [1e-4, 1e17).
pub fn format_g17(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".to_string()
        } else {
            "0".to_string()
        };
    }
    const P: i32 = 17;
    let e = format!("{:.*e}", (P - 1) as usize, v);
    let (mant, exp) = match e.split_once('e') {
        Some(parts) => parts,
        None => return e,
    };
    let x: i32 = exp.parse().unwrap_or(0);
    if (-4..P).contains(&x) {
        let prec = (P - 1 - x) as usize;
        strip_zeros(&format!("{:.*}", prec, v))
    } else {
        let m = strip_zeros(mant);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", x.abs())
    }
}

/// Formats a double with the shortest digits that round-trip, laid out as `%g` would (exponent
/// form outside [1e-4, 1e17)): how Redis 7.2+ and Valkey 8 print scores (`fpconv_dtoa`).
pub fn format_shortest(v: f64) -> String {
    if v.is_nan() || v.is_infinite() || v == 0.0 {
        return format_g17(v);
    }
    let e = format!("{v:e}");
    let (mant, exp) = match e.split_once('e') {
        Some(parts) => parts,
        None => return e,
    };
    let x: i32 = exp.parse().unwrap_or(0);
    if (-4..17).contains(&x) {
        let neg = mant.starts_with('-');
        let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
        let mut out = String::new();
        if neg {
            out.push('-');
        }
        if x < 0 {
            out.push_str("0.");
            for _ in 0..(-x - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = x as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
        out
    } else {
        let sign = if x < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", x.abs())
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0');
        t.trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Parses a score as Redis's `strtod` would for text it wrote: decimal or exponent form, "inf",
/// "-inf", "+inf". Returns `None` for anything else and for NaN.
pub fn parse_score(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?;
    let v: f64 = t.parse().ok()?;
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_follow_string2ll() {
        assert_eq!(canonical_i64(b"0"), Some(0));
        assert_eq!(canonical_i64(b"-1"), Some(-1));
        assert_eq!(canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"-0"[..],
            b"+1",
            b"01",
            b" 1",
            b"1 ",
            b"",
            b"9223372036854775808",
            b"1.0",
        ] {
            assert_eq!(canonical_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn g17_matches_glibc() {
        assert_eq!(
            format_g17("130.28023677719079".parse().unwrap_or(0.0)),
            "130.28023677719079"
        );
        assert_eq!(format_g17(1.5e-300), "1.5000000000000001e-300");
        assert_eq!(format_g17(1.0), "1");
        assert_eq!(format_g17(-2.5), "-2.5");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_g17(f64::INFINITY), "inf");
        assert_eq!(format_g17(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_g17(4503599627370496.0), "4503599627370496");
    }

    #[test]
    fn shortest_matches_fpconv_layout() {
        assert_eq!(format_shortest(-804.05793080447), "-804.05793080447");
        assert_eq!(format_shortest(1.5e-300), "1.5e-300");
        assert_eq!(format_shortest(3.0), "3");
        assert_eq!(format_shortest(1500.0), "1500");
        assert_eq!(format_shortest(0.00015), "0.00015");
        assert_eq!(format_shortest(1e17), "1e+17");
        assert_eq!(format_shortest(-0.5), "-0.5");
    }
}
