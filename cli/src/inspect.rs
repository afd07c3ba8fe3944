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
    use fleetwire::inspect::End;
    let input = match read_input(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fleetwire inspect: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let (text, end) = fleetwire::inspect::inspect(&input, &opts);
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
