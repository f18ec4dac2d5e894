//! BFT consensus for gridlease.
//!
//! The engine is Malachite (`arc-malachitebft-app-channel`, pinned in the
//! workspace). Nothing of it leaks out of this crate: the node implements
//! [`Application`] over plain block bytes and calls [`run`].
//!
//! What consensus agrees on is the SHA-256 of the block bytes the proposer's
//! [`Application::propose`] returned. Each decided block is handed to
//! [`Application::commit`] together with an opaque commit certificate
//! (the validators' precommit signatures), which the application stores
//! next to the block and gives back from [`Application::decided_block`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod codec;
mod driver;
mod evidence;
mod pending;
mod signing;
mod types;

/// Errors a node can get back from [`run`].
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("invalid consensus configuration: {0}")]
    Config(String),
    #[error("consensus storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("consensus engine: {0}")]
    Engine(String),
    #[error("invalid double-sign evidence: {0}")]
    Evidence(String),
}

pub use evidence::check_double_sign;

/// A validator signed two different votes for one height and round, as consensus saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misbehaviour {
    /// The validator's ed25519 consensus key.
    pub offender: [u8; 32],
    pub height: u64,
    /// Both signed votes; [`check_double_sign`] verifies them.
    pub evidence: Vec<u8>,
}

/// Error type an application may return from [`Application::commit`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A block that consensus decided, with its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecidedBlock {
    pub height: u64,
    /// The consensus round the block was decided in.
    pub round: u32,
    /// SHA-256 of `block`: the value the validators signed.
    pub hash: [u8; 32],
    pub block: Vec<u8>,
    /// Opaque commit certificate; see [`certificate_info`].
    pub certificate: Vec<u8>,
}

/// What the node provides to consensus.
///
/// Calls come one at a time from a single task, in height order.
pub trait Application: Send + 'static {
    /// Height of the last block committed to durable storage (0 if none).
    /// Consensus resumes at the height after it.
    fn last_committed(&self) -> u64;

    /// Build a block for `height`. Called when this validator is the
    /// proposer; called at most once per (height, round): after a crash the
    /// same block is re-proposed from consensus' own store.
    fn propose(&mut self, height: u64, round: u32) -> impl Future<Output = Vec<u8>> + Send;

    /// Is the block another validator proposed for `height` acceptable?
    /// Called only when `height` is the height now being decided.
    fn validate(&mut self, height: u64, block: &[u8]) -> impl Future<Output = bool> + Send;

    /// Execute and durably commit a decided block. Return only once it is
    /// durable; on error consensus retries the height.
    fn commit(
        &mut self,
        decided: DecidedBlock,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// A committed block and its certificate, for peers that catch up.
    fn decided_block(&self, height: u64) -> Option<DecidedBlock>;

    /// The validators that decide `height`, once every block below it is committed. `None`
    /// keeps the set the consensus config started with (a fixed set).
    fn validator_set(&self, height: u64) -> Option<Vec<ValidatorInfo>> {
        let _ = height;
        None
    }

    /// Double signs consensus saw while deciding the last height (empty most of the time).
    fn misbehaviour(&mut self, reports: Vec<Misbehaviour>) {
        let _ = reports;
    }

    /// The lowest height whose block [`Application::decided_block`] still has.
    fn earliest_height(&self) -> u64 {
        1
    }
}

/// One member of the validator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorInfo {
    /// ed25519 public key.
    pub public_key: [u8; 32],
    pub voting_power: u64,
}

/// How to run consensus.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// Directory for the consensus WAL and the pending-block store.
    pub home: PathBuf,
    /// Chain id; part of every signature.
    pub chain_id: String,
    /// Names this chain on the wire: the P2P protocol ids carry it, so peers of another
    /// chain or genesis are disconnected at the handshake (their protocol differs). The node
    /// uses the chain id and its genesis' state root.
    pub network_id: String,
    /// Human-readable node name (logs, metrics).
    pub moniker: String,
    /// This validator's ed25519 secret key (32-byte seed): signs votes and proposals.
    pub validator_key: [u8; 32],
    /// The node's P2P identity (ed25519 seed of its libp2p peer id), kept apart from the
    /// validator key so that two processes holding one validator key are still two peers
    /// (and their conflicting votes reach everyone as evidence rather than one of them being
    /// dropped as a duplicate connection).
    pub node_key: [u8; 32],
    /// The validator set to start with; [`Application::validator_set`] gives each later
    /// height's.
    pub validators: Vec<ValidatorInfo>,
    /// P2P listen address (TCP). Port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Peers to stay connected to. Empty for a single validator.
    pub persistent_peers: Vec<SocketAddr>,
    /// Target time between blocks.
    pub block_time: Duration,
    /// How long to wait for a proposal in round 0 before prevoting nil.
    pub propose_timeout: Duration,
    /// Maximum size of one streamed proposal chunk.
    pub part_size: usize,
    /// Largest block a proposal may carry: an incoming stream that grows past it (in bytes or
    /// in parts) is dropped before it completes.
    pub max_block_bytes: usize,
}

impl ConsensusConfig {
    /// A one-validator network on loopback with a 1 s block time; the validator key doubles
    /// as the node key.
    pub fn single_validator(
        home: impl Into<PathBuf>,
        chain_id: &str,
        validator_key: [u8; 32],
    ) -> Self {
        let public_key =
            ed25519_dalek::SigningKey::from_bytes(&validator_key).verifying_key().to_bytes();
        Self {
            home: home.into(),
            chain_id: chain_id.to_string(),
            network_id: chain_id.to_string(),
            moniker: "validator-0".to_string(),
            validator_key,
            node_key: validator_key,
            validators: vec![ValidatorInfo { public_key, voting_power: 1 }],
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            persistent_peers: Vec::new(),
            block_time: Duration::from_secs(1),
            propose_timeout: Duration::from_secs(3),
            part_size: 128 * 1024,
            max_block_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The P2P protocol ids of a network: `/gridlease/NETWORK/...`, with every character of the
/// network id that is not ASCII alphanumeric, `.`, `_` or `-` replaced by `_`.
pub fn protocol_prefix(network_id: &str) -> String {
    let clean: String = network_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    format!("/gridlease/{clean}")
}

/// The readable content of a commit certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    pub height: u64,
    pub round: u32,
    pub block_hash: [u8; 32],
    /// Validator addresses (20 bytes each) whose precommits it carries.
    pub signers: Vec<[u8; 20]>,
}

/// Decode a certificate handed to [`Application::commit`].
pub fn certificate_info(bytes: &[u8]) -> Result<CertificateInfo, ConsensusError> {
    let cert = codec::decode_certificate(bytes)?;
    Ok(CertificateInfo {
        height: cert.height.0,
        round: cert.round.as_u32().unwrap_or(0),
        block_hash: cert.value_id.0,
        signers: cert.commit_signatures.iter().map(|s| s.address.0).collect(),
    })
}

/// The 20-byte consensus address of a validator public key.
pub fn validator_address(public_key: &[u8; 32]) -> Result<[u8; 20], ConsensusError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(public_key)
        .map_err(|e| ConsensusError::Config(format!("invalid validator public key: {e}")))?;
    Ok(types::Address::from_public_key(&types::PublicKey(key)).0)
}

/// Run consensus until `shutdown` resolves (or the engine fails), then stop
/// the engine and give the application back.
pub async fn run<A: Application>(
    config: ConsensusConfig,
    app: A,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<A, ConsensusError> {
    driver::run(config, app, shutdown).await
}
