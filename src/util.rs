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

/// Redis's `stringmatchlen`: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    glob_rec(pattern, s, nocase, 0)
}

fn glob_rec(mut p: &[u8], mut s: &[u8], nocase: bool, depth: usize) -> bool {
    if depth > 1000 {
        return false;
    }
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    while !p.is_empty() && !s.is_empty() || (!p.is_empty() && p[0] == b'*') {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..=s.len() {
                    if glob_rec(&p[1..], &s[i..], nocase, depth + 1) {
                        return true;
                    }
                }
                return false;
            }
            b'?' => {
                s = &s[1..];
                p = &p[1..];
                continue;
            }
            b'[' => {
                p = &p[1..];
                let not = !p.is_empty() && p[0] == b'^';
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if eq(p[0], s[0]) {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut lo, mut hi) = (p[0], p[2]);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        let c = s[0];
                        let (c, lo, hi) = if nocase {
                            (
                                c.to_ascii_lowercase(),
                                lo.to_ascii_lowercase(),
                                hi.to_ascii_lowercase(),
                            )
                        } else {
                            (c, lo, hi)
                        };
                        p = &p[2..];
                        if c >= lo && c <= hi {
                            matched = true;
                        }
                    } else if eq(p[0], s[0]) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                // p now at ']' or end
                if !p.is_empty() {
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                continue;
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !eq(p[0], s[0]) {
                    return false;
                }
            }
            c => {
                if !eq(c, s[0]) {
                    return false;
                }
            }
        }
        p = &p[1..];
        s = &s[1..];
        if s.is_empty() {
            while !p.is_empty() && p[0] == b'*' {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
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
