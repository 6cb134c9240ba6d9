#![no_main]
//! Fuzz target `acl_rules`: the body is `checks::check_acl_rules` in fuzz/checks.rs, which
//! tests/fuzz_corpora.rs also runs over every corpus and regression file.

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_acl_rules(data));
