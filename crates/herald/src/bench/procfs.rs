//! What Linux's `/proc` says about a process and the machine: resident memory, CPU time,
//! bytes written, idle and stolen CPU time. Each reading is `None` where there is no `/proc`.

use std::path::Path;
use std::time::Duration;

/// Bytes process `pid` has written to files so far (`write_bytes` of `/proc/PID/io`: counted
/// as the process dirties pages of the page cache, whether or not the disk has them yet, so a
/// page written again before the disk took it counts once); `None` where there is no `/proc`.
pub(super) fn disk_writes(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(Path::new("/proc").join(pid).join("io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Linux's clock tick for process times in `/proc` (USER_HZ, 100 on every architecture it
/// runs on).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// CPU time (user and system, all threads) of process `pid` (`"self"` for this one), from
/// `/proc/PID/stat`; `None` where there is no `/proc`.
pub(super) fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).ok()?;
    // Fields after the command name (which may hold spaces, so it is skipped to its ')'):
    // state is field 3, utime field 14 and stime field 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND))
}

/// Time all CPUs of the machine have spent idle (or waiting for I/O), and the time a virtual
/// machine's hypervisor gave them to others (steal), so far, from `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub(super) struct MachineTime {
    pub idle: Duration,
    pub stolen: Duration,
}

pub(super) fn machine_time() -> Option<MachineTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let time = |ticks: u64| Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND);
    Some(MachineTime {
        idle: time(fields.get(3)? + fields.get(4)?),
        // Older kernels have no steal column: nothing stolen.
        stolen: time(fields.get(7).copied().unwrap_or(0)),
    })
}

pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_writes_count_what_a_process_writes_to_a_file() {
        // Beside the sources rather than in the temporary directory, which may be in memory
        // (tmpfs writes reach no disk and are not counted).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let before = disk_writes("self").expect("/proc/self/io is readable");
        std::fs::write(dir.path().join("f"), vec![7u8; 1 << 20]).unwrap();
        let after = disk_writes("self").unwrap();
        // Other tests of this process may write too, so at least the megabyte.
        assert!(after - before >= 1 << 20, "{before} → {after}");
        assert_eq!(disk_writes("no-such-process"), None);
    }
}
