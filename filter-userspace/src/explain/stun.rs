//! `explain --stun-ufrag U`: the packet asked about is a STUN Binding request whose
//! USERNAME is `U:explain`, and the walk says what the program makes of it on a shared
//! port (which meeting the server ufrag names, whether the flow is learned or refreshed)
//! before the session step, from the model's STUN step ([`crate::model::StunStep`]).

use filter_common::mux::{MuxEvent, UFRAG_MAX};
use serde_json::json;
use thiserror::Error;

use super::walk::Step;
use crate::{
    model::{Learning, Request, Trace},
    state::State,
};

/// The client's ufrag in the USERNAME explain sends.
pub const CLIENT_UFRAG: &str = "explain";

/// Why `--stun-ufrag` cannot be sent.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StunUfragError {
    #[error("--stun-ufrag asks about a STUN Binding request, which is UDP: use --proto udp")]
    NotUdp,
    #[error("--stun-ufrag `{0}`: {1}")]
    Text(String, &'static str),
}

/// Checks the server ufrag asked about: any ICE text, also longer than the program reads
/// (to ask what it does with one), but no `:`, which ends it.
pub fn check(text: &str, udp: bool) -> Result<(), StunUfragError> {
    let bad = |why| Err(StunUfragError::Text(text.to_string(), why));
    if !udp {
        return Err(StunUfragError::NotUdp);
    }
    if text.is_empty() {
        return bad("empty; a server ufrag has at least one character");
    }
    if text.len() > 255 {
        return bad("longer than 255 characters, more than an ICE ufrag (RFC 8839) holds");
    }
    if text.contains(':') {
        return bad("contains `:`, which ends the server ufrag in USERNAME");
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("not printable ASCII, which ICE ufrags are");
    }
    Ok(())
}

/// A Binding request as browsers send it: USERNAME first, then PRIORITY,
/// ICE-CONTROLLING, USE-CANDIDATE and FINGERPRINT.
pub fn binding_request(server_ufrag: &str) -> Vec<u8> {
    let username = format!("{server_ufrag}:{CLIENT_UFRAG}");
    let attributes: [(u16, &[u8]); 5] = [
        (0x0006, username.as_bytes()),
        (0x0024, &[0x6e, 0x00, 0x1e, 0xff]),
        (0x802a, &[0, 0, 0, 0, 0, 0, 0, 1]),
        (0x0025, &[]),
        (0x8028, &[0, 0, 0, 0]),
    ];
    let mut body = Vec::new();
    for (kind, value) in attributes {
        body.extend(kind.to_be_bytes());
        body.extend((value.len() as u16).to_be_bytes());
        body.extend(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut out = vec![0x00, 0x01];
    out.extend((body.len() as u16).to_be_bytes());
    out.extend([0x21, 0x12, 0xa4, 0x42]);
    out.extend(*b"gf-explain-t");
    out.extend(body);
    out
}

/// The STUN step of the walk for a Binding request naming `server_ufrag`.
pub fn step(trace: &Trace, state: &State, server_ufrag: &str) -> Option<Step> {
    let h = trace.headers.as_ref().ok()?;
    let port = format!("udp port {} on {}", h.dst_port, h.destination());
    let named = |session: u32| format!("meeting `{}`", state.name_of(session));
    let live = |session: u32| state.meetings.values().any(|m| m.session == session);
    let ufrag = format!("server ufrag `{server_ufrag}`");
    let (what, text, meeting) = match trace.stun {
        None => (
            "not_shared",
            format!("{port} is no shared (mux) port: the Binding request is not read as STUN"),
            None,
        ),
        Some(s) if !s.to_mux_endpoint => (
            "not_shared",
            format!(
                "{port} is not shared on this address (only on another): the Binding \
                 request binds nothing"
            ),
            None,
        ),
        Some(s) => match (s.request, s.learning) {
            (Request::Unreadable(MuxEvent::UfragTooLong), _) => (
                "too_long",
                format!(
                    "{ufrag} has {} characters, more than the {UFRAG_MAX} the program reads → \
                     it names no meeting and nothing is learned (counted ufrag_too_long)",
                    server_ufrag.len()
                ),
                None,
            ),
            (Request::Unreadable(event), _) => (
                "unreadable",
                format!(
                    "the request cannot be read ({}) → nothing is learned",
                    event.name()
                ),
                None,
            ),
            (_, Some(Learning::UnknownUfrag)) => (
                "unknown_ufrag",
                format!(
                    "{ufrag} is registered to no meeting → nothing is learned (counted \
                     unknown_ufrag)"
                ),
                None,
            ),
            (_, Some(Learning::AlreadyBound(session))) => (
                "bound_by_api",
                format!(
                    "the binding API bound this flow to {}, which a Binding request does not \
                     change",
                    named(session)
                ),
                Some(session),
            ),
            (_, Some(learning @ (Learning::Learned(session) | Learning::Refreshed(session)))) => {
                let (what, done) = match learning {
                    Learning::Refreshed(_) => ("refreshed", "its binding from it is refreshed"),
                    _ => ("learned", "the flow is learned (bound to it)"),
                };
                let gone = if live(session) {
                    String::new()
                } else {
                    format!("; session {session} is no meeting now, so the binding applies to none")
                };
                let text = format!(
                    "{ufrag} is registered to {} → {done} before the decision (counted \
                     {what}){gone}",
                    named(session)
                );
                (what, text, Some(session))
            }
            (_, None) => ("not_a_request", "not a Binding request".to_string(), None),
        },
    };
    let detail = json!({
        "server_ufrag": server_ufrag,
        "outcome": what,
        "meeting": meeting.map(|s| state.name_of(s)),
    });
    Some(Step::new("stun", text, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_ufrag_and_bad_ones_are_refused() {
        let frame = binding_request("abcd");
        assert_eq!(
            crate::model::mux::server_ufrag(&frame, 0),
            Request::Ufrag({
                let mut key = filter_common::mux::UfragKey::EMPTY;
                key.bytes[..4].copy_from_slice(b"abcd");
                key
            })
        );
        assert!(check("abcd", true).is_ok());
        assert!(check(&"x".repeat(80), true).is_ok());
        assert_eq!(check("abcd", false), Err(StunUfragError::NotUdp));
        for bad in ["", "ab:cd", "ab cd"] {
            let err = check(bad, true).expect_err("refused").to_string();
            assert!(err.starts_with("--stun-ufrag"), "{err}");
        }
    }
}
