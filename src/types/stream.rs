//! Streams: live entries indexed by ID, consumer groups with their pending entries lists, and a
//! model of how Redis 7.0 packs entries into listpack nodes of its radix tree.
//!
//! The node model is what makes Redis-visible details come out the same: approximate trimming
//! (`MAXLEN ~`, `MINID ~`) only drops whole nodes, `XINFO STREAM` reports the number of nodes
//! (`radix-tree-keys`) and radix tree nodes, and the logged form of an approximate trim names
//! the first ID still present in the first node, deleted or not. A node is not stored with its
//! bytes: only what decides where the next node starts (Redis's `streamAppendItem`): the master
//! fields, the live and deleted counters and the listpack's size in bytes, computed with
//! listpack's encoding rules.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use strongbox_storage::rdb;

pub use strongbox_storage::rdb::StreamId;

/// Field/value pairs of one entry, in the order given to XADD.
pub type Fields = Vec<(Bytes, Bytes)>;

/// `stream-node-max-bytes` default.
pub const NODE_MAX_BYTES_DEFAULT: usize = 4096;
/// `stream-node-max-entries` default.
pub const NODE_MAX_ENTRIES_DEFAULT: u64 = 100;
/// Redis's `STREAM_LISTPACK_MAX_SIZE`: a node never grows past this, whatever the config says.
pub const LISTPACK_MAX_SIZE_BYTES: usize = 1 << 30;
/// Redis's `SCG_INVALID_ENTRIES_READ`.
pub const INVALID_ENTRIES_READ: i64 = -1;

/// The greatest ID.
pub const MAX_ID: StreamId = StreamId {
    ms: u64::MAX,
    seq: u64::MAX,
};
/// The smallest ID.
pub const MIN_ID: StreamId = StreamId { ms: 0, seq: 0 };

/// Where a new node starts (`stream-node-max-bytes`, `stream-node-max-entries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// 0 = no limit (Redis then caps at [`LISTPACK_MAX_SIZE_BYTES`]).
    pub max_bytes: usize,
    /// 0 = no limit.
    pub max_entries: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            max_bytes: NODE_MAX_BYTES_DEFAULT,
            max_entries: NODE_MAX_ENTRIES_DEFAULT,
        }
    }
}

/// The successor of `id`; None for the greatest ID (Redis's `streamIncrID` failing).
pub fn incr_id(id: StreamId) -> Option<StreamId> {
    if id.seq == u64::MAX {
        if id.ms == u64::MAX {
            None
        } else {
            Some(StreamId::new(id.ms + 1, 0))
        }
    } else {
        Some(StreamId::new(id.ms, id.seq + 1))
    }
}

/// The predecessor of `id`; None for 0-0 (Redis's `streamDecrID` failing).
pub fn decr_id(id: StreamId) -> Option<StreamId> {
    if id.seq == 0 {
        if id.ms == 0 {
            None
        } else {
            Some(StreamId::new(id.ms - 1, u64::MAX))
        }
    } else {
        Some(StreamId::new(id.ms, id.seq - 1))
    }
}

/// Bytes of a listpack back-length field for an entry of `len` bytes.
fn lp_backlen_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Bytes a listpack takes for the integer `v` (encoding plus back-length).
fn lp_int_bytes(v: i64) -> usize {
    let enc = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (-32768..=32767).contains(&v) {
        3
    } else if (-8_388_608..=8_388_607).contains(&v) {
        4
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        5
    } else {
        9
    };
    enc + lp_backlen_bytes(enc)
}

/// Bytes a listpack takes for the element `s` (stored as an integer when it is one).
fn lp_elem_bytes(s: &[u8]) -> usize {
    if let Some(v) = crate::util::parse_i64(s) {
        return lp_int_bytes(v);
    }
    let enc = if s.len() < 64 {
        1 + s.len()
    } else if s.len() < 4096 {
        2 + s.len()
    } else {
        5 + s.len()
    };
    enc + lp_backlen_bytes(enc)
}

/// Listpack header (total bytes, element count) and end marker.
const LP_OVERHEAD_BYTES: usize = 6 + 1;

/// One listpack node of Redis's stream representation, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    /// The master entry's field names (entries with the same names store only values).
    master_fields: Vec<Bytes>,
    live: u64,
    deleted: u64,
    /// Size in bytes of everything except the live and deleted counters.
    fixed_bytes: usize,
    /// The last entry in the node, deleted or not.
    last_id: StreamId,
}

impl Node {
    fn bytes(&self) -> usize {
        self.fixed_bytes + lp_int_bytes(self.live as i64) + lp_int_bytes(self.deleted as i64)
    }
}

/// A pending entry of a group (Redis's `streamNACK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// Last delivery, unix ms.
    pub delivery_time: i64,
    pub delivery_count: u64,
    /// Name of the owning consumer.
    pub consumer: Bytes,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Last time seen, unix ms.
    pub seen_time: i64,
    /// IDs of the group's pending entries this consumer owns.
    pub pel: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub last_id: StreamId,
    /// [`INVALID_ENTRIES_READ`] when unknown.
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    /// By name, in byte order (Redis keeps them in a radix tree).
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Remove the pending entry `id` from the group and its consumer. Returns it.
    pub fn remove_nack(&mut self, id: StreamId) -> Option<Nack> {
        let nack = self.pel.remove(&id)?;
        if let Some(c) = self.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
        Some(nack)
    }

    /// Delete a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }
}

/// Why an append failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// The ID is not greater than the stream's last ID (Redis's EDOM).
    NotGreater,
}

/// A trimming request (Redis's `streamAddTrimArgs` without the parsing bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimStrategy {
    MaxLen(u64),
    MinId(StreamId),
}

/// A stream value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    entries: BTreeMap<StreamId, Fields>,
    /// Nodes by master ID (the first entry ever stored in the node).
    nodes: BTreeMap<StreamId, Node>,
    pub last_id: StreamId,
    /// Redis's `first_id` as Redis maintains it (XINFO's `recorded-first-entry-id`).
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    /// By name, in byte order.
    pub groups: BTreeMap<Bytes, Group>,
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Number of live entries (XLEN).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Fields of the entry `id`, if it is live.
    pub fn get(&self, id: &StreamId) -> Option<&Fields> {
        self.entries.get(id)
    }

    /// Live entries with `start <= id <= end`, in ID order (or reverse).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&StreamId, &Fields)> + '_> {
        if start > end {
            return Box::new(std::iter::empty());
        }
        let r = self.entries.range(start..=end);
        if rev {
            Box::new(r.rev())
        } else {
            Box::new(r)
        }
    }

    /// The smallest live ID.
    pub fn first_live_id(&self) -> Option<StreamId> {
        self.entries.keys().next().copied()
    }

    /// The greatest live ID (Redis's `streamLastValidID`), 0-0 when empty.
    pub fn last_valid_id(&self) -> StreamId {
        self.entries.keys().next_back().copied().unwrap_or_default()
    }

    /// The first ID of the first node, deleted or not (Redis's `streamGetEdgeID` without
    /// skipping tombstones); the greatest ID when the stream has no node.
    pub fn first_id_with_tombstones(&self) -> StreamId {
        self.nodes.keys().next().copied().unwrap_or(MAX_ID)
    }

    /// Number of listpack nodes (`radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of radix tree nodes holding the node keys (`radix-tree-nodes`), counted on the
    /// compressed radix tree Redis's rax builds over 16-byte big-endian IDs.
    pub fn rax_node_count(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|id| id.to_be_bytes()).collect();
        if keys.is_empty() {
            return 1;
        }
        rax_nodes(&keys, 0)
    }

    /// Append an entry with ID `id` (already checked against the last ID by the caller's
    /// choice of ID, but checked again here).
    pub fn append(
        &mut self,
        id: StreamId,
        fields: Fields,
        limits: NodeLimits,
    ) -> Result<(), AppendError> {
        if id <= self.last_id {
            return Err(AppendError::NotGreater);
        }
        self.place_in_node(id, &fields, limits);
        self.entries.insert(id, fields);
        self.entries_added += 1;
        self.last_id = id;
        if self.entries.len() == 1 {
            self.first_id = id;
        }
        Ok(())
    }

    /// Account `id` in the tail node or a new one, as `streamAppendItem` does.
    fn place_in_node(&mut self, id: StreamId, fields: &Fields, limits: NodeLimits) {
        let total_elem_bytes: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        let max_bytes = if limits.max_bytes == 0 || limits.max_bytes > LISTPACK_MAX_SIZE_BYTES {
            LISTPACK_MAX_SIZE_BYTES
        } else {
            limits.max_bytes
        };
        let n_fields = fields.len() as i64;
        let tail = self.nodes.iter_mut().next_back().filter(|(_, n)| {
            n.bytes() + total_elem_bytes < max_bytes
                && (limits.max_entries == 0 || n.live + n.deleted < limits.max_entries)
        });
        let (master_id, node) = match tail {
            Some((m, n)) => (*m, n),
            None => {
                let mut fixed = LP_OVERHEAD_BYTES + lp_int_bytes(n_fields) + lp_int_bytes(0);
                for (f, _) in fields {
                    fixed += lp_elem_bytes(f);
                }
                self.nodes.insert(
                    id,
                    Node {
                        master_fields: fields.iter().map(|(f, _)| f.clone()).collect(),
                        live: 0,
                        deleted: 0,
                        fixed_bytes: fixed,
                        last_id: id,
                    },
                );
                let node = self.nodes.get_mut(&id).expect("node just inserted");
                (id, node)
            }
        };
        let same_fields = node.master_fields.len() == fields.len()
            && node
                .master_fields
                .iter()
                .zip(fields.iter())
                .all(|(m, (f, _))| m == f);
        let flags = if same_fields { 2 } else { 0 };
        let mut bytes = lp_int_bytes(flags)
            + lp_int_bytes(id.ms.wrapping_sub(master_id.ms) as i64)
            + lp_int_bytes(id.seq.wrapping_sub(master_id.seq) as i64);
        let mut lp_count = n_fields + 3;
        if !same_fields {
            bytes += lp_int_bytes(n_fields);
            for (f, _) in fields {
                bytes += lp_elem_bytes(f);
            }
            lp_count += n_fields + 1;
        }
        for (_, v) in fields {
            bytes += lp_elem_bytes(v);
        }
        bytes += lp_int_bytes(lp_count);
        node.fixed_bytes += bytes;
        node.live += 1;
        node.last_id = id;
    }

    /// Delete a live entry (XDEL's `streamDeleteItem`); false if there was none. Does not
    /// touch `first_id`/`max_deleted_id` (the caller does, as XDEL does).
    pub fn delete(&mut self, id: StreamId) -> bool {
        if self.entries.remove(&id).is_none() {
            return false;
        }
        if let Some((&master, node)) = self.nodes.range_mut(..=id).next_back() {
            if node.live <= 1 {
                self.nodes.remove(&master);
            } else {
                node.live -= 1;
                node.deleted += 1;
            }
        }
        true
    }

    /// Trim as Redis's `streamTrim`: whole nodes first; with `approx` stop at the first node
    /// that cannot go entirely, otherwise mark entries of that node deleted. `limit` > 0 caps
    /// the entries removed (whole nodes only). Returns the number of entries removed.
    pub fn trim(&mut self, strategy: TrimStrategy, approx: bool, limit: u64) -> u64 {
        let mut deleted: u64 = 0;
        loop {
            if let TrimStrategy::MaxLen(maxlen) = strategy {
                if self.len() as u64 <= maxlen {
                    break;
                }
            }
            let Some((&master, node)) = self.nodes.iter().next() else {
                break;
            };
            let live = node.live;
            if limit > 0 && deleted + live > limit {
                break;
            }
            let remove_node = match strategy {
                TrimStrategy::MaxLen(maxlen) => self.len() as u64 - live >= maxlen,
                TrimStrategy::MinId(min) => node.last_id < min,
            };
            let next_master = self
                .nodes
                .range((
                    std::ops::Bound::Excluded(master),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .map(|(k, _)| *k);
            if remove_node {
                self.nodes.remove(&master);
                let ids: Vec<StreamId> = match next_master {
                    Some(n) => self.entries.range(master..n).map(|(k, _)| *k).collect(),
                    None => self.entries.range(master..).map(|(k, _)| *k).collect(),
                };
                for id in ids {
                    self.entries.remove(&id);
                }
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            // Mark entries of this node deleted until the condition holds.
            let ids: Vec<StreamId> = match next_master {
                Some(n) => self.entries.range(master..n).map(|(k, _)| *k).collect(),
                None => self.entries.range(master..).map(|(k, _)| *k).collect(),
            };
            let mut from_node = 0;
            for id in ids {
                let stop = match strategy {
                    TrimStrategy::MaxLen(maxlen) => self.len() as u64 <= maxlen,
                    TrimStrategy::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                self.entries.remove(&id);
                from_node += 1;
            }
            if let Some(node) = self.nodes.get_mut(&master) {
                node.live -= from_node;
                node.deleted += from_node;
            }
            deleted += from_node;
            break;
        }
        if deleted > 0 {
            self.first_id = self.first_live_id().unwrap_or(MIN_ID);
        }
        deleted
    }

    /// Whether a deleted ID may lie in `start..=end` (Redis's `streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.is_empty() || self.max_deleted_id == MIN_ID {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// The logical read counter of `id` when it can be known (Redis's
    /// `streamEstimateDistanceFromFirstEverEntry`); [`INVALID_ENTRIES_READ`] otherwise.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.is_empty() && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        }
        if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        if self.max_deleted_id == MIN_ID || self.max_deleted_id < self.first_id {
            let base = self.entries_added as i64 - self.len() as i64;
            if id < self.first_id {
                return base;
            }
            if id == self.first_id {
                return base + 1;
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag, None when it cannot be known (Redis's `streamReplyWithCGLag`).
    pub fn group_lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.range_has_tombstones(g.last_id, MAX_ID) {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_distance(g.last_id);
        if read != INVALID_ENTRIES_READ {
            Some(self.entries_added as i64 - read)
        } else {
            None
        }
    }

    /// Advance a group past a delivered entry `id` (the bookkeeping of `streamReplyWithRange`).
    pub fn group_delivered(&self, g: &mut Group, id: StreamId) -> bool {
        if id <= g.last_id {
            return false;
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.range_has_tombstones(id, MAX_ID) {
            g.entries_read += 1;
        } else if self.entries_added > 0 {
            g.entries_read = self.estimate_distance(id);
        }
        g.last_id = id;
        true
    }

    /// The codec's value, for snapshots.
    pub fn to_rdb(&self) -> rdb::Stream {
        rdb::Stream {
            entries: self
                .entries
                .iter()
                .map(|(id, f)| rdb::StreamEntry {
                    id: *id,
                    fields: f.clone(),
                })
                .collect(),
            length: self.entries.len() as u64,
            last_id: self.last_id,
            first_id: self.first_id,
            max_deleted_id: self.max_deleted_id,
            entries_added: self.entries_added,
            groups: self
                .groups
                .iter()
                .map(|(name, g)| rdb::ConsumerGroup {
                    name: name.clone(),
                    last_id: g.last_id,
                    entries_read: g.entries_read,
                    pel: g
                        .pel
                        .iter()
                        .map(|(id, n)| rdb::PendingEntry {
                            id: *id,
                            delivery_time_ms: n.delivery_time,
                            delivery_count: n.delivery_count,
                        })
                        .collect(),
                    consumers: g
                        .consumers
                        .iter()
                        .map(|(cname, c)| rdb::Consumer {
                            name: cname.clone(),
                            seen_time_ms: c.seen_time,
                            active_time_ms: None,
                            pending: c.pel.iter().copied().collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// From the codec's value (nodes rebuilt with the default node limits, as if the entries
    /// had been appended in order). Pending entries no consumer owns are dropped.
    pub fn from_rdb(s: rdb::Stream) -> Stream {
        Stream::from_rdb_with(s, NodeLimits::default())
    }

    /// [`Stream::from_rdb`] with explicit node limits.
    pub fn from_rdb_with(s: rdb::Stream, limits: NodeLimits) -> Stream {
        let mut out = Stream::new();
        for e in s.entries {
            if e.id > out.last_id {
                out.place_in_node(e.id, &e.fields, limits);
                out.last_id = e.id;
                out.entries.insert(e.id, e.fields);
            }
        }
        out.last_id = s.last_id.max(out.last_valid_id());
        out.first_id = s.first_id;
        out.max_deleted_id = s.max_deleted_id;
        out.entries_added = s.entries_added.max(out.entries.len() as u64);
        for g in s.groups {
            let mut group = Group::new(g.last_id, g.entries_read);
            let times: BTreeMap<StreamId, (i64, u64)> = g
                .pel
                .iter()
                .map(|p| (p.id, (p.delivery_time_ms, p.delivery_count)))
                .collect();
            for c in g.consumers {
                let mut pel = BTreeSet::new();
                for id in c.pending {
                    if let Some(&(t, n)) = times.get(&id) {
                        if group.pel.contains_key(&id) {
                            continue;
                        }
                        group.pel.insert(
                            id,
                            Nack {
                                delivery_time: t,
                                delivery_count: n,
                                consumer: c.name.clone(),
                            },
                        );
                        pel.insert(id);
                    }
                }
                group.consumers.insert(
                    c.name,
                    Consumer {
                        seen_time: c.seen_time_ms,
                        pel,
                    },
                );
            }
            out.groups.insert(g.name, group);
        }
        out
    }
}

/// Nodes of a compressed radix tree over `keys` (sorted, distinct, equal length) below a
/// point at `depth` bytes.
fn rax_nodes(keys: &[[u8; 16]], depth: usize) -> usize {
    if depth == 16 {
        return 1; // the key's own (leaf) node
    }
    // Longest common prefix from `depth`.
    let first = &keys[0];
    let last = &keys[keys.len() - 1];
    let mut lcp = depth;
    while lcp < 16 && first[lcp] == last[lcp] {
        lcp += 1;
    }
    if lcp > depth {
        // A compressed node holding the common bytes.
        return 1 + rax_nodes(keys, lcp);
    }
    // A branching node with one child per distinct byte.
    let mut n = 1;
    let mut i = 0;
    while i < keys.len() {
        let b = keys[i][depth];
        let mut j = i;
        while j < keys.len() && keys[j][depth] == b {
            j += 1;
        }
        n += rax_nodes(&keys[i..j], depth + 1);
        i = j;
    }
    n
}

/// Approximate heap bytes of a stream.
pub fn mem_usage(s: &Stream) -> usize {
    let entries: usize = s
        .entries
        .values()
        .map(|f| 48 + f.iter().map(|(a, b)| a.len() + b.len() + 32).sum::<usize>())
        .sum();
    let groups: usize = s
        .groups
        .values()
        .map(|g| 64 + g.pel.len() * 64 + g.consumers.len() * 64)
        .sum();
    64 + entries + groups + s.nodes.len() * 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    fn f(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(a, b)| (Bytes::from(a.to_string()), Bytes::from(b.to_string())))
            .collect()
    }

    #[test]
    fn listpack_sizes_follow_encodings() {
        assert_eq!(lp_int_bytes(0), 2);
        assert_eq!(lp_int_bytes(127), 2);
        assert_eq!(lp_int_bytes(128), 3);
        assert_eq!(lp_int_bytes(-1), 3);
        assert_eq!(lp_int_bytes(40000), 5);
        assert_eq!(lp_int_bytes(i64::MAX), 10);
        assert_eq!(lp_elem_bytes(b"abc"), 5);
        assert_eq!(lp_elem_bytes(b"123"), 2);
        assert_eq!(lp_elem_bytes(b"0123"), 6);
        assert_eq!(lp_elem_bytes(&[b'x'; 64]), 67);
        assert_eq!(lp_elem_bytes(&[b'x'; 200]), 204);
    }

    #[test]
    fn nodes_split_at_max_entries() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            s.append(StreamId::new(i, 0), f(&[("a", "1")]), NodeLimits::default())
                .unwrap();
        }
        assert_eq!(s.node_count(), 3);
        assert_eq!(s.len(), 250);
        // MAXLEN ~ 120 removes the first whole node only.
        assert_eq!(s.trim(TrimStrategy::MaxLen(120), true, 0), 100);
        assert_eq!(s.len(), 150);
        assert_eq!(s.first_id_with_tombstones(), StreamId::new(101, 0));
        // Exact trim marks entries in the first node deleted.
        assert_eq!(s.trim(TrimStrategy::MaxLen(120), false, 0), 30);
        assert_eq!(s.first_id_with_tombstones(), StreamId::new(101, 0));
        assert_eq!(s.first_id, StreamId::new(131, 0));
    }

    #[test]
    fn append_refuses_smaller_ids_and_delete_drops_empty_nodes() {
        let mut s = Stream::new();
        s.append(StreamId::new(5, 0), f(&[("a", "b")]), NodeLimits::default())
            .unwrap();
        assert_eq!(
            s.append(StreamId::new(5, 0), f(&[("a", "b")]), NodeLimits::default()),
            Err(AppendError::NotGreater)
        );
        assert!(s.delete(StreamId::new(5, 0)));
        assert!(!s.delete(StreamId::new(5, 0)));
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.rax_node_count(), 1);
    }

    #[test]
    fn rax_counts_compressed_and_branching_nodes() {
        let mut s = Stream::new();
        let lim = NodeLimits {
            max_bytes: 4096,
            max_entries: 1,
        };
        s.append(StreamId::new(1, 0), f(&[("a", "b")]), lim)
            .unwrap();
        assert_eq!(s.rax_node_count(), 2);
        s.append(StreamId::new(2, 0), f(&[("a", "b")]), lim)
            .unwrap();
        // compressed prefix, branch, two leaves (each leaf after the branch holds the rest).
        assert_eq!(s.rax_node_count(), 6);
    }

    #[test]
    fn rdb_round_trip_keeps_groups() {
        let mut s = Stream::new();
        for i in 1..=3 {
            s.append(StreamId::new(i, 1), f(&[("k", "v")]), NodeLimits::default())
                .unwrap();
        }
        let mut g = Group::new(StreamId::new(2, 1), 2);
        g.pel.insert(
            StreamId::new(1, 1),
            Nack {
                delivery_time: 7,
                delivery_count: 2,
                consumer: Bytes::from_static(b"c1"),
            },
        );
        g.consumers.insert(
            Bytes::from_static(b"c1"),
            Consumer {
                seen_time: 9,
                pel: [StreamId::new(1, 1)].into_iter().collect(),
            },
        );
        s.groups.insert(Bytes::from_static(b"g"), g);
        let back = Stream::from_rdb(s.to_rdb());
        assert_eq!(back, s);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u8, u8),
        Del(u8),
        TrimLen(u8, bool),
        TrimMin(u8, bool),
    }

    impl quickcheck::Arbitrary for Op {
        fn arbitrary(g: &mut quickcheck::Gen) -> Op {
            match u8::arbitrary(g) % 8 {
                0 => Op::Del(u8::arbitrary(g)),
                1 => Op::TrimLen(u8::arbitrary(g), bool::arbitrary(g)),
                2 => Op::TrimMin(u8::arbitrary(g), bool::arbitrary(g)),
                _ => Op::Add(u8::arbitrary(g) % 4, u8::arbitrary(g)),
            }
        }
    }

    quickcheck! {
        /// Entries always match a plain ordered map; node counters always add up.
        fn model(ops: Vec<Op>) -> TestResult {
            let lim = NodeLimits { max_bytes: 200, max_entries: 7 };
            let mut s = Stream::new();
            let mut model: BTreeMap<u64, u8> = BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Add(gap, v) => {
                        next += gap as u64;
                        let fields = if v % 2 == 0 { f(&[("a", "x")]) } else {
                            vec![(Bytes::from(vec![b'f'; v as usize % 40]), Bytes::from(v.to_string()))]
                        };
                        s.append(StreamId::new(next, 0), fields, lim).unwrap();
                        model.insert(next, v);
                        next += 1;
                    }
                    Op::Del(i) => {
                        let id = i as u64 % next.max(1);
                        let a = s.delete(StreamId::new(id, 0));
                        let b = model.remove(&id).is_some();
                        if a != b { return TestResult::failed(); }
                    }
                    Op::TrimLen(n, approx) => {
                        let before = s.len();
                        let d = s.trim(TrimStrategy::MaxLen(n as u64 % 20), approx, 0);
                        if !approx && s.len() > n as usize % 20 && before > n as usize % 20 {
                            return TestResult::failed();
                        }
                        let keep: Vec<u64> = s.entries.keys().map(|k| k.ms).collect();
                        let removed = model.len() - keep.len();
                        if removed as u64 != d { return TestResult::failed(); }
                        model.retain(|k, _| keep.contains(k));
                    }
                    Op::TrimMin(n, approx) => {
                        let min = StreamId::new(n as u64 % next.max(1), 0);
                        s.trim(TrimStrategy::MinId(min), approx, 0);
                        if !approx && s.entries.keys().next().is_some_and(|k| *k < min) {
                            return TestResult::failed();
                        }
                        let keep: Vec<u64> = s.entries.keys().map(|k| k.ms).collect();
                        model.retain(|k, _| keep.contains(k));
                    }
                }
                let ids: Vec<u64> = s.entries.keys().map(|k| k.ms).collect();
                let mids: Vec<u64> = model.keys().copied().collect();
                if ids != mids { return TestResult::failed(); }
                let live: u64 = s.nodes.values().map(|n| n.live).sum();
                // An exact trim may leave a node whose entries are all deleted (Redis's
                // streamTrim marks entries in place and keeps the node); only XDEL drops a node
                // when its last live entry goes. So empty nodes are allowed here.
                if live != s.len() as u64 {
                    return TestResult::failed();
                }
                // Every live entry falls in a node starting at or before it.
                if let (Some(first), Some(m)) = (s.entries.keys().next(), s.nodes.keys().next()) {
                    if first < m { return TestResult::failed(); }
                }
            }
            TestResult::passed()
        }
    }
}
