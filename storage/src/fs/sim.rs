//! A simulated, fault-injecting file system for crash tests.
//!
//! Model (what a power loss can do on a journaling Linux file system, made explicit):
//! - Every file (inode) has `current` bytes (what reads see: the page cache) and `durable`
//!   bytes (what a completed `sync_data` or `truncate` made durable).
//! - Directories are inodes too, each with its `current` entries (name → file or directory)
//!   and its `durable` ones (those at its last `sync_dir`). An entry — a file's name, or a
//!   sub-directory's — is durable only after `sync_dir` of the directory that holds it; a
//!   directory's own entries follow the directory inode when it is renamed, and a crash that
//!   loses a directory's entry in its parent loses everything below it.
//! - A directory rename or exchange ([`Vfs::rename_dir`], [`Vfs::exchange_dirs`]) changes two
//!   names of one parent in one operation: until the parent is synced, a crash keeps or loses
//!   it whole (both names new, or both old; never a directory under two names or none).
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

use super::{DirLock, Vfs, VfsFile, DIRECT_ALIGN};
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
    /// [`Vfs::exchange_dirs`] answers `Unsupported`, as on a file system without
    /// `RENAME_EXCHANGE`.
    no_exchange: bool,
    /// [`Vfs::open_direct`] answers `None`, as on a file system without direct I/O.
    no_direct: bool,
}

/// What a directory entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir(u64),
}

/// A directory inode: its entries now, and as of its last `sync_dir`.
#[derive(Debug, Clone, Default)]
struct DirNode {
    current: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
    /// Names that a directory rename or exchange changed together since the last `sync_dir`
    /// (disjoint sets): a crash keeps the current or the durable entries of a set as a whole.
    linked: Vec<BTreeSet<String>>,
}

impl DirNode {
    /// Tie `names` together (merging the sets they are already in).
    fn link(&mut self, names: &[&str]) {
        let mut set: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
        let mut kept = Vec::new();
        for g in self.linked.drain(..) {
            if g.iter().any(|n| set.contains(n)) {
                set.extend(g);
            } else {
                kept.push(g);
            }
        }
        kept.push(set);
        self.linked = kept;
    }
}

/// The root directory's inode number.
const ROOT: u64 = 0;

#[derive(Debug, Clone)]
struct State {
    rng: Rng,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    /// Directory inodes (the root is [`ROOT`]), numbered from `next_ino` too.
    dirs: BTreeMap<u64, DirNode>,
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

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {what} (simfs)", path.display()),
    )
}

/// The names along `path` from the root (`.` skipped; `..` is not modeled).
fn components(path: &Path) -> io::Result<Vec<String>> {
    use std::path::Component;
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(invalid(path, "`..` is not supported")),
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
        }
    }
    Ok(out)
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

    /// What `path` names now, if anything.
    fn lookup(&self, path: &Path) -> io::Result<Option<Node>> {
        let mut node = Node::Dir(ROOT);
        for name in components(path)? {
            let Node::Dir(d) = node else {
                return Ok(None);
            };
            match self.dirs.get(&d).and_then(|dn| dn.current.get(&name)) {
                Some(n) => node = *n,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// The directory inode `dir` names.
    fn dir_of(&self, dir: &Path) -> io::Result<u64> {
        match self.lookup(dir)? {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(invalid(dir, "not a directory")),
            None => Err(not_found(dir)),
        }
    }

    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        self.dir_of(dir).map(|_| ())
    }

    /// The directory inode holding `path`'s entry, and the entry's name.
    fn split(&self, path: &Path) -> io::Result<(u64, String)> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| invalid(path, "no file name"))?;
        let parent = path.parent().unwrap_or_else(|| Path::new("/"));
        Ok((self.dir_of(parent)?, name))
    }

    fn dir_mut(&mut self, d: u64) -> &mut DirNode {
        self.dirs.entry(d).or_default()
    }

    fn new_node_no(&mut self) -> u64 {
        let n = self.next_ino;
        self.next_ino += 1;
        n
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

    /// The file inode `path` names.
    fn ino_of(&self, path: &Path) -> io::Result<u64> {
        match self.lookup(path)? {
            Some(Node::File(ino)) => Ok(ino),
            Some(Node::Dir(_)) => Err(invalid(path, "is a directory")),
            None => Err(not_found(path)),
        }
    }

    fn file_if_any(&self, path: &Path) -> io::Result<Option<u64>> {
        match self.lookup(path)? {
            Some(Node::File(ino)) => Ok(Some(ino)),
            Some(Node::Dir(_)) => Err(invalid(path, "is a directory")),
            None => Ok(None),
        }
    }

    fn new_file(&mut self, path: &Path) -> io::Result<u64> {
        let (parent, name) = self.split(path)?;
        let ino = self.new_node_no();
        self.inodes.insert(ino, Inode::default());
        self.dir_mut(parent).current.insert(name, Node::File(ino));
        Ok(ino)
    }

    /// Remove everything below directory `d` from the current tree, entry by entry (each
    /// removal counts against the power-cut budget, so a cut can leave it half done).
    fn clear_dir(&mut self, d: u64) -> io::Result<()> {
        let names: Vec<(String, Node)> = self
            .dirs
            .get(&d)
            .map(|dn| dn.current.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        for (name, node) in names {
            if let Node::Dir(sub) = node {
                self.clear_dir(sub)?;
            }
            self.mutate()?;
            self.dir_mut(d).current.remove(&name);
        }
        Ok(())
    }

    /// The entries of directory `d` a crash leaves, per [`SimFs::crash`]'s rules.
    fn crashed_entries(&self, d: u64, opts: CrashOptions, rng: &mut Rng) -> BTreeMap<String, Node> {
        let Some(dn) = self.dirs.get(&d) else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        let mut decided: BTreeSet<&String> = BTreeSet::new();
        let keep = |cur: Option<&Node>, dur: Option<&Node>, rng: &mut Rng| {
            cur == dur || opts.keep_unsynced || (opts.random_dir_ops && rng.coin())
        };
        for group in &dn.linked {
            let changed = group.iter().any(|n| dn.current.get(n) != dn.durable.get(n));
            let take_current =
                !changed || opts.keep_unsynced || (opts.random_dir_ops && rng.coin());
            for n in group {
                let pick = if take_current {
                    dn.current.get(n)
                } else {
                    dn.durable.get(n)
                };
                if let Some(node) = pick {
                    out.insert(n.clone(), *node);
                }
                decided.insert(n);
            }
        }
        let names: BTreeSet<&String> = dn.current.keys().chain(dn.durable.keys()).collect();
        for n in names {
            if decided.contains(n) {
                continue;
            }
            let (cur, dur) = (dn.current.get(n), dn.durable.get(n));
            let pick = if keep(cur, dur, rng) { cur } else { dur };
            if let Some(node) = pick {
                out.insert(n.clone(), *node);
            }
        }
        out
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

    /// `align` > 1: a direct write, whose short writes stop at a multiple of `align`, as a
    /// direct write that fails part way has written whole blocks.
    fn write_at(&mut self, ino: u64, buf: &[u8], offset: u64, align: usize) -> io::Result<usize> {
        let mut n = self.write_len(buf.len())?;
        if align > 1 {
            n = (n / align * align).max(align.min(buf.len()));
        }
        let at = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
        let node = self.inode(ino);
        if node.current.len() < at {
            node.current.resize(at, 0);
        }
        // Overwrite what is there, append the rest (no zero-filling first: slow in debug).
        let over = (node.current.len() - at).min(n);
        node.current[at..at + over].copy_from_slice(&buf[..over]);
        node.current.extend_from_slice(&buf[over..n]);
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
        let state = State {
            rng: Rng(seed),
            inodes: BTreeMap::new(),
            next_ino: 1,
            dirs: BTreeMap::from([(ROOT, DirNode::default())]),
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

    /// Whether [`Vfs::open_direct`] opens files (default) or answers `None`, as a file system
    /// without direct I/O does.
    pub fn set_direct_supported(&self, on: bool) {
        self.lock().faults.no_direct = !on;
    }

    /// Make every file `sync_data` take at least this long (a slow or stalled disk).
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.lock().faults.sync_delay = delay;
    }

    /// Cut the power after `n` more mutating operations: the (n+1)th and all later ones fail.
    pub fn power_cut_after(&self, n: u64) {
        self.lock().faults.power_cut_in = Some(n);
    }

    /// Whether [`Vfs::exchange_dirs`] works (the default) or answers `Unsupported`, as on a
    /// file system without `renameat2(RENAME_EXCHANGE)`.
    pub fn set_exchange_supported(&self, on: bool) {
        self.lock().faults.no_exchange = !on;
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
        let mut node = Node::Dir(ROOT);
        for name in components(path).ok()? {
            let Node::Dir(d) = node else {
                return None;
            };
            node = *s.dirs.get(&d)?.durable.get(&name)?;
        }
        match node {
            Node::File(ino) => s.inodes.get(&ino).map(|n| n.durable.clone()),
            Node::Dir(_) => None,
        }
    }

    /// Open `path` (creating it empty if absent) without touching its bytes.
    fn open_keeping(&self, op: &str, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.lock();
        let res = (|| -> io::Result<Arc<dyn VfsFile>> {
            let ino = match s.file_if_any(path)? {
                Some(ino) => ino,
                None => {
                    s.mutate()?;
                    s.new_file(path)?
                }
            };
            Ok(Arc::new(SimFile {
                fs: self.clone(),
                ino,
                direct: false,
            }))
        })();
        s.note(
            op,
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    /// What the next process sees after this one is killed while the machine runs on: every
    /// file and directory as it is now, synced or not (the page cache survives), and still
    /// only as durable as it was (a later [`SimFs::crash`] of the result drops what nobody
    /// synced). No locks, no faults but [`SimFs::set_exchange_supported`]'s; shares the trace.
    pub fn restart(&self) -> SimFs {
        let s = self.lock();
        let mut next = s.clone();
        next.locks = BTreeSet::new();
        next.faults = Faults {
            no_exchange: s.faults.no_exchange,
            ..Faults::default()
        };
        SimFs {
            state: Arc::new(Mutex::new(next)),
        }
    }

    /// The state a crash leaves behind, as a fresh file system (no locks, no faults).
    pub fn crash(&self, opts: CrashOptions) -> SimFs {
        let mut s = self.lock();
        let mut rng = Rng(s.rng.next());
        let keep_all = opts.keep_unsynced;

        // The tree, from the root down: each reachable directory keeps, per name (or per set
        // of names a directory rename tied together), its current or its durable entry; what
        // is below a directory that is not reached is gone.
        let mut dirs: BTreeMap<u64, DirNode> = BTreeMap::new();
        let mut files: BTreeSet<u64> = BTreeSet::new();
        let mut todo = vec![ROOT];
        let mut seen = BTreeSet::from([ROOT]);
        while let Some(d) = todo.pop() {
            let mut entries = s.crashed_entries(d, opts, &mut rng);
            entries.retain(|_, node| match *node {
                Node::File(ino) => {
                    files.insert(ino);
                    true
                }
                // A directory inode has one name (a rename moves it whole): never two.
                Node::Dir(sub) => seen.insert(sub),
            });
            for node in entries.values() {
                if let Node::Dir(sub) = node {
                    todo.push(*sub);
                }
            }
            dirs.insert(
                d,
                DirNode {
                    durable: entries.clone(),
                    current: entries,
                    linked: Vec::new(),
                },
            );
        }

        // Contents.
        let mut inodes = BTreeMap::new();
        for ino in &files {
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
                dirs,
                locks: BTreeSet::new(),
                faults: Faults {
                    no_exchange: s.faults.no_exchange,
                    ..Faults::default()
                },
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
    /// Opened by [`Vfs::open_direct`]: positional writes only, aligned to [`DIRECT_ALIGN`].
    direct: bool,
}

impl VfsFile for SimFile {
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.fs.lock();
        let res = if self.direct {
            // Linux refuses an append (no offset) of unaligned bytes the same way.
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        } else {
            s.write(self.ino, buf)
        };
        s.note(
            "write",
            &format_args!("ino {} {} bytes", self.ino, buf.len()),
            res.as_ref(),
        );
        res
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut s = self.fs.lock();
        let res = if !self.direct {
            s.write_at(self.ino, buf, offset, 1)
        } else if !offset.is_multiple_of(DIRECT_ALIGN as u64)
            || !buf.len().is_multiple_of(DIRECT_ALIGN)
            || !(buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
        {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        } else {
            s.write_at(self.ino, buf, offset, DIRECT_ALIGN)
        };
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
            let names = components(dir)?;
            let mut d = ROOT;
            let mut counted = false;
            for name in names {
                let next = s.dirs.get(&d).and_then(|dn| dn.current.get(&name)).copied();
                d = match next {
                    Some(Node::Dir(sub)) => sub,
                    Some(Node::File(_)) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{}: a file is in the way (simfs)", dir.display()),
                        ))
                    }
                    None => {
                        if !counted {
                            s.mutate()?;
                            counted = true;
                        }
                        let sub = s.new_node_no();
                        s.dirs.insert(sub, DirNode::default());
                        s.dir_mut(d).current.insert(name, Node::Dir(sub));
                        sub
                    }
                };
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

    fn open_direct(&self, path: &Path) -> io::Result<Option<Arc<dyn VfsFile>>> {
        let s = self.lock();
        let res = (|| -> io::Result<Option<Arc<dyn VfsFile>>> {
            if s.faults.no_direct {
                return Ok(None);
            }
            let Some(ino) = s.file_if_any(path)? else {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
            };
            Ok(Some(Arc::new(SimFile {
                fs: self.clone(),
                ino,
                direct: true,
            })))
        })();
        s.note(
            "open_direct",
            &format_args!("{}", path.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.lock();
        let res = (|| -> io::Result<Arc<dyn VfsFile>> {
            s.mutate()?;
            // O_TRUNC on an existing file truncates the inode in place (not durable until synced).
            let ino = match s.file_if_any(path)? {
                Some(ino) => {
                    s.inode(ino).current.clear();
                    ino
                }
                None => s.new_file(path)?,
            };
            Ok(Arc::new(SimFile {
                fs: self.clone(),
                ino,
                direct: false,
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
        let res: io::Result<bool> = s.lookup(path).map(|n| n.is_some());
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
            let (from_dir, from_name) = s.split(from)?;
            let (to_dir, to_name) = s.split(to)?;
            if let Some(Node::Dir(_)) = s.lookup(to)? {
                return Err(invalid(to, "is a directory"));
            }
            s.mutate()?;
            s.dir_mut(from_dir).current.remove(&from_name);
            s.dir_mut(to_dir).current.insert(to_name, Node::File(ino));
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
            let (dir, name) = s.split(path)?;
            s.mutate()?;
            s.dir_mut(dir).current.remove(&name);
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
            let d = s.dir_of(dir)?;
            // BTreeMap order: sorted.
            Ok(s.dirs
                .get(&d)
                .map(|dn| {
                    dn.current
                        .iter()
                        .filter(|(_, n)| matches!(n, Node::File(_)))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default())
        })();
        s.note(
            "list_dir",
            &format_args!("{}", dir.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn list_subdirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        let res = (|| -> io::Result<Vec<String>> {
            let d = s.dir_of(dir)?;
            Ok(s.dirs
                .get(&d)
                .map(|dn| {
                    dn.current
                        .iter()
                        .filter(|(_, n)| matches!(n, Node::Dir(_)))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default())
        })();
        s.note(
            "list_subdirs",
            &format_args!("{}", dir.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            let d = s.dir_of(dir)?;
            if d == ROOT {
                return Err(invalid(dir, "cannot remove the root"));
            }
            let (parent, name) = s.split(dir)?;
            // As `std::fs::remove_dir_all`: the contents one by one, depth first, then the
            // directory's own entry.
            s.clear_dir(d)?;
            s.mutate()?;
            s.dir_mut(parent).current.remove(&name);
            Ok(())
        })();
        s.note(
            "remove_dir_all",
            &format_args!("{}", dir.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            let d = s.dir_of(from)?;
            let (from_dir, from_name) = s.split(from)?;
            let (to_dir, to_name) = s.split(to)?;
            if from_dir != to_dir {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "simfs: directory renames across directories are not modeled",
                ));
            }
            match s.lookup(to)? {
                None => {}
                // rename(2) replaces an empty directory.
                Some(Node::Dir(t))
                    if t != d && s.dirs.get(&t).is_none_or(|dn| dn.current.is_empty()) => {}
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{}: exists and is not an empty directory (simfs)",
                            to.display()
                        ),
                    ))
                }
            }
            s.mutate()?;
            let dn = s.dir_mut(from_dir);
            dn.current.remove(&from_name);
            dn.current.insert(to_name.clone(), Node::Dir(d));
            dn.link(&[&from_name, &to_name]);
            Ok(())
        })();
        s.note(
            "rename_dir",
            &format_args!("{} {}", from.display(), to.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn exchange_dirs(&self, a: &Path, b: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            let (a_dir, a_name) = s.split(a)?;
            let (b_dir, b_name) = s.split(b)?;
            let na = s.lookup(a)?.ok_or_else(|| not_found(a))?;
            let nb = s.lookup(b)?.ok_or_else(|| not_found(b))?;
            if s.faults.no_exchange {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "simfs: RENAME_EXCHANGE is turned off (set_exchange_supported)",
                ));
            }
            if a_dir != b_dir {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "simfs: exchanges across directories are not modeled",
                ));
            }
            s.mutate()?;
            let dn = s.dir_mut(a_dir);
            dn.current.insert(a_name.clone(), nb);
            dn.current.insert(b_name.clone(), na);
            dn.link(&[&a_name, &b_name]);
            Ok(())
        })();
        s.note(
            "exchange_dirs",
            &format_args!("{} {}", a.display(), b.display()),
            res.as_ref().map(|_| ()),
        );
        res
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let res = (|| -> io::Result<()> {
            let d = s.dir_of(dir)?;
            s.sync_hit()?;
            let dn = s.dir_mut(d);
            dn.durable = dn.current.clone();
            dn.linked.clear();
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

    /// `/data` durable, `/data/<name>/f` holding `bytes`, all synced.
    fn dir_with(fs: &SimFs, name: &str, bytes: &[u8]) -> PathBuf {
        let d = Path::new("/data").join(name);
        fs.create_dir_all(&d).expect("mkdir");
        fs.sync_dir(Path::new("/")).expect("sync /");
        fs.sync_dir(Path::new("/data")).expect("sync /data");
        write(fs, &d.join("f"), bytes, true);
        fs.sync_dir(&d).expect("sync dir");
        d
    }

    fn f_in(fs: &SimFs, d: &Path) -> Option<Vec<u8>> {
        fs.read(&d.join("f")).ok()
    }

    #[test]
    fn a_new_directory_and_its_files_vanish_until_its_parent_is_synced() {
        let fs = SimFs::new(1);
        fs.create_dir_all(Path::new("/data/new")).expect("mkdir");
        write(&fs, Path::new("/data/new/f"), b"x", true);
        fs.sync_dir(Path::new("/data/new")).expect("sync new");
        let after = fs.crash(CrashOptions::power_loss());
        assert!(!after.exists(Path::new("/data")).expect("exists"));
        fs.sync_dir(Path::new("/")).expect("sync /");
        fs.sync_dir(Path::new("/data")).expect("sync /data");
        let after = fs.crash(CrashOptions::power_loss());
        assert_eq!(
            f_in(&after, Path::new("/data/new")).as_deref(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn a_directory_exchange_is_kept_or_lost_whole_until_the_parent_is_synced() {
        let (mut kept, mut lost) = (0, 0);
        for seed in 0..64 {
            let fs = SimFs::new(seed);
            let a = dir_with(&fs, "a", b"A");
            let b = dir_with(&fs, "b", b"B");
            fs.exchange_dirs(&a, &b).expect("exchange");
            assert_eq!(f_in(&fs, &a).as_deref(), Some(&b"B"[..]));
            // Entries made inside a directory follow it (its inode), whatever its name.
            write(&fs, &a.join("g"), b"new", true);
            fs.sync_dir(&a).expect("sync a");
            let after = fs.crash(CrashOptions {
                random_dir_ops: true,
                ..CrashOptions::power_loss()
            });
            let (fa, fb) = (f_in(&after, &a), f_in(&after, &b));
            match (fa.as_deref(), fb.as_deref()) {
                (Some(b"B"), Some(b"A")) => {
                    kept += 1;
                    assert!(after.exists(&a.join("g")).expect("exists"));
                }
                (Some(b"A"), Some(b"B")) => {
                    lost += 1;
                    assert!(after.exists(&b.join("g")).expect("exists"));
                }
                other => panic!("seed {seed}: a mix: {other:?}"),
            }
            fs.sync_dir(Path::new("/data")).expect("sync");
            let after = fs.crash(CrashOptions::power_loss());
            assert_eq!(f_in(&after, &a).as_deref(), Some(&b"B"[..]));
        }
        assert!(kept > 0 && lost > 0, "kept {kept}, lost {lost}");
        let fs = SimFs::new(0);
        let (a, b) = (dir_with(&fs, "a", b"A"), dir_with(&fs, "b", b"B"));
        fs.set_exchange_supported(false);
        let e = fs.exchange_dirs(&a, &b).expect_err("unsupported");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert_eq!(f_in(&fs, &a).as_deref(), Some(&b"A"[..]));
    }

    #[test]
    fn a_directory_rename_moves_its_tree_and_a_removal_may_be_half_undone() {
        let fs = SimFs::new(5);
        let a = dir_with(&fs, "a", b"A");
        write(&fs, &a.join("g"), b"G", true);
        fs.sync_dir(&a).expect("sync");
        let b = Path::new("/data/b");
        fs.rename_dir(&a, b).expect("rename");
        assert!(!fs.exists(&a).expect("exists"));
        assert_eq!(fs.list_dir(b).expect("list"), vec!["f", "g"]);
        assert_eq!(
            fs.list_subdirs(Path::new("/data")).expect("list"),
            vec!["b"]
        );
        let after = fs.crash(CrashOptions::power_loss());
        assert_eq!(
            after.list_subdirs(Path::new("/data")).expect("list"),
            vec!["a"]
        );
        fs.sync_dir(Path::new("/data")).expect("sync");
        // A removal not synced: any part of it may come back.
        fs.remove_dir_all(b).expect("rm");
        assert!(!fs.exists(b).expect("exists"));
        let mut partial = false;
        for _ in 0..16 {
            let after = fs.crash(CrashOptions {
                random_dir_ops: true,
                ..CrashOptions::power_loss()
            });
            if after.exists(b).expect("exists") {
                partial |= after.list_dir(b).expect("list").len() == 1;
            }
        }
        assert!(partial, "some crash keeps part of the removal");
        let after = fs.crash(CrashOptions::power_loss());
        assert_eq!(after.list_dir(b).expect("list"), vec!["f", "g"]);
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
