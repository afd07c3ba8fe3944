//! Control packet payloads (spec §5): HELLO, PING, PONG, GOAWAY, CREDIT, ERROR.
//!
//! Parsing borrows from the payload; encoding appends to a `Vec<u8>`. Fields a receiver
//! must ignore (HELLO's reserved bits and extension bytes) are kept, so that decoding and
//! re-encoding reproduces the input byte for byte.

use nom::number::complete::{be_u16, be_u32, be_u64, be_u8};
use nom::Parser;

use crate::error::{Error, ErrorCode};
use crate::header::{Header, Kind, Route};
use crate::limits::bounds;

/// The HELLO `role` field (§5.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// An endpoint outside the cluster; has no node id of its own.
    Client = 1,
    /// A cluster node hosting services.
    Node = 2,
    /// A forwarding proxy.
    Proxy = 3,
}

impl Role {
    /// The role for a wire value.
    pub fn from_u8(v: u8) -> Option<Role> {
        match v {
            1 => Some(Role::Client),
            2 => Some(Role::Node),
            3 => Some(Role::Proxy),
            _ => None,
        }
    }

    /// The lower-case name used by the vectors.
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Node => "node",
            Role::Proxy => "proxy",
        }
    }
}

/// HELLO (§5.2): versions, role, identity, codecs and limits.
///
/// ```
/// use fleetwire::control::{Hello, Role};
/// use fleetwire::Limits;
/// let hello = Hello::new(Role::Node, 7, &Limits::default(), 0x03);
/// let mut payload = Vec::new();
/// hello.encode(&mut payload);
/// assert_eq!(payload.len(), 28);
/// assert_eq!(Hello::parse(&payload), Ok(hello));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hello<'a> {
    /// Lowest supported version.
    pub min_version: u8,
    /// Highest supported version.
    pub max_version: u8,
    /// Sender's role.
    pub role: Role,
    /// Reserved; ignored by receivers.
    pub hello_flags: u8,
    /// Sender's node id (0 for a client).
    pub node_id: u16,
    /// Id the sender attributes to the receiver, or 0.
    pub peer_id: u16,
    /// Codecs the sender can decompress: bit 0 snappy, bit 1 zlib; others ignored.
    pub codecs: u8,
    /// Decompression ratio cap.
    pub max_ratio: u8,
    /// Largest payload the sender accepts.
    pub max_payload: u16,
    /// Largest decompressed payload the sender accepts.
    pub max_decompressed: u32,
    /// Initial packet credit granted.
    pub initial_credit_packets: u32,
    /// Initial byte credit granted.
    pub initial_credit_bytes: u32,
    /// Sender's idle timeout, 0 for none.
    pub idle_timeout_ms: u32,
    /// Extension bytes after the fixed fields; ignored in version 1.
    pub extensions: &'a [u8],
}

impl<'a> Hello<'a> {
    /// A version-1 HELLO announcing `limits`.
    pub fn new(role: Role, node_id: u16, limits: &crate::Limits, codecs: u8) -> Hello<'static> {
        Hello {
            min_version: 1,
            max_version: 1,
            role,
            hello_flags: 0,
            node_id,
            peer_id: 0,
            codecs,
            max_ratio: limits.max_ratio,
            max_payload: limits.max_payload,
            max_decompressed: limits.max_decompressed,
            initial_credit_packets: limits.initial_credit_packets,
            initial_credit_bytes: limits.initial_credit_bytes,
            idle_timeout_ms: limits.idle_timeout_ms,
            extensions: &[],
        }
    }

    /// Parses and validates a HELLO payload (§5.2).
    pub fn parse(payload: &'a [u8]) -> Result<Hello<'a>, Error> {
        // spec §5.2: shorter than 28 or longer than 1024 bytes is BAD_HELLO.
        if payload.len() < bounds::HELLO_MIN_LEN || payload.len() > bounds::HELLO_MAX_LEN {
            return Err(Error::BadHello("HELLO payload length outside 28..=1024"));
        }
        let (rest, (min_version, max_version, role, hello_flags, node_id, peer_id)) =
            (be_u8, be_u8, be_u8, be_u8, be_u16, be_u16)
                .parse(payload)
                .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| Error::BadHello("short"))?;
        let (extensions, (codecs, max_ratio, max_payload, max_decompressed, cp, cb, idle)) =
            (be_u8, be_u8, be_u16, be_u32, be_u32, be_u32, be_u32)
                .parse(rest)
                .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| Error::BadHello("short"))?;
        let role = Role::from_u8(role).ok_or(Error::BadHello("unknown role"))?;
        let hello = Hello {
            min_version,
            max_version,
            role,
            hello_flags,
            node_id,
            peer_id,
            codecs,
            max_ratio,
            max_payload,
            max_decompressed,
            initial_credit_packets: cp,
            initial_credit_bytes: cb,
            idle_timeout_ms: idle,
            extensions,
        };
        hello.validate()?;
        Ok(hello)
    }

    /// The field rules of the table in §5.2.
    fn validate(&self) -> Result<(), Error> {
        if self.min_version < 1 || self.max_version < self.min_version {
            return Err(Error::BadHello("invalid version range"));
        }
        // spec §5.2: a client MUST send node_id 0; a node or proxy a non-zero id.
        match self.role {
            Role::Client if self.node_id != 0 => {
                return Err(Error::BadHello("client with a node id"))
            }
            Role::Node | Role::Proxy if self.node_id == 0 => {
                return Err(Error::BadHello("node or proxy without a node id"))
            }
            _ => {}
        }
        if self.node_id == 0xFFFF {
            return Err(Error::BadHello("node id 0xFFFF is reserved"));
        }
        let limits = crate::Limits {
            max_payload: self.max_payload,
            max_decompressed: self.max_decompressed,
            max_ratio: self.max_ratio,
            initial_credit_packets: self.initial_credit_packets,
            initial_credit_bytes: self.initial_credit_bytes,
            idle_timeout_ms: self.idle_timeout_ms,
            ..crate::Limits::default()
        };
        limits.validate().map_err(Error::BadHello)
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.min_version,
            self.max_version,
            self.role as u8,
            self.hello_flags,
        ]);
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.extend_from_slice(&self.peer_id.to_be_bytes());
        out.extend_from_slice(&[self.codecs, self.max_ratio]);
        out.extend_from_slice(&self.max_payload.to_be_bytes());
        for v in [
            self.max_decompressed,
            self.initial_credit_packets,
            self.initial_credit_bytes,
            self.idle_timeout_ms,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(self.extensions);
    }
}

/// PING (§5.3).
///
/// ```
/// use fleetwire::control::Ping;
/// let mut p = Vec::new();
/// Ping { id: 1, timestamp: 2 }.encode(&mut p);
/// assert_eq!(Ping::parse(&p), Ok(Ping { id: 1, timestamp: 2 }));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ping {
    /// Sender-chosen id.
    pub id: u64,
    /// Sender's clock, opaque to the receiver.
    pub timestamp: u64,
}

impl Ping {
    /// Payload length.
    pub const LEN: usize = 16;

    /// Parses a PING payload: exactly 16 bytes.
    pub fn parse(payload: &[u8]) -> Result<Ping, Error> {
        let b: &[u8; 16] = payload
            .try_into()
            .map_err(|_| Error::BadControl("PING payload is not 16 bytes"))?;
        Ok(Ping {
            id: u64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
            timestamp: u64::from_be_bytes(b[8..].try_into().unwrap_or_default()),
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
    }
}

/// PONG (§5.4).
///
/// ```
/// use fleetwire::control::Pong;
/// let pong = Pong { id: 1, timestamp: 1000, hold_us: 5 };
/// let mut p = Vec::new();
/// pong.encode(&mut p);
/// assert_eq!(Pong::parse(&p), Ok(pong));
/// assert_eq!(pong.rtt_us(1105), 100);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pong {
    /// The PING's id.
    pub id: u64,
    /// The PING's timestamp.
    pub timestamp: u64,
    /// Microseconds the responder held the PING.
    pub hold_us: u32,
}

impl Pong {
    /// Payload length.
    pub const LEN: usize = 20;

    /// Parses a PONG payload: exactly 20 bytes.
    pub fn parse(payload: &[u8]) -> Result<Pong, Error> {
        if payload.len() != Pong::LEN {
            return Err(Error::BadControl("PONG payload is not 20 bytes"));
        }
        let ping = Ping::parse(&payload[..16])?;
        Ok(Pong {
            id: ping.id,
            timestamp: ping.timestamp,
            hold_us: u32::from_be_bytes([payload[16], payload[17], payload[18], payload[19]]),
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        Ping {
            id: self.id,
            timestamp: self.timestamp,
        }
        .encode(out);
        out.extend_from_slice(&self.hold_us.to_be_bytes());
    }

    /// Round-trip time in the PING sender's clock units: `now - timestamp - hold_us`
    /// (§5.4), saturating at zero.
    pub fn rtt_us(&self, now: u64) -> u64 {
        now.saturating_sub(self.timestamp)
            .saturating_sub(u64::from(self.hold_us))
    }
}

fn parse_reason(bytes: &[u8]) -> Result<&str, Error> {
    // spec §5.5, §5.7: at most 256 bytes of valid UTF-8.
    if bytes.len() > bounds::REASON_MAX_LEN {
        return Err(Error::BadControl("reason longer than 256 bytes"));
    }
    core::str::from_utf8(bytes).map_err(|_| Error::BadControl("reason is not UTF-8"))
}

/// GOAWAY (§5.5).
///
/// ```
/// use fleetwire::control::Goaway;
/// use fleetwire::ErrorCode;
/// let g = Goaway { code: ErrorCode::NO_ERROR, delivered: 42, reason: "bye" };
/// let mut p = Vec::new();
/// g.encode(&mut p);
/// assert_eq!(Goaway::parse(&p), Ok(g));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Goaway<'a> {
    /// Why the connection closes; unknown codes are kept.
    pub code: ErrorCode,
    /// DATA packets of the peer delivered or forwarded.
    pub delivered: u64,
    /// Human-readable reason, at most 256 bytes.
    pub reason: &'a str,
}

impl<'a> Goaway<'a> {
    /// Parses a GOAWAY payload.
    pub fn parse(payload: &'a [u8]) -> Result<Goaway<'a>, Error> {
        let (reason, (code, delivered)) =
            (be_u16, be_u64)
                .parse(payload)
                .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| {
                    Error::BadControl("GOAWAY shorter than 10 bytes")
                })?;
        Ok(Goaway {
            code: ErrorCode(code),
            delivered,
            reason: parse_reason(reason)?,
        })
    }

    /// Appends the payload. A reason longer than 256 bytes is truncated at a character
    /// boundary so that the packet stays valid.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.code.0.to_be_bytes());
        out.extend_from_slice(&self.delivered.to_be_bytes());
        out.extend_from_slice(truncate_reason(self.reason).as_bytes());
    }
}

fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(bounds::REASON_MAX_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// CREDIT (§5.6).
///
/// ```
/// use fleetwire::control::Credit;
/// let mut p = Vec::new();
/// Credit { packets: 1, bytes: 0 }.encode(&mut p);
/// assert_eq!(Credit::parse(&p), Ok(Credit { packets: 1, bytes: 0 }));
/// assert!(Credit::parse(&[0; 8]).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Credit {
    /// Additional packets granted.
    pub packets: u32,
    /// Additional payload bytes granted.
    pub bytes: u32,
}

impl Credit {
    /// Payload length.
    pub const LEN: usize = 8;

    /// Parses a CREDIT payload: exactly 8 bytes, not both zero.
    pub fn parse(payload: &[u8]) -> Result<Credit, Error> {
        if payload.len() != Credit::LEN {
            return Err(Error::BadControl("CREDIT payload is not 8 bytes"));
        }
        let packets = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        let bytes = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
        // spec §5.6: both increments zero is BAD_CONTROL.
        if packets == 0 && bytes == 0 {
            return Err(Error::BadControl("CREDIT with both increments zero"));
        }
        Ok(Credit { packets, bytes })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.packets.to_be_bytes());
        out.extend_from_slice(&self.bytes.to_be_bytes());
    }
}

/// ERROR (§5.7): one packet was discarded.
///
/// ```
/// use fleetwire::control::ErrorReport;
/// use fleetwire::{ErrorCode, Header, Route};
/// let mut failed = Vec::new();
/// Header::data(Route::new(9, 0, 0), 0).encode_to_vec(&mut failed);
/// let e = ErrorReport { code: ErrorCode::NO_ROUTE, header: &failed, reason: "" };
/// let mut p = Vec::new();
/// e.encode(&mut p);
/// assert_eq!(ErrorReport::parse(&p), Ok(e));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ErrorReport<'a> {
    /// The packet error code.
    pub code: ErrorCode,
    /// The discarded packet's header as received: 8 bytes, or 10 when its X flag is set.
    pub header: &'a [u8],
    /// Human-readable reason, at most 256 bytes.
    pub reason: &'a str,
}

impl<'a> ErrorReport<'a> {
    /// Parses an ERROR payload.
    pub fn parse(payload: &'a [u8]) -> Result<ErrorReport<'a>, Error> {
        // spec §5.7: code, then an 8- or 10-byte header chosen by its own X flag.
        if payload.len() < 2 + Header::BASE_LEN {
            return Err(Error::BadControl("ERROR payload too short"));
        }
        let header_len = if payload[3] & 0x80 != 0 {
            Header::MAX_LEN
        } else {
            Header::BASE_LEN
        };
        if payload.len() < 2 + header_len {
            return Err(Error::BadControl("ERROR payload too short for its header"));
        }
        Ok(ErrorReport {
            code: ErrorCode(u16::from_be_bytes([payload[0], payload[1]])),
            header: &payload[2..2 + header_len],
            reason: parse_reason(&payload[2 + header_len..])?,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.code.0.to_be_bytes());
        out.extend_from_slice(self.header);
        out.extend_from_slice(truncate_reason(self.reason).as_bytes());
    }
}

/// A decoded control payload.
///
/// ```
/// use fleetwire::control::{Control, Ping};
/// use fleetwire::Kind;
/// let mut wire = Vec::new();
/// Control::Ping(Ping { id: 7, timestamp: 0 }).encode_packet(&mut wire);
/// assert_eq!(wire[0], 0x12);
/// assert_eq!(Control::parse(Kind::Ping, &wire[8..]), Ok(Control::Ping(Ping { id: 7, timestamp: 0 })));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Control<'a> {
    /// §5.2
    Hello(Hello<'a>),
    /// §5.3
    Ping(Ping),
    /// §5.4
    Pong(Pong),
    /// §5.5
    Goaway(Goaway<'a>),
    /// §5.6
    Credit(Credit),
    /// §5.7
    Error(ErrorReport<'a>),
}

impl<'a> Control<'a> {
    /// Parses the payload of a control packet of `kind`; `None` for DATA.
    pub fn parse(kind: Kind, payload: &'a [u8]) -> Result<Control<'a>, Error> {
        Ok(match kind {
            Kind::Hello => Control::Hello(Hello::parse(payload)?),
            Kind::Ping => Control::Ping(Ping::parse(payload)?),
            Kind::Pong => Control::Pong(Pong::parse(payload)?),
            Kind::Goaway => Control::Goaway(Goaway::parse(payload)?),
            Kind::Credit => Control::Credit(Credit::parse(payload)?),
            Kind::Error => Control::Error(ErrorReport::parse(payload)?),
            Kind::Data => {
                return Err(Error::Other(
                    ErrorCode::INTERNAL_ERROR,
                    "DATA is not control",
                ))
            }
        })
    }

    /// The packet kind.
    pub fn kind(&self) -> Kind {
        match self {
            Control::Hello(_) => Kind::Hello,
            Control::Ping(_) => Kind::Ping,
            Control::Pong(_) => Kind::Pong,
            Control::Goaway(_) => Kind::Goaway,
            Control::Credit(_) => Kind::Credit,
            Control::Error(_) => Kind::Error,
        }
    }

    /// Appends the payload alone.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Control::Hello(c) => c.encode(out),
            Control::Ping(c) => c.encode(out),
            Control::Pong(c) => c.encode(out),
            Control::Goaway(c) => c.encode(out),
            Control::Credit(c) => c.encode(out),
            Control::Error(c) => c.encode(out),
        }
    }

    /// Appends a whole packet with a zero route and no source (right for every
    /// hop-by-hop kind; see [`Control::encode_routed`] for ERROR).
    pub fn encode_packet(&self, out: &mut Vec<u8>) {
        self.encode_routed(Route::default(), None, out);
    }

    /// Appends a whole packet with the given route and source.
    pub fn encode_routed(&self, route: Route, source: Option<u16>, out: &mut Vec<u8>) {
        let start = out.len();
        let header = Header {
            route,
            source,
            ..Header::control(self.kind(), 0)
        };
        header.encode_to_vec(out);
        let body = out.len();
        self.encode(out);
        // Control payloads are bounded (HELLO ≤ 1024, reasons ≤ 256), so this fits.
        let len = u16::try_from(out.len() - body).unwrap_or(u16::MAX);
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn hello_bytes() -> Vec<u8> {
        let mut v = Vec::new();
        Hello::new(Role::Node, 5, &Limits::default(), 3).encode(&mut v);
        v
    }

    #[test]
    fn hello_length_at_limits() {
        let mut v = hello_bytes();
        assert!(Hello::parse(&v[..27]).is_err());
        v.resize(1024, 0);
        assert_eq!(Hello::parse(&v).map(|h| h.extensions.len()), Ok(996));
        v.push(0);
        assert!(matches!(Hello::parse(&v), Err(Error::BadHello(_))));
    }

    #[test]
    fn hello_ignores_reserved_fields_and_round_trips() {
        let mut v = hello_bytes();
        v[3] = 0xFF; // hello_flags
        v[8] = 0xFF; // codecs, reserved bits set
        v.extend_from_slice(b"ext");
        let h = Hello::parse(&v).unwrap();
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, v);
    }

    #[test]
    fn hello_rejects_role_and_id_violations() {
        let mut v = hello_bytes();
        v[2] = 4;
        assert!(Hello::parse(&v).is_err());
        let mut v = hello_bytes();
        v[2] = 1; // client with node id 5
        assert!(Hello::parse(&v).is_err());
        let mut v = hello_bytes();
        v[4..6].copy_from_slice(&[0xFF, 0xFF]);
        assert!(Hello::parse(&v).is_err());
    }

    #[test]
    fn hello_rejects_limits_below_bounds() {
        let mut v = hello_bytes();
        v[10..12].copy_from_slice(&1023u16.to_be_bytes());
        assert!(Hello::parse(&v).is_err());
        v[10..12].copy_from_slice(&1024u16.to_be_bytes());
        assert!(Hello::parse(&v).is_ok());
    }

    #[test]
    fn reason_at_limit_and_over() {
        let mut p = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[b'a'; 256]);
        assert!(Goaway::parse(&p).is_ok());
        p.push(b'a');
        assert!(matches!(Goaway::parse(&p), Err(Error::BadControl(_))));
    }

    #[test]
    fn rejects_invalid_utf8_reason() {
        let p = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xC3];
        assert!(Goaway::parse(&p).is_err());
    }

    #[test]
    fn error_report_header_length_follows_x_flag() {
        let mut p = vec![0x01, 0x00, 0x10, 0x80, 0, 0, 0, 1, 0, 0];
        assert!(ErrorReport::parse(&p).is_err());
        p.extend_from_slice(&[0, 9]);
        assert_eq!(ErrorReport::parse(&p).map(|e| e.header.len()), Ok(10));
    }

    #[test]
    fn fixed_length_payloads_reject_other_lengths() {
        assert!(Ping::parse(&[0; 15]).is_err());
        assert!(Ping::parse(&[0; 17]).is_err());
        assert!(Pong::parse(&[0; 19]).is_err());
        assert!(Credit::parse(&[0, 0, 0, 1, 0, 0, 0]).is_err());
    }

    #[test]
    fn goaway_encode_truncates_long_reason_on_char_boundary() {
        let reason = "é".repeat(200);
        let mut p = Vec::new();
        Goaway {
            code: ErrorCode::NO_ERROR,
            delivered: 0,
            reason: &reason,
        }
        .encode(&mut p);
        let g = Goaway::parse(&p).unwrap();
        assert_eq!(g.reason.len(), 256);
    }
}
