//! Criterion benchmarks: header parse and stream deframing of 64-byte packets.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fleetwire::{Deframer, Header, Route, Status};

fn stream_of_64b(n: usize) -> Vec<u8> {
    let mut wire = Vec::with_capacity(n * 64);
    let payload = [0xA5u8; 56];
    for i in 0..n {
        Header::data(Route::new(1 + (i % 64) as u16, 1, i as u8), 56).encode_to_vec(&mut wire);
        wire.extend_from_slice(&payload);
    }
    wire
}

fn bench(c: &mut Criterion) {
    let n = 4096;
    let wire = stream_of_64b(n);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("header_parse_64B", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for chunk in black_box(&wire[..]).chunks_exact(64) {
                if let Ok(Status::Complete(h)) = Header::parse(chunk, u16::MAX) {
                    sum = sum.wrapping_add(u32::from(h.route.node));
                }
            }
            sum
        })
    });
    g.bench_function("packetref_walk_64B", |b| {
        b.iter(|| {
            let mut rest = black_box(&wire[..]);
            let mut count = 0usize;
            while let Ok(Status::Complete((p, r))) = fleetwire::PacketRef::parse(rest, u16::MAX) {
                count += p.payload.len();
                rest = r;
            }
            count
        })
    });
    g.bench_function("packets_iter_64B", |b| {
        b.iter(|| {
            fleetwire::Packets::new(black_box(&wire[..]), u16::MAX)
                .map(|p| p.map_or(0, |p| p.payload.len()))
                .sum::<usize>()
        })
    });
    g.bench_function("deframer_64B", |b| {
        let mut d = Deframer::new(u16::MAX);
        b.iter(|| {
            d.extend(black_box(&wire));
            let mut count = 0usize;
            while let Ok(Some(p)) = d.next_packet() {
                count += p.payload.len();
            }
            count
        })
    });
    g.bench_function("deframer_batch_64B", |b| {
        let mut d = Deframer::new(u16::MAX);
        let mut batch = fleetwire::Batch::default();
        b.iter(|| {
            d.extend(black_box(&wire));
            let mut count = 0usize;
            while let Ok(n) = d.next_batch(&mut batch, 1024) {
                if n == 0 {
                    break;
                }
                count += batch.iter().map(|p| p.payload.len()).sum::<usize>();
            }
            count
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
