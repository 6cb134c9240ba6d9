//! A simulated, fault-injecting file system for crash tests.
//!
//! Model (what a power loss can do on a journaling Linux file system, made explicit):
//! - Every file (inode) has `current` bytes (what reads see: the page cache) and `durable`
//!   bytes (what a completed `sync_data` or `truncate` made durable).
//! - Every directory entry (name → inode) and every sub-directory exists "currently" and is
//!   durable only after `sync_dir` of its parent directory.
//! - [`SimFs::crash`] returns the state after a power loss: each file reverts to its durable
//!   bytes, optionally keeping a random prefix of the unsynced appended bytes (a torn write);
//!   where unsynced positional writes overwrote durable bytes, a torn crash keeps each
//!   512-byte sector's old or new content at random (the device writes sectors in any order);
//!   directory changes not dir-synced are lost (or, optionally, each one kept at random).
//! - Fault knobs: fail the Nth write / sync, short writes, and a power cut after N mutating
//!   operations (that operation and every later one fails, as if the machine stopped).
//!
//! All randomness comes from one seeded generator, so a run is reproducible from its seed as
//! long as the sequence of operations is.

use super::{DirLock, Vfs, VfsFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a crash leaves behind; see [`SimFs::crash`].
#[derive(Debug, Clone, Copy)]
pub struct CrashOptions {
    /// Keep a random prefix of each file's unsynced appended bytes (a torn last write).
    pub torn_writes: bool,
    /// Keep each directory change that was not dir-synced with probability 1/2 (instead of
    /// losing all of them).
    pub random_dir_ops: bool,
    /// A process kill, not a power loss: the OS survives, so everything written is kept.
    pub keep_unsynced: bool,
}

impl CrashOptions {
    /// A power loss: unsynced bytes and un-dir-synced entries dropped.
    pub fn power_loss() -> Self {
        CrashOptions {
            torn_writes: false,
            random_dir_ops: false,
            keep_unsynced: false,
        }
    }
    /// A process kill (`kill -9`): the page cache survives.
    pub fn process_kill() -> Self {
        CrashOptions {
            torn_writes: false,
            random_dir_ops: false,
            keep_unsynced: true,
        }
    }
}

/// SplitMix64: tiny, seedable, good enough for fault choices.
#[derive(Debug, Clone)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            self.next()
        } else {
            self.next() % (max + 1)
        }
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

#[derive(Debug, Clone, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// A positional write changed bytes below `durable.len()` since the last sync.
    overwritten: bool,
}

/// Granularity of torn overwrites in [`SimFs::crash`].
pub const SECTOR: usize = 512;

#[derive(Debug, Clone, Default)]
struct Faults {
    writes_seen: u64,
    syncs_seen: u64,
    fail_write_at: Option<u64>,
    fail_sync_at: Option<u64>,
    short_writes: bool,
    /// Every file `sync_data` sleeps this long first (a stalled disk), outside the state lock.
    sync_delay: std::time::Duration,
    /// Remaining mutating operations before the power is cut.
    power_cut_in: Option<u64>,
    power_is_cut: bool,
    mutating_ops: u64,
}

#[derive(Debug, Clone)]
struct State {
    rng: Rng,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    entries: BTreeMap<PathBuf, u64>,
    durable_entries: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    faults: Faults,
    /// Shared with the file systems [`SimFs::crash`] returns; see [`SimFs::record_trace`].
    trace: Trace,
}

/// The operation trace: one line per operation, in the order the operations took effect.
type Trace = Arc<Mutex<Option<Vec<String>>>>;

/// In-memory simulated file system. Cloning shares the same state.
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory (simfs)", path.display()),
    )
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl State {
    /// Append one line to the trace, if it is on (called with the state lock held, so the
    /// trace order is the order the operations took effect in).
    fn note(
        &self,
        op: &str,
        what: &dyn std::fmt::Display,
        res: Result<impl std::fmt::Debug, &io::Error>,
    ) {
        let mut t = self.trace.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = t.as_mut() {
            let thread = std::thread::current();
            let outcome = match res {
                Ok(v) => format!("ok {v:?}"),
                Err(e) => format!("err({e})"),
            };
            t.push(format!(
                "{} {op} {what} {outcome}",
                thread.name().unwrap_or("?")
            ));
        }
    }

    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        if self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(not_found(dir))
        }
    }

    /// Account one mutating operation against the power-cut budget.
    fn mutate(&mut self) -> io::Result<()> {
        if self.faults.power_is_cut {
            return Err(io::Error::other("simulated power loss: device is gone"));
        }
        if let Some(left) = self.faults.power_cut_in.as_mut() {
            if *left == 0 {
                self.faults.power_is_cut = true;
                return Err(io::Error::other("simulated power loss: device is gone"));
            }
            *left -= 1;
        }
        self.faults.mutating_ops += 1;
        Ok(())
    }

    fn ino_of(&self, path: &Path) -> io::Result<u64> {
        self.entries
            .get(path)
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn new_file(&mut self, path: &Path) -> io::Result<u64> {
        self.check_dir(&parent_of(path))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        self.entries.insert(path.to_path_buf(), ino);
        Ok(ino)
    }

    fn inode(&mut self, ino: u64) -> &mut Inode {
        self.inodes.entry(ino).or_default()
    }

    /// The fault knobs every write goes through; how many of `len` bytes it writes.
    fn write_len(&mut self, len: usize) -> io::Result<usize> {
        self.mutate()?;
        self.faults.writes_seen += 1;
        if self.faults.fail_write_at == Some(self.faults.writes_seen) {
            return Err(io::Error::other("simulated write failure (EIO)"));
        }
        Ok(if self.faults.short_writes && len > 1 {
            1 + self.rng.upto(len as u64 - 1) as usize
        } else {
            len
        })
    }

    fn write(&mut self, ino: u64, buf: &[u8]) -> io::Result<usize> {
        let n = self.write_len(buf.len())?;
        self.inode(ino).current.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write_at(&mut self, ino: u64, buf: &[u8], offset: u64) -> io::Result<usize> {
        let n = self.write_len(buf.len())?;
        let at = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
        let node = self.inode(ino);
        if node.current.len() < at + n {
            node.current.resize(at + n, 0);
        }
        node.current[at..at + n].copy_from_slice(&buf[..n]);
        if at < node.durable.len() {
            node.overwritten = true;
        }
        Ok(n)
    }

    fn sync_hit(&mut self) -> io::Result<()> {
        self.mutate()?;
        self.faults.syncs_seen += 1;
        if self.faults.fail_sync_at == Some(self.faults.syncs_seen) {
            return Err(io::Error::other("simulated fsync failure (EIO)"));
        }
        Ok(())
    }

    fn sync_data(&mut self, ino: u64) -> io::Result<()> {
        self.sync_hit()?;
        let node = self.inode(ino);
        node.durable = node.current.clone();
        node.overwritten = false;
        Ok(())
    }
}

impl SimFs {
    /// An empty file system (only `/` exists) with the given seed.
    pub fn new(seed: u64) -> SimFs {
        let root = PathBuf::from("/");
        let state = State {
            rng: Rng(seed),
            inodes: BTreeMap::new(),
            next_ino: 1,
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
            dirs: BTreeSet::from([root.clone()]),
            durable_dirs: BTreeSet::from([root]),
            locks: BTreeSet::new(),
            faults: Faults::default(),
            trace: Trace::default(),
        };
        SimFs {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock means a bug in the simulator itself; the state is
        // still structurally valid, so keep going rather than poisoning every later test step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail the `n`th write from now (1-based) with EIO.
    pub fn fail_nth_write(&self, n: u64) {
        let mut s = self.lock();
        s.faults.fail_write_at = Some(s.faults.writes_seen + n);
    }

    /// Fail the `n`th sync (file `sync_data` or `sync_dir`) from now (1-based) with EIO.
    pub fn fail_nth_sync(&self, n: u64) {
        let mut s = self.lock();
        s.faults.fail_sync_at = Some(s.faults.syncs_seen + n);
    }

    /// Make writes write a random non-empty prefix of what they are given.
    pub fn set_short_writes(&self, on: bool) {
        self.lock().faults.short_writes = on;
    }

    /// Make every file `sync_data` take at least this long (a slow or stalled disk).
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.lock().faults.sync_delay = delay;
    }

    /// Cut the power after `n` more mutating operations: the (n+1)th and all later ones fail.
    pub fn power_cut_after(&self, n: u64) {
        self.lock().faults.power_cut_in = Some(n);
    }

    /// Whether the simulated power has been cut.
    pub fn power_is_cut(&self) -> bool {
        self.lock().faults.power_is_cut
    }

    /// Start recording every operation (this file system's and those of the file systems
    /// [`SimFs::crash`] returns from now on): thread name, operation, target, outcome. A test
    /// compares two runs' traces to show a run is a function of its seed.
    pub fn record_trace(&self) {
        let s = self.lock();
        let mut t = s.trace.lock().unwrap_or_else(|p| p.into_inner());
        t.get_or_insert_with(Vec::new);
    }

    /// The trace recorded so far (empty if [`SimFs::record_trace`] was not called); clears it.
    pub fn take_trace(&self) -> Vec<String> {
        let s = self.lock();
        let mut t = s.trace.lock().unwrap_or_else(|p| p.into_inner());
        t.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Number of mutating operations performed so far.
    pub fn mutating_ops(&self) -> u64 {
        self.lock().faults.mutating_ops
    }

    /// The durable bytes of a file (what a power loss without torn writes would leave).
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let ino = s.durable_entries.get(path)?;
        s.inodes.get(ino).map(|n| n.durable.clone())
    }

    /// Open `path` (creating it empty if absent) without touching its bytes.
    fn open_keeping(&self, op: &str, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.lock();
        let res = (|| -> io::Result<Arc<dyn VfsFile>> {
            let ino = match s.entries.get(path) {
                Some(ino) => *ino,
                None => {
                    s.mutate()?;
                    s.new_file(path)?
                }
            };
            Ok(Arc::new(SimFile {
                fs: self.clone(),
                ino,
            }))
        })();
        s.note(
            op,
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    /// The state a crash leaves behind, as a fresh file system (no locks, no faults).
    pub fn crash(&self, opts: CrashOptions) -> SimFs {
        let mut s = self.lock();
        let mut rng = Rng(s.rng.next());
        let keep_all = opts.keep_unsynced;

        // Directories: durable ones survive; others maybe (random) or not; a directory whose
        // parent is gone is gone too.
        let mut dirs = BTreeSet::new();
        for d in &s.dirs {
            let durable = s.durable_dirs.contains(d);
            let keep = keep_all || durable || (opts.random_dir_ops && rng.coin());
            let parent_ok = match d.parent() {
                None => true,
                Some(p) => dirs.contains(p),
            };
            if keep && parent_ok {
                dirs.insert(d.clone());
            }
        }

        // Entries: per name, either the current or the durable mapping.
        let mut entries = BTreeMap::new();
        let names: BTreeSet<&PathBuf> = s.entries.keys().chain(s.durable_entries.keys()).collect();
        for name in names {
            if !dirs.contains(&parent_of(name)) {
                continue;
            }
            let cur = s.entries.get(name);
            let dur = s.durable_entries.get(name);
            let pick = if cur == dur || keep_all || (opts.random_dir_ops && rng.coin()) {
                cur
            } else {
                dur
            };
            if let Some(ino) = pick {
                entries.insert(name.clone(), *ino);
            }
        }

        // Contents.
        let mut inodes = BTreeMap::new();
        for ino in entries.values() {
            let Some(node) = s.inodes.get(ino) else {
                continue;
            };
            let bytes = if keep_all {
                node.current.clone()
            } else if opts.torn_writes && node.overwritten {
                torn_overwrite(node, &mut rng)
            } else if opts.torn_writes
                && node.current.len() > node.durable.len()
                && node.current.starts_with(&node.durable)
            {
                let extra = node.current.len() - node.durable.len();
                let keep = rng.upto(extra as u64) as usize;
                node.current[..node.durable.len() + keep].to_vec()
            } else {
                node.durable.clone()
            };
            inodes.insert(
                *ino,
                Inode {
                    current: bytes.clone(),
                    durable: bytes,
                    overwritten: false,
                },
            );
        }

        let next_ino = s.next_ino;
        s.rng = Rng(rng.next());
        SimFs {
            state: Arc::new(Mutex::new(State {
                rng,
                inodes,
                next_ino,
                durable_entries: entries.clone(),
                entries,
                durable_dirs: dirs.clone(),
                dirs,
                locks: BTreeSet::new(),
                faults: Faults::default(),
                trace: s.trace.clone(),
            })),
        }
    }
}

/// A torn crash of a file that unsynced positional writes changed: each sector where the
/// current bytes differ from the durable ones keeps its old or new content at random, and a
/// random prefix of bytes past the durable length survives (zero-filled where the current
/// bytes are shorter than what is kept: never, as files only grow here).
fn torn_overwrite(node: &Inode, rng: &mut Rng) -> Vec<u8> {
    let mut out = node.durable.clone();
    let common = node.durable.len().min(node.current.len());
    let mut at = 0;
    while at < common {
        let end = (at + SECTOR).min(common);
        if node.current[at..end] != node.durable[at..end] && rng.coin() {
            out[at..end].copy_from_slice(&node.current[at..end]);
        }
        at = end;
    }
    if node.current.len() > node.durable.len() {
        let extra = node.current.len() - node.durable.len();
        let keep = rng.upto(extra as u64) as usize;
        out.extend_from_slice(&node.current[node.durable.len()..node.durable.len() + keep]);
    }
    out
}

struct SimFile {
    fs: SimFs,
    ino: u64,
}

impl VfsFile for SimFile {
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.fs.lock();
        let res = s.write(self.ino, buf);
        s.note(
            "write",
            &format_args!("ino {} {} bytes", self.ino, buf.len()),
            res.as_ref(),
        );
        res
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut s = self.fs.lock();
        let res = s.write_at(self.ino, buf, offset);
        s.note(
            "write_at",
            &format_args!("ino {} {} bytes at {offset}", self.ino, buf.len()),
            res.as_ref(),
        );
        res
    }
    fn sync_data(&self) -> io::Result<()> {
        let delay = self.fs.lock().faults.sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut s = self.fs.lock();
        let res = s.sync_data(self.ino);
        s.note("sync_data", &format_args!("ino {}", self.ino), res.as_ref());
        res
    }
}

struct SimLock {
    fs: SimFs,
    dir: PathBuf,
}
impl DirLock for SimLock {}
impl Drop for SimLock {
    fn drop(&mut self) {
        self.fs.lock().locks.remove(&self.dir);
    }
}

impl Vfs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            let mut missing = Vec::new();
            let mut cur = Some(dir);
            while let Some(d) = cur {
                if d.as_os_str().is_empty() || s.dirs.contains(d) {
                    break;
                }
                missing.push(d.to_path_buf());
                cur = d.parent();
            }
            if missing.is_empty() {
                return Ok(());
            }
            s.mutate()?;
            for d in missing {
                s.dirs.insert(d);
            }
            Ok(())
        })();
        s.note(
            "create_dir_all",
            &format_args!("{}", dir.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        self.open_keeping("open_append", path)
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        // The sim's files take both kinds of write whichever way they were opened.
        self.open_keeping("open_write", path)
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.lock();
        let res = (|| -> io::Result<Arc<dyn VfsFile>> {
            s.mutate()?;
            // O_TRUNC on an existing file truncates the inode in place (not durable until synced).
            let ino = match s.entries.get(path) {
                Some(ino) => {
                    let ino = *ino;
                    s.inode(ino).current.clear();
                    ino
                }
                None => s.new_file(path)?,
            };
            Ok(Arc::new(SimFile {
                fs: self.clone(),
                ino,
            }))
        })();
        s.note(
            "create",
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.lock();
        let res = (|| -> io::Result<Vec<u8>> {
            let ino = s.ino_of(path)?;
            Ok(s.inode(ino).current.clone())
        })();
        s.note(
            "read",
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut s = self.lock();
        let res = (|| -> io::Result<Vec<u8>> {
            let ino = s.ino_of(path)?;
            let cur = &s.inode(ino).current;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(cur.len());
            let end = start.saturating_add(len).min(cur.len());
            Ok(cur[start..end].to_vec())
        })();
        s.note(
            "read_range",
            &format_args!("{} {} {}", path.display(), offset, len),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        let mut s = self.lock();
        let res = (|| -> io::Result<u64> {
            let ino = s.ino_of(path)?;
            Ok(s.inode(ino).current.len() as u64)
        })();
        s.note(
            "len",
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.lock();
        let res: io::Result<bool> = Ok(s.entries.contains_key(path) || s.dirs.contains(path));
        s.note(
            "exists",
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            let ino = s.ino_of(path)?;
            s.mutate()?;
            let node = s.inode(ino);
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            node.current.resize(len, 0);
            node.durable = node.current.clone();
            node.overwritten = false;
            Ok(())
        })();
        s.note(
            "truncate",
            &format_args!("{} {}", path.display(), len),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            let ino = s.ino_of(from)?;
            s.check_dir(&parent_of(to))?;
            s.mutate()?;
            s.entries.remove(from);
            s.entries.insert(to.to_path_buf(), ino);
            Ok(())
        })();
        s.note(
            "rename",
            &format_args!("{} {}", from.display(), to.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            s.ino_of(path)?;
            s.mutate()?;
            s.entries.remove(path);
            Ok(())
        })();
        s.note(
            "remove_file",
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        let res = (|| -> io::Result<Vec<String>> {
            s.check_dir(dir)?;
            let mut names: Vec<String> = s
                .entries
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            Ok(names)
        })();
        s.note(
            "list_dir",
            &format_args!("{}", dir.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            s.check_dir(dir)?;
            s.sync_hit()?;
            let current: Vec<(PathBuf, u64)> = s
                .entries
                .iter()
                .filter(|(p, _)| p.parent() == Some(dir))
                .map(|(p, i)| (p.clone(), *i))
                .collect();
            s.durable_entries.retain(|p, _| p.parent() != Some(dir));
            s.durable_entries.extend(current);
            let subdirs: Vec<PathBuf> = s
                .dirs
                .iter()
                .filter(|d| d.parent() == Some(dir))
                .cloned()
                .collect();
            s.durable_dirs.extend(subdirs);
            Ok(())
        })();
        s.note(
            "sync_dir",
            &format_args!("{}", dir.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut s = self.lock();
        let res = (|| -> io::Result<Box<dyn DirLock>> {
            s.check_dir(dir)?;
            if !s.locks.insert(dir.to_path_buf()) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "data directory {} is locked: another process holds it (simfs)",
                        dir.display()
                    ),
                ));
            }
            Ok(Box::new(SimLock {
                fs: self.clone(),
                dir: dir.to_path_buf(),
            }))
        })();
        s.note(
            "lock_dir",
            &format_args!("{}", dir.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fs: &SimFs, path: &Path, bytes: &[u8], sync: bool) {
        let f = fs.open_append(path).expect("open");
        super::super::write_all(f.as_ref(), bytes).expect("write");
        if sync {
            f.sync_data().expect("sync");
        }
    }

    #[test]
    fn power_loss_drops_unsynced_bytes_and_undirsynced_entries() {
        let fs = SimFs::new(7);
        let d = Path::new("/d");
        fs.create_dir_all(d).expect("mkdir");
        fs.sync_dir(Path::new("/")).expect("sync root");
        write(&fs, &d.join("a"), b"synced", true);
        fs.sync_dir(d).expect("sync dir");
        write(&fs, &d.join("a"), b"+unsynced", false);
        write(&fs, &d.join("b"), b"never dir-synced", true);
        let after = fs.crash(CrashOptions::power_loss());
        assert_eq!(after.read(&d.join("a")).expect("a"), b"synced");
        assert!(!after.exists(&d.join("b")).expect("exists"));
        let killed = fs.crash(CrashOptions::process_kill());
        assert_eq!(killed.read(&d.join("a")).expect("a"), b"synced+unsynced");
        assert!(killed.exists(&d.join("b")).expect("exists"));
    }

    #[test]
    fn torn_write_keeps_a_prefix_and_is_deterministic_per_seed() {
        let run = |seed| {
            let fs = SimFs::new(seed);
            let d = Path::new("/d");
            fs.create_dir_all(d).expect("mkdir");
            fs.sync_dir(Path::new("/")).expect("sync");
            write(&fs, &d.join("a"), b"base", true);
            fs.sync_dir(d).expect("sync");
            write(&fs, &d.join("a"), b"0123456789", false);
            let opts = CrashOptions {
                torn_writes: true,
                ..CrashOptions::power_loss()
            };
            fs.crash(opts).read(&d.join("a")).expect("read")
        };
        for seed in 0..20 {
            let got = run(seed);
            assert!(b"base0123456789".starts_with(&got) && got.len() >= 4);
            assert_eq!(got, run(seed));
        }
    }

    #[test]
    fn a_torn_overwrite_keeps_old_or_new_sectors_only() {
        let path = Path::new("/f");
        let old = vec![b'o'; 4 * SECTOR];
        let new = vec![b'n'; 3 * SECTOR];
        let mut mixed = false;
        for seed in 0..32 {
            let fs = SimFs::new(seed);
            let f = fs.create(path).expect("create");
            fs.sync_dir(Path::new("/")).expect("sync_dir");
            crate::fs::write_all(f.as_ref(), &old).expect("write");
            f.sync_data().expect("sync");
            crate::fs::write_all_at(f.as_ref(), &new, SECTOR as u64 / 2).expect("write_at");
            let after = fs.crash(CrashOptions {
                torn_writes: true,
                ..CrashOptions::power_loss()
            });
            let got = after.read(path).expect("read");
            assert_eq!(got.len(), old.len());
            let mut cur = old.clone();
            cur[SECTOR / 2..SECTOR / 2 + new.len()].copy_from_slice(&new);
            for (i, s) in got.chunks(SECTOR).enumerate() {
                let (o, n) = (&old[i * SECTOR..][..s.len()], &cur[i * SECTOR..][..s.len()]);
                assert!(s == o || s == n, "sector {i} is neither old nor new");
            }
            mixed |= got != old && got != cur;
            let gone = fs.crash(CrashOptions::power_loss());
            assert_eq!(gone.read(path).expect("read"), old);
        }
        assert!(mixed, "some seed keeps a mix of sectors");
    }

    #[test]
    fn fault_knobs_fail_the_chosen_operations() {
        let fs = SimFs::new(1);
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let f = fs.open_append(Path::new("/d/x")).expect("open");
        fs.fail_nth_write(2);
        assert!(f.write(b"a").is_ok());
        assert!(f.write(b"b").is_err());
        assert!(f.write(b"c").is_ok());
        fs.fail_nth_sync(1);
        assert!(f.sync_data().is_err());
        fs.power_cut_after(1);
        assert!(f.write(b"d").is_ok());
        assert!(f.write(b"e").is_err());
        assert!(f.sync_data().is_err());
        assert!(fs.power_is_cut());
    }
}
