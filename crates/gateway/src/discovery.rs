//! Where a route's replicas are: the active leases of its deployments on chain, and for each
//! the endpoint its provider reports over mutual TLS (the tenant's certificate). Followed
//! live: every `interval` the replica lists are read again, so leases that open, close or move
//! to another provider join or leave their route.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gridlease_client::{Client, LeaseState, ListQuery};
use gridlease_provider::api_client::ProviderApi;
use gridlease_provider::tls::CertBundle;
use gridlease_types::Address;

use crate::Gateway;

/// What a route serves: deployments (by DSEQ, of the tenant) or fixed URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    Deployment(u64),
    Url(String),
}

impl std::str::FromStr for Upstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("http://") {
            return Ok(Upstream::Url(s.trim_end_matches('/').to_string()));
        }
        s.parse::<u64>().map(Upstream::Deployment).map_err(|_| {
            format!("`{s}` is neither a deployment sequence number (DSEQ) nor an http:// URL")
        })
    }
}

/// Reads routes' replicas from the chain and the providers.
#[derive(Debug)]
pub struct Discovery {
    pub chain: Client,
    /// The tenant that owns the deployments.
    pub owner: Address,
    pub cert: CertBundle,
    /// The service whose endpoint serves the model (`None`: each lease's first).
    pub service: Option<String>,
    pub interval: Duration,
}

impl Discovery {
    /// The replicas of `upstreams` now: `(name, base URL)`.
    pub async fn replicas(&self, upstreams: &[Upstream]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut leases = None;
        for u in upstreams {
            let dseq = match u {
                Upstream::Url(url) => {
                    out.push((url.clone(), url.clone()));
                    continue;
                }
                Upstream::Deployment(d) => *d,
            };
            if leases.is_none() {
                let q = ListQuery {
                    owner: Some(self.owner),
                    state: Some("active".into()),
                    ..ListQuery::default()
                };
                match self.chain.leases(&q).await {
                    Ok(l) => leases = Some(l),
                    Err(e) => {
                        tracing::warn!(target: "gateway", error = %e, "cannot list leases");
                        return out;
                    }
                }
            }
            let active = leases
                .iter()
                .flatten()
                .filter(|l| l.id.order.dseq == dseq && matches!(l.state, LeaseState::Active));
            for lease in active {
                let api = match ProviderApi::from_chain(
                    &self.chain,
                    &lease.id.provider,
                    Some(&self.cert),
                )
                .await
                {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(target: "gateway", lease = %lease.id, error = %e, "provider unknown");
                        continue;
                    }
                };
                let status = match api.lease_status(&lease.id).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(target: "gateway", lease = %lease.id, error = %e, "no lease status");
                        continue;
                    }
                };
                let endpoints = status.endpoints();
                let uri = match &self.service {
                    Some(name) => endpoints.get(name).and_then(|u| u.first()),
                    None => endpoints.values().flatten().next(),
                };
                if let Some(uri) = uri {
                    out.push((
                        format!("{dseq}/{}", lease.id.provider),
                        uri.trim_end_matches('/').to_string(),
                    ));
                }
            }
        }
        out
    }

    /// Keeps the gateway's routes in step with the chain until the task is dropped.
    pub async fn follow(self, gateway: Arc<Gateway>, routes: BTreeMap<String, Vec<Upstream>>) {
        loop {
            for (name, upstreams) in &routes {
                let replicas = self.replicas(upstreams).await;
                if let Some(pool) = gateway.pool(name) {
                    let before: Vec<String> =
                        pool.replicas().iter().map(|r| r.url.clone()).collect();
                    let after: Vec<String> = replicas.iter().map(|(_, u)| u.clone()).collect();
                    if before != after {
                        tracing::info!(target: "gateway", route = %name, replicas = ?after, "replicas changed");
                    }
                    pool.set_replicas(&replicas);
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

/// The TOML file `--config` reads: the same as the flags.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<std::net::SocketAddr>,
    /// Which service of each lease serves the model.
    pub service: Option<String>,
    /// Route name (the `model` clients ask for) to DSEQs and URLs, as strings.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
}

impl ConfigFile {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// `NAME=SPEC[,SPEC...]` of `--route`.
pub fn parse_route(s: &str) -> Result<(String, Vec<Upstream>), String> {
    let (name, specs) = s.split_once('=').ok_or_else(|| {
        format!("--route `{s}` must look like NAME=DSEQ[,DSEQ...] or NAME=http://HOST:PORT")
    })?;
    if name.is_empty() {
        return Err(format!("--route `{s}` names no model"));
    }
    let upstreams = specs.split(',').map(str::parse).collect::<Result<Vec<Upstream>, _>>()?;
    Ok((name.to_string(), upstreams))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_flags_and_toml() {
        let (name, ups) = parse_route("llama=12,http://127.0.0.1:9000/").expect("route");
        assert_eq!(name, "llama");
        assert_eq!(
            ups,
            vec![Upstream::Deployment(12), Upstream::Url("http://127.0.0.1:9000".into())]
        );
        assert!(parse_route("llama").is_err());
        assert!(parse_route("=12").is_err());
        assert!(parse_route("llama=twelve").unwrap_err().contains("`twelve`"));
        let c =
            ConfigFile::parse("listen = \"127.0.0.1:8000\"\n[routes]\nllama = [\"12\", \"13\"]\n")
                .expect("config");
        assert_eq!(c.routes["llama"], vec!["12", "13"]);
        assert!(ConfigFile::parse("lisen = 1").is_err(), "unknown keys are refused");
    }
}
