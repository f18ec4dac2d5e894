//! OpenAPI schemas of the types that go on the wire as text (feature `schema`): each says what
//! its string holds, in the words and the pattern its `FromStr` accepts.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

fn text(description: &str, pattern: Option<&str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .into()
}

macro_rules! text_schema {
    ($ty:ty, $name:literal, $description:literal, $pattern:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                text($description, $pattern)
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

text_schema!(
    crate::Address,
    "Address",
    "An account address: bech32 with the `grid` prefix.",
    Some("^grid1[02-9ac-hj-np-z]{38}$")
);
text_schema!(
    crate::Denom,
    "Denom",
    "A denomination: 2 to 64 lowercase letters, digits and `/`, starting with a letter.",
    Some("^[a-z][a-z0-9/]{1,63}$")
);
text_schema!(
    crate::DecAmount,
    "DecAmount",
    "An exact decimal with up to 18 places (`8.675`).",
    Some("^[0-9]+(\\.[0-9]{1,18})?$")
);
text_schema!(
    crate::TxHash,
    "TxHash",
    "SHA-256 of a transaction's canonical bytes, hex.",
    Some("^[0-9A-Fa-f]{64}$")
);
text_schema!(
    crate::PublicKey,
    "PublicKey",
    "An ed25519 public key, hex.",
    Some("^[0-9A-Fa-f]{64}$")
);
text_schema!(
    crate::Signature,
    "Signature",
    "An ed25519 signature, hex.",
    Some("^[0-9A-Fa-f]{128}$")
);
