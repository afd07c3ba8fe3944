//! Two connections wired together in memory, with a virtual clock: for tests, examples
//! and fuzzing.

use core::fmt;
use std::time::Duration;

use super::{Config, Connection, Event};

/// Rounds after which [`Pair::drive`] stops even if bytes still move (two correct
/// peers reach quiescence in a few rounds).
const MAX_ROUNDS: usize = 10_000;

/// Two [`Connection`]s, `a` and `b`, whose outputs feed each other, and a virtual clock.
///
/// Nothing happens by itself: [`drive`](Pair::drive) moves bytes both ways until neither
/// side has anything to send; [`advance`](Pair::advance) moves the clock and runs the
/// timers. Events stay queued until the test polls them (which grants credit back, §8).
/// An optional chunker splits every transfer at arbitrary points (§2 `[[layer.split]]`).
///
/// ```
/// use fleetwire::connection::{Event, Pair, SendOptions};
/// use fleetwire::Route;
///
/// let mut pair = Pair::client_server();
/// pair.set_chunker(|_remaining| 1); // deliver one byte per read
/// pair.drive();
/// assert!(pair.a.is_established() && pair.b.is_established());
/// pair.b.send_data(Route::default(), b"welcome", SendOptions::default()).unwrap();
/// pair.drive();
/// let events = pair.events_a();
/// assert!(matches!(&events[1], Event::Data { payload, .. } if &payload[..] == b"welcome"));
/// ```
pub struct Pair {
    /// The first connection (the client in [`Pair::client_server`]).
    pub a: Connection,
    /// The second connection (the server in [`Pair::client_server`]).
    pub b: Connection,
    /// The virtual clock, passed as `now` to both connections.
    pub now: Duration,
    chunker: Option<Box<dyn FnMut(usize) -> usize>>,
    buf: Vec<u8>,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("a", &self.a)
            .field("b", &self.b)
            .field("now", &self.now)
            .field("chunked", &self.chunker.is_some())
            .finish()
    }
}

impl Pair {
    /// Two connections opened at time zero with configurations `a` and `b`.
    ///
    /// # Panics
    ///
    /// If either configuration is invalid (see [`Connection::new`]).
    ///
    /// ```
    /// use fleetwire::connection::{Config, Pair};
    /// // two nodes that trust each other by configuration (spec §7.4 [[src.auth]])
    /// let trusting = |id| Config::node(id).with_trust_source(true);
    /// let mut pair = Pair::new(trusting(1), trusting(2));
    /// pair.drive();
    /// assert_eq!(pair.a.peer().map(|p| p.node_id), Some(2));
    /// ```
    pub fn new(a: Config, b: Config) -> Pair {
        Pair {
            a: Connection::new(a, Duration::ZERO),
            b: Connection::new(b, Duration::ZERO),
            now: Duration::ZERO,
            chunker: None,
            buf: Vec::new(),
        }
    }

    /// A client (`a`) and a node with id 1 (`b`), default limits.
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// use fleetwire::control::Role;
    /// let pair = Pair::client_server();
    /// assert_eq!(pair.a.config().role, Role::Client);
    /// ```
    pub fn client_server() -> Pair {
        Pair::new(Config::client(), Config::node(1))
    }

    /// Splits every later transfer: `chunker(remaining)` gives the length of the next
    /// read (clamped to `1..=remaining`).
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// let mut n = 0;
    /// pair.set_chunker(move |_| { n = n % 7 + 1; n });
    /// pair.drive();
    /// assert!(pair.a.is_established());
    /// ```
    pub fn set_chunker(&mut self, chunker: impl FnMut(usize) -> usize + 'static) {
        self.chunker = Some(Box::new(chunker));
    }

    /// Moves what `a` has queued to `b`; returns the byte count.
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// assert_eq!(pair.a_to_b(), 44); // preface + HELLO
    /// assert!(pair.b.is_established() && !pair.a.is_established());
    /// ```
    pub fn a_to_b(&mut self) -> usize {
        self.buf.clear();
        self.a.poll_transmit(&mut self.buf);
        deliver(&self.buf, &mut self.b, self.now, &mut self.chunker);
        self.buf.len()
    }

    /// Moves what `b` has queued to `a`; returns the byte count.
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// pair.b_to_a();
    /// assert!(pair.a.is_established());
    /// ```
    pub fn b_to_a(&mut self) -> usize {
        self.buf.clear();
        self.b.poll_transmit(&mut self.buf);
        deliver(&self.buf, &mut self.a, self.now, &mut self.chunker);
        self.buf.len()
    }

    /// Moves bytes both ways until neither side has anything to send (or 10,000 rounds
    /// passed); returns the bytes moved.
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// assert_eq!(pair.drive(), 88);
    /// assert_eq!(pair.drive(), 0);
    /// ```
    pub fn drive(&mut self) -> usize {
        let mut total = 0;
        for _ in 0..MAX_ROUNDS {
            let moved = self.a_to_b() + self.b_to_a();
            if moved == 0 {
                break;
            }
            total += moved;
        }
        total
    }

    /// Advances the clock by `by` and runs both connections' timers.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// pair.advance(Duration::from_secs(10)); // handshake timer, nothing exchanged
    /// assert!(pair.a.is_closed() && pair.b.is_closed());
    /// ```
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// Takes every queued event of `a`.
    ///
    /// ```
    /// use fleetwire::connection::{Event, Pair};
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// assert!(matches!(pair.events_a()[..], [Event::Established { .. }]));
    /// ```
    pub fn events_a(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.a.poll_event()).collect()
    }

    /// Takes every queued event of `b`.
    ///
    /// ```
    /// use fleetwire::connection::Pair;
    /// let mut pair = Pair::client_server();
    /// pair.drive();
    /// assert_eq!(pair.events_b().len(), 1);
    /// ```
    pub fn events_b(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.b.poll_event()).collect()
    }
}

#[allow(clippy::type_complexity)]
fn deliver(
    bytes: &[u8],
    to: &mut Connection,
    now: Duration,
    chunker: &mut Option<Box<dyn FnMut(usize) -> usize>>,
) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = match chunker {
            Some(f) => f(rest.len()).clamp(1, rest.len()),
            None => rest.len(),
        };
        to.handle_input(now, &rest[..n]);
        rest = &rest[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::SendOptions;
    use crate::Route;

    #[test]
    fn handshake_split_at_every_byte_boundary() {
        let mut whole = Pair::client_server();
        whole.drive();
        let mut reference = Vec::new();
        Connection::new(Config::client(), Duration::ZERO).poll_transmit(&mut reference);
        for cut in 1..reference.len() {
            let mut pair = Pair::client_server();
            let mut first = true;
            pair.set_chunker(move |rest| {
                let n = if first { cut } else { rest };
                first = false;
                n
            });
            pair.a_to_b();
            assert!(pair.b.is_established(), "cut {cut}");
        }
    }

    #[test]
    fn data_survives_random_chunking() {
        let mut pair = Pair::client_server();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        pair.set_chunker(move |rest| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 11) as usize % rest + 1
        });
        pair.drive();
        for i in 0..50u8 {
            pair.a
                .send_data(
                    Route::new(0, 0, i),
                    &vec![i; usize::from(i) * 3],
                    SendOptions::default(),
                )
                .unwrap();
        }
        pair.drive();
        let data: Vec<_> = pair
            .events_b()
            .into_iter()
            .filter_map(|e| match e {
                Event::Data { route, payload, .. } => Some((route.channel, payload.len())),
                _ => None,
            })
            .collect();
        assert_eq!(
            data,
            (0..50u8)
                .map(|i| (i, usize::from(i) * 3))
                .collect::<Vec<_>>()
        );
    }
}
