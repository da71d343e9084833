//! The test topology: a switch namespace with a bridge, a relay namespace (`eth0`, where
//! geofence attaches) and one namespace per participant, all ports on the bridge. On-link
//! device routes only, no default route, no link to the root namespace: nothing can leave.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};

use crate::netns::{NetNs, veth};
use crate::sys::{reap_stale, unique_tag};

/// The relay's addresses (not in any territory table the tests load).
pub const RELAY_V4: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
pub const RELAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// What a participant is: a display name, one source address and its expected territory.
#[derive(Clone, Debug)]
pub struct ParticipantSpec {
    pub name: String,
    pub addr: IpAddr,
    pub territory: String,
}

impl ParticipantSpec {
    pub fn new(name: &str, addr: &str, territory: &str) -> Self {
        ParticipantSpec {
            name: name.to_owned(),
            addr: addr
                .parse()
                .unwrap_or_else(|e| panic!("bad address {addr}: {e}")),
            territory: territory.to_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Participant {
    pub spec: ParticipantSpec,
    pub ns: NetNs,
}

impl Participant {
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn addr(&self) -> IpAddr {
        self.spec.addr
    }
    /// The relay address of this participant's family.
    pub fn relay_addr(&self) -> IpAddr {
        match self.spec.addr {
            IpAddr::V4(_) => IpAddr::V4(RELAY_V4),
            IpAddr::V6(_) => IpAddr::V6(RELAY_V6),
        }
    }
}

/// The whole topology; every namespace is deleted on Drop.
#[derive(Debug)]
pub struct Scene {
    pub participants: Vec<Participant>,
    pub relay: NetNs,
    switch: NetNs,
}

impl Scene {
    pub fn build(specs: &[ParticipantSpec]) -> Result<Scene> {
        reap_stale();
        let base = format!("gf{}", unique_tag());
        let switch = NetNs::new(&format!("{base}s"))?;
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        switch.ip(&["link", "set", "br0", "up"])?;

        let relay = NetNs::new(&format!("{base}r"))?;
        plug(&switch, "r0", &relay)?;
        relay.ip(&["addr", "add", &format!("{RELAY_V4}/32"), "dev", "eth0"])?;
        relay.ip(&[
            "addr",
            "add",
            &format!("{RELAY_V6}/128"),
            "dev",
            "eth0",
            "nodad",
        ])?;

        let mut participants = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let ns = NetNs::new(&format!("{base}p{i}"))?;
            plug(&switch, &format!("p{i}"), &ns)?;
            let p = Participant {
                spec: spec.clone(),
                ns,
            };
            let (mine, relay_addr) = (p.addr().to_string(), p.relay_addr().to_string());
            match p.addr() {
                IpAddr::V4(_) => {
                    p.ns.ip(&["addr", "add", &format!("{mine}/32"), "dev", "eth0"])?
                }
                IpAddr::V6(_) => p.ns.ip(&[
                    "addr",
                    "add",
                    &format!("{mine}/128"),
                    "dev",
                    "eth0",
                    "nodad",
                ])?,
            };
            p.ns.ip(&["route", "add", &relay_addr, "dev", "eth0"])?;
            relay.ip(&["route", "add", &mine, "dev", "eth0"])?;
            participants.push(p);
        }
        Ok(Scene {
            participants,
            relay,
            switch,
        })
    }

    /// Names of every namespace of this scene.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.switch.name().to_owned(), self.relay.name().to_owned()];
        v.extend(self.participants.iter().map(|p| p.ns.name().to_owned()));
        v
    }

    pub fn participant(&self, name: &str) -> &Participant {
        self.participants
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no participant named {name} in the scene"))
    }
}

/// Connects `ns`'s `eth0` to the switch's bridge through a veth whose switch end is `port`.
fn plug(switch: &NetNs, port: &str, ns: &NetNs) -> Result<()> {
    veth(switch, port, ns, "eth0")?;
    switch
        .ip(&["link", "set", port, "master", "br0"])
        .with_context(|| format!("adding {port} to the bridge"))?;
    Ok(())
}
