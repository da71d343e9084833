//! Frames run through the pinned maps' program with BPF_PROG_TEST_RUN, as a NIC would
//! hand them to it.

use std::net::Ipv4Addr;

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use geofence::kernel::{self, Kernel};

#[allow(dead_code, reason = "not every test file checks every action")]
pub const XDP_DROP: u32 = 1;
#[allow(dead_code, reason = "not every test file checks every action")]
pub const XDP_PASS: u32 = 2;

/// An Ethernet + IPv4 + UDP frame with `payload` bytes.
pub fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = u16::try_from(20 + 8 + payload).expect("small");
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(0xab, payload));
    f
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
