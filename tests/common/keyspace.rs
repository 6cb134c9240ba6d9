//! Reading a server's keyspace through commands, for comparing two servers or a server
//! before and after a restart: every key of a database (SCAN), and each key's value as its
//! type's read commands show it, collections in a canonical order.

use redis::Connection;

/// Every key of the selected database, sorted, once each.
pub fn scan_keys(c: &mut Connection) -> Vec<Vec<u8>> {
    let mut cursor: u64 = 0;
    let mut keys: Vec<Vec<u8>> = vec![];
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(c)
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// How much of a stream [`key_value`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Nothing (an empty value).
    Skip,
    /// Its entries (XRANGE).
    Entries,
    /// Its entries and consumer groups (XINFO GROUPS).
    EntriesAndGroups,
}

/// A key's type (TYPE) and value: a string's bytes, a list in order, a set's members and a
/// hash's field/value pairs sorted, a zset WITHSCORES in rank order, a stream per `streams`.
/// `None` if the key does not exist.
pub fn key_value(c: &mut Connection, k: &[u8], streams: Streams) -> Option<(String, Vec<Vec<u8>>)> {
    let kind: String = redis::cmd("TYPE").arg(k).query(c).unwrap();
    let value: Vec<Vec<u8>> = match kind.as_str() {
        "none" => return None,
        "string" => vec![redis::cmd("GET").arg(k).query(c).unwrap()],
        "list" => redis::cmd("LRANGE").arg(k).arg(0).arg(-1).query(c).unwrap(),
        "set" => {
            let mut v: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(k).query(c).unwrap();
            v.sort();
            v
        }
        "hash" => {
            let v: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(k).query(c).unwrap();
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> =
                v.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            pairs.sort();
            pairs.into_iter().flat_map(|(a, b)| [a, b]).collect()
        }
        "zset" => redis::cmd("ZRANGE")
            .arg(k)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(c)
            .unwrap(),
        "stream" => {
            let mut v = vec![];
            if streams != Streams::Skip {
                let e: redis::Value = redis::cmd("XRANGE")
                    .arg(k)
                    .arg("-")
                    .arg("+")
                    .query(c)
                    .unwrap();
                v.push(format!("{e:?}").into_bytes());
            }
            if streams == Streams::EntriesAndGroups {
                let g: redis::Value = redis::cmd("XINFO").arg("GROUPS").arg(k).query(c).unwrap();
                v.push(format!("{g:?}").into_bytes());
            }
            v
        }
        other => panic!("unexpected type {other}"),
    };
    Some((kind, value))
}
