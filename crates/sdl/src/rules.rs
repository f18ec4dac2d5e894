//! The names and limits gridlease applies to an SDL: resource and price limits per replica,
//! the rules for service, endpoint, attribute, environment and host names, and the accepted
//! denominations.

/// Smallest CPU request per replica, in millicores.
pub const MIN_CPU_MILLIS: u64 = 10;
/// Largest CPU request per replica, in millicores.
pub const MAX_CPU_MILLIS: u64 = 384_000;
/// Largest number of GPUs per replica.
pub const MAX_GPU_UNITS: u64 = 24;
/// Smallest memory request per replica (1 MiB).
pub const MIN_MEMORY_BYTES: u64 = 1 << 20;
/// Largest memory request per replica (2 TiB).
pub const MAX_MEMORY_BYTES: u64 = 2 << 40;
/// Smallest volume (5 MiB).
pub const MIN_STORAGE_BYTES: u64 = 5 << 20;
/// Largest volume (32 TiB).
pub const MAX_STORAGE_BYTES: u64 = 32 << 40;
/// Largest price per block of one replica, in the denomination's base unit.
pub const MAX_UNIT_PRICE: u64 = 10_000_000;
/// Replica factor of the group-wide totals.
pub const MAX_UNIT_COUNT: u64 = 50;

/// `^([a-zA-Z][\w/.\-]{1,126}[\w*]?)$`, Akash's attribute key rule.
pub(crate) fn is_valid_attribute_key(key: &str) -> bool {
    let b = key.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mid = |c: u8| word(c) || c == b'/' || c == b'.' || c == b'-';
    let Some((&first, rest)) = b.split_first() else { return false };
    let Some((&last, body)) = rest.split_last() else { return false };
    first.is_ascii_alphabetic()
        && body.iter().all(|&c| mid(c))
        && (((1..=126).contains(&rest.len()) && mid(last))
            || ((2..=127).contains(&rest.len()) && (word(last) || last == b'*')))
}

/// `^[a-z]+[-_0-9a-z]+$`, Akash's endpoint name rule.
pub(crate) fn is_valid_endpoint_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// Akash's service name rule, `^[a-z]([-a-z0-9]*[a-z0-9])?$`, at most 63 characters (a DNS
/// label: services find each other by name). The one rule for service names: the provider
/// applies it to manifests, its API and its runtime drivers too.
pub fn is_valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= SERVICE_NAME_MAX
        && b[0].is_ascii_lowercase()
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b.last().is_some_and(|&c| c != b'-')
}

/// The longest service name (a DNS label).
pub const SERVICE_NAME_MAX: usize = 63;

/// What a service name must be, for error messages.
pub const SERVICE_NAME_RULE: &str =
    "lowercase letters, digits and -, starting with a letter, not ending with -, at most 63";

/// Kubernetes' environment variable name rule: `^[-._a-zA-Z][-._a-zA-Z0-9]*$`.
pub(crate) fn is_valid_env_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

/// A DNS-1123 subdomain of at most 253 characters.
pub(crate) fn is_valid_hostname(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Native denominations accepted in prices: Akash's (`uakt`, `uact`, the
/// only ones its JSON schema lists) and gridlease's (`ugrid`, `uusdc`).
/// IBC vouchers (`ibc/<64 hex digits>`, e.g. USDC on Akash) are accepted too,
/// as Akash's chain does.
pub(crate) const ALLOWED_DENOMS: [&str; 4] = ["uakt", "uact", "ugrid", "uusdc"];

/// Whether a price may be given in `denom`: a native denomination or an IBC voucher.
pub(crate) fn is_allowed_denom(denom: &str) -> bool {
    ALLOWED_DENOMS.contains(&denom)
        || denom
            .strip_prefix("ibc/")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}
