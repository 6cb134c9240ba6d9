//! Commands: string.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
