//! `hermod dkim keygen --domain D --selector S [--algorithm rsa2048|ed25519]`: makes a
//! DKIM signing key, writes it (owner-only) where the configuration can point at it, and
//! prints the DNS TXT record to publish and the `[dkim]` entry to add.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The key types.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Algorithm {
    /// RSA, 2048 bits (what every verifier knows).
    Rsa2048,
    /// Ed25519 (RFC 8463): small and fast, not yet checked by every receiver; publish an
    /// RSA key beside it.
    Ed25519,
}

/// `hermod dkim ...`.
#[derive(clap::Args)]
pub struct DkimArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Make a signing key and print the DNS record to publish.
    Keygen {
        /// The signing domain (the From: domain of the mail to sign).
        #[arg(long)]
        domain: String,
        /// The selector: the record goes at SELECTOR._domainkey.DOMAIN.
        #[arg(long)]
        selector: String,
        /// The key type.
        #[arg(long, value_enum, default_value = "rsa2048")]
        algorithm: Algorithm,
        /// Where to write the key (default: ./DOMAIN.SELECTOR.key).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs the DKIM command.
pub fn run(args: DkimArgs) -> ExitCode {
    let Action::Keygen {
        domain,
        selector,
        algorithm,
        out,
    } = args.action;
    match keygen(&domain, &selector, algorithm, out) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hermod dkim keygen: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A new key pair and the value of the DNS TXT record that publishes its public half
/// (`v=DKIM1; k=…; p=…`: the SubjectPublicKeyInfo for RSA, the raw key for Ed25519, as
/// RFC 6376 and RFC 8463 say). Also used by the verification benchmark.
pub fn new_key(algorithm: Algorithm) -> anyhow::Result<(rcgen::KeyPair, String)> {
    let (key, k, public) = match algorithm {
        Algorithm::Rsa2048 => {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
            let public = rcgen::PublicKeyData::subject_public_key_info(&key);
            (key, "rsa", public)
        }
        Algorithm::Ed25519 => {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
            let public = key.public_key_raw().to_vec();
            (key, "ed25519", public)
        }
    };
    let record = format!("v=DKIM1; k={k}; p={}", STANDARD.encode(public));
    Ok((key, record))
}

fn keygen(
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
    out: Option<PathBuf>,
) -> anyhow::Result<String> {
    let (key, record) = new_key(algorithm)?;
    let path = out.unwrap_or_else(|| PathBuf::from(format!("{domain}.{selector}.key")));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot create {}: {e} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(key.serialize_pem().as_bytes())?;
    Ok(format!(
        "wrote {path}\n\nPublish in DNS:\n{selector}._domainkey.{domain}. IN TXT \"{record}\"\n\nand add to the configuration:\n[[dkim.keys]]\ndomain = \"{domain}\"\nselector = \"{selector}\"\nkey_file = \"{path}\"\n",
        path = path.display()
    ))
}
