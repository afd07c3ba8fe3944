//! `cargo bench --bench transport --features transport-bench [-- --quick]`: the
//! transport engine against tokio + tokio-util (+ tokio-rustls, + snappy); see
//! `fleetwire::transport::bench` for the method.

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--sansio") {
        for size in [64, 1024] {
            let ns = fleetwire::transport::bench::sansio_floor(size, 2_000_000);
            println!(
                "sans-IO floor {size}B: {ns:.1} ns/packet ({:.0} packets/s)",
                1e9 / ns
            );
        }
        return;
    }
    if std::env::args().any(|a| a == "--profile-ours") {
        let rate = fleetwire::transport::bench::profile_ours(64, false, 5_000_000);
        println!("ours 64B plaintext: {rate:.0} msg/s");
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
