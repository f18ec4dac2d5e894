//! The provider API's wire types: what the manifest service answers (`server.rs`) and what its
//! clients read (`api_client.rs`, the CLI, the gateway), one definition for both sides.

use std::collections::BTreeMap;

use gridlease_types::{Address, BidId};
use serde::{Deserialize, Serialize};

pub use crate::book::Phase;
pub use crate::driver::{ExecOutput, Proto, ReplicaState, ReplicaStatus};
pub use crate::inventory::{GpuDevice, Inventory};
pub use crate::reserve::Free;

/// `GET /status`: what the provider has, what is free, its prices, its leases and its recent
/// bid decisions. Public: no client certificate needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatus {
    pub address: Address,
    /// `podman` or `exec`.
    pub driver: String,
    /// The node it follows.
    pub node: String,
    pub node_connected: bool,
    /// The last block it saw.
    pub height: u64,
    pub inventory: Inventory,
    pub free: Free,
    pub pricing: PricingSummary,
    pub leases: Vec<LeaseSummary>,
    /// The latest first, at most 50.
    pub recent_decisions: Vec<BidDecision>,
}

/// The provider's prices per block, in `denom` (decimal strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingSummary {
    pub denom: String,
    pub cpu_per_core: String,
    pub memory_per_gib: String,
    pub storage_per_gib: String,
    pub gpu_default: String,
    /// Per GPU, by model.
    pub gpu: BTreeMap<String, String>,
    /// Whether an external script prices each order instead.
    pub script: bool,
}

/// One lease as `GET /status` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseSummary {
    pub lease: BidId,
    pub phase: Phase,
    pub message: String,
}

/// What the bid engine decided about one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// It bid.
    Bid,
    /// It does not bid (the detail says why).
    Skip,
    /// It meant to bid and could not.
    Failed,
}

impl DecisionOutcome {
    pub fn name(self) -> &'static str {
        match self {
            DecisionOutcome::Bid => "bid",
            DecisionOutcome::Skip => "skip",
            DecisionOutcome::Failed => "failed",
        }
    }
}

/// One bid decision, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidDecision {
    pub order: String,
    pub height: u64,
    pub outcome: DecisionOutcome,
    pub detail: String,
    /// Why it did not bid, as a kind (a skip only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DeclineReason>,
    /// The change to the order that would get a bid, where one would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// The kinds of reasons a provider declines an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// The order's price denomination is not one the provider takes.
    Denomination,
    /// The SLA asked is harsher than the provider accepts.
    Sla,
    /// Placement attributes the provider does not have.
    Attributes,
    /// The auditors the order names have not signed the provider's attributes.
    SignedBy,
    /// A storage class the provider does not offer.
    StorageClass,
    /// Leased IP endpoints.
    LeasedIp,
    Cpu,
    Memory,
    Storage,
    /// Not enough free GPUs of a model the order accepts.
    Gpu,
    /// The provider's price is above the order's maximum.
    Price,
    /// Anything else (the deployment is gone, the price does not compute).
    Other,
}

/// `GET /decisions/{owner}/{dseq}`: the provider's decisions on a deployment's orders (public,
/// rate-limited; no lease needed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentDecisions {
    pub provider: Address,
    /// The chain height the provider had seen when it answered.
    pub height: u64,
    /// Newest first; empty when it has not decided on the deployment (or forgot: it keeps
    /// its last few hundred decisions).
    pub decisions: Vec<BidDecision>,
}

/// `GET /lease/.../status` and the answer to `PUT /lease/.../manifest`: where a lease stands
/// on this provider and where its services answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub lease: BidId,
    pub phase: Phase,
    pub message: String,
    /// Hex SHA-256 of the manifest deployed.
    pub manifest_hash: Option<String>,
    /// Unix milliseconds when it first became ready.
    pub ready_at_ms: Option<u64>,
    /// Times a replica was started afresh for writing more to its own disk than leased.
    #[serde(default)]
    pub disk_evictions: u32,
    #[serde(default)]
    pub last_disk_eviction: Option<String>,
    /// Published ports, by service.
    pub services: BTreeMap<String, Vec<ServiceEndpoint>>,
    pub replicas: Vec<ReplicaStatus>,
    /// The image being pulled for the lease right now, and how far it has come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<crate::driver::PullProgress>,
}

impl LeaseStatus {
    /// The URIs where each service answers.
    pub fn endpoints(&self) -> BTreeMap<String, Vec<String>> {
        self.services
            .iter()
            .map(|(name, ports)| (name.clone(), ports.iter().map(|p| p.uri.clone()).collect()))
            .collect()
    }
}

/// One published port of one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    pub replica: u32,
    pub container_port: u16,
    pub host: String,
    pub host_port: u16,
    pub proto: Proto,
    /// `http://host:port` for TCP (nearly every leased service speaks HTTP), `udp://...`.
    pub uri: String,
}

/// `GET /lease/.../logs` query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub service: String,
    #[serde(default)]
    pub replica: u32,
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub tail: Option<usize>,
}

/// `POST /lease/.../shell` body: one command run in one replica; the answer is an
/// [`ExecOutput`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellRequest {
    pub service: String,
    #[serde(default)]
    pub replica: u32,
    pub command: Vec<String>,
}

/// Every refusal: a stable code (`lease_closed`, `manifest_exceeds_lease`, ...) and one
/// sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// `POST /lease/.../attach` (with `Upgrade: gridlease-shell`): opens an interactive session in
/// a replica; after `101 Switching Protocols` both sides speak [`ShellFrame`]s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellOpen {
    pub service: String,
    #[serde(default)]
    pub replica: u32,
    /// The program and its arguments (`/bin/sh` when empty).
    #[serde(default)]
    pub command: Vec<String>,
    /// A terminal (echo, line editing, Ctrl-C as a signal) or plain pipes.
    #[serde(default)]
    pub tty: bool,
    /// The terminal's size at the start.
    #[serde(default)]
    pub cols: u16,
    #[serde(default)]
    pub rows: u16,
}

/// The protocol name of an interactive session's upgraded connection.
pub const SHELL_PROTOCOL: &str = "gridlease-shell";

/// One message of an interactive session: a kind byte, a big-endian `u32` length, the payload
/// (at most [`ShellFrame::MAX_PAYLOAD`] bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellFrame {
    /// Keystrokes for the program (client to provider).
    Input(Vec<u8>),
    /// The terminal's new size (client to provider).
    Resize { cols: u16, rows: u16 },
    /// No more input (client to provider).
    EndOfInput,
    /// What the program wrote (provider to client).
    Output(Vec<u8>),
    /// The program ended with this code (provider to client, last).
    Exit(i64),
    /// The session failed (provider to client, last).
    Error(String),
}

impl ShellFrame {
    pub const MAX_PAYLOAD: usize = 64 << 10;

    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            ShellFrame::Input(b) => (0, b.clone()),
            ShellFrame::Resize { cols, rows } => {
                (1, [cols.to_be_bytes(), rows.to_be_bytes()].concat())
            }
            ShellFrame::EndOfInput => (2, Vec::new()),
            ShellFrame::Output(b) => (3, b.clone()),
            ShellFrame::Exit(code) => (4, code.to_be_bytes().to_vec()),
            ShellFrame::Error(e) => (5, e.as_bytes().to_vec()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Reads one frame; `None` at a clean end of the stream.
    pub async fn read<R: tokio::io::AsyncRead + Unpin>(
        r: &mut R,
    ) -> std::io::Result<Option<ShellFrame>> {
        use tokio::io::AsyncReadExt;
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
        let mut head = [0u8; 5];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > Self::MAX_PAYLOAD {
            return Err(bad("shell frame over 64 KiB"));
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        Ok(Some(match head[0] {
            0 => ShellFrame::Input(payload),
            1 if len == 4 => ShellFrame::Resize {
                cols: u16::from_be_bytes([payload[0], payload[1]]),
                rows: u16::from_be_bytes([payload[2], payload[3]]),
            },
            2 => ShellFrame::EndOfInput,
            3 => ShellFrame::Output(payload),
            4 if len == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&payload);
                ShellFrame::Exit(i64::from_be_bytes(b))
            }
            5 => ShellFrame::Error(String::from_utf8_lossy(&payload).into_owned()),
            _ => return Err(bad("unknown or malformed shell frame")),
        }))
    }
}

#[cfg(test)]
mod shell_frame_tests {
    use super::ShellFrame;

    #[tokio::test]
    async fn frames_round_trip_and_hostile_ones_are_refused() {
        let frames = vec![
            ShellFrame::Input(b"ls\n".to_vec()),
            ShellFrame::Resize { cols: 100, rows: 40 },
            ShellFrame::EndOfInput,
            ShellFrame::Output(vec![0, 255, 10]),
            ShellFrame::Exit(-3),
            ShellFrame::Error("gone".into()),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(ShellFrame::encode).collect();
        let mut r = bytes.as_slice();
        for f in &frames {
            assert_eq!(ShellFrame::read(&mut r).await.unwrap().as_ref(), Some(f));
        }
        assert_eq!(ShellFrame::read(&mut r).await.unwrap(), None);
        // A length past the limit, an unknown kind, a resize of the wrong size.
        for bad in [vec![0u8, 0, 1, 0, 1], vec![9, 0, 0, 0, 0], vec![1, 0, 0, 0, 1, 7]] {
            assert!(ShellFrame::read(&mut bad.as_slice()).await.is_err(), "{bad:?}");
        }
    }
}
