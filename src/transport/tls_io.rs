//! The TLS pieces the engine drives: rustls's (feature `tls`), or, without it,
//! uninhabited stand-ins with the same methods, so that the engine has one shape either
//! way and a plaintext build carries no TLS code.

#[cfg(feature = "tls")]
pub(crate) use crate::tls::TlsEndpoint;
#[cfg(feature = "tls")]
pub(crate) use rustls::ServerConfig;

#[cfg(not(feature = "tls"))]
pub(crate) use none::{ServerConfig, TlsEndpoint};

#[cfg(not(feature = "tls"))]
mod none {
    use std::convert::Infallible;
    use std::io;
    use std::sync::Arc;

    use crate::connection::Identity;

    /// No TLS server configuration exists without feature `tls`.
    pub(crate) enum ServerConfig {}

    /// No TLS endpoint exists without feature `tls`: every method is unreachable.
    pub(crate) enum TlsEndpoint {}

    impl TlsEndpoint {
        // An inhabited error type: the callers' `Err` arms stay reachable code.
        pub(crate) fn server(config: Arc<ServerConfig>) -> Result<TlsEndpoint, io::Error> {
            match *config {}
        }
        pub(crate) fn feed_tls(&mut self, _: &[u8]) -> Result<usize, Infallible> {
            match *self {}
        }
        pub(crate) fn read_plaintext_bytes(
            &mut self,
            _: &mut bytes::BytesMut,
        ) -> Result<usize, Infallible> {
            match *self {}
        }
        pub(crate) fn write_plaintext(&mut self, _: &[u8]) -> Result<(), Infallible> {
            match *self {}
        }
        pub(crate) fn pending_tls(&self) -> bool {
            match *self {}
        }
        pub(crate) fn take_tls(&mut self, _: &mut Vec<u8>) -> usize {
            match *self {}
        }
        pub(crate) fn write_tls_to(&mut self, _: &mut dyn io::Write) -> io::Result<usize> {
            match *self {}
        }
        pub(crate) fn is_handshaking(&self) -> bool {
            match *self {}
        }
        pub(crate) fn peer_identity(&self) -> Option<Identity> {
            match *self {}
        }
        pub(crate) fn send_close_notify(&mut self) {
            match *self {}
        }
    }
}
