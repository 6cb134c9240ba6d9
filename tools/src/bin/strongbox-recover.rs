//! `strongbox-recover`: rebuild the most complete consistent state of a data directory into a
//! new one. See docs/tools.md.

use std::path::PathBuf;

use clap::Parser;

/// Rebuild the most complete consistent state from a data directory (manifest, base, incr
/// files, dump.rdb) and write it as a NEW data directory that strongbox-server and
/// redis-server 7 load. The input is never modified.
#[derive(Parser, Debug)]
#[command(name = "strongbox-recover", version, about)]
struct Args {
    /// The data directory (holding appendonlydir/ and/or dump.rdb), or the AOF directory.
    #[arg(long)]
    dir: PathBuf,
    /// The new data directory to write (must not exist, or be empty).
    #[arg(long)]
    output: PathBuf,
    /// The state as of this Unix time: stop at the first `#TS:` annotation later than it.
    #[arg(long, value_name = "UNIX-TS")]
    to_timestamp: Option<i64>,
    /// Skip damaged ranges and continue at the next valid batch (each skipped range is listed),
    /// instead of stopping at the first corruption.
    #[arg(long)]
    skip_corrupt: bool,
    /// Print the report as one JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// `appendfilename` of the input (and output).
    #[arg(long, default_value = "appendonly.aof")]
    appendfilename: String,
    /// `appenddirname` of the input (and output).
    #[arg(long, default_value = "appendonlydir")]
    appenddirname: String,
    /// `dbfilename` of the input.
    #[arg(long, default_value = "dump.rdb")]
    dbfilename: String,
    /// `databases` (number of databases the state may use).
    #[arg(long, default_value_t = 16)]
    databases: u32,
}

fn main() {
    let a = Args::parse();
    let opts = strongbox_tools::recover::Options {
        dir: a.dir,
        output: a.output,
        to_timestamp: a.to_timestamp,
        skip_corrupt: a.skip_corrupt,
        json: a.json,
        quiet: a.quiet,
        appendfilename: a.appendfilename,
        appenddirname: a.appenddirname,
        dbfilename: a.dbfilename,
        databases: a.databases,
    };
    let code = strongbox_tools::recover::run(&opts, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
