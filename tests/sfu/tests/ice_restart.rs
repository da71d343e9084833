//! ICE restart in place, as a browser does it (`restartIce()`): same peer connection, same DTLS,
//! new ICE credentials. aiortc cannot do this, so str0m plays the browser, on loopback.

mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use common::{Sfu, answer_ufrag};
use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc,
    change::{SdpAnswer, SdpPendingOffer},
    channel::ChannelId,
    net::{Protocol, Receive},
};

/// A full-ICE client on its own UDP socket, driven by hand.
struct Client {
    name: String,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    channel: Option<ChannelId>,
    received: Vec<String>,
    ice: Vec<IceConnectionState>,
}

impl Client {
    /// Joins `meeting` as `name`; returns the client and the server ufrag it was given.
    fn join(sfu: &Sfu, meeting: &str, name: &str) -> (Client, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
        let local = socket.local_addr().expect("client address");
        // Short, so that one thread can drive two clients by turns.
        socket
            .set_read_timeout(Some(Duration::from_millis(2)))
            .expect("read timeout");
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
        let mut change = rtc.sdp_api();
        change.add_channel("chat".to_owned());
        let (offer, pending) = change.apply().expect("an offer");
        let mut client = Client {
            name: name.to_owned(),
            rtc,
            socket,
            local,
            channel: None,
            received: Vec::new(),
            ice: Vec::new(),
        };
        let path = format!("/join?meeting={meeting}&participant={name}");
        let ufrag = client.negotiate(sfu, &path, &offer, pending);
        (client, ufrag)
    }

    fn negotiate(
        &mut self,
        sfu: &Sfu,
        path: &str,
        offer: &impl serde::Serialize,
        pending: SdpPendingOffer,
    ) -> String {
        let offer = serde_json::to_string(offer).expect("offer serializes");
        let (status, answer) = sfu.post(path, &offer);
        assert_eq!(status, 200, "{path}: {answer}");
        let ufrag = answer_ufrag(&answer);
        let answer: SdpAnswer = serde_json::from_value(answer).expect("an answer");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the SFU's answer is accepted");
        ufrag
    }

    /// New ICE credentials on the same connection; returns the new server ufrag.
    fn restart_ice(&mut self, sfu: &Sfu) -> String {
        let mut change = self.rtc.sdp_api();
        change.ice_restart(true);
        let (offer, pending) = change.apply().expect("an ICE restart offer");
        let path = format!("/restart?participant={}", self.name);
        self.negotiate(sfu, &path, &offer, pending)
    }

    /// One turn: whatever str0m has to do, then one datagram or a short wait.
    fn turn(&mut self) {
        loop {
            match self.rtc.poll_output().expect("client poll") {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::ChannelOpen(id, _)) => self.channel = Some(id),
                Output::Event(Event::ChannelData(data)) => self
                    .received
                    .push(String::from_utf8_lossy(&data.data).into_owned()),
                Output::Event(Event::IceConnectionStateChange(state)) => self.ice.push(state),
                Output::Event(_) => {}
            }
        }
        let mut buf = [0; 2048];
        let input = match self.socket.recv_from(&mut buf) {
            Ok((len, source)) => {
                match Receive::new(Protocol::Udp, source, self.local, &buf[..len]) {
                    Ok(receive) => Input::Receive(Instant::now(), receive),
                    Err(_) => return,
                }
            }
            Err(_) => Input::Timeout(Instant::now()),
        };
        self.rtc.handle_input(input).expect("client input");
    }

    fn send(&mut self, text: &str) {
        let mut channel = self
            .channel
            .and_then(|id| self.rtc.channel(id))
            .expect("the channel is open");
        channel
            .write(false, text.as_bytes())
            .expect("channel write");
    }

    fn connected(&self) -> bool {
        matches!(
            self.ice.last(),
            Some(IceConnectionState::Connected | IceConnectionState::Completed)
        )
    }
}

/// Drives both clients until `done` holds; fails after 10 s.
fn run_until(clients: &mut [&mut Client; 2], what: &str, done: impl Fn(&[&mut Client; 2]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(clients) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        for client in clients.iter_mut() {
            client.turn();
        }
    }
}

#[test]
fn ice_restart_keeps_the_transport_and_changes_the_ufrag() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sfu = Sfu::on_loopback("none", &dir.path().join("sfu.log"));
    let (mut alice, first) = Client::join(&sfu, "M", "alice");
    let (mut bob, _) = Client::join(&sfu, "M", "bob");
    let mut both = [&mut alice, &mut bob];
    run_until(&mut both, "both channels open", |c| {
        c.iter().all(|c| c.channel.is_some())
    });
    both[0].send("before");
    both[1].send("before");
    run_until(&mut both, "both hear 'before'", |c| {
        c[0].received.contains(&"bob: before".to_owned())
            && c[1].received.contains(&"alice: before".to_owned())
    });

    let second = both[0].restart_ice(&sfu);
    assert_ne!(first, second, "an ICE restart gets a new server ufrag");
    let checks_before = both[0].ice.len();
    // Connected again through the new credentials: ICE went back to checking and came through.
    run_until(&mut both, "alice's ICE reconnects", |c| {
        c[0].ice.len() > checks_before + 1 && c[0].connected()
    });
    both[0].send("after");
    both[1].send("after");
    run_until(&mut both, "both hear 'after'", |c| {
        c[0].received.contains(&"bob: after".to_owned())
            && c[1].received.contains(&"alice: after".to_owned())
    });

    let state = sfu.state();
    let alice_state = state["meetings"]["M"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["participant"] == "alice"))
        .unwrap_or_else(|| panic!("no alice in {state}"));
    assert_eq!(alice_state["ufrag"], second.as_str());
    assert_eq!(alice_state["restarts"], 1);
    assert_eq!(alice_state["dtls_connected"], true);
    let selected = alice_state["selected_remote"].as_str().unwrap_or_default();
    assert_eq!(selected, alice.local.to_string());
}
