//! Error codes (spec §12.4) and the codec's error type.

use core::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, )*) => {
        impl ErrorCode {
            $( $(#[$doc])* pub const $name: ErrorCode = ErrorCode($value); )*

            /// Every code assigned by the registry of spec §12.4, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            /// The registry name of this code, or `None` for an unassigned code.
            ///
            /// ```
            /// use fleetwire::ErrorCode;
            /// assert_eq!(ErrorCode::FLOOD.name(), Some("FLOOD"));
            /// assert_eq!(ErrorCode(0x7777).name(), None);
            /// ```
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// Looks a code up by its registry name.
            ///
            /// ```
            /// use fleetwire::ErrorCode;
            /// assert_eq!(ErrorCode::from_name("NO_ROUTE"), Some(ErrorCode::NO_ROUTE));
            /// ```
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name {
                    $( stringify!($name) => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }
        }
    };
}

/// A stable error code from the registry of spec §12.4.
///
/// Codes are an open set: an unknown value received in GOAWAY or ERROR is kept as it is
/// (spec §5.5), so this is a newtype rather than an enum.
///
/// ```
/// use fleetwire::ErrorCode;
/// assert!(ErrorCode::TIMEOUT.is_connection_error());
/// assert!(ErrorCode::NO_ROUTE.is_packet_error());
/// assert_eq!(ErrorCode::NO_ROUTE.to_string(), "NO_ROUTE (0x0100)");
/// // Debug prints the registry name, or the raw code when it has none
/// assert_eq!(format!("{:?}", ErrorCode::NO_ROUTE), "NO_ROUTE");
/// assert_eq!(format!("{:?}", ErrorCode(0x7777)), "ErrorCode(0x7777)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ErrorCode(pub u16);

error_codes! {
    /// Graceful close.
    NO_ERROR = 0x0000,
    /// A violation with no more specific code.
    PROTOCOL_ERROR = 0x0001,
    /// The connection preface was wrong (§3).
    BAD_PREFACE = 0x0002,
    /// Version field or version ranges unacceptable (§4.2, §6.2).
    UNSUPPORTED_VERSION = 0x0003,
    /// A reserved R bit was set (§4.8).
    RESERVED_BIT = 0x0004,
    /// An unassigned packet kind (§4.3).
    UNKNOWN_KIND = 0x0005,
    /// An invalid combination of flags (§4.4, §4.7).
    BAD_FLAGS = 0x0006,
    /// Payload Length above the announced `max_payload` (§4.5).
    PAYLOAD_TOO_LARGE = 0x0007,
    /// A malformed control packet (§4.6, §5).
    BAD_CONTROL = 0x0008,
    /// A HELLO with invalid fields (§5.2, §7.4, §10.2).
    BAD_HELLO = 0x0009,
    /// A packet kind not permitted in the connection's state (§6.3).
    UNEXPECTED_PACKET = 0x000A,
    /// Flow-control credit exceeded or overflowed (§8).
    FLOW_CONTROL = 0x000B,
    /// A source extension from a peer not trusted to set it (§7.4).
    SOURCE_FORGED = 0x000C,
    /// A handshake, idle, header or packet timer expired (§6.5).
    TIMEOUT = 0x000D,
    /// Too many consecutive empty packets (§11).
    FLOOD = 0x000E,
    /// The packet error budget was exhausted (§12.3).
    TOO_MANY_ERRORS = 0x000F,
    /// The endpoint failed internally.
    INTERNAL_ERROR = 0x0010,
    /// Local only, never sent: the byte stream ended or failed without GOAWAY (§6.4).
    CONNECTION_LOST = 0x0011,
    /// No route to the destination node (§7.3).
    NO_ROUTE = 0x0100,
    /// The destination service is not registered (§7.2).
    NO_SERVICE = 0x0101,
    /// The payload's codec was not announced by the receiver (§9.3).
    CODEC_NOT_NEGOTIATED = 0x0102,
    /// Malformed compressed data (§9.3).
    DECOMPRESSION_FAILED = 0x0103,
    /// Decompressed output above `max_decompressed` (§9.3).
    DECOMPRESSED_TOO_LARGE = 0x0104,
    /// Decompressed output above `max_ratio` times the input (§9.3).
    RATIO_EXCEEDED = 0x0105,
    /// The route exists but its next hop cannot take the packet (§7.3).
    UNREACHABLE = 0x0106,
}

impl ErrorCode {
    /// Whether this code closes the connection (`0x0000`–`0x00FF`, spec §12.1).
    pub fn is_connection_error(self) -> bool {
        self.0 <= 0x00FF
    }

    /// Whether this code discards a single packet (`0x0100`–`0x01FF`, spec §12.1).
    pub fn is_packet_error(self) -> bool {
        (0x0100..=0x01FF).contains(&self.0)
    }
}

impl fmt::Debug for ErrorCode {
    /// The registry name (`NO_ROUTE`), or `ErrorCode(0xNNNN)` for an unassigned code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ErrorCode(0x{:04X})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:04X})", self.0),
            None => write!(f, "0x{:04X}", self.0),
        }
    }
}

/// Why a byte sequence is not valid Fleetwire.
///
/// Each variant maps to one registry code (`Error::code`); the `&'static str` says which
/// rule failed. Incomplete input is never an `Error` (spec §12.2): parsers return
/// [`Status::Incomplete`](crate::Status::Incomplete) instead.
///
/// ```
/// use fleetwire::{Error, ErrorCode};
/// assert_eq!(Error::ReservedBit.code(), ErrorCode::RESERVED_BIT);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// §3: the 8-byte preface did not match.
    BadPreface,
    /// §4.2: the Version field is not the expected version.
    UnsupportedVersion,
    /// §4.3: the Kind field is unassigned.
    UnknownKind,
    /// §4.8: an R bit is set.
    ReservedBit,
    /// §4.4, §4.7: an invalid flag combination.
    BadFlags(&'static str),
    /// §4.5: Payload Length above `max_payload`.
    PayloadTooLarge,
    /// §4.6, §5: a malformed control packet.
    BadControl(&'static str),
    /// §5.2: a HELLO with invalid fields.
    BadHello(&'static str),
    /// Any other registry code, for errors raised above the codec (state machine,
    /// routing, compression).
    Other(ErrorCode, &'static str),
}

impl Error {
    /// The registry code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadPreface => ErrorCode::BAD_PREFACE,
            Error::UnsupportedVersion => ErrorCode::UNSUPPORTED_VERSION,
            Error::UnknownKind => ErrorCode::UNKNOWN_KIND,
            Error::ReservedBit => ErrorCode::RESERVED_BIT,
            Error::BadFlags(_) => ErrorCode::BAD_FLAGS,
            Error::PayloadTooLarge => ErrorCode::PAYLOAD_TOO_LARGE,
            Error::BadControl(_) => ErrorCode::BAD_CONTROL,
            Error::BadHello(_) => ErrorCode::BAD_HELLO,
            Error::Other(code, _) => *code,
        }
    }

    /// A short description of the rule that failed.
    pub fn detail(&self) -> &'static str {
        match self {
            Error::BadPreface => "preface mismatch",
            Error::UnsupportedVersion => "unsupported version",
            Error::UnknownKind => "unassigned packet kind",
            Error::ReservedBit => "reserved bit set",
            Error::PayloadTooLarge => "payload length above max_payload",
            Error::BadFlags(d) | Error::BadControl(d) | Error::BadHello(d) | Error::Other(_, d) => {
                d
            }
        }
    }
}

impl From<Error> for ErrorCode {
    fn from(e: Error) -> ErrorCode {
        e.code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.detail())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_code() {
        for &code in ErrorCode::ALL {
            let name = code.name().expect("assigned code has a name");
            assert_eq!(ErrorCode::from_name(name), Some(code));
        }
        assert_eq!(ErrorCode::ALL.len(), 25);
    }

    #[test]
    fn scope_follows_code_range() {
        assert!(ErrorCode::INTERNAL_ERROR.is_connection_error());
        assert!(!ErrorCode::INTERNAL_ERROR.is_packet_error());
        assert!(ErrorCode::UNREACHABLE.is_packet_error());
        assert!(ErrorCode(0x01FF).is_packet_error());
        assert!(!ErrorCode(0x0200).is_packet_error());
        assert!(!ErrorCode(0x0200).is_connection_error());
    }

    #[test]
    fn unknown_code_displays_as_hex() {
        assert_eq!(ErrorCode(0x8001).to_string(), "0x8001");
        assert_eq!(ErrorCode::from_name("NOPE"), None);
    }

    #[test]
    fn debug_is_the_registry_name() {
        assert_eq!(format!("{:?}", ErrorCode::NO_ERROR), "NO_ERROR");
        assert_eq!(
            format!("{:?}", ErrorCode::TOO_MANY_ERRORS),
            "TOO_MANY_ERRORS"
        );
        assert_eq!(format!("{:?}", ErrorCode(0x8001)), "ErrorCode(0x8001)");
        assert_eq!(format!("{:?}", Some(ErrorCode::NO_ROUTE)), "Some(NO_ROUTE)");
    }
}
