//! The servers under test, each in its own process on loopback.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Target;

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `conformance-server` (our server running the conformance service).
    pub ours: PathBuf,
    /// `raw-ws-server`.
    pub raw: PathBuf,
    /// A python with Kitware's wslink 2.6.0.
    pub python: PathBuf,
    /// `tests/peers/python/conformance_server.py`.
    pub python_script: PathBuf,
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    log: PathBuf,
}

/// A process's memory, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    /// Resident now (VmRSS).
    pub rss_kib: u64,
    /// Peak resident (VmHWM).
    pub hwm_kib: u64,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Server {
    pub fn start(target: Target, paths: &Paths) -> Result<Server, String> {
        let port = free_port()?;
        let port_s = port.to_string();
        let host = ["--host", "127.0.0.1", "--port", &port_s];
        let (mut command, path) = match target {
            Target::Ours2 | Target::Ours1 => {
                let mut c = Command::new(&paths.ours);
                c.args(host);
                (c, "/ws")
            }
            Target::Python => {
                let mut c = Command::new(&paths.python);
                c.arg(&paths.python_script)
                    .args(host)
                    .args(["--timeout", "0"]);
                (c, "/ws")
            }
            Target::Raw => {
                let mut c = Command::new(&paths.raw);
                c.args(host);
                (c, "/")
            }
        };
        let log = std::env::temp_dir().join(format!("wslink-bench-{}-{port}.log", target.slug()));
        let file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            let exited = child.try_wait().map_err(|e| e.to_string())?;
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = text.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                return Err(format!(
                    "{} did not start ({}); log {}:\n{tail}",
                    target.label(),
                    match exited {
                        Some(status) => format!("exited with {status}"),
                        None => "not listening after 60 s".into(),
                    },
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server {
            child,
            url: format!("ws://127.0.0.1:{port}{path}"),
            log,
        })
    }

    pub fn mem(&self) -> Mem {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Mem {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// The server's process id (to point a profiler at).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
