//! `rdb-check`: validate a whole RDB file and print what it holds. See docs/tools.md.

use std::path::PathBuf;

use clap::Parser;

/// Validate an RDB file (header, every opcode and value, listpack/ziplist/intset contents,
/// CRC-64) and print its AUX fields and key counts. Exit 0 valid, 1 invalid.
#[derive(Parser, Debug)]
#[command(name = "rdb-check", version, about)]
struct Args {
    /// Also print keys, expires and bytes per database and per type, and the largest keys.
    #[arg(long)]
    stats: bool,
    /// Print one JSON document on stdout (always with the statistics).
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// The RDB file.
    file: PathBuf,
}

fn main() {
    let a = Args::parse();
    let code = strongbox_tools::rdb_check::run(
        &a.file,
        a.stats,
        a.json,
        a.quiet,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
