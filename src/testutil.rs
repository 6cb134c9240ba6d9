//! Fixtures for the library's unit tests: a server without listeners or log, and a client to
//! run commands through `exec::call` as a connection would.

use std::sync::Arc;

use bytes::Bytes;

use crate::client::{Client, ConnShared};
use crate::config::Config;
use crate::exec::Server;
use crate::resp::Reply;

/// A server with the default configuration and one client (id 1; its replies are dropped).
pub fn server_and_client() -> (Server, Client) {
    let srv = Server::new(Config::from_args(&[]).expect("default config"));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let c = Client::new(
        1,
        tx,
        Arc::new(ConnShared::default()),
        "t".into(),
        "t".into(),
        0,
        false,
    );
    (srv, c)
}

/// Run one command (`in_exec`: as EXEC runs it) and return its reply.
pub fn call<A: AsRef<[u8]>>(srv: &mut Server, c: &mut Client, args: &[A], in_exec: bool) -> Reply {
    let argv: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_ref()))
        .collect();
    let spec = crate::exec::lookup_command(&argv[0]).expect("command");
    crate::exec::call(srv, c, spec, &argv, in_exec)
}
