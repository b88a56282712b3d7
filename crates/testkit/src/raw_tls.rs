//! A bare TLS 1.3 client for tests that must control every byte on a connection: idle
//! connections, half-sent headers and bodies, HTTP/2 prefaces without a request, connections
//! from another loopback source address. Every wait has a deadline; nothing sleeps.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The HTTP/2 connection preface followed by an empty SETTINGS frame: what a client sends
/// before its first request.
pub const H2_PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// An HTTP/2 PING frame (not an ACK) with an 8-byte payload.
pub fn h2_ping(payload: u64) -> Vec<u8> {
    let mut frame = vec![0, 0, 8, 6, 0, 0, 0, 0, 0];
    frame.extend_from_slice(&payload.to_be_bytes());
    frame
}

/// TLS 1.3 client settings: trusted roots, optional client certificate, ALPN protocols.
#[derive(Clone)]
pub struct RawTls {
    config: Arc<rustls::ClientConfig>,
}

impl RawTls {
    /// `roots`: PEM file; `identity`: (certificate chain PEM, key PEM); `alpn`: e.g. `["h2"]`.
    pub fn new(roots: &Path, identity: Option<(&Path, &Path)>, alpn: &[&str]) -> RawTls {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut store = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(roots).expect("read roots") {
            store.add(cert.expect("root PEM")).expect("add root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(store);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .expect("read certificate")
                    .map(|c| c.expect("certificate PEM"))
                    .collect();
                let key = PrivateKeyDer::from_pem_file(key).expect("read key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client certificate")
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        RawTls {
            config: Arc::new(config),
        }
    }

    /// Connects to 127.0.0.1:`port` (server name `localhost`) and finishes the handshake.
    pub async fn connect(&self, port: u16) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        self.handshake(tcp).await
    }

    /// Like `connect`, from the local address `source` (any 127.0.0.0/8 address works on
    /// Linux), to look like another client machine.
    pub async fn connect_from(
        &self,
        source: IpAddr,
        port: u16,
    ) -> io::Result<TlsStream<TcpStream>> {
        self.handshake(tcp_from(source, port).await?).await
    }

    /// The TLS handshake on an established TCP connection.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("localhost").expect("server name");
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

/// A plain TCP connection to 127.0.0.1:`port` from `source`.
pub async fn tcp_from(source: IpAddr, port: u16) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Reads until the peer closes the connection (EOF or an error such as a reset) and returns
/// what arrived; `Err` with what arrived if it is still open after `timeout`.
pub async fn read_until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Vec<u8>, Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(()) => Ok(seen),
        Err(_) => Err(seen),
    }
}

/// Reads until `needle` has arrived; returns everything read. Panics on timeout or close.
pub async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    needle: &[u8],
    timeout: Duration,
) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !contains(&seen, needle) {
            match stream.read(&mut buf).await {
                Ok(0) => panic!(
                    "connection closed before {:?} arrived; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&seen)
                ),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "read failed before {:?} arrived: {e}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
    };
    if tokio::time::timeout(timeout, read).await.is_err() {
        panic!(
            "{:?} did not arrive within {timeout:?}",
            String::from_utf8_lossy(needle)
        );
    }
    seen
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An HTTP/1.1 response as read off the wire.
#[derive(Debug)]
pub struct Http1Response {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http1Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one final HTTP/1.1 response (skipping `100 Continue`); the body by Content-Length.
pub async fn read_http1_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Http1Response {
    let mut raw = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = parse_http1(&raw) {
                return r;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => panic!(
                    "connection closed before a complete response; got {:?}",
                    String::from_utf8_lossy(&raw)
                ),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| panic!("no complete HTTP/1.1 response within {timeout:?}"))
}

fn parse_http1(raw: &[u8]) -> Option<Http1Response> {
    let text = String::from_utf8_lossy(raw);
    let mut rest: &str = &text;
    loop {
        let (head, after) = rest.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if status == 100 {
            rest = after;
            continue;
        }
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if after.len() < len {
            return None;
        }
        return Some(Http1Response {
            status,
            headers,
            body: after[..len].to_string(),
        });
    }
}

/// Writes all of `bytes` and flushes.
pub async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response_after_100_continue() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        let r = parse_http1(raw).expect("complete");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "ok");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(
            parse_http1(&raw[..raw.len() - 1]).is_none(),
            "body incomplete"
        );
    }

    #[test]
    fn ping_frames_are_well_formed() {
        let p = h2_ping(7);
        assert_eq!(p.len(), 17);
        assert_eq!(&p[..9], &[0, 0, 8, 6, 0, 0, 0, 0, 0]);
        assert_eq!(H2_PREFACE_AND_SETTINGS.len(), 24 + 9);
    }
}
