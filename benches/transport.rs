//! `cargo bench --bench transport --features transport-bench [-- --quick]`: the
//! transport engine against tokio + tokio-util (+ tokio-rustls, + snappy); see
//! `fleetwire::transport::bench` for the method.

fn main() {
    let quick = arg("--quick");
    // the profiling entry points: how many messages, of what size, over TLS or not
    let (n, size) = (
        env_or("FW_PROFILE_N", 5_000_000),
        env_or("FW_PROFILE_SIZE", 64),
    );
    let tls = arg("--tls");
    if arg("--sansio") {
        // FW_SANSIO=sink or poll_event: that path only (for profilers); --stamped: the
        // link from a proxy to a node (10-byte headers)
        let only = std::env::var("FW_SANSIO").ok();
        let stamped = arg("--stamped");
        for sink in [false, true] {
            let how = if sink { "sink" } else { "poll_event" };
            if only.as_deref().is_some_and(|o| o != how) {
                continue;
            }
            for size in [64, 1024] {
                let ns = fleetwire::transport::bench::sansio_floor(size, 2_000_000, sink, stamped);
                println!(
                    "sans-IO floor {size}B ({how}, stamped: {stamped}): {ns:.1} ns/packet ({:.0} packets/s)",
                    1e9 / ns
                );
            }
        }
        return;
    }
    if arg("--profile-native") {
        let (rate, cpu) = fleetwire::transport::bench::profile_native(size, tls, n);
        println!("ours {size}B IO-thread path (tls: {tls}): {rate:.0} msg/s, {cpu:.1} CPU ns/msg");
        return;
    }
    if arg("--profile-proxy") {
        let naive = arg("--naive");
        let rate = fleetwire::transport::bench::profile_proxy(size, n, !naive);
        println!("proxy {size}B (re-encoding: {naive}): {rate:.0} msg/s");
        return;
    }
    if arg("--profile-ours") {
        let rate = fleetwire::transport::bench::profile_ours(size, tls, n);
        println!("ours {size}B app-thread path (tls: {tls}): {rate:.0} msg/s");
        return;
    }
    println!(
        "{:<40} {:>14} {:>14} {:>8}  unit",
        "figure", "ours", "baseline", "ratio"
    );
    for r in fleetwire::transport::bench::bench(quick) {
        println!(
            "{:<40} {:>14.1} {:>14.1} {:>7.2}x  {}",
            r.name, r.ours, r.baseline, r.ratio, r.unit
        );
    }
}

/// Whether `name` is one of the command-line arguments.
fn arg(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The number in the environment variable `name`, else `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().expect(name))
}
