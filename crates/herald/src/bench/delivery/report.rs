//! How `bench delivery` sums up what it measured: percentiles, the rounds of the engine's
//! drain and their median, disk writes, and where the machine's CPU went during a run.

use std::time::{Duration, Instant};

use crate::bench::procfs::{cpu_time, machine_time, MachineTime};
use crate::bench::server::ServerProcess;

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// One round of the engine's drain: its rate and the raw POST rate around it.
#[derive(Clone, Copy)]
pub(super) struct Round {
    pub(super) engine: f64,
    pub(super) raw: f64,
}

impl Round {
    pub(super) fn ratio(&self) -> f64 {
        self.engine / self.raw
    }

    /// The round whose ratio is the median (the lower middle one of an even count).
    pub(super) fn median(rounds: &[Round]) -> Round {
        let mut sorted = rounds.to_vec();
        sorted.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        sorted[(sorted.len() - 1) / 2]
    }
}

/// What the `herald serve` processes have written to files so far, all together.
pub(super) fn servers_disk_writes(servers: &[ServerProcess]) -> Option<u64> {
    servers.iter().map(ServerProcess::disk_writes).sum()
}

/// "disk: herald wrote … KiB per <what>", from the processes' writes before and after `n`
/// of them (the page cache's view: see [`crate::bench::procfs::disk_writes`]).
pub(super) fn print_disk_writes(before_after: Option<(u64, u64)>, n: usize, what: &str) {
    if let Some((before, after)) = before_after {
        outln!(
            "  disk: herald wrote {:.1} KiB per {what} (database and write-ahead log)",
            after.saturating_sub(before) as f64 / 1024.0 / n.max(1) as f64
        );
    }
}

pub(super) fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Where the machine's CPU went during a run (the engine's drain, from the restart until the
/// last delivery arrived, or a raw POST run): the costs the ratio to raw POSTs is made of.
pub(super) struct CpuUse {
    /// The sending processes: all `herald serve` processes, including their start (a few tens
    /// of milliseconds), or the raw POST process.
    sender: Option<Duration>,
    /// This process: the receiver, and the loop waiting for it to hold every delivery.
    receiver: Option<Duration>,
    /// All cores: idle or waiting for I/O, and stolen by the hypervisor (a virtual machine's
    /// cores running someone else's work: the rates of such a run are lower for it).
    machine: Option<MachineTime>,
    wall: Duration,
    /// Deliveries or POSTs.
    requests: usize,
}

/// This process's CPU time, the machine's idle time and the time, at the start of a run.
pub(super) struct CpuMark {
    own: Option<Duration>,
    machine: Option<MachineTime>,
    at: Instant,
}

impl CpuMark {
    pub(super) fn now() -> Self {
        Self {
            own: cpu_time("self"),
            machine: machine_time(),
            at: Instant::now(),
        }
    }
}

impl CpuUse {
    /// The run since `mark`, in which the senders took `sender` for `requests`.
    pub(super) fn since(mark: &CpuMark, sender: Option<Duration>, requests: usize) -> Self {
        Self {
            sender,
            receiver: cpu_time("self")
                .zip(mark.own)
                .map(|(a, b)| a.saturating_sub(b)),
            machine: machine_time().zip(mark.machine).map(|(a, b)| MachineTime {
                idle: a.idle.saturating_sub(b.idle),
                stolen: a.stolen.saturating_sub(b.stolen),
            }),
            wall: mark.at.elapsed(),
            requests,
        }
    }

    /// "CPU <what>: <sender> … µs per request (… cores); receiver …; machine idle …%, stolen …%".
    pub(super) fn describe(&self, what: &str, sender: &str) -> String {
        let per = |d: Option<Duration>| match d {
            Some(d) => format!(
                "{:.1} µs per request ({:.2} cores)",
                d.as_secs_f64() * 1e6 / self.requests.max(1) as f64,
                d.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
            ),
            None => "unknown".into(),
        };
        let share = |d: Duration| {
            format!(
                "{:.0}%",
                100.0 * d.as_secs_f64() / (self.wall.as_secs_f64() * num_cpus() as f64).max(1e-9)
            )
        };
        let machine = match self.machine {
            Some(m) => format!("idle {}, stolen {}", share(m.idle), share(m.stolen)),
            None => "unknown".into(),
        };
        format!(
            "CPU {what}: {sender} {}; receiver (this process) {}; machine {machine}",
            per(self.sender),
            per(self.receiver)
        )
    }
}
