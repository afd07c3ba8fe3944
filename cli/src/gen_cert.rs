//! `fleetwire gen-cert`: a throw-away test CA, certificate and key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::node::node_id_parser;

#[derive(Args)]
pub(crate) struct GenCertArgs {
    /// Directory to write ca.pem, cert.pem and key.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Names of the certificate (DNS names or IP addresses); repeat for several.
    /// Default: localhost and 127.0.0.1.
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// Node id bound to the certificate (URI SAN fleetwire:node:<id>, spec §10.2).
    #[arg(long, default_value_t = 1, value_parser = node_id_parser())]
    node_id: u16,
}

pub(crate) fn gen_cert(args: GenCertArgs) -> ExitCode {
    let names: Vec<&str> = if args.names.is_empty() {
        vec!["localhost", "127.0.0.1"]
    } else {
        args.names.iter().map(String::as_str).collect()
    };
    let pki = match fleetwire::tls::generate_test_pki(&names, Some(args.node_id)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fleetwire gen-cert: {e}");
            return ExitCode::from(2);
        }
    };
    let files = [
        ("ca.pem", &pki.ca_cert_pem),
        ("cert.pem", &pki.cert_pem),
        ("key.pem", &pki.key_pem),
    ];
    if let Err(e) = write_pem_files(&args.out, &files) {
        eprintln!("fleetwire gen-cert: {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    let dir = args.out.display();
    println!(
        "wrote {dir}/ca.pem, {dir}/cert.pem, {dir}/key.pem: a throw-away test CA and a \
         certificate for {} and fleetwire:node:{} (not for production)",
        names.join(", "),
        args.node_id
    );
    println!("run a node:  fleetwire node --listen 127.0.0.1:7000 --cert {dir}/cert.pem --key {dir}/key.pem --node-id {}", args.node_id);
    println!(
        "ping it:     fleetwire ping 127.0.0.1:7000 --ca {dir}/ca.pem --server-name {}",
        names[0]
    );
    ExitCode::SUCCESS
}

fn write_pem_files(dir: &Path, files: &[(&str, &String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, pem) in files {
        let mut file = open_private(&dir.join(name), *name == "key.pem")?;
        file.write_all(pem.as_bytes())?;
    }
    Ok(())
}

/// Creates or truncates `path`; a private key is readable by its owner only.
fn open_private(path: &Path, private: bool) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    opts.open(path)
}
