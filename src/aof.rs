//! The log writer and recovery at start (bridges `strongbox-storage`/`strongbox-recovery` to the
//! execution thread).

use crate::exec::Server;

/// Load the data set and attach the log writer.
pub fn open(_srv: &mut Server) -> Result<(), String> {
    Ok(())
}
