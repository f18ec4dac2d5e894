//! A container registry for the pull tests, in the test process: the parts of the
//! distribution API a pull uses (`/v2/`, manifests and blobs by name, with Basic login when
//! asked), serving one OCI image made here from the host's static busybox. It streams blobs
//! slowly enough that a pull's progress can be watched. Podman must be told it speaks plain
//! HTTP: `.ci/podman-setup` lists [`REGISTRY`] as insecure in registries.conf.d.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// Where the test registry listens (`.ci/podman-setup` marks it insecure for podman).
pub const REGISTRY: &str = "127.0.0.1:45917";

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

struct Image {
    manifest: Vec<u8>,
    manifest_digest: String,
}

struct Registry {
    /// `user:password` that must be presented, if any.
    login: Option<String>,
    /// Repository name to its one image (any tag).
    images: HashMap<String, Image>,
    blobs: HashMap<String, Vec<u8>>,
}

/// A running registry; it stops when dropped.
pub struct TestRegistry {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A layer holding the host's static busybox as `/bin/busybox` and `/bin/sh`.
fn busybox_layer() -> anyhow::Result<Vec<u8>> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .context("no static busybox on this host (apt-get install busybox-static)")?;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("root/bin"))?;
    std::fs::copy(busybox, dir.path().join("root/bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", dir.path().join("root/bin/sh"))?;
    let tar = dir.path().join("layer.tar");
    let ok = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.path().join("root"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()?
        .success();
    anyhow::ensure!(ok, "tar of the layer failed");
    Ok(std::fs::read(tar)?)
}

/// Starts the registry serving `repositories` (each the same busybox image running `cmd`),
/// requiring `login` (`user:password`) when given.
pub async fn start(
    repositories: &[&str],
    cmd: &[&str],
    login: Option<&str>,
) -> anyhow::Result<TestRegistry> {
    let layer = busybox_layer()?;
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": cmd },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = digest(&manifest);
    let images = repositories
        .iter()
        .map(|r| {
            let image =
                Image { manifest: manifest.clone(), manifest_digest: manifest_digest.clone() };
            (r.to_string(), image)
        })
        .collect();
    let blobs = HashMap::from([(layer_digest, layer), (config_digest, config)]);
    let state = Arc::new(Registry { login: login.map(str::to_string), images, blobs });
    let app = Router::new()
        .route("/v2/", get(ping))
        .route("/v2/{*rest}", get(content).head(content))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(REGISTRY)
        .await
        .with_context(|| format!("the test registry cannot listen on {REGISTRY}"))?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(TestRegistry { task })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Basic realm=\"gridlease-test\"".parse().unwrap());
    }
    response
}

/// Whether the request presents the login the registry wants.
fn allowed(r: &Registry, headers: &HeaderMap) -> bool {
    let Some(login) = &r.login else { return true };
    let wanted = format!("Basic {}", base64(login.as_bytes()));
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(wanted.as_str())
}

async fn ping(State(r): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    if !allowed(&r, &headers) {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required");
    }
    (StatusCode::OK, "{}").into_response()
}

async fn content(
    State(r): State<Arc<Registry>>,
    method: Method,
    headers: HeaderMap,
    Path(rest): Path<String>,
) -> Response {
    if !allowed(&r, &headers) {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required");
    }
    if let Some((name, _reference)) = rest.split_once("/manifests/") {
        let Some(image) = r.images.get(name) else {
            return error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown");
        };
        let mut response = if method == Method::HEAD {
            Response::new(Body::empty())
        } else {
            Response::new(Body::from(image.manifest.clone()))
        };
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, MANIFEST_TYPE.parse().unwrap());
        h.insert(header::CONTENT_LENGTH, image.manifest.len().into());
        h.insert("docker-content-digest", image.manifest_digest.parse().unwrap());
        return response;
    }
    if let Some((_name, wanted)) = rest.split_once("/blobs/") {
        let Some(blob) = r.blobs.get(wanted).cloned() else {
            return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown");
        };
        let len = blob.len();
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            // 64 KiB every 20 ms: a pull of a megabyte or two takes a moment to watch.
            let chunks: Vec<Vec<u8>> = blob.chunks(64 << 10).map(<[u8]>::to_vec).collect();
            let stream = futures_util::stream::iter(chunks).then(|c| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, std::io::Error>(c)
            });
            Body::from_stream(stream)
        };
        let mut response = Response::new(body);
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, "application/octet-stream".parse().unwrap());
        h.insert(header::CONTENT_LENGTH, len.into());
        h.insert("docker-content-digest", wanted.parse().unwrap());
        return response;
    }
    error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "repository name not known to registry")
}
