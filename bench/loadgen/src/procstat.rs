//! What the benchmark reads about processes from `/proc`: CPU time (user +
//! system, all threads, in clock ticks) and resident memory. The server's
//! own numbers come from here, never from the server, so every server is
//! measured the same way.
use std::io;

/// CPU time a process has used so far, in seconds (utime + stime of
/// `/proc/<pid>/stat`; threads that already exited are included).
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/<pid>/stat"))?;
    Ok(ticks as f64 / clock_ticks_per_second() as f64)
}

/// CPU time of this process (the load generator itself), in seconds.
pub fn own_cpu_seconds() -> io::Result<f64> {
    cpu_seconds(std::process::id())
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3 of the line, utime 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Resident memory of a process in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/<pid>/status"))
}

/// The most resident memory a process has had in bytes (`VmHWM`).
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&status, "VmHWM:")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmHWM in /proc/<pid>/status"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmRSS:")
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Raises this process's open-file limit to its hard limit (thousands of
/// sockets need it) and returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// Time the process's threads have spent runnable but waiting for a CPU,
/// in seconds (second field of `/proc/<pid>/task/*/schedstat`). On a
/// shared machine this says how much other work got in the server's way.
pub fn cpu_wait_seconds(pid: u32) -> io::Result<f64> {
    let mut waited_ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between listing and reading: skip it.
        if let Ok(stat) = std::fs::read_to_string(path) {
            waited_ns += stat.split_whitespace().nth(1).and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Ok(waited_ns as f64 / 1e9)
}

/// A reading of the server's and this process's CPU time, to subtract
/// from a later one.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    server: Option<f64>,
    server_wait: Option<f64>,
    own: f64,
    at: std::time::Instant,
}

/// What happened between two [`CpuMark`]s, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct CpuSpent {
    pub server: Option<f64>,
    /// Server threads runnable but not running (other work on its core).
    pub server_wait: Option<f64>,
    pub own: f64,
    pub wall: f64,
}

impl CpuMark {
    pub fn now(server_pid: Option<u32>) -> Self {
        CpuMark {
            server: server_pid.and_then(|pid| cpu_seconds(pid).ok()),
            server_wait: server_pid.and_then(|pid| cpu_wait_seconds(pid).ok()),
            own: own_cpu_seconds().unwrap_or(0.0),
            at: std::time::Instant::now(),
        }
    }

    pub fn since(&self, earlier: &CpuMark) -> CpuSpent {
        let diff = |now: Option<f64>, then: Option<f64>| Some(now? - then?);
        CpuSpent {
            server: diff(self.server, earlier.server),
            server_wait: diff(self.server_wait, earlier.server_wait).map(|w| w.max(0.0)),
            own: self.own - earlier.own,
            wall: (self.at - earlier.at).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tserver\nVmPeak:\t 9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(2 * 1024 * 1024));
    }

    #[test]
    fn this_process_can_be_measured() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(own_cpu_seconds().unwrap() >= 0.0);
        assert!(cpu_wait_seconds(std::process::id()).unwrap() >= 0.0);
    }
}
