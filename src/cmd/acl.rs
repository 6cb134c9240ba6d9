//! ACL (Redis 7.0): SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT, GENPASS, LOG, DRYRUN,
//! LOAD, SAVE, HELP; and the helpers the command path, AUTH/HELLO and scripts use to deny a
//! command and log it. The model (users, rules, the check) is in `crate::acl`.

use std::sync::Arc;

use bytes::Bytes;

use crate::acl::{self, Denied, User};
use crate::client::Client;
use crate::cmd::flags::*;
use crate::cmd::server::{help_reply, sub_lookup, Sub};
use crate::cmd::{cmd, CommandSpec, KNONE};
use crate::ctx::Ctx;
use crate::exec::Server;
use crate::resp::{Reply, OK};
use crate::util::now_ms;

const SUBS: &[Sub] = &[
    ("cat", -2, NOSCRIPT | LOADING | STALE),
    ("deluser", -3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("dryrun", -4, ADMIN | NOSCRIPT | LOADING | STALE),
    ("genpass", -2, NOSCRIPT | LOADING | STALE),
    ("getuser", 3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("help", 2, LOADING | STALE),
    ("list", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("load", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("log", -2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("save", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("setuser", -3, ADMIN | NOSCRIPT | LOADING | STALE),
    ("users", 2, ADMIN | NOSCRIPT | LOADING | STALE),
    ("whoami", 2, NOSCRIPT | LOADING | STALE),
];

pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    summary: "A container for Access List Control commands",
    since: "6.0.0",
    subcommands: SUBS,
    // The container's flags are not shown (COMMAND reports its subcommands'), but dispatch
    // reads them: not from scripts, and never fed to MONITOR, where ACL SETUSER's passwords
    // would show (the slow log redacts them, as Redis's).
    ..cmd("acl", -2, NOSCRIPT | SKIP_MONITOR, KNONE, "server", acl)
}];

const HELP: &[&str] = &[
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
];

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `acl-pubsub-default allchannels`: new users may use every channel.
pub fn allchannels_default(srv: &Server) -> bool {
    srv.cfg.get("acl-pubsub-default") == "allchannels"
}

/// The NOPERM error of the command path (Redis 7.0's texts).
pub fn noperm_error(spec: &'static CommandSpec, argv: &[Bytes], d: Denied) -> Reply {
    match d {
        Denied::Cmd => Reply::Error(format!(
            "NOPERM this user has no permissions to run the '{}' command",
            fullname(spec, argv)
        )),
        Denied::Key(_) => Reply::err(
            "NOPERM this user has no permissions to access one of the keys used as arguments",
        ),
        Denied::Channel(_) => Reply::err(
            "NOPERM this user has no permissions to access one of the channels used as arguments",
        ),
    }
}

/// A script's error for a denied `redis.call` (Redis 7.0's scriptVerifyACL texts).
pub fn script_denied_error(d: Denied) -> &'static str {
    match d {
        Denied::Cmd => "ERR The user executing the script can't run this command or subcommand",
        Denied::Key(_) => "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments",
        Denied::Channel(_) => "ERR The user executing the script can't publish to the channel mentioned in the command",
    }
}

/// EXEC's error for a queued command the user may no longer run.
pub fn exec_denied_error(spec: &'static CommandSpec, d: Denied) -> Reply {
    let reason = match d {
        Denied::Cmd => "no permission to execute the command or subcommand",
        Denied::Key(_) => "no permission to touch the specified keys",
        Denied::Channel(_) => "no permission to access one of the channels used as arguments",
    };
    Reply::Error(format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and its execution. The user can no longer execute '{}': {reason}", spec.name))
}

/// `get`, or `config|get` for a subcommand.
pub fn fullname(spec: &'static CommandSpec, argv: &[Bytes]) -> String {
    let reg = acl::registry();
    match reg.id_for_call(spec, argv) {
        Some(id) => reg.cmds[id].fullname.clone(),
        None => spec.name.to_string(),
    }
}

/// Add an ACL LOG entry for a denied command (`client` is the one that ran it).
pub fn log_denied(
    srv: &mut Server,
    client: &Client,
    spec: &'static CommandSpec,
    argv: &[Bytes],
    d: Denied,
    context: &'static str,
) {
    let (reason, object) = match d {
        Denied::Cmd => ("command", fullname(spec, argv)),
        Denied::Key(i) => ("key", lossy(&argv[i])),
        Denied::Channel(i) => ("channel", lossy(&argv[i])),
    };
    let username = client.user.name_str();
    log_entry(srv, client, reason, context, object, username, spec, argv);
}

#[allow(clippy::too_many_arguments)]
fn log_entry(
    srv: &mut Server,
    client: &Client,
    reason: &'static str,
    context: &'static str,
    object: String,
    username: String,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) {
    let now = now_ms();
    let mut info = String::new();
    let name = fullname(spec, argv);
    crate::cmd::server::client::client_info(&mut info, client, now, Some((&name, argv)));
    let max = srv.cfg.get_i64("acllog-max-len").max(0) as usize;
    srv.acl
        .log_event(reason, context, object, username, now, info, max);
}

/// AUTH / HELLO AUTH: log `client` in as `user` or answer WRONGPASS (logged as Redis does).
pub fn authenticate(
    srv: &mut Server,
    client: &mut Client,
    spec: &'static CommandSpec,
    argv: &[Bytes],
    user: &[u8],
    pass: &[u8],
) -> Result<(), Reply> {
    if let Some(u) = srv.acl.get(user) {
        if u.check_password(pass) {
            client.user = u.clone();
            client.set_authenticated(true);
            return Ok(());
        }
    }
    let ctx_name = if client.multi.is_some() {
        acl::CTX_MULTI
    } else {
        acl::CTX_TOPLEVEL
    };
    log_entry(
        srv,
        client,
        "auth",
        ctx_name,
        lossy(&argv[0]),
        lossy(user),
        spec,
        argv,
    );
    Err(Reply::err(acl::WRONGPASS))
}

/// Give every client of user `name` (the caller included) the user's new rules.
fn refresh_clients(srv: &mut Server, current: &mut Client, name: &[u8], new: &Arc<User>) {
    for c in srv.clients.values_mut() {
        if c.user.name == name {
            c.user = new.clone();
        }
    }
    if current.user.name == name {
        current.user = new.clone();
    }
}

/// Disconnect every client of user `name` (Redis's ACLFreeUserAndKillClients): the caller
/// after its reply.
fn kill_clients_of(srv: &mut Server, current: &mut Client, name: &[u8]) {
    let ids: Vec<u64> = srv
        .clients
        .values()
        .filter(|c| c.user.name == name && !c.closed)
        .map(|c| c.id)
        .collect();
    let default = srv.acl.default_user();
    for id in ids {
        if let Some(mut c) = srv.clients.remove(&id) {
            c.user = default.clone();
            c.set_authenticated(false);
            c.closed = true;
            srv.forget_client(&mut c);
            srv.clients.insert(id, c);
        }
    }
    if current.user.name == name {
        current.user = default;
        current.set_authenticated(false);
        current.close_after_reply = true;
    }
}

/// Redis 7.0's ACLKillPubsubClientsIfNeeded: a client of `u` subscribed to a channel (or
/// pattern) `u` may no longer use is disconnected.
fn kill_pubsub_clients_if_needed(srv: &mut Server, current: &mut Client, u: &User) {
    if u.allchannels {
        return;
    }
    let lost = |c: &Client| {
        c.subs.iter().any(|ch| !u.channel_allowed(ch, false))
            || c.ssubs.iter().any(|ch| !u.channel_allowed(ch, false))
            || c.psubs.iter().any(|ch| !u.channel_allowed(ch, true))
    };
    let ids: Vec<u64> = srv
        .clients
        .values()
        .filter(|c| c.user.name == u.name && !c.closed && lost(c))
        .map(|c| c.id)
        .collect();
    for id in ids {
        if let Some(mut c) = srv.clients.remove(&id) {
            c.closed = true;
            srv.forget_client(&mut c);
            srv.clients.insert(id, c);
        }
    }
    if current.user.name == u.name && lost(current) {
        current.close_after_reply = true;
    }
}

/// Install a new rule set for the default user after `requirepass` changed (CONFIG SET).
pub fn requirepass_changed(srv: &mut Server) {
    let pass = srv.cfg.get("requirepass").to_string();
    if pass == srv.acl.requirepass {
        return;
    }
    if let Some((_, new)) = srv.acl.set_requirepass(&pass) {
        for c in srv.clients.values_mut() {
            if c.user.name == "default" {
                c.user = new.clone();
            }
        }
    }
}

/// Load the `user` directives of the config file, then the aclfile (start-up). Err: Redis's
/// start-up message.
pub fn load_at_start(srv: &mut Server) -> Result<(), String> {
    let file = srv.cfg.get("aclfile").to_string();
    let lines = srv.cfg.users.clone();
    if !file.is_empty() && !lines.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    let allch = allchannels_default(srv);
    for argv in &lines {
        let name = &argv[0];
        // Redis resets the default user before applying its line.
        let mut base = match srv.acl.get(name.as_bytes()) {
            Some(u) => (**u).clone(),
            None => User::new(name.as_bytes(), allch),
        };
        if name == "default" {
            let _ = base.apply(b"reset", allch);
        }
        let rules: Vec<&[u8]> = argv[1..].iter().map(|a| a.as_bytes()).collect();
        let rules = acl::merge_selector_args(&rules).map_err(|open| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                lossy(&open)
            )
        })?;
        match acl::apply_rules(base, rules.iter().map(|a| &a[..]), allch) {
            Ok(u) => {
                srv.acl
                    .users
                    .insert(Bytes::copy_from_slice(name.as_bytes()), Arc::new(u));
            }
            Err((op, e)) => {
                return Err(format!(
                    "Error loading ACL rule '{}' for the user named '{name}': {e}\nCritical error while loading ACLs. Exiting.",
                    lossy(&op)
                ))
            }
        }
    }
    if !file.is_empty() {
        let users = read_acl_file(&file, allch)
            .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
        srv.acl.users = users;
    }
    Ok(())
}

/// CONFIG REWRITE's `user` lines: every user, the default one included (as Redis).
pub fn config_user_lines(srv: &Server) -> Vec<String> {
    srv.acl
        .users
        .values()
        .map(|u| format!("user {}", u.describe()))
        .collect()
}

fn read_acl_file(
    file: &str,
    allch: bool,
) -> Result<std::collections::BTreeMap<Bytes, Arc<User>>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("Error loading ACLs, opening file '{file}': {e}"))?;
    acl::parse_acl_file(&text, file, allch)
}

fn acl(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = match sub_lookup("acl", SUBS, args) {
        Ok(s) => s,
        Err(e) => return e,
    };
    match sub {
        "setuser" => setuser(ctx, args),
        "getuser" => getuser(ctx, args),
        "deluser" => deluser(ctx, args),
        "list" => Reply::Array(
            ctx.srv
                .acl
                .users
                .values()
                .map(|u| Reply::Bulk(Bytes::from(format!("user {}", u.describe()))))
                .collect(),
        ),
        "users" => Reply::Array(
            ctx.srv
                .acl
                .users
                .keys()
                .map(|k| Reply::Bulk(k.clone()))
                .collect(),
        ),
        "whoami" => Reply::Bulk(ctx.client.user.name.clone()),
        "cat" => cat(args),
        "genpass" => {
            let bits = match args.get(2) {
                None => 256,
                Some(a) => match crate::util::parse_i64(a) {
                    Some(b) if b > 0 && b <= 4096 => b as usize,
                    Some(_) => return Reply::err("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"),
                    None => return Reply::err(crate::cmd::err::NOT_INT),
                },
            };
            if args.len() > 3 {
                return crate::cmd::server::sub_syntax_error("acl", &args[1]);
            }
            Reply::Bulk(Bytes::from(acl::genpass(bits)))
        }
        "log" => log(ctx, args),
        "dryrun" => dryrun(ctx, args),
        "load" => load(ctx),
        "save" => save(ctx),
        _ => help_reply("acl", HELP),
    }
}

fn setuser(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let name = &args[2];
    if !acl::valid_username(name) {
        return Reply::err("ERR Usernames can't contain spaces or null characters");
    }
    let allch = allchannels_default(ctx.srv);
    let base = match ctx.srv.acl.get(name) {
        Some(u) => (**u).clone(),
        None => User::new(name, allch),
    };
    let rules: Vec<&[u8]> = args[3..].iter().map(|a| &a[..]).collect();
    let rules = match acl::merge_selector_args(&rules) {
        Ok(r) => r,
        Err(open) => {
            return Reply::Error(format!(
                "ERR Unmatched parenthesis in acl selector starting at '{}'.",
                lossy(&open)
            ))
        }
    };
    match acl::apply_rules(base, rules.iter().map(|r| &r[..]), allch) {
        Ok(u) => {
            let u = Arc::new(u);
            ctx.srv.acl.users.insert(name.clone(), u.clone());
            refresh_clients(ctx.srv, ctx.client, name, &u);
            kill_pubsub_clients_if_needed(ctx.srv, ctx.client, &u);
            OK
        }
        Err((rule, e)) => Reply::Error(format!(
            "ERR Error in ACL SETUSER modifier '{}': {}",
            lossy(&rule),
            e
        )),
    }
}

fn getuser(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(u) = ctx.srv.acl.get(&args[2]) else {
        return Reply::Nil;
    };
    let s = |x: &str| Reply::Bulk(Bytes::copy_from_slice(x.as_bytes()));
    Reply::Map(vec![
        (
            s("flags"),
            Reply::Set(u.flags().into_iter().map(s).collect()),
        ),
        (
            s("passwords"),
            Reply::Array(u.passwords.iter().map(|p| s(p)).collect()),
        ),
        (s("commands"), s(&u.commands_string())),
        (s("keys"), s(&u.keys_string())),
        (s("channels"), s(&u.channels_string())),
        (
            s("selectors"),
            Reply::Array(
                u.selectors
                    .iter()
                    .map(|sel| {
                        Reply::Map(vec![
                            (s("commands"), s(&sel.commands_string())),
                            (s("keys"), s(&sel.keys_string())),
                            (s("channels"), s(&sel.channels_string())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

fn deluser(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args[2..].iter().any(|n| &n[..] == b"default") {
        return Reply::err("ERR The 'default' user cannot be removed");
    }
    let mut n = 0;
    for name in &args[2..] {
        if ctx.srv.acl.users.remove(&name[..]).is_some() {
            n += 1;
            kill_clients_of(ctx.srv, ctx.client, name);
        }
    }
    Reply::Int(n)
}

fn cat(args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return crate::cmd::server::sub_syntax_error("acl", &args[1]);
    }
    let Some(c) = args.get(2) else {
        return Reply::Array(
            acl::CATEGORIES
                .iter()
                .map(|c| Reply::Bulk(Bytes::from_static(c.as_bytes())))
                .collect(),
        );
    };
    let Some(bit) = std::str::from_utf8(c).ok().and_then(acl::category_bit) else {
        return Reply::Error(format!("ERR Unknown category '{}'", lossy(c)));
    };
    Reply::Array(
        acl::registry()
            .cmds
            .iter()
            .filter(|x| x.cats & bit != 0)
            .map(|x| Reply::Bulk(Bytes::from(x.fullname.clone())))
            .collect(),
    )
}

fn log(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return crate::cmd::server::sub_syntax_error("acl", &args[1]);
    }
    let mut count = 10usize;
    if let Some(a) = args.get(2) {
        if a.eq_ignore_ascii_case(b"reset") {
            ctx.srv.acl.log.clear();
            return OK;
        }
        match crate::util::parse_i64(a) {
            Some(n) => count = n.max(0) as usize,
            None => return Reply::err(crate::cmd::err::NOT_INT),
        }
    }
    let now = now_ms();
    let proto = ctx.client.proto;
    let s = |x: &str| Reply::Bulk(Bytes::copy_from_slice(x.as_bytes()));
    Reply::Array(
        ctx.srv
            .acl
            .log
            .iter()
            .take(count)
            .map(|e| {
                Reply::Map(vec![
                    (s("count"), Reply::Int(e.count as i64)),
                    (s("reason"), s(e.reason)),
                    (s("context"), s(e.context)),
                    (s("object"), s(&e.object)),
                    (s("username"), s(&e.username)),
                    (s("age-seconds"), age(now, e.ctime_ms, proto)),
                    (s("client-info"), s(&e.client_info)),
                ])
            })
            .collect(),
    )
}

/// An entry's age in seconds as Redis 7.0's addReplyDouble writes it (`%.17g`).
fn age(now: i64, ctime: i64, proto: u8) -> Reply {
    let g = crate::resp::fmt_g((now - ctime).max(0) as f64 / 1000.0, 17);
    if proto >= 3 {
        Reply::Raw(Bytes::from(format!(",{g}\r\n")))
    } else {
        Reply::Bulk(Bytes::from(g))
    }
}

fn dryrun(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(u) = ctx.srv.acl.get(&args[2]).cloned() else {
        return Reply::Error(format!("ERR User '{}' not found", lossy(&args[2])));
    };
    let argv = &args[3..];
    let Some(spec) = crate::exec::lookup_command(&argv[0]) else {
        return Reply::Error(format!("ERR Command '{}' not found", lossy(&argv[0])));
    };
    let n = argv.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return crate::cmd::arity_error(spec.name);
    }
    match u.check(spec, argv) {
        Ok(()) => OK,
        Err(Denied::Cmd) => Reply::Bulk(Bytes::from(format!(
            "This user has no permissions to run the '{}' command",
            fullname(spec, argv)
        ))),
        Err(Denied::Key(i)) => Reply::Bulk(Bytes::from(format!(
            "This user has no permissions to access the '{}' key",
            lossy(&argv[i])
        ))),
        Err(Denied::Channel(i)) => Reply::Bulk(Bytes::from(format!(
            "This user has no permissions to access the '{}' channel",
            lossy(&argv[i])
        ))),
    }
}

fn load(ctx: &mut Ctx) -> Reply {
    let file = ctx.srv.cfg.get("aclfile").to_string();
    if file.is_empty() {
        return Reply::err(NO_ACLFILE);
    }
    let users = match read_acl_file(&file, allchannels_default(ctx.srv)) {
        Ok(u) => u,
        Err(e) => return Reply::Error(format!("ERR {e}")),
    };
    // Redis 7.0 frees every user but the default one (whose rules it copies), which
    // disconnects all their clients.
    let old: Vec<Bytes> = ctx
        .srv
        .acl
        .users
        .keys()
        .filter(|k| &k[..] != b"default")
        .cloned()
        .collect();
    ctx.srv.acl.users = users;
    for name in old {
        kill_clients_of(ctx.srv, ctx.client, &name);
    }
    let d = ctx.srv.acl.default_user();
    refresh_clients(ctx.srv, ctx.client, b"default", &d);
    OK
}

fn save(ctx: &mut Ctx) -> Reply {
    let file = ctx.srv.cfg.get("aclfile").to_string();
    if file.is_empty() {
        return Reply::err(NO_ACLFILE);
    }
    let text = acl::acl_file_text(&ctx.srv.acl.users);
    let path = std::path::Path::new(&file);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = match path.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => return Reply::err("ERR There was an error trying to save the ACLs. Please check the server logs for more information"),
    };
    match strongbox_storage::fs::write_file_atomic(
        &strongbox_storage::fs::RealFs,
        &dir,
        &name,
        text.as_bytes(),
    ) {
        Ok(()) => OK,
        Err(e) => {
            tracing::warn!("Opening temp ACL file for ACL SAVE: {e}");
            Reply::err("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::tests::AnyRules;
    use crate::testutil::server_and_client;
    use quickcheck::QuickCheck;

    fn run(srv: &mut Server, c: &mut Client, args: &[&[u8]]) -> Reply {
        crate::testutil::call(srv, c, args, false)
    }

    fn getuser(srv: &mut Server, c: &mut Client, name: &[u8]) -> String {
        format!("{:?}", run(srv, c, &[b"ACL", b"GETUSER", name]))
    }

    /// ACL SETUSER with arbitrary rules (well-formed ones, split selectors, arbitrary bytes)
    /// never panics and is all or nothing: +OK, or an error with the user as it was. GETUSER,
    /// LIST, DRYRUN (with arbitrary arguments) and DELUSER answer for whatever it made.
    #[test]
    fn setuser_arbitrary_rules_never_panic() {
        fn prop(rules: AnyRules, name: u8, default: bool, dry: Vec<Vec<u8>>) -> bool {
            let (mut srv, mut c) = server_and_client();
            let name: &[u8] = if default {
                b"default"
            } else {
                &[b'u', b'0' + name % 3]
            };
            let _ = run(&mut srv, &mut c, &[b"ACL", b"SETUSER", name, b"on", b"~k*"]);
            let before = getuser(&mut srv, &mut c, name);
            let mut argv: Vec<&[u8]> = vec![b"ACL", b"SETUSER", name];
            argv.extend(rules.0 .0.iter().map(|r| &r[..]));
            match run(&mut srv, &mut c, &argv) {
                Reply::Status("OK") => {}
                Reply::Error(e) => {
                    assert!(e.starts_with("ERR "), "{e}");
                    assert_eq!(getuser(&mut srv, &mut c, name), before, "{e}");
                }
                r => panic!("ACL SETUSER answered {r:?}"),
            }
            let _ = run(&mut srv, &mut c, &[b"ACL", b"LIST"]);
            let mut d: Vec<&[u8]> = vec![b"ACL", b"DRYRUN", name, b"get", b"k1"];
            let _ = run(&mut srv, &mut c, &d);
            if !dry.is_empty() {
                d.truncate(3);
                d.extend(dry.iter().map(|a| &a[..]));
                let _ = run(&mut srv, &mut c, &d);
            }
            let _ = run(&mut srv, &mut c, &[b"ACL", b"DELUSER", name]);
            true
        }
        QuickCheck::new()
            .tests(200)
            .quickcheck(prop as fn(AnyRules, u8, bool, Vec<Vec<u8>>) -> bool);
    }
}
