//! `fleetwire inspect`: decode a plaintext Fleetwire byte stream, one line per packet.

use std::io::Read;
use std::process::ExitCode;

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin().lock().read_to_end(&mut buf)?;
    } else {
        buf = std::fs::read(file)?;
    }
    Ok(buf)
}

pub(crate) fn inspect(file: &str, opts: fleetwire::inspect::Options) -> ExitCode {
    let input = match read_input(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fleetwire inspect: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    if crate::capture::is_capture(&input) {
        return inspect_capture(&input, &opts);
    }
    inspect_stream(&input, &opts)
}

/// A pcap or pcapng capture: each TCP stream that begins with the preface (spec §3),
/// decoded in order of first appearance. Exits 1 if any of them is invalid.
fn inspect_capture(input: &[u8], opts: &fleetwire::inspect::Options) -> ExitCode {
    let streams = match crate::capture::tcp_streams(input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleetwire inspect: {e}");
            return ExitCode::from(1);
        }
    };
    let mut code = ExitCode::SUCCESS;
    let mut decoded = 0;
    for s in &streams {
        if !s
            .bytes
            .starts_with(&fleetwire::PREFACE[..s.bytes.len().min(8)])
            || s.bytes.is_empty()
        {
            let first = s
                .bytes
                .first()
                .map_or("none".into(), |b| format!("0x{b:02x}"));
            eprintln!(
                "skipped {} -> {}: not Fleetwire (first byte {first})",
                s.from, s.to
            );
            continue;
        }
        decoded += 1;
        println!("== {} -> {}: {} bytes", s.from, s.to, s.bytes.len());
        if inspect_stream(&s.bytes, opts) != ExitCode::SUCCESS {
            code = ExitCode::from(1);
        }
        if s.gap > 0 {
            eprintln!(
                "gap: {} bytes missing from the capture after byte {}",
                s.gap,
                s.bytes.len()
            );
        }
    }
    if decoded == 0 {
        eprintln!("fleetwire inspect: no TCP stream in the capture begins with the preface");
        return ExitCode::from(1);
    }
    code
}

fn inspect_stream(input: &[u8], opts: &fleetwire::inspect::Options) -> ExitCode {
    use fleetwire::inspect::End;
    let (text, end) = fleetwire::inspect::inspect(input, opts);
    print!("{text}");
    match end {
        End::Complete => ExitCode::SUCCESS,
        End::Incomplete { offset, needed } => {
            eprintln!("incomplete: the packet at offset {offset} needs {needed} more bytes");
            ExitCode::SUCCESS
        }
        End::Invalid { offset, error } => {
            eprintln!(
                "error: {} at offset {offset}: {}",
                error.code(),
                error.detail()
            );
            ExitCode::from(1)
        }
    }
}
