//! Where the library's `tracing` events go: stderr, through a `tracing-subscriber`.
//!
//! `fleetwire node` and `fleetwire proxy` log at INFO by default, in the plain lines they
//! always printed (the event's message, nothing else): connections opened and closed,
//! routes up and down, table swaps, signals; WARN lines (floods, budgets, accept
//! failures) carry a `warning:` tag and the connection's span. `-v` adds DEBUG (packet
//! errors, handshakes, GOAWAYs, the engine's connections and budgets), `-vv` TRACE; with
//! either, or with `RUST_LOG` set (an env filter: `RUST_LOG=fleetwire::transport=debug`),
//! lines are tracing-subscriber's full format: time, level, target, spans and fields.
//! The other subcommands log nothing unless `-v` or `RUST_LOG` asks.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the process's subscriber. `server`: a long-running node or proxy, which logs
/// at INFO without `-v`; `prefix` starts each plain line (`"fleetwire proxy: "`).
pub(crate) fn init(verbose: u8, server: bool, prefix: &'static str) {
    let from_env = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
    if !from_env && verbose == 0 && !server {
        return; // quiet: no subscriber, every event is a disabled callsite
    }
    let filter = if from_env {
        EnvFilter::from_default_env()
    } else {
        EnvFilter::new(match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        })
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if from_env || verbose > 0 {
        let _ = builder.try_init();
    } else {
        let _ = builder.event_format(Plain { prefix }).try_init();
    }
}

/// The plain line: `prefix`, a `warning:`/`error:` tag and the span scope for levels
/// other than INFO, then the event's message alone.
struct Plain {
    prefix: &'static str,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        w.write_str(self.prefix)?;
        let level = *event.metadata().level();
        if level != Level::INFO {
            match level {
                Level::ERROR => w.write_str("error: ")?,
                Level::WARN => w.write_str("warning: ")?,
                _ => write!(w, "{}: ", level.as_str().to_lowercase())?,
            }
            for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
                let ext = span.extensions();
                match ext.get::<FormattedFields<N>>() {
                    Some(f) if !f.is_empty() => write!(w, "{}{{{f}}}: ", span.name())?,
                    _ => write!(w, "{}: ", span.name())?,
                }
            }
        }
        let mut message = Message(&mut w, Ok(()));
        event.record(&mut message);
        message.1?;
        writeln!(w)
    }
}

/// Writes the `message` field only.
struct Message<'a, 'w>(&'a mut Writer<'w>, fmt::Result);

impl tracing::field::Visit for Message<'_, '_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.1 = write!(self.0, "{value:?}");
        }
    }
}
