//! The netfilter baselines: an nftables netdev ingress chain with an interval set, and an
//! ipset `hash:net` matched from iptables' raw PREROUTING; each a guard that removes its
//! rules on drop. And `nft -f` loading a whole territory table, for the load-time figure.

use std::{fmt::Write as _, time::Duration, time::Instant};

use anyhow::{Context as _, bail};
use geofence::geo::GeoTable;
use ipnet::Ipv4Net;

use super::{blocked::MEETING_PORT, ns::NetNs};

const NFT_TABLE: &str = "gfbench";
const IPSET: &str = "gfb-blocked";

/// Whether `program` runs here (`program --version`).
pub fn available(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn element_list<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let mut text = String::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            text.push_str(",\n");
        }
        let _ = write!(text, "{item}");
    }
    text
}

/// nftables: `udp dport P ip saddr @blocked counter drop` in a netdev ingress chain.
pub struct Nft<'a> {
    ns: &'a NetNs,
}

impl<'a> Nft<'a> {
    pub fn install(ns: &'a NetNs, interface: &str, blocked: &[Ipv4Net]) -> anyhow::Result<Nft<'a>> {
        let ruleset = format!(
            "table netdev {NFT_TABLE} {{\n\
             \tset blocked {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {{ {} }}\n\t}}\n\
             \tchain ingress {{\n\t\ttype filter hook ingress device \"{interface}\" priority 0; policy accept;\n\
             \t\tudp dport {MEETING_PORT} ip saddr @blocked counter drop\n\t}}\n}}\n",
            element_list(blocked.iter())
        );
        ns.exec("nft", &["-f", "-"], Some(ruleset.as_bytes()))
            .context("installing the nftables ruleset")?;
        Ok(Nft { ns })
    }

    /// Packets the drop rule's counter has seen.
    pub fn dropped(&self) -> anyhow::Result<u64> {
        let text = self
            .ns
            .exec("nft", &["-j", "list", "table", "netdev", NFT_TABLE], None)?;
        let json: serde_json::Value = serde_json::from_str(&text).context("nft -j output")?;
        find_counter(&json).context("no counter in the nftables ruleset")
    }
}

fn find_counter(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(packets) = map.get("counter").and_then(|c| c.get("packets")) {
                return packets.as_u64();
            }
            map.values().find_map(find_counter)
        }
        serde_json::Value::Array(items) => items.iter().find_map(find_counter),
        _ => None,
    }
}

impl Drop for Nft<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .ns
            .exec("nft", &["delete", "table", "netdev", NFT_TABLE], None)
        {
            eprintln!("warning: removing nft table {NFT_TABLE}: {e:#}");
        }
    }
}

/// ipset `hash:net` + iptables raw PREROUTING drop.
pub struct Ipset<'a> {
    ns: &'a NetNs,
    rule: Vec<String>,
    rule_added: bool,
}

impl<'a> Ipset<'a> {
    pub fn install(ns: &'a NetNs, blocked: &[Ipv4Net]) -> anyhow::Result<Ipset<'a>> {
        let mut script = format!(
            "create {IPSET} hash:net family inet hashsize 4096 maxelem {}\n",
            (blocked.len() * 2).max(65536)
        );
        for prefix in blocked {
            let _ = writeln!(script, "add {IPSET} {prefix}");
        }
        ns.exec("ipset", &["restore"], Some(script.as_bytes()))
            .context("creating the ipset")?;
        let port = MEETING_PORT.to_string();
        let rule: Vec<String> = [
            "PREROUTING",
            "-p",
            "udp",
            "--dport",
            &port,
            "-m",
            "set",
            "--match-set",
            IPSET,
            "src",
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut guard = Ipset {
            ns,
            rule,
            rule_added: false,
        };
        let mut args = vec!["-t", "raw", "-A"];
        args.extend(guard.rule.iter().map(String::as_str));
        ns.exec("iptables", &args, None)
            .context("adding the iptables rule")?;
        guard.rule_added = true;
        Ok(guard)
    }

    /// Packets the DROP rule has matched.
    pub fn dropped(&self) -> anyhow::Result<u64> {
        let text = self.ns.exec(
            "iptables",
            &["-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n"],
            None,
        )?;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(2) == Some(&"DROP") && line.contains(IPSET) {
                return fields[0]
                    .parse()
                    .with_context(|| format!("iptables counter in `{line}`"));
            }
        }
        bail!("no DROP rule in iptables -t raw -L output:\n{text}")
    }
}

impl Drop for Ipset<'_> {
    fn drop(&mut self) {
        if self.rule_added {
            let mut args = vec!["-t", "raw", "-D"];
            args.extend(self.rule.iter().map(String::as_str));
            if let Err(e) = self.ns.exec("iptables", &args, None) {
                eprintln!("warning: removing the iptables rule: {e:#}");
            }
        }
        if let Err(e) = self.ns.exec("ipset", &["destroy", IPSET], None) {
            eprintln!("warning: destroying ipset {IPSET}: {e:#}");
        }
    }
}

/// `nft -f` of every prefix of `table` into two interval sets (IPv4, IPv6) in `ns`; the
/// wall time of `nft` itself (the ruleset text is written beforehand).
pub fn nft_load(ns: &NetNs, table: &GeoTable) -> anyhow::Result<Duration> {
    let text = format!(
        "table inet gfload {{\n\
         \tset geo4 {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {{ {} }}\n\t}}\n\
         \tset geo6 {{\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = {{ {} }}\n\t}}\n}}\n",
        element_list(table.v4.iter().map(|(p, _)| p)),
        element_list(table.v6.iter().map(|(p, _)| p)),
    );
    let path = std::env::temp_dir().join(format!("gfb-nft-load-{}.nft", std::process::id()));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let _remove = RemoveFile(path.clone());
    let start = Instant::now();
    let result = ns.exec("nft", &["-f", &path.to_string_lossy()], None);
    let took = start.elapsed();
    result.context("nft -f of the whole table")?;
    ns.exec("nft", &["delete", "table", "inet", "gfload"], None)?;
    Ok(took)
}

struct RemoveFile(std::path::PathBuf);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
