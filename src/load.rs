//! Replaying the log at start: the commands recovery delivers, applied as a loading client.
//!
//! Every command goes through the command table ([`crate::exec::replay_command`]) except the
//! one that makes up most logs, a plain `SET key value`: while no client can observe the
//! server (no WATCH, no blocked client — always so at start), its only effect is the keyspace
//! write, which is done directly. That saves the table lookup, the option parsing and the
//! existence check (a second hash lookup) per key.

use bytes::Bytes;

use crate::client::Client;
use crate::exec::Server;
use crate::keyspace::{Object, Value};
use crate::types::compact::CompactBytes;

/// Apply one replayed command.
pub fn replay_command(srv: &mut Server, client: &mut Client, argv: &[Bytes]) -> Result<(), String> {
    if let [name, key, value] = argv {
        if name.eq_ignore_ascii_case(b"set") && srv.watched.is_empty() && srv.blocking.is_empty() {
            set_plain(srv, client.db, key, value);
            return Ok(());
        }
    }
    crate::exec::replay_command(srv, client, argv)
}

/// `SET key value` without options, as `cmd::string::set` does it for a loading client:
/// replace the value, drop any TTL, count one change. Notifications are off while loading, and
/// WATCH and blocked clients (the other side effects) are empty — checked by the caller.
fn set_plain(srv: &mut Server, db: usize, key: &Bytes, value: &Bytes) {
    let lru = srv.lru_clock;
    let obj = Object::new(Value::Str(CompactBytes::from_slice(value)), lru);
    srv.dbs[db].insert(&key[..], obj);
    srv.dirty += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn server() -> Server {
        Server::new(Config::from_args(&[]).expect("default config"))
    }

    /// (db, key, type, string value, expiry) of every key.
    type Dump = Vec<(usize, Vec<u8>, String, Vec<u8>, Option<i64>)>;

    fn dump(srv: &Server) -> Dump {
        let mut out = Vec::new();
        for (i, db) in srv.dbs.iter().enumerate() {
            for (k, o) in db.keys.iter() {
                let v = match &o.value {
                    Value::Str(s) => s.to_vec(),
                    _ => Vec::new(),
                };
                out.push((
                    i,
                    k.to_vec(),
                    o.value.type_name().to_string(),
                    v,
                    db.expire_of(k),
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn plain_set_fast_path_matches_the_command_table() {
        let script: &[&[&str]] = &[
            &["SET", "a", "1"],
            &["set", "b", "x"],
            &["SET", "c", "v", "PX", "100000"],
            &["SET", "c", "replaces the TTL"],
            &["RPUSH", "l", "1", "2"],
            &["SET", "l", "replaces a list"],
            &["SELECT", "3"],
            &["SeT", "a", "in db 3"],
            &["SET", "12345", "67890"],
            &["SET", "a", "again", "NX"],
            &["SELECT", "0"],
            &["SET", "b", ""],
        ];
        let mut fast = server();
        let mut slow = server();
        let mut cf = crate::aof::loading_client("test");
        let mut cs = crate::aof::loading_client("test");
        for cmd in script {
            let argv: Vec<Bytes> = cmd
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            replay_command(&mut fast, &mut cf, &argv).expect("fast");
            crate::exec::replay_command(&mut slow, &mut cs, &argv).expect("slow");
        }
        assert_eq!(dump(&fast), dump(&slow));
        assert_eq!(fast.dirty, slow.dirty);
        assert_eq!(cf.db, cs.db);
    }
}
