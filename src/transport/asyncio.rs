//! The async face of the engine for tokio users (or any executor): a `Stream` of events
//! and a `Sink` of messages. Wakers replace the condition variable; the IO threads and
//! bounds are the same.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::sync::Arc;

use futures_core::Stream;
use futures_sink::Sink;

use super::engine::{push_send, ConnSender, Engine};
use super::shared::{Command, Inner};
use super::sync::lock;
use super::types::{AppEvent, ConnId, Outgoing, SendError};

/// Every event of the engine as a `futures_core::Stream`; see [`Engine::events`].
///
/// Takes the same queue as [`Engine::recv_batch`] (use one or the other): each time its
/// buffer is empty it takes every ready event under one lock. It ends (`None`) once the
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
            q.packets < cfg.send_queue_packets && q.bytes < cfg.send_queue_bytes
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
        self.poll_queue(cx, false)
    }

    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<(), SendError> {
        let s = &self.sender;
        if push_send(&s.inner, &s.shared, item)? {
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
        })
    }
}
