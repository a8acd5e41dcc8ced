//! The table: medians per server, ratios ours/python and ours/raw, targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::Target;

#[derive(Debug, Clone)]
pub enum Cell {
    Value {
        median: f64,
        runs: usize,
        note: Option<String>,
    },
    NotApplicable,
    Failed(String),
}

/// What "met" means for a row, judged on ours 2.x.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    None,
    MinRatioRaw(f64),
    /// Lower-is-better rows: ours at most this many times raw.
    MaxRatioRaw(f64),
    /// Ours at most this value.
    MaxOurs(f64),
    /// Codec rows: at most this many copies of the payload (the value over
    /// the copy yardstick), for both generations.
    MaxCopies(f64),
}

pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub lower_is_better: bool,
    pub goal: String,
    pub check: Check,
    pub cells: BTreeMap<Target, Cell>,
    /// Codec rows: the time of one copy, to count copies by.
    pub yardstick: Option<f64>,
}

impl Row {
    pub fn new(
        scenario: &str,
        metric: &str,
        lower_is_better: bool,
        goal: &str,
        check: Check,
    ) -> Row {
        Row {
            scenario: scenario.to_owned(),
            metric: metric.to_owned(),
            lower_is_better,
            goal: goal.to_owned(),
            check,
            cells: BTreeMap::new(),
            yardstick: None,
        }
    }

    pub fn set(&mut self, target: Target, cell: Cell) {
        self.cells.insert(target, cell);
    }

    fn value(&self, target: Target) -> Option<f64> {
        match self.cells.get(&target) {
            Some(Cell::Value { median, .. }) => Some(*median),
            _ => None,
        }
    }

    fn ratio(&self, other: Target) -> Option<f64> {
        let ours = self.value(Target::Ours2)?;
        let theirs = self.value(other)?;
        (theirs > 0.0).then(|| ours / theirs)
    }

    fn verdict(&self) -> String {
        let yes =
            |ok: bool, what: String| format!("{} ({what})", if ok { "yes" } else { "**NO**" });
        match self.check {
            Check::None => String::new(),
            Check::MinRatioRaw(min) => match self.ratio(Target::Raw) {
                Some(r) => yes(r >= min, format!("{r:.2}× raw, needs {min}×")),
                None => "?".into(),
            },
            Check::MaxRatioRaw(max) => match self.ratio(Target::Raw) {
                Some(r) => yes(r <= max, format!("{r:.2}× raw, at most {max}×")),
                None => "?".into(),
            },
            Check::MaxOurs(max) => match self.value(Target::Ours2) {
                Some(v) => yes(v <= max, format!("{}, at most {max}", fmt(v))),
                None => "?".into(),
            },
            Check::MaxCopies(max) => {
                let Some(unit) = self.yardstick else {
                    return "?".into();
                };
                let copies: Vec<(Target, f64)> = [Target::Ours2, Target::Ours1]
                    .into_iter()
                    .filter_map(|t| self.value(t).map(|v| (t, v / unit)))
                    .collect();
                if copies.is_empty() {
                    return "?".into();
                }
                let ok = copies.iter().all(|(_, c)| *c <= max);
                let what = copies
                    .iter()
                    .map(|(t, c)| {
                        format!(
                            "{}: {c:.2} copies",
                            if *t == Target::Ours2 { "2.x" } else { "1.x" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                yes(ok, what)
            }
        }
    }
}

pub struct Report {
    pub targets: Vec<Target>,
    pub rows: Vec<Row>,
}

/// `12345.6` as `12,346`; small numbers keep some decimals.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

pub fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        thousands(v)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    pub fn new(targets: &[Target]) -> Report {
        Report {
            targets: targets.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn render(&self, header: &str) -> String {
        let mut notes: Vec<String> = Vec::new();
        let note = |text: &str, notes: &mut Vec<String>| -> String {
            let i = match notes.iter().position(|n| n == text) {
                Some(i) => i,
                None => {
                    notes.push(text.to_owned());
                    notes.len() - 1
                }
            };
            format!(" [{}]", i + 1)
        };
        let mut out = String::new();
        let _ = writeln!(out, "{header}\n");
        let mut head = "| scenario | metric |".to_string();
        for t in &self.targets {
            let _ = write!(head, " {} |", t.label());
        }
        head.push_str(" ours/python | ours/raw | target | met |");
        let _ = writeln!(out, "{head}");
        let cols = self.targets.len() + 6;
        let _ = writeln!(out, "|{}", " --- |".repeat(cols));
        for row in &self.rows {
            let arrow = if row.lower_is_better { " ↓" } else { "" };
            let _ = write!(out, "| {} | {}{arrow} |", row.scenario, row.metric);
            for t in &self.targets {
                let text = match row.cells.get(t) {
                    None => "".into(),
                    Some(Cell::NotApplicable) => "n/a".into(),
                    Some(Cell::Failed(e)) => {
                        let first = e.lines().next().unwrap_or("");
                        format!(
                            "failed{}",
                            note(&format!("{}: {first}", t.label()), &mut notes)
                        )
                    }
                    Some(Cell::Value {
                        median, note: n, ..
                    }) => {
                        let mut s = fmt(*median);
                        if let Some(n) = n {
                            s.push_str(&note(&format!("{}: {n}", t.label()), &mut notes));
                        }
                        s
                    }
                };
                let _ = write!(out, " {text} |");
            }
            let ratio = |t: Target| {
                if !self.targets.contains(&t) {
                    return String::new();
                }
                row.ratio(t).map_or(String::new(), |r| format!("{r:.2}×"))
            };
            let _ = writeln!(
                out,
                " {} | {} | {} | {} |",
                ratio(Target::Python),
                ratio(Target::Raw),
                row.goal,
                row.verdict()
            );
        }
        let runs: Vec<usize> = self
            .rows
            .iter()
            .flat_map(|r| r.cells.values())
            .filter_map(|c| match c {
                // Codec rows (criterion's own statistics) have runs = 0.
                Cell::Value { runs, .. } if *runs > 0 => Some(*runs),
                _ => None,
            })
            .collect();
        let _ = writeln!(
            out,
            "\nFigures are medians of {}–{} runs; MB = 10^6 bytes; ratios are ours 2.x over the \
             other server; ↓ marks rows where lower is better.",
            runs.iter().min().unwrap_or(&0),
            runs.iter().max().unwrap_or(&0)
        );
        for (i, n) in notes.iter().enumerate() {
            let _ = writeln!(out, "\n[{}] {n}", i + 1);
        }
        out
    }
}

/// Reads criterion's median for one benchmark, in nanoseconds.
fn criterion_median(dir: &Path, id: &str) -> Option<f64> {
    let path = dir.join("codec").join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("median")?.get("point_estimate")?.as_f64()
}

/// The codec micro-benchmarks (crates/wslink-core/benches/codec.rs), from
/// criterion's output: 2.x figures in the "ours 2.x" column, 1.x in "ours 1.x".
pub fn codec_rows(report: &mut Report, dir: &Path) {
    let get = |id: &str| criterion_median(dir, id);
    let Some(copy_1) = get("copy_1MiB") else {
        crate::progress(format!(
            "no criterion results under {} (run `cargo bench -p wslink-core --bench codec`)",
            dir.display()
        ));
        return;
    };
    let us = |ns: f64| ns / 1e3;
    let one = |metric: &str, v2: &str, v1: Option<&str>, unit: f64, check: Check, goal: &str| {
        let mut row = Row::new("codec (criterion)", metric, true, goal, check);
        if let Some(v) = get(v2) {
            row.set(Target::Ours2, cell(v / unit));
        }
        if let Some(v) = v1.and_then(get) {
            row.set(Target::Ours1, cell(v / unit));
        }
        row
    };
    let mut rows = vec![
        one(
            "copy 1 MiB into a new buffer (yardstick): µs",
            "copy_1MiB",
            None,
            1e3,
            Check::None,
            "",
        ),
        one(
            "encode envelope with 1 MiB binary: µs",
            "v2_encode_1MiB_binary",
            Some("v1_encode_1MiB_binary"),
            1e3,
            Check::MaxCopies(2.0),
            "≤ 2 copies of the payload",
        ),
        one(
            "encode envelope with 1 MiB binary, zero-copy (what the server does): µs",
            "v2_encode_segmented_1MiB_binary",
            None,
            1e3,
            Check::MaxCopies(2.0),
            "≤ 2 copies of the payload",
        ),
        one(
            "decode envelope with 1 MiB binary: µs",
            "v2_decode_1MiB_binary",
            Some("v1_decode_1MiB_binary"),
            1e3,
            Check::MaxCopies(2.0),
            "≤ 2 copies of the payload",
        ),
        one(
            "encode small call: ns",
            "v2_encode_small_call",
            Some("v1_encode_small_call"),
            1.0,
            Check::None,
            "",
        ),
        one(
            "decode small call: ns",
            "v2_decode_small_call",
            Some("v1_decode_small_call"),
            1.0,
            Check::None,
            "",
        ),
    ];
    for row in &mut rows[1..4] {
        row.yardstick = Some(us(copy_1));
    }
    let copy_64 = get("copy_64MiB");
    let mut unchunk = one(
        "un-chunk a 64 MiB message (16 frames): ms",
        "v2_unchunk_64MiB",
        None,
        1e6,
        Check::MaxCopies(2.0),
        "≤ 2 copies",
    );
    unchunk.yardstick = copy_64.map(|ns| ns / 1e6);
    rows.push(unchunk);
    let mut encode64 = one(
        "encode a 64 MiB message, chunked to 4 MiB: ms",
        "v2_encode_64MiB_chunked",
        None,
        1e6,
        Check::None,
        "",
    );
    encode64.yardstick = copy_64.map(|ns| ns / 1e6);
    rows.push(encode64);
    let mut encode64_shared = one(
        "encode a 64 MiB message, chunked to 4 MiB, zero-copy: ms",
        "v2_encode_segmented_64MiB_chunked",
        None,
        1e6,
        Check::None,
        "",
    );
    encode64_shared.yardstick = copy_64.map(|ns| ns / 1e6);
    rows.push(encode64_shared);
    if let Some(c) = copy_64 {
        rows.push({
            let mut r = Row::new(
                "codec (criterion)",
                "copy 64 MiB into a new buffer (yardstick): ms",
                true,
                "",
                Check::None,
            );
            r.set(Target::Ours2, cell(c / 1e6));
            r
        });
    }
    report.rows.extend(rows);
}

fn cell(v: f64) -> Cell {
    Cell::Value {
        median: v,
        runs: 0,
        note: None,
    }
}
