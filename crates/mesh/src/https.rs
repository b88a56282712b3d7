//! A small HTTPS/1.1 client over tokio-rustls and hyper, used by the CA client and
//! [`crate::client::MeshClient`]. It exposes what an HTTP library hides: the negotiated TLS
//! parameters, the peer certificate, and the server's TLS alert when it rejects our certificate
//! after the handshake.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::error::{ConfigError, ConnectError, ConnectFailure, HttpError, MeshError, Result};
use crate::tls::describe::{client_side_reason, io_reason};
use crate::tls::HandshakeSummary;

/// An `https://host[:port][/path]` URL. Anything else, `http://` in particular, is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpsUrl {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port (443 unless given).
    pub port: u16,
    /// Path prefix without a trailing slash ("" for none).
    pub path: String,
}

impl HttpsUrl {
    /// Parses `https://host[:port][/path]`; `http://` and other schemes are refused, and so is
    /// a host that is neither a DNS name nor an IP address.
    pub fn parse(input: &str) -> std::result::Result<HttpsUrl, ConfigError> {
        let uri: Uri = input.parse().map_err(|e| ConfigError::NotAUrl {
            input: input.to_string(),
            reason: format!("{e}"),
        })?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => {
                return Err(ConfigError::PlainHttp {
                    input: input.to_string(),
                })
            }
            _ => {
                return Err(ConfigError::NotHttps {
                    input: input.to_string(),
                })
            }
        }
        let host = uri
            .host()
            .ok_or_else(|| ConfigError::NoHost {
                input: input.to_string(),
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let url = HttpsUrl {
            host,
            port: uri.port_u16().unwrap_or(443),
            path: uri.path().trim_end_matches('/').to_string(),
        };
        url.server_name()?;
        Ok(url)
    }

    /// The name the server's certificate must carry (DNS name or IP address).
    pub fn server_name(&self) -> std::result::Result<ServerName<'static>, ConfigError> {
        ServerName::try_from(self.host.clone()).map_err(|e| ConfigError::ServerName {
            host: self.host.clone(),
            reason: e.to_string(),
        })
    }

    /// host:port, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for HttpsUrl {
    type Err = ConfigError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        HttpsUrl::parse(s)
    }
}

impl std::fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}{}", self.authority(), self.path)
    }
}

/// A response with its body read (up to the limit given to `request`).
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The Content-Type header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// One TLS connection carrying HTTP/1.1 requests one after another.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    authority: String,
    /// What the handshake negotiated, and the server's certificate.
    pub summary: HandshakeSummary,
    /// The chain the server presented (leaf first), until its owner takes it
    /// (`take_peer_chain`).
    peer_chain: Vec<CertificateDer<'static>>,
    driver: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<HttpError>>>,
}

/// The TLS error under a hyper error, if there is one.
fn tls_error(err: &hyper::Error) -> Option<rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(inner.clone());
            }
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        source = e.source();
    }
    None
}

/// A failed exchange in words, looking for the TLS error underneath (the server's alert).
fn exchange_error(err: &hyper::Error) -> HttpError {
    let tls = tls_error(err);
    HttpError::Exchange {
        reason: tls
            .as_ref()
            .map(client_side_reason)
            .unwrap_or_else(|| err.to_string()),
        tls,
    }
}

/// Opens TCP, completes the TLS 1.3 handshake and the HTTP/1.1 handshake.
pub async fn connect(
    config: Arc<ClientConfig>,
    url: &HttpsUrl,
    timeout: Duration,
) -> Result<Connection> {
    let addr = url.authority();
    let fail = |failure: ConnectFailure| {
        MeshError::Connect(ConnectError {
            addr: addr.clone(),
            failure,
        })
    };
    let server_name = url.server_name()?;
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((url.host.as_str(), url.port)))
        .await
        .map_err(|_| fail(ConnectFailure::TcpTimeout(timeout)))?
        .map_err(|e| fail(ConnectFailure::Tcp(e)))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(
        timeout,
        TlsConnector::from(config).connect(server_name, tcp),
    )
    .await
    .map_err(|_| fail(ConnectFailure::HandshakeTimeout(timeout)))?
    .map_err(|e| {
        fail(ConnectFailure::Handshake {
            reason: io_reason(&e, false),
            error: e,
        })
    })?;
    let summary = HandshakeSummary::of(tls.get_ref().1);
    let peer_chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(<[CertificateDer<'static>]>::to_vec)
        .unwrap_or_default();
    let (sender, conn) = http1::handshake(TokioIo::new(tls)).await.map_err(|e| {
        fail(ConnectFailure::HttpHandshake {
            reason: exchange_error(&e).to_string(),
        })
    })?;
    let failure = Arc::new(Mutex::new(None));
    let slot = failure.clone();
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(exchange_error(&e));
        }
    });
    Ok(Connection {
        sender,
        authority: addr,
        summary,
        peer_chain,
        driver: Some(driver),
        failure,
    })
}

impl Connection {
    /// The chain the server presented, leaf first (empty when taken already): what the
    /// connection's watcher reads which roots it reaches from (`peer_anchor`).
    pub(crate) fn take_peer_chain(&mut self) -> Vec<CertificateDer<'static>> {
        std::mem::take(&mut self.peer_chain)
    }

    /// True once the server closed the connection or it failed.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// The connection's failure, waiting briefly for the driver to report it (it holds the
    /// server's alert when the request itself only saw a closed channel).
    async fn failure_reason(&mut self, fallback: HttpError) -> HttpError {
        if let Some(driver) = self.driver.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
        }
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(fallback)
    }

    /// Sends one request and reads the response body (at most `limit` bytes).
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
        limit: usize,
    ) -> Result<Response> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.authority.as_str())
            .header(
                hyper::header::USER_AGENT,
                concat!("mtls-mesh/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let payload = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(HttpError::Request)?;
        if let Err(e) = self.sender.ready().await {
            return Err(self.failure_reason(exchange_error(&e)).await.into());
        }
        let response = match self.sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => return Err(self.failure_reason(exchange_error(&e)).await.into()),
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| HttpError::Body {
                reason: e.to_string(),
            })?
            .to_bytes();
        Ok(Response {
            status,
            content_type,
            body,
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_https_and_refuses_http() {
        let u = HttpsUrl::parse("https://localhost:8443/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("localhost", 8443, "")
        );
        assert_eq!(u.to_string(), "https://localhost:8443");
        let u = HttpsUrl::parse("https://127.0.0.1").unwrap();
        assert_eq!(u.port, 443);
        let err = HttpsUrl::parse("http://localhost:8443").unwrap_err();
        assert!(err.to_string().contains("plain http://"), "{err}");
        assert!(HttpsUrl::parse("localhost:8443").is_err());
        assert!(matches!(
            HttpsUrl::parse("https://[::1]:8443"),
            Ok(HttpsUrl { ref host, port: 8443, .. }) if host == "::1"
        ));
    }
}
