//! Replays the fuzz corpora: every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same check as the cargo-fuzz target
//! (`fuzz/checks.rs`, shared by both), so a decoder change that breaks an input the fuzzers
//! once explored, or reintroduces a fixed crash, fails `cargo test --test fuzz_corpora`.
//!
//! The RDB and AOF fixtures in `../shared/fixtures` (too large to copy into the corpora) are
//! replayed as well when that directory exists. Inputs that still crash are kept out of the
//! replayed set in `fuzz/pending/<target>/` until their bug is fixed (see its README).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
#[allow(dead_code)]
mod checks;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files directly in `dir` (none if it does not exist), sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file; fails listing each file whose check panicked.
fn replay(target: &str, extra: &[PathBuf], check: fn(&[u8])) {
    let root = repo_root();
    let corpus = files_in(&root.join("fuzz/corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is empty or missing"
    );
    let regressions = files_in(&root.join("fuzz/regressions").join(target));
    let mut failures = Vec::new();
    let all: Vec<&PathBuf> = corpus.iter().chain(&regressions).chain(extra).collect();
    for path in &all {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", path.display()));
        }
    }
    eprintln!(
        "{target}: replayed {} inputs ({} corpus, {} regressions, {} fixtures)",
        all.len(),
        corpus.len(),
        regressions.len(),
        extra.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed the {target} check:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// The shared fixtures whose names end with one of `suffixes` (empty when shared/ is absent).
fn fixtures(suffixes: &[&str]) -> Vec<PathBuf> {
    let dir = repo_root().join("../shared/fixtures");
    let mut out = files_in(&dir);
    for sub in files_in_dirs(&dir) {
        out.extend(files_in(&sub));
    }
    out.retain(|p| {
        let name = p.to_string_lossy();
        suffixes.iter().any(|s| name.ends_with(s))
    });
    // The same file reached twice (through a symlinked directory) is replayed once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    out
}

fn files_in_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn resp_request_corpus_replays() {
    replay("resp_request", &[], checks::check_resp_request);
}

/// The fixture AOFs as one client stream (split in the middle), through the server's parser.
#[test]
fn resp_request_parses_fixture_aofs_split_invariantly() {
    for path in fixtures(&[".aof"]) {
        let file = std::fs::read(&path).expect("fixture");
        // Redis 7 AOFs hold `#TS:` annotation lines, which are not requests: keep the commands.
        let mut stream = Vec::new();
        let mut at = 0;
        while let strongbox_storage::resp::Parsed::Command { len, .. }
        | strongbox_storage::resp::Parsed::Annotation { len, .. } =
            strongbox_storage::resp::parse(&file[at..])
        {
            if file[at] == b'*' {
                stream.extend_from_slice(&file[at..at + len]);
            }
            at += len;
        }
        assert_eq!(at, file.len(), "{}: fixture does not parse", path.display());
        let mut input = ((stream.len() / 2) as u16).to_le_bytes().to_vec();
        input.extend_from_slice(&stream);
        checks::check_resp_request(&input);
    }
}

#[test]
fn aof_storage_resp_corpus_replays() {
    replay(
        "aof_storage_resp",
        &fixtures(&[".aof"]),
        checks::check_aof_storage_resp,
    );
}

#[test]
fn aof_batch_corpus_replays() {
    replay("aof_batch", &fixtures(&[".aof"]), checks::check_aof_batch);
}

#[test]
fn aof_manifest_corpus_replays() {
    replay(
        "aof_manifest",
        &fixtures(&[".manifest"]),
        checks::check_aof_manifest,
    );
}

#[test]
fn rdb_reader_corpus_replays() {
    replay("rdb_reader", &fixtures(&[".rdb"]), checks::check_rdb_reader);
}

#[test]
fn function_dump_corpus_replays() {
    replay("function_dump", &[], checks::check_function_dump);
}

#[test]
fn acl_rules_corpus_replays() {
    replay("acl_rules", &[], checks::check_acl_rules);
}

/// The hand-made function_dump seeds mean what their names say (so the Python CRC-64 of
/// fuzz/make_seeds.py agrees with Redis's, and the fuzzer starts from payloads that decode).
#[test]
fn function_dump_seeds_decode_as_named() {
    use strongbox_storage::rdb::{decode_function_dump, FunctionDumpError};
    let seed = |name: &str| {
        let path = repo_root().join("fuzz/corpus/function_dump").join(name);
        decode_function_dump(&std::fs::read(&path).expect("seed"))
    };
    assert_eq!(seed("seed-one-library").map(|v| v.len()), Ok(1));
    assert_eq!(seed("seed-two-libraries").map(|v| v.len()), Ok(2));
    assert_eq!(seed("seed-empty").map(|v| v.len()), Ok(0));
    assert_eq!(seed("seed-version-11").map(|v| v.len()), Ok(1));
    assert_eq!(
        seed("seed-lzf-record").map(|v| v[0].to_vec()),
        Ok(b"abcabcab".to_vec())
    );
    assert_eq!(
        seed("seed-int-record").map(|v| v[0].to_vec()),
        Ok(b"123".to_vec())
    );
    assert_eq!(seed("seed-version-12"), Err(FunctionDumpError::Footer));
    assert_eq!(seed("seed-bad-crc"), Err(FunctionDumpError::Footer));
    assert_eq!(seed("seed-truncated"), Err(FunctionDumpError::Footer));
    assert_eq!(seed("seed-pre-ga-opcode"), Err(FunctionDumpError::PreGa));
    assert_eq!(
        seed("seed-string-record"),
        Err(FunctionDumpError::NotAFunction)
    );
}
