//! Starting a session's process and watching its output.
//!
//! A process runs from an argument list, never through a shell, in a
//! process group of its own (so that stopping a session reaches the
//! children it started too), with stdin closed and stdout and stderr piped
//! into the session's log file. Its output is also scanned for the ready
//! line, across reads, in bounded memory.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Starts `argv` with `env` added to the launcher's environment, in a new
/// process group whose id is the child's pid.
pub(crate) fn spawn(argv: &[String], env: &BTreeMap<String, String>) -> io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    command.spawn()
}

/// Sends `signal` to every process of the group `pgid`; a group that no
/// longer exists is no error.
pub(crate) fn signal_group(pgid: u32, signal: i32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal; it reads and writes no memory.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Copies `reader` into the log file (when there is one) until it ends,
/// calling `on_ready` once when `ready_line` has gone by.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    log: Option<&Path>,
    ready_line: Option<&str>,
    mut on_ready: impl FnMut(),
) {
    let mut file = match log {
        Some(path) => tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .ok(),
        None => None,
    };
    let needle = ready_line.map(str::as_bytes).filter(|n| !n.is_empty());
    let mut seen = needle.is_none();
    // The tail of the output that could still be the start of the ready
    // line: never longer than the line plus one read.
    let mut window: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(f) = file.as_mut() {
            // Flushed at once: the log holds the ready line by the time the
            // client hears the session is ready.
            if f.write_all(&buf[..n]).await.is_err() || f.flush().await.is_err() {
                file = None;
            }
        }
        if let (false, Some(needle)) = (seen, needle) {
            window.extend_from_slice(&buf[..n]);
            if window.windows(needle.len()).any(|w| w == needle) {
                seen = true;
                window = Vec::new();
                on_ready();
            } else {
                let keep = needle.len().saturating_sub(1).min(window.len());
                window.drain(..window.len() - keep);
            }
        }
    }
    if let Some(mut f) = file {
        let _ = f.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_ready_line_is_found_across_reads() {
        let (mut tx, rx) = tokio::io::duplex(4);
        let writer = tokio::spawn(async move {
            for part in ["noise\nwslink ser", "ver on ws://x\n", "more"] {
                tx.write_all(part.as_bytes()).await.unwrap();
            }
        });
        let mut hits = 0;
        pump(rx, None, Some("server on ws://"), || hits += 1).await;
        writer.await.unwrap();
        assert_eq!(hits, 1);
    }

    #[tokio::test]
    async fn a_line_split_by_a_newline_is_not_the_ready_line() {
        let data: &[u8] = b"server on\n ws://";
        let mut hits = 0;
        pump(data, None, Some("server on ws://"), || hits += 1).await;
        assert_eq!(hits, 0);
    }
}
