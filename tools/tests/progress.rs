//! Progress bars on a terminal: the binaries run under `script` (a pseudo-terminal) finish.
//!
//! The binaries once held the stderr lock for their whole run while indicatif's ticker thread
//! drew on stderr, and `finish_and_clear` then waited for the ticker: a deadlock seen once on a
//! terminal (a thread dump showed the lock-order inversion). It depends on timing, so this test
//! is a smoke test of the terminal path rather than a reliable reproduction.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn finishes_on_a_terminal(cmdline: &str) -> String {
    let Ok(mut child) = Command::new("script")
        .args(["-qec", cmdline, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("no `script` on this machine: skipped");
        return String::new();
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(status.success(), "{cmdline}: {status}\n{text}");
            return text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmdline} hangs on a terminal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tools_with_progress_bars_finish_on_a_terminal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let plain = fixture("redis-7.0-aof-plain");
    let out = finishes_on_a_terminal(&format!(
        "{RECOVER} --dir {} --output {} --skip-corrupt",
        plain.display(),
        tmp.path().join("out").display()
    ));
    assert!(out.contains("Written"), "{out}");
    let out = finishes_on_a_terminal(&format!("{AOF_CHECK} {}", plain.display()));
    assert!(
        out.contains("All AOF files and manifest are valid"),
        "{out}"
    );
    let out = finishes_on_a_terminal(&format!(
        "{RDB_CHECK} --stats {}",
        fixture("redis-7.0-all-types.rdb").display()
    ));
    assert!(out.contains("RDB looks OK"), "{out}");
}
