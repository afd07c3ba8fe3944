//! Connection configuration: role, identity, limits, codecs, trust and services.

use crate::control::Role;
use crate::limits::Limits;

/// The lowest `max_empty_run` a receiver may configure (spec §11
/// `[[limit.empty-run-floor]]`).
pub const MIN_MAX_EMPTY_RUN: u32 = 32;

/// A set of service numbers (0–255): the services this endpoint registers (spec §7.2).
///
/// ```
/// use fleetwire::connection::ServiceSet;
/// let mut s = ServiceSet::empty();
/// s.insert(0);
/// s.insert(200);
/// assert!(s.contains(200) && !s.contains(1));
/// assert!(ServiceSet::all().contains(255));
/// assert_eq!(ServiceSet::from_iter([1, 2]).contains(2), true);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ServiceSet([u64; 4]);

impl ServiceSet {
    /// No service.
    ///
    /// ```
    /// assert!(!fleetwire::connection::ServiceSet::empty().contains(0));
    /// ```
    pub const fn empty() -> ServiceSet {
        ServiceSet([0; 4])
    }

    /// Every service.
    ///
    /// ```
    /// assert!(fleetwire::connection::ServiceSet::all().contains(0));
    /// ```
    pub const fn all() -> ServiceSet {
        ServiceSet([u64::MAX; 4])
    }

    /// Adds `service`.
    ///
    /// ```
    /// let mut s = fleetwire::connection::ServiceSet::empty();
    /// s.insert(7);
    /// assert!(s.contains(7));
    /// ```
    pub fn insert(&mut self, service: u8) {
        self.0[usize::from(service >> 6)] |= 1 << (service & 63);
    }

    /// Removes `service`.
    ///
    /// ```
    /// let mut s = fleetwire::connection::ServiceSet::all();
    /// s.remove(7);
    /// assert!(!s.contains(7) && s.contains(8));
    /// ```
    pub fn remove(&mut self, service: u8) {
        self.0[usize::from(service >> 6)] &= !(1 << (service & 63));
    }

    /// Whether `service` is in the set.
    ///
    /// ```
    /// let s: fleetwire::connection::ServiceSet = [1, 2].into_iter().collect();
    /// assert!(s.contains(1) && !s.contains(3));
    /// ```
    pub fn contains(&self, service: u8) -> bool {
        self.0[usize::from(service >> 6)] & (1 << (service & 63)) != 0
    }
}

impl FromIterator<u8> for ServiceSet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> ServiceSet {
        let mut s = ServiceSet::empty();
        for service in iter {
            s.insert(service);
        }
        s
    }
}

/// The role an authenticated identity names (spec §10.2): a certificate URI
/// `fleetwire:node:<id>` names a node, `fleetwire:proxy:<id>` a proxy.
///
/// ```
/// use fleetwire::connection::IdentityRole;
/// assert_eq!(IdentityRole::Proxy.name(), "proxy");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum IdentityRole {
    /// `fleetwire:node:<id>`: authenticates a node id, never a proxy.
    Node,
    /// `fleetwire:proxy:<id>`: authenticates a node id and the proxy role (§7.4).
    Proxy,
}

impl IdentityRole {
    /// `"node"` or `"proxy"`, as in the certificate URI and the vectors.
    ///
    /// ```
    /// assert_eq!(fleetwire::connection::IdentityRole::Node.name(), "node");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            IdentityRole::Node => "node",
            IdentityRole::Proxy => "proxy",
        }
    }
}

/// The identity a peer authenticated with (spec §10.2 `[[tls.node-binding]]`), for
/// example from the URI subject alternative name of its TLS certificate: a node id and
/// whether it names a node or a proxy.
///
/// ```
/// use fleetwire::connection::{Identity, IdentityRole};
/// let id = Identity::proxy(9);
/// assert_eq!((id.role, id.node_id), (IdentityRole::Proxy, 9));
/// assert_eq!(Identity::node(3).role, IdentityRole::Node);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Identity {
    /// Node or proxy.
    pub role: IdentityRole,
    /// The node id the identity names.
    pub node_id: u16,
}

impl Identity {
    /// A node identity (`fleetwire:node:<id>`).
    ///
    /// ```
    /// assert_eq!(fleetwire::connection::Identity::node(5).node_id, 5);
    /// ```
    pub const fn node(node_id: u16) -> Identity {
        Identity {
            role: IdentityRole::Node,
            node_id,
        }
    }

    /// A proxy identity (`fleetwire:proxy:<id>`).
    ///
    /// ```
    /// assert_eq!(fleetwire::connection::Identity::proxy(5).node_id, 5);
    /// ```
    pub const fn proxy(node_id: u16) -> Identity {
        Identity {
            role: IdentityRole::Proxy,
            node_id,
        }
    }
}

/// How a [`Connection`](super::Connection) behaves: who we are, what we announce in our
/// HELLO (spec §5.2), what we enforce locally (§11) and whom we trust (§7.4).
///
/// Build one with [`Config::client`] (also [`Config::default`]), [`Config::node`] or
/// [`Config::proxy`] and adjust the public fields or use the `with_*` setters (the
/// struct is `#[non_exhaustive]`: settings may be added in a minor release).
///
/// ```
/// use fleetwire::connection::{Config, ServiceSet};
/// use fleetwire::control::Role;
///
/// let mut config = Config::node(7).with_services(Some(ServiceSet::from_iter([0, 1])));
/// config.limits.max_payload = 4096;
/// assert_eq!(config.role, Role::Node);
/// assert!(config.validate().is_ok());
/// assert!(config.with_node_id(0).validate().is_err());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Config {
    /// Our HELLO role (§5.2).
    pub role: Role,
    /// Our node id: 0 for a client, 1…65534 for a node or proxy (§5.2, §7.1).
    pub node_id: u16,
    /// Limits announced in our HELLO and enforced on input (§11, §6.5).
    pub limits: Limits,
    /// The codecs we can decompress: HELLO `codecs` bitmask, bit 0 snappy, bit 1 zlib
    /// (§5.2). Bits for codecs this build cannot decompress are cleared before sending
    /// (without the `compression` feature, only "none" is supported).
    pub codecs: u8,
    /// The id we attribute to a client peer, sent in HELLO `peer_id`, 0 for none
    /// (§5.2 `[[hello.peer-id]]`). It is the source of a client peer's packets (§7.4).
    pub peer_id: u16,
    /// The peer is trusted by explicit local configuration (for example its address is
    /// listed as a trusted node or proxy, or it is the configured address this endpoint
    /// connected to): its role node or proxy is accepted without a certificate (§7.4
    /// `[[src.auth]]`), and X = 1 from it is honoured when its role is proxy (§7.4
    /// `[[src.trust]]`). A peer that authenticated with a matching identity
    /// ([`Config::authenticated`]) needs no such configuration. Never set it by default:
    /// it is what lets a peer choose the sources every node behind us trusts.
    pub trust_source: bool,
    /// (Clients.) Kept for compatibility: a client always treats the server it connected
    /// to as a trusted proxy when the server's role is proxy, and honours X = 1 from it
    /// (§7.4 `[[src.client-trusts-server]]`), whatever this field says. It is `true` for
    /// [`Config::client`]; [`Config::validate`] rejects it for a node or proxy.
    pub trust_server_as_proxy: bool,
    /// The peer must be authenticated to claim role node or proxy (§7.4
    /// `[[src.auth]]`): a node or proxy HELLO is BAD_HELLO unless
    /// [`Config::authenticated`] names its role and node id or [`Config::trust_source`]
    /// trusts the peer by configuration. `true` for [`Config::node`] and
    /// [`Config::proxy`] (the spec allows no other default), `false` for
    /// [`Config::client`] (a client accepts the server it connected to). Setting it to
    /// `false` on a node or proxy trusts every peer's claimed role: explicit
    /// configuration for a closed network or a test.
    ///
    /// ```
    /// use fleetwire::connection::Config;
    /// assert!(Config::node(1).require_auth && Config::proxy(2).require_auth);
    /// assert!(!Config::client().require_auth);
    /// ```
    pub require_auth: bool,
    /// The identity the peer authenticated with (the `fleetwire:node:<id>` or
    /// `fleetwire:proxy:<id>` URI of its TLS certificate, §10.2), if any.
    ///
    /// - A node or proxy HELLO whose `node_id` differs is BAD_HELLO (§10.2
    ///   `[[tls.node-binding]]`).
    /// - Only a proxy identity authenticates the peer as a proxy, so that X = 1 from it
    ///   is honoured (§7.4 `[[src.trust]]`); a peer announcing role proxy with a node
    ///   identity is not authenticated as a proxy (and, with
    ///   [`Config::require_auth`], is BAD_HELLO).
    pub authenticated: Option<Identity>,
    /// The services registered locally (§7.2); `None` registers every service.
    pub services: Option<ServiceSet>,
    /// DATA payloads shorter than this many bytes are sent uncompressed whatever codec
    /// the send asks for (§9.2 `[[comp.threshold]]`); 0 tries every payload. Ignored
    /// without the `compression` feature. Default [`Config::COMPRESS_THRESHOLD`].
    ///
    /// ```
    /// use fleetwire::connection::Config;
    /// let forced = Config::node(1).with_compress_threshold(0);
    /// assert_eq!(Config::node(1).compress_threshold, Config::COMPRESS_THRESHOLD);
    /// # let _ = forced;
    /// ```
    pub compress_threshold: usize,
    /// PINGs answered per second (spec §11 `[[limit.ping-rate]]`), counted in windows
    /// of one second: the PING that exceeds it closes the connection with FLOOD. 0 for
    /// no limit. Default [`Config::MAX_PING_RATE`].
    ///
    /// ```
    /// let c = fleetwire::connection::Config::node(1).with_max_ping_rate(100);
    /// assert!(c.validate().is_ok());
    /// ```
    pub max_ping_rate: u32,
    /// ERROR packets accepted per second (spec §5.7 `[[error.rate]]`: an ERROR takes no
    /// flow-control credit), counted in windows of one second like
    /// [`Config::max_ping_rate`]: the ERROR that exceeds it closes the connection with
    /// FLOOD. 0 for no limit. Default [`Config::MAX_ERROR_RATE`].
    ///
    /// ```
    /// let c = fleetwire::connection::Config::node(1).with_max_error_rate(100);
    /// assert!(c.validate().is_ok());
    /// ```
    pub max_error_rate: u32,
    /// Events that hold no flow-control credit (ERROR reports, PONGs, HELLO, …) that
    /// may wait to be polled: one more closes the connection with FLOOD (an ERROR takes
    /// no credit, spec §5.7 `[[error.rate]]`, so without this bound a peer could queue
    /// them without end behind a DATA event the application cannot take yet).
    /// Default [`Config::MAX_QUEUED_EVENTS`]; at least 1.
    ///
    /// ```
    /// let c = fleetwire::connection::Config::client();
    /// assert_eq!(c.max_queued_events, fleetwire::connection::Config::MAX_QUEUED_EVENTS);
    /// ```
    pub max_queued_events: u32,
}

/// A [`Config`] that fails [`Config::validate`], with the rule it breaks; see
/// [`Connection::try_new`](super::Connection::try_new).
///
/// ```
/// use fleetwire::connection::ConfigError;
/// let e = ConfigError("max_empty_run below 32");
/// assert_eq!(e.to_string(), "invalid fleetwire connection config: max_empty_run below 32");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConfigError(pub &'static str);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid fleetwire connection config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    /// [`Config::client`].
    ///
    /// ```
    /// use fleetwire::connection::Config;
    /// assert_eq!(Config::default().node_id, Config::client().node_id);
    /// ```
    fn default() -> Config {
        Config::client()
    }
}

crate::setters::setters!(Config {
    with_role => role: Role,
    with_node_id => node_id: u16,
    with_limits => limits: Limits,
    with_codecs => codecs: u8,
    with_peer_id => peer_id: u16,
    with_trust_source => trust_source: bool,
    with_trust_server_as_proxy => trust_server_as_proxy: bool,
    with_require_auth => require_auth: bool,
    with_authenticated => authenticated: Option<Identity>,
    with_services => services: Option<ServiceSet>,
    with_compress_threshold => compress_threshold: usize,
    with_max_ping_rate => max_ping_rate: u32,
    with_max_error_rate => max_error_rate: u32,
    with_max_queued_events => max_queued_events: u32,
});

impl Config {
    /// The codecs this build can decompress (HELLO bitmask): snappy and zlib with the
    /// `compression` feature, none without.
    ///
    /// ```
    /// use fleetwire::connection::Config;
    /// assert_eq!(Config::client().codecs, Config::SUPPORTED_CODECS);
    /// ```
    #[cfg(feature = "compression")]
    pub const SUPPORTED_CODECS: u8 = 0x03;
    /// The codecs this build can decompress (HELLO bitmask): snappy and zlib with the
    /// `compression` feature, none without.
    ///
    /// ```
    /// use fleetwire::connection::Config;
    /// assert_eq!(Config::client().codecs, Config::SUPPORTED_CODECS);
    /// ```
    #[cfg(not(feature = "compression"))]
    pub const SUPPORTED_CODECS: u8 = 0x00;

    /// The default [`Config::compress_threshold`]:
    /// [`limits::COMPRESS_THRESHOLD`](crate::limits::COMPRESS_THRESHOLD).
    ///
    /// ```
    /// assert_eq!(fleetwire::connection::Config::COMPRESS_THRESHOLD, 128);
    /// ```
    pub const COMPRESS_THRESHOLD: usize = crate::limits::COMPRESS_THRESHOLD;

    /// The default [`Config::max_ping_rate`]: far above a keepalive or a ping-pong
    /// latency probe on loopback, far below what a flooding peer sends.
    ///
    /// ```
    /// assert_eq!(fleetwire::connection::Config::MAX_PING_RATE, 100_000);
    /// ```
    pub const MAX_PING_RATE: u32 = 100_000;

    /// The default [`Config::max_error_rate`]: far above what packet errors on a
    /// healthy link produce, far below what a flooding peer sends.
    ///
    /// ```
    /// assert_eq!(fleetwire::connection::Config::MAX_ERROR_RATE, 100_000);
    /// ```
    pub const MAX_ERROR_RATE: u32 = 100_000;

    /// The default [`Config::max_queued_events`] (each at most a few hundred bytes).
    ///
    /// ```
    /// assert_eq!(fleetwire::connection::Config::MAX_QUEUED_EVENTS, 4096);
    /// ```
    pub const MAX_QUEUED_EVENTS: u32 = 4096;

    fn for_role(role: Role, node_id: u16) -> Config {
        Config {
            role,
            node_id,
            limits: Limits::default(),
            codecs: Config::SUPPORTED_CODECS,
            peer_id: 0,
            trust_source: false,
            trust_server_as_proxy: role == Role::Client,
            // spec §7.4 [[src.auth]]: never trust a claimed node or proxy role by default
            require_auth: role != Role::Client,
            authenticated: None,
            services: None,
            compress_threshold: Config::COMPRESS_THRESHOLD,
            max_ping_rate: Config::MAX_PING_RATE,
            max_error_rate: Config::MAX_ERROR_RATE,
            max_queued_events: Config::MAX_QUEUED_EVENTS,
        }
    }

    /// A client: node id 0, default limits, every supported codec, every service.
    ///
    /// ```
    /// let c = fleetwire::connection::Config::client();
    /// assert_eq!(c.node_id, 0);
    /// ```
    pub fn client() -> Config {
        Config::for_role(Role::Client, 0)
    }

    /// A node with id `node_id` (1…65534).
    ///
    /// ```
    /// let c = fleetwire::connection::Config::node(3);
    /// assert_eq!(c.node_id, 3);
    /// ```
    pub fn node(node_id: u16) -> Config {
        Config::for_role(Role::Node, node_id)
    }

    /// A proxy with id `node_id` (1…65534). Set [`Config::trust_source`] on links to
    /// other trusted proxies.
    ///
    /// ```
    /// use fleetwire::control::Role;
    /// assert_eq!(fleetwire::connection::Config::proxy(9).role, Role::Proxy);
    /// ```
    pub fn proxy(node_id: u16) -> Config {
        Config::for_role(Role::Proxy, node_id)
    }

    /// Checks the configuration: the HELLO it produces must be valid (§5.2, §11),
    /// `max_empty_run` at least 32 (§11 `[[limit.empty-run-floor]]`) and
    /// `max_packet_errors` at least 1.
    ///
    /// ```
    /// let mut c = fleetwire::connection::Config::client();
    /// c.limits.max_empty_run = 31;
    /// assert!(c.validate().is_err());
    /// c.limits.max_empty_run = 32;
    /// assert!(c.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), &'static str> {
        self.limits.validate()?;
        match self.role {
            Role::Client if self.node_id != 0 => return Err("a client has node id 0"),
            Role::Node | Role::Proxy if self.node_id == 0 || self.node_id == 0xFFFF => {
                return Err("a node or proxy id is 1..=65534")
            }
            _ => {}
        }
        if self.peer_id == 0xFFFF {
            return Err("peer_id 0xFFFF is reserved");
        }
        // spec §11 [[limit.empty-run-floor]]: never configured below 32
        if self.max_queued_events == 0 {
            return Err("max_queued_events is zero");
        }
        if self.limits.max_empty_run < MIN_MAX_EMPTY_RUN {
            return Err("max_empty_run below 32");
        }
        if self.trust_server_as_proxy && self.role != Role::Client {
            return Err("trust_server_as_proxy is for clients");
        }
        if self.limits.max_packet_errors == 0 {
            return Err("max_packet_errors below 1");
        }
        Ok(())
    }

    /// The `codecs` field actually announced: our bits, restricted to what we support.
    pub(crate) fn announced_codecs(&self) -> u8 {
        self.codecs & Config::SUPPORTED_CODECS
    }

    /// Whether `service` is registered locally (§7.2).
    pub(crate) fn has_service(&self, service: u8) -> bool {
        self.services.is_none_or(|s| s.contains(service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_set_covers_all_256_values() {
        let mut s = ServiceSet::empty();
        for v in 0..=255u8 {
            assert!(!s.contains(v));
            s.insert(v);
            assert!(s.contains(v));
        }
        assert_eq!(s, ServiceSet::all());
        s.remove(64);
        assert!(!s.contains(64) && s.contains(63) && s.contains(65));
    }

    #[test]
    fn constructors_validate() {
        assert!(Config::client().validate().is_ok());
        assert!(Config::node(1).validate().is_ok());
        assert!(Config::proxy(65534).validate().is_ok());
        assert!(Config::node(65535).validate().is_err());
        assert!(Config {
            node_id: 1,
            ..Config::client()
        }
        .validate()
        .is_err());
    }

    // trace: limit.empty-run-floor
    #[test]
    fn max_empty_run_floor_is_32() {
        let mut c = Config::node(1);
        c.limits.max_empty_run = 31;
        assert_eq!(c.validate(), Err("max_empty_run below 32"));
        c.limits.max_empty_run = 32;
        assert_eq!(c.validate(), Ok(()));
        c.limits.max_empty_run = u32::MAX;
        assert_eq!(c.validate(), Ok(()));
        c.limits.max_empty_run = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn trust_server_as_proxy_only_for_clients() {
        let c = Config {
            trust_server_as_proxy: true,
            ..Config::client()
        };
        assert!(c.validate().is_ok());
        let n = Config {
            trust_server_as_proxy: true,
            ..Config::node(1)
        };
        assert!(n.validate().is_err());
    }

    #[test]
    fn announced_codecs_masked_by_build() {
        let c = Config {
            codecs: 0xFF,
            ..Config::client()
        };
        assert_eq!(c.announced_codecs(), Config::SUPPORTED_CODECS);
    }
}
