//! The media loop: every participant of every meeting on one UDP socket, all owned by one task,
//! which signaling drives with [`Command`]s.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde::Serialize;
use str0m::{
    Input,
    change::{SdpAnswer, SdpOffer},
    net::{Protocol, Receive},
};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};

use crate::{
    ice,
    peer::{Datagram, Forward, Peer, PeerState, Relay},
};

/// A request refused, with the HTTP status signaling answers with.
#[derive(Debug)]
pub enum Refusal {
    BadOffer(String),
    Conflict(String),
    NotFound(String),
}

/// A transport answered: the answer for the client and the ufrag the relay must learn first.
pub struct Answered {
    pub meeting: String,
    pub answer: SdpAnswer,
    pub ufrag: String,
    /// A ufrag no transport uses any more (after a restart), for the relay to forget.
    pub retired: Option<String>,
}

/// A participant gone, with what the relay must forget.
pub struct Removed {
    pub ufrag: String,
}

pub enum Command {
    Join {
        meeting: String,
        participant: String,
        offer: SdpOffer,
        reply: oneshot::Sender<Result<Answered, Refusal>>,
    },
    Restart {
        participant: String,
        offer: SdpOffer,
        reply: oneshot::Sender<Result<Answered, Refusal>>,
    },
    /// Drops a participant; with `only_ufrag`, only while that is still its ufrag (so a failed
    /// registration cannot remove a transport that replaced the one it was for).
    Remove {
        participant: String,
        only_ufrag: Option<String>,
        reply: oneshot::Sender<Option<Removed>>,
    },
    State {
        reply: oneshot::Sender<State>,
    },
}

/// What `GET /state` shows.
#[derive(Serialize)]
pub struct State {
    pub udp: SocketAddr,
    pub meetings: BTreeMap<String, Vec<PeerState>>,
    pub forwarded: u64,
}

pub struct Sfu {
    socket: UdpSocket,
    local: SocketAddr,
    ufrag_prefix: String,
    peers: BTreeMap<String, Peer>,
    /// Server ufrag → participant, for STUN requests.
    by_ufrag: HashMap<String, String>,
    forwarded: u64,
}

/// Large enough for any datagram a WebRTC peer sends (they stay under the path MTU).
const RECV_BUFFER: usize = 2048;

impl Sfu {
    pub fn new(socket: UdpSocket, ufrag_prefix: String) -> Result<Sfu> {
        let local = socket.local_addr().context("UDP socket address")?;
        Ok(Sfu {
            socket,
            local,
            ufrag_prefix,
            peers: BTreeMap::new(),
            by_ufrag: HashMap::new(),
            forwarded: 0,
        })
    }

    /// Runs until every command sender is gone.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Result<()> {
        let mut buf = vec![0; RECV_BUFFER];
        loop {
            let wake = self.drive().await;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return Ok(()),
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, source)) => self.receive(&buf[..len], source),
                    // ICMP errors from a peer that went away show up here; not fatal.
                    Err(e) => eprintln!("sfu: UDP receive: {e}"),
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            for peer in self.peers.values_mut() {
                peer.timeout(now);
            }
        }
    }

    /// Sends what every transport has to send and forwards messages, until nothing moves.
    /// Returns the earliest time a transport wants to be woken.
    async fn drive(&mut self) -> Instant {
        loop {
            let mut out = Vec::new();
            let mut forwards = Vec::new();
            let mut wake = Instant::now() + Duration::from_secs(1);
            for peer in self.peers.values_mut() {
                wake = wake.min(peer.poll(&mut out, &mut forwards));
            }
            for Datagram { to, bytes } in &out {
                if let Err(e) = self.socket.send_to(bytes, to).await {
                    eprintln!("sfu: UDP send to {to}: {e}");
                }
            }
            if forwards.is_empty() {
                return wake;
            }
            for forward in &forwards {
                self.forward(forward);
            }
        }
    }

    /// Everything goes to the other participants of its own meeting and nowhere else.
    fn forward(
        &mut self,
        Forward {
            meeting,
            from,
            what,
        }: &Forward,
    ) {
        let others = self
            .peers
            .values_mut()
            .filter(|peer| peer.meeting == *meeting && peer.name != *from);
        match what {
            Relay::Text(text) => {
                let line = format!("{from}: {text}");
                for peer in others {
                    peer.send_text(&line);
                    self.forwarded += 1;
                }
            }
            Relay::Media(kind, data) => others.for_each(|peer| peer.send_media(*kind, data)),
            Relay::Keyframe(kind, request) => {
                others.for_each(|peer| peer.request_keyframe(*kind, *request));
            }
        }
    }

    /// Routes a datagram: STUN by its server ufrag, the rest to the transport whose ICE agent
    /// knows the source address.
    fn receive(&mut self, packet: &[u8], source: SocketAddr) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, packet) else {
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        let peer = match ice::stun_server_ufrag(packet) {
            Some(ufrag) => self
                .by_ufrag
                .get(ufrag)
                .and_then(|name| self.peers.get_mut(name)),
            None => self.peers.values_mut().find(|peer| peer.accepts(&input)),
        };
        match peer {
            Some(peer) => peer.input(input),
            None => eprintln!("sfu: no transport for a datagram from {source}"),
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join {
                meeting,
                participant,
                offer,
                reply,
            } => {
                let _ = reply.send(self.join(&meeting, &participant, offer));
            }
            Command::Restart {
                participant,
                offer,
                reply,
            } => {
                let _ = reply.send(self.restart(&participant, offer));
            }
            Command::Remove {
                participant,
                only_ufrag,
                reply,
            } => {
                let _ = reply.send(self.remove(&participant, only_ufrag.as_deref()));
            }
            Command::State { reply } => {
                let _ = reply.send(self.state());
            }
        }
    }

    fn join(
        &mut self,
        meeting: &str,
        participant: &str,
        offer: SdpOffer,
    ) -> Result<Answered, Refusal> {
        if let Some(peer) = self.peers.get(participant) {
            return Err(Refusal::Conflict(format!(
                "participant {participant:?} is already in meeting {:?}",
                peer.meeting
            )));
        }
        let creds = ice::fresh_creds(&self.ufrag_prefix);
        let ufrag = creds.ufrag.clone();
        let (peer, answer) = Peer::answer(meeting, participant, creds, self.local, offer)
            .map_err(Refusal::BadOffer)?;
        self.insert(peer, &ufrag);
        eprintln!("sfu: {meeting}/{participant}: joined with ufrag {ufrag}");
        Ok(Answered {
            meeting: meeting.to_owned(),
            answer,
            ufrag,
            retired: None,
        })
    }

    /// An offer from a participant that is already here: an ICE restart in place when it kept
    /// its DTLS identity, otherwise a new transport (with a new ufrag) that replaces the old.
    fn restart(&mut self, participant: &str, offer: SdpOffer) -> Result<Answered, Refusal> {
        let Some(peer) = self.peers.get_mut(participant) else {
            return Err(Refusal::NotFound(format!("no participant {participant:?}")));
        };
        let meeting = peer.meeting.clone();
        let old = peer.ufrag();
        if peer.keeps_dtls(&offer) {
            let answer = peer.restart_ice(offer).map_err(Refusal::BadOffer)?;
            let ufrag = peer.ufrag();
            self.by_ufrag.remove(&old);
            self.by_ufrag.insert(ufrag.clone(), participant.to_owned());
            eprintln!("sfu: {meeting}/{participant}: ICE restart, ufrag {old} -> {ufrag}");
            return Ok(Answered {
                meeting,
                answer,
                ufrag,
                retired: Some(old),
            });
        }
        let restarts = peer.restarts;
        let creds = ice::fresh_creds(&self.ufrag_prefix);
        let ufrag = creds.ufrag.clone();
        let (mut fresh, answer) = Peer::answer(&meeting, participant, creds, self.local, offer)
            .map_err(Refusal::BadOffer)?;
        fresh.restarts = restarts + 1;
        self.by_ufrag.remove(&old);
        self.insert(fresh, &ufrag);
        eprintln!("sfu: {meeting}/{participant}: new transport, ufrag {old} -> {ufrag}");
        Ok(Answered {
            meeting,
            answer,
            ufrag,
            retired: Some(old),
        })
    }

    fn insert(&mut self, peer: Peer, ufrag: &str) {
        self.by_ufrag.insert(ufrag.to_owned(), peer.name.clone());
        self.peers.insert(peer.name.clone(), peer);
    }

    fn remove(&mut self, participant: &str, only_ufrag: Option<&str>) -> Option<Removed> {
        let peer = self.peers.get_mut(participant)?;
        let ufrag = peer.ufrag();
        if only_ufrag.is_some_and(|only| only != ufrag) {
            return None;
        }
        let peer = self.peers.remove(participant)?;
        self.by_ufrag.remove(&ufrag);
        eprintln!("sfu: {}/{participant}: left (ufrag {ufrag})", peer.meeting);
        Some(Removed { ufrag })
    }

    fn state(&mut self) -> State {
        let mut meetings: BTreeMap<String, Vec<PeerState>> = BTreeMap::new();
        for peer in self.peers.values_mut() {
            meetings
                .entry(peer.meeting.clone())
                .or_default()
                .push(peer.state());
        }
        State {
            udp: self.local,
            meetings,
            forwarded: self.forwarded,
        }
    }
}
