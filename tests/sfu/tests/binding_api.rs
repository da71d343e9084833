//! The SFU against a fake geofence binding API on a Unix socket: a ufrag is bound before its
//! answer goes out, unbound when it is no longer used, and a refusal fails the join.

mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use common::{Sfu, answer_ufrag, client_offer};
use serde_json::{Value, json};

/// One request the fake API answered, and when: just before its answer was written, so no
/// client can have had the answer earlier.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    body: Value,
    answered: Instant,
}

/// geofence's binding API as the SFU sees it. Binds take `bind_delay`, so that a test can tell
/// whether the SFU waits for them; meeting `closed` is refused.
struct FakeApi {
    socket: PathBuf,
    calls: Arc<Mutex<Vec<Call>>>,
}

const REFUSED_MEETING: &str = "closed";

impl FakeApi {
    fn start(dir: &Path, bind_delay: Duration) -> FakeApi {
        let socket = dir.join("api.sock");
        let listener = UnixListener::bind(&socket).expect("binding the fake API socket");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        // Ends with the test process: the accept loop has nothing to clean up.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // Recorded before the answer goes out, so the test sees every call its request
                // waited for.
                let _ = answer(stream, bind_delay, &recorded);
            }
        });
        FakeApi { socket, calls }
    }

    fn calls(&self, path: &str) -> Vec<Call> {
        let calls = self.calls.lock().expect("calls lock");
        calls
            .iter()
            .filter(|call| call.path == path)
            .cloned()
            .collect()
    }
}

fn answer(stream: UnixStream, bind_delay: Duration, calls: &Mutex<Vec<Call>>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

    let (status, reply) = match (method.as_str(), path.as_str()) {
        ("GET", "/v1/health") => (200, json!({ "status": "ok" })),
        ("POST", "/v1/bind") => {
            thread::sleep(bind_delay);
            let ufrags = body["ufrags"].as_array().cloned().unwrap_or_default();
            if ufrags.iter().any(|u| u["meeting"] == REFUSED_MEETING) {
                (403, json!({ "error": "meeting closed is not served here" }))
            } else {
                (
                    200,
                    json!({ "bound": { "ufrags": ufrags.len(), "flows": 0 } }),
                )
            }
        }
        ("POST", "/v1/unbind") => {
            let count = body["ufrags"].as_array().map_or(0, Vec::len);
            (200, json!({ "unbound": { "ufrags": count, "flows": 0 } }))
        }
        _ => (404, json!({ "error": "no such route" })),
    };
    calls.lock().expect("calls lock").push(Call {
        method,
        path,
        body,
        answered: Instant::now(),
    });
    let reply = reply.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{reply}",
        reply.len()
    )
    .ok()?;
    stream.flush().ok()
}

fn setup(bind_delay: Duration) -> (tempfile::TempDir, FakeApi, Sfu) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let api = FakeApi::start(dir.path(), bind_delay);
    let register = format!("unix:{}", api.socket.display());
    let sfu = Sfu::on_loopback(&register, &dir.path().join("sfu.log"));
    (dir, api, sfu)
}

fn participants(sfu: &Sfu) -> Vec<(String, String)> {
    let state = sfu.state();
    let mut found = Vec::new();
    for (meeting, peers) in state["meetings"].as_object().into_iter().flatten() {
        for peer in peers.as_array().into_iter().flatten() {
            found.push((
                meeting.clone(),
                peer["participant"].as_str().unwrap_or("").into(),
            ));
        }
    }
    found
}

#[test]
fn join_binds_the_ufrag_before_answering_and_leave_unbinds_it() {
    let delay = Duration::from_millis(300);
    let (_dir, api, sfu) = setup(delay);
    assert_eq!(
        api.calls("/v1/health").len(),
        1,
        "the SFU checks the API at start"
    );

    let (_client, _pending, offer) = client_offer();
    let sent = Instant::now();
    let (status, answer) = sfu.post("/join?meeting=A&participant=alice", &offer);
    let returned = Instant::now();
    assert_eq!(status, 200, "join: {answer}");
    assert_eq!(answer["type"], "answer");
    let ufrag = answer_ufrag(&answer);
    assert!((4..=64).contains(&ufrag.len()), "ufrag {ufrag:?}");

    let binds = api.calls("/v1/bind");
    assert_eq!(binds.len(), 1, "{binds:?}");
    assert_eq!(binds[0].method, "POST");
    assert_eq!(
        binds[0].body,
        json!({ "ufrags": [{ "meeting": "A", "ufrag": ufrag }] })
    );
    // The SFU had the API's answer before it answered the join, and waited for it.
    assert!(binds[0].answered <= returned);
    assert!(returned - sent >= delay);

    let state = sfu.state();
    let peer = &state["meetings"]["A"][0];
    assert_eq!(peer["participant"], "alice");
    assert_eq!(peer["ufrag"], ufrag.as_str());
    assert_eq!(state["udp"], sfu.udp.to_string());

    let (status, left) = sfu.post("/leave?participant=alice", "");
    assert_eq!(status, 200, "leave: {left}");
    let unbinds = api.calls("/v1/unbind");
    assert_eq!(unbinds.len(), 1, "{unbinds:?}");
    assert_eq!(unbinds[0].body, json!({ "ufrags": [ufrag] }));
    assert!(participants(&sfu).is_empty());
}

#[test]
fn refused_bind_fails_the_join() {
    let (_dir, api, sfu) = setup(Duration::ZERO);
    let (_client, _pending, offer) = client_offer();
    let (status, refused) = sfu.post("/join?meeting=closed&participant=bob", &offer);
    assert_eq!(status, 502, "{refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("meeting closed is not served here"),
        "{error}"
    );
    assert!(
        participants(&sfu).is_empty(),
        "a refused participant stays out"
    );
    assert_eq!(api.calls("/v1/bind").len(), 1);

    // Nothing of bob is left behind: the same name joins another meeting.
    let (_client, _pending, offer) = client_offer();
    let (status, answer) = sfu.post("/join?meeting=open&participant=bob", &offer);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(participants(&sfu), [("open".into(), "bob".into())]);
}

#[test]
fn restart_with_a_new_connection_binds_a_new_ufrag_then_unbinds_the_old() {
    let (_dir, api, sfu) = setup(Duration::ZERO);
    let (_client, _pending, offer) = client_offer();
    let (status, first) = sfu.post("/join?meeting=A&participant=carol", &offer);
    assert_eq!(status, 200, "{first}");
    let old = answer_ufrag(&first);

    // A new peer connection: new DTLS fingerprint, so a new transport.
    let (_client, _pending, offer) = client_offer();
    let (status, second) = sfu.post("/restart?participant=carol", &offer);
    assert_eq!(status, 200, "{second}");
    let new = answer_ufrag(&second);
    assert_ne!(old, new);

    let binds = api.calls("/v1/bind");
    let unbinds = api.calls("/v1/unbind");
    assert_eq!(binds.len(), 2, "{binds:?}");
    assert_eq!(binds[1].body["ufrags"][0]["ufrag"], new.as_str());
    assert_eq!(binds[1].body["ufrags"][0]["meeting"], "A");
    assert_eq!(unbinds.len(), 1, "{unbinds:?}");
    assert_eq!(unbinds[0].body, json!({ "ufrags": [old] }));
    assert!(
        binds[1].answered <= unbinds[0].answered,
        "bound before unbound"
    );
    assert_eq!(sfu.state()["meetings"]["A"][0]["ufrag"], new.as_str());
}

#[test]
fn bad_requests_are_refused_without_binding() {
    let (_dir, api, sfu) = setup(Duration::ZERO);
    let (_client, _pending, offer) = client_offer();
    for (path, body, want) in [
        ("/join?participant=dave", offer.as_str(), 400),
        ("/join?meeting=A&participant=da%20ve", offer.as_str(), 400),
        (
            "/join?meeting=A&participant=dave",
            "{\"type\":\"offer\"}",
            400,
        ),
        (
            "/join?meeting=A&participant=dave",
            "{\"type\":\"offer\",\"sdp\":\"v=0\"}",
            400,
        ),
        ("/restart?participant=nobody", offer.as_str(), 404),
        ("/leave?participant=nobody", "", 404),
        ("/nowhere", "", 404),
    ] {
        let (status, reply) = sfu.post(path, body);
        assert_eq!(status, want, "{path}: {reply}");
        assert!(reply["error"].is_string(), "{path}: {reply}");
    }
    assert!(api.calls("/v1/bind").is_empty());

    let (status, _) = sfu.post("/join?meeting=A&participant=dave", &offer);
    assert_eq!(status, 200);
    let (_client, _pending, again) = client_offer();
    let (status, reply) = sfu.post("/join?meeting=B&participant=dave", &again);
    assert_eq!(status, 409, "{reply}");
}
