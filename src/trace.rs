//! `tracing` events behind feature `tracing`: with the feature off these macros expand
//! to nothing, so the core stays `bytes` + `nom`; with it on and no subscriber (or the
//! level filtered out) an event costs one check of the callsite's interest, never a
//! formatting of its fields.
//!
//! Targets are module paths (`fleetwire::connection::recv`, `fleetwire::transport::conn`,
//! `fleetwire::node::server`, `fleetwire::transport::proxy`), so a filter such as
//! `RUST_LOG=fleetwire::transport=debug` selects a layer.

/// A `tracing` event at `$level` (`trace`, `debug`, `info`, `warn`, `error`) when feature
/// `tracing` is on; nothing otherwise. The arguments are those of `tracing::event!`.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "tracing")]
        {
            ::tracing::$level!($($arg)+);
        }
    }};
}

pub(crate) use event;
