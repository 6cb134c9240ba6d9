//! Geo commands against Debian's redis-server 7.0, byte for byte: a few hundred random points
//! (clusters, shared positions, the limits of the coordinates) in a listpack-sized and a
//! skiplist-sized set, and a few hundred random GEOSEARCH / GEOSEARCHSTORE / GEORADIUS[_RO] /
//! GEORADIUSBYMEMBER[_RO] queries (centres, radii from meters to thousands of km, boxes, every
//! unit, COUNT [ANY], ASC/DESC, WITH*, STORE/STOREDIST read back) in RESP2 and RESP3; then the
//! log: GEOADD is logged as ZADD, and the AOF of geo writes replays to the same sorted sets in
//! Strongbox and in redis-server (and Redis's AOF in Strongbox). Complements tests/diff/geo.txt.

mod common;

use common::{escape, RawConn, RedisServer, ServerProcess, StrongboxServer};

/// The generator's seed; a failure prints it (set GEO_SEED to replay another one).
const SEED: u64 = 0x6e0_5eed_2026;
const POINTS_BIG: usize = 360;
const POINTS_SMALL: usize = 60;
const QUERIES: usize = 500;

/// A tiny deterministic generator (xorshift64*), so both servers get the same script.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + self.unit() * (hi - lo)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

const LAT_MAX: f64 = 85.05112878;

/// A coordinate as a client would send it: a few decimals, sometimes many.
fn coord(rng: &mut Rng, v: f64) -> String {
    let decimals = *rng.pick(&[0usize, 2, 4, 6, 6, 6, 8, 12]);
    let s = format!("{v:.decimals$}");
    // Rounding may step past a limit; keep the value valid (errors are tested elsewhere).
    match s.parse::<f64>() {
        Ok(x) if x.abs() <= 180.0 => s,
        _ => format!("{v}"),
    }
}

fn lat_str(rng: &mut Rng, v: f64) -> String {
    let s = coord(rng, v);
    match s.parse::<f64>() {
        Ok(x) if x.abs() <= LAT_MAX => s,
        _ => format!("{}", v.clamp(-LAT_MAX, LAT_MAX)),
    }
}

/// A random position: cluster centres, near them, uniform, and the edges of the map.
fn position(rng: &mut Rng, centres: &[(f64, f64)]) -> (f64, f64) {
    match rng.below(10) {
        0..=4 => {
            let &(x, y) = rng.pick(centres);
            let spread = *rng.pick(&[0.0001, 0.01, 0.3, 3.0]);
            (
                (x + rng.range(-spread, spread)).clamp(-180.0, 180.0),
                (y + rng.range(-spread, spread)).clamp(-LAT_MAX, LAT_MAX),
            )
        }
        5..=7 => (rng.range(-180.0, 180.0), rng.range(-LAT_MAX, LAT_MAX)),
        8 => (
            *rng.pick(&[-180.0, 180.0, -179.9999, 179.9999, 0.0]),
            rng.range(-LAT_MAX, LAT_MAX),
        ),
        _ => (
            rng.range(-180.0, 180.0),
            *rng.pick(&[-LAT_MAX, LAT_MAX, 85.0, -85.0, 80.5, -66.5, 0.0]),
        ),
    }
}

fn units(rng: &mut Rng) -> (&'static str, f64) {
    *rng.pick(&[("m", 1.0), ("km", 1000.0), ("mi", 1609.34), ("ft", 0.3048)])
}

/// A distance from a meter to thousands of kilometers (log-uniform), in `unit`.
fn distance(rng: &mut Rng, per_unit: f64) -> String {
    let meters = 10f64.powf(rng.range(0.0, 7.0));
    let v = meters / per_unit;
    let decimals = *rng.pick(&[0usize, 1, 3, 6]);
    format!("{v:.decimals$}")
}

struct Script {
    cmds: Vec<Vec<String>>,
    /// Commands sent on the RESP3 connection.
    resp3: Vec<bool>,
}

fn push(s: &mut Script, c: Vec<String>, r3: bool) {
    s.cmds.push(c);
    s.resp3.push(r3);
}

fn build(seed: u64) -> Script {
    let mut rng = Rng(seed | 1);
    let mut s = Script {
        cmds: vec![],
        resp3: vec![],
    };
    let centres: Vec<(f64, f64)> = (0..8)
        .map(|i| match i {
            0 => (13.361389, 38.115556),
            1 => (-179.95, 10.0),
            2 => (179.95, -10.0),
            3 => (0.0, 84.9),
            4 => (120.0, -84.9),
            _ => (rng.range(-180.0, 180.0), rng.range(-80.0, 80.0)),
        })
        .collect();
    push(&mut s, vec!["FLUSHALL".into()], false);
    let mut members: Vec<(String, String)> = vec![];
    for (key, n) in [("big", POINTS_BIG), ("small", POINTS_SMALL)] {
        let mut batch = vec!["GEOADD".to_string(), key.to_string()];
        let mut placed: Vec<(String, String)> = vec![];
        for i in 0..n {
            let m = format!("{key}{i:03}");
            let (x, y) = if i > 5 && rng.chance(8) {
                // The very position of an earlier member: ties in distance.
                placed[rng.below(i as u64) as usize].clone()
            } else {
                let (x, y) = position(&mut rng, &centres);
                (coord(&mut rng, x), lat_str(&mut rng, y))
            };
            placed.push((x.clone(), y.clone()));
            batch.push(x);
            batch.push(y);
            batch.push(m.clone());
            members.push((key.to_string(), m));
            if batch.len() >= 2 + 3 * 40 {
                push(&mut s, std::mem::take(&mut batch), false);
                batch = vec!["GEOADD".to_string(), key.to_string()];
            }
        }
        if batch.len() > 2 {
            push(&mut s, batch, false);
        }
        push(
            &mut s,
            vec!["OBJECT".into(), "ENCODING".into(), key.into()],
            false,
        );
        push(
            &mut s,
            vec![
                "ZRANGE".into(),
                key.into(),
                "0".into(),
                "-1".into(),
                "WITHSCORES".into(),
            ],
            false,
        );
    }
    for q in 0..QUERIES {
        let r3 = rng.chance(25);
        let key = if rng.chance(70) { "big" } else { "small" };
        let key_members: Vec<&String> = members
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, m)| m)
            .collect();
        let member = (*rng.pick(&key_members)).clone();
        let (cx, cy) = position(&mut rng, &centres);
        let (cx, cy) = (coord(&mut rng, cx), lat_str(&mut rng, cy));
        let (unit, per) = units(&mut rng);
        let kind = rng.below(6);
        let store = rng.chance(15) && kind != 2 && kind != 5;
        let mut c: Vec<String> = vec![];
        match kind {
            0..=2 => {
                // GEOSEARCH / GEOSEARCHSTORE
                if store {
                    c.extend(["GEOSEARCHSTORE".into(), "dst".into(), key.into()]);
                } else {
                    c.extend(["GEOSEARCH".into(), key.into()]);
                }
                if rng.chance(50) {
                    c.extend(["FROMLONLAT".into(), cx, cy]);
                } else {
                    c.extend(["FROMMEMBER".into(), member]);
                }
                if rng.chance(50) {
                    c.extend(["BYRADIUS".into(), distance(&mut rng, per), unit.into()]);
                } else {
                    c.extend([
                        "BYBOX".into(),
                        distance(&mut rng, per),
                        distance(&mut rng, per),
                        unit.into(),
                    ]);
                }
            }
            3 | 5 => {
                let name = if kind == 5 {
                    "GEORADIUS_RO"
                } else {
                    "GEORADIUS"
                };
                c.extend([
                    name.into(),
                    key.into(),
                    cx,
                    cy,
                    distance(&mut rng, per),
                    unit.into(),
                ]);
            }
            _ => {
                let name = if rng.chance(30) && !store {
                    "GEORADIUSBYMEMBER_RO"
                } else {
                    "GEORADIUSBYMEMBER"
                };
                c.extend([
                    name.into(),
                    key.into(),
                    member,
                    distance(&mut rng, per),
                    unit.into(),
                ]);
            }
        }
        let mut opts: Vec<Vec<String>> = vec![];
        match rng.below(3) {
            0 => {}
            1 => opts.push(vec!["ASC".into()]),
            _ => opts.push(vec!["DESC".into()]),
        }
        if rng.chance(45) {
            let n = *rng.pick(&[1u64, 2, 3, 5, 10, 50, 1000]);
            let mut o = vec!["COUNT".to_string(), n.to_string()];
            if rng.chance(35) {
                o.push("ANY".into());
            }
            opts.push(o);
        }
        if store {
            if kind <= 2 {
                if rng.chance(50) {
                    opts.push(vec!["STOREDIST".into()]);
                }
            } else {
                let w = if rng.chance(50) { "STORE" } else { "STOREDIST" };
                opts.push(vec![w.into(), "dst".into()]);
            }
        } else {
            for w in ["WITHCOORD", "WITHDIST", "WITHHASH"] {
                if rng.chance(40) {
                    opts.push(vec![w.into()]);
                }
            }
        }
        // Options in any order.
        for i in (1..opts.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            opts.swap(i, j);
        }
        for o in opts {
            c.extend(o);
        }
        push(&mut s, c, r3);
        if store {
            push(
                &mut s,
                vec![
                    "ZRANGE".into(),
                    "dst".into(),
                    "0".into(),
                    "-1".into(),
                    "WITHSCORES".into(),
                ],
                r3,
            );
        }
        if q % 5 == 0 {
            let a = (*rng.pick(&key_members)).clone();
            let b = (*rng.pick(&key_members)).clone();
            let (u, _) = units(&mut rng);
            push(
                &mut s,
                vec!["GEODIST".into(), key.into(), a.clone(), b.clone(), u.into()],
                r3,
            );
            push(
                &mut s,
                vec![
                    "GEOPOS".into(),
                    key.into(),
                    a.clone(),
                    "nosuch".into(),
                    b.clone(),
                ],
                r3,
            );
            push(&mut s, vec!["GEOHASH".into(), key.into(), a, b], r3);
        }
    }
    s
}

fn run(srv: &ServerProcess, s: &Script) -> Vec<Vec<u8>> {
    let mut c2: RawConn = srv.conn();
    let mut c3: RawConn = srv.conn();
    c3.cmd(&["HELLO", "3"]);
    s.cmds
        .iter()
        .zip(&s.resp3)
        .map(|(cmd, &r3)| {
            let a: Vec<&str> = cmd.iter().map(String::as_str).collect();
            if r3 {
                c3.cmd(&a)
            } else {
                c2.cmd(&a)
            }
        })
        .collect()
}

#[test]
fn random_searches_match_redis() {
    let seed = std::env::var("GEO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let script = build(seed);
    if std::env::var("GEO_PRINT").is_ok() {
        for (i, c) in script.cmds.iter().enumerate() {
            eprintln!("#{i} {}", c.join(" "));
        }
    }
    let redis = RedisServer::start(&[]);
    let sb = StrongboxServer::start(&[]);
    let want = run(&redis, &script);
    let got = run(&sb, &script);
    let mut bad = vec![];
    let mut nonempty = 0;
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        if w.len() > 4 {
            nonempty += 1;
        }
        if w != g {
            if let Ok(path) = std::env::var("GEO_DUMP") {
                let text = format!(
                    "#{i} {}\nredis:\n{}\nstrongbox:\n{}\n",
                    script.cmds[i].join(" "),
                    escape(w).replace("\\r\\n", "\\r\\n\n"),
                    escape(g).replace("\\r\\n", "\\r\\n\n")
                );
                let _ = std::fs::write(format!("{path}.{i}"), text);
            }
            bad.push(format!(
                "#{i} {:?} (resp{})\n  redis:     {}\n  strongbox: {}",
                script.cmds[i].join(" "),
                if script.resp3[i] { 3 } else { 2 },
                escape(&w[..w.len().min(800)]),
                escape(&g[..g.len().min(800)])
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "seed {seed:#x} (GEO_SEED={seed}): {} of {} replies differ:\n{}",
        bad.len(),
        want.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    // The script must exercise real results, not only empty replies.
    assert!(
        nonempty > script.cmds.len() / 2,
        "seed {seed:#x}: only {nonempty} non-trivial replies"
    );
}

/// Geo writes, as the log replays them.
const WRITES: &[&str] = &[
    "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania 180 85.05112878 ne",
    "GEOADD g NX CH 13.5 38.1 Palermo 12.5 37.9 Trapani",
    "GEOADD g XX CH 13.4 38.1 Palermo 1 1 nosuch",
    "GEOADD g 0 0 gone",
    "ZREM g gone",
    "GEORADIUS g 15 37 300 km STORE r1",
    "GEORADIUS g 15 37 300 km STOREDIST r2 COUNT 2 DESC",
    "GEORADIUSBYMEMBER g Palermo 500 km STORE r3 ASC",
    "GEORADIUSBYMEMBER g Palermo 500 mi STOREDIST r4",
    "GEOSEARCHSTORE r5 g FROMLONLAT 14 37.5 BYBOX 300 300 km",
    "GEOSEARCHSTORE r6 g FROMMEMBER Catania BYRADIUS 200 km STOREDIST COUNT 1 ANY",
    "SET r7 x",
    "GEOSEARCHSTORE r7 g FROMLONLAT 0 0 BYRADIUS 1 m",
    "GEORADIUS nosuch 1 1 1 km STORE r5",
];

fn keyspace(port: u16) -> Vec<(String, Vec<u8>)> {
    let mut c = RawConn::connect(port);
    ["g", "r1", "r2", "r3", "r4", "r5", "r6", "r7"]
        .iter()
        .map(|k| {
            (
                k.to_string(),
                [
                    c.cmd(&["TYPE", k]),
                    c.cmd(&["ZRANGE", k, "0", "-1", "WITHSCORES"]),
                ]
                .concat(),
            )
        })
        .collect()
}

fn apply(port: u16) {
    let mut c = RawConn::connect(port);
    for w in WRITES {
        let a: Vec<&str> = w.split_whitespace().collect();
        c.cmd(&a);
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn incr_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir.join("appendonlydir")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".incr.aof") {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn geo_writes_replay_from_the_log_in_both_servers() {
    let redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut sb = StrongboxServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    apply(redis.port());
    apply(sb.port());
    let expected = keyspace(redis.port());
    assert_eq!(keyspace(sb.port()), expected, "after the writes");

    // GEOADD is logged as the ZADD it ran, as Redis logs it.
    let log = incr_text(sb.dir());
    assert!(log.contains("$4\r\nzadd\r\n"), "no zadd in the log:\n{log}");
    assert!(
        !log.to_ascii_lowercase().contains("geoadd"),
        "GEOADD logged as itself:\n{log}"
    );
    let redis_log = incr_text(redis.dir());
    assert_eq!(
        log.matches("$4\r\nzadd\r\n").count(),
        redis_log.matches("$4\r\nzadd\r\n").count(),
        "strongbox:\n{log}\nredis:\n{redis_log}"
    );

    // Strongbox's log replays in Strongbox…
    sb.restart();
    assert_eq!(keyspace(sb.port()), expected, "after a restart");
    // …and in redis-server.
    let d = tempfile::tempdir().unwrap();
    copy_dir(
        &sb.dir().join("appendonlydir"),
        &d.path().join("appendonlydir"),
    );
    let r2 = RedisServer::start_in(d.path(), &["--appendonly", "yes"]);
    assert_eq!(keyspace(r2.port()), expected, "strongbox's log in redis");
    // Redis's log replays in Strongbox.
    let d = tempfile::tempdir().unwrap();
    copy_dir(
        &redis.dir().join("appendonlydir"),
        &d.path().join("appendonlydir"),
    );
    let s2 = StrongboxServer::start_in(d.path(), &["--appendonly", "yes"]);
    assert_eq!(keyspace(s2.port()), expected, "redis's log in strongbox");
}
