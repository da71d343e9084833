//! The binding API for SFU control planes: HTTP with JSON on a Unix socket. One join is one
//! call (the participant's server ufrag, before the SFU answers it), a restart one batch.
//! Every batch is checked whole before anything is written; bindings go to the kernel
//! maps only. The routes and bodies are described in docs/api.yaml.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use bytes::Bytes;
use filter_common::FlowKey;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::server::{self, Handler, Reply};
use crate::{
    endpoint::{Flow, Proto, parse_socket},
    kernel::{Kernel, bindings},
    lock::Lock,
    state::State,
    ufrag::Ufrag,
};

/// The socket, its mode and group, as `--api` and `--api-group` ask.
pub fn bind_socket(path: &Path, group: Option<&str>) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--api {}: creating {}", path.display(), dir.display()))?;
    }
    // A socket left by a daemon that died is replaced; any other file is not ours.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!("--api {}: exists and is not a socket", path.display());
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("--api {}: another process is serving it", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("--api {}: removing the stale socket", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("--api {}: cannot listen there", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("--api {}: setting mode 0660", path.display()))?;
    if let Some(name) = group {
        let group = nix::unistd::Group::from_name(name)
            .with_context(|| format!("--api-group {name}: looking the group up"))?
            .with_context(|| format!("--api-group {name}: no such group"))?;
        nix::unistd::chown(path, None, Some(group.gid))
            .with_context(|| format!("--api-group {name}: changing the socket's group"))?;
    }
    Ok(listener)
}

/// What the handlers share: the directories, and the maps, opened once.
pub struct Api {
    pub state_dir: PathBuf,
    pub kernel: Mutex<Kernel>,
}

impl Api {
    pub fn handler(self: Arc<Self>) -> Handler {
        Arc::new(move |method, path, body| {
            let api = self.clone();
            Box::pin(async move {
                // The maps and the lock are system calls, and the lock may wait for a
                // command under way: off the runtime's thread.
                tokio::task::spawn_blocking(move || api.route(&method, &path, &body))
                    .await
                    .unwrap_or_else(|e| server::error(StatusCode::INTERNAL_SERVER_ERROR, e))
            })
        })
    }

    fn route(&self, method: &Method, path: &str, body: &Bytes) -> Reply {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (segments.as_slice(), method) {
            (["v1", "health"], &Method::GET) => {
                server::json(StatusCode::OK, &json!({ "status": "ok" }))
            }
            (["v1", "bind"], &Method::POST) => self.bind(body),
            (["v1", "unbind"], &Method::POST) => self.unbind(body),
            (["v1", "meetings", name, "bindings"], &Method::GET) => self.counts(name),
            (["v1", "health"] | ["v1", "meetings", _, "bindings"], _) => {
                server::method_not_allowed("GET, HEAD")
            }
            (["v1", "bind"] | ["v1", "unbind"], _) => server::method_not_allowed("POST"),
            _ => server::error(StatusCode::NOT_FOUND, format!("no route {path}")),
        }
    }

    fn bind(&self, body: &Bytes) -> Reply {
        let request: BindRequest = match parse(body) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        self.locked(|state, kernel| {
            let session = |meeting: &str, at: String| {
                state
                    .meetings
                    .get(meeting)
                    .map(|m| m.session)
                    .ok_or_else(|| {
                        refused(
                            StatusCode::NOT_FOUND,
                            format!("{at}: unknown meeting `{meeting}`"),
                        )
                    })
            };
            let mut ufrags = Vec::new();
            for (i, u) in request.ufrags.iter().enumerate() {
                let ufrag: Ufrag = u.ufrag.parse().map_err(|e: String| {
                    refused(StatusCode::BAD_REQUEST, format!("ufrags[{i}]: {e}"))
                })?;
                ufrags.push((ufrag, session(&u.meeting, format!("ufrags[{i}]"))?));
            }
            let mut flows = Vec::new();
            for (i, f) in request.flows.iter().enumerate() {
                let at = format!("flows[{i}]");
                let spec = FlowSpec {
                    proto: f.proto,
                    src: f.src.clone(),
                    dst: f.dst.clone(),
                };
                let key = flow_key(&spec, &at)?;
                flows.push((key, session(&f.meeting, at)?));
            }
            let conflict = |e: anyhow::Error| refused(StatusCode::CONFLICT, format!("{e:#}"));
            bindings::check_flows(kernel, &flows).map_err(conflict)?;
            let names = |session| state.name_of(session);
            let u = bindings::bind_ufrags(kernel, &ufrags, &names).map_err(conflict)?;
            let f = bindings::bind_flows(kernel, &flows).map_err(conflict)?;
            Ok(json!({ "bound": { "ufrags": u, "flows": f } }))
        })
    }

    fn unbind(&self, body: &Bytes) -> Reply {
        let request: UnbindRequest = match parse(body) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        self.locked(|_, kernel| {
            let mut ufrags = Vec::new();
            for (i, u) in request.ufrags.iter().enumerate() {
                let ufrag = u.parse().map_err(|e: String| {
                    refused(StatusCode::BAD_REQUEST, format!("ufrags[{i}]: {e}"))
                })?;
                ufrags.push(ufrag);
            }
            let flows = (request.flows.iter().enumerate())
                .map(|(i, f)| flow_key(f, &format!("flows[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let internal =
                |e: anyhow::Error| refused(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"));
            let u = bindings::unbind_ufrags(kernel, &ufrags).map_err(internal)?;
            let f = bindings::unbind_flows(kernel, &flows).map_err(internal)?;
            Ok(json!({ "unbound": { "ufrags": u, "flows": f } }))
        })
    }

    fn counts(&self, name: &str) -> Reply {
        self.locked(|state, kernel| {
            let session = state
                .meetings
                .get(name)
                .map(|m| m.session)
                .ok_or_else(|| refused(StatusCode::NOT_FOUND, format!("unknown meeting `{name}`")))?;
            let counts = bindings::binding_counts(kernel)
                .map_err(|e| refused(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
            let c = counts.get(&session).copied().unwrap_or_default();
            Ok(json!({
                "meeting": name,
                "session": session,
                "ufrags": c.ufrags,
                "flows": { "learned": c.flows_learned, "api": c.flows_api, "policy": c.flows_policy },
            }))
        })
    }

    /// Runs `f` under the state lock, with the state as it is: a meeting removed meanwhile
    /// must not get bindings that would outlive it on a session id given to another.
    fn locked(
        &self,
        f: impl FnOnce(&State, &mut Kernel) -> Result<serde_json::Value, Reply>,
    ) -> Reply {
        let run = || -> Result<serde_json::Value, Reply> {
            let internal =
                |e: anyhow::Error| refused(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"));
            let _lock = Lock::acquire(&self.state_dir).map_err(internal)?;
            let state = State::load(&self.state_dir).map_err(internal)?;
            let mut kernel = self.kernel.lock().map_err(|_| {
                refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the maps' lock is poisoned",
                )
            })?;
            f(&state, &mut kernel)
        };
        match run() {
            Ok(value) => server::json(StatusCode::OK, &value),
            Err(reply) => reply,
        }
    }
}

fn refused(status: StatusCode, why: impl std::fmt::Display) -> Reply {
    server::error(status, why)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        refused(
            StatusCode::BAD_REQUEST,
            format!("the body is not the JSON this route takes: {e}"),
        )
    })
}

fn flow_key(f: &FlowSpec, at: &str) -> Result<FlowKey, Reply> {
    let bad = |e: String| refused(StatusCode::BAD_REQUEST, format!("{at}: {e}"));
    let src = parse_socket(&f.src).map_err(|e| bad(format!("src {e}")))?;
    let dst = parse_socket(&f.dst).map_err(|e| bad(format!("dst {e}")))?;
    Ok(Flow::new(f.proto, src, dst).map_err(bad)?.key())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindRequest {
    #[serde(default)]
    ufrags: Vec<UfragBinding>,
    #[serde(default)]
    flows: Vec<FlowBinding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UfragBinding {
    meeting: String,
    ufrag: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowBinding {
    meeting: String,
    proto: Proto,
    src: String,
    dst: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowSpec {
    proto: Proto,
    src: String,
    dst: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnbindRequest {
    #[serde(default)]
    ufrags: Vec<String>,
    #[serde(default)]
    flows: Vec<FlowSpec>,
}
