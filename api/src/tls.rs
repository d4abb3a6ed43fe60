//! TLS for the API listeners, and client certificates as identities.
//!
//! Both servers take one certificate chain and key (`--api.tls.cert-file`,
//! `--api.tls.key-file`, PEM) and, for mutual TLS, a client CA (`--api.tls.client-ca-file`,
//! PEM, one or more certificates). rustls with the `ring` provider does the work: tonic's
//! own TLS support for gRPC, `tokio-rustls` for HTTP (whose accept loop is ours, so that a
//! connection's verified client certificate reaches every request on it).
//!
//! Client certificates are optional in the handshake, so `/healthz` and bearer tokens
//! still work over TLS; a certificate that is presented must chain to the client CA, or the
//! handshake fails. Whether a call without one gets in is [`crate::auth`]'s decision.

use crate::auth::AuthError;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The server's TLS settings, read and checked once at start.
#[derive(Clone)]
pub struct TlsSettings {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    client_ca_pem: Option<Vec<u8>>,
    /// The same, as a rustls configuration for the HTTP server.
    http: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("client_certificates", &self.client_certificates())
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Read the certificate chain, the private key and (for mutual TLS) the client CA, all
    /// PEM, and check that they make a working configuration. Errors name the flag and
    /// the file.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        client_ca_file: Option<&Path>,
    ) -> Result<Self, AuthError> {
        let cert_pem = read(cert_file, "--api.tls.cert-file")?;
        let key_pem = read(key_file, "--api.tls.key-file")?;
        let chain = certificates(&cert_pem, cert_file, "--api.tls.cert-file")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| AuthError::TlsFile {
            flag: "--api.tls.key-file",
            path: key_file.to_owned(),
            problem: format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) found: {e}"),
        })?;
        let (client_ca_pem, roots) = match client_ca_file {
            None => (None, None),
            Some(path) => {
                let pem = read(path, "--api.tls.client-ca-file")?;
                let cas = certificates(&pem, path, "--api.tls.client-ca-file")?;
                let mut roots = rustls::RootCertStore::empty();
                for ca in cas {
                    roots.add(ca).map_err(|e| AuthError::TlsFile {
                        flag: "--api.tls.client-ca-file",
                        path: path.to_owned(),
                        problem: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                (Some(pem), Some(roots))
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| AuthError::Tls(e.to_string()))?;
        let builder = match roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| AuthError::Tls(format!("the client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut http = builder.with_single_cert(chain, key).map_err(|e| {
            AuthError::Tls(format!(
                "the certificate ({}) and key ({}) do not fit together: {e}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            cert_pem,
            key_pem,
            client_ca_pem,
            http: Arc::new(http),
        })
    }

    /// Whether client certificates are verified (a client CA was given).
    pub fn client_certificates(&self) -> bool {
        self.client_ca_pem.is_some()
    }

    /// tonic's configuration for the gRPC server.
    pub(crate) fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        let identity = tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem);
        let config = tonic::transport::ServerTlsConfig::new()
            .identity(identity)
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca_pem {
            None => config,
            Some(pem) => config
                .client_ca_root(tonic::transport::Certificate::from_pem(pem))
                .client_auth_optional(true),
        }
    }

    /// The acceptor for the HTTP server.
    pub(crate) fn http_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.http.clone())
    }
}

/// How long a client may take to finish the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn read(path: &Path, flag: &'static str) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|e| AuthError::TlsFile {
        flag,
        path: path.to_owned(),
        problem: e.to_string(),
    })
}

fn certificates(
    pem: &[u8],
    path: &Path,
    flag: &'static str,
) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    let problem = |problem: String| AuthError::TlsFile {
        flag,
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(problem(
            "no PEM certificate (BEGIN CERTIFICATE) in it".to_owned(),
        ));
    }
    Ok(certs)
}

/// The identity a client certificate (DER) stands for: its subject's common name, or the
/// whole subject (RFC 4514 style) when it has none, or its serial number when the subject
/// is empty. `None` if it does not parse (rustls checked it already, so that is unlikely).
pub(crate) fn certificate_subject(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = certificate.subject();
    if let Some(cn) = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
    {
        return Some(cn.to_owned());
    }
    let whole = subject.to_string();
    if !whole.is_empty() {
        return Some(whole);
    }
    Some(format!("serial:{}", certificate.raw_serial_as_string()))
}

/// What the transport knows about a caller.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    /// Its address.
    pub(crate) address: Option<SocketAddr>,
    /// The identity of the client certificate it presented, verified in the handshake.
    pub(crate) certificate_subject: Option<String>,
}

/// The peer of a gRPC request, from the connection info tonic puts in its extensions.
pub(crate) fn grpc_peer(extensions: &http::Extensions) -> Peer {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    if let Some(tls) = extensions.get::<TlsConnectInfo<TcpConnectInfo>>() {
        return Peer {
            address: tls.get_ref().remote_addr(),
            certificate_subject: tls
                .peer_certs()
                .and_then(|certs| certs.first().and_then(|c| certificate_subject(c))),
        };
    }
    Peer {
        address: extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr),
        certificate_subject: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn ca() -> (CertificateParams, KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        (params, key, pem)
    }

    fn leaf(
        ca: &(CertificateParams, KeyPair, String),
        names: &[&str],
        dn: &[(DnType, &str)],
    ) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let issuer = Issuer::from_params(&ca.0, &ca.1);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    #[test]
    fn the_subject_is_the_common_name_else_the_whole_subject() {
        let ca = ca();
        let (_, _, der) = leaf(
            &ca,
            &[],
            &[
                (DnType::OrganizationName, "Acme"),
                (DnType::CommonName, "deploy-bot"),
            ],
        );
        assert_eq!(certificate_subject(&der).as_deref(), Some("deploy-bot"));
        let (_, _, der) = leaf(
            &ca,
            &[],
            &[
                (DnType::OrganizationName, "Acme"),
                (DnType::OrganizationalUnitName, "ops"),
            ],
        );
        let subject = certificate_subject(&der).unwrap();
        assert!(
            subject.contains("O=Acme") && subject.contains("OU=ops"),
            "{subject}"
        );
        let (_, _, der) = leaf(&ca, &["svc.example"], &[]);
        assert!(certificate_subject(&der).unwrap().starts_with("serial:"));
        assert_eq!(certificate_subject(b"not a certificate"), None);
    }

    #[test]
    fn settings_load_from_pem_files_and_name_the_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let (cert, key, _) = leaf(&ca, &["localhost"], &[(DnType::CommonName, "server")]);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let cert_file = write("cert.pem", &cert);
        let key_file = write("key.pem", &key);
        let ca_file = write("ca.pem", &ca.2);
        let plain = TlsSettings::load(&cert_file, &key_file, None).unwrap();
        assert!(!plain.client_certificates());
        let mutual = TlsSettings::load(&cert_file, &key_file, Some(&ca_file)).unwrap();
        assert!(mutual.client_certificates());

        let missing = dir.path().join("missing.pem");
        let error = TlsSettings::load(&missing, &key_file, None).err().unwrap();
        assert!(
            error
                .to_string()
                .starts_with(&format!("--api.tls.cert-file {}: ", missing.display())),
            "{error}"
        );
        let error = TlsSettings::load(&key_file, &key_file, None).err().unwrap();
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
        let error = TlsSettings::load(&cert_file, &cert_file, None)
            .err()
            .unwrap();
        assert!(
            error.to_string().starts_with("--api.tls.key-file"),
            "{error}"
        );
        let error = TlsSettings::load(&cert_file, &key_file, Some(&key_file))
            .err()
            .unwrap();
        assert!(
            error.to_string().starts_with("--api.tls.client-ca-file"),
            "{error}"
        );
        // A key of another certificate.
        let (_, other_key, _) = leaf(&ca, &["localhost"], &[(DnType::CommonName, "x")]);
        let other_key_file = write("other-key.pem", &other_key);
        let error = TlsSettings::load(&cert_file, &other_key_file, None)
            .err()
            .unwrap();
        assert!(error.to_string().contains("do not fit together"), "{error}");
    }
}
