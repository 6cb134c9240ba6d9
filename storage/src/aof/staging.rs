//! Switching to a freshly written AOF directory: `CONFIG SET appendonly yes`, and a replica's
//! log after a full sync, write a complete log (manifest, base, incr files) in a *staging
//! directory* beside the AOF directory, `temp-<appenddirname>-<pid>`, and then put it in the
//! AOF directory's place with [`swap_in`]. [`settle_at_start`] is the start-up rule for what
//! a crash leaves of it. Both run on [`Vfs`], so the server and the seeded crash simulation
//! (recovery/tests/crash_staging.rs) run the same code.
//!
//! Crash argument (the model is [`crate::fs::SimFs`]'s: a directory rename or exchange is
//! durable once the parent directory is fsynced; before that a power loss keeps it whole or
//! loses it whole; a directory's own entries are durable once it is fsynced):
//! - Before [`swap_in`] is called, the staging directory is complete and durable: its entry
//!   in the data directory was fsynced when it was created, and every file in it (manifest,
//!   base, incr files) was fsynced and its directory entry fsynced by the log writer and the
//!   compaction installer.
//! - With `RENAME_EXCHANGE`: one exchange, then an fsync of the data directory. A crash before
//!   that fsync returns leaves the AOF directory's name on the old directory and the staging
//!   name on the new one, or the other way round; at start [`settle_at_start`] fsyncs the data
//!   directory and removes whatever holds a staging name. So the AOF directory is the old one
//!   or the new one, each whole. Nothing is removed before the exchange is durable.
//! - Without it (a file system that refuses `RENAME_EXCHANGE`): the old directory is renamed
//!   aside to `temp-<appenddirname>-<pid>.old`, the data directory fsynced, the staging
//!   directory renamed to the AOF directory's name, the data directory fsynced, and only then
//!   the old directory removed. A crash between the two renames leaves no AOF directory and
//!   the old one aside: [`settle_at_start`] renames it back. So again the old or the new.
//! - [`swap_in`] returns `Ok` only once the switch is durable: the caller acknowledges no write
//!   made in the new directory before (the server reopens its log writer there only then).
//!   If the last fsync fails, the new directory is in place but maybe not durably:
//!   [`SwapError::NotDurable`], and the caller must latch its log as failed (acknowledging
//!   later writes could promise what a power loss takes back).

use crate::fs::Vfs;
use std::io;
use std::path::{Path, PathBuf};

/// Prefix of staging directory names (`temp-<appenddirname>-<pid>`), as Redis's temp files.
pub const STAGING_PREFIX: &str = "temp-";

/// Suffix of the old AOF directory set aside by the two-step switch (no `RENAME_EXCHANGE`).
pub const ASIDE_SUFFIX: &str = ".old";

/// The staging directory for `aof_dir` and process `id`: `<parent>/temp-<name>-<id>`.
pub fn staging_dir(aof_dir: &Path, id: u32) -> PathBuf {
    let name = aof_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(aof_dir).join(format!("{STAGING_PREFIX}{name}-{id}"))
}

/// Where the two-step switch puts the old AOF directory: `<staging>.old`.
pub fn aside_dir(staging: &Path) -> PathBuf {
    let mut s = staging.as_os_str().to_os_string();
    s.push(ASIDE_SUFFIX);
    PathBuf::from(s)
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn ctx(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Why [`swap_in`] did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The AOF directory is still the old one (or, if even putting it back failed, it is
    /// aside and [`settle_at_start`] puts it back): the new log is still at the staging name.
    #[error("the new append only directory was not moved in: {0}")]
    NotMoved(io::Error),
    /// The new directory holds the AOF directory's name, but the data directory's fsync
    /// failed: a power loss may still bring the old one back. Nothing was removed.
    #[error("the new append only directory is in place but not durably: {0}")]
    NotDurable(io::Error),
}

/// What [`swap_in`] did, for the log.
#[derive(Debug, Default)]
pub struct Swapped {
    /// The file system refused `RENAME_EXCHANGE`; the two-step switch was used.
    pub two_step: bool,
    /// Problems after the switch was durable (an old directory not removed: the next start
    /// removes it).
    pub warnings: Vec<String>,
}

/// Put the complete, durable directory `staging` in the place of `dir` (both in one parent),
/// durably; see the module docs for the crash argument.
pub fn swap_in(vfs: &dyn Vfs, staging: &Path, dir: &Path) -> Result<Swapped, SwapError> {
    let parent = parent_of(dir);
    if parent_of(staging) != parent {
        return Err(SwapError::NotMoved(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} and {} are not in one directory",
                staging.display(),
                dir.display()
            ),
        )));
    }
    let aside = aside_dir(staging);
    let mut out = Swapped::default();
    let mut old_at_staging = false;
    let dir_exists = vfs
        .exists(dir)
        .map_err(ctx(format!("stat {}", dir.display())))
        .map_err(SwapError::NotMoved)?;
    if dir_exists {
        match vfs.exchange_dirs(staging, dir) {
            Ok(()) => old_at_staging = true,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                out.two_step = true;
                two_step(vfs, &parent, staging, dir, &aside)?;
            }
            Err(e) => {
                return Err(SwapError::NotMoved(ctx(format!(
                    "exchange {} with {}",
                    staging.display(),
                    dir.display()
                ))(e)))
            }
        }
    } else {
        vfs.rename_dir(staging, dir)
            .map_err(ctx(format!(
                "rename {} to {}",
                staging.display(),
                dir.display()
            )))
            .map_err(SwapError::NotMoved)?;
    }
    // IMPORTANT: the switch is durable only once the data directory is fsynced; nothing old
    // is removed before, and the caller acknowledges nothing in the new directory before.
    vfs.sync_dir(&parent)
        .map_err(ctx(format!("fsync {}", parent.display())))
        .map_err(SwapError::NotDurable)?;
    let mut remove = |p: &Path| match vfs.exists(p) {
        Ok(true) => {
            if let Err(e) = vfs.remove_dir_all(p) {
                out.warnings
                    .push(format!("remove the old {}: {e}", p.display()));
            }
        }
        Ok(false) => {}
        Err(e) => out.warnings.push(format!("stat {}: {e}", p.display())),
    };
    if old_at_staging {
        remove(staging);
    }
    remove(&aside);
    Ok(out)
}

/// The switch without `RENAME_EXCHANGE`: `dir` aside, fsync, `staging` to `dir`. On failure
/// `dir` is put back where possible ([`settle_at_start`] does it otherwise).
fn two_step(
    vfs: &dyn Vfs,
    parent: &Path,
    staging: &Path,
    dir: &Path,
    aside: &Path,
) -> Result<(), SwapError> {
    let put_back = |e: io::Error| {
        // Undo the first rename (not durable either way: the old directory is the AOF
        // directory or aside, and a start puts an aside one back).
        let _ = vfs.rename_dir(aside, dir);
        SwapError::NotMoved(e)
    };
    if vfs
        .exists(aside)
        .map_err(ctx(format!("stat {}", aside.display())))
        .map_err(SwapError::NotMoved)?
    {
        return Err(SwapError::NotMoved(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is in the way", aside.display()),
        )));
    }
    vfs.rename_dir(dir, aside)
        .map_err(ctx(format!(
            "rename {} to {}",
            dir.display(),
            aside.display()
        )))
        .map_err(SwapError::NotMoved)?;
    vfs.sync_dir(parent)
        .map_err(ctx(format!("fsync {}", parent.display())))
        .map_err(put_back)?;
    vfs.rename_dir(staging, dir)
        .map_err(ctx(format!(
            "rename {} to {}",
            staging.display(),
            dir.display()
        )))
        .map_err(put_back)?;
    Ok(())
}

/// Remove a staging directory (and the aside directory of its two-step switch) that is not
/// in use: one left over at the same name, or the log of an abandoned switch. The data
/// directory is fsynced first, so what holds the staging name is known not to be the durable
/// AOF directory (after a switch whose last fsync failed, the old AOF directory is there).
pub fn remove_staging(vfs: &dyn Vfs, staging: &Path) -> io::Result<()> {
    let aside = aside_dir(staging);
    let there: Vec<&Path> = [staging, aside.as_path()]
        .into_iter()
        .filter(|p| vfs.exists(p).unwrap_or(true))
        .collect();
    if there.is_empty() {
        return Ok(());
    }
    let parent = parent_of(staging);
    vfs.sync_dir(&parent)
        .map_err(ctx(format!("fsync {}", parent.display())))?;
    for p in there {
        vfs.remove_dir_all(p)
            .map_err(ctx(format!("remove {}", p.display())))?;
    }
    Ok(())
}

/// What [`settle_at_start`] did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// An old AOF directory found aside (a crash inside a two-step switch) and renamed back.
    pub restored: Option<PathBuf>,
    /// Leftover staging and aside directories removed.
    pub removed: Vec<PathBuf>,
    /// Leftovers that could not be removed (harmless: tried again at the next start).
    pub warnings: Vec<String>,
}

/// The start-up rule, before the AOF directory is recovered (the server runs it whatever
/// `appendonly` says): in `data_dir`, for the AOF directory named `aof_dir_name`,
/// 1. if the AOF directory is missing and an old one is aside (`temp-<name>-<pid>.old`: a
///    crash between the two renames of a two-step switch), rename it back;
/// 2. fsync `data_dir`, so whatever the AOF directory is now, a later power loss keeps it
///    (after a process kill between a switch and its fsync, the new directory may be in place
///    without being durable, and the server is about to acknowledge writes into it);
/// 3. remove every staging directory (`temp-<name>-<pid>`) and aside directory left: none of
///    them is the AOF directory.
///
/// An error (the rename back or the fsync failed) must stop the start: going on could
/// start a new log where the old one is aside, or acknowledge writes a power loss takes back.
pub fn settle_at_start(vfs: &dyn Vfs, data_dir: &Path, aof_dir_name: &str) -> io::Result<Settled> {
    let mut out = Settled::default();
    if !vfs
        .exists(data_dir)
        .map_err(ctx(format!("stat {}", data_dir.display())))?
    {
        return Ok(out);
    }
    let prefix = format!("{STAGING_PREFIX}{aof_dir_name}-");
    let is_pid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut staging = Vec::new();
    let mut aside = Vec::new();
    for n in vfs
        .list_subdirs(data_dir)
        .map_err(ctx(format!("list {}", data_dir.display())))?
    {
        let Some(rest) = n.strip_prefix(&prefix) else {
            continue;
        };
        if is_pid(rest) {
            staging.push(data_dir.join(&n));
        } else if rest.strip_suffix(ASIDE_SUFFIX).is_some_and(is_pid) {
            aside.push(data_dir.join(&n));
        }
    }
    let dir = data_dir.join(aof_dir_name);
    if !aside.is_empty()
        && !vfs
            .exists(&dir)
            .map_err(ctx(format!("stat {}", dir.display())))?
    {
        // One switch runs at a time and every start settles the last one's leftovers, so
        // there is one; should there be more, the last by name.
        let back = aside.pop().unwrap_or_default();
        vfs.rename_dir(&back, &dir).map_err(ctx(format!(
            "rename {} back to {}",
            back.display(),
            dir.display()
        )))?;
        out.restored = Some(back);
    }
    vfs.sync_dir(data_dir)
        .map_err(ctx(format!("fsync {}", data_dir.display())))?;
    for p in staging.into_iter().chain(aside) {
        match vfs.remove_dir_all(&p) {
            Ok(()) => out.removed.push(p),
            Err(e) => out.warnings.push(format!("remove {}: {e}", p.display())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{write_file_atomic, CrashOptions, RealFs, SimFs};

    fn put(vfs: &dyn Vfs, dir: &Path, what: &[u8]) {
        vfs.create_dir_all(dir).expect("mkdir");
        vfs.sync_dir(&parent_of(dir)).expect("sync parent");
        write_file_atomic(vfs, dir, "f", what).expect("write");
    }

    fn read(vfs: &dyn Vfs, dir: &Path) -> Option<Vec<u8>> {
        vfs.read(&dir.join("f")).ok()
    }

    #[test]
    fn real_fs_swaps_a_directory_in() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("appendonlydir");
        let staging = staging_dir(&dir, 42);
        put(&RealFs, &dir, b"old");
        put(&RealFs, &staging, b"new");
        swap_in(&RealFs, &staging, &dir).expect("swap");
        assert_eq!(read(&RealFs, &dir).as_deref(), Some(&b"new"[..]));
        assert!(!staging.exists());
        // Into a place where nothing was.
        let dir2 = tmp.path().join("other");
        let staging2 = staging_dir(&dir2, 42);
        put(&RealFs, &staging2, b"x");
        swap_in(&RealFs, &staging2, &dir2).expect("swap");
        assert_eq!(read(&RealFs, &dir2).as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn start_up_puts_an_aside_directory_back_and_removes_leftovers() {
        let fs = SimFs::new(3);
        let data = Path::new("/data");
        fs.create_dir_all(data).expect("mkdir");
        fs.sync_dir(Path::new("/")).expect("sync");
        let dir = data.join("appendonlydir");
        let staging = staging_dir(&dir, 7);
        put(&fs, &aside_dir(&staging), b"old");
        put(&fs, &staging, b"new");
        put(&fs, &data.join("temp-appendonlydir-x"), b"not ours");
        let s = settle_at_start(&fs, data, "appendonlydir").expect("settle");
        assert_eq!(s.restored, Some(aside_dir(&staging)));
        assert_eq!(s.removed, vec![staging.clone()]);
        assert!(!fs.exists(&staging).expect("exists"));
        // The rename back is durable (the removal need not be: the next start does it again).
        let after = fs.crash(CrashOptions::power_loss());
        assert_eq!(read(&after, &dir).as_deref(), Some(&b"old"[..]));
        assert!(after
            .exists(&data.join("temp-appendonlydir-x"))
            .expect("exists"));
    }

    #[test]
    fn a_swap_is_all_or_nothing_at_every_crash_point_with_and_without_exchange() {
        for exchange in [true, false] {
            for old in [true, false] {
                for cut in 0..12 {
                    for seed in 0..8 {
                        let fs = SimFs::new(seed);
                        fs.set_exchange_supported(exchange);
                        let data = Path::new("/data");
                        fs.create_dir_all(data).expect("mkdir");
                        fs.sync_dir(Path::new("/")).expect("sync");
                        let dir = data.join("appendonlydir");
                        let staging = staging_dir(&dir, 9);
                        if old {
                            put(&fs, &dir, b"old");
                        }
                        put(&fs, &staging, b"new");
                        fs.power_cut_after(cut);
                        let r = swap_in(&fs, &staging, &dir);
                        let crashed = fs.crash(CrashOptions {
                            torn_writes: true,
                            random_dir_ops: seed % 2 == 0,
                            keep_unsynced: false,
                        });
                        settle_at_start(&crashed, data, "appendonlydir").expect("settle");
                        let got = read(&crashed, &dir);
                        let ctx = format!("exchange {exchange} old {old} cut {cut} seed {seed}");
                        if r.is_ok() {
                            assert_eq!(got.as_deref(), Some(&b"new"[..]), "{ctx}");
                        } else if old {
                            assert!(
                                got.as_deref() == Some(b"old") || got.as_deref() == Some(b"new"),
                                "{ctx}: {got:?}"
                            );
                        } else {
                            assert!(got.is_none() || got.as_deref() == Some(b"new"), "{ctx}");
                        }
                        assert_eq!(
                            crashed.list_subdirs(data).expect("list"),
                            if got.is_some() {
                                vec!["appendonlydir".to_string()]
                            } else {
                                vec![]
                            },
                            "{ctx}"
                        );
                    }
                }
            }
        }
    }
}
