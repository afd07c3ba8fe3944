//! Limits, their defaults and their hard bounds (spec §11, §6.5).

/// Hard bounds of the announced limits (spec §11).
pub mod bounds {
    /// Smallest `max_payload` an endpoint may announce.
    pub const MIN_MAX_PAYLOAD: u16 = 1024;
    /// Smallest `max_decompressed`.
    pub const MIN_MAX_DECOMPRESSED: u32 = 1024;
    /// Largest `max_decompressed` (16 MiB).
    pub const MAX_MAX_DECOMPRESSED: u32 = 16 * 1024 * 1024;
    /// Largest `initial_credit_packets`.
    pub const MAX_CREDIT_PACKETS: u32 = 1 << 20;
    /// Largest `initial_credit_bytes` (2^31 − 1).
    pub const MAX_CREDIT_BYTES: u32 = i32::MAX as u32;
    /// Smallest non-zero `idle_timeout_ms`.
    pub const MIN_IDLE_TIMEOUT_MS: u32 = 1000;
    /// Shortest HELLO payload.
    pub const HELLO_MIN_LEN: usize = 28;
    /// Longest HELLO payload.
    pub const HELLO_MAX_LEN: usize = 1024;
    /// Longest `reason` of GOAWAY and ERROR.
    pub const REASON_MAX_LEN: usize = 256;
}

/// The limits an endpoint announces in its HELLO and enforces locally.
///
/// Start from [`Limits::default`] and adjust the fields, or use the `with_*` setters
/// (the struct is `#[non_exhaustive]`: limits may be added in a minor release).
///
/// ```
/// use fleetwire::Limits;
/// let limits = Limits::default().with_max_payload(4096);
/// assert_eq!(limits.max_ratio, 100);
/// assert!(limits.validate().is_ok());
/// assert!(Limits::default().with_max_payload(1023).validate().is_err());
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Largest payload accepted on the wire (§4.5).
    pub max_payload: u16,
    /// Largest decompressed payload (§9.3).
    pub max_decompressed: u32,
    /// Decompression ratio cap (§9.3).
    pub max_ratio: u8,
    /// Initial packet credit granted to the peer (§8).
    pub initial_credit_packets: u32,
    /// Initial byte credit granted to the peer (§8).
    pub initial_credit_bytes: u32,
    /// Idle timeout in milliseconds, 0 for none (§6.5).
    pub idle_timeout_ms: u32,
    /// Consecutive empty DATA packets tolerated (§11).
    pub max_empty_run: u32,
    /// Packet errors tolerated before TOO_MANY_ERRORS (§12.3).
    pub max_packet_errors: u32,
    /// Handshake timer (§6.5).
    pub handshake_timeout_ms: u64,
    /// Header timer (§6.5).
    pub header_timeout_ms: u64,
    /// Packet timer (§6.5).
    pub packet_timeout_ms: u64,
    /// Drain timer (§6.5).
    pub drain_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_payload: u16::MAX,
            max_decompressed: 262_144,
            max_ratio: 100,
            initial_credit_packets: 1024,
            initial_credit_bytes: 4 * 1024 * 1024,
            idle_timeout_ms: 60_000,
            max_empty_run: 32,
            max_packet_errors: 16,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 5_000,
            packet_timeout_ms: 30_000,
            drain_timeout_ms: 5_000,
        }
    }
}

crate::setters::setters!(Limits {
    with_max_payload => max_payload: u16,
    with_max_decompressed => max_decompressed: u32,
    with_max_ratio => max_ratio: u8,
    with_initial_credit_packets => initial_credit_packets: u32,
    with_initial_credit_bytes => initial_credit_bytes: u32,
    with_idle_timeout_ms => idle_timeout_ms: u32,
    with_max_empty_run => max_empty_run: u32,
    with_max_packet_errors => max_packet_errors: u32,
    with_handshake_timeout_ms => handshake_timeout_ms: u64,
    with_header_timeout_ms => header_timeout_ms: u64,
    with_packet_timeout_ms => packet_timeout_ms: u64,
    with_drain_timeout_ms => drain_timeout_ms: u64,
});

impl Limits {
    /// Checks the announced values against the hard bounds of §11 (the same rules a
    /// receiver applies to a HELLO, §5.2); returns the rule that failed.
    pub fn validate(&self) -> Result<(), &'static str> {
        use bounds::*;
        if self.max_payload < MIN_MAX_PAYLOAD {
            return Err("max_payload below 1024");
        }
        if !(MIN_MAX_DECOMPRESSED..=MAX_MAX_DECOMPRESSED).contains(&self.max_decompressed) {
            return Err("max_decompressed outside 1024..=16777216");
        }
        if self.max_ratio == 0 {
            return Err("max_ratio is zero");
        }
        if !(1..=MAX_CREDIT_PACKETS).contains(&self.initial_credit_packets) {
            return Err("initial_credit_packets outside 1..=1048576");
        }
        if self.initial_credit_bytes < u32::from(self.max_payload)
            || self.initial_credit_bytes > MAX_CREDIT_BYTES
        {
            return Err("initial_credit_bytes outside max_payload..=2^31-1");
        }
        if self.idle_timeout_ms != 0 && self.idle_timeout_ms < MIN_IDLE_TIMEOUT_MS {
            return Err("idle_timeout_ms below 1000");
        }
        Ok(())
    }
}
