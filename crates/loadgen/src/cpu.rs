//! CPU time of processes, from `/proc/PID/stat` (Linux): how many cores the node and the
//! generator used during the timed phase.

use std::time::Duration;

/// Clock ticks per second of `/proc` times; 100 on every mainstream Linux configuration.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of process `pid` (`self` for this one), or `None` off Linux.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command name, which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / TICKS_PER_SECOND))
}

/// CPU-time readings of the node (when its pid is known) and this process.
#[derive(Debug, Clone, Copy)]
pub struct CpuReading {
    pub node: Option<Duration>,
    pub generator: Option<Duration>,
}

impl CpuReading {
    pub fn now(node_pid: Option<u32>) -> CpuReading {
        CpuReading {
            node: node_pid.and_then(|p| cpu_time(&p.to_string())),
            generator: cpu_time("self"),
        }
    }

    /// Cores used between `self` and `later` over `wall`: (node, generator).
    pub fn cores_until(&self, later: &CpuReading, wall: Duration) -> (Option<f64>, Option<f64>) {
        let cores = |a: Option<Duration>, b: Option<Duration>| {
            let (a, b) = (a?, b?);
            (wall > Duration::ZERO).then(|| b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64())
        };
        (cores(self.node, later.node), cores(self.generator, later.generator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(cpu_time("self").is_some());
        }
    }
}
