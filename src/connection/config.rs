//! Connection configuration: role, identity, limits, codecs, trust and services.

use crate::control::Role;
use crate::limits::Limits;

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

/// How a [`Connection`](super::Connection) behaves: who we are, what we announce in our
/// HELLO (spec §5.2), what we enforce locally (§11) and whom we trust (§7.4).
///
/// Build one with [`Config::client`], [`Config::node`] or [`Config::proxy`] and adjust
/// the public fields.
///
/// ```
/// use fleetwire::connection::{Config, ServiceSet};
/// use fleetwire::control::Role;
///
/// let mut config = Config::node(7);
/// config.limits.max_payload = 4096;
/// config.services = Some(ServiceSet::from_iter([0, 1]));
/// assert_eq!(config.role, Role::Node);
/// assert!(config.validate().is_ok());
/// assert!(Config { node_id: 0, ..config }.validate().is_err());
/// ```
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
    /// The peer is authenticated (mutual TLS) or configured as a trusted proxy link:
    /// honour X = 1 from it when its role is proxy (§7.4 `[[src.trust]]`).
    pub trust_source: bool,
    /// The peer must authenticate to claim role node or proxy (§7.4 `[[src.auth]]`).
    pub require_auth: bool,
    /// The node id the peer authenticated as (for example the `fleetwire:node:<id>` SAN of
    /// its TLS certificate, §10.2), if any. A node or proxy HELLO with another id is
    /// BAD_HELLO (§10.2 `[[tls.node-binding]]`).
    pub authenticated_id: Option<u16>,
    /// The services registered locally (§7.2); `None` registers every service.
    pub services: Option<ServiceSet>,
}

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

    fn with_role(role: Role, node_id: u16) -> Config {
        Config {
            role,
            node_id,
            limits: Limits::default(),
            codecs: Config::SUPPORTED_CODECS,
            peer_id: 0,
            trust_source: false,
            require_auth: false,
            authenticated_id: None,
            services: None,
        }
    }

    /// A client: node id 0, default limits, every supported codec, every service.
    ///
    /// ```
    /// let c = fleetwire::connection::Config::client();
    /// assert_eq!(c.node_id, 0);
    /// ```
    pub fn client() -> Config {
        Config::with_role(Role::Client, 0)
    }

    /// A node with id `node_id` (1…65534).
    ///
    /// ```
    /// let c = fleetwire::connection::Config::node(3);
    /// assert_eq!(c.node_id, 3);
    /// ```
    pub fn node(node_id: u16) -> Config {
        Config::with_role(Role::Node, node_id)
    }

    /// A proxy with id `node_id` (1…65534). Set [`Config::trust_source`] on links to
    /// other trusted proxies.
    ///
    /// ```
    /// use fleetwire::control::Role;
    /// assert_eq!(fleetwire::connection::Config::proxy(9).role, Role::Proxy);
    /// ```
    pub fn proxy(node_id: u16) -> Config {
        Config::with_role(Role::Proxy, node_id)
    }

    /// Checks the configuration: the HELLO it produces must be valid (§5.2, §11) and the
    /// local limits at least 1.
    ///
    /// ```
    /// let mut c = fleetwire::connection::Config::client();
    /// c.limits.max_empty_run = 0;
    /// assert!(c.validate().is_err());
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
        if self.limits.max_empty_run == 0 {
            return Err("max_empty_run below 1");
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

    #[test]
    fn announced_codecs_masked_by_build() {
        let c = Config {
            codecs: 0xFF,
            ..Config::client()
        };
        assert_eq!(c.announced_codecs(), Config::SUPPORTED_CODECS);
    }
}
