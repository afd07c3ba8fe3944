//! Compression vectors (§9): decode-only, from CPython's zlib and hand-assembled snappy
//! raw blocks.

use serde_json::{json, Value};

use super::build::*;
use super::json::{hex, unhex};
use super::zlib_data::*;

#[derive(Clone, Copy)]
struct Lim {
    max_decompressed: u32,
    max_ratio: u8,
    codecs: u8,
}

const DEFAULT: Lim = Lim {
    max_decompressed: 262_144,
    max_ratio: 100,
    codecs: 3,
};

impl Lim {
    fn json(self) -> Value {
        json!({ "max_decompressed": self.max_decompressed, "max_ratio": self.max_ratio, "codecs": self.codecs })
    }
    fn md(self, max_decompressed: u32) -> Lim {
        Lim {
            max_decompressed,
            ..self
        }
    }
    fn ratio(self, max_ratio: u8) -> Lim {
        Lim { max_ratio, ..self }
    }
    fn codecs(self, codecs: u8) -> Lim {
        Lim { codecs, ..self }
    }
}

fn z(hex_str: &str) -> Vec<u8> {
    unhex(hex_str).expect("embedded hex is valid")
}

fn c(id: &str, reqs: &[&'static str], desc: &str, codec: &str, lim: Lim, input: &[u8]) -> Vector {
    vector(format!("compression.{id}"), "9.3", reqs, desc)
        .with("codec", json!(codec))
        .with("limits", lim.json())
        .input(input)
}

fn out(bytes: &[u8]) -> Value {
    json!({ "output": hex(bytes) })
}

/// A snappy raw block (§9.1), element by element.
#[derive(Clone, Default)]
struct Snappy(Vec<u8>);

impl Snappy {
    fn new(declared: u64) -> Snappy {
        let mut s = Snappy(Vec::new());
        let mut n = declared;
        while n >= 0x80 {
            s.0.push((n as u8 & 0x7F) | 0x80);
            n >>= 7;
        }
        s.0.push(n as u8);
        s
    }

    fn lit(mut self, data: &[u8]) -> Snappy {
        let n = data.len() - 1;
        if n < 60 {
            self.0.push((n as u8) << 2);
        } else if n < 256 {
            self.0.extend([60 << 2, n as u8]);
        } else {
            self.0.extend([61 << 2, n as u8, (n >> 8) as u8]);
        }
        self.0.extend_from_slice(data);
        self
    }

    /// Copy with a 1-byte offset: length 4..=11, offset < 2048.
    fn copy1(mut self, len: usize, offset: usize) -> Snappy {
        self.0
            .push((((len - 4) as u8) << 2) | (((offset >> 8) as u8) << 5) | 1);
        self.0.push(offset as u8);
        self
    }

    /// Copy with a 2-byte offset: length 1..=64.
    fn copy2(mut self, len: usize, offset: u16) -> Snappy {
        self.0.push((((len - 1) as u8) << 2) | 2);
        self.0.extend(offset.to_le_bytes());
        self
    }

    /// Copy with a 4-byte offset: length 1..=64.
    fn copy4(mut self, len: usize, offset: u32) -> Snappy {
        self.0.push((((len - 1) as u8) << 2) | 3);
        self.0.extend(offset.to_le_bytes());
        self
    }

    fn raw(mut self, bytes: &[u8]) -> Snappy {
        self.0.extend_from_slice(bytes);
        self
    }

    /// `n` zero bytes: one literal, then copies of up to 64 bytes at offset 1.
    fn zeros(declared: u64, n: usize) -> Snappy {
        let mut s = Snappy::new(declared).lit(&[0]);
        let mut left = n - 1;
        while left > 0 {
            let take = left.min(64);
            s = s.copy2(take, 1);
            left -= take;
        }
        s
    }
}

/// Every compression vector.
pub(crate) fn compression_vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    none_vectors(&mut v);
    zlib_valid(&mut v);
    zlib_limits(&mut v);
    zlib_malformed(&mut v);
    snappy_valid(&mut v);
    snappy_limits(&mut v);
    snappy_malformed(&mut v);
    v
}

fn none_vectors(v: &mut Vec<Vector>) {
    v.push(
        c(
            "none.passthrough",
            &[],
            "codec none: the payload is the data",
            "none",
            DEFAULT,
            b"plain",
        )
        .ok(out(b"plain"), false),
    );
    v.push(
        c(
            "none.no-codecs-announced",
            &[],
            "none is always supported, even with no codec announced",
            "none",
            DEFAULT.codecs(0),
            b"plain",
        )
        .ok(out(b"plain"), false),
    );
    let big = vec![0x5A; 2000];
    // §9.3: "The limits below apply to compressed payloads only; an uncompressed payload
    // is bounded by `max_payload` (§4.5)."
    v.push(
        c("none.above-max-decompressed", &["comp.cap"], "an uncompressed 2000-byte payload with max_decompressed 1024: the cap applies only to Cod != 0, the payload is accepted as it is", "none", DEFAULT.md(1024), &big)
            .ok(out(&big), false),
    );
}

fn zlib_valid(v: &mut Vec<Vector>) {
    let text = b"fleetwire routes packets by header; ".repeat(4);
    let cases: [(&str, &str, &[u8], &str); 6] = [
        (
            "zlib.hello-level6",
            Z_HELLO_L6,
            b"hello, fleetwire",
            "CPython zlib level 6 (header 78 9c)",
        ),
        (
            "zlib.text-level0-stored",
            Z_TEXT_L0,
            &text,
            "level 0: stored blocks (header 78 01)",
        ),
        (
            "zlib.text-level1",
            Z_TEXT_L1,
            &text,
            "level 1 (header 78 01)",
        ),
        (
            "zlib.text-level9",
            Z_TEXT_L9,
            &text,
            "level 9 (header 78 da)",
        ),
        (
            "zlib.empty-stream",
            Z_EMPTY,
            b"",
            "a zlib stream of empty input: valid, empty output",
        ),
        (
            "zlib.full-flush",
            Z_FULL_FLUSH,
            b"part one part two",
            "a stream with a Z_FULL_FLUSH point in the middle is still one stream",
        ),
    ];
    for (id, data, plain, desc) in cases {
        v.push(c(id, &[], desc, "zlib", DEFAULT, &z(data)).ok(out(plain), false));
    }
}

fn zlib_limits(v: &mut Vec<Vector>) {
    let zeros = |n: usize| vec![0u8; n];
    v.push(
        c(
            "zlib.max-decompressed.at",
            &["comp.cap"],
            "1024 zero bytes from 17 bytes, max_decompressed 1024 (the smaller term)",
            "zlib",
            DEFAULT.md(1024),
            &z(Z_ZEROS_1024),
        )
        .ok(out(&zeros(1024)), false),
    );
    v.push(
        c(
            "zlib.max-decompressed.over",
            &["comp.cap", "comp.cap-error", "comp.cap-vs-malformed"],
            "1025 zero bytes, max_decompressed 1024",
            "zlib",
            DEFAULT.md(1024),
            &z(Z_ZEROS_1025),
        )
        .fails(err("DECOMPRESSED_TOO_LARGE")),
    );
    v.push(
        c(
            "zlib.ratio.at",
            &["comp.cap"],
            "1003 bytes from 17: exactly max_ratio 59",
            "zlib",
            DEFAULT.ratio(59),
            &z(Z_ZEROS_RATIO_AT),
        )
        .ok(out(&zeros(1003)), false),
    );
    v.push(
        c(
            "zlib.ratio.over",
            &["comp.cap", "comp.cap-error"],
            "1004 bytes from 17 with max_ratio 59 (cap 1003)",
            "zlib",
            DEFAULT.ratio(59),
            &z(Z_ZEROS_RATIO_OVER),
        )
        .fails(err("RATIO_EXCEEDED")),
    );
    let tie = DEFAULT.ratio(58).md(1044);
    v.push(
        c(
            "zlib.tie.at",
            &["comp.cap"],
            "1044 bytes from 18: both terms of the cap equal 1044",
            "zlib",
            tie,
            &z(Z_ZEROS_TIE_AT),
        )
        .ok(out(&zeros(1044)), false),
    );
    v.push(
        c(
            "zlib.tie.over",
            &["comp.cap-error"],
            "1045 bytes when both terms equal 1044: equal terms report DECOMPRESSED_TOO_LARGE",
            "zlib",
            tie,
            &z(Z_ZEROS_TIE_OVER),
        )
        .fails(err("DECOMPRESSED_TOO_LARGE")),
    );
    v.push(
        c(
            "zlib.bomb.ratio",
            &["comp.cap", "comp.cap-error"],
            "1 MiB of zeros in 1039 bytes, default limits: ratio term 103900 is the smaller",
            "zlib",
            DEFAULT,
            &z(Z_BOMB_1MIB),
        )
        .fails(err("RATIO_EXCEEDED")),
    );
    v.push(
        c(
            "zlib.bomb.size",
            &["comp.cap", "comp.cap-error"],
            "3 MiB of zeros in 3071 bytes, default limits: max_decompressed 262144 is the smaller",
            "zlib",
            DEFAULT,
            &z(Z_BOMB_3MIB),
        )
        .fails(err("DECOMPRESSED_TOO_LARGE")),
    );
    let mut trunc = z(Z_ZEROS_2000);
    trunc.truncate(trunc.len() - 4);
    v.push(c("zlib.over-cap-and-truncated", &["comp.cap-error", "comp.malformed", "comp.cap-vs-malformed"], "2000 zeros without the Adler-32, max_decompressed 1024: malformed and above the cap, so either code conforms", "zlib", DEFAULT.md(1024), &trunc).either(err("DECOMPRESSED_TOO_LARGE"), err("DECOMPRESSION_FAILED")));
    let mut bad = z(Z_ZEROS_1024);
    *bad.last_mut().expect("non-empty") ^= 1;
    v.push(c("zlib.bad-adler-at-cap", &["comp.malformed", "comp.cap-vs-malformed"], "1024 zeros at max_decompressed 1024 with a wrong Adler-32: malformed, the cap was not exceeded", "zlib", DEFAULT.md(1024), &bad).fails(err("DECOMPRESSION_FAILED")));
    // §9.3 [[comp.cap-vs-malformed]]: a malformed payload whose complete well-formed
    // prefix stays within the cap gets DECOMPRESSION_FAILED, whatever the decoder does
    let mut cut = z(Z_ZEROS_1024);
    cut.truncate(cut.len() - 4);
    v.push(c("zlib.cap-vs-malformed.truncated-within-cap", &["comp.cap-vs-malformed", "comp.malformed"], "1024 zeros without their Adler-32 at max_decompressed 1024: the well-formed prefix reaches exactly the cap, not more, so DECOMPRESSION_FAILED", "zlib", DEFAULT.md(1024), &cut).fails(err("DECOMPRESSION_FAILED")));
    let mut trailing = z(Z_ZEROS_1024);
    trailing.push(0x00);
    v.push(c("zlib.cap-vs-malformed.trailing-within-cap", &["comp.cap-vs-malformed", "comp.malformed"], "a complete stream of 1024 zeros followed by one more byte, max_decompressed 1024: malformed within the cap, so DECOMPRESSION_FAILED", "zlib", DEFAULT.md(1024), &trailing).fails(err("DECOMPRESSION_FAILED")));
    // a stored block of "hello" (not final), then a block of the reserved type 3: the
    // decoder fails after 5 bytes of output, far below the cap
    let mut bad_block = vec![0x78, 0x9c, 0x00, 0x05, 0x00, 0xfa, 0xff];
    bad_block.extend_from_slice(b"hello");
    bad_block.push(0x07);
    v.push(c("zlib.cap-vs-malformed.bad-block-after-output", &["comp.cap-vs-malformed", "comp.malformed"], "a stored block of 5 bytes, then a block of the reserved type 3, max_decompressed 1024: malformed after 5 bytes of output, within the cap, so DECOMPRESSION_FAILED", "zlib", DEFAULT.md(1024), &bad_block).fails(err("DECOMPRESSION_FAILED")));
    v.push(c("zlib.cap-vs-malformed.well-formed-over-cap", &["comp.cap-vs-malformed", "comp.cap-error"], "a well-formed stream of 2000 zeros at max_decompressed 1024: the cap error, never DECOMPRESSION_FAILED", "zlib", DEFAULT.md(1024), &z(Z_ZEROS_2000)).fails(err("DECOMPRESSED_TOO_LARGE")));
    v.push(
        c(
            "zlib.not-negotiated",
            &["comp.not-negotiated"],
            "zlib payload, receiver announced snappy only",
            "zlib",
            DEFAULT.codecs(1),
            &z(Z_HELLO_L6),
        )
        .fails(err("CODEC_NOT_NEGOTIATED")),
    );
    v.push(
        c(
            "zlib.not-negotiated-none",
            &["comp.not-negotiated"],
            "zlib payload, receiver announced no codec",
            "zlib",
            DEFAULT.codecs(0),
            &z(Z_HELLO_L6),
        )
        .fails(err("CODEC_NOT_NEGOTIATED")),
    );
    v.push(
        c(
            "zlib.not-negotiated-reserved-bits",
            &["comp.not-negotiated"],
            "codecs 0xFD: reserved bits do not announce zlib",
            "zlib",
            DEFAULT.codecs(0xFD),
            &z(Z_HELLO_L6),
        )
        .fails(err("CODEC_NOT_NEGOTIATED")),
    );
}

/// A zlib header with CMF `cmf` and a correct FCHECK.
fn zlib_header(cmf: u8) -> [u8; 2] {
    let rem = (u16::from(cmf) * 256) % 31;
    let flg = if rem == 0 { 0 } else { 31 - rem as u8 };
    [cmf, flg]
}

fn zlib_malformed(v: &mut Vec<Vector>) {
    let hello = z(Z_HELLO_L6);
    let n = hello.len();
    let flip_last = {
        let mut b = hello.clone();
        b[n - 1] ^= 0xFF;
        b
    };
    let bad_fcheck = {
        let mut b = hello.clone();
        b[1] = 0x9D;
        b
    };
    let cm9 = [&zlib_header(0x79)[..], &hello[2..]].concat();
    let window = [&zlib_header(0x88)[..], &hello[2..]].concat();
    let cases: Vec<(&str, Vec<u8>, &str, &[&'static str])> = vec![
        (
            "zlib.truncated-adler",
            hello[..n - 1].to_vec(),
            "the last Adler-32 byte is missing",
            &[],
        ),
        (
            "zlib.truncated-no-adler",
            hello[..n - 4].to_vec(),
            "the Adler-32 is missing",
            &[],
        ),
        (
            "zlib.truncated-half",
            hello[..n / 2].to_vec(),
            "the stream stops in the middle of the deflate data",
            &[],
        ),
        (
            "zlib.header-only",
            hello[..2].to_vec(),
            "only the 2-byte zlib header",
            &[],
        ),
        (
            "zlib.trailing-byte",
            [&hello[..], &[0x00]].concat(),
            "a byte after the end of the stream",
            &[],
        ),
        (
            "zlib.trailing-stream",
            [&hello[..], &hello[..]].concat(),
            "a second stream after the first",
            &[],
        ),
        ("zlib.bad-adler", flip_last, "a wrong Adler-32", &[]),
        (
            "zlib.bad-fcheck",
            bad_fcheck,
            "the header check bits are wrong",
            &[],
        ),
        (
            "zlib.method-9",
            cm9,
            "compression method 9 is not deflate",
            &[],
        ),
        (
            "zlib.window-too-large",
            window,
            "CINFO 8: a window above 32 KiB is invalid (RFC 1950)",
            &[],
        ),
        (
            "zlib.preset-dictionary",
            z(Z_PRESET_DICT),
            "FDICT set: there is no dictionary, no context is shared (§9.1)",
            &["comp.independent"],
        ),
        (
            "zlib.preset-dictionary-unused",
            z(Z_PRESET_DICT_UNUSED),
            "FDICT set, a DICTID, then deflate data that refers to no dictionary and a correct Adler-32: still malformed (a receiver that skips the DICTID and inflates is wrong)",
            &[],
        ),
        (
            "zlib.raw-deflate",
            z(Z_RAW_DEFLATE),
            "raw deflate without the zlib header",
            &[],
        ),
        (
            "zlib.gzip",
            z(Z_GZIP),
            "a gzip member is not a zlib stream",
            &[],
        ),
        (
            "zlib.empty-payload",
            Vec::new(),
            "an empty payload is not a zlib stream",
            &[],
        ),
    ];
    for (id, input, desc, extra) in cases {
        let mut reqs = vec!["comp.malformed"];
        reqs.extend_from_slice(extra);
        v.push(c(id, &reqs, desc, "zlib", DEFAULT, &input).fails(err("DECOMPRESSION_FAILED")));
    }
}

fn snappy_valid(v: &mut Vec<Vector>) {
    let abc = b"abcabcabcabc";
    let xyz: Vec<u8> = b"xyz".iter().copied().cycle().take(67).collect();
    let long100: Vec<u8> = (0..100u8).collect();
    let long300: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
    let wxyz: Vec<u8> = b"wxyz".iter().copied().cycle().take(12).collect();
    let cases: Vec<(&str, Snappy, Vec<u8>, &str)> = vec![
        (
            "snappy.empty",
            Snappy::new(0),
            Vec::new(),
            "declared length 0 and no elements",
        ),
        (
            "snappy.literal",
            Snappy::new(5).lit(b"hello"),
            b"hello".to_vec(),
            "one short literal",
        ),
        (
            "snappy.copy1",
            Snappy::new(12).lit(b"abc").copy1(9, 3),
            abc.to_vec(),
            "a literal, then a copy with a 1-byte offset",
        ),
        (
            "snappy.copy2",
            Snappy::new(67).lit(b"xyz").copy2(64, 3),
            xyz,
            "a copy with a 2-byte offset, length 64",
        ),
        (
            "snappy.copy4",
            Snappy::new(12).lit(b"wxyz").copy4(8, 4),
            wxyz,
            "a copy with a 4-byte offset",
        ),
        (
            "snappy.overlapping-copy",
            Snappy::zeros(65, 65),
            vec![0; 65],
            "a copy at offset 1 overlapping its own output (run-length)",
        ),
        (
            "snappy.literal-100",
            Snappy::new(100).lit(&long100),
            long100.clone(),
            "a literal whose length takes one extra byte",
        ),
        (
            "snappy.literal-300",
            Snappy::new(300).lit(&long300),
            long300.clone(),
            "a literal whose length takes two extra bytes",
        ),
        (
            "snappy.varint-2-bytes-minimal",
            Snappy::new(200).lit(&[7; 200]),
            vec![7; 200],
            "a declared length taking two varint bytes",
        ),
    ];
    for (id, s, plain, desc) in cases {
        v.push(c(id, &[], desc, "snappy", DEFAULT, &s.0).ok(out(&plain), false));
    }
    let non_minimal = Snappy(vec![0x85, 0x00]).lit(b"hello");
    v.push(
        c(
            "snappy.varint-non-minimal",
            &["comp.malformed"],
            "declared length 5 as a non-minimal 2-byte varint: may be accepted",
            "snappy",
            DEFAULT,
            &non_minimal.0,
        )
        .either(out(b"hello"), err("DECOMPRESSION_FAILED")),
    );
}

/// A zero run of `s` bytes whose block length divides `s`: the ratio cap is exact.
fn exact_ratio_run() -> (usize, usize) {
    (300..20_000)
        .find_map(|s| {
            let l = Snappy::zeros(s as u64, s).0.len();
            let same = Snappy::zeros(s as u64 + 1, s + 1).0.len() == l;
            (s % l == 0 && s / l <= 255 && same).then_some((s, l))
        })
        .expect("an exact ratio exists")
}

fn snappy_limits(v: &mut Vec<Vector>) {
    let lim = DEFAULT.md(1024);
    v.push(
        c(
            "snappy.max-decompressed.at",
            &["comp.cap"],
            "1024 zero bytes, max_decompressed 1024",
            "snappy",
            lim,
            &Snappy::zeros(1024, 1024).0,
        )
        .ok(out(&[0; 1024]), false),
    );
    v.push(
        c(
            "snappy.max-decompressed.over",
            &["comp.cap", "comp.cap-error", "comp.snappy-declared"],
            "1025 zero bytes declared and present, max_decompressed 1024",
            "snappy",
            lim,
            &Snappy::zeros(1025, 1025).0,
        )
        .fails(err("DECOMPRESSED_TOO_LARGE")),
    );
    v.push(c("snappy.declared-over-cap", &["comp.snappy-declared", "comp.cap-error"], "declares 1025 bytes but holds 1024: rejected on the declared length, before any output", "snappy", lim, &Snappy::zeros(1025, 1024).0).fails(err("DECOMPRESSED_TOO_LARGE")));
    let (s, l) = exact_ratio_run();
    let r = u8::try_from(s / l).expect("checked");
    let desc_at = format!("{s} zero bytes from {l}: exactly max_ratio {r}");
    v.push(
        c(
            "snappy.ratio.at",
            &["comp.cap"],
            &desc_at,
            "snappy",
            DEFAULT.ratio(r),
            &Snappy::zeros(s as u64, s).0,
        )
        .ok(out(&vec![0; s]), false),
    );
    let desc_over = format!("{} zero bytes from {l} with max_ratio {r} (cap {s})", s + 1);
    v.push(
        c(
            "snappy.ratio.over",
            &["comp.cap", "comp.cap-error", "comp.snappy-declared"],
            &desc_over,
            "snappy",
            DEFAULT.ratio(r),
            &Snappy::zeros(s as u64 + 1, s + 1).0,
        )
        .fails(err("RATIO_EXCEEDED")),
    );
    let bomb = Snappy::new(u64::from(u32::MAX));
    v.push(
        c(
            "snappy.bomb.declared-4gib",
            &["comp.snappy-declared", "comp.cap-error"],
            "a 5-byte block declaring 2^32 - 1 bytes: refused before allocating",
            "snappy",
            DEFAULT,
            &bomb.0,
        )
        .fails(err("RATIO_EXCEEDED")),
    );
    let big = Snappy::new(16_777_216).lit(&[1; 60]).raw(&[0; 4000]);
    v.push(c("snappy.bomb.declared-16mib", &["comp.snappy-declared", "comp.cap-error"], "a 4065-byte block declaring 16 MiB, default limits: max_decompressed is the smaller term", "snappy", DEFAULT, &big.0).fails(err("DECOMPRESSED_TOO_LARGE")));
    v.push(
        c(
            "snappy.declared-above-32-bits",
            &["comp.snappy-declared", "comp.cap-error"],
            "a 5-byte varint declaring 2^35 - 1 bytes: does not fit in 32 bits, so above the cap",
            "snappy",
            DEFAULT,
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x00],
        )
        .fails(err("RATIO_EXCEEDED")),
    );
    let over_and_bad = Snappy::new(5000).raw(&[0xFF; 20]);
    v.push(
        c(
            "snappy.over-cap-before-malformed",
            &["comp.snappy-declared", "comp.cap-error"],
            "declares 5000 bytes (cap 1024) and holds garbage: the declared length decides",
            "snappy",
            lim,
            &over_and_bad.0,
        )
        .fails(err("DECOMPRESSED_TOO_LARGE")),
    );
    v.push(
        c(
            "snappy.not-negotiated",
            &["comp.not-negotiated"],
            "snappy payload, receiver announced zlib only",
            "snappy",
            DEFAULT.codecs(2),
            &Snappy::new(5).lit(b"hello").0,
        )
        .fails(err("CODEC_NOT_NEGOTIATED")),
    );
    v.push(
        c(
            "snappy.not-negotiated-malformed",
            &["comp.not-negotiated"],
            "a malformed snappy payload to a receiver without snappy: the codec check comes first",
            "snappy",
            DEFAULT.codecs(0),
            &[0x80],
        )
        .fails(err("CODEC_NOT_NEGOTIATED")),
    );
}

fn snappy_malformed(v: &mut Vec<Vector>) {
    let cases: Vec<(&str, Vec<u8>, &str, &[&'static str])> = vec![
        (
            "snappy.declared-longer",
            Snappy::new(10).lit(b"hello").0,
            "declares 10 bytes, produces 5",
            &[],
        ),
        (
            "snappy.declared-shorter",
            Snappy::new(3).lit(b"hello").0,
            "declares 3 bytes, produces 5",
            &[],
        ),
        (
            "snappy.trailing-element",
            Snappy::new(5).lit(b"hello").lit(b"!").0,
            "an element after the declared output is complete",
            &[],
        ),
        (
            "snappy.copy-offset-0",
            Snappy::new(8).lit(b"abcd").copy1(4, 0).0,
            "a copy at offset 0",
            &[],
        ),
        (
            "snappy.copy-before-start",
            Snappy::new(12).lit(b"abcd").copy2(8, 9).0,
            "a copy reaching before the start of this payload: no history is shared (§9.1)",
            &["comp.independent"],
        ),
        (
            "snappy.truncated-literal",
            Snappy::new(5).raw(&[4 << 2, b'h', b'e']).0,
            "a literal running past the end of the payload",
            &[],
        ),
        (
            "snappy.truncated-copy",
            Snappy::new(8).lit(b"abcd").raw(&[0x0E]).0,
            "a copy element cut after its tag",
            &[],
        ),
        (
            "snappy.truncated-varint",
            vec![0x80],
            "the declared-length varint is cut",
            &[],
        ),
        (
            "snappy.varint-6-bytes",
            vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            "a length varint longer than 5 bytes",
            &[],
        ),
        (
            "snappy.empty-payload",
            Vec::new(),
            "an empty payload is not a snappy block",
            &[],
        ),
    ];
    for (id, input, desc, extra) in cases {
        let mut reqs = vec!["comp.malformed"];
        reqs.extend_from_slice(extra);
        v.push(c(id, &reqs, desc, "snappy", DEFAULT, &input).fails(err("DECOMPRESSION_FAILED")));
    }
}
