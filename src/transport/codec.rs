//! [`FleetwireCodec`]: Fleetwire packet framing as a tokio-util `Decoder`/`Encoder`, for
//! applications that run their own tokio IO instead of the engine.

use core::fmt;
use std::io;

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::Error;
use crate::header::{Header, Status};
use crate::packet::Packet;

/// Frames packets (spec §4): the decoder yields validated [`Packet`]s whose payloads
/// are zero-copy slices of the read buffer; the encoder writes header and payload.
///
/// Only framing: the preface, handshake, flow control and the rest of the connection
/// logic are the [`Connection`](crate::Connection)'s.
///
/// **The copy.** tokio-util's `Encoder` appends to one `BytesMut`, so the payload is
/// copied behind the header (tokio#4122). The [`Engine`](super::Engine) avoids that
/// layer: its connection encodes straight into the one buffer that TLS encrypts (or the
/// socket writes), with no intermediate frame buffer.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use tokio_util::codec::{Decoder, Encoder};
/// use fleetwire::transport::FleetwireCodec;
/// use fleetwire::{Packet, Route};
///
/// let mut codec = FleetwireCodec::new(u16::MAX);
/// let mut buf = BytesMut::new();
/// let packet = Packet::data(Route::new(0, 1, 2), Bytes::from_static(b"hello"));
/// codec.encode(packet.clone(), &mut buf).unwrap();
/// let mut half = buf.split_to(6);
/// assert_eq!(codec.decode(&mut half).unwrap(), None); // incomplete, not invalid
/// half.unsplit(buf);
/// assert_eq!(codec.decode(&mut half).unwrap(), Some(packet));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FleetwireCodec {
    max_payload: u16,
}

impl FleetwireCodec {
    /// A codec that rejects payloads longer than `max_payload` as soon as a header
    /// announces one (spec §4.5).
    ///
    /// ```
    /// let codec = fleetwire::transport::FleetwireCodec::new(4096);
    /// assert_eq!(codec.max_payload(), 4096);
    /// ```
    pub fn new(max_payload: u16) -> FleetwireCodec {
        FleetwireCodec { max_payload }
    }

    /// The configured maximum payload.
    ///
    /// ```
    /// assert_eq!(fleetwire::transport::FleetwireCodec::default().max_payload(), 65535);
    /// ```
    pub fn max_payload(&self) -> u16 {
        self.max_payload
    }
}

impl Default for FleetwireCodec {
    fn default() -> FleetwireCodec {
        FleetwireCodec::new(u16::MAX)
    }
}

impl Decoder for FleetwireCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        // spec §4.9: the header is validated (in order) once complete
        let header = match Header::parse(src, self.max_payload)? {
            Status::Complete(h) => h,
            Status::Incomplete { .. } => return Ok(None),
        };
        let total = header.packet_len();
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total);
        let payload = frame.split_off(header.len()).freeze();
        Ok(Some(Packet { header, payload }))
    }
}

impl Encoder<Packet> for FleetwireCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        if usize::from(packet.header.length) != packet.payload.len() {
            return Err(CodecError::LengthMismatch);
        }
        let mut head = [0u8; Header::MAX_LEN];
        let n = packet.header.encode(&mut head);
        dst.reserve(n + packet.payload.len());
        dst.put_slice(&head[..n]);
        // tokio#4122: the Encoder interface forces this copy
        dst.put_slice(&packet.payload);
        Ok(())
    }
}

/// What [`FleetwireCodec`] can fail with.
///
/// ```
/// use fleetwire::transport::CodecError;
/// let e = CodecError::from(std::io::Error::other("boom"));
/// assert!(e.to_string().contains("boom"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CodecError {
    /// The underlying IO failed.
    Io(io::Error),
    /// The stream is not valid Fleetwire (a connection error, spec §12.1).
    Protocol(Error),
    /// A packet to encode whose `header.length` differs from its payload's length.
    LengthMismatch,
}

impl From<io::Error> for CodecError {
    fn from(e: io::Error) -> CodecError {
        CodecError::Io(e)
    }
}

impl From<Error> for CodecError {
    fn from(e: Error) -> CodecError {
        CodecError::Protocol(e)
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Io(e) => write!(f, "io: {e}"),
            CodecError::Protocol(e) => write!(f, "{} ({})", e.detail(), e.code()),
            CodecError::LengthMismatch => f.write_str("header length differs from payload"),
        }
    }
}

impl std::error::Error for CodecError {}
