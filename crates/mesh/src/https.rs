//! A small HTTPS/1.1 client over tokio-rustls and hyper, used by the CA client and mtls-client.
//! It exposes what an HTTP library hides: the negotiated TLS parameters, the peer certificate,
//! and the server's TLS alert when it rejects our certificate after the handshake.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::error::{MeshError, Result};
use crate::tls::describe::{client_side_reason, io_reason};
use crate::tls::HandshakeSummary;

/// An `https://host[:port][/path]` URL. Anything else, `http://` in particular, is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpsUrl {
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash ("" for none).
    pub path: String,
}

impl HttpsUrl {
    pub fn parse(input: &str) -> Result<HttpsUrl> {
        let uri: Uri = input
            .parse()
            .map_err(|e| MeshError::Config(format!("{input:?} is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => {
                return Err(MeshError::Config(format!(
                    "{input} uses plain http://; mtls-mesh talks only TLS 1.3 (use https://)"
                )))
            }
            _ => {
                return Err(MeshError::Config(format!(
                    "{input:?} must start with https://"
                )))
            }
        }
        let host = uri
            .host()
            .ok_or_else(|| MeshError::Config(format!("{input:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(HttpsUrl {
            host,
            port: uri.port_u16().unwrap_or(443),
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    pub fn server_name(&self) -> Result<ServerName<'static>> {
        ServerName::try_from(self.host.clone()).map_err(|e| {
            MeshError::Config(format!("{:?} is not a valid server name: {e}", self.host))
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

impl std::fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}{}", self.authority(), self.path)
    }
}

/// A response with its body read (up to the limit given to `request`).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// One TLS connection carrying HTTP/1.1 requests one after another.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    authority: String,
    pub summary: HandshakeSummary,
    driver: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

/// Words for a hyper error, looking for the TLS error underneath.
pub fn hyper_reason(err: &hyper::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return client_side_reason(inner);
            }
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return client_side_reason(tls);
        }
        source = e.source();
    }
    err.to_string()
}

/// Opens TCP, completes the TLS 1.3 handshake and the HTTP/1.1 handshake.
pub async fn connect(
    config: Arc<ClientConfig>,
    url: &HttpsUrl,
    timeout: Duration,
) -> Result<Connection> {
    let addr = url.authority();
    let fail = |message: String| MeshError::Connect {
        addr: addr.clone(),
        message,
    };
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((url.host.as_str(), url.port)))
        .await
        .map_err(|_| fail(format!("TCP connect timed out after {timeout:?}")))?
        .map_err(|e| fail(format!("TCP connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(
        timeout,
        TlsConnector::from(config).connect(url.server_name()?, tcp),
    )
    .await
    .map_err(|_| fail(format!("TLS handshake timed out after {timeout:?}")))?
    .map_err(|e| fail(format!("TLS handshake failed: {}", io_reason(&e, false))))?;
    let summary = HandshakeSummary::of(tls.get_ref().1);
    let (sender, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| fail(format!("HTTP handshake: {}", hyper_reason(&e))))?;
    let failure = Arc::new(Mutex::new(None));
    let slot = failure.clone();
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(hyper_reason(&e));
        }
    });
    Ok(Connection {
        sender,
        authority: addr,
        summary,
        driver: Some(driver),
        failure,
    })
}

impl Connection {
    /// True once the server closed the connection or it failed.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// The connection's failure in words, waiting briefly for the driver to report it.
    async fn failure_reason(&mut self, fallback: String) -> String {
        if let Some(driver) = self.driver.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
        }
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
            .map_err(|e| MeshError::Http(format!("building the request: {e}")))?;
        if let Err(e) = self.sender.ready().await {
            let reason = self.failure_reason(hyper_reason(&e)).await;
            return Err(MeshError::Http(reason));
        }
        let response = match self.sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                let reason = self.failure_reason(hyper_reason(&e)).await;
                return Err(MeshError::Http(reason));
            }
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
            .map_err(|e| MeshError::Http(format!("reading the response body: {e}")))?
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
    }
}
