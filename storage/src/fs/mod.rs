//! File-system layer.
//!
//! Everything the durable log does to the disk goes through [`Vfs`], so the same code runs on
//! the real file system ([`RealFs`]) and on a simulated, fault-injecting one ([`SimFs`]) that
//! keeps written-but-unsynced bytes apart from synced ones and can compute what a power loss
//! leaves behind.
//!
//! Rules the rest of the crate follows:
//! - Durable creation or replacement of a whole file goes through [`write_file_atomic`]
//!   (temp → write → fsync → rename → fsync dir), or [`install_file`] for a temp file the
//!   caller streamed and fsynced itself. Nothing else calls [`Vfs::rename`].
//! - A new file that later data depends on must have its directory entry made durable
//!   ([`Vfs::sync_dir`]) before anything durable refers to it.
//! - Directories are renamed, exchanged and removed only by [`crate::aof::staging`] (the
//!   switch to a freshly written AOF directory), which states its own crash argument.

mod real;
mod sim;

pub use real::RealFs;
pub use sim::{CrashOptions, SimFs};

use std::io;
use std::path::Path;
use std::sync::Arc;

/// Name of the lock file [`Vfs::lock_dir`] creates inside a data directory.
pub const LOCK_FILE_NAME: &str = ".strongbox.lock";

/// Prefix of temporary files written by [`write_file_atomic`]. Same as Redis's
/// `TEMP_FILE_NAME_PREFIX`, so leftovers look familiar and are ignored by both.
pub const TEMP_FILE_PREFIX: &str = "temp-";

/// An open file handle for appending (or, opened by [`Vfs::open_write`], writing at offsets).
/// Methods take `&self` so one handle can be written by one thread while another fsyncs it.
pub trait VfsFile: Send + Sync {
    /// Write some bytes at the end of the file; returns how many were written (may be short).
    /// Only for handles from [`Vfs::open_append`] and [`Vfs::create`].
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Write some bytes at `offset` (`pwrite`), overwriting what is there and extending the
    /// file if they reach past its end; returns how many were written (may be short). Not for
    /// handles from [`Vfs::open_append`] (Linux appends `O_APPEND` writes whatever the offset).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Make the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
}

/// Alignment of direct writes ([`Vfs::open_direct`]): their file offset, length and buffer
/// address are multiples of it. 4096 covers disks with 512-byte and with 4096-byte logical
/// blocks alike.
pub const DIRECT_ALIGN: usize = 4096;

/// A held lock on a data directory; released when dropped.
pub trait DirLock: Send + Sync {}

/// The operations the durable log needs from a file system.
pub trait Vfs: Send + Sync {
    /// Create a directory and its parents (not durable until the parent is dir-synced).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Open a file for appending, creating it (empty) if absent.
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Create or truncate a file and open it for writing.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Open a file for positional writes ([`VfsFile::write_at`]), creating it (empty) if
    /// absent; its bytes are kept.
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Open an existing file for direct positional writes (`O_DIRECT`: past the page cache,
    /// straight to the disk's queue). Each write's offset, length and buffer address must be
    /// multiples of [`DIRECT_ALIGN`] (else `EINVAL`); the bytes are durable only after a
    /// [`VfsFile::sync_data`] of the file (through any handle: the disk may cache them).
    /// `Ok(None)` when the file system has no direct I/O (tmpfs, some FUSE and overlay
    /// mounts). Only the log writer's `always` path uses this (docs/design-aof.md §3.4).
    fn open_direct(&self, path: &Path) -> io::Result<Option<Arc<dyn VfsFile>>>;
    /// Read a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Read up to `len` bytes starting at `offset` (fewer at end of file).
    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Length of a file in bytes.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Whether a path exists (file or directory).
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Truncate a file to `len` bytes and make the new length durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Rename a file. Only [`write_file_atomic`] calls this.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file (not durable until the directory is synced).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Names of the regular files in a directory, sorted.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Names of the sub-directories of a directory, sorted.
    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Remove a directory and everything below it, entry by entry (`std::fs::remove_dir_all`;
    /// not durable until the parent is dir-synced, and a crash may keep any part of it).
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Rename a directory to a name in the same parent that is free or an empty directory
    /// (`rename(2)`; durable once the parent is dir-synced). Only
    /// [`crate::aof::staging`] calls this.
    fn rename_dir(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Exchange two entries of one parent directory atomically
    /// (`renameat2(RENAME_EXCHANGE)`; durable once the parent is dir-synced). A file system
    /// that cannot answers [`io::ErrorKind::Unsupported`], having changed nothing. Only
    /// [`crate::aof::staging`] calls this.
    fn exchange_dirs(&self, a: &Path, b: &Path) -> io::Result<()>;
    /// Make the directory's entries (create/rename/remove) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take an exclusive lock on a data directory for the life of the returned guard.
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>>;
}

/// Durably create or replace `dir/name` with `bytes`:
/// write `dir/temp-<name>`, fsync it, rename it over `dir/name`, fsync `dir`.
///
/// Crash argument: before the rename the old file is intact (the temp file is garbage that
/// readers ignore); after the rename the new name points at fully synced bytes; the final
/// directory fsync makes the rename itself durable before we return, so a caller that acts on
/// "the manifest now says X" never acts ahead of the disk.
pub fn write_file_atomic(vfs: &dyn Vfs, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = dir.join(format!("{TEMP_FILE_PREFIX}{name}"));
    let target = dir.join(name);
    {
        let file = create_fresh(vfs, &temp)?;
        write_all(file.as_ref(), bytes)?;
        file.sync_data()?;
    }
    vfs.rename(&temp, &target)?;
    // IMPORTANT: fsync the directory so the rename (and any earlier creates in it) survive.
    vfs.sync_dir(dir)
}

/// Create `path` as a new, empty file — a new inode, never the truncation of an existing one.
///
/// For temp files that are renamed over live ones: a crash that kept a rename's new entry but
/// not its removal of the old one (directory changes not yet fsynced may survive one by one)
/// leaves the temp name and the live name linked to the same inode, and truncating through the
/// temp name would rewrite the live file. So the temp name is unlinked first (`NotFound` is
/// the usual answer), then created.
pub fn create_fresh(vfs: &dyn Vfs, path: &Path) -> io::Result<std::sync::Arc<dyn VfsFile>> {
    match vfs.remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    vfs.create(path)
}

/// Durably put a complete file in place: `dir/temp_name` (already written and fsynced by the
/// caller, e.g. a snapshot streamed to disk) is renamed over `dir/name`, then `dir` is fsynced.
/// The streaming counterpart of [`write_file_atomic`], with the same crash argument: before the
/// rename the old `name` is intact; after it, `name` points at fully synced bytes, and the
/// directory fsync makes the rename durable before the caller acts on it.
pub fn install_file(vfs: &dyn Vfs, dir: &Path, temp_name: &str, name: &str) -> io::Result<()> {
    vfs.rename(&dir.join(temp_name), &dir.join(name))?;
    // IMPORTANT: fsync the directory so the rename survives a crash.
    vfs.sync_dir(dir)
}

/// Write all of `buf`, looping over short writes. A zero-length write is an error.
pub fn write_all(file: &dyn VfsFile, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write(buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write returned 0 bytes",
                ))
            }
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write all of `buf` at `offset`, looping over short writes. A zero-length write is an error.
pub fn write_all_at(file: &dyn VfsFile, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write returned 0 bytes",
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn exercise(vfs: &dyn Vfs, dir: &Path) {
        vfs.create_dir_all(dir).expect("mkdir");
        write_file_atomic(vfs, dir, "m", b"one").expect("atomic 1");
        write_file_atomic(vfs, dir, "m", b"two!").expect("atomic 2");
        assert_eq!(vfs.read(&dir.join("m")).expect("read"), b"two!");
        assert_eq!(vfs.list_dir(dir).expect("list"), vec!["m".to_string()]);
        let f = vfs.open_append(&dir.join("a")).expect("open");
        write_all(f.as_ref(), b"hello ").expect("w");
        write_all(f.as_ref(), b"world").expect("w");
        f.sync_data().expect("sync");
        drop(f);
        assert_eq!(vfs.len(&dir.join("a")).expect("len"), 11);
        assert_eq!(
            vfs.read_range(&dir.join("a"), 6, 100).expect("rr"),
            b"world"
        );
        vfs.truncate(&dir.join("a"), 5).expect("truncate");
        assert_eq!(vfs.read(&dir.join("a")).expect("read"), b"hello");
        vfs.remove_file(&dir.join("a")).expect("rm");
        assert!(!vfs.exists(&dir.join("a")).expect("exists"));
        assert!(vfs.exists(dir).expect("exists"));
    }

    #[test]
    fn a_fresh_temp_file_never_writes_through_a_name_linked_to_the_live_file() {
        // What a crash can leave when it keeps a rename's new entry but not the removal of the
        // old name: the temp name and the live name on one inode (a hard link here).
        let dir = tempfile::tempdir().expect("tempdir");
        let live = dir.path().join("appendonly.aof.manifest");
        let temp = dir.path().join("temp-appendonly.aof.manifest");
        std::fs::write(&live, b"live manifest").expect("write live");
        std::fs::hard_link(&live, &temp).expect("link");
        // The next manifest write, cut short before its rename.
        let f = create_fresh(&RealFs, &temp).expect("create");
        write_all(f.as_ref(), b"half a new").expect("write");
        assert_eq!(std::fs::read(&live).expect("read"), b"live manifest");
        // And the whole atomic write leaves the live name with the new bytes.
        std::fs::remove_file(&temp).expect("rm");
        std::fs::hard_link(&live, &temp).expect("link");
        write_file_atomic(&RealFs, dir.path(), "appendonly.aof.manifest", b"new").expect("atomic");
        assert_eq!(std::fs::read(&live).expect("read"), b"new");
    }

    #[test]
    fn install_file_leaves_the_old_or_the_new_file_after_a_crash_at_any_point() {
        for cut in 0..8 {
            let fs = SimFs::new(cut);
            let dir = Path::new("/d");
            fs.create_dir_all(dir).expect("mkdir");
            fs.sync_dir(Path::new("/")).expect("sync root");
            write_file_atomic(&fs, dir, "dump.rdb", b"old").expect("old");
            fs.power_cut_after(cut);
            let r = (|| -> io::Result<()> {
                let f = fs.create(&dir.join("temp-1.rdb"))?;
                write_all(f.as_ref(), b"new contents")?;
                f.sync_data()?;
                install_file(&fs, dir, "temp-1.rdb", "dump.rdb")
            })();
            let crashed = fs.crash(CrashOptions {
                torn_writes: true,
                random_dir_ops: true,
                keep_unsynced: false,
            });
            let got = crashed
                .read(&dir.join("dump.rdb"))
                .expect("dump.rdb must exist");
            assert!(
                got == b"old" || got == b"new contents",
                "cut {cut}: {got:?}"
            );
            if r.is_ok() {
                assert_eq!(
                    got, b"new contents",
                    "cut {cut}: install returned Ok but the new file is not durable"
                );
            }
        }
    }

    #[test]
    fn real_and_sim_fs_agree_on_basic_operations() {
        let tmp = tempfile::tempdir().expect("tempdir");
        exercise(&RealFs, &tmp.path().join("d"));
        exercise(&SimFs::new(1), &PathBuf::from("/data/d"));
    }

    #[test]
    fn second_lock_on_a_dir_fails_and_names_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = RealFs.lock_dir(tmp.path()).expect("first lock");
        let err = match RealFs.lock_dir(tmp.path()) {
            Ok(_) => panic!("second lock must fail"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
        assert!(msg.contains("another process"), "{msg}");
        drop(first);
        RealFs.lock_dir(tmp.path()).expect("lock after release");

        let sim = SimFs::new(3);
        let dir = Path::new("/x");
        sim.create_dir_all(dir).expect("mkdir");
        let g = sim.lock_dir(dir).expect("lock");
        assert!(sim.lock_dir(dir).is_err());
        drop(g);
        assert!(sim.lock_dir(dir).is_ok());
    }
}
