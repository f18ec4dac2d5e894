//! API keys with token budgets (`--keys FILE`) and per-key usage metering from the usage the
//! replicas report (on streams, the gateway asks for it with `stream_options.include_usage`).
//! Without a keys file the gateway is open: every request is metered as `anonymous`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Deserialize;

/// The keys file (TOML): `[[key]]` tables of `name`, `key` (the bearer token) and an optional
/// `budget_tokens`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(rename = "key", default)]
    pub keys: Vec<KeyEntry>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub key: String,
    /// Tokens (prompt and completion) the key may use; none: unlimited.
    pub budget_tokens: Option<u64>,
}

/// Why a request's key is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    Missing,
    Unknown,
    Exhausted { name: String, budget: u64 },
}

#[derive(Debug)]
struct Account {
    name: String,
    budget: Option<u64>,
    used: u64,
}

/// The keys and what each used.
#[derive(Debug)]
pub struct Keys {
    /// Bearer token → account; `None` when the gateway is open.
    by_token: Option<Mutex<BTreeMap<String, Account>>>,
    open_used: Mutex<u64>,
}

/// The name usage is metered under when the gateway is open.
pub const ANONYMOUS: &str = "anonymous";

impl Keys {
    /// No keys: anyone may call.
    pub fn open() -> Self {
        Keys { by_token: None, open_used: Mutex::new(0) }
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: KeysFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.keys.is_empty() {
            return Err("the keys file lists no [[key]]".into());
        }
        let mut map = BTreeMap::new();
        for k in file.keys {
            if k.key.len() < 16 {
                return Err(format!("the key of `{}` is shorter than 16 characters", k.name));
            }
            let account = Account { name: k.name.clone(), budget: k.budget_tokens, used: 0 };
            if map.insert(k.key, account).is_some() {
                return Err(format!("the key of `{}` is listed twice", k.name));
            }
        }
        Ok(Keys { by_token: Some(Mutex::new(map)), open_used: Mutex::new(0) })
    }

    pub fn is_open(&self) -> bool {
        self.by_token.is_none()
    }

    /// The account a request's `Authorization` header names, if it may spend now.
    pub fn admit(&self, authorization: Option<&str>) -> Result<String, KeyRefusal> {
        let Some(map) = &self.by_token else { return Ok(ANONYMOUS.into()) };
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(KeyRefusal::Missing)?;
        let map = map.lock().unwrap_or_else(|e| e.into_inner());
        let a = map.get(token).ok_or(KeyRefusal::Unknown)?;
        match a.budget {
            Some(budget) if a.used >= budget => {
                Err(KeyRefusal::Exhausted { name: a.name.clone(), budget })
            }
            _ => Ok(a.name.clone()),
        }
    }

    /// Adds `tokens` to the account named `name`.
    pub fn charge(&self, name: &str, tokens: u64) {
        match &self.by_token {
            None => {
                let mut u = self.open_used.lock().unwrap_or_else(|e| e.into_inner());
                *u = u.saturating_add(tokens);
            }
            Some(map) => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(a) = map.values_mut().find(|a| a.name == name) {
                    a.used = a.used.saturating_add(tokens);
                }
            }
        }
    }

    /// `(name, used, budget)` of every account.
    pub fn usage(&self) -> Vec<(String, u64, Option<u64>)> {
        match &self.by_token {
            None => vec![(
                ANONYMOUS.into(),
                *self.open_used.lock().unwrap_or_else(|e| e.into_inner()),
                None,
            )],
            Some(map) => map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|a| (a.name.clone(), a.used, a.budget))
                .collect(),
        }
    }
}

/// `usage.total_tokens` of an OpenAI answer or stream event, if it reports one.
pub fn total_tokens(json: &[u8]) -> Option<u64> {
    usage(json)?.total_tokens
}

/// The `usage` an OpenAI answer or stream event reports.
#[derive(Debug, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
}

fn usage(json: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<Usage>,
    }
    serde_json::from_slice::<Answer>(json).ok()?.usage
}

/// Finds the usage in a stream's SSE bytes as they pass: complete `data:` lines are checked,
/// a partial last line waits for the next frame.
#[derive(Debug, Default)]
pub struct UsageScanner {
    partial: Vec<u8>,
    pub total: Option<u64>,
    pub completion: Option<u64>,
}

impl UsageScanner {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if let Some(data) = line.strip_prefix(b"data: ")
                && data.windows(7).any(|w| w == b"\"usage\"")
                && let Some(u) = usage(data)
            {
                self.total = u.total_tokens.or(self.total);
                self.completion = u.completion_tokens.or(self.completion);
            }
        }
        // A line longer than any event is not SSE: stop holding it.
        if self.partial.len() > 1 << 20 {
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_admit_until_spent() {
        let keys = Keys::from_toml(
            "[[key]]\nname = \"alice\"\nkey = \"sk-alice-0123456789\"\nbudget_tokens = 10\n",
        )
        .expect("keys");
        assert_eq!(keys.admit(None), Err(KeyRefusal::Missing));
        assert_eq!(keys.admit(Some("Bearer nope")), Err(KeyRefusal::Unknown));
        assert_eq!(keys.admit(Some("Bearer sk-alice-0123456789")), Ok("alice".into()));
        keys.charge("alice", 10);
        assert!(matches!(
            keys.admit(Some("Bearer sk-alice-0123456789")),
            Err(KeyRefusal::Exhausted { .. })
        ));
        assert!(Keys::from_toml("[[key]]\nname = \"x\"\nkey = \"short\"\n").is_err());
        assert!(Keys::from_toml("").is_err());
    }

    #[test]
    fn usage_is_found_across_frames() {
        let mut s = UsageScanner::default();
        s.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[],\"us",
        );
        assert_eq!(s.total, None);
        s.feed(b"age\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n");
        assert_eq!(s.total, Some(7));
        assert_eq!(total_tokens(br#"{"usage":{"total_tokens":12}}"#), Some(12));
    }
}
