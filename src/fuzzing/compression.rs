//! The `decompress` target: bounded decompression (spec §9.3, §14.2).

use crate::compress::{CompressPolicy, Compressor, DecompressLimits, Decompressor};
use crate::error::ErrorCode;
use crate::header::Codec;

/// Bytes `out` may hold beyond `start + cap` after a call: allocator rounding is not
/// involved (`reserve_exact`), so this only covers a `resize` of a 1-byte probe.
const CAPACITY_SLACK: usize = 64;

/// Output of `decompress` never exceeds `cap = min(max_decompressed, max_ratio × len)`,
/// neither in length nor in reserved capacity (§9.3 [[comp.cap]]); errors leave `out`
/// as it was and carry the right packet-error code (§9.3 [[comp.cap-error]]); snappy
/// agrees with the reference decoder; and what the sender policy produces
/// (`encode_payload`) always decompresses to the original under the same limits.
///
/// Input: `mode` (bits 0–1: codec, 3 = every codec; bit 2: treat the rest as plaintext
/// and round-trip it through `encode_payload`; bits 3–4: the announced codecs mask;
/// bits 5–7: bytes already in `out`), `max_ratio`, `max_decompressed` (u24 BE, not
/// clamped to the §11 bounds), then the payload (at most 65,535 bytes, §4.5).
pub fn decompress(data: &[u8]) {
    let [mode, ratio, d0, d1, d2, payload @ ..] = data else {
        return;
    };
    let payload = &payload[..payload.len().min(u16::MAX as usize)];
    let limits = DecompressLimits {
        max_decompressed: u32::from_be_bytes([0, *d0, *d1, *d2]),
        max_ratio: *ratio,
        codecs: (mode >> 3) & 0x03,
    };
    let prefill = usize::from(mode >> 5) * 3;
    let codecs: &[Codec] = match mode & 0x03 {
        0 => &[Codec::None],
        1 => &[Codec::Snappy],
        2 => &[Codec::Zlib],
        _ => &[Codec::None, Codec::Snappy, Codec::Zlib],
    };
    let mut d = Decompressor::new();
    for &codec in codecs {
        if mode & 0x04 != 0 {
            roundtrip(&mut d, codec, &limits, payload);
        } else {
            bounded(&mut d, codec, &limits, payload, prefill);
        }
    }
}

/// Decompresses arbitrary bytes and checks the bounds and the error contract.
fn bounded(
    d: &mut Decompressor,
    codec: Codec,
    limits: &DecompressLimits,
    input: &[u8],
    prefill: usize,
) {
    let cap = usize::try_from(limits.cap(input.len())).unwrap_or(usize::MAX);
    let mut out = vec![0xA5; prefill];
    let start_cap = out.capacity();
    let result = d.decompress(codec, input, limits, &mut out);
    // spec §9.3 [[comp.cap]]: never allocate more than cap bytes for the output.
    // Codec none is no decompression: the output is the payload, whatever the cap.
    let out_max = if codec == Codec::None {
        input.len()
    } else {
        cap
    };
    let bound = start_cap.max(
        prefill
            .saturating_add(out_max)
            .saturating_add(CAPACITY_SLACK),
    );
    assert!(
        out.capacity() <= bound,
        "{codec:?}: capacity {} above {out_max} (+{prefill} prefill)",
        out.capacity()
    );
    assert!(
        out[..prefill].iter().all(|&b| b == 0xA5),
        "prefix clobbered"
    );
    match result {
        Ok(()) => {
            let produced = &out[prefill..];
            if codec == Codec::None {
                assert_eq!(produced, input);
            } else {
                assert!(
                    produced.len() <= cap,
                    "{codec:?}: {} bytes above cap {cap}",
                    produced.len()
                );
                assert!(limits.accepts(codec));
            }
            if codec == Codec::Snappy {
                // The declared length of a block we accepted is what we produced; only
                // then does the reference decoder run (it allocates the declared length).
                assert_eq!(snappy_declared_len(input), Some(produced.len()));
                assert_eq!(
                    snap::raw::Decoder::new()
                        .decompress_vec(input)
                        .ok()
                        .as_deref(),
                    Some(produced)
                );
            }
        }
        Err(e) => {
            assert_eq!(
                out.len(),
                prefill,
                "{codec:?}: output not restored on error"
            );
            check_error_code(codec, limits, input, cap, e.code());
        }
    }
}

fn check_error_code(
    codec: Codec,
    limits: &DecompressLimits,
    input: &[u8],
    cap: usize,
    code: ErrorCode,
) {
    assert!(code.is_packet_error(), "§9.3 [[comp.packet-error]]: {code}");
    if !limits.accepts(codec) {
        assert_eq!(code, ErrorCode::CODEC_NOT_NEGOTIATED);
        return;
    }
    let size_term = u64::from(limits.max_decompressed);
    let ratio_term = u64::from(limits.max_ratio) * input.len() as u64;
    match code {
        ErrorCode::DECOMPRESSED_TOO_LARGE => assert!(size_term <= ratio_term),
        ErrorCode::RATIO_EXCEEDED => assert!(ratio_term < size_term),
        ErrorCode::DECOMPRESSION_FAILED => {}
        other => panic!("{codec:?}: unexpected {other}"),
    }
    if codec == Codec::Snappy {
        // Differential: a block the reference decoder accepts within the cap is valid.
        // A block declaring more than the cap is never handed to it: the reference
        // decoder allocates the declared length (up to 4 GiB) before decoding.
        let declared = snappy_declared_len(input);
        if declared.is_none_or(|n| n > cap) {
            return;
        }
        if let Ok(v) = snap::raw::Decoder::new().decompress_vec(input) {
            assert!(
                v.len() > cap,
                "snappy block of {} bytes (cap {cap}) rejected: {code}",
                v.len()
            );
        }
    }
}

/// The decompressed length a snappy block declares in its varint preamble, `None` if
/// the preamble is malformed.
fn snappy_declared_len(input: &[u8]) -> Option<usize> {
    snap::raw::decompress_len(input).ok()
}

/// The sender policy never produces a payload its peer would reject (§9.2, §9.3).
fn roundtrip(d: &mut Decompressor, codec: Codec, peer: &DecompressLimits, plain: &[u8]) {
    for threshold in [0, 128] {
        let mut c = Compressor::new(CompressPolicy {
            threshold,
            zlib_level: 1,
        });
        for never in [false, true] {
            let mut wire = Vec::new();
            let used = c
                .encode_payload(codec, never, peer, plain, &mut wire)
                .expect("payload of at most 65,535 bytes always fits");
            assert!(wire.len() <= u16::MAX as usize);
            if never || plain.len() < threshold || !peer.accepts(codec) {
                assert_eq!(used, Codec::None, "§9.2: compressed when it must not");
            }
            if used != Codec::None {
                assert!(
                    wire.len() < plain.len(),
                    "§9.2: compressed form not smaller"
                );
            }
            let mut out = Vec::new();
            d.decompress(used, &wire, peer, &mut out)
                .unwrap_or_else(|e| panic!("{used:?} payload the peer rejects: {e}"));
            assert_eq!(out, plain);
        }
    }
}
