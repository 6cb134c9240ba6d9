//! Commands: zset.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
