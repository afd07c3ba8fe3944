//! `--metrics ADDR`: the Prometheus text exposition format (version 0.0.4) over a tiny
//! HTTP/1.1 responder on std::net: `GET /metrics` answers the current values, anything
//! else 404. One request per connection, bounded in size and time.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Largest request head read; a longer one is answered 431 and dropped.
const MAX_REQUEST: usize = 8 * 1024;
/// A client gets this long to send its request and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A metrics page being written: `# HELP`/`# TYPE` once per family, then samples.
#[derive(Default)]
pub(crate) struct Page {
    text: String,
}

impl Page {
    /// Starts a metric family. `kind` is `counter` or `gauge`.
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample with its labels.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", value.into());
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// Serves `render()` at `GET /metrics` on `listener` until `stop` is set (checked every
/// 50 ms).
pub(crate) fn serve(listener: TcpListener, stop: &AtomicBool, render: impl Fn() -> String) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((sock, _)) => {
                let _ = answer(sock, &render);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn answer(mut sock: TcpStream, render: &impl Fn() -> String) -> std::io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return respond(&mut sock, "431 Request Header Fields Too Large", "");
        }
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    if method != Some(b"GET") {
        return respond(&mut sock, "405 Method Not Allowed", "");
    }
    if path != Some(b"/metrics") {
        return respond(&mut sock, "404 Not Found", "see /metrics\n");
    }
    respond(&mut sock, "200 OK", &render())
}

fn respond(sock: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes())?;
    sock.write_all(body.as_bytes())?;
    sock.flush()
}
