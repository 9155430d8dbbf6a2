//! HTTPS with the operator's certificate: reading the PEM files (the key
//! must be private to the server's user) and a listener that hands axum
//! only connections whose TLS handshake finished.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::server::TlsStream;

/// The largest certificate chain or key file read.
const MAX_PEM_BYTES: u64 = 1 << 20;
/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; past it, new connections wait in the
/// kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// Reads the certificate chain and the private key into a rustls server
/// configuration (ring, TLS 1.2 and 1.3, HTTP/1.1). The key file must be
/// 0600 or 0400 and owned by the user the server runs as.
pub fn server_config(certificate: &Path, private_key: &Path) -> anyhow::Result<ServerConfig> {
    check_key_file(private_key)?;
    let chain_pem = read_bounded(certificate)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            anyhow::anyhow!(
                "{}: not a PEM certificate chain: {error}",
                certificate.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "{}: no certificate in it (tls_certificate is a PEM chain, the server's first)",
            certificate.display()
        );
    }
    let key_pem = read_bounded(private_key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        anyhow::anyhow!("{}: not a PEM private key: {error}", private_key.display())
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("the TLS provider")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                certificate.display(),
                private_key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The private key is refused unless only the server's user can read it.
fn check_key_file(path: &Path) -> anyhow::Result<()> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = metadata.mode() & 0o7777;
    let euid = nix::unistd::geteuid().as_raw();
    if mode != 0o600 && mode != 0o400 {
        anyhow::bail!(
            "{}: the TLS private key has mode {mode:04o}; it must be 0600 or 0400 \
             (chmod 600 {})",
            path.display(),
            path.display()
        );
    }
    if metadata.uid() != euid {
        anyhow::bail!(
            "{}: the TLS private key is owned by uid {}, not by the server's user (uid {euid}); \
             chown it to the user wua-server runs as",
            path.display(),
            metadata.uid()
        );
    }
    Ok(())
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        anyhow::bail!("{}: larger than {MAX_PEM_BYTES} bytes", path.display());
    }
    Ok(bytes)
}

/// A listener that yields TLS connections. Handshakes run on tasks of their
/// own, so a slow or silent client never holds up the others.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `listener` and shakes hands with `config`.
    pub fn new(listener: TcpListener, config: ServerConfig) -> std::io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, acceptor, sender));
        Ok(TlsListener { local_addr, ready })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("accepting a connection: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if sender.is_closed() {
            return;
        }
        let (acceptor, sender) = (acceptor.clone(), sender.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, "TLS handshake failed: {error}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop ended (the runtime is going away): nothing
            // more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// The client's address, for the per-client rate limit; from plain TCP and
/// TLS connections alike.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}
