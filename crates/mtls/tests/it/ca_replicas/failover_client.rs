//! A client of several CA replicas as the services are (`--ca-url` repeated): a request goes to
//! its preferred replica and, when no answer comes back (connection refused or reset), to the
//! next one, each replica tried once per request.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::super::ca::common::{client, Identity};

pub struct FailoverClient {
    pub urls: Vec<String>,
    pub root_pem: Vec<u8>,
}

/// What one request got: the answer, and how many replicas were tried for it.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub attempts: usize,
}

impl FailoverClient {
    /// POSTs `body` to `path`, starting with replica `preferred`; Err when no replica answered.
    pub async fn post(
        &self,
        preferred: usize,
        path: &str,
        bearer: Option<&str>,
        identity: Option<&Identity>,
        body: &serde_json::Value,
    ) -> Result<Answer, String> {
        let http = client(&self.root_pem, identity);
        let mut errors = Vec::new();
        for i in 0..self.urls.len() {
            let url = format!("{}{path}", self.urls[(preferred + i) % self.urls.len()]);
            let mut request = http.post(&url).json(body);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.json().await {
                        Ok(body) => {
                            return Ok(Answer {
                                status,
                                body,
                                attempts: i + 1,
                            })
                        }
                        // The replica died while sending its answer.
                        Err(e) => errors.push(format!("{url}: {e}")),
                    }
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        Err(errors.join("; "))
    }
}
