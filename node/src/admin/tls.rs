//! TLS for the admin API (rustls, with the ring provider): required beyond loopback, where
//! officers' bearer tokens and case content would otherwise cross the network in clear.
//!
//! The certificate is the operator's (from their CA) or a self-signed one made by
//! `comity tls-cert`, which the CLI then pins (`--ca-file`). Handshakes run apart from the
//! accept loop, bounded in number and time, so that a slow or silent client holds up no one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::debug;

/// Handshakes in progress at once, and from any one address: a connection beyond either is
/// closed at once, so that idle connections from one place cannot hold the API for everyone.
const MAX_HANDSHAKES: usize = 64;
const MAX_HANDSHAKES_PER_ADDRESS: usize = 8;
/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handshakes in progress, in all and by address. No I/O here.
#[derive(Debug, Default)]
struct Handshakes {
    total: usize,
    by_address: std::collections::HashMap<std::net::IpAddr, usize>,
}

impl Handshakes {
    /// Takes a place for a handshake from `ip`, if there is one.
    fn begin(&mut self, ip: std::net::IpAddr) -> bool {
        let here = self.by_address.entry(ip).or_default();
        if self.total >= MAX_HANDSHAKES || *here >= MAX_HANDSHAKES_PER_ADDRESS {
            if *here == 0 {
                self.by_address.remove(&ip);
            }
            return false;
        }
        *here += 1;
        self.total += 1;
        true
    }

    /// Gives back a place `begin` took.
    fn end(&mut self, ip: std::net::IpAddr) {
        if let Some(here) = self.by_address.get_mut(&ip) {
            *here -= 1;
            self.total -= 1;
            if *here == 0 {
                self.by_address.remove(&ip);
            }
        }
    }
}

/// What is wrong with serving the admin API on `listen`, with or without TLS; `None` when it
/// may. Beyond loopback, only with TLS.
pub fn exposure_problem(listen: SocketAddr, tls: bool) -> Option<String> {
    if listen.ip().is_loopback() || tls {
        return None;
    }
    Some(format!(
        "[admin] listen = \"{listen}\" is beyond loopback, and the admin API has no TLS: officers' \
         tokens and case content would cross the network in clear. Set [admin] tls_cert and \
         tls_key in the node's config (`comity tls-cert` makes a self-signed pair), or listen \
         on 127.0.0.1"
    ))
}

/// The server side of TLS from a certificate chain and its private key, both PEM.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no PEM private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and the key do not make a TLS identity: {e}"))?;
    Ok(Arc::new(config))
}

/// Reads the certificate and key files named in the config. The key must be readable by its
/// owner only (mode 0600), like every other key of the node.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    use std::os::unix::fs::PermissionsExt;
    let read = |path: &Path, what: &str| {
        std::fs::read(path)
            .map_err(|e| format!("cannot read the admin TLS {what} {}: {e}", path.display()))
    };
    let mode = std::fs::metadata(key)
        .map_err(|e| format!("cannot read the admin TLS key {}: {e}", key.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "the admin TLS key {} is readable by others (mode {:o}): chmod 600 it",
            key.display(),
            mode & 0o777
        ));
    }
    server_config(&read(cert, "certificate")?, &read(key, "key")?)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))
}

/// A self-signed certificate for `names` (host names or IP addresses), and its key, PEM.
pub fn self_signed(names: &[String]) -> Result<(String, String), String> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot make a certificate for {names:?}: {e}"))?;
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem()))
}

/// A TCP listener whose connections come out TLS-terminated, for `axum::serve`.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, accepted) = mpsc::channel(MAX_HANDSHAKES);
        let acceptor = TlsAcceptor::from(config);
        let handshakes = Arc::new(std::sync::Mutex::new(Handshakes::default()));
        tokio::spawn(async move {
            loop {
                // Ends with the server: the listener is dropped, and the port closed.
                let accepted = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        debug!(error = %e, "admin API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ip = peer.ip();
                if !handshakes.lock().expect("handshakes lock").begin(ip) {
                    debug!(%peer, "admin API: too many handshakes in progress; connection closed");
                    continue;
                }
                let (acceptor, handed, places) = (acceptor.clone(), tx.clone(), handshakes.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "admin API TLS handshake failed"),
                        Err(_) => debug!(%peer, "admin API TLS handshake timed out"),
                    }
                    places.lock().expect("handshakes lock").end(ip);
                });
            }
        });
        Ok(Self { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop ends only with the listener: wait for the shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_bounded_in_all_and_per_address() {
        let mut places = Handshakes::default();
        let one: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let taken = (0..20).filter(|_| places.begin(one)).count();
        assert_eq!(
            taken, MAX_HANDSHAKES_PER_ADDRESS,
            "one address gets its share"
        );
        let mut others = 0;
        for n in 0..255u8 {
            let ip = std::net::IpAddr::from([198, 51, 100, n]);
            others += usize::from(places.begin(ip));
        }
        assert_eq!(
            others + taken,
            MAX_HANDSHAKES,
            "and all of them together no more"
        );
        places.end(one);
        assert!(
            places.begin("203.0.113.9".parse().unwrap()),
            "a place given back is free"
        );
        places.end("203.0.113.77".parse().unwrap()); // never begun: harmless
        assert_eq!(places.total, MAX_HANDSHAKES);
    }

    #[test]
    fn beyond_loopback_only_with_tls_and_the_error_names_the_settings() {
        let lo: SocketAddr = "127.0.0.1:7701".parse().unwrap();
        let lo6: SocketAddr = "[::1]:7701".parse().unwrap();
        let all: SocketAddr = "0.0.0.0:7701".parse().unwrap();
        let lan: SocketAddr = "10.1.2.3:7701".parse().unwrap();
        assert_eq!(exposure_problem(lo, false), None);
        assert_eq!(exposure_problem(lo6, false), None);
        assert_eq!(exposure_problem(all, true), None);
        let why = exposure_problem(lan, false).unwrap();
        assert!(why.contains("tls_cert") && why.contains("tls_key"), "{why}");
        assert!(why.contains("10.1.2.3:7701"), "{why}");
        assert!(exposure_problem(all, false).is_some());
    }

    #[test]
    fn a_self_signed_pair_makes_a_server_and_bad_files_are_named() {
        let (cert, key) = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(server_config(cert.as_bytes(), key.as_bytes()).is_ok());
        let err = server_config(b"", key.as_bytes()).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        let err = server_config(cert.as_bytes(), b"not a key").unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let (_, other_key) = self_signed(&["localhost".into()]).unwrap();
        let err = server_config(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(err.contains("do not make a TLS identity"), "{err}");
    }
}
