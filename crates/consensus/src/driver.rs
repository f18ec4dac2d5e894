//! Starts the engine and answers its requests on behalf of an [`Application`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tracing::{debug, error, info, warn};

use arc_malachitebft_app_channel::app::config::{
    ConsensusConfig as EngineConsensusConfig, NodeConfig, P2pConfig, ProtocolNames, ValueSyncConfig,
};
use arc_malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use arc_malachitebft_app_channel::app::net::Multiaddr;
use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::codec::Codec;
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, LinearTimeouts, Round, VoteExtensions,
};
use arc_malachitebft_app_channel::app::types::sync::RawDecidedValue;
use arc_malachitebft_app_channel::app::types::{
    Keypair, LocallyProposedValue, PeerId, ProposedValue,
};
use arc_malachitebft_app_channel::{
    AppMsg, Channels, ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, NetworkMsg,
    RequestContext, Signer as _, SyncContext, WalContext, start_engine,
};

use crate::codec::{GridCodec, decode_certificate, encode_certificate};
use crate::pending::{Pending, PendingStore};
use crate::signing::{GridSigner, GridVerifier};
use crate::types::{
    Address, BlockHash, GridContext, Height, ProposalPart, PublicKey, Validator, ValidatorSet,
};
use crate::{Application, ConsensusConfig, ConsensusError, DecidedBlock, ValidatorInfo};

/// At most this many decided blocks go into one sync response.
const MAX_SYNC_BATCH: u64 = 64;
/// Incomplete incoming proposal streams kept at once...
const MAX_OPEN_STREAMS: usize = 256;
/// ...and from one peer (it only ever needs a few rounds' worth).
const MAX_STREAMS_PER_PEER: usize = 8;
/// Proposals for later heights are kept only this far ahead...
const FUTURE_HEIGHTS: u64 = 2;
/// ...and only this many of them.
const MAX_FUTURE_PROPOSALS: usize = 64;

/// The engine's node configuration (the trait it reads at start).
struct EngineConfig {
    moniker: String,
    consensus: EngineConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &EngineConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut EngineConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn tcp_multiaddr(addr: std::net::SocketAddr) -> Result<Multiaddr, ConsensusError> {
    let proto = if addr.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{proto}/{}/tcp/{}", addr.ip(), addr.port())
        .parse()
        .map_err(|e| ConsensusError::Config(format!("bad address {addr}: {e}")))
}

fn engine_err(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Engine(e.to_string())
}

/// A proposal stream being reassembled.
#[derive(Default)]
struct PartialStream {
    parts: BTreeMap<u64, ProposalPart>,
    fin_seq: Option<u64>,
    /// Bytes of data parts held.
    bytes: usize,
    /// When the stream started (order of arrival among open streams).
    opened: u64,
}

/// Why an incoming proposal stream was dropped before completing.
#[derive(Debug, PartialEq, Eq)]
enum StreamRefusal {
    TooManyParts,
    TooManyBytes,
    SequenceTooHigh,
}

impl PartialStream {
    /// Adds a part, refusing a stream that outgrows what any valid block needs: at most
    /// `max_parts` parts (init, data, fin) and `max_bytes` of data, sequences below that.
    fn add(
        &mut self,
        sequence: u64,
        content: StreamContent<ProposalPart>,
        max_parts: u64,
        max_bytes: usize,
    ) -> Result<(), StreamRefusal> {
        if sequence > max_parts {
            return Err(StreamRefusal::SequenceTooHigh);
        }
        match content {
            StreamContent::Data(part) => {
                let size = match &part {
                    ProposalPart::Data(chunk) => chunk.len(),
                    _ => 0,
                };
                if let Some(ProposalPart::Data(old)) = self.parts.get(&sequence) {
                    self.bytes -= old.len();
                }
                self.bytes += size;
                self.parts.insert(sequence, part);
                if self.parts.len() as u64 > max_parts {
                    return Err(StreamRefusal::TooManyParts);
                }
                if self.bytes > max_bytes {
                    return Err(StreamRefusal::TooManyBytes);
                }
            }
            StreamContent::Fin => self.fin_seq = Some(sequence),
        }
        Ok(())
    }

    /// `(init fields, block bytes, claimed hash)` once every part is in.
    fn complete(&self) -> Option<(Height, Round, Round, Address, Vec<u8>, BlockHash)> {
        let fin = self.fin_seq?;
        // Sequences 0..fin carry parts; `fin` itself is the end marker.
        if self.parts.len() as u64 != fin
            || self.parts.keys().next_back() != fin.checked_sub(1).as_ref()
        {
            return None;
        }
        let mut iter = self.parts.values();
        let Some(ProposalPart::Init { height, round, pol_round, proposer }) = iter.next() else {
            return None;
        };
        let mut block = Vec::new();
        let mut claimed = None;
        for part in iter {
            match part {
                ProposalPart::Data(chunk) => block.extend_from_slice(chunk),
                ProposalPart::Fin { hash } => claimed = Some(*hash),
                ProposalPart::Init { .. } => return None,
            }
        }
        Some((*height, *round, *pol_round, *proposer, block, claimed?))
    }
}

struct Driver<A> {
    app: A,
    me: Address,
    validators: ValidatorSet,
    timeouts: LinearTimeouts,
    block_time: Duration,
    part_size: usize,
    pending: PendingStore,
    current_height: Height,
    /// Complete proposals for heights above the current one, checked when their height starts.
    future: Vec<Pending>,
    streams: HashMap<(PeerId, StreamId), PartialStream>,
    /// Counts streams opened, to find the oldest.
    streams_opened: u64,
    max_block_bytes: usize,
}

pub(crate) async fn run<A: Application>(
    config: ConsensusConfig,
    app: A,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<A, ConsensusError> {
    if config.validators.is_empty() {
        return Err(ConsensusError::Config("empty validator set".into()));
    }
    if config.part_size == 0 {
        return Err(ConsensusError::Config("part_size must be > 0".into()));
    }
    let signing_key = SigningKey::from_bytes(&config.validator_key);
    let public_key = PublicKey(signing_key.verifying_key());
    let me = Address::from_public_key(&public_key);

    let validators = validator_set(&config.validators)?;

    std::fs::create_dir_all(&config.home)?;
    let pending = PendingStore::open(&config.home.join("pending"))?;

    let prefix = crate::protocol_prefix(&config.network_id);
    let protocol_names = ProtocolNames {
        consensus: format!("{prefix}/consensus/v1"),
        discovery_kad: format!("{prefix}/discovery/kad/v1"),
        discovery_regres: format!("{prefix}/discovery/reqres/v1"),
        sync: format!("{prefix}/sync/v1"),
        validator_proof: format!("{prefix}/validator-proof/v1"),
    };
    info!(protocol = %protocol_names.consensus, "peers of other chains or genesis are refused");
    let mut p2p = P2pConfig {
        listen_addr: tcp_multiaddr(config.listen_addr)?,
        protocol_names,
        ..P2pConfig::default()
    };
    for peer in &config.persistent_peers {
        p2p.persistent_peers.push(tcp_multiaddr(*peer)?);
    }
    let engine_config = EngineConfig {
        moniker: config.moniker.clone(),
        consensus: EngineConsensusConfig { p2p, ..EngineConsensusConfig::default() },
        value_sync: ValueSyncConfig::default(),
    };

    // The libp2p identity is the node key; the validator proof binds the consensus key to
    // that peer id for other validators.
    let keypair = Keypair::ed25519_from_bytes(config.node_key)
        .map_err(|e| ConsensusError::Config(format!("bad node key: {e}")))?;
    let signer = GridSigner::new(signing_key.clone(), config.chain_id.clone());
    let proof = signer
        .sign_validator_proof(
            public_key.0.as_bytes().to_vec(),
            keypair.public().to_peer_id().to_bytes(),
        )
        .await
        .map_err(engine_err)?;
    let proof_bytes = GridCodec.encode(&proof)?;
    let wal_path = config.home.join("wal").join("consensus.wal");

    // A previous engine in this process may still be closing its WAL (it
    // holds an exclusive lock until its thread exits): retry for a while.
    let mut attempt = 0;
    let (channels, handle) = loop {
        let identity = NetworkIdentity::new_validator(
            config.moniker.clone(),
            keypair.clone(),
            me.to_string(),
            proof_bytes.clone(),
        );
        let engine_config = EngineConfig {
            moniker: engine_config.moniker.clone(),
            consensus: engine_config.consensus.clone(),
            value_sync: engine_config.value_sync,
        };
        let result = start_engine(
            GridContext,
            engine_config,
            WalContext::new(wal_path.clone(), GridCodec),
            NetworkContext::new(identity, GridCodec),
            ConsensusContext::new_validator(
                me,
                Box::new(GridVerifier::new(config.chain_id.clone())),
                Box::new(GridSigner::new(signing_key.clone(), config.chain_id.clone())),
            ),
            SyncContext::new(GridCodec),
            RequestContext::new(64),
        )
        .await;
        match result {
            Ok(started) => break started,
            Err(e) if attempt < 25 && format!("{e:#}").contains("lock") => {
                attempt += 1;
                debug!(error = %e, "WAL still locked, retrying engine start");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(engine_err(format!("{e:#}"))),
        }
    };

    let timeouts = LinearTimeouts { propose: config.propose_timeout, ..LinearTimeouts::default() };
    let mut driver = Driver {
        app,
        me,
        validators,
        timeouts,
        block_time: config.block_time,
        part_size: config.part_size,
        pending,
        current_height: Height(0),
        future: Vec::new(),
        streams: HashMap::new(),
        streams_opened: 0,
        max_block_bytes: config.max_block_bytes,
    };

    let outcome = driver.serve(channels, &handle, shutdown).await;
    stop_engine(handle).await;
    outcome.map(|()| driver.app)
}

async fn stop_engine(handle: EngineHandle) {
    let timeout = Some(Duration::from_secs(10));
    handle.actor.stop_children_and_wait(Some("shutdown".into()), timeout).await;
    if let Err(e) = handle.actor.stop_and_wait(Some("shutdown".into()), timeout).await {
        debug!(error = %e, "engine node actor already stopped");
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), handle.handle).await;
}

/// The engine's validator set from ours: every key usable and some voting power.
fn validator_set(validators: &[ValidatorInfo]) -> Result<ValidatorSet, ConsensusError> {
    let mut members = Vec::with_capacity(validators.len());
    for v in validators {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&v.public_key)
            .map_err(|e| ConsensusError::Config(format!("bad validator key: {e}")))?;
        members.push(Validator::new(PublicKey(key), v.voting_power));
    }
    let set = ValidatorSet::new(members);
    if set.is_empty() {
        return Err(ConsensusError::Config("validator set has no voting power".into()));
    }
    Ok(set)
}

impl<A: Application> Driver<A> {
    /// The parameters of `height`: its validator set as the application knows it (the last
    /// one known when it gives none or an unusable one), the timeouts and the block time.
    fn params(&mut self, height: Height) -> HeightParams<GridContext> {
        if let Some(set) = self.app.validator_set(height.0) {
            match validator_set(&set) {
                Ok(set) => {
                    if set != self.validators {
                        info!(%height, validators = arc_malachitebft_app_channel::app::types::core::ValidatorSet::count(&set), "validator set changes");
                    }
                    self.validators = set;
                }
                Err(e) => {
                    error!(%height, error = %e, "unusable validator set; keeping the last one")
                }
            }
        }
        HeightParams::new(self.validators.clone(), self.timeouts, Some(self.block_time))
    }

    async fn serve(
        &mut self,
        mut channels: Channels<GridContext>,
        handle: &EngineHandle,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ConsensusError> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                // Shutdown wins over pending messages: a stop requested during a
                // call takes effect before the next message is answered.
                biased;
                () = &mut shutdown => return Ok(()),
                msg = channels.consensus.recv() => {
                    let Some(msg) = msg else {
                        return Err(ConsensusError::Engine("engine stopped".into()));
                    };
                    self.handle(msg, &channels).await?;
                }
                () = wait_finished(handle) => {
                    return Err(ConsensusError::Engine("engine node actor stopped".into()));
                }
            }
        }
    }

    async fn handle(
        &mut self,
        msg: AppMsg<GridContext>,
        channels: &Channels<GridContext>,
    ) -> Result<(), ConsensusError> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let last = self.app.last_committed();
                self.pending.prune(Height(last))?;
                let start = Height(last + 1);
                self.current_height = start;
                info!(%start, "consensus ready");
                let params = self.params(start);
                let _ = reply.send((start, params));
            }

            AppMsg::StartedRound { height, round, proposer, role, reply_value } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                self.current_height = height;
                self.promote_future(height).await?;
                let seen: Vec<ProposedValue<GridContext>> =
                    self.pending.for_round(height, round).map(Pending::proposed_value).collect();
                let _ = reply_value.send(seen);
            }

            AppMsg::GetValue { height, round, timeout: _, reply } => {
                let entry = match self.pending.own(height, round, &self.me) {
                    Some(p) => p.clone(),
                    None => {
                        let block = self.app.propose(height.0, round.as_u32().unwrap_or(0)).await;
                        let p = Pending {
                            height,
                            round,
                            valid_round: Round::Nil,
                            proposer: self.me,
                            hash: BlockHash::of(&block),
                            valid: true,
                            block,
                        };
                        self.pending.insert(p.clone())?;
                        p
                    }
                };
                let _ = reply.send(LocallyProposedValue::new(height, round, entry.hash));
                self.publish(channels, &entry, round, Round::Nil, self.me).await?;
            }

            AppMsg::ReceivedProposalPart { from, published_by, part, reply } => {
                let value = self.received_part(published_by.unwrap_or(from), part).await?;
                let _ = reply.send(value);
            }

            AppMsg::Decided { certificate, extensions: _, reply } => {
                self.decided(certificate).await?;
                let _ = reply.send(());
            }

            AppMsg::Finalized { certificate, reply, evidence, .. } => {
                let height = certificate.height;
                let mut reports = Vec::new();
                for (address, pairs) in &evidence.votes {
                    let Some(v) = arc_malachitebft_app_channel::app::types::core::ValidatorSet::get_by_address(&self.validators, address) else {
                        continue;
                    };
                    for (first, second) in pairs {
                        warn!(%height, validator = %address, "double vote seen");
                        let key = v.public_key.0.to_bytes();
                        reports.push(crate::evidence::misbehaviour(key, first, second));
                    }
                }
                if !reports.is_empty() {
                    self.app.misbehaviour(reports);
                }
                let next = if self.app.last_committed() >= height.0 {
                    let next = Height(height.0 + 1);
                    Next::Start(next, self.params(next))
                } else {
                    warn!(%height, "decided block was not committed; restarting the height");
                    Next::Restart(height, self.params(height))
                };
                let _ = reply.send(next);
            }

            AppMsg::GetDecidedValues { range, reply } => {
                let _ = reply.send(self.decided_values(range));
            }

            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(self.app.earliest_height()));
            }

            AppMsg::ProcessSyncedValue { height, round, proposer, value_bytes, reply } => {
                let block = value_bytes.to_vec();
                // A synced block is checked like a proposal before consensus may decide it:
                // its certificate says validators signed its hash, not that it is well formed
                // for our state.
                let valid = self.app.validate(height.0, &block).await;
                if !valid {
                    warn!(%height, %proposer, "synced block does not validate");
                }
                let p = Pending {
                    height,
                    round,
                    valid_round: Round::Nil,
                    proposer,
                    hash: BlockHash::of(&block),
                    valid,
                    block,
                };
                let outcome = match self.pending.insert(p.clone()) {
                    Ok(()) => SyncedValueOutcome::Verdict(p.proposed_value()),
                    Err(e) => {
                        error!(%height, error = %e, "cannot store synced block");
                        SyncedValueOutcome::LocalTransientError
                    }
                };
                let _ = reply.send(outcome);
            }

            AppMsg::RestreamProposal { height, round, valid_round, address, value_id } => {
                if let Some(p) = self.pending.by_hash(height, &value_id).cloned() {
                    self.publish(channels, &p, round, valid_round, address).await?;
                } else {
                    debug!(%height, %round, %value_id, "nothing to restream");
                }
            }

            AppMsg::ExtendVote { reply, .. } => {
                // Vote extensions are disabled (policy `Disabled` in HeightParams).
                let _ = reply.send(None);
            }

            AppMsg::VerifyVoteExtensions { extensions, reply, .. } => {
                let verdicts = extensions.into_iter().map(|(addr, _)| (addr, Ok(()))).collect();
                let _ = reply.send(verdicts);
            }
        }
        Ok(())
    }

    /// Forgets the oldest open proposal stream (of `peer`, or of anyone).
    fn drop_oldest_stream(&mut self, peer: Option<PeerId>) {
        let oldest = self
            .streams
            .iter()
            .filter(|((p, _), _)| peer.is_none_or(|want| *p == want))
            .min_by_key(|(_, s)| s.opened)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            warn!(peer = %k.0, "too many open proposal streams; dropping the oldest");
            self.streams.remove(&k);
        }
    }

    /// Stream a block as `Init`, `Data`..., `Fin{hash}`, then the stream end marker.
    async fn publish(
        &self,
        channels: &Channels<GridContext>,
        p: &Pending,
        round: Round,
        pol_round: Round,
        proposer: Address,
    ) -> Result<(), ConsensusError> {
        let mut id = Vec::with_capacity(12);
        id.extend_from_slice(&p.height.0.to_be_bytes());
        id.extend_from_slice(&round.as_i64().to_be_bytes()[4..]);
        let stream_id = StreamId::new(Bytes::from(id));

        let mut parts = vec![ProposalPart::Init { height: p.height, round, pol_round, proposer }];
        parts.extend(p.block.chunks(self.part_size).map(|c| ProposalPart::Data(c.to_vec())));
        parts.push(ProposalPart::Fin { hash: p.hash });

        let mut seq = 0u64;
        for part in parts {
            let msg = StreamMessage::new(stream_id.clone(), seq, StreamContent::Data(part));
            channels
                .network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await
                .map_err(engine_err)?;
            seq += 1;
        }
        let end = StreamMessage::new(stream_id, seq, StreamContent::Fin);
        channels.network.send(NetworkMsg::PublishProposalPart(end)).await.map_err(engine_err)?;
        Ok(())
    }

    async fn received_part(
        &mut self,
        peer: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<ProposedValue<GridContext>>, ConsensusError> {
        let key = (peer, msg.stream_id.clone());
        if !self.streams.contains_key(&key) {
            // Room for a new stream: drop this peer's oldest past its share, then the oldest
            // of all past the total, so one peer cannot push out everyone else's streams.
            let of_peer = self.streams.keys().filter(|(p, _)| *p == peer).count();
            if of_peer >= MAX_STREAMS_PER_PEER {
                self.drop_oldest_stream(Some(peer));
            }
            if self.streams.len() >= MAX_OPEN_STREAMS {
                self.drop_oldest_stream(None);
            }
            self.streams_opened += 1;
        }
        let opened = self.streams_opened;
        let stream = self
            .streams
            .entry(key.clone())
            .or_insert_with(|| PartialStream { opened, ..Default::default() });
        // Init, the data chunks of the largest block, fin, and the end marker.
        let max_parts = (self.max_block_bytes / self.part_size.max(1)) as u64 + 3;
        if let Err(why) = stream.add(msg.sequence, msg.content, max_parts, self.max_block_bytes) {
            warn!(%peer, ?why, "proposal stream outgrew any valid block; dropped");
            self.streams.remove(&key);
            return Ok(None);
        }
        let Some((height, round, pol_round, proposer, block, claimed)) = stream.complete() else {
            return Ok(None);
        };
        self.streams.remove(&key);

        let hash = BlockHash::of(&block);
        if hash != claimed {
            warn!(%height, %round, %proposer, "proposal stream hash mismatch; ignored");
            return Ok(None);
        }
        let mut p =
            Pending { height, round, valid_round: pol_round, proposer, hash, valid: false, block };
        if height < self.current_height {
            return Ok(None);
        }
        if height > self.current_height {
            // Cannot judge it before our state reaches its height. Keep only
            // the near future, and only so many.
            if height.0 <= self.current_height.0 + FUTURE_HEIGHTS
                && self.future.len() < MAX_FUTURE_PROPOSALS
            {
                self.future.push(p);
            }
            return Ok(None);
        }
        p.valid = self.app.validate(height.0, &p.block).await;
        self.pending.insert(p.clone())?;
        Ok(Some(p.proposed_value()))
    }

    async fn promote_future(&mut self, height: Height) -> Result<(), ConsensusError> {
        let (now, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.future).into_iter().partition(|p| p.height == height);
        self.future = later.into_iter().filter(|p| p.height > height).collect();
        for mut p in now {
            p.valid = self.app.validate(height.0, &p.block).await;
            self.pending.insert(p)?;
        }
        Ok(())
    }

    async fn decided(
        &mut self,
        certificate: CommitCertificate<GridContext>,
    ) -> Result<(), ConsensusError> {
        let height = certificate.height;
        if self.app.last_committed() >= height.0 {
            debug!(%height, "already committed");
            return Ok(());
        }
        let Some(p) = self.pending.by_hash(height, &certificate.value_id) else {
            error!(%height, value = %certificate.value_id, "decided block is unknown; cannot commit");
            return Ok(());
        };
        let decided = DecidedBlock {
            height: height.0,
            round: certificate.round.as_u32().unwrap_or(0),
            hash: certificate.value_id.0,
            block: p.block.clone(),
            certificate: encode_certificate(&certificate),
        };
        match self.app.commit(decided).await {
            Ok(()) => {
                info!(%height, value = %certificate.value_id, "committed");
                self.pending.prune(height)?;
                self.future.retain(|p| p.height > height);
            }
            Err(e) => error!(%height, error = %e, "application failed to commit"),
        }
        Ok(())
    }

    fn decided_values(&self, range: RangeInclusive<Height>) -> Vec<RawDecidedValue<GridContext>> {
        let start = range.start().0.max(self.app.earliest_height());
        let end = range
            .end()
            .0
            .min(self.app.last_committed())
            .min(start.saturating_add(MAX_SYNC_BATCH - 1));
        let mut out = Vec::new();
        for h in start..=end {
            let Some(d) = self.app.decided_block(h) else { break };
            let Ok(cert) = decode_certificate(&d.certificate) else {
                error!(height = h, "stored certificate does not decode");
                break;
            };
            let cert = ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                cert,
                VoteExtensions::default(),
            );
            out.push(RawDecidedValue::new(Bytes::from(d.block), cert));
        }
        out
    }
}

/// Resolves when the engine's node actor has exited.
async fn wait_finished(handle: &EngineHandle) {
    while !handle.handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_reassembles_out_of_order() {
        let block = b"0123456789".to_vec();
        let parts = [
            ProposalPart::Init {
                height: Height(5),
                round: Round::new(1),
                pol_round: Round::Nil,
                proposer: Address([9; 20]),
            },
            ProposalPart::Data(block[..4].to_vec()),
            ProposalPart::Data(block[4..].to_vec()),
            ProposalPart::Fin { hash: BlockHash::of(&block) },
        ];
        let mut s = PartialStream { fin_seq: Some(4), ..PartialStream::default() };
        for i in [3u64, 1, 0] {
            s.parts.insert(i, parts[i as usize].clone());
            assert!(s.complete().is_none());
        }
        s.parts.insert(2, parts[2].clone());
        let (h, r, pol, who, bytes, hash) = s.complete().unwrap();
        assert_eq!((h, r, pol, who), (Height(5), Round::new(1), Round::Nil, Address([9; 20])));
        assert_eq!(bytes, block);
        assert_eq!(hash, BlockHash::of(&block));

        // A stray sequence past the end marker never completes the stream.
        s.parts.insert(7, ProposalPart::Data(vec![]));
        assert!(s.complete().is_none());
    }

    /// Issue 10 item 10: a peer streaming parts without end made the node buffer them without
    /// bound. A stream is dropped once it holds more parts, more bytes or a higher sequence
    /// than the largest valid block needs.
    #[test]
    fn attack_endless_proposal_stream_is_capped() {
        let data = |n: usize| StreamContent::Data(ProposalPart::Data(vec![7; n]));
        let mut s = PartialStream::default();
        for seq in 1..=4 {
            assert_eq!(s.add(seq, data(100), 6, 1_000), Ok(()));
        }
        assert_eq!(s.add(5, data(700), 6, 1_000), Err(StreamRefusal::TooManyBytes));
        let mut s = PartialStream::default();
        for seq in 0..6 {
            assert_eq!(s.add(seq, data(1), 6, 1_000), Ok(()));
        }
        assert_eq!(s.add(6, data(1), 6, 1_000), Err(StreamRefusal::TooManyParts));
        let mut s = PartialStream::default();
        assert_eq!(
            s.add(u64::MAX, StreamContent::Fin, 6, 1_000),
            Err(StreamRefusal::SequenceTooHigh)
        );
        // Resending a part replaces it without counting its bytes twice.
        let mut s = PartialStream::default();
        for _ in 0..50 {
            assert_eq!(s.add(1, data(600), 6, 1_000), Ok(()));
        }
        assert_eq!(s.bytes, 600);
    }
}
