//! The server under attack, as a separate process: its memory is measured
//! from /proc, apart from the attackers' and the healthy clients'.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running conformance server.
pub struct ServerProcess {
    child: std::sync::Mutex<Child>,
    pub pid: u32,
    pub url: String,
}

impl ServerProcess {
    /// Starts `binary` on a free port with `args`, and waits for the line
    /// that names its address.
    ///
    /// glibc's allocator is told to give freed memory back (large blocks
    /// mapped apart, the heap trimmed), unless the environment says
    /// otherwise: by default it keeps what was freed for reuse, and RSS
    /// after an attack would show that rather than what the server holds.
    pub fn start(binary: &Path, args: &[String]) -> Result<ServerProcess, String> {
        let mut command = Command::new(binary);
        for (var, value) in [
            ("MALLOC_MMAP_THRESHOLD_", "65536"),
            ("MALLOC_TRIM_THRESHOLD_", "131072"),
        ] {
            if std::env::var_os(var).is_none() {
                command.env(var, value);
            }
        }
        let mut child = command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| "the server printed nothing".to_string())?;
        // "wslink conformance server on ws://127.0.0.1:PORT/ws"
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("ws://"))
            .ok_or_else(|| format!("unexpected first line: {first}"))?
            .to_owned();
        // Keep draining its stdout so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerProcess {
            pid: child.id(),
            child: std::sync::Mutex::new(child),
            url,
        })
    }

    /// Asks for a graceful shutdown (SIGTERM).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
    }

    /// Waits up to `limit` for the process to exit; its exit status.
    pub fn wait(&self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn alive(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    /// Open file descriptors (sockets included).
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `/proc/PID/status` field in bytes (`VmRSS`, `VmHWM`).
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Samples the server's resident memory every few milliseconds, keeping
/// the peak of the whole run and of the current window (one attack).
pub struct RssSampler {
    pub pid: u32,
    window_peak: AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

impl RssSampler {
    pub fn start(pid: u32) -> Arc<RssSampler> {
        let sampler = Arc::new(RssSampler {
            pid,
            window_peak: AtomicU64::new(0),
            stop: Default::default(),
        });
        let s = sampler.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                if let Some(rss) = status_bytes(s.pid, "VmRSS") {
                    s.window_peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        sampler
    }

    /// Resident memory now.
    pub fn now(&self) -> u64 {
        status_bytes(self.pid, "VmRSS").unwrap_or(0)
    }

    /// Starts a new window at the current RSS; returns it.
    pub fn reset_window(&self) -> u64 {
        let now = self.now();
        self.window_peak.store(now, Ordering::Relaxed);
        now
    }

    /// The highest RSS seen since the window started.
    pub fn window_peak(&self) -> u64 {
        self.window_peak
            .load(Ordering::Relaxed)
            .max(status_bytes(self.pid, "VmRSS").unwrap_or(0))
    }

    /// The kernel's record of the process's peak RSS.
    pub fn high_water_mark(&self) -> u64 {
        status_bytes(self.pid, "VmHWM").unwrap_or(0)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
