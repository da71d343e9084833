//! Frames run through the pinned maps' program with BPF_PROG_TEST_RUN, as a NIC would
//! hand them to it.

use std::net::{Ipv4Addr, SocketAddr};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use geofence::kernel::{self, Kernel};
use geofence_test_frames::Packet;

#[allow(dead_code, reason = "not every test file checks every action")]
pub const XDP_DROP: u32 = 1;
#[allow(dead_code, reason = "not every test file checks every action")]
pub const XDP_PASS: u32 = 2;

/// An Ethernet + IPv4 + UDP frame from port 50000 with `payload` bytes of 0xab: Don't
/// Fragment, identification 0 and no UDP checksum.
pub fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: usize) -> Vec<u8> {
    Packet::udp(
        SocketAddr::from((src, 50000)),
        SocketAddr::from((dst, dport)),
    )
    .dont_fragment()
    .identification(0)
    .no_udp_checksum()
    .payload(&vec![0xab; payload])
    .build()
    .bytes
}

/// The geofence program loaded against the maps pinned under a pin dir.
pub struct Program(Kernel);

impl Program {
    pub fn load(pin: &std::path::Path) -> Program {
        let mut kernel = Kernel::open(pin).expect("opening the maps");
        let prog: &mut Xdp = kernel
            .ebpf
            .program_mut(kernel::PROGRAM)
            .expect("the geofence program")
            .try_into()
            .expect("an XDP program");
        prog.load().expect("loading the XDP program");
        Program(kernel)
    }

    /// Runs `frame` once; the XDP action.
    pub fn run(&self, frame: &[u8]) -> u32 {
        let prog: &Xdp = self
            .0
            .ebpf
            .program(kernel::PROGRAM)
            .expect("the geofence program")
            .try_into()
            .expect("an XDP program");
        let run = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        });
        run.expect("BPF_PROG_TEST_RUN").return_value
    }

    /// Sends `per_source` frames of `payload` bytes from each of `sources` to UDP port
    /// `dport`, each of which must get `want`; returns the frame length.
    pub fn send(&self, sources: &[Ipv4Addr], dport: u16, per_source: usize, want: u32) -> u64 {
        let mut len = 0;
        for src in sources {
            let frame = udp_frame(*src, Ipv4Addr::new(10, 0, 0, 1), dport, 100);
            len = frame.len() as u64;
            for _ in 0..per_source {
                assert_eq!(self.run(&frame), want, "XDP action for a frame from {src}");
            }
        }
        len
    }
}

/// `n` distinct hosts of `a.b.c.0/24`, from host `first` up.
pub fn hosts(net: [u8; 3], first: u8, n: u8) -> Vec<Ipv4Addr> {
    (first..first + n)
        .map(|h| Ipv4Addr::new(net[0], net[1], net[2], h))
        .collect()
}

/// Within the sketch's tolerance: three standard errors of 13%, at least 2.
pub fn close(estimate: f64, truth: u64) -> bool {
    (estimate - truth as f64).abs() <= (0.39 * truth as f64).max(2.0)
}
