//! The OpenAPI 3.0 description of the RPC, served at `/openapi.json`.

use serde_json::{Value, json};

fn error_responses() -> Value {
    json!({
        "400": { "description": "bad request", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "404": { "description": "not found", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "503": { "description": "the node's store is unavailable", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    })
}

fn get_op(summary: &str, params: Value) -> Value {
    let mut responses = error_responses();
    responses["200"] = json!({ "description": "ok", "content": { "application/json": { "schema": { "type": "object" } } } });
    json!({ "get": { "summary": summary, "parameters": params, "responses": responses } })
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn query_param(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema })
}

pub fn document() -> Value {
    let address = json!({ "type": "string", "pattern": "^grid1[02-9ac-hj-np-z]{38}$" });
    let u64_schema = json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX });
    let list = || {
        json!([
            query_param("owner", address.clone()),
            query_param("provider", address.clone()),
            query_param("state", json!({"type": "string"}))
        ])
    };
    json!({
        "openapi": "3.0.3",
        "info": { "title": "gridlease node RPC", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/health": get_op("liveness and latest height", json!([])),
            "/status": get_op("chain id, latest height, block time and state root", json!([])),
            "/params": get_op("chain parameters", json!([])),
            "/pool": get_op("community pool", json!([])),
            "/accounts/{address}": get_op("sequence and balances of an account", json!([path_param("address", address.clone())])),
            "/providers": get_op("registered providers", json!([])),
            "/providers/{address}": get_op("one provider with its audits", json!([path_param("address", address.clone())])),
            "/certificates/{address}": get_op("certificates of an account", json!([path_param("address", address.clone())])),
            "/deployments": get_op("deployments", list()),
            "/deployments/{owner}/{dseq}": get_op("one deployment with groups and escrow", json!([path_param("owner", address.clone()), path_param("dseq", u64_schema.clone())])),
            "/orders": get_op("orders", list()),
            "/bids": get_op("bids", list()),
            "/leases": get_op("leases", list()),
            "/blocks/latest": get_op("the latest block", json!([])),
            "/blocks/{height}": get_op("a block with its receipts and state root", json!([path_param("height", u64_schema.clone())])),
            "/txs/{hash}": get_op("a committed or pending transaction", json!([path_param("hash", json!({"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"}))])),
            "/txs": { "post": {
                "summary": "submit a signed transaction",
                "parameters": [query_param("wait", json!({"type": "string", "enum": ["none", "commit"]}))],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["tx"], "additionalProperties": false,
                    "properties": { "tx": { "type": "string", "description": "canonical transaction bytes, hex" } } } } } },
                "responses": {
                    "200": { "description": "committed, with its receipt" },
                    "202": { "description": "admitted to the mempool (or still pending after the wait)" },
                    "400": { "description": "invalid transaction or request", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "402": { "description": "the signer's balance cannot pay this fee and its pending fees", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "409": { "description": "sequence conflict or duplicate", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "413": { "description": "body too large" },
                    "429": { "description": "mempool full, or this peer's pending or gapped transactions at their limit", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                    "503": { "description": "the node's store is unavailable", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                }
            } },
            "/events": { "get": {
                "summary": "server-sent events: one `block` event per committed block with its (filtered) events",
                "parameters": [query_param("types", json!({"type": "string"})), query_param("address", address.clone())],
                "responses": { "200": { "description": "event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } }, "400": { "description": "bad filter" } }
            } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/openapi.json": { "get": { "summary": "this document", "responses": { "200": { "description": "OpenAPI document", "content": { "application/json": { "schema": { "type": "object" } } } } } } }
        },
        "components": { "schemas": { "Error": {
            "type": "object", "required": ["error", "message"],
            "properties": { "error": { "type": "string" }, "message": { "type": "string" } }
        } } }
    })
}
