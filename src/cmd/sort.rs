//! Commands: sort.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
