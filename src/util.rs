//! Small helpers shared by command families: glob matching, number parsing and formatting exactly
//! as Redis does them, time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix time in microseconds.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Redis's `stringmatchlen`: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\\x`, with its quirks (an
/// unterminated `[` takes the rest of the pattern; a trailing `\\` is a literal backslash;
/// inside a class an escaped byte compares case-sensitively; an empty string matches only the
/// empty pattern, `*` included — KEYS and SCAN short-cut a lone `*` before matching).
///
/// Every token but `*` matches exactly one byte, so only the latest `*` ever needs to be retried:
/// when the rest of the pattern fails, that star takes one more byte and the match resumes after
/// it; an earlier star taking more could only move the rest further right, which was already
/// tried. Time O(pattern × string), no recursion, no allocation — a recursive matcher is
/// exponential in the number of stars (`KEYS a*a*a*…b`), a denial of service.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    if s.is_empty() {
        return pattern.is_empty();
    }
    let (mut pi, mut si) = (0usize, 0usize);
    // The pattern index after the latest `*` and the string index it is being retried at.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < pattern.len() && pattern[pi] == b'*' {
            while pi < pattern.len() && pattern[pi] == b'*' {
                pi += 1;
            }
            if pi == pattern.len() {
                return true;
            }
            star = Some((pi, si));
            continue;
        }
        if si == s.len() {
            // Trailing stars were consumed above; anything else needs a byte.
            return pi == pattern.len();
        }
        if pi < pattern.len() {
            let (matched, len) = glob_token(&pattern[pi..], s[si], nocase);
            if matched {
                pi += len;
                si += 1;
                continue;
            }
        }
        // A mismatch, or pattern used up with bytes left: the latest star takes one more byte.
        match star {
            Some((after, from)) => {
                pi = after;
                si = from + 1;
                star = Some((after, si));
            }
            None => return false,
        }
    }
}

/// Whether the pattern token at the start of `p` (not a `*`) matches byte `c`, and the token's
/// length in the pattern. Parses as Redis's `stringmatchlen` does: the structure of a pattern
/// never depends on the string.
fn glob_token(p: &[u8], c: u8, nocase: bool) -> (bool, usize) {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match p[0] {
        b'?' => (true, 1),
        b'[' => {
            let mut i = 1;
            let not = p.get(i) == Some(&b'^');
            if not {
                i += 1;
            }
            let mut matched = false;
            // `\x` pairs and `a-z` triples are read whole (in `[a-]]` the first `]` ends a
            // range); without a closing `]` the class runs to the end of the pattern.
            while i < p.len() {
                if p[i] == b'\\' && p.len() - i >= 2 {
                    matched |= p[i + 1] == c;
                    i += 2;
                } else if p[i] == b']' {
                    i += 1;
                    break;
                } else if p.len() - i >= 3 && p[i + 1] == b'-' {
                    let (mut lo, mut hi) = (p[i], p[i + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    matched |= if nocase {
                        let c = c.to_ascii_lowercase();
                        c >= lo.to_ascii_lowercase() && c <= hi.to_ascii_lowercase()
                    } else {
                        c >= lo && c <= hi
                    };
                    i += 3;
                } else {
                    matched |= eq(p[i], c);
                    i += 1;
                }
            }
            (matched != not, i)
        }
        b'\\' if p.len() >= 2 => (eq(p[1], c), 2),
        other => (eq(other, c), 1),
    }
}

/// Parse an integer argument as Redis's `getLongLongFromObject` (strict decimal).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    crate::resp::parse_i64(s)
}

/// Parse a float argument as Redis's `getLongDoubleFromObject`/`strtod` usage: no surrounding
/// spaces, `inf`/`-inf`/`+inf` accepted, NaN refused.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() > 5120 {
        return None;
    }
    if s[0].is_ascii_whitespace() || s[s.len() - 1].is_ascii_whitespace() {
        return None;
    }
    let t = std::str::from_utf8(s).ok()?;
    let l = t.to_ascii_lowercase();
    let v = match l.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            // Rust accepts things strtod does not ("1_0" no; "1." yes; "e5" no); check the charset.
            if !t
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
            {
                // hex floats and "nan" are refused
                return None;
            }
            t.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// Format a long double result of INCRBYFLOAT/HINCRBYFLOAT as Redis does (`%.17Lg`, then strip
/// trailing zeros) — Rust has no long double, so this is the shortest representation that
/// round-trips, which equals Redis's output for all values that survive the f64 conversion.
pub fn fmt_incr_float(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e17 {
        format!("{}", v as i128)
    } else {
        let s = format!("{v}");
        if s.contains('e') {
            crate::resp::fmt_g(v, 17)
        } else {
            s
        }
    }
}

/// Lower the calling thread's scheduling priority by `increment` nice levels (Linux: the nice
/// value is per thread; capped at 19). Best effort: false if it could not be changed.
pub fn lower_thread_priority(increment: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid, getpriority and setpriority take integers only and touch no memory
        // of this process; `who` is this thread's own id.
        unsafe {
            let tid = libc::gettid() as libc::id_t;
            let current = libc::getpriority(libc::PRIO_PROCESS, tid);
            let target = current.saturating_add(increment.max(0)).min(19);
            libc::setpriority(libc::PRIO_PROCESS, tid, target) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = increment;
        false
    }
}

/// The calling thread's nice value (Linux; 0 elsewhere).
pub fn thread_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: as in `lower_thread_priority`.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// See [`strongbox_storage::sched::prefer_short_slices`] (the log writer's threads use it too).
pub use strongbox_storage::sched::prefer_short_slices;

/// Create (or truncate) a temp file that will be renamed over a live one, as a new inode: the
/// name is unlinked first. A crash can keep a rename's new entry but not the removal of the old
/// one, leaving the temp name linked to the live file; truncating through it would rewrite the
/// live file (see `strongbox_storage::fs::create_fresh`).
pub fn create_fresh_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_lowers_only_its_own_priority() {
        let before = thread_nice();
        let other = std::thread::spawn(move || {
            let changed = lower_thread_priority(3);
            (changed, thread_nice())
        })
        .join()
        .expect("thread");
        if cfg!(target_os = "linux") {
            assert_eq!(other, (true, (before + 3).min(19)));
        }
        assert_eq!(
            thread_nice(),
            before,
            "the calling thread keeps its priority"
        );
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"foo*bar", b"fooXXbar", false));
        assert!(!glob_match(b"foo*bar", b"fooXXbaz", false));
        assert!(glob_match(b"a\\*b", b"a*b", false));
        assert!(glob_match(b"MAX*", b"maxmemory", true));
        assert!(glob_match(b"a*", b"a", false));
        assert!(!glob_match(b"a?", b"a", false));
        assert!(glob_match(b"*a*b*", b"xxaxxbxx", false));
        assert!(!glob_match(b"*a*b", b"xxaxxbxx", false));
        assert!(glob_match(b"a*", b"abc", false));
        assert!(!glob_match(b"*", b"", false), "as Redis's stringmatchlen");
        assert!(glob_match(b"", b"", false));
        assert!(!glob_match(b"?", b"", false));
        assert!(
            glob_match(b"[abc", b"b", false),
            "an unterminated class runs to the end"
        );
        assert!(
            glob_match(b"a\\", b"a\\", false),
            "a trailing backslash is literal"
        );
        assert!(glob_match(b"[\\]]x", b"]x", false));
        assert!(glob_match(b"*[0-9]", b"abc7", false));
        assert!(!glob_match(b"*[^0-9]", b"abc7", false));
    }

    /// `*` retried at every position by recursion is exponential in the number of stars; this
    /// pattern (Redis's regression test) took minutes and blocked the server.
    #[test]
    fn glob_with_many_stars_is_fast() {
        let key = [b'a'; 40];
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let t = std::time::Instant::now();
        assert!(!glob_match(pattern, &key, false));
        let long = vec![b'a'; 10_000];
        let many = b"*a".repeat(2000);
        assert!(glob_match(&many, &long, false));
        assert!(!glob_match(&[&many[..], b"b"].concat(), &long, false));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn floats() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(fmt_incr_float(10.5), "10.5");
        assert_eq!(fmt_incr_float(3.0), "3");
        assert_eq!(fmt_incr_float(5.0e3), "5000");
    }
}
