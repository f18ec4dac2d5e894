//! What every tenant command shares: the conventions `--home DIR`, `--node URL`, `--from KEY`,
//! `--output json`; errors that are one sentence with a meaningful exit code; and the chain
//! access every command starts from.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use gridlease_client::{Client, ClientError, TxBuilder};
use gridlease_types::{Coin, Denom, Msg};

/// Exit codes: 0 success, 1 the operation failed (refused by the chain or a provider, a
/// lease that did not come up), 2 bad input (SDL, arguments, key, passphrase), 3 the node or
/// a provider is unreachable, 4 not enough funds.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Funds(String),
}

impl CliError {
    pub fn code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Failed(_) => 1,
            CliError::BadInput(_) => 2,
            CliError::Unreachable(_) => 3,
            CliError::Funds(_) => 4,
        })
    }
}

/// The exit code of a failed command, in one place: a `CliError` says its own; a node or a
/// provider that cannot be reached anywhere in the error's chain is 3 (whoever wrapped it);
/// anything else is 1.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if let Some(c) = e.downcast_ref::<CliError>() {
        return c.code();
    }
    let unreachable = e.chain().any(|cause| {
        matches!(cause.downcast_ref::<ClientError>(), Some(ClientError::Unreachable { .. }))
            || matches!(
                cause.downcast_ref::<gridlease_provider::api_client::ApiClientError>(),
                Some(gridlease_provider::api_client::ApiClientError::Unreachable { .. })
            )
            || cause
                .downcast_ref::<gridlease_provider::error::ProviderError>()
                .is_some_and(gridlease_provider::error::ProviderError::is_unreachable)
    });
    ExitCode::from(if unreachable { 3 } else { 1 })
}

/// `message` in place of `e`'s, with the exit code `e` would have had.
pub fn reword(e: &anyhow::Error, message: String) -> anyhow::Error {
    let kind = match e.downcast_ref::<CliError>() {
        Some(CliError::BadInput(_)) => CliError::BadInput,
        Some(CliError::Funds(_)) => CliError::Funds,
        Some(CliError::Unreachable(_)) => CliError::Unreachable,
        _ if exit_code(e) == ExitCode::from(3) => CliError::Unreachable,
        _ => CliError::Failed,
    };
    kind(message).into()
}

pub fn bad(message: impl Into<String>) -> anyhow::Error {
    CliError::BadInput(message.into()).into()
}

pub fn failed(message: impl Into<String>) -> anyhow::Error {
    CliError::Failed(message.into()).into()
}

/// Turns a client error into one sentence with the right exit code.
pub fn chain_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Unreachable { url, .. } => CliError::Unreachable(format!(
            "the node at {url} is unreachable: is it running? (set --node or GRIDLEASE_NODE)"
        ))
        .into(),
        ClientError::Refused { status, message, .. } if status < 500 => {
            CliError::Failed(format!("the node refused the request: {message}")).into()
        }
        other => CliError::Failed(other.to_string()).into(),
    }
}

/// The flags every tenant command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Directory holding keys and certificates.
    #[arg(long, global = true, env = "GRIDLEASE_HOME", default_value_os_t = default_home())]
    pub home: PathBuf,
    /// RPC URL of a node.
    #[arg(long, global = true, env = "GRIDLEASE_NODE", default_value = "http://127.0.0.1:26657")]
    pub node: String,
    /// Name of the key that signs.
    #[arg(long, global = true, env = "GRIDLEASE_FROM", default_value = "default")]
    pub from: String,
    /// `text` or `json`.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// The keystore passphrase when a caller already has it (devnet); otherwise it comes from
    /// `GRIDLEASE_PASSPHRASE` or a prompt.
    #[arg(skip)]
    pub passphrase: Option<String>,
    /// The passphrase once asked for, so one command asks once (key, then mTLS key).
    #[arg(skip)]
    pub asked_passphrase: std::sync::OnceLock<String>,
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".gridlease")
}

impl Global {
    pub fn json(&self) -> bool {
        self.output == "json"
    }

    pub fn client(&self) -> Client {
        Client::new(&self.node)
    }

    /// A signer for the `--from` key, paying the chain's own fees.
    pub async fn signer(&self) -> anyhow::Result<(Client, TxBuilder)> {
        let key = self.key()?;
        let client = self.client();
        let builder = TxBuilder::for_chain(&client, key).await.map_err(chain_error)?;
        Ok((client, builder))
    }

    /// Prints `value` as JSON, or `text` for people.
    pub fn print(&self, value: &impl serde::Serialize, text: impl FnOnce() -> String) {
        if self.json() {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            println!("{}", text());
        }
    }
}

/// Signs, submits and waits for `msgs`; a refused transaction is an error with the chain's
/// reason (insufficient funds get their own exit code).
pub async fn submit(
    client: &Client,
    builder: &mut TxBuilder,
    msgs: Vec<Msg>,
) -> anyhow::Result<(u64, gridlease_client::Receipt)> {
    let (height, receipt) = client.submit_and_wait(builder, msgs).await.map_err(chain_error)?;
    if !receipt.is_ok() {
        let message =
            format!("the chain refused the transaction ({}): {}", receipt.code, receipt.log);
        return Err(
            if matches!(
                receipt.code,
                gridlease_client::ReceiptCode::InsufficientFunds
                    | gridlease_client::ReceiptCode::InsufficientFee
            ) {
                CliError::Funds(message).into()
            } else {
                CliError::Failed(message).into()
            },
        );
    }
    Ok((height, receipt))
}

/// Parses `1000uusdc`.
pub fn parse_coin(text: &str) -> anyhow::Result<Coin> {
    text.parse::<Coin>()
        .map_err(|e| bad(format!("`{text}` is not an amount such as 5000000uusdc: {e}")))
}

/// The balance of `denom` in an account's JSON balances.
pub fn balance_of(balances: &[Coin], denom: &Denom) -> u128 {
    balances.iter().find(|c| &c.denom == denom).map(|c| c.amount).unwrap_or(0)
}

/// Set by `gridlease devnet --output json`: what the commands say to people goes to stderr,
/// so that stdout holds only the machine-readable answer.
pub static HUMAN_TO_STDERR: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `println!` for lines meant for people: on stderr while [`HUMAN_TO_STDERR`] is set.
macro_rules! human {
    ($($t:tt)*) => {
        if $crate::context::HUMAN_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}
pub(crate) use human;

#[cfg(test)]
mod tests {
    use super::*;

    /// A reworded error keeps its exit code: an unreachable provider stays 3 when deploy adds
    /// that it closed the deployment.
    #[test]
    fn rewording_keeps_the_exit_code() {
        let cases: [(anyhow::Error, u8); 4] = [
            (CliError::Unreachable("down".into()).into(), 3),
            (CliError::Funds("poor".into()).into(), 4),
            (bad("no"), 2),
            (anyhow::anyhow!("other"), 1),
        ];
        for (e, code) in cases {
            let r = reword(&e, format!("{e}; and then"));
            assert_eq!(exit_code(&r), ExitCode::from(code), "{r}");
            assert!(r.to_string().ends_with("; and then"));
        }
    }
}
