//! The tenant's side of the manifest service: HTTPS with mutual TLS to one provider, trusting
//! only the certificates that provider registered on chain.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gridlease_client::Client;
use gridlease_types::{Address, BidId};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use crate::api::{ErrorBody, ExecOutput, LeaseStatus, ProviderStatus, ShellRequest};
use crate::tls::{self, CertBundle};

/// Why a call to a provider failed.
/// The most a provider's answer may hold: any registered provider is a stranger to the
/// tenant's CLI (which asks up to 32 of them why they did not bid), so an answer is read only
/// this far. Logs are the largest answers (`--tail` keeps them small).
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Reads a whole body, refusing one larger than `max` bytes without reading further.
async fn collect_limited<B>(body: B, max: usize) -> Result<Bytes, String>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(format!("the answer is larger than {max} bytes"))
        }
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error("provider host_uri `{0}` is not https://HOST:PORT")]
    BadUri(String),
    #[error("cannot reach the provider at {uri}: {reason}")]
    Unreachable { uri: String, reason: String },
    #[error("the provider refused ({status}): {message}")]
    Refused { status: u16, code: String, message: String },
    #[error("the provider at {uri} answered with something unexpected: {reason}")]
    BadAnswer { uri: String, reason: String },
    #[error("{0}")]
    Chain(String),
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A connection recipe to one provider.
#[derive(Clone, Debug)]
pub struct ProviderApi {
    uri: String,
    host: String,
    port: u16,
    config: Arc<rustls::ClientConfig>,
}

impl ProviderApi {
    /// For the provider at `host_uri` whose valid certificates (DER) are `pinned`.
    pub fn new(
        host_uri: &str,
        client_cert: Option<&CertBundle>,
        pinned: Vec<Vec<u8>>,
    ) -> Result<ProviderApi, ApiClientError> {
        let bad = || ApiClientError::BadUri(host_uri.to_string());
        let rest = host_uri.strip_prefix("https://").ok_or_else(bad)?.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(ProviderApi {
            uri: host_uri.to_string(),
            host,
            port,
            config: tls::client_config(client_cert, pinned)?,
        })
    }

    /// Looks the provider up on chain (host URI and valid certificates).
    pub async fn from_chain(
        chain: &Client,
        provider: &Address,
        client_cert: Option<&CertBundle>,
    ) -> Result<ProviderApi, ApiClientError> {
        let chain_err = |e: gridlease_client::ClientError| ApiClientError::Chain(e.to_string());
        let record = chain.provider(provider).await.map_err(chain_err)?.ok_or_else(|| {
            ApiClientError::Chain(format!("{provider} is not a registered provider"))
        })?;
        let pinned: Vec<Vec<u8>> = chain
            .certificates(provider)
            .await
            .map_err(chain_err)?
            .iter()
            .filter(|c| c.is_valid())
            .filter_map(|c| tls::pem_to_der(c.cert_pem.as_bytes()).ok())
            .collect();
        if pinned.is_empty() {
            return Err(ApiClientError::Chain(format!(
                "provider {provider} has no valid certificate on chain"
            )));
        }
        ProviderApi::new(&record.provider.host_uri, client_cert, pinned)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ApiClientError> {
        let unreachable =
            |reason: String| ApiClientError::Unreachable { uri: self.uri.clone(), reason };
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| unreachable("connect timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|_| ApiClientError::BadUri(self.uri.clone()))?;
        let stream = TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(format!("tls handshake failed: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", self.host, self.port));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if path.ends_with("/attach") {
            req = req.header("connection", "upgrade").header("upgrade", crate::api::SHELL_PROTOCOL);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| unreachable(e.to_string()))?;
        sender.send_request(req).await.map_err(|e| unreachable(e.to_string()))
    }

    /// A whole response: status and body.
    async fn read(
        &self,
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<(u16, Bytes), ApiClientError> {
        let status = resp.status().as_u16();
        let bytes = collect_limited(resp.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|reason| ApiClientError::BadAnswer { uri: self.uri.clone(), reason })?;
        Ok((status, bytes))
    }

    /// The refusal a non-2xx answer carries (an [`ErrorBody`]).
    fn refusal(status: u16, bytes: &[u8]) -> ApiClientError {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => ApiClientError::Refused { status, code: body.error, message: body.message },
            Err(_) => ApiClientError::Refused {
                status,
                code: "http".to_owned(),
                message: String::from_utf8_lossy(bytes).into_owned(),
            },
        }
    }

    /// Sends a request and decodes the JSON answer, or returns the refusal with its reason.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ApiClientError> {
        let resp = self.send(method, path, body).await?;
        let (status, bytes) = self.read(resp).await?;
        if !(200..300).contains(&status) {
            return Err(Self::refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiClientError::BadAnswer {
            uri: self.uri.clone(),
            reason: format!("{path}: {e}"),
        })
    }

    fn lease_path(lease: &BidId, what: &str) -> String {
        let o = &lease.order;
        format!("/lease/{}/{}/{}/{}/{what}", o.owner, o.dseq, o.gseq, o.oseq)
    }

    fn logs_path(
        lease: &BidId,
        service: &str,
        replica: u32,
        follow: bool,
        tail: Option<usize>,
    ) -> String {
        let mut path = format!(
            "{}?service={service}&replica={replica}&follow={follow}",
            Self::lease_path(lease, "logs")
        );
        if let Some(t) = tail {
            path.push_str(&format!("&tail={t}"));
        }
        path
    }

    /// Opens an interactive session in a replica of the lease: the connection, upgraded, on
    /// which both sides speak [`crate::api::ShellFrame`]s.
    pub async fn attach(
        &self,
        lease: &BidId,
        open: &crate::api::ShellOpen,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ApiClientError> {
        let body = serde_json::to_vec(open).map_err(|e| ApiClientError::BadAnswer {
            uri: self.uri.clone(),
            reason: e.to_string(),
        })?;
        let resp = self.send("POST", &Self::lease_path(lease, "attach"), Some(body)).await?;
        if resp.status().as_u16() != 101 {
            let (status, bytes) = self.read(resp).await?;
            return Err(Self::refusal(status, &bytes));
        }
        let upgraded = hyper::upgrade::on(resp).await.map_err(|e| ApiClientError::BadAnswer {
            uri: self.uri.clone(),
            reason: format!("the session did not start: {e}"),
        })?;
        Ok(TokioIo::new(upgraded))
    }

    /// The provider's public status.
    pub async fn status(&self) -> Result<ProviderStatus, ApiClientError> {
        self.call("GET", "/status", None).await
    }

    /// The provider's decisions on the orders of deployment `owner`/`dseq` (public).
    pub async fn decisions(
        &self,
        owner: &gridlease_types::Address,
        dseq: u64,
    ) -> Result<crate::api::DeploymentDecisions, ApiClientError> {
        self.call("GET", &format!("/decisions/{owner}/{dseq}"), None).await
    }

    /// Sends the deployment's manifest (the exact bytes whose hash is on chain).
    pub async fn send_manifest(
        &self,
        lease: &BidId,
        manifest: &[u8],
    ) -> Result<LeaseStatus, ApiClientError> {
        self.call("PUT", &Self::lease_path(lease, "manifest"), Some(manifest.to_vec())).await
    }

    pub async fn lease_status(&self, lease: &BidId) -> Result<LeaseStatus, ApiClientError> {
        self.call("GET", &Self::lease_path(lease, "status"), None).await
    }

    /// Logs of one replica (not followed), as text.
    pub async fn logs(
        &self,
        lease: &BidId,
        service: &str,
        replica: u32,
        tail: Option<usize>,
    ) -> Result<String, ApiClientError> {
        let path = Self::logs_path(lease, service, replica, false, tail);
        let resp = self.send("GET", &path, None).await?;
        let (status, bytes) = self.read(resp).await?;
        if status != 200 {
            return Err(Self::refusal(status, &bytes));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Follows the logs of one replica, handing each chunk to `sink` as it arrives, until the
    /// provider ends the stream.
    pub async fn follow_logs(
        &self,
        lease: &BidId,
        service: &str,
        replica: u32,
        tail: Option<usize>,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), ApiClientError> {
        let path = Self::logs_path(lease, service, replica, true, tail);
        let resp = self.send("GET", &path, None).await?;
        if resp.status().as_u16() != 200 {
            let (status, bytes) = self.read(resp).await?;
            return Err(Self::refusal(status, &bytes));
        }
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiClientError::Unreachable {
                uri: self.uri.clone(),
                reason: e.to_string(),
            })?;
            if let Some(data) = frame.data_ref() {
                sink(data);
            }
        }
        Ok(())
    }

    /// Runs a command in a replica.
    pub async fn shell(
        &self,
        lease: &BidId,
        service: &str,
        replica: u32,
        command: &[String],
    ) -> Result<ExecOutput, ApiClientError> {
        let body = ShellRequest { service: service.to_owned(), replica, command: command.to_vec() };
        let bytes = serde_json::to_vec(&body).map_err(|e| ApiClientError::BadAnswer {
            uri: self.uri.clone(),
            reason: e.to_string(),
        })?;
        self.call("POST", &Self::lease_path(lease, "shell"), Some(bytes)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attack_an_oversized_answer_is_refused_without_reading_it_all() {
        let body = Full::new(Bytes::from(vec![b'x'; 1025]));
        let e = collect_limited(body, 1024).await.expect_err("over the limit");
        assert!(e.contains("larger than 1024 bytes"), "{e}");
        let ok = collect_limited(Full::new(Bytes::from_static(b"{}")), 1024).await;
        assert_eq!(ok.as_deref(), Ok(&b"{}"[..]));
    }
}
