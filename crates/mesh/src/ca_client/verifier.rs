//! The CA client's server verifier: the mesh verifier requiring the CA's identity
//! (`MeshServerVerifier::for_ca`), plus a note of why it refused the server. A server that
//! chains to our roots and matches the host name but is not the CA (a workload holding a
//! certificate for that name, between us and the CA) is a trust failure to report at once, not a
//! transport error to retry; the TLS stack only hands back an I/O error, so the verifier keeps
//! the reason for the CA client.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::{MeshServerVerifier, PeerIdentityError};

#[derive(Debug)]
pub(crate) struct CaVerifier {
    inner: Arc<MeshServerVerifier>,
    not_the_ca: Mutex<Option<PeerIdentityError>>,
}

impl CaVerifier {
    pub(crate) fn new(inner: Arc<MeshServerVerifier>) -> Arc<CaVerifier> {
        Arc::new(CaVerifier {
            inner,
            not_the_ca: Mutex::new(None),
        })
    }

    /// The refusal, when the server was refused for not being the CA.
    pub(crate) fn not_the_ca(&self) -> Option<PeerIdentityError> {
        self.not_the_ca
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn not_the_ca(err: &Error) -> Option<PeerIdentityError> {
    match err {
        Error::InvalidCertificate(CertificateError::Other(o)) => match o.0.downcast_ref() {
            Some(e @ PeerIdentityError::NotTheCa { .. }) => Some(e.clone()),
            _ => None,
        },
        _ => None,
    }
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Some(refusal) = result.as_ref().err().and_then(not_the_ca) {
            *self.not_the_ca.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
