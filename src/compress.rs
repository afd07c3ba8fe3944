//! Per-packet compression (spec §9): snappy raw blocks and zlib streams, each payload on
//! its own, with decompression bounded by the receiver's announced limits.
//!
//! Sans-IO: whole payloads in, bytes appended to a caller-owned `Vec` out.
//! [`Compressor`] and [`Decompressor`] keep codec state between calls only to reuse its
//! memory; it is reset before every packet, so no window spans packets (§9.1, §14.1).
//!
//! ```
//! use fleetwire::compress::{Compressor, DecompressLimits, Decompressor};
//! use fleetwire::Codec;
//!
//! let limits = DecompressLimits::default(); // the receiver's HELLO values
//! let text = b"fleetwire routes packets by header; ".repeat(8);
//! let mut wire = Vec::new();
//! let codec = Compressor::default().encode_payload(Codec::Zlib, false, &limits, &text, &mut wire);
//! assert_eq!(codec, Ok(Codec::Zlib));
//! let mut plain = Vec::new();
//! Decompressor::new().decompress(Codec::Zlib, &wire, &limits, &mut plain).unwrap();
//! assert_eq!(plain, text);
//! ```

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::{Error, ErrorCode};
use crate::header::Codec;

/// The largest payload one packet can carry: Payload Length is 16 bits (spec §4.5).
pub const MAX_WIRE_PAYLOAD: usize = u16::MAX as usize;

/// First output chunk reserved while inflating; later chunks double, up to the cap.
const INFLATE_CHUNK: usize = 16 * 1024;

/// The decompression limits a receiver announced in its HELLO (spec §5.2, §9.3).
///
/// A receiver passes its own values to [`Decompressor::decompress`]; a sender passes the
/// peer's to [`Compressor::encode_payload`], so as never to send what the peer rejects.
///
/// # Examples
///
/// ```
/// use fleetwire::compress::DecompressLimits;
/// use fleetwire::Codec;
///
/// let limits = DecompressLimits::default();
/// assert_eq!((limits.max_decompressed, limits.max_ratio), (262_144, 100));
/// let snappy_only = DecompressLimits { codecs: Codec::Snappy.hello_bit(), ..limits };
/// assert!(limits.accepts(Codec::Zlib) && !snappy_only.accepts(Codec::Zlib));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DecompressLimits {
    /// Largest decompressed payload, in bytes (§11: default 262,144).
    pub max_decompressed: u32,
    /// Largest ratio of decompressed to wire length (§11: default 100).
    pub max_ratio: u8,
    /// The HELLO `codecs` bitmask (§5.2): bit 0 snappy, bit 1 zlib.
    pub codecs: u8,
}

impl Default for DecompressLimits {
    fn default() -> DecompressLimits {
        // spec §11: default limits; both codecs announced
        DecompressLimits {
            max_decompressed: 262_144,
            max_ratio: 100,
            codecs: Codec::Snappy.hello_bit() | Codec::Zlib.hello_bit(),
        }
    }
}

impl DecompressLimits {
    /// Whether these limits announce `codec`; [`Codec::None`] is always accepted (§9.1).
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::compress::DecompressLimits;
    /// use fleetwire::Codec;
    /// let none = DecompressLimits { codecs: 0, ..DecompressLimits::default() };
    /// assert!(none.accepts(Codec::None) && !none.accepts(Codec::Snappy));
    /// ```
    pub fn accepts(&self, codec: Codec) -> bool {
        codec == Codec::None || self.codecs & codec.hello_bit() != 0
    }

    /// The output cap for a payload of `wire_len` bytes, `min(max_decompressed,
    /// max_ratio × wire_len)` (spec §9.3), computed without overflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::compress::DecompressLimits;
    /// let limits = DecompressLimits::default();
    /// assert_eq!((limits.cap(10), limits.cap(65_535)), (1_000, 262_144));
    /// ```
    pub fn cap(&self, wire_len: usize) -> u64 {
        self.size_term().min(self.ratio_term(wire_len))
    }

    fn size_term(&self) -> u64 {
        u64::from(self.max_decompressed)
    }

    fn ratio_term(&self, wire_len: usize) -> u64 {
        let len = u64::try_from(wire_len).unwrap_or(u64::MAX);
        u64::from(self.max_ratio).saturating_mul(len)
    }

    /// The error for output above the cap of a `wire_len`-byte payload.
    fn over_cap(&self, wire_len: usize) -> Error {
        // spec §9.3 [[comp.cap-error]]: DECOMPRESSED_TOO_LARGE if max_decompressed is the
        // smaller term or the terms are equal, else RATIO_EXCEEDED
        if self.size_term() <= self.ratio_term(wire_len) {
            let detail = "decompressed output above max_decompressed";
            Error::Other(ErrorCode::DECOMPRESSED_TOO_LARGE, detail)
        } else {
            let detail = "decompressed output above max_ratio";
            Error::Other(ErrorCode::RATIO_EXCEEDED, detail)
        }
    }
}

/// Why decompression stopped, before the cap error is chosen.
enum Fault {
    OverCap,
    Malformed(&'static str),
}

/// A reusable, bounded payload decompressor (spec §9.3).
///
/// Holds one zlib inflater whose memory is reused; it is reset before every packet.
///
/// # Examples
///
/// ```
/// use fleetwire::compress::{DecompressLimits, Decompressor};
/// use fleetwire::{Codec, ErrorCode};
///
/// let (mut d, limits, mut out) = (Decompressor::new(), DecompressLimits::default(), Vec::new());
/// let hi = [0x78, 0x9c, 0xcb, 0xc8, 0x04, 0x00, 0x01, 0x3b, 0x00, 0xd2]; // zlib.compress(b"hi")
/// d.decompress(Codec::Zlib, &hi, &limits, &mut out).unwrap();
/// assert_eq!(out, b"hi");
/// let err = d.decompress(Codec::Zlib, b"junk", &limits, &mut out).unwrap_err();
/// assert_eq!(err.code(), ErrorCode::DECOMPRESSION_FAILED);
/// ```
#[derive(Debug)]
pub struct Decompressor {
    /// Created at the first zlib payload: an inflater holds tens of KiB, which a
    /// connection that never receives zlib should not pay for.
    inflater: Option<Decompress>,
}

impl Default for Decompressor {
    fn default() -> Decompressor {
        Decompressor::new()
    }
}

impl Decompressor {
    /// A decompressor with a fresh zlib (RFC 1950) inflater.
    ///
    /// # Examples
    ///
    /// ```
    /// let _d = fleetwire::compress::Decompressor::new();
    /// ```
    pub fn new() -> Decompressor {
        Decompressor { inflater: None }
    }

    /// Decompresses one `codec` payload and appends the result to `out`.
    ///
    /// Errors, all packet errors (§9.3, §12.1): CODEC_NOT_NEGOTIATED,
    /// DECOMPRESSED_TOO_LARGE, RATIO_EXCEEDED, DECOMPRESSION_FAILED. On error `out` keeps
    /// its length; its capacity may have grown, by at most the cap.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::compress::{DecompressLimits, Decompressor};
    /// use fleetwire::{Codec, ErrorCode};
    ///
    /// let mut out = Vec::new();
    /// // a snappy block declaring 4 GiB − 1 of output: refused before any allocation
    /// let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    /// let limits = DecompressLimits::default();
    /// let err = Decompressor::new().decompress(Codec::Snappy, &bomb, &limits, &mut out);
    /// assert_eq!(err.unwrap_err().code(), ErrorCode::RATIO_EXCEEDED);
    /// assert_eq!(out.capacity(), 0);
    /// ```
    pub fn decompress(
        &mut self,
        codec: Codec,
        input: &[u8],
        limits: &DecompressLimits,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        // spec §9.3 [[comp.not-negotiated]]: a codec this receiver did not announce
        if !limits.accepts(codec) {
            let detail = "payload codec not announced by this receiver";
            return Err(Error::Other(ErrorCode::CODEC_NOT_NEGOTIATED, detail));
        }
        let cap = usize::try_from(limits.cap(input.len())).unwrap_or(usize::MAX);
        let start = out.len();
        let result = match codec {
            Codec::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            // spec §9.1: an empty payload is neither a zlib stream nor a snappy block
            _ if input.is_empty() => Err(Fault::Malformed("empty compressed payload")),
            Codec::Snappy => unsnappy(input, cap, out),
            Codec::Zlib => self.inflate(input, cap, out),
        };
        result.map_err(|fault| {
            out.truncate(start);
            match fault {
                Fault::OverCap => limits.over_cap(input.len()),
                Fault::Malformed(d) => Error::Other(ErrorCode::DECOMPRESSION_FAILED, d),
            }
        })
    }

    /// Inflates a zlib stream, appending at most `cap` bytes to `out`.
    fn inflate(&mut self, input: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), Fault> {
        let inflater = self.inflater.get_or_insert_with(|| Decompress::new(true));
        // spec §9.1 [[comp.independent]]: no window carried over from the previous packet
        inflater.reset(true);
        let start = out.len();
        loop {
            let filled = out.len() - start;
            let consumed = total_in(inflater);
            let (status, written) = if filled == cap {
                // at the cap: one more byte of output would exceed it
                match step(inflater, &input[consumed..], &mut [0u8; 1]) {
                    (_, 1) => return Err(Fault::OverCap), // spec §9.3 [[comp.cap]]
                    other => other,
                }
            } else {
                // spec §9.3 [[comp.cap]]: grow in bounded chunks, never past the cap
                let add = (cap - filled).min(filled.max(INFLATE_CHUNK));
                out.reserve_exact(add);
                out.resize(start + filled + add, 0);
                let step = step(inflater, &input[consumed..], &mut out[start + filled..]);
                out.truncate(start + filled + step.1);
                step
            };
            match status {
                // spec §9.3 [[comp.malformed]]: bad header, deflate data or Adler-32
                Err(_) => return Err(Fault::Malformed("malformed zlib stream")),
                // spec §9.1: the stream ends exactly at the end of the payload
                Ok(Status::StreamEnd) if total_in(inflater) == input.len() => return Ok(()),
                Ok(Status::StreamEnd) => return Err(Fault::Malformed("bytes after zlib stream")),
                // no progress although there was room for output: input ended early
                Ok(_) if written == 0 && total_in(inflater) == consumed => {
                    return Err(Fault::Malformed("truncated zlib stream"));
                }
                Ok(_) => {}
            }
        }
    }
}

/// One inflate call; returns its status and the number of bytes written to `dst`.
fn step(inflater: &mut Decompress, src: &[u8], dst: &mut [u8]) -> (Result<Status, ()>, usize) {
    let before = inflater.total_out();
    let status = inflater.decompress(src, dst, FlushDecompress::None);
    let written = inflater.total_out() - before;
    // written ≤ dst.len(), so it fits
    (
        status.map_err(drop),
        usize::try_from(written).unwrap_or(dst.len()),
    )
}

fn total_in(inflater: &Decompress) -> usize {
    // at most the input's length, so it fits
    usize::try_from(inflater.total_in()).unwrap_or(usize::MAX)
}

/// Decodes a snappy raw block, appending at most `cap` bytes to `out`.
fn unsnappy(input: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), Fault> {
    // spec §9.3 [[comp.snappy-declared]]: the declared length is compared with the cap
    // before any output is produced or reserved
    let declared = match snap::raw::decompress_len(input) {
        Ok(n) => n,
        // above 2^32 − 1, so above every cap
        Err(snap::Error::TooBig { .. }) => return Err(Fault::OverCap),
        Err(_) => return Err(Fault::Malformed("malformed snappy length")),
    };
    if declared > cap {
        return Err(Fault::OverCap);
    }
    let start = out.len();
    out.reserve_exact(declared);
    out.resize(start + declared, 0);
    // spec §9.3 [[comp.malformed]]: snap rejects bad elements and an output length that
    // differs from the declared one
    match snap::raw::Decoder::new().decompress(input, &mut out[start..]) {
        Ok(n) if n == declared => Ok(()),
        _ => Err(Fault::Malformed("malformed snappy block")),
    }
}

/// The sender's compression settings (spec §9.2).
///
/// # Examples
///
/// ```
/// use fleetwire::compress::CompressPolicy;
/// let policy = CompressPolicy::default();
/// assert_eq!((policy.threshold, policy.zlib_level), (128, 2));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CompressPolicy {
    /// Payloads shorter than this are sent uncompressed (§9.2 [[comp.threshold]]).
    /// Default 128: below it zlib's 6 bytes of framing and the per-packet codec setup
    /// cost about as much as the few bytes saved.
    pub threshold: usize,
    /// zlib level, 0 (store) to 9 (best); above 9 means 9. Default 2: the zlib-rs
    /// backend's level 1 uses static Huffman codes only ("deflate_quick"); on English
    /// text it left 54 % of the input against 42 % at level 2, for ~10 % more time.
    pub zlib_level: u32,
}

impl Default for CompressPolicy {
    fn default() -> CompressPolicy {
        CompressPolicy {
            threshold: crate::limits::COMPRESS_THRESHOLD,
            zlib_level: 2,
        }
    }
}

/// A reusable payload compressor applying the sender policy of spec §9.2.
///
/// Holds one zlib deflater whose memory is reused; it is reset before every packet.
///
/// # Examples
///
/// ```
/// use fleetwire::compress::{CompressPolicy, Compressor};
/// use fleetwire::Codec;
///
/// let mut c = Compressor::new(CompressPolicy { threshold: 0, zlib_level: 6 });
/// let mut out = Vec::new();
/// c.compress(Codec::Zlib, b"", &mut out).unwrap();
/// assert_eq!(out, [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // as CPython's zlib
/// ```
#[derive(Debug)]
pub struct Compressor {
    policy: CompressPolicy,
    /// Created at the first zlib payload: a deflater holds a few hundred KiB (window
    /// and hash tables), which a connection that never sends zlib should not pay for.
    deflater: Option<Compress>,
}

impl Default for Compressor {
    fn default() -> Compressor {
        Compressor::new(CompressPolicy::default())
    }
}

impl Compressor {
    /// A compressor with `policy`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::compress::{CompressPolicy, Compressor};
    /// let c = Compressor::new(CompressPolicy { threshold: 512, zlib_level: 6 });
    /// assert_eq!(c.policy().threshold, 512);
    /// ```
    pub fn new(policy: CompressPolicy) -> Compressor {
        Compressor {
            policy,
            deflater: None,
        }
    }

    /// The policy this compressor was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::compress::Compressor;
    /// assert_eq!(Compressor::default().policy().zlib_level, 2);
    /// ```
    pub fn policy(&self) -> CompressPolicy {
        self.policy
    }

    /// Appends `input` compressed with `codec` to `out`, unconditionally (no policy);
    /// [`Codec::None`] copies.
    ///
    /// Fails, with INTERNAL_ERROR and `out` unchanged, only if the codec library does
    /// (snappy refuses inputs above 2^32 − 1 bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::compress::{Compressor, DecompressLimits, Decompressor};
    /// use fleetwire::Codec;
    ///
    /// let mut wire = Vec::new();
    /// Compressor::default().compress(Codec::Snappy, b"abcabcabcabc", &mut wire).unwrap();
    /// let (mut plain, limits) = (Vec::new(), DecompressLimits::default());
    /// Decompressor::new().decompress(Codec::Snappy, &wire, &limits, &mut plain).unwrap();
    /// assert_eq!(plain, b"abcabcabcabc");
    /// ```
    pub fn compress(&mut self, codec: Codec, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let result = match codec {
            Codec::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            Codec::Snappy => snappy(input, out),
            Codec::Zlib => self.deflate(input, out),
        };
        result.map_err(|()| {
            out.truncate(start);
            Error::Other(ErrorCode::INTERNAL_ERROR, "compression failed")
        })
    }

    fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
        let level = Compression::new(self.policy.zlib_level.min(9));
        let deflater = self
            .deflater
            .get_or_insert_with(|| Compress::new(level, true));
        // spec §9.1 [[comp.independent]]: every payload starts a new zlib stream
        deflater.reset();
        // zlib's compressBound, so that one call normally suffices
        out.reserve(input.len() + (input.len() >> 12) + (input.len() >> 14) + 64);
        loop {
            let consumed = usize::try_from(deflater.total_in()).map_err(drop)?;
            let rest = &input[consumed..];
            match deflater.compress_vec(rest, out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return Ok(()),
                Ok(_) => out.reserve(1024),
                Err(_) => return Err(()),
            }
        }
    }

    /// Appends `input` to `out` as one DATA payload, compressed with `preferred` when the
    /// sender policy allows, and returns the codec used, for the header's Cod field.
    ///
    /// `peer` holds the limits the peer announced in HELLO. The payload is sent as it is
    /// ([`Codec::None`]) when `never_compress` (the N flag) is set, when `peer` did not
    /// announce `preferred`, below [`CompressPolicy::threshold`] (§9.2), and when the
    /// compressed form is not smaller, does not fit one packet, or exceeds the peer's cap
    /// (§9.3: the peer would reject it).
    ///
    /// An input over [`MAX_WIRE_PAYLOAD`] bytes can be sent only compressed; when it
    /// cannot, this returns `Error::Other(ErrorCode::INTERNAL_ERROR, "payload too
    /// large")`: a local misuse, not a fault of the peer. The caller still checks the
    /// result against the peer's `max_payload` (§4.5).
    ///
    /// # Examples
    ///
    /// ```
    /// use fleetwire::compress::{Compressor, DecompressLimits};
    /// use fleetwire::Codec;
    ///
    /// let (mut c, peer, mut out) = (Compressor::default(), DecompressLimits::default(), vec![]);
    /// let text = b"the quick brown fox jumps over the lazy dog. ".repeat(5);
    /// let used = c.encode_payload(Codec::Snappy, false, &peer, &text, &mut out);
    /// assert_eq!(used, Ok(Codec::Snappy));
    /// assert!(out.len() < text.len());
    /// out.clear(); // a payload marked N = 1 is never compressed
    /// let used = c.encode_payload(Codec::Snappy, true, &peer, &text, &mut out);
    /// assert_eq!(used, Ok(Codec::None));
    /// assert_eq!(out, text);
    /// ```
    pub fn encode_payload(
        &mut self,
        preferred: Codec,
        never_compress: bool,
        peer: &DecompressLimits,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Codec, Error> {
        // spec §9.2 [[comp.never]]: never compress a payload marked N = 1
        // spec §9.2 [[comp.send-negotiated]]: only a codec the peer announced
        // spec §9.2 [[comp.threshold]]: skip payloads below the threshold
        let attempt = !never_compress
            && preferred != Codec::None
            && peer.accepts(preferred)
            && input.len() >= self.policy.threshold;
        if attempt {
            let start = out.len();
            self.compress(preferred, input, out)?;
            let wire = out.len() - start;
            // spec §9.2 [[comp.threshold]]: only if smaller; §4.5: fits one packet;
            // §9.3: within the peer's cap
            let within_cap = u64::try_from(input.len()).is_ok_and(|n| n <= peer.cap(wire));
            if wire < input.len() && wire <= MAX_WIRE_PAYLOAD && within_cap {
                return Ok(preferred);
            }
            out.truncate(start);
        }
        // spec §4.5: Payload Length is 16 bits
        if input.len() > MAX_WIRE_PAYLOAD {
            return Err(Error::Other(ErrorCode::INTERNAL_ERROR, "payload too large"));
        }
        out.extend_from_slice(input);
        Ok(Codec::None)
    }
}

fn snappy(input: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    let max = snap::raw::max_compress_len(input.len());
    if max == 0 {
        return Err(()); // above snappy's 2^32 − 1 input limit
    }
    let start = out.len();
    out.resize(start + max, 0);
    let n = snap::raw::Encoder::new()
        .compress(input, &mut out[start..])
        .map_err(drop)?;
    out.truncate(start + n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Codec::{Snappy, Zlib};

    const TOO_LARGE: ErrorCode = ErrorCode::DECOMPRESSED_TOO_LARGE;
    const RATIO: ErrorCode = ErrorCode::RATIO_EXCEEDED;
    const FAILED: ErrorCode = ErrorCode::DECOMPRESSION_FAILED;
    const ALL: u8 = 3;

    fn lim(max_decompressed: u32, max_ratio: u8) -> DecompressLimits {
        let codecs = ALL;
        DecompressLimits {
            max_decompressed,
            max_ratio,
            codecs,
        }
    }

    fn pack(codec: Codec, data: &[u8]) -> Vec<u8> {
        let policy = CompressPolicy {
            threshold: 0,
            zlib_level: 6,
        };
        let mut out = Vec::new();
        Compressor::new(policy)
            .compress(codec, data, &mut out)
            .unwrap();
        out
    }

    /// Decompresses after a prefix; an error must leave `out` as it was.
    fn unpack(codec: Codec, wire: &[u8], l: DecompressLimits) -> Result<Vec<u8>, ErrorCode> {
        let mut out = b"keep".to_vec();
        let result = Decompressor::new().decompress(codec, wire, &l, &mut out);
        let result = result.map_err(|e| e.code());
        assert!(out.starts_with(b"keep") && (result.is_ok() || out.len() == 4));
        result.map(|()| out.split_off(4))
    }

    /// Decompressed length of a zlib payload under (max_decompressed, max_ratio).
    fn z(wire: &[u8], max: u32, ratio: u8) -> Result<usize, ErrorCode> {
        unpack(Zlib, wire, lim(max, ratio)).map(|v| v.len())
    }

    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        };
        (0..n).map(|_| next()).collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        let byte = |i: usize| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        (0..s.len() / 2).map(byte).collect()
    }

    fn zeros(n: usize) -> Vec<u8> {
        pack(Zlib, &vec![0; n])
    }

    #[test]
    fn roundtrip_both_codecs() {
        let text = b"fleetwire payload, fleetwire payload!".repeat(50);
        let random = noise(70_000);
        for codec in [Snappy, Zlib] {
            for data in [&text, &random] {
                let wire = pack(codec, data);
                assert_eq!(unpack(codec, &wire, lim(1 << 20, 100)).as_ref(), Ok(data));
            }
        }
        let raw = unpack(Codec::None, b"as is", lim(1024, 1));
        assert_eq!(raw, Ok(b"as is".to_vec()));
    }

    #[test]
    fn decodes_cpython_zlib_streams() {
        // Produced at test-writing time by CPython 3.11.7 with zlib 1.2.13:
        // python3 -c "import zlib,sys; sys.stdout.buffer.write(zlib.compress(DATA, LEVEL))"
        // (DATA, LEVEL): (b"", 6), (b"hello fleetwire", 6), (b"abc"*16, 9), (b"fleetwire "*20, 1)
        let cases: [(&str, Vec<u8>); 4] = [
            ("789c030000000001", vec![]),
            (
                "789ccb48cdc9c95748cb494d2d29cf2c4a05002ef905fc",
                b"hello fleetwire".to_vec(),
            ),
            ("78da4b4c4a4e24050100c24f1261", b"abc".repeat(16)),
            (
                "78014bcb494d2d29cf2c4a55481bd22c00bda64e0d",
                b"fleetwire ".repeat(20),
            ),
        ];
        for (wire, data) in cases {
            assert_eq!(unpack(Zlib, &hex(wire), lim(262_144, 100)), Ok(data));
        }
    }

    #[test]
    fn accepts_output_at_max_decompressed_and_rejects_one_more() {
        let wire = zeros(4096);
        assert!(4096 < 255 * wire.len(), "the size term is the smaller one");
        assert_eq!(z(&wire, 4096, 255), Ok(4096));
        assert_eq!(z(&wire, 4095, 255), Err(TOO_LARGE));
        assert_eq!(z(&zeros(4097), 4096, 255), Err(TOO_LARGE));
    }

    /// Zeros whose zlib form of `len` bytes has `n == ratio × len + rem` output bytes.
    fn zeros_with_ratio_rem(rem: usize) -> (Vec<u8>, u8) {
        let found = (1000..20_000).find_map(|n| {
            let wire = zeros(n);
            let ratio = u8::try_from(n / wire.len()).ok()?;
            (n % wire.len() == rem).then_some((wire, ratio))
        });
        found.expect("some length fits")
    }

    #[test]
    fn accepts_output_at_max_ratio_and_rejects_one_more() {
        let (wire, ratio) = zeros_with_ratio_rem(0);
        let exact = usize::from(ratio) * wire.len();
        assert_eq!(z(&wire, 1 << 24, ratio), Ok(exact));
        let (wire, ratio) = zeros_with_ratio_rem(1);
        assert_eq!(z(&wire, 1 << 24, ratio), Err(RATIO));
    }

    #[test]
    fn equal_terms_report_decompressed_too_large() {
        let wire = zeros(50_000);
        let by_ratio = 10 * u32::try_from(wire.len()).unwrap();
        assert_eq!(z(&wire, by_ratio, 10), Err(TOO_LARGE));
        assert_eq!(z(&wire, by_ratio + 1, 10), Err(RATIO));
        assert_eq!(z(&wire, by_ratio - 1, 10), Err(TOO_LARGE));
    }

    #[test]
    fn zlib_bomb_never_allocates_past_cap() {
        let (wire, l, mut out) = (zeros(8 << 20), lim(262_144, 100), Vec::new());
        let err = Decompressor::new().decompress(Zlib, &wire, &l, &mut out);
        assert_eq!(err.unwrap_err().code(), TOO_LARGE);
        assert!(
            out.capacity() as u64 <= l.cap(wire.len()),
            "{}",
            out.capacity()
        );
    }

    #[test]
    fn snappy_declared_length_checked_against_cap_before_allocating() {
        let data = vec![7u8; 3000];
        let wire = pack(Snappy, &data);
        assert_eq!(unpack(Snappy, &wire, lim(3000, 255)), Ok(data));
        assert_eq!(unpack(Snappy, &wire, lim(2999, 255)), Err(TOO_LARGE));
        let cases = [
            (&[0xE9, 0x07, 0xff, 0xff, 0xff][..], 1000, TOO_LARGE), // 1001, bad body
            (&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00], 1 << 24, RATIO), // 2^32 − 1
            (&[0xff, 0xff, 0xff, 0xff, 0x7f, 0x00], 1 << 24, RATIO), // 2^35 − 1
        ];
        for (bomb, max, code) in cases {
            let mut out = Vec::new();
            let err = Decompressor::new().decompress(Snappy, bomb, &lim(max, 255), &mut out);
            assert_eq!((err.unwrap_err().code(), out.capacity()), (code, 0));
        }
    }

    #[test]
    fn rejects_malformed_zlib() {
        let wire = pack(Zlib, &b"some text to compress, some text".repeat(20));
        let mut bad_sum = wire.clone();
        *bad_sum.last_mut().unwrap() ^= 1;
        let trailing = [&wire[..], b"x"].concat();
        let raw_snappy = pack(Snappy, b"abc");
        // CPython zlib.compressobj(zdict=b"hello world"): FDICT set, no dictionary is shared
        let fdict = hex("78bb1a0b045dcb403015c06c003b200691");
        let cases: [&[u8]; 9] = [
            &fdict,
            &wire[..wire.len() - 1], // truncated in the Adler-32
            &wire[..wire.len() / 2], // truncated in the deflate data
            &wire[..1],              // truncated in the header
            &trailing,
            &bad_sum,
            b"not zlib",
            &raw_snappy,
            b"",
        ];
        for (i, case) in cases.into_iter().enumerate() {
            assert_eq!(z(case, 262_144, 100), Err(FAILED), "case {i}");
        }
    }

    #[test]
    fn cap_wins_over_later_malformation() {
        let mut wire = zeros(4096);
        *wire.last_mut().unwrap() ^= 1; // bad Adler-32
        assert_eq!(z(&wire, 2000, 255), Err(TOO_LARGE));
        // at exactly the cap the output did not exceed it: the checksum is reported
        assert_eq!(z(&wire, 4096, 255), Err(FAILED));
    }

    #[test]
    fn rejects_malformed_snappy() {
        let wire = pack(Snappy, b"hello hello hello");
        let mut longer = wire.clone();
        longer[0] += 1; // declares one byte more than the elements produce
        let short = &wire[..wire.len() - 1];
        let cases: [&[u8]; 5] = [short, &longer, &[0x05, 0xff, 0xff], &[0x80; 6], b""];
        for (i, case) in cases.into_iter().enumerate() {
            let result = unpack(Snappy, case, lim(262_144, 100));
            assert_eq!(result, Err(FAILED), "case {i}");
        }
    }

    #[test]
    fn rejects_codec_not_negotiated() {
        let snappy_only = DecompressLimits {
            codecs: 1,
            ..lim(262_144, 100)
        };
        let nothing = DecompressLimits {
            codecs: 0,
            ..snappy_only
        };
        let refused = Err(ErrorCode::CODEC_NOT_NEGOTIATED);
        assert_eq!(unpack(Zlib, &pack(Zlib, b"abc"), snappy_only), refused);
        assert_eq!(unpack(Snappy, &pack(Snappy, b"abc"), nothing), refused);
        assert_eq!(unpack(Codec::None, b"raw", nothing), Ok(b"raw".to_vec()));
    }

    #[test]
    fn decompressor_state_does_not_leak_across_packets() {
        let (mut d, l, mut out) = (Decompressor::new(), lim(262_144, 100), Vec::new());
        let wire = pack(Zlib, &b"first packet ".repeat(10));
        assert!(d
            .decompress(Zlib, &wire[..wire.len() / 2], &l, &mut out)
            .is_err());
        d.decompress(Zlib, &wire, &l, &mut out).unwrap();
        d.decompress(Zlib, &wire, &l, &mut out).unwrap();
        assert_eq!(out, b"first packet ".repeat(20));
    }

    /// Encodes with zlib preferred, checks the peer accepts it, returns the codec used.
    fn send(c: &mut Compressor, never: bool, peer: DecompressLimits, input: &[u8]) -> Codec {
        let mut out = Vec::new();
        let codec = c
            .encode_payload(Zlib, never, &peer, input, &mut out)
            .unwrap();
        assert_eq!(unpack(codec, &out, peer).unwrap(), input);
        codec
    }

    #[test]
    fn compressor_threshold_is_inclusive() {
        let mut c = Compressor::new(CompressPolicy {
            threshold: 200,
            zlib_level: 1,
        });
        let (text, peer) = (b"abcdefgh".repeat(25), lim(262_144, 100));
        assert_eq!(send(&mut c, false, peer, &text), Zlib);
        assert_eq!(send(&mut c, false, peer, &text[..199]), Codec::None);
    }

    #[test]
    fn compressor_honours_never_compress_and_peer_codecs() {
        let (mut c, text) = (Compressor::default(), b"abcdefgh".repeat(64));
        let snappy_only = DecompressLimits {
            codecs: 1,
            ..lim(262_144, 100)
        };
        assert_eq!(send(&mut c, true, lim(262_144, 100), &text), Codec::None);
        assert_eq!(send(&mut c, false, snappy_only, &text), Codec::None);
        let used = c.encode_payload(Snappy, false, &snappy_only, &text, &mut vec![]);
        assert_eq!(used, Ok(Snappy));
    }

    #[test]
    fn compressor_falls_back_when_not_smaller_or_peer_would_reject() {
        let (mut c, peer) = (Compressor::default(), lim(262_144, 100));
        assert_eq!(send(&mut c, false, peer, &noise(1000)), Codec::None);
        // 60,000 zeros compress far beyond a ratio of 100: the peer would refuse them
        assert_eq!(send(&mut c, false, peer, &[0; 60_000]), Codec::None);
        assert_eq!(send(&mut c, false, lim(262_144, 255), &[0; 1000]), Zlib);
    }

    #[test]
    fn compressor_sends_input_above_wire_limit_only_compressed() {
        let (mut c, peer) = (Compressor::default(), lim(262_144, 100));
        let number = |i: u32| format!("{i} ").into_bytes();
        let text: Vec<u8> = (0..20_000).flat_map(number).collect();
        assert!(text.len() > MAX_WIRE_PAYLOAD);
        assert_eq!(send(&mut c, false, peer, &text), Zlib);
        let mut out = Vec::new();
        for (input, never) in [(&noise(70_000), false), (&text, true)] {
            let err = c.encode_payload(Zlib, never, &peer, input, &mut out);
            let code = err.unwrap_err().code();
            assert_eq!((code, out.len()), (ErrorCode::INTERNAL_ERROR, 0));
        }
    }
}
