//! The monitor's switch in the pinned `MONITOR` map, and the reader of the records the
//! attached programs send through aya-log while it is on (see `filter_common::monitor`).

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{Array, MapData, PerCpuArray};
use aya_log::EbpfLogger;
use filter_common::{
    maps::names,
    monitor::{MonitorConfig, MonitorCpu, TARGET},
};

use super::Kernel;

/// Writes the switch.
pub fn set_monitor(kernel: &mut Kernel, config: &MonitorConfig) -> anyhow::Result<()> {
    let mut map: Array<_, MonitorConfig> = Array::try_from(kernel.map_mut(names::MONITOR)?)?;
    map.set(0, config, 0).context("writing map MONITOR")
}

/// The switch as pinned under `pin_dir`, read without loading the program object; `None`
/// when the maps predate the monitor or do not exist.
pub fn pinned_monitor(pin_dir: &Path) -> anyhow::Result<Option<MonitorConfig>> {
    let pin = pin_dir.join(names::MONITOR);
    if !pin.exists() {
        return Ok(None);
    }
    let data = MapData::from_pin(&pin).with_context(|| format!("opening {}", pin.display()))?;
    let map: Array<_, MonitorConfig> = Array::try_from(aya::maps::Map::Array(data))?;
    Ok(Some(map.get(&0, 0).context("reading map MONITOR")?))
}

/// The monitor's per-CPU counters, summed over the CPUs (the window fields are left 0).
pub fn monitor_counts(kernel: &Kernel) -> anyhow::Result<MonitorCpu> {
    let map: PerCpuArray<_, MonitorCpu> = PerCpuArray::try_from(kernel.map(names::MONITOR_CPU)?)?;
    let values = map.get(&0, 0).context("reading map MONITOR_CPU")?;
    Ok(values
        .iter()
        .fold(MonitorCpu::default(), |sum, cpu| MonitorCpu {
            matched: sum.matched + cpu.matched,
            sent: sum.sent + cpu.sent,
            over_budget: sum.over_budget + cpu.over_budget,
            ..sum
        }))
}

/// Keeps the text of the monitor's records, and nothing else the program may log.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<String>>>);

impl log::Log for Sink {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == TARGET
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target() == TARGET {
            let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
            records.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Reads the aya-log ring of each of the given programs.
pub struct Records {
    loggers: Vec<EbpfLogger<Sink>>,
    sink: Sink,
}

impl Records {
    /// Attaches to the log rings of the loaded programs `ids`.
    pub fn attach(ids: &[u32]) -> anyhow::Result<Records> {
        let sink = Sink::default();
        let loggers = ids
            .iter()
            .map(|&id| {
                EbpfLogger::init_from_id_with_logger(id, sink.clone())
                    .with_context(|| format!("reading the log ring of program {id}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Records { loggers, sink })
    }

    /// Waits up to `timeout` for records, and returns those that came, oldest first. A
    /// signal cuts the wait short.
    pub fn next(&mut self, timeout: Duration) -> anyhow::Result<Vec<String>> {
        let mut fds: Vec<libc::pollfd> = self
            .loggers
            .iter()
            .map(|l| libc::pollfd {
                fd: l.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a live array of `fds.len()` pollfd entries.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error).context("waiting for the log rings");
            }
        }
        for logger in &mut self.loggers {
            logger.flush();
        }
        let mut records = self.sink.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(std::mem::take(&mut *records))
    }
}
