//! The sink hears where the replay is (`Sink::progress`, once per `PROGRESS_COMMANDS`
//! commands, and `Sink::file_done`) and may stop it there, as the server does when a shutdown
//! is asked for while it loads: the replay stops at once and touches no file — a torn tail
//! that a finished replay would cut stays as it was.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::Model;
use strongbox_recovery::replay::PROGRESS_COMMANDS;
use strongbox_recovery::{execute_with_pipeline, observe, plan, Options, RecoveryError, Sink};
use strongbox_storage::fs::Vfs;
use strongbox_storage::resp::encode_command;

const DIR: &str = "/d/appendonlydir";
const FILE: &str = "appendonly.aof.1.incr.aof";

/// A model that notes the progress calls and stops the replay at the `stop_at`-th one.
struct Stopping {
    model: Model,
    offsets: Vec<u64>,
    files_done: Vec<u64>,
    stop_at: usize,
}

impl Sink for Stopping {
    fn command(&mut self, argv: Vec<Bytes>) -> Result<(), String> {
        self.model.command(argv)
    }
    fn load_rdb(&mut self, path: &Path, bytes: &[u8]) -> Result<u64, String> {
        self.model.load_rdb(path, bytes)
    }
    fn progress(&mut self, offset: u64) -> Result<(), String> {
        self.offsets.push(offset);
        if self.offsets.len() >= self.stop_at {
            return Err("shutdown requested".to_string());
        }
        Ok(())
    }
    fn file_done(&mut self, len: u64) {
        self.files_done.push(len);
    }
}

/// 3000 plain SETs, then a torn command.
fn torn_log() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..3000 {
        encode_command(&mut out, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    out.extend_from_slice(b"*2\r\n$3\r\nDEL");
    out
}

fn replay(stop_at: usize, pipeline_min_bytes: usize) -> (Result<(), RecoveryError>, Stopping, u64) {
    let bytes = torn_log();
    let fs = common::sim_dir_with(Path::new(DIR), &[(FILE, &bytes)]);
    let mut sink = Stopping {
        model: Model::default(),
        offsets: Vec::new(),
        files_done: Vec::new(),
        stop_at,
    };
    let opts = Options::default();
    let r = observe(&fs, Path::new(DIR), "appendonly.aof")
        .and_then(|o| plan(&o, false))
        .and_then(|p| execute_with_pipeline(&fs, &p, &opts, &mut sink, pipeline_min_bytes))
        .map(|_| ());
    let len = fs.len(&Path::new(DIR).join(FILE)).expect("len");
    (r, sink, len)
}

#[test]
fn progress_is_reported_every_so_many_commands_and_the_file_when_done() {
    let whole = torn_log().len() as u64;
    for pipeline in [0, usize::MAX] {
        let (r, sink, len) = replay(usize::MAX, pipeline);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(sink.model.log.len(), 3000);
        assert_eq!(sink.offsets.len() as u64, 3000 / PROGRESS_COMMANDS);
        assert!(
            sink.offsets.windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            sink.offsets
        );
        assert!(sink.offsets.iter().all(|&o| o > 0 && o < whole));
        assert_eq!(sink.files_done, vec![whole]);
        assert!(len < whole, "the torn tail is cut after a whole replay");
    }
}

#[test]
fn a_sink_that_stops_at_a_progress_call_stops_the_replay_and_cuts_nothing() {
    let whole = torn_log().len() as u64;
    for pipeline in [0, usize::MAX] {
        let (r, sink, len) = replay(1, pipeline);
        assert!(
            matches!(&r, Err(RecoveryError::Apply { reason, .. }) if reason == "shutdown requested"),
            "{r:?}"
        );
        // Stopped before the command at which it was asked.
        assert_eq!(sink.model.log.len() as u64, PROGRESS_COMMANDS - 1);
        assert!(sink.files_done.is_empty());
        assert_eq!(
            len, whole,
            "the torn tail must stay: the replay did not end"
        );
    }
}
