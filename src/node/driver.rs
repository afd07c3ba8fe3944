//! The loop that drives one [`Connection`] over one [`Transport`] with a real clock.

use std::time::Instant;

use super::transport::{Clock, Input, Transport};
use super::{CloseInfo, NodeError};
use crate::connection::{Config, Connection};

/// What one [`Driver::step`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Step {
    /// Input was processed or a timer ran.
    Progress,
    /// The byte stream ended (the connection is lost unless it was already closed).
    Eof,
}

/// A connection, its byte stream and the clock that times it.
pub(crate) struct Driver {
    pub(crate) conn: Connection,
    pub(crate) io: Transport,
    pub(crate) clock: Clock,
    out: Vec<u8>,
}

impl Driver {
    /// Opens the connection once the byte stream is available (after the TLS handshake,
    /// spec §6.5), which queues preface and HELLO (spec §3 `[[preface.send]]`), and
    /// processes any plaintext that arrived with the TLS handshake.
    pub(crate) fn open(io: Transport, config: Config, clock: Clock) -> Result<Driver, NodeError> {
        let conn = Connection::new(config, clock.now());
        let mut driver = Driver {
            conn,
            io,
            clock,
            out: Vec::with_capacity(16 * 1024),
        };
        if !driver.io.plain.is_empty() {
            driver
                .conn
                .handle_input(driver.clock.now(), &driver.io.plain);
            driver.io.plain.clear();
        }
        driver.flush()?;
        Ok(driver)
    }

    pub(crate) fn now(&self) -> std::time::Duration {
        self.clock.now()
    }

    /// Writes everything the connection has queued, in one write (spec §10.3).
    pub(crate) fn flush(&mut self) -> Result<(), NodeError> {
        if self.conn.has_transmit() {
            self.out.clear();
            self.conn.poll_transmit(&mut self.out);
            self.io.write(&self.out)?;
        }
        Ok(())
    }

    /// One round: flush, wait for input until the connection's next timer or `until`,
    /// whichever is first, then hand the input or the time to the connection.
    pub(crate) fn step(&mut self, until: Option<Instant>) -> Result<Step, NodeError> {
        self.flush()?;
        let timer = self.conn.poll_timeout().map(|at| self.clock.instant(at));
        let deadline = match (timer, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let input = self.io.read(deadline)?;
        let now = self.clock.now();
        match input {
            Input::Data => {
                // spec §6.5 [[timeout.first]]: handle_input runs expired timers first
                self.conn.handle_input(now, &self.io.plain);
                self.io.plain.clear();
            }
            Input::Timeout => self.conn.handle_timeout(now),
            Input::Eof => {
                self.conn.handle_timeout(now);
                return Ok(Step::Eof);
            }
        }
        self.flush()?;
        Ok(Step::Progress)
    }

    /// The record of a stream that ended without GOAWAY (spec §6.4: CONNECTION_LOST,
    /// reported locally, never sent).
    pub(crate) fn lost(&self) -> CloseInfo {
        CloseInfo::lost("the byte stream ended without GOAWAY")
    }

    /// Flushes the last packets (a GOAWAY) and ends the stream.
    pub(crate) fn finish(&mut self) {
        let _ = self.flush();
        self.io.finish();
    }
}
