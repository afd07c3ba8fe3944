//! The routing header (spec §4): 8 bytes, 10 with the source extension.

use crate::error::Error;

/// The result of parsing a prefix of a byte stream: complete, or in need of more bytes.
///
/// Incomplete input is not an error (spec §12.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status<T> {
    /// A complete item was parsed.
    Complete(T),
    /// At least `needed` more bytes are required before anything can be said.
    Incomplete {
        /// The minimum number of additional bytes required.
        needed: usize,
    },
}

macro_rules! kinds {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, )*) => {
        /// The Kind field of the header (spec §4.3).
        ///
        /// ```
        /// use fleetwire::Kind;
        /// assert_eq!(Kind::from_u4(2), Some(Kind::Ping));
        /// assert_eq!(Kind::from_u4(7), None);
        /// ```
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u8)]
        pub enum Kind {
            $( $(#[$doc])* $name = $value, )*
        }

        impl Kind {
            /// Every assigned kind, in numeric order.
            pub const ALL: &'static [Kind] = &[$(Kind::$name),*];

            /// The kind for a 4-bit value, or `None` if unassigned.
            pub fn from_u4(v: u8) -> Option<Kind> {
                match v {
                    $( $value => Some(Kind::$name), )*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// Application data, routed (§5.1).
    Data = 0,
    /// Handshake (§5.2).
    Hello = 1,
    /// Round-trip probe (§5.3).
    Ping = 2,
    /// Answer to PING (§5.4).
    Pong = 3,
    /// Shutdown (§5.5).
    Goaway = 4,
    /// Flow-control credit (§5.6).
    Credit = 5,
    /// A packet error report, routed (§5.7).
    Error = 6,
}

impl Kind {
    /// Whether the kind is hop-by-hop: never forwarded and never routed (§4.3).
    pub fn is_hop_by_hop(self) -> bool {
        !matches!(self, Kind::Data | Kind::Error)
    }

    /// Whether the kind is a control packet (anything but DATA).
    pub fn is_control(self) -> bool {
        self != Kind::Data
    }

    /// The upper-case name used by the spec and the vectors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Data => "DATA",
            Kind::Hello => "HELLO",
            Kind::Ping => "PING",
            Kind::Pong => "PONG",
            Kind::Goaway => "GOAWAY",
            Kind::Credit => "CREDIT",
            Kind::Error => "ERROR",
        }
    }
}

/// The payload codec named by the Cod field (spec §4.4, §9.1).
///
/// ```
/// use fleetwire::Codec;
/// assert_eq!(Codec::from_bits(2), Some(Codec::Zlib));
/// assert_eq!(Codec::from_bits(3), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Codec {
    /// Uncompressed.
    #[default]
    None = 0,
    /// Snappy raw (block) format.
    Snappy = 1,
    /// zlib (RFC 1950).
    Zlib = 2,
}

impl Codec {
    /// The codec for a 2-bit Cod value; 3 is reserved.
    pub fn from_bits(v: u8) -> Option<Codec> {
        match v {
            0 => Some(Codec::None),
            1 => Some(Codec::Snappy),
            2 => Some(Codec::Zlib),
            _ => None,
        }
    }

    /// This codec's bit in HELLO's `codecs` field (§5.2); `None` has no bit.
    pub fn hello_bit(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Snappy => 0x01,
            Codec::Zlib => 0x02,
        }
    }

    /// The lower-case name used by the vectors.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Snappy => "snappy",
            Codec::Zlib => "zlib",
        }
    }
}

/// Where a DATA or ERROR packet goes (spec §4.6).
///
/// ```
/// use fleetwire::Route;
/// let r = Route::new(7, 1, 3);
/// assert_eq!((r.node, r.service, r.channel), (7, 1, 3));
/// assert!(Route::default().is_zero());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Route {
    /// Destination node; 0 means the peer itself.
    pub node: u16,
    /// Service on the destination node.
    pub service: u8,
    /// Channel, opaque to routing.
    pub channel: u8,
}

impl Route {
    /// A route from its three fields.
    pub const fn new(node: u16, service: u8, channel: u8) -> Route {
        Route {
            node,
            service,
            channel,
        }
    }

    /// Whether every field is zero, as hop-by-hop control packets require (§4.6).
    pub fn is_zero(&self) -> bool {
        *self == Route::default()
    }
}

/// Flag bits of header byte 1 (spec §4.1).
pub(crate) mod flag {
    pub(crate) const EXT: u8 = 0x80;
    pub(crate) const NEVER_COMPRESS: u8 = 0x40;
    pub(crate) const CODEC_MASK: u8 = 0x30;
    pub(crate) const CODEC_SHIFT: u8 = 4;
    pub(crate) const RESERVED: u8 = 0x0C;
    pub(crate) const HINTS: u8 = 0x03;
}

/// A decoded routing header (spec §4).
///
/// ```
/// use fleetwire::{Header, Kind, Route, Status};
/// let h = Header::data(Route::new(5, 1, 2), 3);
/// let mut buf = [0u8; Header::MAX_LEN];
/// let n = h.encode(&mut buf);
/// assert_eq!(&buf[..n], &[0x10, 0x00, 0x00, 0x03, 0x00, 0x05, 0x01, 0x02]);
/// assert_eq!(Header::parse(&buf[..n], 65535), Ok(Status::Complete(h)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Header {
    /// Packet kind.
    pub kind: Kind,
    /// N: the payload must never be compressed.
    pub never_compress: bool,
    /// Payload codec.
    pub codec: Codec,
    /// The two hint bits; ignored by receivers, kept for forwarding (§4.8).
    pub hints: u8,
    /// Payload Length: payload bytes on the wire.
    pub length: u16,
    /// Destination route.
    pub route: Route,
    /// Source Node from the extension, present when X = 1 (§4.7).
    pub source: Option<u16>,
}

impl Header {
    /// Length of the base header.
    pub const BASE_LEN: usize = 8;
    /// Length of the header with the source extension.
    pub const MAX_LEN: usize = 10;
    /// The protocol version this crate implements (§4.2).
    pub const VERSION: u8 = 1;

    /// A DATA header with no flags and no source.
    pub fn data(route: Route, length: u16) -> Header {
        Header {
            kind: Kind::Data,
            never_compress: false,
            codec: Codec::None,
            hints: 0,
            length,
            route,
            source: None,
        }
    }

    /// A hop-by-hop control header with a zero route.
    pub fn control(kind: Kind, length: u16) -> Header {
        Header {
            kind,
            ..Header::data(Route::default(), length)
        }
    }

    /// The encoded length of this header: 8, or 10 with a source.
    #[allow(clippy::len_without_is_empty)] // a header is never empty
    pub fn len(&self) -> usize {
        if self.source.is_some() {
            Header::MAX_LEN
        } else {
            Header::BASE_LEN
        }
    }

    /// Length of header plus payload.
    pub fn packet_len(&self) -> usize {
        self.len() + usize::from(self.length)
    }

    /// Writes the header into `out` and returns its length (8 or 10).
    ///
    /// The header alone: the payload stays where it is, so header and payload can go to
    /// the wire with one vectored write.
    pub fn encode(&self, out: &mut [u8; Header::MAX_LEN]) -> usize {
        out[0] = (Header::VERSION << 4) | self.kind as u8;
        out[1] = self.flags_byte();
        out[2..4].copy_from_slice(&self.length.to_be_bytes());
        out[4..6].copy_from_slice(&self.route.node.to_be_bytes());
        out[6] = self.route.service;
        out[7] = self.route.channel;
        match self.source {
            Some(src) => {
                out[8..10].copy_from_slice(&src.to_be_bytes());
                Header::MAX_LEN
            }
            None => Header::BASE_LEN,
        }
    }

    /// Appends the encoded header to `out`.
    pub fn encode_to_vec(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; Header::MAX_LEN];
        let n = self.encode(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }

    fn flags_byte(&self) -> u8 {
        let mut b = (self.codec as u8) << flag::CODEC_SHIFT | (self.hints & flag::HINTS);
        if self.source.is_some() {
            b |= flag::EXT;
        }
        if self.never_compress {
            b |= flag::NEVER_COMPRESS;
        }
        b
    }

    /// Parses and validates a header from the front of `buf` (spec §4.9).
    ///
    /// Returns `Incomplete` until the whole header (8 or 10 bytes) is present, then runs
    /// the checks of §4.9 in order against `max_payload`. Bytes after the header are not
    /// looked at.
    #[inline]
    pub fn parse(buf: &[u8], max_payload: u16) -> Result<Status<Header>, Error> {
        if let Some(h) = Header::parse_fast(buf, max_payload) {
            return Ok(Status::Complete(h));
        }
        if buf.len() < Header::BASE_LEN {
            return Ok(Status::Incomplete {
                needed: Header::BASE_LEN - buf.len(),
            });
        }
        let has_ext = buf[1] & flag::EXT != 0;
        if has_ext && buf.len() < Header::MAX_LEN {
            return Ok(Status::Incomplete {
                needed: Header::MAX_LEN - buf.len(),
            });
        }
        let header = Header::validate(buf, has_ext, max_payload)?;
        Ok(Status::Complete(header))
    }

    /// The common case in one test: a version-1 DATA header without R bits, reserved
    /// codec or N-with-codec, within `max_payload`, with or without its extension (the
    /// Source Node every packet a proxy forwards carries, §4.7; DATA may carry it, so
    /// §4.9 checks nothing more of it). Anything else (including every error, and an
    /// extension not yet all in `buf`) takes the full path of [`Header::validate`],
    /// which reports the first failing check in the order of §4.9; both paths accept
    /// exactly the same headers.
    #[inline(always)]
    pub(crate) fn parse_fast(buf: &[u8], max_payload: u16) -> Option<Header> {
        let b: &[u8; 8] = buf.first_chunk()?;
        let flags = b[1];
        let codec_bits = flags & flag::CODEC_MASK;
        let plain = b[0] == (Header::VERSION << 4)
            && flags & flag::RESERVED == 0
            && codec_bits != flag::CODEC_MASK
            && !(flags & flag::NEVER_COMPRESS != 0 && codec_bits != 0);
        let length = u16::from_be_bytes([b[2], b[3]]);
        if !plain || length > max_payload {
            return None;
        }
        let source = match flags & flag::EXT {
            0 => None,
            _ => Some(u16::from_be_bytes(*buf.get(8..10)?.first_chunk()?)),
        };
        let codec = match codec_bits >> flag::CODEC_SHIFT {
            0 => Codec::None,
            1 => Codec::Snappy,
            _ => Codec::Zlib,
        };
        Some(Header {
            kind: Kind::Data,
            never_compress: flags & flag::NEVER_COMPRESS != 0,
            codec,
            hints: flags & flag::HINTS,
            length,
            route: Route::new(u16::from_be_bytes([b[4], b[5]]), b[6], b[7]),
            source,
        })
    }

    /// The checks of spec §4.9, in order; `buf` holds at least the whole header.
    fn validate(buf: &[u8], has_ext: bool, max_payload: u16) -> Result<Header, Error> {
        // §4.9 step 1 / §4.2: a version other than 1 is UNSUPPORTED_VERSION.
        if buf[0] >> 4 != Header::VERSION {
            return Err(Error::UnsupportedVersion);
        }
        // step 2 / §4.3: unassigned kinds are UNKNOWN_KIND.
        let kind = Kind::from_u4(buf[0] & 0x0F).ok_or(Error::UnknownKind)?;
        let flags = buf[1];
        // step 3 / §4.8: a receiver MUST reject either R bit.
        if flags & flag::RESERVED != 0 {
            return Err(Error::ReservedBit);
        }
        // step 4 / §4.4: Cod = 3 is reserved.
        let codec = Codec::from_bits((flags & flag::CODEC_MASK) >> flag::CODEC_SHIFT)
            .ok_or(Error::BadFlags("reserved codec value 3"))?;
        let never_compress = flags & flag::NEVER_COMPRESS != 0;
        // step 5 / §4.4: control packets are never compressed nor marked N.
        if kind.is_control() && (codec != Codec::None || never_compress) {
            return Err(Error::BadFlags("control packet with codec or N flag"));
        }
        // step 6 / §4.4: N = 1 requires Cod = 0.
        if never_compress && codec != Codec::None {
            return Err(Error::BadFlags("never-compress packet with a codec"));
        }
        // step 7 / §4.7: hop-by-hop control packets carry no extension.
        if kind.is_hop_by_hop() && has_ext {
            return Err(Error::BadFlags("hop-by-hop control packet with extension"));
        }
        let length = u16::from_be_bytes([buf[2], buf[3]]);
        // step 8 / §4.5: compare with max_payload before touching the payload.
        if length > max_payload {
            return Err(Error::PayloadTooLarge);
        }
        let route = Route::new(u16::from_be_bytes([buf[4], buf[5]]), buf[6], buf[7]);
        // step 9 / §4.6: hop-by-hop control packets carry a zero route.
        if kind.is_hop_by_hop() && !route.is_zero() {
            return Err(Error::BadControl("hop-by-hop control packet with a route"));
        }
        let source = has_ext.then(|| u16::from_be_bytes([buf[8], buf[9]]));
        Ok(Header {
            kind,
            never_compress,
            codec,
            hints: flags & flag::HINTS,
            length,
            route,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Status<Header>, Error> {
        Header::parse(bytes, u16::MAX)
    }

    #[test]
    fn incomplete_until_base_header() {
        for n in 0..8 {
            assert_eq!(
                parse(&[0x10; 8][..n]),
                Ok(Status::Incomplete { needed: 8 - n })
            );
        }
    }

    #[test]
    fn incomplete_until_extension() {
        let bytes = [0x10, 0x80, 0, 0, 0, 1, 0, 0, 0, 9];
        assert_eq!(parse(&bytes[..8]), Ok(Status::Incomplete { needed: 2 }));
        assert_eq!(parse(&bytes[..9]), Ok(Status::Incomplete { needed: 1 }));
        let Ok(Status::Complete(h)) = parse(&bytes) else {
            panic!("complete expected")
        };
        assert_eq!(h.source, Some(9));
        assert_eq!(h.len(), 10);
    }

    #[test]
    fn rejects_versions_other_than_one() {
        for v in [0u8, 2, 15] {
            assert_eq!(
                parse(&[v << 4, 0, 0, 0, 0, 0, 0, 0]),
                Err(Error::UnsupportedVersion)
            );
        }
    }

    #[test]
    fn rejects_unassigned_kinds() {
        for k in 7u8..16 {
            assert_eq!(
                parse(&[0x10 | k, 0, 0, 0, 0, 0, 0, 0]),
                Err(Error::UnknownKind)
            );
        }
    }

    #[test]
    fn rejects_reserved_bits() {
        assert_eq!(
            parse(&[0x10, 0x04, 0, 0, 0, 0, 0, 0]),
            Err(Error::ReservedBit)
        );
        assert_eq!(
            parse(&[0x10, 0x08, 0, 0, 0, 0, 0, 0]),
            Err(Error::ReservedBit)
        );
    }

    #[test]
    fn ignores_and_keeps_hint_bits() {
        let Ok(Status::Complete(h)) = parse(&[0x10, 0x03, 0, 0, 0, 0, 0, 0]) else {
            panic!()
        };
        assert_eq!(h.hints, 3);
        let mut out = [0; 10];
        h.encode(&mut out);
        assert_eq!(out[1], 0x03);
    }

    #[test]
    fn validation_order_version_before_kind_before_reserved() {
        assert_eq!(
            parse(&[0x2F, 0x0C, 0, 0, 0, 0, 0, 0]),
            Err(Error::UnsupportedVersion)
        );
        assert_eq!(
            parse(&[0x1F, 0x0C, 0, 0, 0, 0, 0, 0]),
            Err(Error::UnknownKind)
        );
        assert_eq!(
            parse(&[0x10, 0x3C, 0, 0, 0, 0, 0, 0]),
            Err(Error::ReservedBit)
        );
    }

    #[test]
    fn rejects_bad_flag_combinations() {
        let bad = |b0: u8, b1: u8| parse(&[b0, b1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(bad(0x10, 0x30), Err(Error::BadFlags(_))));
        assert!(matches!(bad(0x12, 0x10), Err(Error::BadFlags(_))));
        assert!(matches!(bad(0x12, 0x40), Err(Error::BadFlags(_))));
        assert!(matches!(bad(0x10, 0x50), Err(Error::BadFlags(_))));
        assert!(matches!(bad(0x12, 0x80), Err(Error::BadFlags(_))));
        assert!(matches!(bad(0x16, 0x80), Ok(Status::Complete(_))));
    }

    #[test]
    fn accepts_length_at_limit_and_rejects_limit_plus_one() {
        let at = [0x10, 0, 0x04, 0x00, 0, 0, 0, 0];
        assert!(matches!(Header::parse(&at, 1024), Ok(Status::Complete(_))));
        let over = [0x10, 0, 0x04, 0x01, 0, 0, 0, 0];
        assert_eq!(Header::parse(&over, 1024), Err(Error::PayloadTooLarge));
    }

    #[test]
    fn rejects_route_on_hop_by_hop_control() {
        assert!(matches!(
            parse(&[0x12, 0, 0, 0, 0, 0, 0, 1]),
            Err(Error::BadControl(_))
        ));
        assert!(matches!(
            parse(&[0x16, 0, 0, 0, 0, 1, 0, 0]),
            Ok(Status::Complete(_))
        ));
    }

    #[test]
    fn fast_path_agrees_with_full_validation() {
        for b0 in 0..=255u8 {
            for b1 in 0..=255u8 {
                for len in [0u16, 1024, 1025] {
                    let l = len.to_be_bytes();
                    let buf = [b0, b1, l[0], l[1], 0, 3, 2, 1, 0, 7];
                    let full = Header::validate(&buf, b1 & flag::EXT != 0, 1024);
                    match Header::parse_fast(&buf, 1024) {
                        Some(h) => assert_eq!(full, Ok(h), "{b0:02x} {b1:02x} {len}"),
                        None => assert!(full.is_err() || b0 != 0x10),
                    }
                }
            }
        }
    }

    #[test]
    fn fast_path_leaves_an_incomplete_extension_to_the_full_path() {
        // DATA with X = 1 and its Source Node: 10 bytes are a header, 9 are not yet
        let buf = [0x10, flag::EXT, 0, 4, 0, 3, 2, 1, 0xBE, 0xEF];
        let h = Header::parse_fast(&buf, 1024).expect("fast path");
        assert_eq!((h.source, h.len(), h.length), (Some(0xBEEF), 10, 4));
        assert_eq!(Header::parse_fast(&buf[..9], 1024), None);
        assert_eq!(
            Header::parse(&buf[..9], 1024),
            Ok(Status::Incomplete { needed: 1 })
        );
    }

    #[test]
    fn encode_parse_round_trip_with_extension() {
        let h = Header {
            source: Some(0xBEEF),
            never_compress: true,
            ..Header::data(Route::new(1, 2, 3), 4)
        };
        let mut out = [0; 10];
        assert_eq!(h.encode(&mut out), 10);
        assert_eq!(parse(&out), Ok(Status::Complete(h)));
    }
}
