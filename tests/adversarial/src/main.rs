//! The adversarial suite: hostile input, faults and load against a live
//! wslink server process, with healthy clients (one per wire generation)
//! calling and receiving publishes beside every attacker.
//!
//! ```text
//! wslink-adversarial [--server PATH] [--rounds N] [--only SUBSTRING]... [--list]
//! ```
//!
//! The server is the conformance server (`--server`, by default the
//! `conformance-server` binary next to this one), started as its own
//! process so that its memory is measured apart from ours: resident memory
//! is sampled from `/proc/PID/status` every 5 ms. The server's glibc is
//! told to return freed memory to the system (`MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`, unless set already), so that RSS after an
//! attack shows what the server still holds, not what the allocator keeps.
//!
//! For each attack the suite checks three things: the server answered or
//! closed the attacker with a clear reason (an error reply, or a close
//! code with text), the healthy clients got every reply and publish they
//! were owed during it, and the server's memory grew by less than the
//! attack's stated bound. It prints one line per attack, then
//!
//! ```text
//! adversarial: N attacks, M failed; peak server RSS X MiB (bound Y MiB); healthy-client replies lost: 0 (...)
//! ```
//!
//! and exits non-zero if anything failed. The server runs with the default
//! limits, except a 2 s hello deadline and 256 connections (so that the
//! deadline and connection-limit attacks finish quickly). With `--rounds N`
//! every attack runs N times against the same server, and the server's RSS
//! after the last round may exceed its RSS after the first by at most
//! 16 MiB: memory that stays behind once is the allocator's, memory that
//! grows with every round is a leak. The last attack shuts the server down
//! under load.

mod attacks;
mod healthy;
mod raw;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attacks::Ctx;
use server::{mib, RssSampler, ServerProcess};

/// The whole run's peak server RSS must stay under this.
const PEAK_BOUND_MIB: f64 = 256.0;
const HELLO_DEADLINE: Duration = Duration::from_secs(2);
const MAX_CONNECTIONS: usize = 256;
/// The server's `max_pending_connections` and `http_header_timeout`, low
/// enough for the silent-socket attack to reach them quickly.
const MAX_PENDING_CONNECTIONS: usize = 128;
const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(3);
const SHUTDOWN: &str = "shutdown.under-load";
/// RSS the server may gain from the first round's end to the last's.
const ROUND_GROWTH_BOUND_MIB: f64 = 16.0;

struct Args {
    server: PathBuf,
    only: Vec<String>,
    list: bool,
    rounds: usize,
}

fn args() -> Result<Args, String> {
    let mut server = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("conformance-server");
    let mut only = Vec::new();
    let mut list = false;
    let mut rounds = 1;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--server" => server = it.next().ok_or("--server needs a path")?.into(),
            "--only" => only.push(it.next().ok_or("--only needs a substring")?),
            "--list" => list = true,
            "--rounds" => {
                rounds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--rounds needs a positive number")?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        server,
        only,
        list,
        rounds,
    })
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wslink-adversarial: {e}");
            return ExitCode::from(2);
        }
    };
    let selected = |name: &str| args.only.is_empty() || args.only.iter().any(|o| name.contains(o));
    if args.list {
        for a in attacks::ALL {
            println!("{}", a.name);
        }
        println!("{SHUTDOWN}");
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let ok = runtime.block_on(run(&args, &selected));
    // Attack tasks left behind (sockets to a server that is gone) end here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(args: &Args, selected: &dyn Fn(&str) -> bool) -> bool {
    let started = Instant::now();
    let server_args = vec![
        "--limit".to_string(),
        format!("hello_deadline={}", HELLO_DEADLINE.as_secs_f64()),
        "--limit".to_string(),
        format!("max_connections={MAX_CONNECTIONS}"),
        "--limit".to_string(),
        format!("max_pending_connections={MAX_PENDING_CONNECTIONS}"),
        "--limit".to_string(),
        format!("http_header_timeout={}", HTTP_HEADER_TIMEOUT.as_secs_f64()),
        "--shutdown-grace".to_string(),
        "5".to_string(),
    ];
    let server = match ServerProcess::start(&args.server, &server_args) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("adversarial: {e}");
            return false;
        }
    };
    let rss = RssSampler::start(server.pid);
    println!(
        "adversarial: server {} (pid {}) at {}: default limits except hello_deadline = {} s, max_connections = {MAX_CONNECTIONS}, max_pending_connections = {MAX_PENDING_CONNECTIONS}, http_header_timeout = {} s; shutdown grace 5 s",
        args.server.display(),
        server.pid,
        server.url,
        HELLO_DEADLINE.as_secs_f64(),
        HTTP_HEADER_TIMEOUT.as_secs_f64(),
    );
    let healthy = match healthy::Healthy::start(&server.url).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("adversarial: {e}");
            return false;
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_rss = rss.now();
    println!(
        "adversarial: server RSS at start {:.1} MiB; healthy clients (2.x and 1.x) calling every 20 ms",
        mib(start_rss)
    );
    let ctx = Ctx {
        url: server.url.clone(),
        server: server.clone(),
        rss: rss.clone(),
        hello_deadline: HELLO_DEADLINE,
        max_connections: MAX_CONNECTIONS,
        max_pending_connections: MAX_PENDING_CONNECTIONS,
        http_header_timeout: HTTP_HEADER_TIMEOUT,
    };
    let stats = healthy.stats.clone();
    let mut tried = 0;
    let mut failed = Vec::new();
    let mut round_ends = Vec::new();
    for round in 1..=args.rounds {
        if args.rounds > 1 {
            println!("adversarial: round {round} of {}", args.rounds);
        }
        for attack in attacks::ALL.iter().filter(|a| selected(a.name)) {
            tried += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = stats.snapshot();
            stats.take_max_latency_ms();
            let base = rss.reset_window();
            let t = Instant::now();
            let outcome = match tokio::time::timeout(
                attack.time_limit,
                attacks::run(attack.name, &ctx),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {:?}", attack.time_limit)),
            };
            let took = t.elapsed();
            // The healthy clients must still be answered after the attack.
            let calls_at_end = stats.snapshot().calls;
            let deadline = Instant::now() + Duration::from_secs(20);
            while stats.snapshot().calls < calls_at_end + 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let growth = mib(rss.window_peak().saturating_sub(base));
            let left = mib(rss.now().saturating_sub(base));
            let during = stats.snapshot().since(&before);
            let worst = stats.take_max_latency_ms();
            let mut problems = Vec::new();
            let text = match outcome {
                Ok(text) => text,
                Err(e) => {
                    problems.push("the server's answer was wrong".to_string());
                    e
                }
            };
            if growth > attack.growth_bound_mib {
                problems.push(format!(
                    "server memory grew {growth:.1} MiB, over the bound of {} MiB",
                    attack.growth_bound_mib
                ));
            }
            if !during.clean() {
                problems.push(format!(
                    "healthy clients lost {} replies and {} publishes, saw {} intrusions: {:?}",
                    during.calls_lost,
                    during.publishes_lost,
                    during.intrusions,
                    stats.problems.lock().unwrap()
                ));
            }
            if during.calls < 2 {
                problems.push("the healthy clients made no progress".into());
            }
            if !server.alive() {
                problems.push("the server process died".into());
            }
            println!(
            "{} {}: {text} | server +{growth:.1} MiB at peak (bound {}), +{left:.1} MiB after | healthy {} calls ok, slowest {worst:.0} ms | {:.1} s",
            if problems.is_empty() { "ok  " } else { "FAIL" },
            attack.name,
            attack.growth_bound_mib,
            during.calls - during.calls_lost,
            took.as_secs_f64()
        );
            for p in &problems {
                println!("     {p}");
            }
            if !problems.is_empty() {
                failed.push(attack.name);
            }
            if !server.alive() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        round_ends.push(rss.now());
        if !server.alive() {
            break;
        }
    }
    let end_rss = rss.now();
    if let (Some(&first), Some(&last), true) =
        (round_ends.first(), round_ends.last(), round_ends.len() > 1)
    {
        let grew = mib(last.saturating_sub(first));
        let mark = if grew > ROUND_GROWTH_BOUND_MIB {
            failed.push("growth across rounds");
            "FAIL"
        } else {
            "ok  "
        };
        println!(
            "{mark} server RSS after each round: {} MiB; growth from the first round to the last {grew:.1} MiB (bound {ROUND_GROWTH_BOUND_MIB} MiB)",
            round_ends.iter().map(|r| format!("{:.1}", mib(*r))).collect::<Vec<_>>().join(", ")
        );
    }
    healthy.stop().await;
    let totals = stats.snapshot();
    let mut peak = rss.high_water_mark().max(rss.window_peak());
    if selected(SHUTDOWN) && server.alive() {
        tried += 1;
        rss.reset_window();
        let t = Instant::now();
        let outcome =
            tokio::time::timeout(Duration::from_secs(60), attacks::shutdown_under_load(&ctx))
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
        let took = t.elapsed();
        let (mark, text) = match outcome {
            Ok(text) => ("ok  ", text),
            Err(e) => {
                failed.push(SHUTDOWN);
                ("FAIL", e)
            }
        };
        peak = peak.max(rss.window_peak());
        println!("{mark} {SHUTDOWN}: {text} | {:.1} s", took.as_secs_f64());
    }
    rss.stop();
    let peak_mib = mib(peak);
    if peak_mib > PEAK_BOUND_MIB {
        println!(
            "FAIL peak server RSS {peak_mib:.1} MiB is over the bound of {PEAK_BOUND_MIB} MiB"
        );
        failed.push("peak RSS");
    }
    if totals.calls_lost > 0 || totals.publishes_lost > 0 {
        for p in stats.problems.lock().unwrap().iter() {
            println!("     {p}");
        }
    }
    println!(
        "adversarial: server RSS {:.1} MiB at start, {:.1} MiB after the last attack; {} healthy calls, {} publishes",
        mib(start_rss),
        mib(end_rss),
        totals.calls,
        totals.publishes
    );
    println!(
        "adversarial: {tried} attacks{}, {} failed; peak server RSS {peak_mib:.1} MiB (bound {PEAK_BOUND_MIB} MiB); healthy-client replies lost: {} (of {} calls), publishes lost: {} (of {}); {:.0} s",
        if args.rounds > 1 {
            format!(" ({} rounds)", args.rounds)
        } else {
            String::new()
        },
        failed.len(),
        totals.calls_lost,
        totals.calls,
        totals.publishes_lost,
        totals.publishes,
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("adversarial: failed: {}", failed.join(", "));
    }
    failed.is_empty()
}
