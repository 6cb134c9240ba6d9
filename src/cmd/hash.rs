//! Commands: hash.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
