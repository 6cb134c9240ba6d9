//! Arguments that must never be shown: passwords given to AUTH, HELLO … AUTH, MIGRATE … AUTH /
//! AUTH2, ACL SETUSER's rules and the values of sensitive configs in CONFIG SET. SLOWLOG and
//! MONITOR show `(redacted)` in their place, as Redis 7.0 does (Redis's
//! `redactClientCommandArgument` calls, reproduced: the same arguments in the same cases).

use bytes::Bytes;

/// What SLOWLOG and MONITOR show instead of a secret.
pub const REDACTED: &[u8] = b"(redacted)";

/// Configs whose values are secrets (Redis's SENSITIVE_CONFIG).
const SENSITIVE_CONFIGS: &[&[u8]] = &[b"requirepass", b"masterauth", b"masteruser"];

/// `argv` with its secret arguments replaced by [`REDACTED`], or None if it has none.
pub fn redacted(argv: &[Bytes]) -> Option<Vec<Bytes>> {
    let mut pos = Vec::new();
    secret_positions(argv, |p| pos.push(p));
    if pos.is_empty() {
        return None;
    }
    let mut out = argv.to_vec();
    for p in pos {
        if let Some(a) = out.get_mut(p) {
            *a = Bytes::from_static(REDACTED);
        }
    }
    Some(out)
}

fn secret_positions(argv: &[Bytes], mut f: impl FnMut(usize)) {
    let Some(name) = argv.first() else {
        return;
    };
    let is = |i: usize, w: &[u8]| argv.get(i).is_some_and(|a| a.eq_ignore_ascii_case(w));
    let n = argv.len();
    if name.eq_ignore_ascii_case(b"auth") {
        // Two or three arguments; more is a syntax error before anything is redacted.
        if n <= 3 {
            (1..n).for_each(f);
        }
    } else if name.eq_ignore_ascii_case(b"hello") {
        // HELLO [protover [AUTH user pass] [SETNAME name]]: a bad protover stops first.
        let proto_ok = argv
            .get(1)
            .is_some_and(|v| crate::util::parse_i64(v).is_some_and(|v| (2..=3).contains(&v)));
        if !proto_ok {
            return;
        }
        let mut j = 2;
        while j < n {
            let more = n - 1 - j;
            if is(j, b"auth") && more >= 2 {
                f(j + 1);
                f(j + 2);
                j += 3;
            } else if is(j, b"setname") && more >= 1 {
                j += 2;
            } else {
                return;
            }
        }
    } else if name.eq_ignore_ascii_case(b"migrate") {
        let mut j = 6;
        while j < n {
            let more = n - 1 - j;
            if is(j, b"copy") || is(j, b"replace") {
                j += 1;
            } else if is(j, b"auth") && more >= 1 {
                f(j + 1);
                j += 2;
            } else if is(j, b"auth2") && more >= 2 {
                f(j + 1);
                f(j + 2);
                j += 3;
            } else {
                return;
            }
        }
    } else if name.eq_ignore_ascii_case(b"acl") {
        if is(1, b"setuser") && n >= 3 {
            (2..n).for_each(f);
        }
    } else if name.eq_ignore_ascii_case(b"config") && is(1, b"set") && n >= 4 && n.is_multiple_of(2)
    {
        for i in (2..n).step_by(2) {
            if SENSITIVE_CONFIGS.iter().any(|c| is(i, c)) {
                f(i + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(args: &[&str]) -> Vec<String> {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.to_string())).collect();
        redacted(&argv)
            .unwrap_or(argv)
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn secrets_are_replaced() {
        assert_eq!(red(&["AUTH", "pw"]), ["AUTH", "(redacted)"]);
        assert_eq!(
            red(&["auth", "u", "pw"]),
            ["auth", "(redacted)", "(redacted)"]
        );
        assert_eq!(red(&["AUTH", "a", "b", "c"]), ["AUTH", "a", "b", "c"]);
        assert_eq!(
            red(&["HELLO", "3", "AUTH", "u", "pw", "SETNAME", "n"]),
            [
                "HELLO",
                "3",
                "AUTH",
                "(redacted)",
                "(redacted)",
                "SETNAME",
                "n"
            ]
        );
        assert_eq!(
            red(&["HELLO", "4", "AUTH", "u", "pw"]),
            ["HELLO", "4", "AUTH", "u", "pw"]
        );
        assert_eq!(
            red(&["MIGRATE", "h", "1", "", "0", "5", "COPY", "AUTH2", "u", "pw", "KEYS", "k"]),
            [
                "MIGRATE",
                "h",
                "1",
                "",
                "0",
                "5",
                "COPY",
                "AUTH2",
                "(redacted)",
                "(redacted)",
                "KEYS",
                "k"
            ]
        );
        assert_eq!(
            red(&["ACL", "SETUSER", "bob", "on", ">pw"]),
            ["ACL", "SETUSER", "(redacted)", "(redacted)", "(redacted)"]
        );
        assert_eq!(
            red(&["CONFIG", "SET", "maxmemory", "1", "REQUIREPASS", "pw"]),
            [
                "CONFIG",
                "SET",
                "maxmemory",
                "1",
                "REQUIREPASS",
                "(redacted)"
            ]
        );
        assert_eq!(red(&["GET", "auth"]), ["GET", "auth"]);
    }
}
