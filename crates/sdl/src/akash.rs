//! Rendering group specs and manifests in exactly the JSON shape Akash's Go
//! types produce (`group-specs.json`, `manifest.json` in Akash's fixtures).

use serde_json::{Map, Value, json};

use crate::spec::{
    Attribute, Credentials, GroupSpec, ManifestGroup, ManifestService, Resources, ServiceExpose,
    ServiceParams,
};

fn strings(v: &Option<Vec<String>>) -> Value {
    match v {
        Some(items) => Value::from(items.clone()),
        None => Value::Null,
    }
}

fn attributes(attrs: &[Attribute]) -> Value {
    Value::Array(
        attrs
            .iter()
            .map(|a| {
                // Go's `omitempty` drops empty keys and values.
                let mut m = Map::new();
                if !a.key.is_empty() {
                    m.insert("key".into(), Value::from(a.key.clone()));
                }
                if !a.value.is_empty() {
                    m.insert("value".into(), Value::from(a.value.clone()));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

fn with_attributes(mut base: Map<String, Value>, attrs: &[Attribute]) -> Value {
    if !attrs.is_empty() {
        base.insert("attributes".into(), attributes(attrs));
    }
    Value::Object(base)
}

fn resource_value(v: u64) -> Value {
    json!({ "val": v.to_string() })
}

fn resources(r: &Resources) -> Value {
    let mut cpu = Map::new();
    cpu.insert("units".into(), resource_value(r.cpu.millis));
    let mut memory = Map::new();
    memory.insert("size".into(), resource_value(r.memory_bytes));
    let storage: Vec<Value> = r
        .storage
        .iter()
        .map(|v| {
            let mut m = Map::new();
            m.insert("name".into(), Value::from(v.name.clone()));
            m.insert("size".into(), resource_value(v.bytes));
            with_attributes(m, &v.attributes)
        })
        .collect();
    let mut gpu = Map::new();
    gpu.insert("units".into(), resource_value(r.gpu.units));
    let endpoints: Vec<Value> = r
        .endpoints
        .iter()
        .map(|e| {
            let mut m = Map::new();
            if e.kind.code() != 0 {
                m.insert("kind".into(), Value::from(e.kind.code()));
            }
            m.insert("sequence_number".into(), Value::from(e.sequence_number));
            Value::Object(m)
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), Value::from(r.id));
    m.insert("cpu".into(), with_attributes(cpu, &r.cpu.attributes));
    m.insert("memory".into(), Value::Object(memory));
    if !storage.is_empty() {
        m.insert("storage".into(), Value::Array(storage));
    }
    m.insert("gpu".into(), with_attributes(gpu, &r.gpu.attributes));
    m.insert("endpoints".into(), Value::Array(endpoints));
    Value::Object(m)
}

/// Group specs as Akash's `DeploymentGroups()` marshals them.
pub fn groups_json(groups: &[GroupSpec]) -> Value {
    Value::Array(
        groups
            .iter()
            .map(|g| {
                let units: Vec<Value> = g
                    .resources
                    .iter()
                    .map(|u| {
                        json!({
                            "resource": resources(&u.resources),
                            "count": u.count,
                            "price": { "denom": u.price.denom, "amount": u.price.amount.to_string() },
                        })
                    })
                    .collect();
                json!({
                    "name": g.name,
                    "requirements": {
                        "signed_by": {
                            "all_of": strings(&g.requirements.signed_by.all_of),
                            "any_of": strings(&g.requirements.signed_by.any_of),
                        },
                        "attributes": match &g.requirements.attributes {
                            Some(a) => attributes(a),
                            None => Value::Null,
                        },
                    },
                    "resources": units,
                })
            })
            .collect(),
    )
}

fn expose(e: &ServiceExpose) -> Value {
    let h = &e.http_options;
    let mut http = Map::new();
    http.insert("maxBodySize".into(), Value::from(h.max_body_size));
    http.insert("readTimeout".into(), Value::from(h.read_timeout));
    http.insert("sendTimeout".into(), Value::from(h.send_timeout));
    http.insert("nextTries".into(), Value::from(h.next_tries));
    http.insert("nextTimeout".into(), Value::from(h.next_timeout));
    if !h.next_cases.is_empty() {
        http.insert("nextCases".into(), Value::from(h.next_cases.clone()));
    }
    if h.proxy_buffer_size != 0 {
        http.insert("proxyBufferSize".into(), Value::from(h.proxy_buffer_size));
    }
    json!({
        "port": e.port,
        "externalPort": e.external_port,
        "proto": e.proto.as_str(),
        "service": e.service,
        "global": e.global,
        "hosts": strings(&e.hosts),
        "httpOptions": Value::Object(http),
        "ip": e.ip,
        "endpointSequenceNumber": e.endpoint_sequence_number,
    })
}

fn params(p: &ServiceParams) -> Value {
    let mut m = Map::new();
    m.insert(
        "storage".into(),
        match &p.storage {
            Some(s) => Value::Array(
                s.iter()
                    .map(|v| json!({ "name": v.name, "mount": v.mount, "readOnly": v.read_only }))
                    .collect(),
            ),
            None => Value::Null,
        },
    );
    if let Some(read) = &p.permissions {
        let mut perms = Map::new();
        if !read.is_empty() {
            perms.insert("read".into(), Value::from(read.clone()));
        }
        m.insert("permissions".into(), Value::Object(perms));
    }
    if let Some(tee) = &p.tee {
        m.insert("tee".into(), json!({ "type": tee, "attestation": true }));
    }
    Value::Object(m)
}

fn credentials(c: &Option<Credentials>) -> Value {
    match c {
        Some(c) => json!({
            "host": c.host,
            "email": c.email,
            "username": c.username,
            "password": c.password,
        }),
        None => Value::Null,
    }
}

fn service(s: &ManifestService) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::from(s.name.clone()));
    m.insert("image".into(), Value::from(s.image.clone()));
    m.insert("command".into(), strings(&s.command));
    m.insert("args".into(), strings(&s.args));
    m.insert("env".into(), strings(&s.env));
    m.insert("resources".into(), resources(&s.resources));
    m.insert("count".into(), Value::from(s.count));
    m.insert("expose".into(), Value::Array(s.expose.iter().map(expose).collect()));
    if let Some(p) = &s.params {
        m.insert("params".into(), params(p));
    }
    m.insert("credentials".into(), credentials(&s.credentials));
    Value::Object(m)
}

/// The manifest as Akash's `Manifest()` marshals it.
pub fn manifest_json(groups: &[ManifestGroup]) -> Value {
    Value::Array(
        groups
            .iter()
            .map(|g| {
                json!({
                    "name": g.name,
                    "services": g.services.iter().map(service).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
