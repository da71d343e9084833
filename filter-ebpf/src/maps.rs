//! The program's maps, pinned by name under the controller's pin directory.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap},
};
use filter_common::{
    CachedStats, EndpointKey, FlowKey, Override, OverrideKey, PassReason, Policy, SessionStats,
    StatsKey, TerritoryId, TerritoryKeyV4, TerritoryKeyV6,
    accounting::{PackedSketch, RULE_ENTRIES, RuleCounters},
    geo::{
        Tbl8Group, Tbl8List, Tbl16Elem, Tbl24Elem, Tbl24List, V4_BLOCK_LISTS, V4_LISTS,
        V4_TBL8_GROUPS, V4_TBL16_ELEMS, V4_TBL24_ELEMS, V6_INDEX_ELEMS, V6_NODES, V6_PACKED_RANGES,
        V6_RANGES, V6_TERRITORY_ELEMS, V6IndexElem, V6Node, V6PackedRange, V6StartHalf,
        V6TerritoryElem,
    },
    maps::{capacity, policy_index},
    mux::{FlowBinding, MuxEvent, UfragBinding, UfragKey, config},
    unparsed,
};

/// Exact 5-tuple → its meeting: bound by the control plane, or learned from a STUN
/// Binding request on a mux port. LRU: a flood of new flows evicts the least recently
/// used binding instead of failing.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowBinding> = LruHashMap::pinned(capacity::FLOWS, 0);

/// Server ICE ufrag → its meeting, registered by the SFU's control plane.
#[map]
pub static UFRAGS: HashMap<UfragKey, UfragBinding> = HashMap::pinned(capacity::UFRAGS, 0);

/// Per CPU: the server ufrag being read, as `UFRAGS` keys it; 64 bytes that the 512-byte
/// stack has no room for beside the flow key.
#[map]
pub static UFRAG_SCRATCH: PerCpuArray<UfragKey> = PerCpuArray::with_max_entries(1, 0);

/// What happened to STUN on mux ports, per [`MuxEvent`], per CPU.
#[map]
pub static MUX_EVENTS: PerCpuArray<u64> = PerCpuArray::pinned(MuxEvent::COUNT, 0);

/// Per generation, the territories some meeting's rule in force blocks (one rule's
/// bitset): an unbound packet on a mux port from one of them is dropped.
#[map]
pub static MUX_BLOCKED: Array<filter_common::Rule> =
    Array::pinned(filter_common::generation::COUNT, 0);

/// Index 0: bit 0, which generation of the session maps packets use; bit 1, which
/// territory table (A or B). One word, so one store switches both (see
/// `filter_common::generation`).
#[map]
pub static SESSION_ACTIVE: Array<u32> = Array::pinned(1, 0);

/// Per generation, a bit per session id that is a meeting of that generation's state:
/// learned and API flows apply only to live sessions.
#[map]
pub static LIVE_SESSIONS: Array<u64> = Array::pinned(filter_common::generation::live::WORDS, 0);

/// Local address (or `unparsed::ANY`) → what a packet the parser cannot place is dropped
/// for, when it comes from there.
#[map]
pub static UNPARSED_GUARD: HashMap<filter_common::Address, unparsed::Guard> =
    HashMap::pinned(unparsed::GUARDS, 0);

/// `(guard scope, source prefix)` → `unparsed::PREFIX_ALLOW` or `PREFIX_DROP`.
#[map]
pub static UNPARSED_PREFIX: LpmTrie<OverrideKey, u32> = LpmTrie::pinned(unparsed::PREFIXES, 0);

/// Unplaceable packets a guard dropped, per [`PassReason`] they would have passed for,
/// per CPU.
#[map]
pub static UNPARSED_DROP: PerCpuArray<u64> = PerCpuArray::pinned(PassReason::COUNT, 0);

/// Settings of the mux path (see `filter_common::mux::config`).
#[map]
pub static MUX_CONFIG: Array<u64> = Array::pinned(config::ENTRIES, 0);

/// `(proto, local addr, port)` → its session in each generation (see
/// `filter_common::generation::endpoint`).
#[map]
pub static ENDPOINTS: HashMap<EndpointKey, u32> = HashMap::pinned(capacity::ENDPOINTS, 0);

/// `(session's keyed id, source prefix)` → allow or drop, ahead of the territory rule.
#[map]
pub static OVERRIDES: LpmTrie<OverrideKey, Override> = LpmTrie::pinned(capacity::OVERRIDES, 0);

/// The pool of policies: a session's rules, in the entry its `POLICY_INDEX` names.
#[map]
pub static POLICIES: Array<Policy> = Array::pinned(policy_index::POOL, 0);

/// Session's keyed id (generation and session) → its entry in `POLICIES` (0: no rules),
/// two per element; memory-mapped so that the controller writes it without a syscall.
#[map]
pub static POLICY_INDEX: Array<policy_index::Element> =
    Array::pinned(policy_index::ELEMENTS, BPF_F_MMAPABLE);

// The flattened territory table (layout in filter_common::geo), generations A and B. Plain
// arrays, memory-mappable so that userspace fills a whole generation without a syscall
// per entry; the program reads them by index, which the kernel inlines.

#[map]
pub static GEO4_16_A: Array<Tbl16Elem> = Array::pinned(V4_TBL16_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_16_B: Array<Tbl16Elem> = Array::pinned(V4_TBL16_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_24_A: Array<Tbl24Elem> = Array::pinned(V4_TBL24_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_24_B: Array<Tbl24Elem> = Array::pinned(V4_TBL24_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_24L_A: Array<Tbl24List> = Array::pinned(V4_BLOCK_LISTS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_24L_B: Array<Tbl24List> = Array::pinned(V4_BLOCK_LISTS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_8_A: Array<Tbl8Group> = Array::pinned(V4_TBL8_GROUPS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_8_B: Array<Tbl8Group> = Array::pinned(V4_TBL8_GROUPS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_8L_A: Array<Tbl8List> = Array::pinned(V4_LISTS, BPF_F_MMAPABLE);
#[map]
pub static GEO4_8L_B: Array<Tbl8List> = Array::pinned(V4_LISTS, BPF_F_MMAPABLE);
#[map]
pub static GEO6_16_A: Array<V6IndexElem> = Array::pinned(V6_INDEX_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO6_16_B: Array<V6IndexElem> = Array::pinned(V6_INDEX_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO6_N_A: Array<V6Node> = Array::pinned(V6_NODES, BPF_F_MMAPABLE);
#[map]
pub static GEO6_N_B: Array<V6Node> = Array::pinned(V6_NODES, BPF_F_MMAPABLE);
#[map]
pub static GEO6_RH_A: Array<V6StartHalf> = Array::pinned(V6_RANGES, BPF_F_MMAPABLE);
#[map]
pub static GEO6_RH_B: Array<V6StartHalf> = Array::pinned(V6_RANGES, BPF_F_MMAPABLE);
#[map]
pub static GEO6_RL_A: Array<V6StartHalf> = Array::pinned(V6_RANGES, BPF_F_MMAPABLE);
#[map]
pub static GEO6_RL_B: Array<V6StartHalf> = Array::pinned(V6_RANGES, BPF_F_MMAPABLE);
#[map]
pub static GEO6_T_A: Array<V6TerritoryElem> = Array::pinned(V6_TERRITORY_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO6_T_B: Array<V6TerritoryElem> = Array::pinned(V6_TERRITORY_ELEMS, BPF_F_MMAPABLE);
#[map]
pub static GEO6_P_A: Array<V6PackedRange> = Array::pinned(V6_PACKED_RANGES, BPF_F_MMAPABLE);
#[map]
pub static GEO6_P_B: Array<V6PackedRange> = Array::pinned(V6_PACKED_RANGES, BPF_F_MMAPABLE);

// The stock LPM tries: the reference `territory::lookup_lpm` reads, which benches and
// tests compare with. Userspace fills them only on request (no preallocation: empty, they
// cost nothing).
#[map]
pub static GEO4_A: LpmTrie<TerritoryKeyV4, TerritoryId> =
    LpmTrie::pinned(capacity::TERRITORY_V4, 0);
#[map]
pub static GEO4_B: LpmTrie<TerritoryKeyV4, TerritoryId> =
    LpmTrie::pinned(capacity::TERRITORY_V4, 0);
#[map]
pub static GEO6_A: LpmTrie<TerritoryKeyV6, TerritoryId> =
    LpmTrie::pinned(capacity::TERRITORY_V6, 0);
#[map]
pub static GEO6_B: LpmTrie<TerritoryKeyV6, TerritoryId> =
    LpmTrie::pinned(capacity::TERRITORY_V6, 0);

/// `(session, territory)` → packets and bytes per verdict, per CPU.
#[map]
pub static SESSION_STATS: PerCpuHashMap<StatsKey, SessionStats> =
    PerCpuHashMap::pinned(capacity::SESSION_STATS, 0);

/// In front of `SESSION_STATS`: per CPU, a few entries per session that its first
/// territories claim and count in with array reads; see `filter_common::CachedStats`.
#[map]
pub static STATS_CACHE: PerCpuArray<CachedStats> =
    PerCpuArray::pinned(filter_common::counters::STATS_CACHE_ENTRIES, 0);

/// Packets that passed unclassified, per [`PassReason`], per CPU.
#[map]
pub static PASS_REASONS: PerCpuArray<u64> = PerCpuArray::pinned(PassReason::COUNT, 0);

/// Per (protocol, destination port): which session keys exist on it, and the wildcard
/// endpoint's session; see `filter_common::maps::ports`. Memory-mappable, so that sync
/// reads and writes all of it without a syscall per entry.
#[map]
pub static PORTS: Array<filter_common::maps::ports::Element> =
    Array::pinned(filter_common::maps::ports::ELEMENTS, BPF_F_MMAPABLE);

/// Bit per session that has prefix overrides; see `filter_common::maps::override_sessions`.
#[map]
pub static OVERRIDE_SESSIONS: Array<u64> =
    Array::pinned(filter_common::maps::override_sessions::WORDS, 0);
/// `session * RULES_PER_SESSION + slot` → packets and bytes the rule dropped or would
/// have dropped, per CPU.
#[map]
pub static RULE_COUNTERS: PerCpuArray<RuleCounters> = PerCpuArray::pinned(RULE_ENTRIES, 0);

/// Same index → the rule's distinct-source sketch, per CPU: each CPU raises its own
/// registers without a race, and readers merge them register-wise (the sketch of the
/// union of the CPUs' sources, exactly). Packed, five bits a register, since the map
/// takes its size once per possible CPU.
#[map]
pub static RULE_SOURCES: PerCpuArray<PackedSketch> = PerCpuArray::pinned(RULE_ENTRIES, 0);

/// The switch of `geofence monitor` (see `filter_common::monitor`): off unless a monitor
/// runs.
#[map]
pub static MONITOR: Array<filter_common::monitor::MonitorConfig> = Array::pinned(1, 0);

/// Per CPU: the monitor's sampling counter and record budget.
#[map]
pub static MONITOR_CPU: PerCpuArray<filter_common::monitor::MonitorCpu> = PerCpuArray::pinned(1, 0);
