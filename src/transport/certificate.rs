//! The server's TLS certificate: read from PEM files, or created self-signed on first start.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// The certificate and key paths in use, and whether they were created now.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub created: bool,
}

/// Loads the configured certificate, creating a self-signed one where none is configured or present.
pub fn load_or_create(config: &Config) -> Result<(TlsAcceptor, CertificateFiles)> {
    let dir = config.data_dir.join("tls");
    let cert = config.tls.cert.clone().unwrap_or_else(|| dir.join("cert.pem"));
    let key = config.tls.key.clone().unwrap_or_else(|| dir.join("key.pem"));
    let mut created = false;
    if !cert.exists() && !key.exists() && config.tls.cert.is_none() {
        create_self_signed(&cert, &key, &config.tls.self_signed_names)?;
        created = true;
    }
    let chain = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    let private =
        PrivateKeyDer::from_pem_file(&key).with_context(|| format!("reading private key {}", key.display()))?;
    let acceptor = hodi_rsocket::transport::tls::acceptor(chain, private).context("building the TLS configuration")?;
    Ok((acceptor, CertificateFiles { cert, key, created }))
}

fn create_self_signed(cert: &Path, key: &Path, extra_names: &[String]) -> Result<()> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    names.extend(extra_names.iter().cloned());
    let generated = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(cert, generated.cert.pem()).with_context(|| format!("writing {}", cert.display()))?;
    write_private(key, generated.signing_key.serialize_pem().as_bytes())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
