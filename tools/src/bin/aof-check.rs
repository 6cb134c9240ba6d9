//! `aof-check`: validate a Redis 7 / Strongbox AOF (manifest or single file); cut a torn tail
//! (`--fix`) or everything after a time (`--truncate-to-timestamp`). See docs/tools.md.

use std::path::PathBuf;

use clap::Parser;

/// Validate an AOF: a manifest (or a directory holding one), a base (.rdb or .aof) or an incr
/// file. Exit 0 valid, 1 invalid.
#[derive(Parser, Debug)]
#[command(name = "aof-check", version, about)]
struct Args {
    /// Cut a torn tail of the last file (after showing it and asking); never damage in the
    /// middle (use strongbox-recover for that). The cut bytes are kept in a backup file.
    #[arg(long, conflicts_with = "truncate_to_timestamp")]
    fix: bool,
    /// Cut the last file at the first `#TS:` annotation later than this Unix time.
    #[arg(long, value_name = "UNIX-TS")]
    truncate_to_timestamp: Option<i64>,
    /// Do not ask before cutting.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// The manifest, a base or incr file, or a directory holding the manifest.
    input: PathBuf,
}

fn main() {
    let a = Args::parse();
    let opts = strongbox_tools::aof_check::Options {
        input: a.input,
        fix: a.fix,
        truncate_to_timestamp: a.truncate_to_timestamp,
        yes: a.yes,
        json: a.json,
        quiet: a.quiet,
    };
    let code = strongbox_tools::aof_check::run(
        &opts,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
