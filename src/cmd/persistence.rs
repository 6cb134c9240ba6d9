//! Commands: persistence.

use crate::cmd::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
