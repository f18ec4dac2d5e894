//! Wire and WAL encoding: borsh throughout.
//!
//! The engine asks for `Codec<T>` on a dozen of its own generic types. Most
//! of them get a borsh impl from the engine crates once their `borsh`
//! feature is on and our types are borsh; the few that don't (validator
//! proof, the sync messages with their extended certificates) are mapped
//! onto small private mirror structs here.

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;

use arc_malachitebft_app_channel::app::consensus::LivenessMsg;
use arc_malachitebft_app_channel::app::streaming::StreamMessage;
use arc_malachitebft_app_channel::app::types::PeerId;
use arc_malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, ExtendedCommitSignature, PolkaCertificate, Round,
    SignedExtension, ValidatorProof,
};
use arc_malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use arc_malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};
use arc_malachitebft_sync::{ValueRequest, ValueResponse};

use crate::types::{
    Address, BlockHash, GridContext, Height, ProposalPart, Signature, invalid_data,
};

/// Our one codec, used for the network, the WAL and sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct GridCodec;

type Error = std::io::Error;

fn to_bytes<T: BorshSerialize + ?Sized>(value: &T) -> Result<Bytes, Error> {
    borsh::to_vec(value).map(Bytes::from)
}

fn from_bytes<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, Error> {
    borsh::from_slice(bytes)
}

/// Types that are borsh already (ours, or the engine's with `borsh` on).
macro_rules! borsh_codec {
    ($($t:ty),* $(,)?) => {$(
        impl Codec<$t> for GridCodec {
            type Error = Error;

            fn decode(&self, bytes: Bytes) -> Result<$t, Error> {
                from_bytes(&bytes)
            }

            fn encode(&self, msg: &$t) -> Result<Bytes, Error> {
                to_bytes(msg)
            }
        }
    )*};
}

borsh_codec!(
    ProposalPart,
    SignedConsensusMsg<GridContext>,
    LivenessMsg<GridContext>,
    StreamMessage<ProposalPart>,
    ProposedValue<GridContext>,
    PolkaCertificate<GridContext>,
    CommitCertificate<GridContext>,
);

// ------------------------------------------------------------ mirrors

#[derive(BorshSerialize, BorshDeserialize)]
struct ProofWire {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    signature: Signature,
}

impl Codec<ValidatorProof<GridContext>> for GridCodec {
    type Error = Error;

    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<GridContext>, Error> {
        let w: ProofWire = from_bytes(&bytes)?;
        Ok(ValidatorProof::new(w.public_key, w.peer_id, w.signature))
    }

    fn encode(&self, msg: &ValidatorProof<GridContext>) -> Result<Bytes, Error> {
        to_bytes(&ProofWire {
            public_key: msg.public_key.clone(),
            peer_id: msg.peer_id.clone(),
            signature: msg.signature.clone(),
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct StatusWire {
    peer_id: Vec<u8>,
    tip_height: Height,
    history_min_height: Height,
}

impl Codec<Status<GridContext>> for GridCodec {
    type Error = Error;

    fn decode(&self, bytes: Bytes) -> Result<Status<GridContext>, Error> {
        let w: StatusWire = from_bytes(&bytes)?;
        Ok(Status {
            peer_id: PeerId::from_bytes(&w.peer_id).map_err(|_| invalid_data("invalid peer id"))?,
            tip_height: w.tip_height,
            history_min_height: w.history_min_height,
        })
    }

    fn encode(&self, msg: &Status<GridContext>) -> Result<Bytes, Error> {
        to_bytes(&StatusWire {
            peer_id: msg.peer_id.to_bytes(),
            tip_height: msg.tip_height,
            history_min_height: msg.history_min_height,
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
enum RequestWire {
    Values { from: Height, to: Height },
}

impl Codec<Request<GridContext>> for GridCodec {
    type Error = Error;

    fn decode(&self, bytes: Bytes) -> Result<Request<GridContext>, Error> {
        match from_bytes(&bytes)? {
            RequestWire::Values { from, to } => {
                Ok(Request::ValueRequest(ValueRequest::new(from..=to)))
            }
        }
    }

    fn encode(&self, msg: &Request<GridContext>) -> Result<Bytes, Error> {
        match msg {
            Request::ValueRequest(r) => {
                to_bytes(&RequestWire::Values { from: *r.range.start(), to: *r.range.end() })
            }
        }
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct ExtSigWire {
    address: Address,
    signature: Signature,
    extension: Option<SignedExtension<GridContext>>,
}

/// An extended commit certificate (what sync ships with each block).
#[derive(BorshSerialize, BorshDeserialize)]
struct ExtCertWire {
    height: Height,
    round: Round,
    value_id: BlockHash,
    signatures: Vec<ExtSigWire>,
}

impl ExtCertWire {
    fn from_cert(c: &ExtendedCommitCertificate<GridContext>) -> Self {
        Self {
            height: c.height,
            round: c.round,
            value_id: c.value_id,
            signatures: c
                .commit_signatures
                .iter()
                .map(|s| ExtSigWire {
                    address: s.address,
                    signature: s.signature.clone(),
                    extension: s.extension.clone(),
                })
                .collect(),
        }
    }

    fn into_cert(self) -> ExtendedCommitCertificate<GridContext> {
        ExtendedCommitCertificate {
            height: self.height,
            round: self.round,
            value_id: self.value_id,
            commit_signatures: self
                .signatures
                .into_iter()
                .map(|s| ExtendedCommitSignature::new(s.address, s.signature, s.extension))
                .collect(),
        }
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct RawValueWire {
    value_bytes: Vec<u8>,
    certificate: ExtCertWire,
}

#[derive(BorshSerialize, BorshDeserialize)]
enum ResponseWire {
    Values { start_height: Height, values: Vec<RawValueWire> },
}

fn response_wire(msg: &Response<GridContext>) -> ResponseWire {
    match msg {
        Response::ValueResponse(r) => ResponseWire::Values {
            start_height: r.start_height,
            values: r
                .values
                .iter()
                .map(|v| RawValueWire {
                    value_bytes: v.value_bytes.to_vec(),
                    certificate: ExtCertWire::from_cert(&v.certificate),
                })
                .collect(),
        },
    }
}

impl Codec<Response<GridContext>> for GridCodec {
    type Error = Error;

    fn decode(&self, bytes: Bytes) -> Result<Response<GridContext>, Error> {
        match from_bytes(&bytes)? {
            ResponseWire::Values { start_height, values } => {
                let values = values
                    .into_iter()
                    .map(|v| {
                        RawDecidedValue::new(Bytes::from(v.value_bytes), v.certificate.into_cert())
                    })
                    .collect();
                Ok(Response::ValueResponse(ValueResponse::new(start_height, values)))
            }
        }
    }

    fn encode(&self, msg: &Response<GridContext>) -> Result<Bytes, Error> {
        to_bytes(&response_wire(msg))
    }
}

impl HasEncodedLen<Response<GridContext>> for GridCodec {
    fn encoded_len(&self, msg: &Response<GridContext>) -> Result<usize, Error> {
        borsh::object_length(&response_wire(msg))
    }
}

/// Encode a commit certificate for the application to store next to a block.
pub(crate) fn encode_certificate(cert: &CommitCertificate<GridContext>) -> Vec<u8> {
    borsh::to_vec(cert).expect("borsh into Vec")
}

pub(crate) fn decode_certificate(bytes: &[u8]) -> Result<CommitCertificate<GridContext>, Error> {
    from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_app_channel::app::types::core::CommitSignature;

    #[test]
    fn certificate_round_trip() {
        let cert = CommitCertificate::<GridContext> {
            height: Height(9),
            round: Round::new(2),
            value_id: BlockHash::of(b"x"),
            commit_signatures: vec![CommitSignature::new(Address([1; 20]), Signature([2; 64]))],
        };
        let bytes = encode_certificate(&cert);
        assert_eq!(decode_certificate(&bytes).unwrap(), cert);
    }

    #[test]
    fn sync_response_round_trip() {
        let cert = ExtendedCommitCertificate::<GridContext> {
            height: Height(4),
            round: Round::new(0),
            value_id: BlockHash::of(b"b"),
            commit_signatures: vec![ExtendedCommitSignature::new(
                Address([3; 20]),
                Signature([4; 64]),
                None,
            )],
        };
        let msg = Response::ValueResponse(ValueResponse::new(
            Height(4),
            vec![RawDecidedValue::new(Bytes::from_static(b"block"), cert)],
        ));
        let codec = GridCodec;
        let bytes = codec.encode(&msg).unwrap();
        assert_eq!(codec.encoded_len(&msg).unwrap(), bytes.len());
        let back: Response<GridContext> = codec.decode(bytes).unwrap();
        assert_eq!(back, msg);
    }
}
