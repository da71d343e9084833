//! The mux path in the differential: the scenario's ufrags registered in the kernel and
//! the model alike, run-time bindings cleared between scenarios, the idle time set, and
//! the paths a run must have reached.

use std::collections::BTreeMap;
use std::time::Duration;

use filter_common::mux::{MuxEvent, UfragBinding, origin};
use geofence::kernel::{Kernel, bindings};
use geofence::model::{MuxState, SessionKey, SessionLookup, Trace};
use geofence::ufrag::Ufrag;
use geofence_tests::r#gen::Scenario;
use geofence_tests::gen_stun::TAGS;

/// The idle time of learned bindings while frames are compared: far longer than a run, so
/// that the kernel's clock and the model's, read a batch apart, never disagree on it.
pub const LONG_IDLE: Duration = Duration::from_secs(3600);
/// The idle time of the phase that lets a binding go idle.
pub const SHORT_IDLE: Duration = Duration::from_millis(400);

/// Empties the kernel's run-time bindings (ufrags, learned and API flows), registers the
/// scenario's ufrags, sets the idle time, and returns the model's matching state.
pub fn reset(kernel: &mut Kernel, scenario: &Scenario, idle: Duration) -> MuxState {
    let registered: Vec<Ufrag> = bindings::read_ufrags(kernel)
        .expect("reading ufrags")
        .iter()
        .filter_map(|(key, _)| {
            let len = key
                .bytes
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(key.bytes.len());
            std::str::from_utf8(&key.bytes[..len]).ok()?.parse().ok()
        })
        .collect();
    bindings::unbind_ufrags(kernel, &registered).expect("unregistering ufrags");
    let runtime: Vec<_> = bindings::read_flows(kernel)
        .expect("reading flows")
        .into_iter()
        .filter(|(_, b)| b.origin != origin::POLICY)
        .map(|(k, _)| k)
        .collect();
    bindings::unbind_flows(kernel, &runtime).expect("removing run-time flows");
    let ufrags: Vec<(Ufrag, u32)> = (scenario.ufrags.iter())
        .map(|(text, session)| (text.parse().expect("a generated ufrag"), *session))
        .collect();
    bindings::bind_ufrags(kernel, &ufrags, &|s| format!("session {s}")).expect("registering");
    set_idle(kernel, idle);
    let mut mux = MuxState {
        learned_idle_ns: idle.as_nanos() as u64,
        ..MuxState::default()
    };
    for (ufrag, session) in &ufrags {
        let binding = UfragBinding {
            session: *session,
            id: ufrag.id(),
        };
        mux.ufrags.insert(ufrag.key(), binding);
    }
    mux
}

pub fn set_idle(kernel: &mut Kernel, idle: Duration) {
    bindings::set_learned_idle(kernel, idle).expect("setting the idle time");
}

/// What the run reached on the mux path, beyond the counters it compares.
#[derive(Default)]
pub struct Coverage {
    /// Frames per generator tag.
    pub tags: BTreeMap<&'static str, u64>,
    /// Packets whose meeting a flow learned by an earlier request found.
    pub media_of_learned_flows: u64,
    /// Binding requests whose flow was learned but whose meeting is gone.
    pub learned_for_no_meeting: u64,
    /// Packets unbound after their binding went idle.
    pub idle_unbound: u64,
}

impl Coverage {
    pub fn add(&mut self, what: &str, trace: &Trace) {
        for tag in TAGS {
            if what.contains(tag) {
                *self.tags.entry(tag).or_default() += 1;
            }
        }
        let request = trace.stun.is_some_and(|s| s.learning.is_some());
        if let Some(SessionLookup::Found {
            key: SessionKey::LearnedFlow,
            ..
        }) = trace.session
            && !request
        {
            self.media_of_learned_flows += 1;
        }
        if request && trace.session.and_then(|s| s.session()).is_none() {
            self.learned_for_no_meeting += 1;
        }
    }

    /// Fails naming the first path the run did not reach.
    pub fn assert_reached(&self, events: &[u64]) {
        for tag in TAGS {
            assert!(
                self.tags.get(tag).copied().unwrap_or(0) > 0,
                "no STUN frame was generated for {tag}: the generator no longer covers it"
            );
        }
        for event in MuxEvent::ALL {
            assert!(
                events[event as usize] > 0,
                "no frame moved the mux counter {}: that path went uncompared",
                event.name()
            );
        }
        assert!(
            self.media_of_learned_flows > 0,
            "no media of a learned flow"
        );
        assert!(
            self.learned_for_no_meeting > 0,
            "no request for a gone meeting"
        );
        assert!(self.idle_unbound > 0, "no binding went idle");
    }
}
