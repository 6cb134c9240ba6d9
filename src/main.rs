//! `strongbox-server [strongbox.conf] [--name value ...]`

#[global_allocator]
static ALLOC: strongbox::alloc::ServerAlloc = strongbox::alloc::ServerAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "Strongbox server v={} (redis-compatible {})",
            strongbox::STRONGBOX_VERSION,
            strongbox::REDIS_COMPAT_VERSION
        );
        return;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("Usage: strongbox-server [/path/to/strongbox.conf] [--option value ...]");
        println!("Options have redis.conf names, e.g. --port 6380 --appendfsync always");
        return;
    }
    let code = strongbox::startup::run_server(args);
    std::process::exit(code);
}
