//! provider: the on-chain record of a provider (host URI, attributes, contact info).

use gridlease_types::msg::ProviderInfo;
use gridlease_types::{Address, Attribute};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace;
use crate::modules::validate_attributes;
use crate::receipt::{Event, ReceiptCode};
use crate::state::Provider;
use crate::view::StateView;

fn validate_provider(host_uri: &str, attributes: &[Attribute], info: &ProviderInfo) -> Res<()> {
    let scheme_ok = host_uri.starts_with("https://") || host_uri.starts_with("http://");
    if !scheme_ok || host_uri.len() > 256 || host_uri.chars().any(char::is_whitespace) {
        return fail(
            ReceiptCode::InvalidRequest,
            format!("host uri `{host_uri}` must be an http(s) URL of at most 256 characters"),
        );
    }
    if info.email.len() > 256 || info.website.len() > 256 {
        return fail(
            ReceiptCode::InvalidRequest,
            "provider info fields are limited to 256 characters",
        );
    }
    validate_attributes(attributes)
}

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn provider(&self, owner: &Address) -> Res<Option<Provider>> {
        Ok(self.st.load(&keyspace::provider(owner))?)
    }

    pub(crate) fn msg_create_provider(
        &mut self,
        owner: Address,
        host_uri: &str,
        attributes: &[Attribute],
        info: &ProviderInfo,
    ) -> Res<()> {
        validate_provider(host_uri, attributes, info)?;
        if self.provider(&owner)?.is_some() {
            return fail(
                ReceiptCode::AlreadyExists,
                format!("provider {owner} already exists: use update"),
            );
        }
        let p = Provider {
            owner,
            host_uri: host_uri.to_string(),
            attributes: attributes.to_vec(),
            info: info.clone(),
            created_at: self.height,
        };
        self.st.save(keyspace::provider(&owner), &p);
        self.events.push(Event::ProviderCreated { owner });
        Ok(())
    }

    pub(crate) fn msg_update_provider(
        &mut self,
        owner: Address,
        host_uri: &str,
        attributes: &[Attribute],
        info: &ProviderInfo,
    ) -> Res<()> {
        validate_provider(host_uri, attributes, info)?;
        let Some(mut p) = self.provider(&owner)? else {
            return fail(
                ReceiptCode::NotFound,
                format!("provider {owner} does not exist: create it first"),
            );
        };
        p.host_uri = host_uri.to_string();
        p.attributes = attributes.to_vec();
        p.info = info.clone();
        self.st.save(keyspace::provider(&owner), &p);
        self.events.push(Event::ProviderUpdated { owner });
        Ok(())
    }
}
