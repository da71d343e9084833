//! Traffic: UDP "media" streams from every participant to every meeting, echoed by the
//! relay, and TCP "signaling" probes (connect, one line each way).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::scene::{Participant, RELAY_V4, RELAY_V6, Scene};

/// Interval between two datagrams of one stream.
pub const SEND_INTERVAL: Duration = Duration::from_millis(2);
/// Connect timeout of a TCP probe; a dropped SYN is retransmitted only after 1 s.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const POLL: Duration = Duration::from_millis(20);
const PAYLOAD: usize = 160;

/// A meeting as the relay serves it: one UDP media port and one TCP signaling port, on
/// both relay addresses.
#[derive(Clone, Debug)]
pub struct MeetingPorts {
    pub name: String,
    pub udp: u16,
    pub tcp: u16,
}

impl MeetingPorts {
    pub fn new(name: &str, udp: u16, tcp: u16) -> Self {
        MeetingPorts {
            name: name.to_owned(),
            udp,
            tcp,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct RecvStat {
    count: u64,
    last: Instant,
}

/// What the relay received, by (meeting, source address).
type RelayLog = Arc<Mutex<HashMap<(String, IpAddr), RecvStat>>>;

#[derive(Default)]
struct StreamCounters {
    sent: AtomicU64,
    echoed: AtomicU64,
}

/// Counts of one (participant, meeting) stream at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Row {
    /// Datagrams the participant sent.
    pub sent: u64,
    /// Datagrams the relay received from the participant.
    pub received: u64,
    /// Echoes the participant got back.
    pub echoed: u64,
    /// When the relay last received a datagram from the participant.
    pub last_received: Option<Instant>,
}

/// Counts of every stream at one moment, keyed by (participant, meeting).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at: Instant,
    rows: HashMap<(String, String), Row>,
}

impl Snapshot {
    pub fn row(&self, participant: &str, meeting: &str) -> Row {
        *self
            .rows
            .get(&(participant.to_owned(), meeting.to_owned()))
            .unwrap_or_else(|| panic!("no stream {participant} -> {meeting}"))
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Window {
        let deltas = self
            .rows
            .iter()
            .map(|(k, now)| {
                let was = earlier.rows.get(k).copied().unwrap_or_default();
                let d = Delta {
                    sent: now.sent - was.sent,
                    received: now.received - was.received,
                    echoed: now.echoed - was.echoed,
                };
                (k.clone(), d)
            })
            .collect();
        Window {
            length: self.at - earlier.at,
            deltas,
        }
    }
}

/// Stream activity during a time window.
#[derive(Clone, Debug)]
pub struct Window {
    pub length: Duration,
    deltas: HashMap<(String, String), Delta>,
}

impl Window {
    pub fn get(&self, participant: &str, meeting: &str) -> Delta {
        *self
            .deltas
            .get(&(participant.to_owned(), meeting.to_owned()))
            .unwrap_or_else(|| panic!("no stream {participant} -> {meeting}"))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub sent: u64,
    pub received: u64,
    pub echoed: u64,
}

impl Delta {
    /// Most of what was sent reached the relay and came back.
    pub fn flowing(&self) -> bool {
        self.sent >= 10 && self.received * 10 >= self.sent * 7 && self.echoed * 10 >= self.sent * 5
    }
    /// Traffic was sent, nothing reached the relay, nothing came back.
    pub fn blocked(&self) -> bool {
        self.sent >= 10 && self.received == 0 && self.echoed == 0
    }
}

struct Stream {
    participant: String,
    meeting: String,
    src: IpAddr,
    counters: Arc<StreamCounters>,
}

/// Running traffic between a scene's participants and its relay. Stops on Drop.
pub struct Media {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    log: RelayLog,
    streams: Vec<Stream>,
    meetings: Vec<MeetingPorts>,
}

impl Media {
    /// Starts the relay's servers for `meetings` and a stream from every participant to
    /// every meeting.
    pub fn start(scene: &Scene, meetings: &[MeetingPorts]) -> Result<Media> {
        let mut media = Media {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            log: RelayLog::default(),
            streams: Vec::new(),
            meetings: meetings.to_vec(),
        };
        for m in meetings {
            for ip in [IpAddr::V4(RELAY_V4), IpAddr::V6(RELAY_V6)] {
                let udp = scene
                    .relay
                    .run(|| UdpSocket::bind((ip, m.udp)))?
                    .with_context(|| format!("relay: binding udp {ip} port {}", m.udp))?;
                let tcp = scene
                    .relay
                    .run(|| TcpListener::bind((ip, m.tcp)))?
                    .with_context(|| format!("relay: binding tcp {ip} port {}", m.tcp))?;
                let (stop, log, name) = (media.stop.clone(), media.log.clone(), m.name.clone());
                media
                    .threads
                    .push(thread::spawn(move || udp_echo(udp, &name, &log, &stop)));
                let stop = media.stop.clone();
                media
                    .threads
                    .push(thread::spawn(move || tcp_serve(tcp, &stop)));
            }
        }
        for p in &scene.participants {
            media.start_participant(p)?;
        }
        Ok(media)
    }

    fn start_participant(&mut self, p: &Participant) -> Result<()> {
        let mut sockets = Vec::new();
        for m in &self.meetings {
            let (src, dst) = (p.addr(), SocketAddr::new(p.relay_addr(), m.udp));
            let sock =
                p.ns.run(|| -> std::io::Result<UdpSocket> {
                    let s = UdpSocket::bind((src, 0))?;
                    s.connect(dst)?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                })?
                .with_context(|| format!("{}: udp socket to {dst}", p.name()))?;
            let counters = Arc::new(StreamCounters::default());
            self.streams.push(Stream {
                participant: p.name().to_owned(),
                meeting: m.name.clone(),
                src,
                counters: counters.clone(),
            });
            sockets.push((sock, counters));
        }
        let stop = self.stop.clone();
        self.threads
            .push(thread::spawn(move || stream(&sockets, &stop)));
        Ok(())
    }

    pub fn snapshot(&self) -> Snapshot {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let at = Instant::now();
        let rows = self
            .streams
            .iter()
            .map(|s| {
                let relay = log.get(&(s.meeting.clone(), s.src));
                let row = Row {
                    sent: s.counters.sent.load(Ordering::Relaxed),
                    echoed: s.counters.echoed.load(Ordering::Relaxed),
                    received: relay.map_or(0, |r| r.count),
                    last_received: relay.map(|r| r.last),
                };
                ((s.participant.clone(), s.meeting.clone()), row)
            })
            .collect();
        Snapshot { at, rows }
    }

    /// Stream activity over the next `length`.
    pub fn measure(&self, length: Duration) -> Window {
        let before = self.snapshot();
        thread::sleep(length);
        self.snapshot().since(&before)
    }

    fn meeting(&self, name: &str) -> &MeetingPorts {
        self.meetings
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no meeting {name}"))
    }

    /// TCP signaling from `p` to `meeting`: connect and exchange one line each way.
    pub fn tcp(&self, p: &Participant, meeting: &str) -> Result<(), String> {
        let dst = SocketAddr::new(p.relay_addr(), self.meeting(meeting).tcp);
        let hello = format!("hello from {}", p.name());
        p.ns.run(|| tcp_exchange(dst, &hello))
            .map_err(|e| format!("{e:#}"))?
    }

    /// [`Media::tcp`] for every (participant, meeting) pair, in parallel.
    pub fn tcp_all<'a>(
        &self,
        pairs: &[(&'a Participant, &'a str)],
    ) -> Vec<(&'a Participant, &'a str, Result<(), String>)> {
        thread::scope(|s| {
            let handles: Vec<_> = pairs
                .iter()
                .map(|&(p, m)| (p, m, s.spawn(move || self.tcp(p, m))))
                .collect();
            handles
                .into_iter()
                .map(|(p, m, h)| (p, m, h.join().unwrap_or(Err("probe panicked".into()))))
                .collect()
        })
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn udp_echo(sock: UdpSocket, meeting: &str, log: &RelayLog, stop: &AtomicBool) {
    let _ = sock.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let now = Instant::now();
        {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let e = log
                .entry((meeting.to_owned(), from.ip()))
                .or_insert(RecvStat {
                    count: 0,
                    last: now,
                });
            e.count += 1;
            e.last = now;
        }
        let _ = sock.send_to(&buf[..n], from);
    }
}

fn tcp_serve(listener: TcpListener, stop: &AtomicBool) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                thread::spawn(move || {
                    let _ = answer(conn);
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn answer(conn: TcpStream) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    (&conn).write_all(format!("echo {line}").as_bytes())
}

fn tcp_exchange(dst: SocketAddr, hello: &str) -> Result<(), String> {
    let conn = TcpStream::connect_timeout(&dst, TCP_CONNECT_TIMEOUT)
        .map_err(|e| format!("connect to {dst}: {e}"))?;
    let io = |e: std::io::Error| format!("exchange with {dst}: {e}");
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(io)?;
    (&conn)
        .write_all(format!("{hello}\n").as_bytes())
        .map_err(io)?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).map_err(io)?;
    if line.trim_end() != format!("echo {hello}") {
        return Err(format!("unexpected answer from {dst}: {line:?}"));
    }
    Ok(())
}

/// One participant's sender/receiver loop over its sockets (one per meeting).
fn stream(sockets: &[(UdpSocket, Arc<StreamCounters>)], stop: &AtomicBool) {
    let mut payload = [0x5au8; PAYLOAD];
    let mut buf = [0u8; 2048];
    let mut seq: u64 = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        seq += 1;
        for (sock, c) in sockets {
            if sock.send(&payload).is_ok() {
                c.sent.fetch_add(1, Ordering::Relaxed);
            }
            loop {
                match sock.recv(&mut buf) {
                    Ok(_) => {
                        c.echoed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break, // e.g. ICMP errors reported on a connected socket
                }
            }
        }
        next += SEND_INTERVAL;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
