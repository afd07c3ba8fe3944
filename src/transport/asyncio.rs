//! The async face of the engine for tokio users (or any executor): a `Stream` of events
//! (the engine's, or one connection's) and a `Sink` of messages. Wakers replace the condition variable; the IO threads and
//! bounds are the same.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::sync::Arc;

use futures_core::Stream;
use futures_sink::Sink;

use super::engine::{push_send_with, ConnSender, Engine};
use super::shared::{Command, ConnEvents, Inner};
use super::sync::lock;
use super::types::{AppEvent, ConnId, Outgoing, SendError};

/// Every event of the engine as a `futures_core::Stream`; see [`Engine::events`].
///
/// Takes the same queue as [`Engine::recv_batch`] (use one or the other): each time its
/// buffer is empty it takes every ready event under one lock. The events of a
/// connection that has a stream of its own ([`Engine::events_for`]) go there instead. It ends (`None`) once the
/// engine was shut down ([`Engine::shutdown`], or dropped) and every event before that
/// was taken.
///
/// ```
/// use fleetwire::transport::{Engine, EngineConfig};
/// let engine = Engine::new(EngineConfig::default()).unwrap();
/// let stream = engine.events();
/// # drop(stream);
/// ```
pub struct EventStream {
    inner: Arc<Inner>,
    buf: VecDeque<AppEvent>,
}

impl Stream for EventStream {
    type Item = AppEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AppEvent>> {
        let this = self.get_mut();
        if let Some(e) = this.buf.pop_front() {
            return Poll::Ready(Some(e));
        }
        let mut taken = {
            let mut q = lock(&this.inner.app);
            if q.events.is_empty() && q.stopped {
                return Poll::Ready(None);
            }
            if q.events.is_empty() {
                q.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            std::mem::take(&mut q.events)
        };
        this.inner.consumed(&taken);
        this.buf.extend(taken.drain(..));
        Poll::Ready(this.buf.pop_front())
    }
}

/// One connection's events as a `futures_core::Stream`; see [`Engine::events_for`].
///
/// While it exists, every event of its connection comes here, not to the engine-wide
/// queue ([`Engine::events`], [`Engine::recv_batch`]); events of the connection already
/// waiting there when it was made are moved into it, in order. It ends (`None`) after
/// yielding the connection's [`AppEvent::Closed`], or once the engine was shut down and
/// every event before that was taken. Each wake-up takes every ready event under one
/// lock. Dropping it hands the events it did not yield back to the engine-wide queue.
///
/// ```
/// use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
/// let engine = Engine::new(EngineConfig::default()).unwrap();
/// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
/// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
/// let stream = engine.events_for(conn).unwrap();
/// assert_eq!(stream.conn(), conn);
/// ```
pub struct ConnEventStream {
    inner: Arc<Inner>,
    conn: ConnId,
    own: Arc<ConnEvents>,
    buf: VecDeque<AppEvent>,
}

impl ConnEventStream {
    /// The connection.
    ///
    /// ```
    /// # use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
    /// # let engine = Engine::new(EngineConfig::default()).unwrap();
    /// # let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// assert_eq!(engine.events_for(conn).unwrap().conn(), conn);
    /// ```
    pub fn conn(&self) -> ConnId {
        self.conn
    }
}

impl Stream for ConnEventStream {
    type Item = AppEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AppEvent>> {
        let this = self.get_mut();
        if let Some(e) = this.buf.pop_front() {
            return Poll::Ready(Some(e));
        }
        {
            let mut cq = lock(&this.own.q);
            if cq.events.is_empty() {
                if cq.ended {
                    return Poll::Ready(None);
                }
                cq.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            std::mem::swap(&mut cq.events, &mut this.buf);
        }
        this.inner.consumed(this.buf.make_contiguous());
        Poll::Ready(this.buf.pop_front())
    }
}

impl Drop for ConnEventStream {
    /// Unregisters; what it did not yield goes back to the engine-wide queue, in order.
    fn drop(&mut self) {
        let mut back: Vec<AppEvent> = self.buf.drain(..).collect();
        // taken from the queue and credited: counted again as waiting
        self.inner.recharge(&back);
        let mut q = lock(&self.inner.app);
        let mut split = lock(&self.inner.split);
        if split
            .get(&self.conn)
            .is_some_and(|own| Arc::ptr_eq(own, &self.own))
        {
            split.remove(&self.conn);
            self.inner
                .split_count
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        drop(split);
        back.extend(lock(&self.own.q).events.drain(..));
        if back.is_empty() {
            return;
        }
        // before anything queued after them (nothing of this connection was, while the
        // stream was registered)
        back.append(&mut q.events);
        q.events = back;
        let waker = q.waker.take();
        let notify = q.waiting;
        drop(q);
        if notify {
            self.inner.app_cv.notify_one();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Sends on one connection as a `futures_sink::Sink<Outgoing>`; see [`Engine::sink`].
///
/// `poll_ready` waits for room in the bounded send queue (backpressure), `poll_flush`
/// until everything queued was written to the connection, `poll_close` closes the
/// connection gracefully.
///
/// ```
/// # use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
/// # let engine = Engine::new(EngineConfig::default()).unwrap();
/// # let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
/// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
/// let sink = engine.sink(conn).unwrap();
/// assert_eq!(sink.conn(), conn);
/// ```
pub struct MessageSink {
    sender: ConnSender,
    /// `poll_ready` promised room: the next `start_send` is taken (one message beyond
    /// the queue's bound at most, if another sender filled it meanwhile).
    promised: bool,
}

impl MessageSink {
    /// The connection.
    ///
    /// ```
    /// # use fleetwire::transport::{Engine, EngineConfig, TlsOptions};
    /// # let engine = Engine::new(EngineConfig::default()).unwrap();
    /// # let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// # let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// assert_eq!(engine.sink(conn).unwrap().conn(), conn);
    /// ```
    pub fn conn(&self) -> ConnId {
        self.sender.conn()
    }

    fn poll_queue(&self, cx: &mut Context<'_>, want_empty: bool) -> Poll<Result<(), SendError>> {
        let cfg = &self.sender.inner.config;
        let mut q = lock(&self.sender.shared.sendq);
        let ok = if want_empty {
            q.packets == 0
        } else {
            q.has_room(cfg.send_queue_packets, cfg.send_queue_bytes)
        };
        if ok {
            return Poll::Ready(Ok(()));
        }
        if q.closed {
            return Poll::Ready(Err(SendError::Closed));
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Sink<Outgoing> for MessageSink {
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        let this = self.get_mut();
        let ready = this.poll_queue(cx, false);
        this.promised = matches!(ready, Poll::Ready(Ok(())));
        ready
    }

    /// Takes `item` once `poll_ready` said ready, whatever its size (the `Sink`
    /// contract); without that, as [`Engine::send`].
    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<(), SendError> {
        let this = self.get_mut();
        let promised = core::mem::take(&mut this.promised);
        let s = &this.sender;
        if push_send_with(&s.inner, &s.shared, item, promised)? {
            s.inner.io[s.shared.thread].ready(s.shared.id);
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.poll_queue(cx, true)
    }

    /// Waits until every queued message was written (or the connection failed), then
    /// closes the connection gracefully (GOAWAY after the last message).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        if self.poll_queue(cx, true).is_pending() {
            return Poll::Pending;
        }
        let s = &self.sender;
        let first = !core::mem::replace(&mut lock(&s.shared.sendq).closed, true);
        if first {
            s.inner.io[s.shared.thread].command(Command::Close(s.shared.id));
        }
        Poll::Ready(Ok(()))
    }
}

impl Engine {
    /// The engine's events as an async `Stream` (feature `transport-async`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use fleetwire::transport::{AppEvent, Engine, EngineConfig, Outgoing, TlsOptions};
    ///
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// rt.block_on(async {
    ///     let mut sink = engine.sink(conn).unwrap();
    ///     let mut events = engine.events();
    ///     std::future::poll_fn(|cx| futures_sink::Sink::poll_ready(std::pin::Pin::new(&mut sink), cx)).await.unwrap();
    ///     futures_sink::Sink::start_send(std::pin::Pin::new(&mut sink), Outgoing::new(Default::default(), Bytes::from_static(b"hi"))).unwrap();
    ///     loop {
    ///         let next = std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut events), cx));
    ///         if let Some(AppEvent::Message(m)) = next.await {
    ///             assert_eq!(&m.payload[..], b"hi");
    ///             break;
    ///         }
    ///     }
    /// });
    /// ```
    pub fn events(&self) -> EventStream {
        EventStream {
            inner: self.inner().clone(),
            buf: VecDeque::new(),
        }
    }

    /// A stream of one connection's events (feature `transport-async`), so that each
    /// connection can have its own task; `None` for an unknown connection or one that
    /// already has a stream. See [`ConnEventStream`]: from now on the connection's events
    /// go there and no longer to [`events`](Engine::events) or
    /// [`recv_batch`](Engine::recv_batch); the stream ends after the connection's
    /// [`AppEvent::Closed`]. Call it right after [`connect`](Engine::connect) (or on
    /// [`AppEvent::Accepted`]): events already queued for the connection are moved into it.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    /// use fleetwire::transport::{AppEvent, Engine, EngineConfig, TlsOptions};
    ///
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// let l = engine.listen("127.0.0.1:0".parse().unwrap(), TlsOptions::Plaintext).unwrap();
    /// let conn = engine.connect(l.local_addr, TlsOptions::Plaintext).unwrap();
    /// let mut mine = engine.events_for(conn).unwrap();
    /// assert!(engine.events_for(conn).is_none(), "one stream per connection");
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// rt.block_on(async {
    ///     let first = poll_fn(|cx| Pin::new(&mut mine).poll_next(cx)).await;
    ///     assert!(matches!(first, Some(AppEvent::Connected { conn: c, .. }) if c == conn));
    ///     engine.close(conn);
    ///     let mut last = None;
    ///     while let Some(e) = poll_fn(|cx| Pin::new(&mut mine).poll_next(cx)).await {
    ///         last = Some(e); // the stream ends after the connection's Closed
    ///     }
    ///     assert!(matches!(last, Some(AppEvent::Closed { .. })));
    /// });
    /// ```
    pub fn events_for(&self, conn: ConnId) -> Option<ConnEventStream> {
        let inner = self.inner();
        let mut q = lock(&inner.app);
        if q.stopped || !lock(&inner.conns).contains_key(&conn) {
            return None;
        }
        let mut split = lock(&inner.split);
        if split.contains_key(&conn) {
            return None;
        }
        let own = Arc::new(ConnEvents::default());
        {
            let mut cq = lock(&own.q);
            // the connection's events already waiting, in order; the rest stay
            let mut rest = Vec::with_capacity(q.events.len());
            for e in q.events.drain(..) {
                if e.conn() == conn && !matches!(e, AppEvent::Accepted { .. }) {
                    cq.events.push_back(e);
                } else {
                    rest.push(e);
                }
            }
            q.events = rest;
            cq.ended = cq
                .events
                .iter()
                .any(|e| matches!(e, AppEvent::Closed { .. }));
        }
        if !lock(&own.q).ended {
            split.insert(conn, own.clone());
            inner
                .split_count
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Some(ConnEventStream {
            inner: inner.clone(),
            conn,
            own,
            buf: VecDeque::new(),
        })
    }

    /// A `Sink` of messages for one connection (feature `transport-async`); `None` for
    /// an unknown connection.
    ///
    /// ```
    /// use fleetwire::transport::{ConnId, Engine, EngineConfig};
    /// let engine = Engine::new(EngineConfig::default()).unwrap();
    /// assert!(engine.sink(ConnId::from_raw(3)).is_none());
    /// ```
    pub fn sink(&self, conn: ConnId) -> Option<MessageSink> {
        Some(MessageSink {
            sender: self.sender(conn)?,
            promised: false,
        })
    }
}
