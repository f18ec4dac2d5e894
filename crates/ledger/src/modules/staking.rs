//! staking: accounts bond native tokens behind a consensus key to become validators. The top
//! `max_validators` by bonded stake (at least `min_validator_bond` each) form the active set;
//! a change of stakes schedules the new set [`VALIDATOR_SET_DELAY`] blocks later, the same on
//! every node because it is state. Unbonded tokens come back after `unbonding_blocks`.

use gridlease_types::params::{POWER_UNIT, VALIDATOR_SET_DELAY};
use gridlease_types::state::{Validator, ValidatorPower, ValidatorSet};
use gridlease_types::{Address, Coin, PublicKey};
use sha2::{Digest, Sha256};

use crate::exec::{Ctx, Res, fail};
use crate::genesis::Params;
use crate::keyspace::{self, DUE_UNBONDING};
use crate::receipt::{BeginBlockItem, Event, ReceiptCode};
use crate::view::StateView;

/// Longest validator moniker, in bytes.
pub const MAX_MONIKER: usize = 64;
/// Largest evidence a `SubmitEvidence` carries (two signed votes take about 300).
pub const MAX_EVIDENCE_BYTES: usize = 4096;

/// The module account that holds bonded and unbonding stake (no key can sign for it).
pub fn bonded_pool() -> Address {
    let digest = Sha256::digest(b"gridlease/staking/bonded-pool");
    let mut a = [0u8; 20];
    a.copy_from_slice(&digest[..20]);
    Address(a)
}

/// Voting power of a bonded stake, or `None` below the minimum bond.
pub fn power_of(params: &Params, bonded: u128) -> Option<u64> {
    if bonded < params.min_validator_bond || bonded == 0 {
        return None;
    }
    Some(u64::try_from(bonded / POWER_UNIT).unwrap_or(u64::MAX))
}

/// The active set chosen from validators given largest stake first: the first
/// `max_validators` that hold the minimum bond, sorted by consensus key.
pub fn choose_active<'a>(
    params: &Params,
    by_stake: impl IntoIterator<Item = &'a Validator>,
) -> Vec<ValidatorPower> {
    let mut members: Vec<ValidatorPower> = by_stake
        .into_iter()
        .filter(|v| !v.jailed)
        .filter_map(|v| {
            let power = power_of(params, v.bonded.amount)?;
            Some(ValidatorPower { operator: v.operator, consensus_key: v.consensus_key, power })
        })
        .take(params.max_validators as usize)
        .collect();
    members.sort_by_key(|m| m.consensus_key);
    members
}

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn validator(&self, operator: &Address) -> Res<Option<Validator>> {
        Ok(self.st.load(&keyspace::validator(operator))?)
    }

    /// Saves a validator whose stake was `old_bonded`, keeping the stake index in step.
    fn save_validator(&mut self, old_bonded: Option<u128>, v: &Validator) {
        if let Some(old) = old_bonded.filter(|b| *b > 0) {
            self.st.delete(keyspace::validator_by_stake(old, &v.operator));
        }
        if v.bonded.amount > 0 {
            self.st.put(keyspace::validator_by_stake(v.bonded.amount, &v.operator), Vec::new());
        }
        self.st.save(keyspace::validator(&v.operator), v);
    }

    fn check_native(&self, coin: &Coin, what: &str) -> Res<()> {
        self.check_coin(coin, what)?;
        if coin.denom != self.params.native_denom {
            return fail(
                ReceiptCode::DenomMismatch,
                format!("{what} must be in {}, the native denomination", self.params.native_denom),
            );
        }
        Ok(())
    }

    pub(crate) fn msg_bond(
        &mut self,
        signer: Address,
        consensus_key: PublicKey,
        moniker: &str,
        amount: &Coin,
    ) -> Res<()> {
        self.check_native(amount, "bond")?;
        if moniker.len() > MAX_MONIKER || moniker.chars().any(char::is_control) {
            return fail(
                ReceiptCode::InvalidRequest,
                format!("moniker must be at most {MAX_MONIKER} bytes without control characters"),
            );
        }
        if !consensus_key.is_valid() {
            return fail(ReceiptCode::InvalidRequest, "consensus key is not a usable ed25519 key");
        }
        let existing = self.validator(&signer)?;
        let old_bonded = existing.as_ref().map(|v| v.bonded.amount);
        let mut v = match existing {
            Some(v) if v.consensus_key != consensus_key => {
                return fail(
                    ReceiptCode::InvalidRequest,
                    format!(
                        "{signer} validates with consensus key {}; a bond cannot change it",
                        gridlease_types::hex::encode(&v.consensus_key.0)
                    ),
                );
            }
            Some(mut v) => {
                if !moniker.is_empty() {
                    v.moniker = moniker.to_string();
                }
                v
            }
            None => {
                if amount.amount < self.params.min_validator_bond {
                    return fail(
                        ReceiptCode::DepositTooLow,
                        format!(
                            "a new validator bonds at least {}{}",
                            self.params.min_validator_bond, self.params.native_denom
                        ),
                    );
                }
                let key = keyspace::consensus_key(&consensus_key.0);
                if let Some(owner) = self.st.get(&key)? {
                    let owner = <[u8; 20]>::try_from(owner.as_slice()).map(Address);
                    let owner = owner.map_or_else(|_| "another account".into(), |a| a.to_string());
                    return fail(
                        ReceiptCode::AlreadyExists,
                        format!("consensus key is already used by {owner}"),
                    );
                }
                self.st.put(key, signer.0.to_vec());
                Validator {
                    operator: signer,
                    consensus_key,
                    moniker: moniker.to_string(),
                    bonded: Coin::new(0, &self.params.native_denom),
                    jailed: false,
                }
            }
        };
        let Some(total) = v.bonded.amount.checked_add(amount.amount) else {
            return fail(ReceiptCode::Overflow, "bonded stake would overflow");
        };
        self.debit(&signer, amount)?;
        self.credit(&bonded_pool(), amount)?;
        v.bonded.amount = total;
        self.save_validator(old_bonded, &v);
        self.events.push(Event::Bonded {
            operator: signer,
            amount: amount.clone(),
            bonded: v.bonded.clone(),
        });
        self.reschedule_validator_set()
    }

    pub(crate) fn msg_unbond(&mut self, signer: Address, amount: &Coin) -> Res<()> {
        self.check_native(amount, "unbond")?;
        let Some(mut v) = self.validator(&signer)? else {
            return fail(ReceiptCode::NotFound, format!("{signer} has no bonded stake"));
        };
        let old = v.bonded.amount;
        let Some(left) = old.checked_sub(amount.amount) else {
            return fail(
                ReceiptCode::InsufficientFunds,
                format!("{signer} has {} bonded, cannot unbond {amount}", v.bonded),
            );
        };
        v.bonded.amount = left;
        self.save_validator(Some(old), &v);
        let completes_at = self.height.saturating_add(self.params.unbonding_blocks);
        let key = keyspace::due(DUE_UNBONDING, completes_at, &signer.0);
        let queued: u128 = self.st.load(&key)?.unwrap_or(0);
        let Some(queued) = queued.checked_add(amount.amount) else {
            return fail(ReceiptCode::Overflow, "unbonding stake would overflow");
        };
        self.st.save(key, &queued);
        self.events.push(Event::Unbonding {
            operator: signer,
            amount: amount.clone(),
            completes_at,
        });
        self.reschedule_validator_set()
    }

    /// A verified double sign by the validator of consensus key `offender` at `height`: it
    /// loses `slash_double_sign_ppm` of its bonded stake to the community pool and is jailed
    /// (out of the active set for good). Evidence older than the unbonding period, from a key
    /// no validator holds, or against a validator already jailed is refused.
    pub(crate) fn msg_submit_evidence(
        &mut self,
        offender: PublicKey,
        height: u64,
        evidence: &[u8],
    ) -> Res<()> {
        if evidence.len() > MAX_EVIDENCE_BYTES {
            return fail(
                ReceiptCode::InvalidRequest,
                format!("evidence is larger than {MAX_EVIDENCE_BYTES} bytes"),
            );
        }
        let digest: [u8; 32] = Sha256::digest(evidence).into();
        if !self.verified_evidence.contains(&digest) {
            return fail(
                ReceiptCode::InvalidRequest,
                "evidence is not two different votes signed by the offender at that height",
            );
        }
        if height > self.height || self.height - height > self.params.unbonding_blocks {
            return fail(
                ReceiptCode::InvalidRequest,
                format!(
                    "evidence from height {height} is outside the last {} blocks",
                    self.params.unbonding_blocks
                ),
            );
        }
        let Some(owner) = self.st.get(&keyspace::consensus_key(&offender.0))? else {
            return fail(ReceiptCode::NotFound, "no validator has this consensus key");
        };
        let Ok(operator) = <[u8; 20]>::try_from(owner.as_slice()).map(Address) else {
            return Err(crate::view::ViewError::Corrupt {
                key: "consensus key index".into(),
                reason: "operator is not 20 bytes".into(),
            }
            .into());
        };
        let Some(mut v) = self.validator(&operator)? else {
            return fail(ReceiptCode::NotFound, format!("{operator} is not a validator"));
        };
        if v.jailed {
            return fail(ReceiptCode::AlreadyExists, format!("{operator} was already slashed"));
        }
        let old = v.bonded.amount;
        let share = u128::from(self.params.slash_double_sign_ppm);
        let slashed = old / 1_000_000 * share + old % 1_000_000 * share / 1_000_000;
        let coin = Coin::new(slashed, &self.params.native_denom);
        if slashed > 0 {
            self.pay_to_pool(&bonded_pool(), &coin)?;
        }
        v.bonded.amount = old - slashed;
        v.jailed = true;
        self.save_validator(Some(old), &v);
        self.events.push(Event::ValidatorSlashed { operator, height, slashed: coin });
        self.reschedule_validator_set()
    }

    /// The set that decides blocks after the ones already scheduled: the next one if a change
    /// is pending, else the active one.
    fn latest_validator_set(&self) -> Res<Option<ValidatorSet>> {
        if let Some(next) = self.st.load(&keyspace::validator_set_next())? {
            return Ok(Some(next));
        }
        Ok(self.st.load(&keyspace::validator_set_current())?)
    }

    /// Recomputes the active set from the stakes and, when it differs from the latest one,
    /// schedules it from `VALIDATOR_SET_DELAY` blocks on. A change that would leave no
    /// validator fails.
    fn reschedule_validator_set(&mut self) -> Res<()> {
        // Stakes under the minimum bond sort after every stake that holds it, so the first
        // `max_validators` entries of the index hold every member: the work is the same
        // however many accounts bonded.
        let (start, end) = keyspace_range(keyspace::VALIDATOR_BY_STAKE);
        let page = self.st.range_page(&start, &end, self.params.max_validators as usize)?;
        let mut validators = Vec::with_capacity(page.len());
        for (key, _) in &page {
            let Some(op) = keyspace::operator_of_stake_entry(key) else { continue };
            if let Some(v) = self.validator(&op)? {
                validators.push(v);
            }
        }
        let members = choose_active(&self.params, &validators);
        if members.is_empty() {
            return fail(
                ReceiptCode::InvalidState,
                "this would leave the chain without a validator holding the minimum bond",
            );
        }
        let latest = self.latest_validator_set()?;
        if latest.as_ref().is_some_and(|s| s.members == members) {
            return Ok(());
        }
        let next =
            ValidatorSet { from_height: self.height.saturating_add(VALIDATOR_SET_DELAY), members };
        self.events.push(Event::ValidatorSetScheduled {
            from_height: next.from_height,
            validators: u32::try_from(next.members.len()).unwrap_or(u32::MAX),
            total_power: next.total_power(),
        });
        self.st.save(keyspace::validator_set_next(), &next);
        Ok(())
    }

    /// Begin-block: a scheduled set whose height came becomes the active one.
    pub(crate) fn promote_validator_set(&mut self) -> Res<()> {
        let Some(next) = self.st.load::<ValidatorSet>(&keyspace::validator_set_next())? else {
            return Ok(());
        };
        if next.from_height <= self.height {
            self.st.save(keyspace::validator_set_current(), &next);
            self.st.delete(keyspace::validator_set_next());
        }
        Ok(())
    }

    /// Begin-block: unbonding stake whose period ended goes back to its operator.
    pub(crate) fn process_unbondings(&mut self) -> Res<()> {
        let (start, end) = keyspace::due_until(DUE_UNBONDING, self.height);
        for (key, value) in self.st.range(&start, &end)? {
            let operator = key.get(9..29).and_then(|s| <[u8; 20]>::try_from(s).ok());
            let amount = crate::view::decode_at::<u128>(&key, &value)?;
            self.st.delete(key.clone());
            let Some(operator) = operator.map(Address) else {
                return Err(crate::view::ViewError::Corrupt {
                    key: format!("{key:02x?}"),
                    reason: "malformed unbonding entry".into(),
                }
                .into());
            };
            self.begin_item(BeginBlockItem::Unbonding { operator }, |ctx| {
                let coin = Coin::new(amount, &ctx.params.native_denom);
                ctx.debit(&bonded_pool(), &coin)?;
                ctx.credit(&operator, &coin)?;
                ctx.events.push(Event::UnbondingCompleted { operator, amount: coin });
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// `[tag, tag + 1)`: every key of one kind.
fn keyspace_range(tag: u8) -> (Vec<u8>, Vec<u8>) {
    (vec![tag], vec![tag + 1])
}
