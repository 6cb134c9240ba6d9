//! The plan: a pure function from [`Observations`] to the list of files to load.
//!
//! | observation                                   | plan                                        |
//! |-----------------------------------------------|---------------------------------------------|
//! | no AOF directory                              | empty, source `None` (writer creates all)   |
//! | directory, no manifest, no AOF-named files    | empty, source `None`                        |
//! | directory, no manifest, only empty AOF files  | empty, source `None` (interrupted 1st open) |
//! | directory, no manifest, AOF-named files       | error (server) / inferred by name (tool)    |
//! | manifest fails to parse                       | error with Redis's wording                  |
//! | manifest lists a missing base/incr file       | error (Redis: fatal)                        |
//! | manifest ok                                   | base (if any), then every `i` in order      |
//!
//! History (`h`) files are never loaded; files in the directory the manifest does not list
//! are reported as orphans (leftovers of a crash mid-rotation) and ignored.

use crate::scan::Observations;
use crate::RecoveryError;
use std::path::PathBuf;
use strongbox_storage::aof::{
    manifest_name, FileType, Manifest, ManifestEntry, AOF_FORMAT_SUFFIX, BASE_FILE_SUFFIX,
    INCR_FILE_SUFFIX, RDB_FORMAT_SUFFIX,
};
use strongbox_storage::fs::Vfs;

/// What kind of file a planned file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Base in RDB format (`.base.rdb`).
    BaseRdb,
    /// Base in RESP format (`.base.aof`; may still start with an RDB preamble).
    BaseAof,
    /// Incr file.
    Incr,
}

/// One file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// File name in the AOF directory.
    pub name: String,
    /// Kind.
    pub kind: FileKind,
    /// Whether it is the last file loaded (only its tail may be cut).
    pub last: bool,
}

/// Where the file list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestSource {
    /// Nothing on disk: no directory or no AOF files.
    None,
    /// The manifest.
    Manifest,
    /// Inferred from file names because the manifest is missing (offline tool only).
    Inferred,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The AOF directory.
    pub dir: PathBuf,
    /// `appendfilename`.
    pub filename: String,
    /// Whether the directory exists.
    pub dir_exists: bool,
    /// Where the list came from.
    pub source: ManifestSource,
    /// The manifest (parsed or inferred).
    pub manifest: Option<Manifest>,
    /// Files to load, in order.
    pub files: Vec<PlannedFile>,
    /// Files in the directory that the manifest does not mention (ignored).
    pub orphans: Vec<String>,
}

impl Plan {
    /// The orphans worth a warning: all but empty ones. The log writer creates the next incr
    /// file ahead of a rotation (empty, durable) and names it in the manifest only when it
    /// rotates, so a crash leaves one behind almost every time; it holds nothing, so nothing
    /// is lost by ignoring it (it is still listed in `orphans`).
    pub fn orphans_to_warn_about(&self, vfs: &dyn Vfs) -> Vec<&String> {
        self.orphans
            .iter()
            .filter(|o| vfs.len(&self.dir.join(o.as_str())).map_or(true, |n| n > 0))
            .collect()
    }

    /// Nothing to load (the server may then import `dump.rdb`).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

fn base_kind(name: &str) -> FileKind {
    if name.ends_with(RDB_FORMAT_SUFFIX) {
        FileKind::BaseRdb
    } else {
        FileKind::BaseAof
    }
}

/// `<filename>.<seq>.<base|incr>.<rdb|aof>` → (seq, is_base).
fn parse_name(filename: &str, name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(filename)?.strip_prefix('.')?;
    let (seq, suffix) = rest.split_once('.')?;
    let seq: u64 = seq.parse().ok()?;
    let suffix = format!(".{suffix}");
    if suffix == format!("{INCR_FILE_SUFFIX}{AOF_FORMAT_SUFFIX}") {
        Some((seq, false))
    } else if suffix == format!("{BASE_FILE_SUFFIX}{AOF_FORMAT_SUFFIX}")
        || suffix == format!("{BASE_FILE_SUFFIX}{RDB_FORMAT_SUFFIX}")
    {
        Some((seq, true))
    } else {
        None
    }
}

/// Decide what to load.
pub fn plan(obs: &Observations, infer_without_manifest: bool) -> Result<Plan, RecoveryError> {
    let mname = manifest_name(&obs.filename);
    let mut plan = Plan {
        dir: obs.dir.clone(),
        filename: obs.filename.clone(),
        dir_exists: obs.dir_exists,
        source: ManifestSource::None,
        manifest: None,
        files: Vec::new(),
        orphans: Vec::new(),
    };
    let manifest = match &obs.manifest_bytes {
        Some(bytes) => {
            plan.source = ManifestSource::Manifest;
            Manifest::parse(bytes).map_err(|source| RecoveryError::Manifest {
                path: obs.dir.join(&mname),
                source,
            })?
        }
        None => {
            let named: Vec<(u64, bool, &String)> = obs
                .files
                .iter()
                .filter_map(|n| parse_name(&obs.filename, n).map(|(s, b)| (s, b, n)))
                .collect();
            // Only empty AOF files and no manifest: a first start that crashed before its
            // manifest became durable (the writer writes data only after that). Nothing to
            // lose; the writer picks seqs above these names.
            let all_empty = named
                .iter()
                .all(|(_, _, n)| obs.lens_without_manifest.get(*n) == Some(&0));
            if named.is_empty() || all_empty {
                return Ok(plan);
            }
            if !infer_without_manifest {
                let files: Vec<&str> = named.iter().take(5).map(|(_, _, n)| n.as_str()).collect();
                return Err(RecoveryError::NoManifest {
                    dir: obs.dir.clone(),
                    manifest: mname,
                    files: files.join(", "),
                });
            }
            plan.source = ManifestSource::Inferred;
            let mut m = Manifest::default();
            if let Some((seq, _, name)) = named
                .iter()
                .filter(|(_, b, _)| *b)
                .max_by_key(|(s, _, _)| *s)
            {
                m.base = Some(ManifestEntry {
                    name: (*name).clone(),
                    seq: *seq,
                    kind: FileType::Base,
                });
            }
            let mut incr: Vec<_> = named.iter().filter(|(_, b, _)| !*b).collect();
            incr.sort_by_key(|(s, _, _)| *s);
            m.incr = incr
                .into_iter()
                .map(|(seq, _, name)| ManifestEntry {
                    name: (*name).clone(),
                    seq: *seq,
                    kind: FileType::Incr,
                })
                .collect();
            m
        }
    };
    for e in manifest.base.iter().chain(&manifest.incr) {
        if !obs.files.contains(&e.name) {
            return Err(RecoveryError::MissingFile {
                path: obs.dir.join(&e.name),
            });
        }
    }
    if let Some(b) = &manifest.base {
        plan.files.push(PlannedFile {
            name: b.name.clone(),
            kind: base_kind(&b.name),
            last: false,
        });
    }
    for e in &manifest.incr {
        plan.files.push(PlannedFile {
            name: e.name.clone(),
            kind: FileKind::Incr,
            last: false,
        });
    }
    if let Some(last) = plan.files.last_mut() {
        last.last = true;
    }
    let listed: Vec<&String> = manifest
        .base
        .iter()
        .chain(&manifest.history)
        .chain(&manifest.incr)
        .map(|e| &e.name)
        .collect();
    plan.orphans = obs
        .files
        .iter()
        .filter(|n| **n != mname && !listed.contains(n) && parse_name(&obs.filename, n).is_some())
        .cloned()
        .collect();
    plan.manifest = Some(manifest);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(files: &[&str], manifest: Option<&str>) -> Observations {
        Observations {
            dir: PathBuf::from("/d"),
            filename: "appendonly.aof".to_string(),
            dir_exists: true,
            files: files.iter().map(|s| s.to_string()).collect(),
            manifest_bytes: manifest.map(|m| m.as_bytes().to_vec()),
            lens_without_manifest: files.iter().map(|s| (s.to_string(), 1)).collect(),
        }
    }

    #[test]
    fn no_dir_or_no_files_is_an_empty_plan() {
        let mut o = obs(&[], None);
        o.dir_exists = false;
        assert!(plan(&o, false).expect("plan").is_empty());
        assert!(plan(&obs(&["dump.rdb"], None), false)
            .expect("plan")
            .is_empty());
    }

    #[test]
    fn files_without_manifest_are_an_error_for_the_server_and_inferred_for_tools() {
        let o = obs(
            &[
                "appendonly.aof.1.base.rdb",
                "appendonly.aof.2.incr.aof",
                "appendonly.aof.1.incr.aof",
            ],
            None,
        );
        assert!(matches!(
            plan(&o, false),
            Err(RecoveryError::NoManifest { .. })
        ));
        let p = plan(&o, true).expect("inferred");
        assert_eq!(p.source, ManifestSource::Inferred);
        let names: Vec<&str> = p.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "appendonly.aof.1.base.rdb",
                "appendonly.aof.1.incr.aof",
                "appendonly.aof.2.incr.aof"
            ]
        );
        assert_eq!(p.files[0].kind, FileKind::BaseRdb);
        assert!(p.files[2].last);
    }

    #[test]
    fn an_empty_orphan_is_listed_but_not_warned_about() {
        let tmp = tempfile::tempdir().expect("tmp");
        let names = [
            "appendonly.aof.1.incr.aof",
            "appendonly.aof.2.incr.aof",
            "appendonly.aof.3.incr.aof",
        ];
        std::fs::write(tmp.path().join(names[0]), b"*1\r\n$4\r\nPING\r\n").expect("w");
        std::fs::write(tmp.path().join(names[1]), b"*1\r\n$4\r\nPING\r\n").expect("w");
        // What the log writer leaves when it crashes before a rotation lists it.
        std::fs::write(tmp.path().join(names[2]), b"").expect("w");
        let mut o = obs(
            &[names[0], names[1], names[2], "appendonly.aof.manifest"],
            Some("file appendonly.aof.1.incr.aof seq 1 type i\n"),
        );
        o.dir = tmp.path().to_path_buf();
        let p = plan(&o, false).expect("plan");
        assert_eq!(p.orphans, [names[1], names[2]]);
        let warned = p.orphans_to_warn_about(&strongbox_storage::fs::RealFs);
        assert_eq!(warned, [names[1]]);
    }

    #[test]
    fn manifest_order_history_skipped_orphans_listed_missing_is_fatal() {
        let m = "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.1.incr.aof seq 1 type h\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let o = obs(
            &[
                "appendonly.aof.2.base.aof",
                "appendonly.aof.1.incr.aof",
                "appendonly.aof.2.incr.aof",
                "appendonly.aof.3.incr.aof",
                "appendonly.aof.manifest",
            ],
            Some(m),
        );
        let p = plan(&o, false).expect("plan");
        let names: Vec<&str> = p.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["appendonly.aof.2.base.aof", "appendonly.aof.2.incr.aof"]
        );
        assert_eq!(p.orphans, ["appendonly.aof.3.incr.aof"]);
        let o = obs(&["appendonly.aof.manifest"], Some(m));
        assert!(matches!(
            plan(&o, false),
            Err(RecoveryError::MissingFile { .. })
        ));
        let o = obs(&["appendonly.aof.manifest"], Some("file x seq 1 type z\n"));
        assert!(matches!(
            plan(&o, false),
            Err(RecoveryError::Manifest { .. })
        ));
    }
}
