//! The binding API against its description, docs/api.yaml: every documented route is
//! called, with bodies the document accepts and bodies it refuses; every status the
//! server answers must be documented for its route, and every JSON body it returns must
//! match the documented schema; what the calls did is read back through the API.

mod common;
#[expect(
    dead_code,
    reason = "the scrapes are the daemon tests'; this one talks to the API"
)]
mod daemon_support;

use std::{
    collections::BTreeSet,
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
};

use common::{Dirs, root_with_bpffs};
use daemon_support::Daemon;
use serde_json::{Value, json};

fn spec() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.yaml");
    let text = std::fs::read_to_string(&path).expect("docs/api.yaml");
    serde_yaml::from_str(&text).expect("docs/api.yaml is YAML")
}

/// `#/components/...` resolved.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(
                spec,
                spec.pointer(pointer).unwrap_or_else(|| panic!("no {r}")),
            )
        }
        None => schema,
    }
}

/// The ways `value` breaks `schema` (the subset of JSON Schema the document uses).
fn violations(spec: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(spec, schema);
    let mut out = Vec::new();
    let kind = schema.get("type").and_then(Value::as_str);
    let ok = match kind {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_u64() || value.is_i64(),
        _ => true,
    };
    if !ok {
        return vec![format!("{at}: {value} is not of type {kind:?}")];
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(pattern), Some(text)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) {
        // The one pattern the document uses: ^[A-Za-z0-9+/]{4,64}$.
        assert_eq!(
            pattern, "^[A-Za-z0-9+/]{4,64}$",
            "a pattern this test cannot check"
        );
        let fits = (4..=64).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
        if !fits {
            out.push(format!("{at}: {text:?} does not match {pattern}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                out.push(format!("{at}: `{name}` is missing"));
            }
        }
        for (name, v) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(s) => out.extend(violations(spec, s, v, &format!("{at}.{name}"))),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{at}: `{name}` is not a documented property"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            out.extend(violations(spec, items, v, &format!("{at}[{i}]")));
        }
    }
    out
}

/// One request on the socket: the status and the body.
fn call(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    call_declaring(socket, method, path, body, body.len())
}

/// [`call`], with the length the head declares.
fn call_declaring(
    socket: &Path,
    method: &str,
    path: &str,
    body: &str,
    length: usize,
) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).expect("connecting to the API socket");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{body}"
    );
    // A server refusing a body too large may answer and close before it is all sent.
    let _ = stream.write_all(request.as_bytes());
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

struct Checker<'a> {
    spec: Value,
    socket: &'a Path,
    /// (documented path, method) pairs called.
    called: BTreeSet<(String, String)>,
}

impl Checker<'_> {
    /// A method the document does not give the route: 405 with an error.
    #[track_caller]
    fn wrong_method(&mut self, method: &str, route: &str, path: &str) {
        let operations = self
            .spec
            .pointer(&format!("/paths/{}", route.replace('/', "~1")))
            .unwrap_or_else(|| panic!("{route} is not documented"));
        assert!(
            operations.get(method.to_lowercase()).is_none(),
            "{method} {route} is documented"
        );
        let (status, reply) = call(self.socket, method, path, "");
        assert_eq!(status, 405, "{method} {path}: {reply}");
        let reply: Value = serde_json::from_str(&reply).expect("a JSON reply");
        assert!(reply["error"].is_string(), "{reply}");
    }

    /// Calls the route and checks the exchange against the document; returns the reply.
    #[track_caller]
    fn call(&mut self, method: &str, route: &str, path: &str, body: Value, want: u16) -> Value {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.raw(method, route, path, &text, want)
    }

    #[track_caller]
    fn raw(&mut self, method: &str, route: &str, path: &str, body: &str, want: u16) -> Value {
        let (status, reply) = call(self.socket, method, path, body);
        assert_eq!(status, want, "{method} {path} {body}: {reply}");
        let operation = self
            .spec
            .pointer(&format!(
                "/paths/{}/{}",
                route.replace('/', "~1"),
                method.to_lowercase()
            ))
            .unwrap_or_else(|| panic!("{method} {route} is not documented"))
            .clone();
        self.called
            .insert((route.to_string(), method.to_lowercase()));
        if status < 300
            && let Ok(sent) = serde_json::from_str::<Value>(body)
            && let Some(schema) = operation.pointer("/requestBody/content/application~1json/schema")
        {
            let problems = violations(&self.spec, schema, &sent, "request");
            assert!(
                problems.is_empty(),
                "{method} {path}: the document refuses an accepted body: {problems:?}"
            );
        }
        let documented = operation
            .pointer(&format!("/responses/{status}"))
            .unwrap_or_else(|| {
                panic!("{method} {route} answered {status}, which is not documented")
            });
        let documented = resolve(&self.spec, documented);
        let reply: Value = serde_json::from_str(&reply).expect("a JSON reply");
        let schema = documented
            .pointer("/content/application~1json/schema")
            .expect("a documented JSON schema");
        let problems = violations(&self.spec, schema, &reply, "reply");
        assert!(
            problems.is_empty(),
            "{method} {path} → {status}: {problems:?}\n{reply}"
        );
        reply
    }
}

#[test]
fn the_api_does_what_docs_api_yaml_says() {
    if !root_with_bpffs("the_api_does_what_docs_api_yaml_says") {
        return;
    }
    let d = Dirs::new("api");
    d.ok(&["meeting", "add", "A"]);
    d.ok(&["meeting", "add", "B"]);
    d.ok(&["mux", "add", "udp:*:7882"]);
    let socket = d.state.join("api.sock");
    let socket_arg = socket.to_str().expect("a UTF-8 path");
    let daemon = Daemon::start_with(&d, &["--api", socket_arg, "--learned-idle", "45s"]);
    // The daemon set the learned bindings' idle time in the kernel.
    let maps = geofence::kernel::Kernel::open(&d.pin).expect("the maps");
    let idle = geofence::kernel::bindings::learned_idle_ns(&maps).expect("MUX_CONFIG");
    assert_eq!(idle, 45_000_000_000);
    drop(maps);
    let mut api = Checker {
        spec: spec(),
        socket: &socket,
        called: BTreeSet::new(),
    };
    let bind = "/v1/bind";
    let unbind = "/v1/unbind";
    let counts = "/v1/meetings/{meeting}/bindings";
    api.call("GET", "/v1/health", "/v1/health", Value::Null, 200);
    api.wrong_method("POST", "/v1/health", "/v1/health");
    // IPv4 and IPv6 in one flow: refused below.
    let mixed = json!({
        "ufrags": [{ "meeting": "A", "ufrag": "Xk3fA9pQ" }, { "meeting": "B", "ufrag": "a+b/c" }],
        "flows": [{ "meeting": "B", "proto": "udp", "src": "198.51.100.7:50000", "dst": "[2001:db8::1]:7882" }],
    });
    let batch = json!({
        "ufrags": [{ "meeting": "A", "ufrag": "Xk3fA9pQ" }, { "meeting": "B", "ufrag": "a+b/c" }],
        "flows": [{ "meeting": "B", "proto": "udp", "src": "198.51.100.7:50000", "dst": "192.0.2.1:7882" }],
    });
    let reply = api.call("POST", bind, bind, batch.clone(), 200);
    assert_eq!(reply, json!({ "bound": { "ufrags": 2, "flows": 1 } }));
    // Again: the same bindings, nothing new.
    api.call("POST", bind, bind, batch, 200);
    let a = api.call("GET", counts, "/v1/meetings/A/bindings", Value::Null, 200);
    assert_eq!(
        (a["ufrags"].clone(), a["flows"]["api"].clone()),
        (json!(1), json!(0))
    );
    let b = api.call("GET", counts, "/v1/meetings/B/bindings", Value::Null, 200);
    assert_eq!(
        (b["ufrags"].clone(), b["flows"]["api"].clone()),
        (json!(1), json!(1))
    );
    api.call("GET", counts, "/v1/meetings/Z/bindings", Value::Null, 404);
    api.wrong_method("POST", counts, "/v1/meetings/A/bindings");
    // Refused batches change nothing: a ufrag of another meeting, an unknown meeting, a
    // bad ufrag, a flow mixing families, a body that is not JSON or has unknown keys.
    let taken = json!({ "ufrags": [{ "meeting": "B", "ufrag": "newone1" }, { "meeting": "B", "ufrag": "Xk3fA9pQ" }] });
    api.call("POST", bind, bind, taken, 409);
    let unknown = json!({ "ufrags": [{ "meeting": "Z", "ufrag": "abcd" }] });
    api.call("POST", bind, bind, unknown, 404);
    api.call(
        "POST",
        bind,
        bind,
        json!({ "ufrags": [{ "meeting": "A", "ufrag": "ab:c" }] }),
        400,
    );
    api.call("POST", bind, bind, mixed, 400);
    api.raw("POST", bind, bind, "{not json", 400);
    api.call("POST", bind, bind, json!({ "ufrag": [] }), 400);
    // A body over the limit is refused from its declared length, before it is read.
    let (status, reply) = call_declaring(&socket, "POST", bind, "", 5 << 20);
    assert_eq!(status, 413, "{reply}");
    assert!(reply.contains("exceeds"), "{reply}");
    api.wrong_method("GET", bind, bind);
    let b = api.call("GET", counts, "/v1/meetings/B/bindings", Value::Null, 200);
    assert_eq!(
        b["ufrags"],
        json!(1),
        "newone1 of the refused batch was not registered"
    );
    // Unbinding: unknown ones are no error.
    let leave = json!({
        "ufrags": ["Xk3fA9pQ", "neverseen"],
        "flows": [{ "proto": "udp", "src": "198.51.100.7:50000", "dst": "192.0.2.1:7882" }],
    });
    let reply = api.call("POST", unbind, unbind, leave, 200);
    assert_eq!(reply, json!({ "unbound": { "ufrags": 1, "flows": 1 } }));
    api.call("POST", unbind, unbind, json!({ "ufrags": ["x"] }), 400);
    api.wrong_method("GET", unbind, unbind);
    // Nothing of this reaches the disk: the state file names no ufrag or client address.
    let state = d.read_state("state.json");
    assert!(
        !state.contains("a+b/c") && !state.contains("198.51.100.7"),
        "{state}"
    );
    let audit = d.read_state("audit.jsonl");
    assert!(
        !audit.contains("a+b/c") && !audit.contains("198.51.100.7"),
        "{audit}"
    );
    // Every documented route and method was called.
    let documented: BTreeSet<(String, String)> = api.spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    let missed: Vec<_> = documented.difference(&api.called).collect();
    assert!(missed.is_empty(), "documented but not called: {missed:?}");
    assert!(daemon.terminate().success());
    assert!(
        !socket.exists(),
        "the daemon removes its socket when it stops"
    );
}
