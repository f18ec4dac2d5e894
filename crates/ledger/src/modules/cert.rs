//! cert: mTLS certificates of tenants and providers, valid until revoked.

use gridlease_types::Address;
use sha2::{Digest, Sha256};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace;
use crate::receipt::{Event, ReceiptCode};
use crate::state::{CertState, Certificate};
use crate::view::{StateView, decode_at};

const MAX_PEM: usize = 8 * 1024;

fn looks_like_pem(bytes: &[u8], label: &str) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.trim_start().starts_with(&format!("-----BEGIN {label}-----"))
        && text.contains(&format!("-----END {label}-----"))
}

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn msg_create_certificate(
        &mut self,
        owner: Address,
        cert_pem: &[u8],
        pubkey_pem: &[u8],
    ) -> Res<()> {
        if cert_pem.len() > MAX_PEM || !looks_like_pem(cert_pem, "CERTIFICATE") {
            return fail(
                ReceiptCode::InvalidRequest,
                "cert_pem must be one PEM CERTIFICATE block of at most 8 KiB",
            );
        }
        if pubkey_pem.len() > MAX_PEM || !looks_like_pem(pubkey_pem, "PUBLIC KEY") {
            return fail(
                ReceiptCode::InvalidRequest,
                "pubkey_pem must be one PEM PUBLIC KEY block of at most 8 KiB",
            );
        }
        let serial: [u8; 32] = Sha256::digest(cert_pem).into();
        let key = keyspace::cert(&owner, &serial);
        if self.st.get(&key)?.is_some() {
            return fail(ReceiptCode::AlreadyExists, "this certificate is already registered");
        }
        self.make_room_for_certificate(owner)?;
        let cert = Certificate {
            owner,
            serial,
            cert_pem: cert_pem.to_vec(),
            pubkey_pem: pubkey_pem.to_vec(),
            state: CertState::Valid,
            created_at: self.height,
        };
        self.st.save(key, &cert);
        self.events.push(Event::CertificateCreated { owner, serial });
        Ok(())
    }

    /// Keeps an owner's registered certificates at `max_certs_per_owner`: at the limit, the
    /// oldest revoked certificate is dropped to make room; with none revoked, the new one is
    /// refused. The scan reads at most the limit's worth of records.
    fn make_room_for_certificate(&mut self, owner: Address) -> Res<()> {
        let limit = self.params.max_certs_per_owner as usize;
        let mut held = Vec::new();
        for (key, bytes) in self.st.scan_prefix(&keyspace::certs_of(&owner))? {
            held.push((key.clone(), decode_at::<Certificate>(&key, &bytes)?));
        }
        if held.len() < limit {
            return Ok(());
        }
        let oldest_revoked = held
            .iter()
            .filter_map(|(k, c)| match c.state {
                CertState::Revoked { at } => Some((at, k)),
                CertState::Valid => None,
            })
            .min();
        match oldest_revoked {
            Some((_, key)) if held.len() == limit => {
                self.st.delete(key.clone());
                Ok(())
            }
            _ => fail(
                ReceiptCode::TooManyCertificates,
                format!("{owner} already has {limit} valid certificates: revoke one first"),
            ),
        }
    }

    pub(crate) fn msg_revoke_certificate(&mut self, owner: Address, serial: &[u8; 32]) -> Res<()> {
        let key = keyspace::cert(&owner, serial);
        let Some(mut cert) = self.st.load::<Certificate>(&key)? else {
            return fail(ReceiptCode::NotFound, "no certificate of yours has this serial");
        };
        if cert.state != CertState::Valid {
            return fail(ReceiptCode::InvalidState, "certificate is already revoked");
        }
        cert.state = CertState::Revoked { at: self.height };
        self.st.save(key, &cert);
        self.events.push(Event::CertificateRevoked { owner, serial: *serial });
        Ok(())
    }
}
