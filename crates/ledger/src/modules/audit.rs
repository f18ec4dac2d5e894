//! audit: auditors sign attributes of providers; tenants demand them with `signedBy`.

use gridlease_types::{Address, Attribute};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace;
use crate::receipt::{Event, ReceiptCode};
use crate::state::AuditRecord;
use crate::view::StateView;

/// Attribute lists: at most 64 entries, keys 1 to 128 characters and unique, values up to 128.
pub(crate) fn validate_attributes(attributes: &[Attribute]) -> Res<()> {
    if attributes.len() > 64 {
        return fail(ReceiptCode::InvalidRequest, "at most 64 attributes are allowed");
    }
    let mut keys = std::collections::BTreeSet::new();
    for a in attributes {
        if a.key.is_empty() || a.key.len() > 128 || a.value.len() > 128 {
            return fail(
                ReceiptCode::InvalidRequest,
                format!(
                    "attribute `{}` needs a key of 1 to 128 characters and a value of at most 128",
                    a.key
                ),
            );
        }
        if !keys.insert(a.key.as_str()) {
            return fail(
                ReceiptCode::InvalidRequest,
                format!("attribute `{}` appears twice", a.key),
            );
        }
    }
    Ok(())
}

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn audit_record(
        &self,
        provider: &Address,
        auditor: &Address,
    ) -> Res<Option<AuditRecord>> {
        Ok(self.st.load(&keyspace::audit(provider, auditor))?)
    }

    pub(crate) fn msg_sign_attributes(
        &mut self,
        auditor: Address,
        provider: Address,
        attributes: &[Attribute],
    ) -> Res<()> {
        if !self.params.auditors.contains(&auditor) {
            return fail(
                ReceiptCode::Unauthorized,
                format!("{auditor} is not a registered auditor (genesis param `auditors`)"),
            );
        }
        validate_attributes(attributes)?;
        if attributes.is_empty() {
            return fail(ReceiptCode::InvalidRequest, "sign at least one attribute");
        }
        if self.provider(&provider)?.is_none() {
            return fail(
                ReceiptCode::ProviderNotRegistered,
                format!("provider {provider} is not registered"),
            );
        }
        let mut rec = self.audit_record(&provider, &auditor)?.unwrap_or(AuditRecord {
            provider,
            auditor,
            attributes: Vec::new(),
        });
        for a in attributes {
            rec.attributes.retain(|x| x.key != a.key);
            rec.attributes.push(a.clone());
        }
        rec.attributes.sort();
        validate_attributes(&rec.attributes)?;
        self.st.save(keyspace::audit(&provider, &auditor), &rec);
        self.events.push(Event::AttributesSigned { provider, auditor });
        Ok(())
    }

    pub(crate) fn msg_delete_attributes(
        &mut self,
        auditor: Address,
        provider: Address,
        keys: &[String],
    ) -> Res<()> {
        let Some(mut rec) = self.audit_record(&provider, &auditor)? else {
            return fail(
                ReceiptCode::NotFound,
                format!("{auditor} has signed no attributes of {provider}"),
            );
        };
        let before = rec.attributes.len();
        if keys.is_empty() {
            rec.attributes.clear();
        } else {
            rec.attributes.retain(|a| !keys.contains(&a.key));
        }
        if rec.attributes.len() == before {
            return fail(ReceiptCode::NotFound, "none of these attribute keys were signed");
        }
        let key = keyspace::audit(&provider, &auditor);
        if rec.attributes.is_empty() {
            self.st.delete(key)
        } else {
            self.st.save(key, &rec)
        }
        self.events.push(Event::AttributesDeleted { provider, auditor });
        Ok(())
    }
}
