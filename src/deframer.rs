//! Incremental deframing of a byte stream into packets (spec §2, §12.2).

use bytes::{Bytes, BytesMut};

use crate::error::Error;
use crate::header::{Header, Status};
use crate::packet::{Packet, PacketRef};

/// What the deframer holds of the next packet, for the header and packet timers (§6.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Partial {
    /// Nothing buffered: the next byte starts a packet.
    Empty,
    /// Part of a header is buffered.
    Header,
    /// A valid header and part of its payload are buffered.
    Payload,
}

/// Turns a byte stream split at arbitrary points into packets.
///
/// Bytes go in with [`extend`](Deframer::extend); packets come out of
/// [`next_packet`](Deframer::next_packet) as `Bytes` slices of the internal buffer (no
/// copy per packet). Incomplete input yields `Ok(None)`; invalid input yields the error
/// once and every time after (the stream cannot be resynchronised, spec §12.1).
///
/// ```
/// use fleetwire::{Deframer, ErrorCode};
/// let mut d = Deframer::new(1024);
/// d.extend(&[0x10, 0x00, 0x04, 0x01]); // DATA claiming 1025 bytes...
/// assert!(d.next_packet().unwrap().is_none()); // ...but the header is not complete yet
/// d.extend(&[0, 0, 0, 0]);
/// let err = d.next_packet().unwrap_err();
/// assert_eq!(err.code(), ErrorCode::PAYLOAD_TOO_LARGE);
/// assert_eq!(d.offset(), 0); // the failing packet starts at stream offset 0
/// ```
#[derive(Debug)]
pub struct Deframer {
    buf: BytesMut,
    max_payload: u16,
    /// The validated header of the packet being assembled.
    header: Option<Header>,
    /// Stream offset of the first byte in `buf`.
    offset: u64,
    failed: Option<Error>,
}

impl Deframer {
    /// A deframer that rejects payloads longer than `max_payload` (§4.5).
    pub fn new(max_payload: u16) -> Deframer {
        Deframer {
            buf: BytesMut::new(),
            max_payload,
            header: None,
            offset: 0,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Returns the next complete packet, `Ok(None)` when more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let header = match self.header {
            Some(h) => h,
            None => match Header::parse(&self.buf, self.max_payload) {
                Ok(Status::Complete(h)) => {
                    self.header = Some(h);
                    h
                }
                Ok(Status::Incomplete { .. }) => return Ok(None),
                Err(e) => {
                    self.failed = Some(e);
                    return Err(e);
                }
            },
        };
        let total = header.packet_len();
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total);
        let payload = frame.split_off(header.len()).freeze();
        self.header = None;
        self.offset += total as u64;
        Ok(Some(Packet { header, payload }))
    }

    /// Moves up to `max` complete packets into `batch` (cleared first) and returns how
    /// many. The packets share one reference-counted buffer: one split per batch instead
    /// of one per packet.
    ///
    /// An invalid packet after some valid ones ends the batch; the error is returned by
    /// the next call (and every call after it), with [`offset`](Deframer::offset) at the
    /// failing packet.
    ///
    /// ```
    /// use fleetwire::{Batch, Deframer};
    /// let mut d = Deframer::new(u16::MAX);
    /// d.extend(&[0x10, 0, 0, 1, 0, 0, 0, 0, 7, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10]);
    /// let mut batch = Batch::default();
    /// assert_eq!(d.next_batch(&mut batch, 64).unwrap(), 2);
    /// assert_eq!(batch.iter().next().unwrap().payload, &[7]);
    /// assert_eq!(d.buffered(), 1);
    /// ```
    pub fn next_batch(&mut self, batch: &mut Batch, max: usize) -> Result<usize, Error> {
        batch.clear();
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut consumed = 0;
        while batch.entries.len() < max {
            match PacketRef::parse(&self.buf[consumed..], self.max_payload) {
                Ok(Status::Complete((pkt, _))) => {
                    let start = consumed + pkt.header.len();
                    batch.entries.push((pkt.header, start as u32));
                    consumed = start + pkt.payload.len();
                }
                Ok(Status::Incomplete { .. }) => break,
                Err(e) => {
                    self.failed = Some(e);
                    if batch.entries.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        if consumed > 0 {
            batch.buf = self.buf.split_to(consumed).freeze();
            self.header = None;
            self.offset += consumed as u64;
        }
        Ok(batch.entries.len())
    }

    /// The header of the packet being assembled, once it is complete and valid.
    ///
    /// Lets a caller reject a packet by its header (kind in this state, credit) before
    /// its payload arrives (§6.3).
    pub fn pending_header(&mut self) -> Result<Option<Header>, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.header.is_none() {
            match Header::parse(&self.buf, self.max_payload) {
                Ok(Status::Complete(h)) => self.header = Some(h),
                Ok(Status::Incomplete { .. }) => {}
                Err(e) => {
                    self.failed = Some(e);
                    return Err(e);
                }
            }
        }
        Ok(self.header)
    }

    /// Stream offset of the next byte not yet returned as part of a packet: the start of
    /// the packet being assembled, or of the packet that failed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How much of the next packet is buffered.
    pub fn partial(&self) -> Partial {
        match (self.buf.is_empty(), self.header) {
            (true, _) => Partial::Empty,
            // `next_batch` does not cache the header of the packet it stops at: look.
            (false, None) => match Header::parse(&self.buf, self.max_payload) {
                Ok(Status::Complete(_)) => Partial::Payload,
                _ => Partial::Header,
            },
            (false, Some(_)) => Partial::Payload,
        }
    }

    /// Takes the buffered bytes out, for example to hand the rest of a stream to another
    /// parser; the deframer is left empty.
    pub fn take_buffered(&mut self) -> BytesMut {
        self.header = None;
        self.offset += self.buf.len() as u64;
        self.buf.split()
    }
}

/// Packets deframed together, sharing one reference-counted buffer.
///
/// ```
/// use fleetwire::{Batch, Deframer};
/// let mut d = Deframer::new(u16::MAX);
/// d.extend(&[0x10, 0, 0, 2, 0, 9, 0, 0, 1, 2]);
/// let mut batch = Batch::default();
/// d.next_batch(&mut batch, usize::MAX).unwrap();
/// let owned = batch.packet(0).unwrap(); // a Bytes slice of the shared buffer, no copy
/// assert_eq!(owned.header.route.node, 9);
/// assert_eq!(&owned.payload[..], &[1, 2]);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Batch {
    buf: Bytes,
    /// Header and payload offset in `buf` of each packet.
    entries: Vec<(Header, u32)>,
}

impl Batch {
    /// Number of packets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.buf = Bytes::new();
    }

    /// Borrowed views of the packets, in stream order.
    pub fn iter(&self) -> impl Iterator<Item = PacketRef<'_>> + '_ {
        self.entries.iter().map(|(header, start)| {
            let start = *start as usize;
            PacketRef {
                header: *header,
                payload: &self.buf[start..start + usize::from(header.length)],
            }
        })
    }

    /// The `i`-th packet as an owned packet sharing the batch's buffer.
    pub fn packet(&self, i: usize) -> Option<Packet> {
        let (header, start) = *self.entries.get(i)?;
        let start = start as usize;
        Some(Packet {
            header,
            payload: self.buf.slice(start..start + usize::from(header.length)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, Route};
    use bytes::Bytes;

    fn stream() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..5u8 {
            Packet::data(Route::new(1, i, 0), Bytes::from(vec![i; i as usize]))
                .encode_to_vec(&mut v);
        }
        v
    }

    fn drain(d: &mut Deframer, out: &mut Vec<Packet>) -> Result<(), Error> {
        while let Some(p) = d.next_packet()? {
            out.push(p);
        }
        Ok(())
    }

    #[test]
    fn same_packets_however_the_stream_is_split() {
        let wire = stream();
        let mut whole = Deframer::new(u16::MAX);
        whole.extend(&wire);
        let mut expected = Vec::new();
        drain(&mut whole, &mut expected).unwrap();
        assert_eq!(expected.len(), 5);
        for cut in 0..=wire.len() {
            let mut d = Deframer::new(u16::MAX);
            let mut got = Vec::new();
            d.extend(&wire[..cut]);
            drain(&mut d, &mut got).unwrap();
            d.extend(&wire[cut..]);
            drain(&mut d, &mut got).unwrap();
            assert_eq!(got, expected, "split at {cut}");
        }
        let mut d = Deframer::new(u16::MAX);
        let mut got = Vec::new();
        for b in &wire {
            d.extend(std::slice::from_ref(b));
            drain(&mut d, &mut got).unwrap();
        }
        assert_eq!(got, expected);
        assert_eq!(d.partial(), Partial::Empty);
    }

    #[test]
    fn error_is_sticky_and_located() {
        let mut wire = stream();
        let bad_at = wire.len();
        wire.extend_from_slice(&[0x17, 0, 0, 0, 0, 0, 0, 0]);
        let mut d = Deframer::new(u16::MAX);
        d.extend(&wire);
        let mut got = Vec::new();
        let err = drain(&mut d, &mut got).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UNKNOWN_KIND);
        assert_eq!(got.len(), 5);
        assert_eq!(d.offset(), bad_at as u64);
        assert_eq!(d.next_packet(), Err(err));
    }

    #[test]
    fn batches_match_single_packets_and_keep_errors_for_the_next_call() {
        let mut wire = stream();
        let good = wire.len();
        wire.extend_from_slice(&[0x10, 0x08, 0, 0, 0, 0, 0, 0]);
        let mut single = Deframer::new(u16::MAX);
        single.extend(&wire);
        let mut expected = Vec::new();
        assert!(drain(&mut single, &mut expected).is_err());
        for max in [1, 2, 5, 100] {
            let mut d = Deframer::new(u16::MAX);
            d.extend(&wire);
            let mut batch = Batch::default();
            let mut got = Vec::new();
            let err = loop {
                match d.next_batch(&mut batch, max) {
                    Ok(n) => {
                        assert!(n > 0 && n <= max);
                        got.extend((0..n).map(|i| batch.packet(i).unwrap()));
                    }
                    Err(e) => break e,
                }
            };
            assert_eq!(got, expected);
            assert_eq!(err.code(), ErrorCode::RESERVED_BIT);
            assert_eq!(d.offset(), good as u64);
        }
    }

    #[test]
    fn partial_tracks_header_then_payload() {
        let mut d = Deframer::new(u16::MAX);
        d.extend(&[0x10, 0, 0]);
        assert_eq!(d.partial(), Partial::Header);
        d.extend(&[2, 0, 0, 0, 0, 9]);
        assert_eq!(d.pending_header().unwrap().map(|h| h.length), Some(2));
        assert_eq!(d.partial(), Partial::Payload);
    }
}
