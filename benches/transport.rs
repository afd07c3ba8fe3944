//! `cargo bench --bench transport --features transport-bench [-- --quick]`: the
//! transport engine against tokio + tokio-util (+ tokio-rustls, + snappy); see
//! `fleetwire::transport::bench` for the method.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--sansio") {
        // FW_SANSIO=sink or poll_event: that path only (for profilers)
        let only = std::env::var("FW_SANSIO").ok();
        for sink in [false, true] {
            let how = if sink { "sink" } else { "poll_event" };
            if only.as_deref().is_some_and(|o| o != how) {
                continue;
            }
            for size in [64, 1024] {
                let ns = fleetwire::transport::bench::sansio_floor(size, 2_000_000, sink);
                println!(
                    "sans-IO floor {size}B ({how}): {ns:.1} ns/packet ({:.0} packets/s)",
                    1e9 / ns
                );
            }
        }
        return;
    }
    if std::env::args().any(|a| a == "--profile-native") {
        let tls = std::env::args().any(|a| a == "--tls");
        let n =
            std::env::var("FW_PROFILE_N").map_or(5_000_000, |v| v.parse().expect("FW_PROFILE_N"));
        let size =
            std::env::var("FW_PROFILE_SIZE").map_or(64, |v| v.parse().expect("FW_PROFILE_SIZE"));
        let (rate, cpu) = fleetwire::transport::bench::profile_native(size, tls, n);
        println!("ours {size}B IO-thread path (tls: {tls}): {rate:.0} msg/s, {cpu:.1} CPU ns/msg");
        return;
    }
    if std::env::args().any(|a| a == "--profile-proxy") {
        let naive = std::env::args().any(|a| a == "--naive");
        let n =
            std::env::var("FW_PROFILE_N").map_or(5_000_000, |v| v.parse().expect("FW_PROFILE_N"));
        let size =
            std::env::var("FW_PROFILE_SIZE").map_or(64, |v| v.parse().expect("FW_PROFILE_SIZE"));
        let rate = fleetwire::transport::bench::profile_proxy(size, n, !naive);
        println!("proxy {size}B (re-encoding: {naive}): {rate:.0} msg/s");
        return;
    }
    if std::env::args().any(|a| a == "--profile-ours") {
        let n =
            std::env::var("FW_PROFILE_N").map_or(5_000_000, |v| v.parse().expect("FW_PROFILE_N"));
        let size =
            std::env::var("FW_PROFILE_SIZE").map_or(64, |v| v.parse().expect("FW_PROFILE_SIZE"));
        let tls = std::env::args().any(|a| a == "--tls");
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
