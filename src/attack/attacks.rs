//! The attacks. Each is bounded in connections, bytes and time (`Ctx::duration`, longer
//! in the long form) and returns what it measured; the common checks are in `mod.rs`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::wire::{self, XorShift};
use super::{signal, Attack, Ctx, Found, Target};
use crate::control::Role;
use crate::{Codec, ErrorCode, Route};

const fn attack(name: &'static str, target: Target, run: fn(&Ctx) -> Found) -> Attack {
    Attack {
        name,
        target,
        pending: None,
        nofile: None,
        tls: false,
        alone: false,
        run,
    }
}

/// Every attack, in the order they run.
pub(crate) const ALL: &[Attack] = &[
    attack("ping-flood-unread", Target::Node, ping_flood),
    attack("ping-flood-unread", Target::Proxy, ping_flood),
    attack("error-flood-blocked-echo", Target::Node, error_flood),
    attack("error-flood-blocked-echo", Target::Proxy, error_flood),
    attack("small-data-pins-reads", Target::Node, pinned_reads),
    attack("small-data-pins-reads", Target::Proxy, pinned_reads),
    attack("flood-data-unread", Target::Node, flood_data),
    // the flooders' echoes still on their way when the proxy closes them are NO_ROUTE
    // on the node's link and never count (spec §12.3 err.budget-gone-client)
    attack("flood-data-unread", Target::Proxy, flood_data),
    attack("flood-data-in-credit", Target::Proxy, flood_data_in_credit),
    attack("flood-empty-data", Target::Node, flood_empty),
    attack("flood-pong", Target::Node, flood_pong),
    attack("flood-credit", Target::Node, flood_credit),
    attack("flood-hello", Target::Node, flood_hello),
    attack("flood-goaway", Target::Node, flood_goaway),
    attack("zlib-bombs", Target::Node, bombs),
    attack("zlib-bombs", Target::Proxy, bombs),
    attack("garbage", Target::Node, garbage),
    attack("garbage", Target::Proxy, garbage),
    attack("slowloris", Target::Node, slowloris),
    attack("slowloris", Target::Proxy, slowloris),
    Attack {
        tls: true,
        ..attack("half-open-tls", Target::Node, half_open_tls)
    },
    attack("churn", Target::Node, churn),
    attack("churn", Target::Proxy, churn),
    Attack {
        nofile: Some(64),
        ..attack("fd-exhaustion", Target::Node, fd_exhaustion)
    },
    Attack {
        nofile: Some(64),
        ..attack("fd-exhaustion", Target::Proxy, fd_exhaustion)
    },
    attack("forged-x-flag", Target::Proxy, forged_x_flag),
    attack("spoofed-node-hello", Target::Proxy, spoofed_hello),
    attack("goaway-after-burst", Target::Node, goaway_after_burst),
    attack("one-client-many-errors", Target::Proxy, per_source_errors),
    Attack {
        alone: true,
        ..attack("sigterm-mid-stream", Target::Node, sigterm_mid_stream)
    },
    Attack {
        alone: true,
        ..attack("sigterm-mid-stream", Target::Proxy, sigterm_mid_stream)
    },
    Attack {
        alone: true,
        ..attack("second-signal-exits-at-once", Target::Node, second_signal)
    },
];

/// Runs `f(i)` on `n` threads and waits for them.
fn parallel(n: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            thread::spawn(move || f(i))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn client_hello() -> Vec<u8> {
    wire::hello(Role::Client, 0, 1024)
}

/// A route to the echo node: destination 0 on a node, node 2 behind the proxy.
fn echo_route(ctx: &Ctx) -> Route {
    Route::new(if ctx.proxy { 2 } else { 0 }, 1, 0)
}

/// Floods `chunk` on `conns` connections opened with `opening`, never reading.
fn flood_on(ctx: &Ctx, conns: usize, opening: Vec<u8>, chunk: Vec<u8>, max: u64) -> Found {
    let written = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let (addr, deadline) = (ctx.addr, Instant::now() + ctx.duration);
    let (w, c) = (written.clone(), closed.clone());
    let (opening, chunk) = (Arc::new(opening), Arc::new(chunk));
    parallel(conns, move |_| {
        let Ok(s) = wire::open(addr, &opening) else {
            return;
        };
        let n = wire::flood(&s, &chunk, deadline, max);
        w.fetch_add(n, Ordering::Relaxed);
        if n < max && Instant::now() < deadline {
            c.fetch_add(1, Ordering::Relaxed); // the server closed it before the end
        }
    });
    Found {
        notes: vec![format!(
            "{conns} connections wrote {} MiB; {} closed by the server before the end",
            written.load(Ordering::Relaxed) >> 20,
            closed.load(Ordering::Relaxed)
        )],
        ..Found::default()
    }
}

fn repeat(packet: &[u8], bytes: usize) -> Vec<u8> {
    packet.repeat(bytes / packet.len().max(1) + 1)
}

fn budget(ctx: &Ctx) -> u64 {
    if ctx.long {
        4 << 30
    } else {
        512 << 20
    }
}

fn ping_flood(ctx: &Ctx) -> Found {
    let chunk: Vec<u8> = (0..3000).flat_map(wire::ping).collect();
    flood_on(ctx, 4, client_hello(), chunk, budget(ctx))
}

/// The echo of the second DATA waits for credit (the HELLO grants one packet), while
/// ERROR reports to the receiver — which take no credit — queue behind it.
fn error_flood(ctx: &Ctx) -> Found {
    let route = echo_route(ctx);
    let mut opening = wire::hello(Role::Client, 0, 1);
    opening.extend(wire::data(route, b"first"));
    opening.extend(wire::data(route, b"second: waits for credit"));
    let chunk = repeat(&wire::error_to_receiver(), 64 * 1024);
    flood_on(ctx, 2, opening, chunk, budget(ctx))
}

/// One 1-byte DATA per read, padded with PONGs (ignored), never consumed (the HELLO
/// grants the server one packet of credit, so its echoes wait).
fn pinned_reads(ctx: &Ctx) -> Found {
    let (conns, per_conn) = if ctx.long { (4, 1024) } else { (2, 256) };
    let route = echo_route(ctx);
    let mut chunk = wire::data(route, b"x");
    chunk.extend((0..2100).flat_map(wire::pong));
    let addr = ctx.addr;
    let deadline = Instant::now() + ctx.duration * 4;
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = sent.clone();
    let holders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = holders.clone();
    parallel(conns, move |_| {
        let Ok(s) = wire::open(addr, &wire::hello(Role::Client, 0, 1)) else {
            return;
        };
        for _ in 0..per_conn {
            if Instant::now() >= deadline || (&s).write_all(&chunk).is_err() {
                break;
            }
            s2.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_micros(300)); // one read per write
        }
        h2.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    });
    // the connections stay open, the server holding what they sent, for a while
    thread::sleep(Duration::from_millis(300));
    let notes = vec![format!(
        "{conns} connections, {} one-byte DATA in separate reads",
        sent.load(Ordering::Relaxed)
    )];
    drop(holders);
    Found {
        notes,
        ..Found::default()
    }
}

fn flood_data(ctx: &Ctx) -> Found {
    let chunk = repeat(&wire::data(echo_route(ctx), &[0x5A; 1000]), 64 * 1024);
    flood_on(ctx, 4, client_hello(), chunk, budget(ctx))
}

/// Many clients that each send all the credit the proxy granted them (4 MiB) at once and
/// never read their echoes: legal, so nothing closes them. Together they hold more than a
/// link's egress queue; each must get only its share of it, the well-behaved client its
/// own (issue 11: no client behind a proxy can deny service to the others).
fn flood_data_in_credit(ctx: &Ctx) -> Found {
    let conns = if ctx.long { 96 } else { 32 };
    let credit = 4 << 20; // the proxy's initial_credit_bytes
    let packet = wire::data(echo_route(ctx), &[0x5A; 1000]);
    let chunk = Arc::new(packet.repeat(credit / packet.len() - 1));
    let (addr, deadline) = (ctx.addr, Instant::now() + ctx.duration);
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    parallel(conns, move |_| {
        let Ok(s) = wire::open(addr, &client_hello()) else {
            return;
        };
        // all of it, once (within credit), then hold the connection without reading
        w.fetch_add(
            wire::flood(&s, &chunk, deadline, chunk.len() as u64),
            Ordering::Relaxed,
        );
        thread::sleep(deadline.saturating_duration_since(Instant::now()));
    });
    Found {
        notes: vec![format!(
            "{conns} connections wrote {} MiB within their credit, never reading",
            written.load(Ordering::Relaxed) >> 20
        )],
        ..Found::default()
    }
}

fn flood_empty(ctx: &Ctx) -> Found {
    let chunk = repeat(&wire::data(echo_route(ctx), b""), 8 * 1024);
    let mut f = flood_on(ctx, 2, client_hello(), chunk, budget(ctx));
    expect_close(
        ctx,
        &wire::data(echo_route(ctx), b"").repeat(33),
        ErrorCode::FLOOD,
        &mut f,
    );
    f
}

fn flood_pong(ctx: &Ctx) -> Found {
    let chunk: Vec<u8> = (0..3000).flat_map(wire::pong).collect();
    flood_on(ctx, 4, client_hello(), chunk, budget(ctx))
}

fn flood_credit(ctx: &Ctx) -> Found {
    let chunk = repeat(&wire::credit(1, 1), 64 * 1024);
    let mut f = flood_on(ctx, 2, client_hello(), chunk, budget(ctx));
    expect_close(
        ctx,
        &repeat(&wire::credit(u32::MAX / 2, 1), 64),
        ErrorCode::FLOW_CONTROL,
        &mut f,
    );
    f
}

fn flood_hello(ctx: &Ctx) -> Found {
    let again = wire::hello_only(Role::Client, 0, &crate::Limits::default());
    let chunk = repeat(&again, 64 * 1024);
    let mut f = flood_on(ctx, 4, client_hello(), chunk, budget(ctx));
    expect_close(ctx, &again, ErrorCode::UNEXPECTED_PACKET, &mut f);
    f
}

fn flood_goaway(ctx: &Ctx) -> Found {
    let chunk = repeat(&wire::goaway(ErrorCode::NO_ERROR), 64 * 1024);
    flood_on(ctx, 4, client_hello(), chunk, budget(ctx))
}

/// Opens a connection, sends `bytes` after the HELLO and checks the server closes it
/// with GOAWAY `code`.
fn expect_close(ctx: &Ctx, bytes: &[u8], code: ErrorCode, f: &mut Found) {
    let mut opening = client_hello();
    opening.extend_from_slice(bytes);
    match wire::open(ctx.addr, &opening) {
        Ok(s) => {
            let seen = wire::read_until(&s, Instant::now() + Duration::from_secs(5));
            match seen.goaway {
                Some((c, _)) if c == code => {}
                other => f
                    .failures
                    .push(format!("expected GOAWAY {code}, got {other:?}")),
            }
        }
        Err(e) => f.failures.push(format!("connect: {e}")),
    }
}

/// zlib payloads that decompress to 1 MiB (above `max_decompressed`) and 200 KiB (ratio
/// above 100): packet errors, then TOO_MANY_ERRORS; the attacker reconnects.
fn bombs(ctx: &Ctx) -> Found {
    use flate2::{write::ZlibEncoder, Compression};
    let zlib = |n: usize| {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::best());
        let _ = e.write_all(&vec![0u8; n]);
        e.finish().unwrap_or_default()
    };
    let route = echo_route(ctx);
    let mut chunk = wire::data_coded(route, Codec::Zlib, &zlib(1 << 20));
    chunk.extend(wire::data_coded(route, Codec::Zlib, &zlib(200 << 10)));
    let chunk = chunk.repeat(8);
    let addr = ctx.addr;
    let deadline = Instant::now() + ctx.duration;
    let rounds = Arc::new(AtomicU64::new(0));
    let r = rounds.clone();
    parallel(2, move |_| {
        while Instant::now() < deadline {
            let Ok(s) = wire::open(addr, &client_hello()) else {
                return;
            };
            let _ = (&s).write_all(&chunk);
            let _ = wire::read_until(&s, Instant::now() + Duration::from_millis(500));
            r.fetch_add(1, Ordering::Relaxed);
        }
    });
    Found {
        notes: vec![format!(
            "{} connections of 16 bombs each",
            rounds.load(Ordering::Relaxed)
        )],
        ..Found::default()
    }
}

fn garbage(ctx: &Ctx) -> Found {
    let addr = ctx.addr;
    let deadline = Instant::now() + ctx.duration;
    let conns = Arc::new(AtomicU64::new(0));
    let c = conns.clone();
    parallel(4, move |i| {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        let mut buf = vec![0u8; 16 * 1024];
        while Instant::now() < deadline {
            rng.fill(&mut buf);
            // half after a valid HELLO, half from the first byte
            let mut opening = if i % 2 == 0 {
                client_hello()
            } else {
                Vec::new()
            };
            opening.extend_from_slice(&buf);
            if let Ok(s) = wire::open(addr, &opening) {
                let _ = wire::read_until(&s, Instant::now() + Duration::from_millis(200));
            }
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    Found {
        notes: vec![format!(
            "{} connections of 16 KiB of garbage",
            conns.load(Ordering::Relaxed)
        )],
        ..Found::default()
    }
}

/// Connections that send their opening one byte at a time, slowly.
fn slowloris(ctx: &Ctx) -> Found {
    let n = if ctx.long { 400 } else { 100 };
    let opening = client_hello();
    let mut socks = Vec::new();
    for _ in 0..n {
        match TcpStream::connect(ctx.addr) {
            Ok(s) => socks.push(s),
            Err(_) => break,
        }
    }
    let deadline = Instant::now() + ctx.duration;
    let mut sent = 0;
    let mut closed = 0;
    while Instant::now() < deadline && sent < opening.len() {
        closed = 0;
        for s in &socks {
            if (&*s).write_all(&opening[sent..=sent]).is_err() {
                closed += 1;
            }
        }
        sent += 1;
        thread::sleep(Duration::from_millis(500));
    }
    Found {
        notes: vec![format!(
            "{} connections sent {sent} bytes each, one every 500 ms; {closed} closed by the server",
            socks.len()
        )],
        ..Found::default()
    }
}

/// TLS connections that send the start of a ClientHello and stall.
fn half_open_tls(ctx: &Ctx) -> Found {
    let n = if ctx.long { 400 } else { 100 };
    // a TLS record header announcing 512 bytes of handshake, then only 40 of them
    let mut partial = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03,
    ];
    partial.resize(45, 0x42);
    let mut socks = Vec::new();
    for _ in 0..n {
        if let Ok(s) = wire::open(ctx.addr, &partial) {
            socks.push(s);
        }
    }
    thread::sleep(ctx.duration);
    let t = Instant::now() + Duration::from_millis(100);
    let closed = socks.iter().filter(|s| wire::read_until(s, t).eof).count();
    Found {
        notes: vec![format!(
            "{} half-open TLS handshakes; {closed} closed by the server after {:?}",
            socks.len(),
            ctx.duration
        )],
        ..Found::default()
    }
}

fn churn(ctx: &Ctx) -> Found {
    let total: u64 = if ctx.long { 20_000 } else { 1_000 };
    let addr = ctx.addr;
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let deadline = Instant::now() + ctx.duration * 8;
    parallel(4, move |_| {
        while d.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
            if let Ok(s) = wire::open(addr, &client_hello()) {
                let _ = (&s).write_all(&wire::goaway(ErrorCode::NO_ERROR));
                let _ = wire::read_until(&s, Instant::now() + Duration::from_secs(2));
            }
        }
    });
    Found {
        notes: vec![format!(
            "{} connections opened and closed",
            done.load(Ordering::Relaxed).min(total)
        )],
        ..Found::default()
    }
}

/// The server runs with 64 descriptors; the attacker holds 200 connections, then lets
/// them go: accepting must resume (checked by the final fresh echo).
fn fd_exhaustion(ctx: &Ctx) -> Found {
    let mut socks = Vec::new();
    for _ in 0..200 {
        match wire::open(ctx.addr, &client_hello()) {
            Ok(s) => socks.push(s),
            Err(_) => break,
        }
    }
    thread::sleep(ctx.duration);
    let held = socks.len();
    drop(socks);
    thread::sleep(Duration::from_millis(1500)); // the server's backoff is at most 1 s
    Found {
        notes: vec![format!(
            "{held} connections held against a 64-descriptor limit"
        )],
        ..Found::default()
    }
}

/// A client sets X (a source only a trusted proxy may stamp): SOURCE_FORGED, nothing
/// forwarded.
fn forged_x_flag(ctx: &Ctx) -> Found {
    let mut f = Found::default();
    let mut opening = client_hello();
    opening.extend(wire::data_with_source(Route::new(2, 1, 0), 3, b"forged"));
    let Ok(s) = wire::open(ctx.addr, &opening) else {
        f.failures.push("connect failed".into());
        return f;
    };
    let seen = wire::read_until(&s, Instant::now() + Duration::from_secs(3));
    let accepted = u64::from(seen.goaway.map(|g| g.0) != Some(ErrorCode::SOURCE_FORGED));
    f.spoofed = Some(accepted);
    if accepted > 0 {
        f.failures
            .push(format!("forged source not refused: {:?}", seen.goaway));
    }
    f
}

/// A peer without credentials announces role node 3 to the proxy, then sends DATA to
/// node 2 "from node 3": the proxy must refuse the HELLO (BAD_HELLO).
fn spoofed_hello(ctx: &Ctx) -> Found {
    let mut f = Found::default();
    let n = 100u64;
    let mut opening = wire::hello(Role::Node, 3, 1024);
    for i in 0..n {
        opening.extend(wire::data(Route::new(2, 1, i as u8), b"from node 3"));
    }
    let Ok(s) = wire::open(ctx.addr, &opening) else {
        f.failures.push("connect failed".into());
        return f;
    };
    let seen = wire::read_until(&s, Instant::now() + Duration::from_secs(2));
    let refused = seen.goaway.map(|g| g.0) == Some(ErrorCode::BAD_HELLO);
    let accepted = if refused { 0 } else { n };
    f.spoofed = Some(accepted);
    if accepted > 0 {
        f.failures.push(format!(
            "role node from an unauthenticated peer accepted ({:?})",
            seen.goaway
        ));
    }
    f
}

/// 1,000 DATA then GOAWAY in one write: every answer must still arrive.
fn goaway_after_burst(ctx: &Ctx) -> Found {
    let mut f = Found::default();
    let n = 1000u64;
    let mut opening = client_hello();
    for i in 0..n {
        opening.extend(wire::data(echo_route(ctx), &i.to_be_bytes()));
    }
    opening.extend(wire::goaway(ErrorCode::NO_ERROR));
    let Ok(s) = wire::open(ctx.addr, &opening) else {
        f.failures.push("connect failed".into());
        return f;
    };
    let seen = wire::read_until(&s, Instant::now() + Duration::from_secs(10));
    let lost = n.saturating_sub(seen.data.len() as u64);
    f.lost = Some(lost);
    f.notes.push(format!(
        "{} echoes of {n}; the server's GOAWAY: {:?}",
        seen.data.len(),
        seen.goaway
    ));
    if lost > 0 {
        f.failures
            .push(format!("{lost} answers lost on graceful close"));
    }
    f
}

/// One client sends 17 DATA with malformed zlib through the proxy: the node must not
/// close the proxy link (the well-behaved client shares it).
fn per_source_errors(ctx: &Ctx) -> Found {
    let mut opening = client_hello();
    for _ in 0..17 {
        opening.extend(wire::data_coded(
            Route::new(2, 1, 0),
            Codec::Zlib,
            b"not zlib at all",
        ));
    }
    if let Ok(s) = wire::open(ctx.addr, &opening) {
        let _ = wire::read_until(&s, Instant::now() + Duration::from_millis(500));
    }
    thread::sleep(ctx.duration);
    Found::default()
}

/// A client streams DATA; SIGTERM arrives midway. Every DATA the server's GOAWAY
/// counts as delivered must have been answered, and the server must exit 0.
fn sigterm_mid_stream(ctx: &Ctx) -> Found {
    let mut f = Found {
        exit_code: Some(0),
        ..Found::default()
    };
    let Ok(s) = wire::open(ctx.addr, &client_hello()) else {
        f.failures.push("connect failed".into());
        return f;
    };
    let Ok(reader) = s.try_clone() else {
        f.failures.push("clone failed".into());
        return f;
    };
    let route = echo_route(ctx);
    let read =
        thread::spawn(move || wire::read_until(&reader, Instant::now() + Duration::from_secs(20)));
    let pid = ctx.pid;
    let mut sent = 0u64;
    let start = Instant::now();
    // 1,000 DATA (within the server's credit) in batches; SIGTERM after 400
    for batch in 0..20u64 {
        let mut bytes = Vec::new();
        for i in 0..50u64 {
            bytes.extend(wire::data(route, &(batch * 50 + i).to_be_bytes()));
        }
        if (&s).write_all(&bytes).is_err() {
            break;
        }
        sent += 50;
        if sent == 400 {
            signal(pid, "TERM");
        }
        thread::sleep(Duration::from_millis(2));
    }
    let seen = read.join().unwrap_or_default();
    // answer the server's GOAWAY so that it can finish
    let _ = (&s).write_all(&wire::goaway(ErrorCode::NO_ERROR));
    let echoes = seen.data.len() as u64;
    let delivered = seen.goaway.map_or(0, |g| g.1);
    let lost = delivered.saturating_sub(echoes);
    f.lost = Some(lost);
    f.notes.push(format!(
        "sent {sent}, {echoes} echoed, the server's GOAWAY {:?} after {:?}",
        seen.goaway,
        start.elapsed()
    ));
    if seen.goaway.is_none() {
        f.failures.push("no GOAWAY after SIGTERM".into());
    }
    if lost > 0 {
        f.failures
            .push(format!("{lost} DATA counted delivered but not answered"));
    }
    f
}

/// SIGINT while an echo waits for credit (the drain would wait), then SIGINT again:
/// the second exits at once.
fn second_signal(ctx: &Ctx) -> Found {
    let mut f = Found {
        exit_code: Some(130),
        ..Found::default()
    };
    let mut opening = wire::hello(Role::Client, 0, 1);
    opening.extend(wire::data(Route::new(0, 1, 0), b"one"));
    opening.extend(wire::data(Route::new(0, 1, 0), b"two: waits for credit"));
    let Ok(_s) = wire::open(ctx.addr, &opening) else {
        f.failures.push("connect failed".into());
        return f;
    };
    thread::sleep(Duration::from_millis(200));
    signal(ctx.pid, "INT");
    thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    signal(ctx.pid, "INT");
    if !wait_pid(ctx.pid, Duration::from_secs(1)) {
        f.failures
            .push("the second SIGINT did not end the process within 1 s".into());
    }
    f.notes.push(format!(
        "exited {:?} after the second signal",
        start.elapsed()
    ));
    f
}

/// Whether process `pid` ended (or became a zombie) within `timeout`.
fn wait_pid(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                let state = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next());
                if state == Some("Z") {
                    return true;
                }
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}
