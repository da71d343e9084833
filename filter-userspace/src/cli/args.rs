//! Command-line arguments. Doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::{
    endpoint::{Endpoint, Proto},
    prefix::parse_prefix,
    territory::Territory,
};

/// Drop one meeting's packets from one territory, in XDP, and account for it.
///
/// geofence answers orders of the form "participants located in territory X may not take
/// part in meeting M" precisely: packets of meeting M from sources in X are dropped on the
/// relay; every other participant and every other meeting is untouched. State lives in
/// pinned BPF maps, so enforcement continues after each command exits.
#[derive(Parser, Debug)]
#[command(name = "geofence", version, propagate_version = true)]
#[command(after_help = "Typical use:
  geofence attach eth0
  geofence geo load countries-ipv4.csv countries-ipv6.csv
  geofence meeting add town-hall --endpoint udp:*:40000-40099 --endpoint tcp:*:443
  geofence block town-hall --territory XA --order ORD-2026-0042 --for 24h
  geofence stats town-hall")]
pub struct Cli {
    /// Directory on a BPF filesystem holding geofence's pinned maps and links.
    #[arg(
        long,
        global = true,
        env = "GEOFENCE_PIN_DIR",
        default_value = "/sys/fs/bpf/geofence"
    )]
    pub pin_dir: PathBuf,

    /// Directory holding the state file and the audit log.
    #[arg(
        long,
        global = true,
        env = "GEOFENCE_STATE_DIR",
        default_value = "/var/lib/geofence"
    )]
    pub state_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach the filter to an interface.
    ///
    /// Example: geofence attach eth0 --netns relay
    Attach(AttachArgs),
    /// Detach the filter from an interface.
    ///
    /// Example: geofence detach eth0 --netns relay
    Detach(DetachArgs),
    /// Load or query the territory table.
    #[command(subcommand)]
    Geo(GeoCommand),
    /// Add, remove and list meetings.
    #[command(subcommand)]
    Meeting(MeetingCommand),
    /// Bind single client flows to a meeting (for single-port relays).
    #[command(subcommand)]
    Flow(FlowCommand),
    /// Ports meetings share (an SFU's one UDP port): add, remove, list.
    ///
    /// On a mux port no meeting owns the port: a participant's meeting is the one its STUN
    /// Binding request's server ufrag is registered to (`geofence ufrag add`), and every
    /// later packet of its flow (DTLS, SRTP, RTCP) follows that binding. Packets of flows no
    /// meeting has bound pass (counted as `unbound`).
    ///
    /// Example: geofence mux add udp:*:7882 udp:[2001:db8::1]:10000
    #[command(subcommand)]
    Mux(MuxCommand),
    /// Register or remove the server ICE ufrags of a meeting's participants.
    ///
    /// The SFU's control plane registers each transport's server ufrag when it creates it
    /// (before it answers the client). Ufrags are runtime data: kept in the kernel only,
    /// never in the state file or the audit trail.
    ///
    /// Example: geofence ufrag add town-hall Xk3fA9pQ 7Hs2Lm0w
    #[command(subcommand)]
    Ufrag(UfragCommand),
    /// Block territories or prefixes on a meeting, under an order.
    ///
    /// Example: geofence block town-hall --territory XA --order ORD-2026-0042 --for 24h
    Block(BlockArgs),
    /// Lift blocks from a meeting.
    ///
    /// With neither --territory nor --prefix, every rule and exception of the meeting is
    /// removed. --prefix removes a blocked prefix or an allowed exception.
    ///
    /// Example: geofence unblock town-hall --territory XA
    Unblock(UnblockArgs),
    /// Let single participants or ranges through despite a territory block.
    ///
    /// Example: geofence allow town-hall --prefix 192.0.2.77
    Allow(AllowArgs),
    /// Show interfaces, the territory table, meetings and their rules with what each
    /// rule dropped.
    ///
    /// Example: geofence status --json
    Status(StatusArgs),
    /// Show packet and byte counters per meeting and territory, and per rule.
    ///
    /// Example: geofence stats town-hall --json
    Stats(StatsArgs),
    /// Stream the program's decisions live, one line each: meeting, territory, verdict,
    /// reason and order.
    ///
    /// The program reports decisions only while a monitor runs (and at most --rate lines
    /// per second per CPU); Ctrl-C turns it off again. Source addresses appear only with
    /// --show-addresses, on stdout only.
    ///
    /// Example: geofence monitor town-hall --verdict dropped
    Monitor(super::monitor::MonitorArgs),
    /// Rebuild the kernel state from the state directory, e.g. after a reboot.
    ///
    /// Reloads the territory table from the files recorded by `geo load`, restores every
    /// meeting, flow, rule and exception (expired rules stay expired), and re-attaches every
    /// recorded interface whose link is missing. The geo files are checked first: if one is
    /// gone or no longer parses, nothing is changed. An attachment that fails does not stop
    /// the others, but makes the command fail at the end. Running it again changes nothing.
    ///
    /// Example: geofence restore
    Restore,
    /// Replace the running program and its maps with this build's, never unfiltered.
    ///
    /// Loads this build's program with new maps beside the old ones (under `next/` in the
    /// pin directory), fills them from the state directory as `restore` does (the territory
    /// table from its recorded files, meetings, flows, rules and exceptions), carries the
    /// SFU's ufrag registrations over when the old maps can be read, then moves every
    /// attached interface onto the new program, each in one kernel call: every packet meets
    /// the old program or the new one. The new maps then take the usual pin names. Works
    /// where `attach` and `restore` refuse pins of another version. Packet counters start
    /// again from zero. If it stops part way, other commands refuse until it is run again.
    ///
    /// Example: geofence upgrade
    Upgrade(UpgradeArgs),
    /// Explain why a packet is passed or dropped, step by step, and check it in the kernel.
    ///
    /// Walks the decision from the state and the territory files: which key found the
    /// meeting, which override applied, the territory and the table prefix that matched,
    /// each rule with its order, expiry and mode, and the verdict. Then runs the same packet
    /// through the attached program (BPF_PROG_TEST_RUN, marked so that no counter moves) and
    /// says whether the kernel agrees; a disagreement makes the command fail.
    ///
    /// Example: geofence explain --proto udp --src 192.0.2.10:50000 --dst 100.64.0.1:40000
    Explain(ExplainArgs),
    /// Serve Prometheus metrics, reload changed geo files, remove expired rules.
    ///
    /// Metrics are at http://ADDR:PORT/metrics (default 127.0.0.1:9464): packets and bytes
    /// per meeting, territory and verdict, unclassified packets by reason, the territory
    /// table's generation, prefix counts and load time, rule expiries. When a file recorded
    /// by `geo load` changes on disk, the table is reloaded as `geo load` would (a file that
    /// does not parse leaves the current table in force and is logged). Expired rules are
    /// removed from the state and recorded as `expire` in the audit log. SIGTERM stops it
    /// after any change under way; enforcement stays in place. Logs go to stderr.
    ///
    /// With --api, it also serves the binding API for SFU control planes on a Unix socket:
    /// ufrags and flows registered and removed in batches, each checked whole before any
    /// is written (docs/api.yaml).
    ///
    /// Example: geofence daemon --listen 127.0.0.1:9464 --poll 2s --api /run/geofence/api.sock
    Daemon(crate::daemon::DaemonArgs),
    /// Print shell completions (bash, zsh, fish) generated from this command line.
    ///
    /// Example: geofence completions bash > /usr/share/bash-completion/completions/geofence
    Completions(CompletionsArgs),
    /// Write manual pages generated from this command line.
    ///
    /// Example: geofence man --dir /usr/local/share/man/man1
    Man(ManArgs),
    /// Make meetings, rules and the territory table equal to a policy file (TOML).
    ///
    /// The whole file is checked first; then the diff against the current state is printed
    /// (+ added, - removed, ~ changed) and applied as one change with one audit entry.
    /// Meetings that stay keep their session ids; unchanged rules keep their issue time.
    /// Rule expiries are absolute (`expires`, RFC 3339); expired rules already in the state
    /// are kept as records. Without a [geo] section the loaded table is left alone.
    /// Interfaces are not part of a policy: attach and detach them on each host. Applying
    /// the same file again prints "no changes" and records nothing. The format is described
    /// in docs/policy-file.md.
    ///
    /// Example: geofence apply policy.toml --dry-run
    Apply(ApplyArgs),
    /// Write the current meetings, rules and territory table sources as a policy file.
    ///
    /// The output is what `geofence apply` reads: applying it changes nothing. Expired
    /// rules and the attached interfaces appear only as comments.
    ///
    /// Example: geofence export --output policy.toml
    Export(ExportArgs),
    /// Show and verify the hash-chained audit trail of every change.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The transparency report for a period: orders acted on, by territory and order;
    /// meetings affected; each rule's time in force, packets and bytes dropped and
    /// distinct blocked sources; and what was not done. Built from the audit trail and
    /// the per-rule counters only.
    ///
    /// Example: geofence report --from 2026-11-01 --to 2026-11-30 --format md
    Report(ReportArgs),
    /// Fleet mode: the policy of many relays, kept in etcd (docs/fleet.md).
    ///
    /// Example: geofence fleet --etcd http://etcd1:2379 apply policy.toml --dry-run
    Fleet(FleetArgs),
}

#[derive(Args, Debug)]
pub struct FleetArgs {
    #[command(flatten)]
    pub etcd: crate::fleet::EtcdArgs,
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Write a policy file's global part (rules per meeting, the territory table by
    /// SHA-256) as the fleet's next version, after printing the diff against the current
    /// one. Refused if another operator wrote a version since it was read.
    Apply(ApplyArgs),
    /// Print the fleet's current version as a policy file (without endpoints).
    Export,
    /// Every relay: alive or not, the version it enforces, errors; and which relays do
    /// not enforce the latest version.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The fleet's own audit trail: every version written, with its author, time, orders
    /// and what it changed; `verify` checks the hash chain.
    #[command(subcommand)]
    Audit(FleetAuditCommand),
    /// The transparency report of the whole fleet for a period: each rule of the fleet's
    /// versions with its order reference, the relays' counts summed and their
    /// distinct-source sketches merged; relays that are stale or dead are listed as such.
    ///
    /// Example: geofence fleet report --from 2026-11-01 --to 2026-11-30 --format json
    Report(ReportArgs),
}

#[derive(Subcommand, Debug)]
pub enum FleetAuditCommand {
    /// Every version, oldest first: author, time, orders, and the diff from the one before.
    ///
    /// Example: geofence fleet audit show
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checks that every version matches its hash and names the one before, and that the
    /// current policy is the last version; prints the head (version and hash) to keep.
    ///
    /// Example: geofence fleet audit verify
    Verify,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// In the driver; fastest, needs driver support (veth, most 10G+ NICs).
    Native,
    /// In the generic stack; works on every interface.
    Skb,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The interface, e.g. eth0.
    pub interface: String,
    /// The network namespace (as in `ip netns list`) the interface is in.
    #[arg(long)]
    pub netns: Option<String>,
    /// Where the program runs.
    #[arg(long, value_enum, default_value = "native")]
    pub mode: ModeArg,
    /// Flows (5-tuples) the flow table holds: learned from STUN on shared ports, bound by
    /// the API or the policy. When full, the least recently used is evicted. Default
    /// 262144, or the size chosen before; set while nothing is attached, or changed with
    /// `geofence upgrade --flows N`.
    #[arg(long, value_name = "N")]
    pub flows: Option<u32>,
}

#[derive(Args, Debug)]
pub struct UpgradeArgs {
    /// A new size for the flow table (see `attach --flows`); default: the size in use.
    #[arg(long, value_name = "N")]
    pub flows: Option<u32>,
}

#[derive(Args, Debug)]
pub struct DetachArgs {
    pub interface: String,
    #[arg(long)]
    pub netns: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// Detect from the content.
    Auto,
    /// `start,end,CC` ranges (ip-location-db, DB-IP).
    Csv,
    /// MaxMind DB (GeoLite2/GeoIP2/DB-IP country).
    Mmdb,
    /// One CIDR per line, for the territory given by --territory.
    Cidr,
    /// MaxMind GeoLite2/GeoIP2 Country CSV: blocks files and their locations file.
    Geolite2,
    /// IP2Location LITE DB1 CSV (IPv4 or IPv6 edition).
    Ip2location,
    /// An RIR's delegated(-extended) statistics file.
    Rir,
}

impl From<FormatArg> for crate::geo::Format {
    fn from(format: FormatArg) -> Self {
        use crate::geo::Format;
        match format {
            FormatArg::Auto => Format::Auto,
            FormatArg::Csv => Format::Csv,
            FormatArg::Mmdb => Format::Mmdb,
            FormatArg::Cidr => Format::Cidr,
            FormatArg::Geolite2 => Format::Geolite2,
            FormatArg::Ip2location => Format::Ip2location,
            FormatArg::Rir => Format::Rir,
        }
    }
}

/// Which of a GeoLite2 network's locations places it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LocateByArg {
    /// Where its users are (`geoname_id`), else where it is registered.
    Country,
    /// Where it is registered (`registered_country_geoname_id`) only.
    Registered,
}

impl From<LocateByArg> for crate::geo::LocateBy {
    fn from(by: LocateByArg) -> Self {
        match by {
            LocateByArg::Country => crate::geo::LocateBy::Country,
            LocateByArg::Registered => crate::geo::LocateBy::Registered,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum GeoCommand {
    /// Replace the territory table with the contents of FILEs, atomically.
    ///
    /// Several files are merged; a more specific prefix wins over a covering one. Files are
    /// read as their publishers make them; each file's format is detected from its content:
    /// `start,end,CC` range CSVs (ip-location-db, DB-IP); MaxMind DBs; GeoLite2/GeoIP2
    /// Country CSV, whose blocks files are joined with the locations file
    /// (GeoLite2-Country-Locations-en.csv), given among the FILEs or in the same zip;
    /// IP2Location LITE DB1 CSV, IPv4 or IPv6 edition (IPv4-mapped ranges count as IPv4);
    /// the RIRs' delegated(-extended) statistics, several loaded together; CIDR lists of
    /// one --territory. `.gz` and the publishers' `.zip` archives are read transparently.
    /// Rows without a country (GeoLite2 continents, IP2Location `-`, RIR space available or
    /// reserved) are skipped. Nothing changes if any file has an error.
    ///
    /// Example: geofence geo load geo-ipv4.csv geo-ipv6.csv.gz custom-xa.txt
    ///
    /// Example: geofence geo load GeoLite2-Country-CSV_20260106.zip --locate-by registered
    ///
    /// Example: geofence geo load delegated-*-extended-latest
    Load {
        /// Geo data files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The format of every file (default: detected per file).
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatArg,
        /// The territory of a plain CIDR list, e.g. XA.
        #[arg(long)]
        territory: Option<Territory>,
        /// How GeoLite2 networks are placed: `country` (where MaxMind locates their users,
        /// else where they are registered; the default) or `registered`. Recorded with the
        /// table.
        #[arg(long, value_enum)]
        locate_by: Option<LocateByArg>,
    },
    /// Show the territory the loaded table gives an address.
    ///
    /// Example: geofence geo lookup 203.0.113.9
    Lookup { addr: std::net::IpAddr },
    /// What loading FILEs would change: the addresses and prefixes that move from one
    /// territory to another, per pair, largest first, and what each meeting's rules in
    /// force would newly block or newly let pass. Changes nothing.
    ///
    /// FILEs are compared with the table in force, or with the --old files. `--` is
    /// outside the table: territory `unknown` to rules. IPv6 amounts are prefix sizes
    /// (`1.5 × /32`: half a /32 more than a /32).
    ///
    /// Example: geofence geo diff --old last-week-ipv4.csv geo-ipv4.csv
    Diff(GeoDiffArgs),
}

#[derive(Args, Debug)]
pub struct GeoDiffArgs {
    /// The new table's files, as `geo load` takes them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A file of the old table, instead of the table in force (repeat for several).
    #[arg(long = "old", value_name = "FILE")]
    pub old: Vec<PathBuf>,
    /// The format of every file, old and new.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// The territory of plain CIDR lists, old and new, e.g. XA.
    #[arg(long)]
    pub territory: Option<Territory>,
    /// How GeoLite2 networks are placed, old and new, as `geo load --locate-by`.
    #[arg(long, value_enum)]
    pub locate_by: Option<LocateByArg>,
    /// Territory pairs shown per address family (--json lists every pair).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum MeetingCommand {
    /// Register a meeting, by its local endpoints if it owns ports.
    ///
    /// A meeting without endpoints is known only through its bindings: on a port meetings
    /// share (`geofence mux add`), the ufrags the SFU registers for it, and flows.
    ///
    /// Example: geofence meeting add town-hall --endpoint udp:*:40000-40099 --endpoint tcp:[2001:db8::1]:443
    Add {
        /// The meeting id, e.g. town-hall (letters, digits, `.`, `_`, `-`).
        name: String,
        /// PROTO:ADDR:PORT[-PORT]; ADDR may be * (any local address); IPv6 in [].
        #[arg(long = "endpoint")]
        endpoints: Vec<Endpoint>,
    },
    /// Remove a meeting, its flows, rules and exceptions.
    ///
    /// Example: geofence meeting del town-hall
    Del { name: String },
    /// List meetings.
    ///
    /// Example: geofence meeting list --json
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MuxCommand {
    /// Add ports that meetings share.
    ///
    /// Example: geofence mux add udp:*:7882
    Add {
        /// PROTO:ADDR:PORT[-PORT]; ADDR may be * (any local address); IPv6 in [].
        #[arg(required = true, value_name = "ENDPOINT")]
        endpoints: Vec<Endpoint>,
    },
    /// Remove shared ports; the flows learned on them stop being looked up.
    ///
    /// Example: geofence mux del udp:*:7882
    Del {
        #[arg(required = true, value_name = "ENDPOINT")]
        endpoints: Vec<Endpoint>,
    },
    /// List shared ports.
    ///
    /// Example: geofence mux list --json
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UfragCommand {
    /// Register server ufrags to a meeting: 4 to 64 characters of A-Z, a-z, 0-9, + and /.
    ///
    /// A ufrag registered to another meeting is refused, and nothing is registered.
    ///
    /// Example: geofence ufrag add town-hall Xk3fA9pQ
    Add {
        /// The meeting.
        meeting: String,
        #[arg(required = true, value_name = "UFRAG")]
        ufrags: Vec<crate::ufrag::Ufrag>,
    },
    /// Remove server ufrags, and the flows the program learned from them.
    ///
    /// Example: geofence ufrag del Xk3fA9pQ
    Del {
        #[arg(required = true, value_name = "UFRAG")]
        ufrags: Vec<crate::ufrag::Ufrag>,
    },
}

#[derive(Args, Debug)]
pub struct FlowSpec {
    /// The meeting.
    pub name: String,
    #[arg(long)]
    pub proto: Proto,
    /// The client's address and port, e.g. 198.51.100.7:50000 or [2001:db8::7]:50000.
    #[arg(long)]
    pub src: String,
    /// The relay's address and port.
    #[arg(long)]
    pub dst: String,
}

#[derive(Subcommand, Debug)]
pub enum FlowCommand {
    /// Bind one client 5-tuple on a shared port to a meeting.
    ///
    /// A runtime binding, as the binding API makes: kept in the kernel only (a client's
    /// address is never written to the state file or the audit trail), so `restore` starts
    /// without it. The destination must be a shared port (`geofence mux add`).
    ///
    /// Example: geofence flow add town-hall --proto udp --src 198.51.100.7:50000 --dst 192.0.2.1:7882
    Add(FlowSpec),
    /// Remove a flow binding (a flow no longer bound is reported, not refused).
    ///
    /// Example: geofence flow del town-hall --proto udp --src 198.51.100.7:50000 --dst 192.0.2.1:7882
    Del(FlowSpec),
}

#[derive(Args, Debug)]
pub struct BlockArgs {
    /// The meeting.
    pub name: String,
    /// A territory to block (ISO 3166-1 alpha-2, a user-assigned code, or `unknown`).
    #[arg(long = "territory")]
    pub territories: Vec<Territory>,
    /// A source prefix or single address to block, e.g. 198.51.100.7 or 2001:db8::/48.
    #[arg(long = "prefix", value_parser = parse_prefix)]
    pub prefixes: Vec<IpNet>,
    /// The reference of the order this block executes (required).
    #[arg(long)]
    pub order: String,
    /// When the block ends, RFC 3339 (e.g. 2026-12-01T18:00:00Z). The kernel lifts it on
    /// its own, within a clock tick (a few ms) of that time.
    #[arg(long, value_name = "RFC3339", conflicts_with = "for_")]
    pub expires: Option<String>,
    /// How long the block lasts, e.g. 90m, 24h, 7d.
    // Hyphen values reach the duration parser, which explains what is wrong with `-5m`.
    #[arg(
        long = "for",
        id = "for_",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub for_: Option<String>,
    /// Count what would be dropped, but let it pass.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct UnblockArgs {
    pub name: String,
    #[arg(long = "territory")]
    pub territories: Vec<Territory>,
    #[arg(long = "prefix", value_parser = parse_prefix)]
    pub prefixes: Vec<IpNet>,
}

#[derive(Args, Debug)]
pub struct AllowArgs {
    pub name: String,
    /// A source prefix or single address to let through.
    #[arg(long = "prefix", required = true, value_parser = parse_prefix)]
    pub prefixes: Vec<IpNet>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Only this meeting.
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The transport protocol: udp or tcp.
    #[arg(long)]
    pub proto: Proto,
    /// The sender: ADDR or ADDR:PORT (IPv6 as ADDR or [ADDR]:PORT); without a port, 49152.
    #[arg(long)]
    pub src: String,
    /// The relay address and port the packet is sent to: ADDR:PORT (IPv6 as [ADDR]:PORT).
    #[arg(long)]
    pub dst: String,
    /// Ask about a STUN Binding request whose USERNAME is `U:explain` instead of a plain
    /// datagram (UDP): which meeting the server ufrag U names on a shared port, whether
    /// the flow is learned or refreshed, then the decision. The kernel's check leaves the
    /// flow's binding as it was.
    #[arg(long, value_name = "U")]
    pub stun_ufrag: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write geofence.1 and a page per subcommand (geofence-geo-load.1, …) into this
    /// directory, created if needed. Without it, the main page goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The policy file (TOML): [geo] files, format, territory; [meetings.NAME] endpoints,
    /// flows, allow; [[meetings.NAME.rules]] order, territories, prefixes, expires, dry_run.
    pub file: PathBuf,
    /// Print the diff and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write the policy to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List the audit trail: every change, who made it, when, and under which order.
    ///
    /// Example: geofence audit show --since 24h --order ORD-2026-0042
    Show {
        /// Only entries at or after this time: RFC 3339, or a duration back from now (24h, 7d).
        #[arg(long, value_name = "RFC3339|DURATION")]
        since: Option<String>,
        /// Only entries that name this order reference.
        #[arg(long, value_name = "REF")]
        order: Option<String>,
        /// Print JSON, one object per entry, as stored.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain: detects an edited, removed or reordered entry, and a line not
    /// in the one form its hash allows, and names it.
    ///
    /// Example: geofence audit verify --anchor 1234:sha256:9f86d081884c7d65…
    Verify {
        /// An anchor from `geofence audit anchor` (SEQ:sha256:HASH): the entry at SEQ must be
        /// there and carry HASH, which catches a rewrite of the whole chain. Repeatable.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Vec<crate::audit::Anchor>,
    },
    /// Print the trail's head (seq and hash) as one line to keep off this relay, e.g. in
    /// the change ticket; `audit verify --anchor` checks the trail against it later.
    ///
    /// Example: geofence audit anchor
    Anchor,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    /// A readable page.
    Md,
    /// Everything, for machines.
    Json,
    /// One row per rule.
    Csv,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Start of the period: a date (UTC midnight) or an RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// End of the period: a date (the whole day is included) or an RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    pub to: String,
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
}
