//! One participant's transport: a str0m `Rtc` in ICE-lite mode and what the SFU tracks about it.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde::Serialize;
use str0m::{
    Candidate, Event, IceConnectionState, IceCreds, Output, Rtc,
    change::{SdpAnswer, SdpOffer},
    channel::ChannelId,
    media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid},
};

use crate::ice;

/// Something for the other participants of a meeting.
pub struct Forward {
    pub meeting: String,
    pub from: String,
    pub what: Relay,
}

pub enum Relay {
    /// A data-channel message.
    Text(String),
    /// A media frame, for the others' m-line of the same kind.
    Media(MediaKind, Box<MediaData>),
    /// A receiver wants a keyframe of this kind from whoever sends it.
    Keyframe(MediaKind, KeyframeRequestKind),
}

/// A datagram for the shared socket.
pub struct Datagram {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

pub struct Peer {
    pub meeting: String,
    pub name: String,
    rtc: Rtc,
    /// The `a=fingerprint` of the last offer: the same one in a restart offer means the client
    /// kept its DTLS session and only wants new ICE credentials.
    fingerprint: Option<String>,
    ice_state: IceConnectionState,
    /// Where str0m sends all but STUN answers: the remote end of the pair ICE nominated.
    selected: Option<SocketAddr>,
    channel: Option<ChannelId>,
    /// The m-lines, with our direction on each.
    media: Vec<(Mid, MediaKind, Direction)>,
    messages_in: u64,
    messages_out: u64,
    media_frames_in: u64,
    media_frames_out: u64,
    pub restarts: u32,
}

/// A peer as `/state` shows it.
#[derive(Serialize)]
pub struct PeerState {
    pub participant: String,
    pub ufrag: String,
    pub ice: String,
    pub dtls_connected: bool,
    pub selected_remote: Option<SocketAddr>,
    pub channel_open: bool,
    pub messages_in: u64,
    pub messages_out: u64,
    pub media_frames_in: u64,
    pub media_frames_out: u64,
    pub restarts: u32,
}

/// Why an offer was not taken.
pub type OfferError = String;

impl Peer {
    /// A new transport with the credentials `creds`, answering `offer`.
    pub fn answer(
        meeting: &str,
        name: &str,
        creds: IceCreds,
        udp: SocketAddr,
        offer: SdpOffer,
    ) -> Result<(Peer, SdpAnswer), OfferError> {
        let fingerprint = offer_fingerprint(&offer);
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .build(Instant::now());
        let candidate = Candidate::host(udp, "udp").map_err(|e| format!("host candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("offer not accepted: {e}"))?;
        let peer = Peer {
            meeting: meeting.to_owned(),
            name: name.to_owned(),
            rtc,
            fingerprint,
            ice_state: IceConnectionState::New,
            selected: None,
            channel: None,
            media: Vec::new(),
            messages_in: 0,
            messages_out: 0,
            media_frames_in: 0,
            media_frames_out: 0,
            restarts: 0,
        };
        Ok((peer, answer))
    }

    /// Whether `offer` restarts ICE on this transport (same DTLS identity) rather than starting
    /// a new one, as a client that made a new peer connection does.
    pub fn keeps_dtls(&self, offer: &SdpOffer) -> bool {
        self.fingerprint.is_some() && self.fingerprint == offer_fingerprint(offer)
    }

    /// ICE restart in place. str0m makes the new local credentials itself when it sees new
    /// remote ones in an offer, so they are read back rather than chosen.
    pub fn restart_ice(&mut self, offer: SdpOffer) -> Result<SdpAnswer, OfferError> {
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("restart offer not accepted: {e}"))?;
        self.restarts += 1;
        self.selected = None;
        Ok(answer)
    }

    pub fn ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    pub fn accepts(&self, input: &str0m::Input) -> bool {
        self.rtc.accepts(input)
    }

    pub fn input(&mut self, input: str0m::Input) {
        if !self.rtc.is_alive() {
            return;
        }
        // A bad packet is the peer's problem (or a stranger's), not a reason to drop the
        // transport: ICE consent decides when it is gone.
        if let Err(e) = self.rtc.handle_input(input) {
            eprintln!("sfu: {}: input refused: {e}", self.name);
        }
    }

    /// Drains str0m until it wants time to pass: datagrams into `out`, messages into `fwd`.
    /// Returns when str0m next wants to be woken.
    pub fn poll(&mut self, out: &mut Vec<Datagram>, fwd: &mut Vec<Forward>) -> Instant {
        loop {
            if !self.rtc.is_alive() {
                return Instant::now() + Duration::from_secs(3600);
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => return at,
                Ok(Output::Transmit(t)) => {
                    // ICE-lite sends STUN only as answers to requests; the rest goes to the
                    // nominated pair, which is how we learn it.
                    if !ice::is_stun(&t.contents) {
                        self.selected = Some(t.destination);
                    }
                    out.push(Datagram {
                        to: t.destination,
                        bytes: t.contents.to_vec(),
                    });
                }
                Ok(Output::Event(event)) => self.event(event, fwd),
                Err(e) => {
                    eprintln!("sfu: {}: transport failed: {e}", self.name);
                    self.rtc.disconnect();
                }
            }
        }
    }

    fn event(&mut self, event: Event, fwd: &mut Vec<Forward>) {
        match event {
            Event::IceConnectionStateChange(state) => {
                eprintln!("sfu: {}/{}: ICE {state:?}", self.meeting, self.name);
                self.ice_state = state;
            }
            Event::Connected => eprintln!("sfu: {}/{}: DTLS connected", self.meeting, self.name),
            Event::ChannelOpen(id, label) => {
                eprintln!(
                    "sfu: {}/{}: channel {label:?} open",
                    self.meeting, self.name
                );
                self.channel = Some(id);
            }
            Event::ChannelClose(id) if self.channel == Some(id) => self.channel = None,
            Event::ChannelData(data) => {
                self.messages_in += 1;
                let text = String::from_utf8_lossy(&data.data).into_owned();
                fwd.push(self.forward(Relay::Text(text)));
            }
            Event::MediaAdded(added) => self.media.push((added.mid, added.kind, added.direction)),
            Event::MediaChanged(changed) => {
                for (mid, _, direction) in &mut self.media {
                    if *mid == changed.mid {
                        *direction = changed.direction;
                    }
                }
            }
            Event::MediaData(data) => {
                self.media_frames_in += 1;
                if let Some(kind) = self.kind_of(data.mid) {
                    fwd.push(self.forward(Relay::Media(kind, Box::new(data))));
                }
            }
            Event::KeyframeRequest(request) => {
                if let Some(kind) = self.kind_of(request.mid) {
                    fwd.push(self.forward(Relay::Keyframe(kind, request.kind)));
                }
            }
            _ => {}
        }
    }

    fn forward(&self, what: Relay) -> Forward {
        Forward {
            meeting: self.meeting.clone(),
            from: self.name.clone(),
            what,
        }
    }

    fn kind_of(&self, mid: Mid) -> Option<MediaKind> {
        self.media
            .iter()
            .find(|(m, _, _)| *m == mid)
            .map(|(_, kind, _)| *kind)
    }

    /// Writes another participant's frame on our first m-line of its kind that we send on.
    ///
    /// No renegotiation: each participant receives the others on the m-lines it offered itself
    /// (sendrecv), which is all a meeting of two needs; with more senders of a kind, their frames
    /// share one stream, which proves media flows but would not decode cleanly.
    pub fn send_media(&mut self, kind: MediaKind, data: &MediaData) {
        let Some(mid) = self
            .media
            .iter()
            .find(|(_, k, direction)| *k == kind && direction.is_sending())
            .map(|(mid, _, _)| *mid)
        else {
            return;
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        // The codec must be one both ends of this m-line negotiated.
        let Some(pt) = writer.match_params(data.params) else {
            return;
        };
        match writer.write(pt, data.network_time, data.time, data.data.clone()) {
            Ok(()) => self.media_frames_out += 1,
            Err(e) => eprintln!("sfu: {}: media write failed: {e}", self.name),
        }
    }

    /// Asks for a keyframe on every m-line of `kind` we receive on.
    pub fn request_keyframe(&mut self, kind: MediaKind, request: KeyframeRequestKind) {
        let mids: Vec<Mid> = self
            .media
            .iter()
            .filter(|(_, k, direction)| *k == kind && direction.is_receiving())
            .map(|(mid, _, _)| *mid)
            .collect();
        for mid in mids {
            if let Some(mut writer) = self.rtc.writer(mid) {
                // Refused while nothing has arrived yet; the receiver asks again.
                let _ = writer.request_keyframe(None, request);
            }
        }
    }

    /// Sends `text` on the participant's data channel, if it has one open.
    pub fn send_text(&mut self, text: &str) {
        let Some(mut channel) = self.channel.and_then(|id| self.rtc.channel(id)) else {
            return;
        };
        match channel.write(false, text.as_bytes()) {
            Ok(_) => self.messages_out += 1,
            Err(e) => eprintln!("sfu: {}: data channel write failed: {e}", self.name),
        }
    }

    pub fn timeout(&mut self, now: Instant) {
        self.input(str0m::Input::Timeout(now));
    }

    pub fn state(&mut self) -> PeerState {
        PeerState {
            participant: self.name.clone(),
            ufrag: self.ufrag(),
            ice: format!("{:?}", self.ice_state).to_lowercase(),
            dtls_connected: self.rtc.is_connected(),
            selected_remote: self.selected,
            channel_open: self.channel.is_some(),
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            media_frames_in: self.media_frames_in,
            media_frames_out: self.media_frames_out,
            restarts: self.restarts,
        }
    }
}

/// The first `a=fingerprint` of an offer (WebRTC stacks put the same one on every m-line).
fn offer_fingerprint(offer: &SdpOffer) -> Option<String> {
    offer
        .to_sdp_string()
        .lines()
        .find_map(|line| line.trim().strip_prefix("a=fingerprint:"))
        .map(str::to_owned)
}
