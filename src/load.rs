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
    let obj = Object::new(Value::Str(Bytes::copy_from_slice(value)), lru);
    srv.dbs[db].insert(key.clone(), obj);
    srv.dirty += 1;
}
