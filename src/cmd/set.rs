//! Commands: set.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
