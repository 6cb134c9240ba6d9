//! Commands: list.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
