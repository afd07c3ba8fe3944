//! SIGTERM and SIGINT for the long-running commands (node, proxy).

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The first SIGTERM or SIGINT runs `first` (a graceful shutdown); a second one exits
/// at once with status 130.
pub(crate) fn on_termination(first: impl FnOnce() + Send + 'static) {
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => return tracing::warn!("no signal handling: {e}"),
    };
    std::thread::spawn(move || {
        let mut signals = signals.forever();
        if signals.next().is_some() {
            tracing::info!("shutting down gracefully (signal again to exit at once)");
            first();
        }
        if signals.next().is_some() {
            std::process::exit(130);
        }
    });
}
