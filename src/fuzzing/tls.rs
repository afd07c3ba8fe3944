//! The `tls` target: [`TlsEndpoint`] fed TLS bytes in arbitrary chunks (spec §10).
//!
//! Two modes, chosen by bit 0 of `ctl`:
//!
//! - **garbage**: a server (or, with bit 1, a client that has sent its ClientHello) is fed
//!   the input as ciphertext. Nothing that is not a genuine handshake can make it
//!   established, so no plaintext may ever come out; a failure is sticky.
//! - **genuine**: a real client and server handshake; the client encrypts the input as
//!   its plaintext stream (in writes of fuzzer-chosen sizes, some vectored) and the
//!   client-to-server bytes reach the server in fuzzer-chosen chunks, with one byte
//!   optionally corrupted (bit 2: at offset `pos`, xor the high nibble of `ctl` | 1).
//!   What the server decrypts is always a prefix of what was sent (never a corrupted
//!   byte); without corruption it is all of it, nothing fails, and the server sees the
//!   client's close_notify (bit 3). A corrupted stream may fail or stall.
//!
//! In both modes a feed that consumes nothing while no plaintext waits is a hang, and
//! fails the target.
//!
//! Input: `ctl`, `seed` (chunk and write sizes), `pos` (u16 BE), then the bytes.

use std::io::IoSlice;
use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, ServerConfig};

use super::connection::Rng;
use crate::tls::{client_config, generate_test_pki, server_config, TlsEndpoint, TlsError};

/// One test PKI for the whole process: generating keys per input would dominate.
fn configs() -> &'static (Arc<ServerConfig>, Arc<ClientConfig>) {
    static CONFIGS: OnceLock<(Arc<ServerConfig>, Arc<ClientConfig>)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let pki = generate_test_pki(&["localhost"], Some(1)).expect("test PKI");
        let server = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), None)
            .expect("server config");
        let client = client_config(pki.ca_cert_pem.as_bytes(), None).expect("client config");
        (server, client)
    })
}

/// Feeds `bytes` to `tls` the way the engine does, reading plaintext into `plain` after
/// every feed. Returns the first error; asserts progress and stickiness.
fn feed(tls: &mut TlsEndpoint, mut bytes: &[u8], plain: &mut Vec<u8>) -> Result<(), TlsError> {
    while !bytes.is_empty() {
        let consumed = match tls.feed_tls(bytes) {
            Ok(n) => n,
            Err(err) => {
                // The failure is sticky: every later call reports it again.
                assert_eq!(tls.feed_tls(b"\x16\x03\x03\x00\x01\x00"), Err(err.clone()));
                assert_eq!(tls.read_plaintext(plain), Err(err.clone()));
                return Err(err);
            }
        };
        assert!(consumed <= bytes.len(), "consumed more than fed");
        let read = tls.read_plaintext(plain)?;
        assert!(
            consumed > 0 || read > 0,
            "feed_tls made no progress: {tls:?}"
        );
        bytes = &bytes[consumed..];
    }
    Ok(())
}

/// See the module documentation.
pub fn tls(data: &[u8]) {
    let [ctl, seed, p0, p1, rest @ ..] = data else {
        return;
    };
    let mut rng = Rng::new(u64::from(*seed));
    if ctl & 0x01 == 0 {
        garbage(*ctl, rest, &mut rng);
    } else {
        genuine(
            *ctl,
            usize::from(u16::from_be_bytes([*p0, *p1])),
            rest,
            &mut rng,
        );
    }
}

fn garbage(ctl: u8, input: &[u8], rng: &mut Rng) {
    let (server_cfg, client_cfg) = configs();
    let mut tls = if ctl & 0x02 == 0 {
        TlsEndpoint::server(server_cfg.clone()).expect("server")
    } else {
        let mut client = TlsEndpoint::client(client_cfg.clone(), "localhost").expect("client");
        let mut hello = Vec::new();
        assert!(client.take_tls(&mut hello) > 0, "no ClientHello");
        client
    };
    // Held until the handshake is verified: it must never be encrypted for this peer.
    tls.write_plaintext(b"\x89FWIRE\r\n")
        .expect("held plaintext");
    let mut plain = Vec::new();
    let mut rest = input;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let n = (1 + rng.below(600)).min(rest.len());
        let failed = feed(&mut tls, &rest[..n], &mut plain).is_err();
        tls.take_tls(&mut out);
        rest = &rest[n..];
        if failed {
            break;
        }
    }
    assert!(
        tls.is_handshaking(),
        "established by bytes that are not a peer"
    );
    assert!(plain.is_empty(), "plaintext from an unauthenticated peer");
}

fn genuine(ctl: u8, pos: usize, input: &[u8], rng: &mut Rng) {
    let (server_cfg, client_cfg) = configs();
    let mut client = TlsEndpoint::client(client_cfg.clone(), "localhost").expect("client");
    let mut server = TlsEndpoint::server(server_cfg.clone()).expect("server");
    let corrupt = ctl & 0x04 != 0;
    let close = ctl & 0x08 != 0;
    let mask = (ctl >> 4) | 0x01;

    // The client's writes: some before the handshake ends (held), the rest after.
    let mut writes = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = (1 + rng.below(3000)).min(rest.len());
        writes.push(&rest[..n]);
        rest = &rest[n..];
    }
    let mut writes = writes.into_iter();
    if let Some(first) = writes.next() {
        client.write_plaintext(first).expect("held write");
    }

    let mut c2s_offset = 0usize;
    let mut wire = Vec::new();
    let mut plain = Vec::new();
    let mut client_plain = Vec::new();
    let mut server_failed = false;
    let mut closed = false;
    let mut client_failed = false;
    // Handshake rounds plus at most two writes a round; the bound only guards the harness.
    for _round in 0..writes.len() + 16 {
        if !client.is_handshaking() {
            // Two writes per round, one of them vectored in two halves.
            for _ in 0..2 {
                let Some(w) = writes.next() else { break };
                if rng.below(2) == 0 {
                    client.write_plaintext(w).expect("write");
                } else {
                    let (a, b) = w.split_at(w.len() / 2);
                    let bufs = [IoSlice::new(a), IoSlice::new(b)];
                    client
                        .write_plaintext_vectored(&bufs)
                        .expect("vectored write");
                }
            }
            if close && writes.len() == 0 && !closed {
                client.send_close_notify();
                closed = true;
            }
        }
        wire.clear();
        client.take_tls(&mut wire);
        let moved = wire.len();
        if corrupt && (c2s_offset..c2s_offset + wire.len()).contains(&pos) {
            wire[pos - c2s_offset] ^= mask;
        }
        c2s_offset += wire.len();
        let mut rest = &wire[..];
        while !rest.is_empty() && !server_failed {
            let n = (1 + rng.below(2000)).min(rest.len());
            server_failed = feed(&mut server, &rest[..n], &mut plain).is_err();
            rest = &rest[n..];
        }
        wire.clear();
        server.take_tls(&mut wire);
        let answered = wire.len();
        // The server's alert may end the client too; that is not under test here.
        client_failed = feed(&mut client, &wire, &mut client_plain).is_err();
        assert!(client_plain.is_empty(), "the server sent application data");
        if server_failed || client_failed {
            break;
        }
        if moved == 0 && answered == 0 && writes.len() == 0 && (!close || closed) {
            break;
        }
    }
    assert!(
        input.starts_with(&plain),
        "the server decrypted bytes the client did not send"
    );
    // Without corruption nothing fails and nothing is lost. A corrupted stream may fail
    // or stall (a flipped record length leaves the server waiting for bytes that never
    // come: the handshake timer's business), but never yields bytes that were not sent.
    assert!(
        corrupt || !(server_failed || client_failed),
        "a clean stream failed"
    );
    if !corrupt {
        assert!(!server.is_handshaking(), "handshake did not complete");
        assert_eq!(plain.len(), input.len(), "plaintext lost");
        assert_eq!(server.peer_closed(), close, "close_notify");
    }
}
