//! What a Redis 7.0 server without cluster mode answers to the cluster commands (CLUSTER and
//! its subcommands, READONLY, READWRITE, ASKING), and to MODULE, as Strongbox loads no Redis
//! modules: the same errors and replies, so that tools probing for cluster mode or listing
//! modules (`CLUSTER INFO`, `MODULE LIST`) get what they get from redis-server, and COMMAND
//! lists these commands with Redis's arities and flags.

use bytes::Bytes;

use super::{help_reply, sub_lookup, Sub};
use crate::cmd::flags::*;
use crate::ctx::Ctx;
use crate::resp::Reply;

/// Redis's answer to every cluster command when `cluster-enabled` is `no`.
const DISABLED: &str = "ERR This instance has cluster support disabled";

/// CLUSTER's subcommands (Redis 7.0's names, arities and flags; NO_ASYNC_LOADING is not
/// modelled here).
pub(super) const CLUSTER_SUBS: &[Sub] = &[
    ("addslots", -3, ADMIN | STALE),
    ("addslotsrange", -4, ADMIN | STALE),
    ("bumpepoch", 2, ADMIN | STALE),
    ("count-failure-reports", 3, ADMIN | STALE),
    ("countkeysinslot", 3, STALE),
    ("delslots", -3, ADMIN | STALE),
    ("delslotsrange", -4, ADMIN | STALE),
    ("failover", -2, ADMIN | STALE),
    ("flushslots", 2, ADMIN | STALE),
    ("forget", 3, ADMIN | STALE),
    ("getkeysinslot", 4, STALE),
    ("help", 2, LOADING | STALE),
    ("info", 2, STALE),
    ("keyslot", 3, STALE),
    ("links", 2, STALE),
    ("meet", -4, ADMIN | STALE),
    ("myid", 2, STALE),
    ("nodes", 2, STALE),
    ("replicas", 3, ADMIN | STALE),
    ("replicate", 3, ADMIN | STALE),
    ("reset", -2, ADMIN | STALE | NOSCRIPT),
    ("saveconfig", 2, ADMIN | STALE),
    ("set-config-epoch", 3, ADMIN | STALE),
    ("setslot", -4, ADMIN | STALE),
    ("shards", 2, STALE),
    ("slaves", 3, ADMIN | STALE),
    ("slots", 2, STALE),
];

/// CLUSTER: an unknown subcommand or a wrong arity is answered as for any container, then
/// every subcommand (HELP too) gets Redis's "cluster support disabled".
pub(super) fn cluster(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match sub_lookup("cluster", CLUSTER_SUBS, args) {
        Ok(_) => Reply::err(DISABLED),
        Err(e) => e,
    }
}

/// READONLY, READWRITE, ASKING.
pub(super) fn cluster_only(_ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::err(DISABLED)
}

pub(super) const MODULE_SUBS: &[Sub] = &[
    ("help", 2, LOADING | STALE),
    ("list", 2, ADMIN | NOSCRIPT),
    ("load", -3, ADMIN | NOSCRIPT | PROTECTED),
    ("loadex", -3, ADMIN | NOSCRIPT | PROTECTED),
    ("unload", 3, ADMIN | NOSCRIPT | PROTECTED),
];

const MODULE_HELP: &[&str] = &[
    "LIST",
    "    Return a list of loaded modules.",
    "LOAD <path> [<arg> ...]",
    "    Load a module library from <path>, passing to it any optional arguments.",
    "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
    "    Load a module library from <path>, while passing it module configurations and optional arguments.",
    "UNLOAD <name>",
    "    Unload a module.",
];

/// Redis's refusal of MODULE LOAD/LOADEX/UNLOAD under `enable-module-command no` (the
/// default), or `local` from afar.
const MODULE_NOT_ALLOWED: &str = "ERR MODULE command not allowed. If the enable-module-command \
option is set to \"local\", you can run it from a local connection, otherwise you need to set \
this option in the configuration file, and then restart the server.";

/// MODULE: no module is ever loaded. LIST is empty; LOAD and LOADEX fail as a Redis whose
/// module cannot be loaded does (the reason in the log), UNLOAD finds no such module.
pub(super) fn module(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = match sub_lookup("module", MODULE_SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if matches!(sub, "load" | "loadex" | "unload")
        && !crate::exec::protected_action_allowed(ctx.srv, ctx.client, "enable-module-command")
    {
        return Reply::err(MODULE_NOT_ALLOWED);
    }
    match sub {
        "help" => help_reply("module", MODULE_HELP),
        "list" => Reply::Array(vec![]),
        "load" | "loadex" => {
            tracing::warn!(
                "Module {} failed to load: Strongbox does not load Redis modules",
                String::from_utf8_lossy(&args[2])
            );
            Reply::err("ERR Error loading the extension. Please check the server logs.")
        }
        _ => Reply::err("ERR Error unloading module: no such module with that name"),
    }
}
