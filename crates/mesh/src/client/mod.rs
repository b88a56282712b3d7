//! The mesh client: one HTTPS connection reused for consecutive requests, replaced as soon as
//! our certificate rotates (so the server never sees an old certificate on a new request) or the
//! server closes it.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use rustls::ClientConfig;

use crate::credentials::Identity;
use crate::error::Result;
use crate::https::{self, Connection, HttpsUrl, Response};
use crate::setup::Services;
use crate::tls::HandshakeSummary;

pub struct MeshClient {
    url: HttpsUrl,
    identity: Arc<Identity>,
    config: Arc<ClientConfig>,
    timeout: Duration,
    conn: Option<(Connection, u64)>,
    /// Handshakes done so far.
    pub connections_opened: u64,
}

/// The outcome of one request.
pub struct Exchange {
    pub response: Response,
    /// Set when this request needed a new connection (first request, rotation, server close).
    pub new_connection: Option<HandshakeSummary>,
}

/// Largest response body read.
const MAX_RESPONSE: usize = 1 << 20;

impl MeshClient {
    pub fn new(
        url: HttpsUrl,
        services: &Services,
        server_id: Option<pki::SpiffeId>,
        timeout: Duration,
    ) -> Result<MeshClient> {
        let verifier = services.server_cert_verifier(server_id)?;
        let config = services
            .policy
            .client_config(verifier, Some(services.identity.resolver()))?;
        Ok(MeshClient {
            url,
            identity: services.identity.clone(),
            config: Arc::new(config),
            timeout,
            conn: None,
            connections_opened: 0,
        })
    }

    /// True when the pooled connection may carry the next request: open, and opened with the
    /// certificate we hold now.
    fn reusable(&self) -> bool {
        matches!(&self.conn, Some((c, generation)) if !c.is_closed() && *generation == self.identity.generation())
    }

    async fn open(&mut self) -> Result<HandshakeSummary> {
        self.conn = None;
        let generation = self.identity.generation();
        let conn = https::connect(self.config.clone(), &self.url, self.timeout).await?;
        let summary = conn.summary.clone();
        self.connections_opened += 1;
        self.conn = Some((conn, generation));
        Ok(summary)
    }

    /// Sends one request. A failure on a reused connection (the server closed it between two
    /// requests) is retried once on a fresh connection; a failure on a fresh one is returned.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Exchange> {
        let mut new_connection = None;
        if !self.reusable() {
            new_connection = Some(self.open().await?);
        }
        let attempt = self.send(method.clone(), path, body.clone()).await;
        match attempt {
            Ok(response) => Ok(Exchange {
                response,
                new_connection,
            }),
            Err(e) if new_connection.is_some() => {
                self.conn = None;
                Err(e)
            }
            Err(first) => {
                tracing::debug!(error = %first, "request on a reused connection failed; retrying on a new one");
                let summary = self.open().await?;
                let response = self.send(method, path, body).await.inspect_err(|_| {
                    self.conn = None;
                })?;
                Ok(Exchange {
                    response,
                    new_connection: Some(summary),
                })
            }
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response> {
        let Some((conn, _)) = self.conn.as_mut() else {
            return Err(crate::MeshError::Http("no connection".into()));
        };
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, conn.request(method, path, &[], body, MAX_RESPONSE))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(crate::MeshError::Http(format!(
                "no response within {timeout:?}"
            ))),
        }
    }
}
