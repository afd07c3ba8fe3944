//! Whole packets: borrowed views, owned `Bytes` packets, and the connection preface.

use bytes::Bytes;

use crate::error::Error;
use crate::header::{Header, Status};

/// The 8-byte connection preface each endpoint sends first (spec §3).
pub const PREFACE: [u8; 8] = [0x89, b'F', b'W', b'I', b'R', b'E', 0x0D, 0x0A];

/// Checks a preface at the front of `buf` (spec §3): incomplete until 8 bytes are
/// present, then `BadPreface` on any difference.
///
/// ```
/// use fleetwire::{check_preface, Status, PREFACE};
/// assert_eq!(check_preface(&PREFACE[..3]), Ok(Status::Incomplete { needed: 5 }));
/// assert_eq!(check_preface(&PREFACE), Ok(Status::Complete(8)));
/// assert!(check_preface(b"GET / HTTP/1.1").is_err());
/// ```
pub fn check_preface(buf: &[u8]) -> Result<Status<usize>, Error> {
    if buf.len() < PREFACE.len() {
        return Ok(Status::Incomplete {
            needed: PREFACE.len() - buf.len(),
        });
    }
    // spec §3: a receiver MUST treat any difference as BAD_PREFACE.
    if buf[..PREFACE.len()] != PREFACE {
        return Err(Error::BadPreface);
    }
    Ok(Status::Complete(PREFACE.len()))
}

/// A packet borrowed from a receive buffer: zero-copy.
///
/// ```
/// use fleetwire::{PacketRef, Status};
/// let wire = [0x10, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, b'h', b'i', 0xFF];
/// let Ok(Status::Complete((pkt, rest))) = PacketRef::parse(&wire, u16::MAX) else { panic!() };
/// assert_eq!(pkt.payload, b"hi");
/// assert_eq!(rest, &[0xFF]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PacketRef<'a> {
    /// The validated header.
    pub header: Header,
    /// The payload as it is on the wire (possibly compressed).
    pub payload: &'a [u8],
}

impl<'a> PacketRef<'a> {
    /// Parses one packet from the front of `buf`, returning it and the bytes after it.
    ///
    /// The header is validated as soon as it is complete (spec §4.9), so an oversize
    /// length is rejected without waiting for its payload. Control payloads are not
    /// decoded here: see [`crate::control::Control::parse`].
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn parse(
        buf: &'a [u8],
        max_payload: u16,
    ) -> Result<Status<(PacketRef<'a>, &'a [u8])>, Error> {
        let header = match Header::parse(buf, max_payload)? {
            Status::Complete(h) => h,
            Status::Incomplete { needed } => return Ok(Status::Incomplete { needed }),
        };
        let total = header.packet_len();
        if buf.len() < total {
            return Ok(Status::Incomplete {
                needed: total - buf.len(),
            });
        }
        let payload = &buf[header.len()..total];
        Ok(Status::Complete((
            PacketRef { header, payload },
            &buf[total..],
        )))
    }

    /// An owned copy of this packet.
    pub fn to_packet(&self) -> Packet {
        Packet {
            header: self.header,
            payload: Bytes::copy_from_slice(self.payload),
        }
    }
}

/// The packets of a byte slice, borrowed, in order: zero-copy deframing of a buffer.
///
/// Yields `Ok(packet)` for each complete packet, then stops at the end of the input or
/// at an incomplete packet ([`rest`](Packets::rest) holds it), or yields one `Err` for an
/// invalid header and stops.
///
/// ```
/// use fleetwire::Packets;
/// let wire = [0x10, 0, 0, 1, 0, 1, 0, 0, 7, 0x10, 0, 0, 0, 0, 2, 0, 0, 0x10];
/// let mut packets = Packets::new(&wire, u16::MAX);
/// let nodes: Vec<u16> = packets.by_ref().map(|p| p.unwrap().header.route.node).collect();
/// assert_eq!(nodes, [1, 2]);
/// assert_eq!(packets.rest(), &[0x10]);
/// ```
#[derive(Clone, Debug)]
pub struct Packets<'a> {
    buf: &'a [u8],
    max_payload: u16,
    done: bool,
}

impl<'a> Packets<'a> {
    /// Packets of `buf`, validated against `max_payload` (§4.5).
    pub fn new(buf: &'a [u8], max_payload: u16) -> Packets<'a> {
        Packets {
            buf,
            max_payload,
            done: false,
        }
    }

    /// The bytes not yet returned: an incomplete packet, or the invalid one.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<PacketRef<'a>, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // The common case without the Status wrapping of PacketRef::parse.
        if let Some(header) = Header::parse_fast(self.buf, self.max_payload) {
            let total = header.packet_len();
            if let Some((packet, rest)) = self.buf.split_at_checked(total) {
                self.buf = rest;
                let payload = &packet[header.len()..];
                return Some(Ok(PacketRef { header, payload }));
            }
        }
        if self.done {
            return None;
        }
        match PacketRef::parse(self.buf, self.max_payload) {
            Ok(Status::Complete((pkt, rest))) => {
                self.buf = rest;
                Some(Ok(pkt))
            }
            Ok(Status::Incomplete { .. }) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// An owned packet whose payload is a reference-counted slice of the receive buffer.
///
/// ```
/// use bytes::Bytes;
/// use fleetwire::{Header, Packet, Route};
/// let pkt = Packet::data(Route::new(1, 0, 0), Bytes::from_static(b"abc"));
/// assert_eq!(pkt.header.length, 3);
/// assert_eq!(pkt.to_vec(), [0x10, 0, 0, 3, 0, 1, 0, 0, b'a', b'b', b'c']);
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Packet {
    /// The header; `header.length` equals `payload.len()`.
    pub header: Header,
    /// The payload bytes as on the wire.
    pub payload: Bytes,
}

impl Packet {
    /// A DATA packet with an uncompressed payload.
    ///
    /// # Panics
    ///
    /// If `payload` is longer than 65,535 bytes; [`Packet::try_data`] returns an error
    /// instead.
    pub fn data(route: crate::Route, payload: Bytes) -> Packet {
        Packet::try_data(route, payload).expect("payload longer than 65535 bytes")
    }

    /// A DATA packet with an uncompressed payload, or [`Error::PayloadTooLarge`] if
    /// `payload` is longer than 65,535 bytes (no length field can carry it, §4.5).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use fleetwire::{Error, Packet, Route};
    /// let ok = Packet::try_data(Route::new(1, 0, 0), Bytes::from(vec![0; 65535]));
    /// assert_eq!(ok.map(|p| p.header.length), Ok(65535));
    /// let too_long = Packet::try_data(Route::new(1, 0, 0), Bytes::from(vec![0; 65536]));
    /// assert_eq!(too_long, Err(Error::PayloadTooLarge));
    /// ```
    pub fn try_data(route: crate::Route, payload: Bytes) -> Result<Packet, Error> {
        let length = u16::try_from(payload.len()).map_err(|_| Error::PayloadTooLarge)?;
        Ok(Packet {
            header: Header::data(route, length),
            payload,
        })
    }

    /// Appends header and payload to `out`.
    ///
    /// The length field written is the payload's length: a hand-built `Packet` whose
    /// `header.length` disagrees with its payload still encodes as one valid packet
    /// instead of corrupting the stream from there on (§4.5).
    ///
    /// # Panics
    ///
    /// If the payload is longer than 65,535 bytes (only a hand-built `Packet` can be).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use fleetwire::{Header, Packet, Route};
    /// let pkt = Packet { header: Header::data(Route::new(1, 0, 0), 10), payload: Bytes::from_static(b"abc") };
    /// assert_eq!(pkt.to_vec()[3], 3); // the payload's length, not 10
    /// ```
    pub fn encode_to_vec(&self, out: &mut Vec<u8>) {
        let length = u16::try_from(self.payload.len()).expect("payload longer than 65535 bytes");
        Header {
            length,
            ..self.header
        }
        .encode_to_vec(out);
        out.extend_from_slice(&self.payload);
    }

    /// Header and payload as one vector; see [`Packet::encode_to_vec`].
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header.packet_len());
        self.encode_to_vec(&mut out);
        out
    }

    /// A borrowed view of this packet.
    pub fn as_ref(&self) -> PacketRef<'_> {
        PacketRef {
            header: self.header,
            payload: &self.payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Route};

    #[test]
    fn incomplete_payload_reports_needed() {
        let wire = [0x10, 0, 0, 4, 0, 0, 0, 0, 1, 2];
        assert_eq!(
            PacketRef::parse(&wire, u16::MAX),
            Ok(Status::Incomplete { needed: 2 })
        );
    }

    #[test]
    fn oversize_length_rejected_before_payload_arrives() {
        let wire = [0x10, 0, 0x04, 0x01, 0, 0, 0, 0];
        assert_eq!(PacketRef::parse(&wire, 1024), Err(Error::PayloadTooLarge));
    }

    #[test]
    fn empty_payload_is_complete() {
        let wire = [0x10, 0, 0, 0, 0, 0, 0, 0];
        let Ok(Status::Complete((pkt, rest))) = PacketRef::parse(&wire, 1024) else {
            panic!()
        };
        assert!(pkt.payload.is_empty() && rest.is_empty());
        assert_eq!(pkt.header.kind, Kind::Data);
    }

    #[test]
    fn encoding_takes_the_length_from_the_payload() {
        for claimed in [0, 2, 4, 65535] {
            let bad = Packet {
                header: Header::data(Route::new(1, 2, 3), claimed),
                payload: Bytes::from_static(b"abc"),
            };
            let mut wire = bad.to_vec();
            Packet::data(Route::new(4, 5, 6), Bytes::from_static(b"next")).encode_to_vec(&mut wire);
            let got: Vec<_> = Packets::new(&wire, u16::MAX).map(|p| p.unwrap()).collect();
            assert_eq!(got.len(), 2, "length field {claimed}");
            assert_eq!((got[0].header.length, got[0].payload), (3, &b"abc"[..]));
            assert_eq!(got[1].payload, b"next");
        }
    }

    #[test]
    fn try_data_at_the_limit_and_one_over() {
        let at = Packet::try_data(Route::default(), Bytes::from(vec![7; 65535])).unwrap();
        assert_eq!(at.to_vec().len(), Header::BASE_LEN + 65535);
        assert_eq!(
            Packet::try_data(Route::default(), Bytes::from(vec![7; 65536])),
            Err(Error::PayloadTooLarge)
        );
    }

    #[test]
    fn owned_round_trip() {
        let pkt = Packet::data(Route::new(9, 8, 7), Bytes::from_static(b"xyz"));
        let wire = pkt.to_vec();
        let Ok(Status::Complete((view, _))) = PacketRef::parse(&wire, u16::MAX) else {
            panic!()
        };
        assert_eq!(view.to_packet(), pkt);
    }

    #[test]
    fn packets_iterator_matches_packetref_walk() {
        let mut wire = Vec::new();
        for i in 0..4u8 {
            Packet::data(
                Route::new(u16::from(i), 0, 0),
                Bytes::from(vec![i; usize::from(i)]),
            )
            .encode_to_vec(&mut wire);
        }
        let mut ctl = Vec::new();
        crate::control::Control::Credit(crate::control::Credit {
            packets: 1,
            bytes: 0,
        })
        .encode_packet(&mut ctl);
        wire.extend_from_slice(&ctl);
        for tail in [&[][..], &[0x10, 0, 0][..], &[0x17, 0, 0, 0, 0, 0, 0, 0][..]] {
            let mut input = wire.clone();
            input.extend_from_slice(tail);
            let mut walk = Vec::new();
            let mut rest = &input[..];
            let end = loop {
                match PacketRef::parse(rest, u16::MAX) {
                    Ok(Status::Complete((p, r))) => {
                        walk.push(Ok(p));
                        rest = r;
                    }
                    Ok(Status::Incomplete { .. }) => break rest,
                    Err(e) => {
                        walk.push(Err(e));
                        break rest;
                    }
                }
            };
            let mut it = Packets::new(&input, u16::MAX);
            let got: Vec<_> = it.by_ref().collect();
            assert_eq!(got, walk);
            assert_eq!(it.rest(), end);
            assert_eq!(it.next(), None);
        }
    }

    #[test]
    fn preface_checked_only_when_complete() {
        assert_eq!(check_preface(&[0; 7]), Ok(Status::Incomplete { needed: 1 }));
        assert_eq!(check_preface(&[0; 8]), Err(Error::BadPreface));
        let mut p = PREFACE;
        p[7] = 0x0B;
        assert_eq!(check_preface(&p), Err(Error::BadPreface));
    }
}
