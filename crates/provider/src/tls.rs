//! Mutual TLS between tenants and providers. Certificates are self-signed, carry the owner's
//! address as common name, and are trusted because the owner registered them on chain
//! (`cert.create`): the TLS layer only proves possession of the key; who may do what is
//! decided against the chain (see `server`). Tenants pin the provider's on-chain
//! certificates the same way.

use std::sync::Arc;

use gridlease_types::Address;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};

/// Why a certificate or TLS configuration cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot create a certificate: {0}")]
    Generate(String),
    #[error("not a PEM certificate")]
    NotPem,
    #[error("certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("certificate has no common name holding a grid address")]
    NoAddress,
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate with its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertBundle {
    pub cert_pem: String,
    pub key_pem: String,
    /// The public key, PEM, as the chain's `cert.create` takes it.
    pub pubkey_pem: String,
}

/// A fresh self-signed certificate for `owner` (ECDSA P-256), valid for `hosts` as well.
pub fn generate(owner: &Address, hosts: &[String]) -> Result<CertBundle, TlsError> {
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, owner.to_string());
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(CertBundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        pubkey_pem: key.public_key_pem(),
    })
}

/// The DER bytes of the first certificate in `pem`.
pub fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, TlsError> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| TlsError::NotPem)?;
    if p.label != "CERTIFICATE" {
        return Err(TlsError::NotPem);
    }
    Ok(p.contents)
}

/// The address in a certificate's common name.
pub fn owner_of(der: &[u8]) -> Result<Address, TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Parse(e.to_string()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or(TlsError::NoAddress)?;
    cn.parse::<Address>().map_err(|_| TlsError::NoAddress)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn key_der(key_pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

/// Accepts any client certificate whose handshake signature is valid, and also clients with
/// none: the service answers those with a 401 that says what is missing, instead of a TLS
/// alert nobody can read.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        x509_parser::parse_x509_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The manifest service's TLS configuration.
pub fn server_config(bundle: &CertBundle) -> Result<Arc<ServerConfig>, TlsError> {
    let p = provider();
    let verifier = AnyClientCert { algorithms: p.signature_verification_algorithms };
    let mut config = ServerConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            vec![CertificateDer::from(pem_to_der(bundle.cert_pem.as_bytes())?)],
            key_der(&bundle.key_pem)?,
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Trusts exactly the server certificates given (the provider's valid on-chain ones).
#[derive(Debug)]
struct PinnedServer {
    pinned: Vec<Vec<u8>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pinned.iter().any(|p| p.as_slice() == end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the provider's certificate is not one it registered on chain".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A tenant's TLS configuration towards one provider: presents `client` (when given) and
/// trusts only `pinned_server_ders`.
pub fn client_config(
    client: Option<&CertBundle>,
    pinned_server_ders: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let p = provider();
    let verifier = PinnedServer {
        pinned: pinned_server_ders,
        algorithms: p.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client {
        Some(b) => builder.with_client_auth_cert(
            vec![CertificateDer::from(pem_to_der(b.cert_pem.as_bytes())?)],
            key_der(&b.key_pem)?,
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_name_their_owner() {
        let owner = Address([7; 20]);
        let b = generate(&owner, &["localhost".into(), "127.0.0.1".into()]).expect("cert");
        assert!(b.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.pubkey_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let der = pem_to_der(b.cert_pem.as_bytes()).expect("der");
        assert_eq!(owner_of(&der).expect("owner"), owner);
        assert!(server_config(&b).is_ok());
        assert!(client_config(Some(&b), vec![der]).is_ok());
        assert!(matches!(pem_to_der(b.pubkey_pem.as_bytes()), Err(TlsError::NotPem)));
        assert!(pem_to_der(b"garbage").is_err());
    }
}
