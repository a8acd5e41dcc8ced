//! `wslink-bench`: runs every benchmark scenario against our server (2.x
//! and 1.x), Kitware's Python wslink 2.6.0 server and a raw tokio-tungstenite
//! server, each started in its own process on loopback, and prints one
//! markdown table of medians with the ratios and targets. `benches/run.sh`
//! builds everything and runs it; see BENCHMARKS.md.
//!
//! ```text
//! wslink-bench [--quick] [--runs N] [--only rpc,publish,fanout,large,idle,codec]
//!              [--targets ours2,ours1,python,raw] [--idle 1000,10000]
//!              [--offer-deflate] [--default-malloc] [--rpc-secs S] [--markdown FILE] [--criterion DIR]
//! ```

mod load;
mod procs;
mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use wslink_client::Generation;

use procs::{Paths, Server};
use report::{Cell, Check, Report, Row};

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Ours2,
    Ours1,
    Python,
    Raw,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::Ours2, Target::Ours1, Target::Python, Target::Raw];

    pub fn label(self) -> &'static str {
        match self {
            Target::Ours2 => "ours 2.x",
            Target::Ours1 => "ours 1.x",
            Target::Python => "python 2.6.0",
            Target::Raw => "raw ws",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Target::Ours2 => "ours2",
            Target::Ours1 => "ours1",
            Target::Python => "python",
            Target::Raw => "raw",
        }
    }

    /// The wslink generation its clients speak; `None` for raw WebSocket.
    fn generation(self) -> Option<Generation> {
        match self {
            Target::Ours2 | Target::Python => Some(Generation::V2),
            Target::Ours1 => Some(Generation::V1),
            Target::Raw => None,
        }
    }
}

struct Opts {
    quick: bool,
    runs: usize,
    rpc_time: Duration,
    /// MiB delivered (in total, over all subscribers) per publish run.
    publish_mib: u64,
    large_calls: usize,
    idle: Vec<usize>,
    /// Idle clients offer permessage-deflate in their upgrade.
    offer_deflate: bool,
    /// Leave glibc's malloc as it is (see `keep_freed_memory`).
    default_malloc: bool,
    only: Vec<String>,
    targets: Vec<Target>,
    markdown: Option<PathBuf>,
    criterion: PathBuf,
    paths: Paths,
}

const MIB: usize = 1 << 20;
const SMALL: usize = 64;

fn usage() -> ! {
    eprintln!(
        "usage: wslink-bench [--quick] [--runs N] [--only rpc,publish,fanout,large,idle,codec]\n\
         \x20                   [--targets ours2,ours1,python,raw] [--idle 1000,10000]\n\
         \x20                   [--offer-deflate] [--default-malloc] [--rpc-secs S] [--markdown FILE] [--criterion DIR]\n\
         Paths: WSLINK_BENCH_OURS, WSLINK_BENCH_RAW, WSLINK_PY2 override where the\n\
         servers are found (default: next to this program; target/peers/py2)."
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| root.join("target/release"));
    let from_env =
        |var: &str, default: PathBuf| std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    let mut opts = Opts {
        quick: false,
        runs: 5,
        rpc_time: Duration::from_secs(2),
        publish_mib: 1024,
        large_calls: 3,
        idle: vec![1000, 10_000],
        offer_deflate: false,
        default_malloc: false,
        only: Vec::new(),
        targets: Target::ALL.to_vec(),
        markdown: None,
        criterion: root.join("target/criterion"),
        paths: Paths {
            ours: from_env("WSLINK_BENCH_OURS", exe_dir.join("conformance-server")),
            raw: from_env("WSLINK_BENCH_RAW", exe_dir.join("raw-ws-server")),
            python: from_env("WSLINK_PY2", root.join("target/peers/py2/bin/python")),
            python_script: root.join("tests/peers/python/conformance_server.py"),
        },
    };
    let mut runs = None;
    let mut rpc_time = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--quick" => opts.quick = true,
            "--runs" => runs = Some(value().parse().unwrap_or_else(|_| usage())),
            "--only" => opts.only = value().split(',').map(str::to_owned).collect(),
            "--targets" => {
                opts.targets = value()
                    .split(',')
                    .map(|s| {
                        Target::ALL
                            .into_iter()
                            .find(|t| t.slug() == s)
                            .unwrap_or_else(|| usage())
                    })
                    .collect()
            }
            "--idle" => {
                opts.idle = value()
                    .split(',')
                    .map(|s| s.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--offer-deflate" => opts.offer_deflate = true,
            "--default-malloc" => opts.default_malloc = true,
            "--rpc-secs" => {
                rpc_time = Some(Duration::from_secs_f64(
                    value().parse().unwrap_or_else(|_| usage()),
                ))
            }
            "--markdown" => opts.markdown = Some(PathBuf::from(value())),
            "--criterion" => opts.criterion = PathBuf::from(value()),
            _ => usage(),
        }
    }
    if opts.quick {
        opts.runs = 1;
        opts.rpc_time = Duration::from_millis(300);
        opts.publish_mib = 64;
        opts.large_calls = 1;
        opts.idle = vec![200, 1000];
    }
    if let Some(runs) = runs {
        opts.runs = runs;
    }
    if let Some(t) = rpc_time {
        opts.rpc_time = t;
    }
    opts.runs = opts.runs.max(1);
    opts
}

fn selected(opts: &Opts, scenario: &str) -> bool {
    opts.only.is_empty() || opts.only.iter().any(|s| s == scenario)
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("wslink-bench: {}", msg.as_ref());
}

/// Keeps glibc's malloc from handing freed megabytes back to the kernel in
/// this process (the load generator; servers run as processes of their
/// own and are not affected). Every 1 MiB frame the client receives is a
/// fresh buffer, as it must be since the message's binary is a slice of it,
/// and with glibc's default, dynamic thresholds those buffers were mapped
/// and zeroed page by page again and again once earlier scenarios had left
/// the heap fragmented: publishing measured after the RPC scenarios ran at
/// 0.40–0.58× raw, alone at 1.0× (BENCHMARKS.md, "The load generator's
/// allocator"). A raw tokio-tungstenite client drops each frame before the
/// next arrives and reuses one buffer, so it never met this.
/// `--default-malloc` skips it, for the A/B.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before any other thread of this process exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
        progress("the load generator's malloc keeps freed memory (mmap threshold 32 MiB, trim threshold 256 MiB); --default-malloc to turn off");
    }
}

fn main() {
    let opts = parse_args();
    if !opts.default_malloc {
        keep_freed_memory();
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // The load generator's worker threads (default: one per core).
    if let Some(n) = std::env::var("WSLINK_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        runtime.worker_threads(n);
    }
    let runtime = runtime.enable_all().build().expect("tokio runtime");
    let mut report = Report::new(&opts.targets);
    runtime.block_on(async {
        if selected(&opts, "rpc") {
            rpc(&opts, &mut report).await;
        }
        if selected(&opts, "publish") {
            publish(&opts, &mut report, 1).await;
        }
        if selected(&opts, "fanout") {
            publish(&opts, &mut report, 8).await;
            publish(&opts, &mut report, 64).await;
        }
        if selected(&opts, "large") {
            large(&opts, &mut report).await;
        }
        if selected(&opts, "idle") {
            for &n in &opts.idle {
                idle(&opts, &mut report, n).await;
            }
        }
    });
    if selected(&opts, "codec") {
        report::codec_rows(&mut report, &opts.criterion);
    }
    let text = report.render(&header(&opts));
    println!("{text}");
    if let Some(path) = &opts.markdown {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

fn header(opts: &Opts) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: {cores} cores, {cpu}, Linux {}. Mode: {}, {} run(s) per figure (median shown); \
         clients and server share the machine. Load generator's malloc: {}.",
        kernel.trim(),
        if opts.quick { "quick" } else { "full" },
        opts.runs,
        if opts.default_malloc {
            "glibc's defaults"
        } else {
            "keeps freed memory (see BENCHMARKS.md)"
        }
    )
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Runs `body` against a fresh server of `target`; its series of values
/// (one per metric, one value per run) become cells, or every cell gets the
/// error.
async fn against<F, Fut>(opts: &Opts, target: Target, metrics: usize, body: F) -> Vec<Cell>
where
    F: FnOnce(Server) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Series>, String>>,
{
    let server = match Server::start(target, &opts.paths) {
        Ok(s) => s,
        Err(e) => return vec![Cell::Failed(e); metrics],
    };
    progress(format!(
        "  {} runs as pid {} at {}",
        target.label(),
        server.pid(),
        server.url
    ));
    match body(server).await {
        Ok(series) => series.into_iter().map(Series::cell).collect(),
        Err(e) => vec![Cell::Failed(e); metrics],
    }
}

/// One metric's values over the runs, and a note.
#[derive(Default)]
struct Series {
    values: Vec<f64>,
    note: Option<String>,
    not_applicable: bool,
}

impl Series {
    fn of(values: Vec<f64>) -> Self {
        Series {
            values,
            ..Series::default()
        }
    }

    fn cell(self) -> Cell {
        if self.not_applicable {
            return Cell::NotApplicable;
        }
        match median(&self.values) {
            Some(m) => Cell::Value {
                median: m,
                runs: self.values.len(),
                note: self.note,
            },
            None => Cell::Failed(self.note.unwrap_or_else(|| "no value".into())),
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ------------------------------------------------------------------ scenarios

async fn rpc(opts: &Opts, report: &mut Report) {
    let mut rows = [
        Row::new(
            "small RPC",
            "1 call at a time: calls/s",
            false,
            "python ≈ 8,500/s · raw ≈ 27,000/s (64 B ping-pong) · ours ≥ 0.7× raw",
            Check::MinRatioRaw(0.7),
        ),
        Row::new(
            "small RPC",
            "32 in flight, 1 connection: calls/s",
            false,
            "python ≈ 15,000/s · raw ≈ 180,000/s · ours ≥ 0.5× raw",
            Check::MinRatioRaw(0.5),
        ),
        Row::new(
            "small RPC",
            "64 connections, 1 call at a time each: calls/s",
            false,
            "ours ≥ raw",
            Check::MinRatioRaw(1.0),
        ),
    ];
    let d = opts.rpc_time;
    let warm = Duration::from_millis(200);
    for &target in &opts.targets {
        progress(format!("small RPC against {}", target.label()));
        let runs = opts.runs;
        let cells = against(opts, target, 3, |server| async move {
            let mut series = [Vec::new(), Vec::new(), Vec::new()];
            match target.generation() {
                Some(g) => {
                    let one = [load::connect(&server.url, g).await?];
                    let many = load::connect_many(&server.url, g, 64).await?;
                    load::rpc_rate(&one, 1, warm).await?;
                    load::rpc_rate(&one, 32, warm).await?;
                    load::rpc_rate(&many, 1, warm).await?;
                    for _ in 0..runs {
                        series[0].push(load::rpc_rate(&one, 1, d).await?);
                        series[1].push(load::rpc_rate(&one, 32, d).await?);
                        series[2].push(load::rpc_rate(&many, 1, d).await?);
                    }
                }
                None => {
                    let mut one = vec![load::raw_connect(&server.url).await?];
                    let mut many = load::raw_connect_many(&server.url, 64).await?;
                    (_, one) = load::raw_rate(one, 1, SMALL, warm).await?;
                    (_, one) = load::raw_rate(one, 32, SMALL, warm).await?;
                    (_, many) = load::raw_rate(many, 1, SMALL, warm).await?;
                    for _ in 0..runs {
                        let (rate, back) = load::raw_rate(one, 1, SMALL, d).await?;
                        series[0].push(rate);
                        let (rate, back) = load::raw_rate(back, 32, SMALL, d).await?;
                        series[1].push(rate);
                        one = back;
                        let (rate, back) = load::raw_rate(many, 1, SMALL, d).await?;
                        series[2].push(rate);
                        many = back;
                    }
                }
            }
            drop(server);
            Ok(series.into_iter().map(Series::of).collect())
        })
        .await;
        for (row, cell) in rows.iter_mut().zip(cells) {
            row.set(target, cell);
        }
    }
    report.rows.extend(rows);
}

async fn publish(opts: &Opts, report: &mut Report, subscribers: usize) {
    let size = MIB;
    let frames = (opts.publish_mib / subscribers as u64).max(4);
    let timeout = Duration::from_secs(if opts.quick { 60 } else { 180 });
    let mut rows = if subscribers == 1 {
        vec![
            Row::new(
                "publish 1 MiB frames, 1 subscriber",
                "MB/s",
                false,
                "python ≈ 330 MB/s · raw ≈ 5,000 MB/s · ours ≥ 0.8× raw",
                Check::MinRatioRaw(0.8),
            ),
            Row::new(
                "publish 1 MiB frames, 1 subscriber",
                "frames/s",
                false,
                "ours ≥ 0.8× raw",
                Check::MinRatioRaw(0.8),
            ),
        ]
    } else {
        let scenario = format!("fan-out 1 MiB frames to {subscribers}");
        let rss_goal = if subscribers == 64 {
            ("ours ≤ 64 MiB above idle", Check::MaxOurs(64.0))
        } else {
            ("(no target)", Check::None)
        };
        let throughput_goal = if subscribers == 64 {
            ("ours ≥ 0.95× raw", Check::MinRatioRaw(0.95))
        } else {
            ("(no target)", Check::None)
        };
        vec![
            Row::new(
                &scenario,
                "delivered MB/s (total)",
                false,
                throughput_goal.0,
                throughput_goal.1,
            ),
            Row::new(
                &scenario,
                "server peak RSS above idle: MiB",
                true,
                rss_goal.0,
                rss_goal.1,
            ),
            Row::new(&scenario, "server idle RSS: MiB", true, "", Check::None),
        ]
    };
    let metrics = rows.len();
    for &target in &opts.targets {
        progress(format!(
            "publish to {subscribers} subscriber(s) against {} ({frames} frames of 1 MiB per run)",
            target.label()
        ));
        let runs = opts.runs;
        let cells = against(opts, target, metrics, |server| async move {
            let mut times = Vec::new();
            let idle;
            match target.generation() {
                Some(g) => {
                    let clients = load::connect_many(&server.url, g, subscribers).await?;
                    // Idle: subscribers connected, nothing published yet.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    idle = server.mem();
                    load::publish(&clients, 0, 2, size, timeout).await?;
                    for run in 1..=runs {
                        times.push(load::publish(&clients, run, frames, size, timeout).await?);
                    }
                }
                None => {
                    let mut conns = load::raw_connect_many(&server.url, subscribers).await?;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    idle = server.mem();
                    (_, conns) = load::raw_publish(conns, 2, size, timeout).await?;
                    for _ in 0..runs {
                        let (t, back) = load::raw_publish(conns, frames, size, timeout).await?;
                        times.push(t);
                        conns = back;
                    }
                }
            }
            let peak = server.mem();
            let delivered = (frames * subscribers as u64) as f64;
            let mbps: Vec<f64> = times
                .iter()
                .map(|t| delivered * size as f64 / t.as_secs_f64() / 1e6)
                .collect();
            let fps: Vec<f64> = times.iter().map(|t| delivered / t.as_secs_f64()).collect();
            Ok(if subscribers == 1 {
                vec![Series::of(mbps), Series::of(fps)]
            } else {
                vec![
                    Series::of(mbps),
                    Series::of(vec![mib(peak.hwm_kib.saturating_sub(idle.rss_kib))]),
                    Series::of(vec![mib(idle.rss_kib)]),
                ]
            })
        })
        .await;
        for (row, cell) in rows.iter_mut().zip(cells) {
            row.set(target, cell);
        }
    }
    report.rows.extend(rows);
}

async fn large(opts: &Opts, report: &mut Report) {
    let size = 64 * MIB;
    let mut row = Row::new(
        "large message",
        "64 MiB RPC result (chunked to 4 MiB): latency ms",
        true,
        "ours ≤ 1.1× raw (raw: one 64 MiB frame)",
        Check::MaxRatioRaw(1.1),
    );
    for &target in &opts.targets {
        if target == Target::Ours1 {
            row.set(target, Cell::NotApplicable);
            continue;
        }
        progress(format!("64 MiB result against {}", target.label()));
        let calls = opts.runs * opts.large_calls;
        let mut cells = against(opts, target, 1, |server| async move {
            let mut ms = Vec::new();
            match target.generation() {
                Some(g) => {
                    let c = load::connect(&server.url, g).await?;
                    load::blob(&c, size).await?;
                    for _ in 0..calls {
                        ms.push(load::blob(&c, size).await?.as_secs_f64() * 1e3);
                    }
                }
                None => {
                    let mut ws = load::raw_connect(&server.url).await?;
                    load::raw_blob(&mut ws, size).await?;
                    for _ in 0..calls {
                        ms.push(load::raw_blob(&mut ws, size).await?.as_secs_f64() * 1e3);
                    }
                }
            }
            Ok(vec![Series::of(ms)])
        })
        .await;
        row.set(target, cells.remove(0));
    }
    report.rows.push(row);
}

async fn idle(opts: &Opts, report: &mut Report, n: usize) {
    let deflate = opts.offer_deflate;
    let scenario = format!(
        "{} idle connections{}",
        report::thousands(n as f64),
        if deflate { " (deflate offered)" } else { "" }
    );
    let mut rows = vec![
        Row::new(
            &scenario,
            "server RSS above start: MiB",
            true,
            "",
            Check::None,
        ),
        Row::new(
            &scenario,
            "per connection: KiB",
            true,
            if n >= 10_000 {
                "ours ≤ 8 KiB each"
            } else {
                "ours ≤ 32 KiB each"
            },
            Check::MaxOurs(if n >= 10_000 { 8.0 } else { 32.0 }),
        ),
    ];
    let limit = Duration::from_secs(if opts.quick { 60 } else { 240 });
    for &target in &opts.targets {
        progress(format!("{n} idle connections against {}", target.label()));
        let cells = against(opts, target, 2, |server| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let base = server.mem();
            let started = std::time::Instant::now();
            let (reached, error, holder): (usize, Option<String>, Box<dyn std::any::Any + Send>) =
                match target.generation() {
                    Some(g) if deflate => {
                        let (conns, e) = load::idle_deflate(&server.url, g, n, limit).await;
                        (conns.len(), e, Box::new(conns))
                    }
                    Some(g) => {
                        let (clients, e) = load::idle_wslink(&server.url, g, n, limit).await;
                        (clients.len(), e, Box::new(clients))
                    }
                    None => {
                        let (conns, e) = load::idle_raw(&server.url, n, limit).await;
                        (conns.len(), e, Box::new(conns))
                    }
                };
            let took = started.elapsed();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = server.mem();
            // The server goes first, so that the clients' side does not
            // wait out closing handshakes.
            drop(server);
            drop(holder);
            if reached == 0 {
                return Err(error.unwrap_or_else(|| "no connection".into()));
            }
            let above = now.rss_kib.saturating_sub(base.rss_kib);
            let note = (reached < n).then(|| {
                format!(
                    "reached {} of {} connections in {:.0} s: {}",
                    report::thousands(reached as f64),
                    report::thousands(n as f64),
                    took.as_secs_f64(),
                    error.as_deref().unwrap_or("?")
                )
            });
            Ok(vec![
                Series {
                    values: vec![mib(above)],
                    note: note.clone(),
                    not_applicable: false,
                },
                Series {
                    values: vec![above as f64 / reached as f64],
                    note,
                    not_applicable: false,
                },
            ])
        })
        .await;
        for (row, cell) in rows.iter_mut().zip(cells) {
            row.set(target, cell);
        }
    }
    report.rows.extend(rows);
}
