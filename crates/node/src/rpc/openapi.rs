//! The OpenAPI description of the RPC, served at `/openapi.json`. It is generated from the
//! wire types themselves (`rpc-types`, and `types`' objects, events and params) and from the
//! handlers' annotations in `rpc.rs` (whose submodule this is), so a field renamed there is
//! renamed here; `openapi.json` at the crate's root is the checked-in copy a test compares it
//! with.

use utoipa::OpenApi;

use super as rpc;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gridlease node RPC",
        description = "Transactions in; every ledger object, blocks, receipts and a live event \
                       stream out. Errors are an ErrorBody with a stable code."
    ),
    paths(
        rpc::health,
        rpc::status,
        rpc::params,
        rpc::pool,
        rpc::account,
        rpc::providers,
        rpc::provider,
        rpc::certificates,
        rpc::certificate,
        rpc::deployments,
        rpc::deployment,
        rpc::orders,
        rpc::bids,
        rpc::bid,
        rpc::leases,
        rpc::lease,
        rpc::validators,
        rpc::evidence,
        rpc::blocks,
        rpc::latest_block,
        rpc::block,
        rpc::submit,
        rpc::tx,
        rpc::events,
        rpc::metrics,
        rpc::openapi,
    ),
    components(schemas(
        gridlease_rpc_types::ErrorBody,
        gridlease_rpc_types::BlockEvents,
        gridlease_rpc_types::Lagged,
        gridlease_rpc_types::Wait,
    ))
)]
struct RpcDoc;

/// The document, with the node's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = RpcDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as the node serves it (pretty JSON, one trailing newline).
pub fn document_json() -> String {
    let mut text = doc_text(&document());
    text.push('\n');
    text
}

fn doc_text(doc: &utoipa::openapi::OpenApi) -> String {
    doc.to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The served document is the checked-in `openapi.json`: a change to a wire type shows in
    /// review as a change to that file. `GRIDLEASE_BLESS=1` rewrites it.
    #[test]
    fn the_document_matches_the_checked_in_copy() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let now = document_json();
        if std::env::var_os("GRIDLEASE_BLESS").is_some() {
            std::fs::write(path, &now).expect("write openapi.json");
        }
        let checked_in = std::fs::read_to_string(path).expect("openapi.json is checked in");
        assert!(
            checked_in == now,
            "the RPC's OpenAPI document changed: review it and run \
             `GRIDLEASE_BLESS=1 cargo test -p gridlease-node openapi` to update openapi.json"
        );
    }

    #[test]
    fn every_route_and_wire_type_is_described() {
        let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        for path in [
            "/status",
            "/leases",
            "/leases/{owner}/{dseq}/{gseq}/{oseq}/{provider}",
            "/txs",
            "/events",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is not described");
        }
        let schemas = &doc["components"]["schemas"];
        for name in [
            "Status",
            "LeasesPage",
            "Lease",
            "LeaseState",
            "Event",
            "ReceiptCode",
            "ErrorBody",
            "Params",
        ] {
            assert!(schemas[name].is_object(), "schema {name} is missing");
        }
        // Lifecycle states are tagged by `state`, events by `type`, as on the wire.
        let lease_state = schemas["LeaseState"].to_string();
        assert!(lease_state.contains("\"state\""), "{lease_state}");
    }
}
