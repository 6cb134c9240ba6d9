//! Commands: stream.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
