//! Redis 7's upgrade of a Redis 6 style AOF (`<dir>/<appendfilename>`, one file) into the
//! multi-part layout, and the first manifest of a new AOF directory.
//!
//! The old file becomes the base (seq 1) of the AOF directory. As Redis's
//! `aofUpgradePrepare`, the manifest is written first (atomically: temp, fsync, rename, fsync
//! the directory), then the file is moved in. A crash between the two leaves a manifest naming
//! a base that is still outside: the next start sees that case and finishes the move. The
//! procedure is therefore safe to repeat after a crash at any step (recovery/tests/
//! crash_upgrade.rs crashes it at every step on the simulated file system).

use std::io;
use std::path::Path;

use super::{manifest_name, FileType, Manifest, ManifestEntry};
use crate::fs::{write_file_atomic, Vfs};

/// A failed step of the upgrade; `Display` gives the server's error text.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("Can't read {path}: {source}")]
    ReadManifest { path: String, source: io::Error },
    #[error("Can't open or create append-only dir {path}: {source}")]
    CreateDir { path: String, source: io::Error },
    #[error("Can't write the AOF manifest {path}: {source}")]
    WriteManifest { path: String, source: io::Error },
    #[error("Error trying to rename the existing AOF to {path}: {source}")]
    Rename { path: String, source: io::Error },
    #[error("Can't sync the directory {path}: {source}")]
    Sync { path: String, source: io::Error },
}

/// Whether `<dir>/<filename>` is a Redis 6 style AOF to move into `aof_dir`: the AOF
/// directory is missing, has no manifest or one without entries (only comments; an empty
/// file is an error, as in Redis), or its manifest lists only that file
/// as base and the file is not inside yet (an interrupted upgrade). A manifest that does not
/// parse is left to the normal load, which reports it.
pub fn needs_upgrade(
    vfs: &dyn Vfs,
    dir: &Path,
    aof_dir: &Path,
    filename: &str,
) -> Result<bool, UpgradeError> {
    if !vfs.exists(&dir.join(filename)).unwrap_or(false) {
        return Ok(false);
    }
    if !vfs.exists(aof_dir).unwrap_or(false) {
        return Ok(true);
    }
    let manifest_path = aof_dir.join(manifest_name(filename));
    match vfs.read(&manifest_path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(UpgradeError::ReadManifest {
            path: manifest_path.display().to_string(),
            source,
        }),
        Ok(bytes) => Ok(Manifest::parse(&bytes).is_ok_and(|m| {
            m.is_empty()
                || (m.incr.is_empty()
                    && m.base.as_ref().is_some_and(|b| b.name == filename)
                    && !vfs.exists(&aof_dir.join(filename)).unwrap_or(true))
        })),
    }
}

/// Moves `<dir>/<filename>` into `aof_dir` as its base when [`needs_upgrade`] says so.
/// Returns whether it did.
pub fn upgrade_old_style(
    vfs: &dyn Vfs,
    dir: &Path,
    aof_dir: &Path,
    filename: &str,
) -> Result<bool, UpgradeError> {
    if !needs_upgrade(vfs, dir, aof_dir, filename)? {
        return Ok(false);
    }
    let sync = |d: &Path| {
        vfs.sync_dir(d).map_err(|source| UpgradeError::Sync {
            path: d.display().to_string(),
            source,
        })
    };
    vfs.create_dir_all(aof_dir)
        .map_err(|source| UpgradeError::CreateDir {
            path: aof_dir.display().to_string(),
            source,
        })?;
    sync(dir)?;
    write_base_only_manifest(vfs, aof_dir, filename, filename, 1).map_err(|source| {
        UpgradeError::WriteManifest {
            path: aof_dir.join(manifest_name(filename)).display().to_string(),
            source,
        }
    })?;
    let inside = aof_dir.join(filename);
    vfs.rename(&dir.join(filename), &inside)
        .map_err(|source| UpgradeError::Rename {
            path: inside.display().to_string(),
            source,
        })?;
    sync(aof_dir)?;
    sync(dir)?;
    Ok(true)
}

/// Writes (atomically) the manifest of an AOF directory holding only base `base` (seq
/// `seq`), no incr file: a new directory (seq 1), or BGREWRITEAOF's with `appendonly no`.
pub fn write_base_only_manifest(
    vfs: &dyn Vfs,
    aof_dir: &Path,
    filename: &str,
    base: &str,
    seq: u64,
) -> io::Result<Manifest> {
    let manifest = Manifest {
        base: Some(ManifestEntry {
            name: base.to_string(),
            seq,
            kind: FileType::Base,
        }),
        ..Manifest::default()
    };
    write_file_atomic(vfs, aof_dir, &manifest_name(filename), &manifest.format())?;
    Ok(manifest)
}
