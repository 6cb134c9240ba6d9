//! Observations: what is in the AOF directory. The only part of planning that reads the disk.

use crate::RecoveryError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strongbox_storage::aof::manifest_name;
use strongbox_storage::fs::Vfs;

/// What the directory looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observations {
    /// The AOF directory.
    pub dir: PathBuf,
    /// `appendfilename`.
    pub filename: String,
    /// Whether the directory exists.
    pub dir_exists: bool,
    /// Regular files in it, sorted.
    pub files: Vec<String>,
    /// The manifest bytes, if the manifest exists.
    pub manifest_bytes: Option<Vec<u8>>,
    /// When the manifest is missing: the length of every file (to tell leftovers of an
    /// interrupted first start, which are empty, from real data).
    pub lens_without_manifest: BTreeMap<String, u64>,
}

/// List the directory and read the manifest.
pub fn observe(vfs: &dyn Vfs, dir: &Path, filename: &str) -> Result<Observations, RecoveryError> {
    let dir_exists = vfs.exists(dir).map_err(RecoveryError::io("stat", dir))?;
    if !dir_exists {
        return Ok(Observations {
            dir: dir.to_path_buf(),
            filename: filename.to_string(),
            dir_exists,
            files: Vec::new(),
            manifest_bytes: None,
            lens_without_manifest: BTreeMap::new(),
        });
    }
    let files = vfs.list_dir(dir).map_err(RecoveryError::io("list", dir))?;
    let mname = manifest_name(filename);
    let manifest_bytes = if files.contains(&mname) {
        let p = dir.join(&mname);
        Some(vfs.read(&p).map_err(RecoveryError::io("read", p))?)
    } else {
        None
    };
    let mut lens_without_manifest = BTreeMap::new();
    if manifest_bytes.is_none() {
        for f in &files {
            let p = dir.join(f);
            lens_without_manifest.insert(
                f.clone(),
                vfs.len(&p).map_err(RecoveryError::io("stat", p))?,
            );
        }
    }
    Ok(Observations {
        dir: dir.to_path_buf(),
        filename: filename.to_string(),
        dir_exists,
        files,
        manifest_bytes,
        lens_without_manifest,
    })
}
