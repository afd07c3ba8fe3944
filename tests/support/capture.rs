//! A `tracing` subscriber that keeps every event (level, target, message, fields and
//! the spans it happened in) for tests to assert on. Install it on the thread that starts
//! a node, engine or proxy (`tracing::subscriber::with_default`): their threads inherit
//! the caller's subscriber.
#![allow(dead_code)] // each test file uses its part

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event as it was emitted.
#[derive(Clone, Debug)]
pub(crate) struct Captured {
    pub(crate) level: Level,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) fields: BTreeMap<String, String>,
    /// The spans the event happened in, outermost first, as `name{k=v ...}`.
    pub(crate) spans: Vec<String>,
}

impl Captured {
    /// A field's value as recorded (`%` values in their Display form).
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

thread_local! {
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// The capturing subscriber; clones share what they captured.
#[derive(Clone, Default)]
pub(crate) struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
    spans: Arc<Mutex<HashMap<u64, String>>>,
    next: Arc<AtomicU64>,
}

impl Capture {
    /// Everything captured so far.
    pub(crate) fn events(&self) -> Vec<Captured> {
        self.events.lock().unwrap().clone()
    }

    /// The messages captured so far.
    pub(crate) fn messages(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.message).collect()
    }

    /// Waits (up to `wait`) for an event that `pred` accepts; returns it, or panics with
    /// everything captured.
    pub(crate) fn wait_for(&self, wait: Duration, pred: impl Fn(&Captured) -> bool) -> Captured {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no such event among: {:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            name => drop(self.fields.insert(name.to_owned(), value.to_owned())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut f = Fields::default();
        attrs.record(&mut f);
        let mut label = format!("{}{{", attrs.metadata().name());
        for (i, (k, v)) in f.fields.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            let _ = write!(label, "{sep}{k}={v}");
        }
        label.push('}');
        self.spans.lock().unwrap().insert(id, label);
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let spans = {
            let names = self.spans.lock().unwrap();
            STACK.with(|s| {
                s.borrow()
                    .iter()
                    .filter_map(|id| names.get(id).cloned())
                    .collect()
            })
        };
        self.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: f.message,
            fields: f.fields,
            spans,
        });
    }

    fn enter(&self, id: &Id) {
        STACK.with(|s| s.borrow_mut().push(id.into_u64()));
    }

    fn exit(&self, id: &Id) {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(at) = s.iter().rposition(|&x| x == id.into_u64()) {
                s.remove(at);
            }
        });
    }
}
