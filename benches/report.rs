//! The benchmark report: reads the figures every bench run wrote (`benches/support/record.rs`,
//! one JSON file per bench per run, and the chaos campaign's summaries) and writes
//! `benchmarks.md` with the pictures beside it in `bench/`.
//!
//! Every figure is shown as the minimum, median and maximum over the runs; a ratio is taken
//! within each run (the figure over its baseline measured in that same run) and then
//! summarised the same way, so a ratio never divides figures from different runs. The
//! median of an even count is the mean of the middle two.
//!
//! Run through `scripts/bench-report`, which runs the benches first; by hand:
//! `cargo bench --bench report -- --runs target/bench/runs --out docs --mode full`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use serde_json::Value;

/// One figure across runs.
#[derive(Default)]
struct Series {
    label: String,
    unit: String,
    better: String,
    target: Option<String>,
    group: Option<String>,
    note: Option<String>,
    baseline: Option<String>,
    values: Vec<f64>,
    ratios: Vec<f64>,
}

/// One bench across runs: its figures in first-seen order, its parameters, its samples.
#[derive(Default)]
struct Bench {
    runs: usize,
    params: BTreeMap<String, Value>,
    order: Vec<String>,
    series: BTreeMap<String, Series>,
    /// Sample key → (label, unit, every run's samples pooled).
    samples: BTreeMap<String, (String, String, Vec<f64>)>,
}

struct Args {
    runs: PathBuf,
    out: PathBuf,
    mode: String,
    commit: String,
    seconds: Option<u64>,
    readme: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let mut runs = PathBuf::from("target/bench/runs");
    let mut out = PathBuf::from("docs");
    let (mut mode, mut commit, mut seconds, mut readme) = ("full".to_string(), String::new(), None, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => runs = it.next().context("--runs DIR")?.into(),
            "--out" => out = it.next().context("--out DIR")?.into(),
            "--mode" => mode = it.next().context("--mode full|short")?,
            "--commit" => commit = it.next().context("--commit REV")?,
            "--readme" => readme = Some(it.next().context("--readme FILE")?.into()),
            "--seconds" => seconds = Some(it.next().context("--seconds N")?.parse().context("--seconds N")?),
            // cargo bench passes --bench to every harness-less bench.
            "--bench" => {}
            other => bail!("unknown argument {other:?} (--runs DIR --out DIR --mode full|short --commit REV --seconds N --readme FILE)"),
        }
    }
    Ok(Args { runs, out, mode, commit, seconds, readme })
}

/// The figures of one run file; a chaos summary becomes figures here.
fn figures_of(doc: &Value) -> Result<(String, Vec<Value>, Value, Value)> {
    if let Some(bench) = doc.get("bench").and_then(Value::as_str) {
        return Ok((bench.to_string(), doc["figures"].as_array().cloned().unwrap_or_default(), doc["params"].clone(), doc["samples"].clone()));
    }
    if doc.get("seed").is_some() && doc.get("checks").is_some() {
        let n = |k: &str| doc.get(k).and_then(Value::as_f64);
        let mut figures = Vec::new();
        let mut push = |key: &str, label: &str, unit: &str, value: Option<f64>, better: &str| {
            if let Some(value) = value {
                figures.push(serde_json::json!({ "key": key, "label": label, "unit": unit, "value": value, "better": better }));
            }
        };
        push("activations_clean", "activations/s, clean phase (same traffic, no faults)", "activations/s", n("activations_per_sec_clean"), "higher");
        push(
            "activations_faulted",
            "activations/s while 20 % of RPC calls fail, with kills and reorgs (paced by the traffic)",
            "activations/s",
            n("activations_per_sec_under_faults"),
            "higher",
        );
        push("kill_recovery_median", "SIGKILL → serving again, median", "ms", n("kill_recovery_ms_median"), "lower");
        push("kill_recovery_max", "SIGKILL → serving again, max", "ms", n("kill_recovery_ms_max"), "lower");
        push("takeover_max", "leader killed → another instance takes over, max", "ms", n("takeover_ms_max"), "lower");
        push("settle", "traffic stopped → everything settled", "s", n("settle_secs"), "lower");
        push("checks_failed", "checks failed", "checks", n("failed"), "lower");
        // The faulted rate set beside the clean phase of the same run, when it had one.
        if n("activations_per_sec_clean").is_some()
            && let Some(faulted) = figures.iter_mut().find(|f| f["key"] == "activations_faulted")
        {
            faulted["baseline"] = "activations_clean".into();
        }
        let params = serde_json::json!({ "mode": doc["mode"], "instances": doc["instances"], "fault_percent": doc["fault_percent"] });
        return Ok(("chaos".into(), figures, params, Value::Null));
    }
    bail!("neither a bench record nor a chaos summary")
}

fn load(dir: &Path) -> Result<BTreeMap<String, Bench>> {
    let mut benches: BTreeMap<String, Bench> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let doc: Value = serde_json::from_slice(&std::fs::read(&file)?).with_context(|| format!("parsing {}", file.display()))?;
        let (name, figures, params, samples) = figures_of(&doc).with_context(|| file.display().to_string())?;
        let bench = benches.entry(name).or_default();
        bench.runs += 1;
        if let Some(params) = params.as_object() {
            bench.params.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let value_of = |key: &str| figures.iter().find(|f| f["key"] == key).and_then(|f| f["value"].as_f64());
        for f in &figures {
            let key = f["key"].as_str().context("a figure without a key")?.to_string();
            let value = f["value"].as_f64().context("a figure without a value")?;
            if !bench.series.contains_key(&key) {
                bench.order.push(key.clone());
            }
            let text = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
            let series = bench.series.entry(key).or_default();
            series.label = text("label").unwrap_or_default();
            series.unit = text("unit").unwrap_or_default();
            series.better = text("better").unwrap_or_else(|| "higher".into());
            series.target = text("target");
            series.group = text("group");
            series.note = text("note");
            series.baseline = text("baseline");
            series.values.push(value);
            if let Some(base) = series.baseline.as_deref().and_then(value_of).filter(|b| *b != 0.0) {
                series.ratios.push(value / base);
            }
        }
        if let Some(samples) = samples.as_object() {
            for (key, s) in samples {
                let entry = bench
                    .samples
                    .entry(key.clone())
                    .or_insert_with(|| (s["label"].as_str().unwrap_or_default().to_string(), s["unit"].as_str().unwrap_or_default().to_string(), Vec::new()));
                entry.2.extend(s["values"].as_array().into_iter().flatten().filter_map(Value::as_f64));
            }
        }
    }
    Ok(benches)
}

/// (min, median, max); the median of an even count is the mean of the middle two.
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] };
    Some((v[0], median, v[v.len() - 1]))
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A number as a person reads it: thousands separated, decimals only where they matter.
fn num(v: f64) -> String {
    let decimals = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{v:.decimals$}");
    let (int, frac) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn ratio(v: f64) -> String {
    format!("{v:.3}×")
}

/// A target the report can check: "≥ 0.35× …", "≤ 1.50×", "≤ 20 ms", "≤ 30000 gas" as
/// (at least?, bound, bound on the ratio?); `None` for a direction written in words.
fn parse_target(target: &str) -> Option<(bool, f64, bool)> {
    let t = target.trim();
    let (ge, rest) = if let Some(r) = t.strip_prefix('≥') {
        (true, r)
    } else if let Some(r) = t.strip_prefix('≤') {
        (false, r)
    } else {
        return None;
    };
    let rest = rest.trim();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')).unwrap_or(rest.len());
    let bound: f64 = rest[..end].replace(',', "").parse().ok()?;
    Some((ge, bound, rest[end..].trim_start().starts_with('×')))
}

/// Whether the median meets `target`; `None` when the text is a direction the report
/// cannot check.
fn met(target: &str, value: f64, ratio: Option<f64>) -> Option<bool> {
    let (ge, bound, on_ratio) = parse_target(target)?;
    let measured = if on_ratio { ratio? } else { value };
    Some(if ge { measured >= bound } else { measured <= bound })
}

struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
    kernel: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
    }
}

/// What each bench measures and against what, for the report's section heads.
fn about(bench: &str) -> (&'static str, &'static str) {
    match bench {
        "gas" => (
            "Gas",
            "Each operation on a fresh anvil beside a baseline measured on the same chain state in the same run (snapshots restore it). Lower is better; the ratio is ours over the baseline.",
        ),
        "watcher" => (
            "Watcher: backfill and live activation",
            "Backfill: every `OrderPaid` log from the deployment block read, confirmed and activated (an order, a payment, an activation, a badge job and the webhook events per payment), beside the same range fetched with `eth_getLogs` and decoded with nothing stored. The peer, ponder 0.16.10 (npm; the newest that runs on Node 20; `tools/ponder`), indexes the same logs from the same anvil in the same run into PGlite (its default store) and PostgreSQL. Its figure is (start → every event stored) less (start → ready over a range with no events), both measured in the run, so its start-up (build, migrations, server) is left out; both times are shown. What each stores per event: ponder one `order_paid` row with the log's fields and one row of its reorg journal (`_reorg__order_paid`), its RPC cache off (`disableCache`, the lighter setting: with it on it also keeps the raw logs, blocks and transactions); ours an order update, a payment (detected, then confirmed), the subscription and its activation, a badge job and the webhook events, each committed N blocks deep with the watcher's cursor. Live: anvil mines the block that makes a payment N deep; the clock runs until the activation is committed, the watcher following heads over a websocket.",
        ),
        "watcher-faults" => (
            "Watcher: a backlog under RPC faults",
            "A backlog already on the chain, backfilled twice in the same run through the chaos campaign's fault proxy: first with no faults, then with 20 % of calls dropped, answered 503, truncated or delayed, through the service's own transport (retry layer, one node per pass).",
        ),
        "minter" => (
            "Minter",
            "Queued badge jobs, anvil mining a block a second, the minter following heads; blocks until every job is confirmed beside the least possible (the block gas limit's worth of badges per block, then the confirmations), and gas per badge beside one badge alone.",
        ),
        "api" => (
            "API",
            "wrk against the service's router served in the bench's process (rate limit off), each route beside the hello-world route of the same binary in the same run; the checkout latency histogram comes from an open-loop client at half the maximum rate, each request timed from its scheduled start.",
        ),
        "webhooks" => (
            "Webhooks out",
            "Events fanned out to 3 local endpoints: a burst, beside raw POSTs with no database and no signing; then events written at a steady rate while the worker runs, timed from the commit to the receiver's acknowledgement.",
        ),
        "growth" => (
            "Growth: members already in the database",
            "The same operations with 10,000, 100,000 and 1,000,000 members (1,000,000 in full mode only) seeded through the service's own paths (`benches/growth.rs` says how: each member a checkout, a confirmed payment and its activation, a year of reminders, every event fanned out and delivered, about 20 rows per member). The reminder pass is timed five times 30 s apart (the configured interval: little or nothing due, so what every pass costs) and five times one hour apart (its notices are its work, which grows with members); medians. A pass 30 s after the last reads only the plans whose end crossed a window's edge since and the plans written since (the README's \"Reminders and expiry\"); a pass an hour after the last full look is a full look, every live plan in the windows against its notice. Reads draw a member at random from all of them. Each figure at a larger size is also given against the same figure at the smallest size of the run.",
        ),
        "chaos" => (
            "Chaos campaign (short)",
            "The real binary under kills, reorgs, a faulty RPC and a dead receiver (`tests/chaos`); its figures, from `target/chaos/summary-short.json`. The release build the benches use (`scripts/test` runs the same campaign on the debug build). A clean phase (the same traffic, no fault, kill or reorg) runs first, and the faulted phase's activation rate is set beside it; both are paced by the campaign's own traffic (a fixed number of checkouts in flight), so the ratio is how much the faults slow a member's purchase, not the service's capacity under faults (that is the watcher's backlog, above).",
        ),
        _ => ("Other", ""),
    }
}

const ORDER: [&str; 8] = ["gas", "watcher", "watcher-faults", "minter", "api", "webhooks", "growth", "chaos"];

/// The figures that carry a target, one line each: what the README shows.
fn summary(benches: &BTreeMap<String, Bench>, link: Option<&str>) -> String {
    let mut md = String::from("| figure | median (min–max) | ratio to its baseline, median (min–max) | target |\n|---|---:|---:|---|\n");
    for name in ORDER {
        let Some(bench) = benches.get(name) else { continue };
        for key in &bench.order {
            let s = &bench.series[key];
            let (Some(target), Some((lo, mid, hi))) = (s.target.as_deref(), spread(&s.values)) else { continue };
            let ratios = spread(&s.ratios);
            let mark = match met(target, mid, ratios.map(|r| r.1)) {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "—",
            };
            let group = match (name, s.group.as_deref()) {
                ("api" | "webhooks", Some(g)) if !s.label.contains(g) => format!(" ({g})"),
                _ => String::new(),
            };
            let ratio_text = ratios.map_or(String::new(), |(a, b, c)| format!("{} ({}–{})", ratio(b), ratio(a), ratio(c)));
            let _ = writeln!(md, "| {}{group} | {} {} ({}–{}) | {ratio_text} | {target} {mark} |", s.label, num(mid), s.unit, num(lo), num(hi));
        }
    }
    // Beside the peers: Unlock's lock (gas) and ponder (indexing), with our figure each is
    // read against.
    let mut peers = String::new();
    for name in ["gas", "watcher"] {
        let Some(bench) = benches.get(name) else { continue };
        for key in &bench.order {
            let s = &bench.series[key];
            let baseline = s.baseline.as_ref().and_then(|b| bench.series.get(b));
            let unlock = name == "gas" && baseline.is_some_and(|b| b.label.starts_with("Unlock"));
            let indexing = name == "watcher" && (key.starts_with("backfill.ponder_") || key == "backfill.postgres") && s.unit == "payments/s";
            if !(unlock || indexing) {
                continue;
            }
            let (Some((lo, mid, hi)), Some((a, b, c))) = (spread(&s.values), spread(&s.ratios)) else { continue };
            let against = baseline.map_or(String::new(), |b| b.label.clone());
            let _ =
                writeln!(peers, "| {} | {} {} ({}–{}) | {against} | {} ({}–{}) |", s.label, num(mid), s.unit, num(lo), num(hi), ratio(b), ratio(a), ratio(c));
        }
    }
    if !peers.is_empty() {
        let _ = writeln!(
            md,
            "\nBeside the peers (same run, same anvil):\n\n| figure | median (min–max) | read against | ratio, median (min–max) |\n|---|---:|---|---:|\n{peers}"
        );
    }
    if let Some(link) = link {
        let _ = writeln!(md, "\nEvery figure, its spread and the pictures: [{link}]({link}).");
    }
    md
}

/// Replaces what lies between the README's report markers with `table`.
fn update_readme(path: &Path, table: &str) -> Result<()> {
    const BEGIN: &str = "<!-- bench-report:begin -->";
    const END: &str = "<!-- bench-report:end -->";
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else { bail!("{} has no {BEGIN} … {END} markers", path.display()) };
    let updated = format!("{}{BEGIN}\n{table}{}", &text[..start], &text[end..]);
    std::fs::write(path, updated)?;
    Ok(())
}

fn render(args: &Args, benches: &BTreeMap<String, Bench>, pictures: &[(String, String)]) -> String {
    let m = machine();
    let runs = benches.values().map(|b| b.runs).min().unwrap_or(0);
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench-report{}` — do not edit by hand; run it again. Mode **{}**, {} run{} of every bench, interleaved (each round runs every bench once){}{}.\n",
        if args.mode == "short" { " --short" } else { "" },
        args.mode,
        runs,
        if runs == 1 { "" } else { "s" },
        if args.commit.is_empty() { String::new() } else { format!(", commit `{}`", args.commit) },
        args.seconds.map(|s| format!(", {} min in all", (s + 30) / 60)).unwrap_or_default(),
    );
    let _ = writeln!(md, "Machine: {} ({} cores), {:.0} GiB, Linux {}; PostgreSQL on 127.0.0.1 on the same machine.\n", m.cpu, m.cores, m.memory_gib, m.kernel);
    let _ = writeln!(
        md,
        "Every figure is min / median / max over the runs. A ratio is the figure over its baseline *in the same run*, then summarised over the runs the same way. \"Target\" is the direction the issues give; ✓ or ✗ says whether the median meets it, — where it is a direction the report cannot check.\n"
    );
    let _ = writeln!(md, "## The figures with a target\n\n{}", summary(benches, None));
    if !pictures.is_empty() {
        let _ = writeln!(md, "## Pictures\n");
        for (title, file) in pictures {
            let _ = writeln!(md, "**{title}**\n\n![{title}]({file})\n");
        }
    }
    for name in ORDER.iter().copied().chain(benches.keys().map(String::as_str).filter(|k| !ORDER.contains(k))) {
        let Some(bench) = benches.get(name) else { continue };
        let (title, text) = about(name);
        let _ = writeln!(md, "## {title}\n\n{text}\n");
        if !bench.params.is_empty() {
            let params: Vec<String> = bench.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let _ = writeln!(md, "{} run{}; {}.\n", bench.runs, if bench.runs == 1 { "" } else { "s" }, params.join(", "));
        }
        let _ = writeln!(md, "| figure | unit | min | median | max | baseline (same run) | ratio: min / median / max | target |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|---|---|---|");
        let mut group: Option<&str> = None;
        for key in &bench.order {
            let s = &bench.series[key];
            if s.group.as_deref() != group && name != "gas" {
                group = s.group.as_deref();
                if let Some(g) = group {
                    let _ = writeln!(md, "| *{g}* | | | | | | | |");
                }
            }
            let Some((lo, mid, hi)) = spread(&s.values) else { continue };
            let ratios = spread(&s.ratios);
            let baseline_label = s.baseline.as_ref().and_then(|b| bench.series.get(b)).map(|b| b.label.clone()).unwrap_or_default();
            let ratio_text = ratios.map_or(String::new(), |(a, b, c)| format!("{} / **{}** / {}", ratio(a), ratio(b), ratio(c)));
            let target = s.target.as_deref().map_or(String::new(), |t| {
                let mark = match met(t, mid, ratios.map(|r| r.1)) {
                    Some(true) => " ✓",
                    Some(false) => " ✗",
                    None => " —",
                };
                format!("{t}{mark}")
            });
            let better = if s.better == "lower" { " ↓" } else { "" };
            let _ = writeln!(
                md,
                "| {}{} | {} | {} | **{}** | {} | {} | {} | {} |",
                s.label,
                better,
                s.unit,
                num(lo),
                num(mid),
                num(hi),
                baseline_label,
                ratio_text,
                target
            );
            if let Some(note) = &s.note {
                let _ = writeln!(md, "| ↳ {note} | | | | | | | |");
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "↓ marks figures where lower is better.\n");
    // The analysis of the figures below their direction: written by hand beside the
    // profiles `scripts/bench-profile` makes, carried into every report.
    if let Ok(text) = std::fs::read_to_string(WHERE_THE_TIME_GOES) {
        // Its links are relative to docs/bench/, where it lives.
        let text = text.replace("](profiles", "](bench/profiles");
        let _ = writeln!(md, "## Where the time goes\n\n{}", text.trim_end());
    }
    md
}

/// The hand-written analysis the report carries (see [`render`]).
const WHERE_THE_TIME_GOES: &str = "docs/bench/where-the-time-goes.md";

/// The latency histogram of one or more sample sets, share of requests per bin, with each
/// set's p50, p95 and p99 drawn as lines.
fn histogram(path: &Path, title: &str, unit: &str, of: &str, sets: &[(&str, &[f64])]) -> Result<()> {
    let colours = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
    let mut all: Vec<f64> = sets.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    if all.is_empty() {
        bail!("no samples for {title}");
    }
    all.sort_by(f64::total_cmp);
    // The axis ends past the largest p99.9, so one outlier does not squash the picture.
    let mut high = (quantile(&all, 0.999) * 1.15).max(1e-3);
    let mut bins = 50;
    let mut width = high / bins as f64;
    // Whole-number samples (the webhook receiver's clock is in ms) get whole-number bins.
    if all.iter().all(|v| v.fract() == 0.0) {
        width = (high / 50.0).ceil().max(1.0);
        bins = (high / width).ceil() as usize + 1;
        high = bins as f64 * width;
    }
    let mut shares = Vec::new();
    let mut top: f64 = 0.0;
    for (_, values) in sets {
        let mut counts = vec![0usize; bins];
        for v in values.iter() {
            counts[((v / width) as usize).min(bins - 1)] += 1;
        }
        let share: Vec<f64> = counts.iter().map(|c| 100.0 * *c as f64 / values.len().max(1) as f64).collect();
        top = share.iter().copied().fold(top, f64::max);
        shares.push(share);
    }
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..high, 0.0..top * 1.1)?;
    chart.configure_mesh().x_desc(unit).y_desc(format!("% of {of}")).light_line_style(WHITE.mix(0.0)).draw()?;
    for (i, ((name, values), share)) in sets.iter().zip(&shares).enumerate() {
        let colour = colours[i % colours.len()];
        chart
            .draw_series(
                share.iter().enumerate().map(|(b, s)| Rectangle::new([(b as f64 * width, 0.0), ((b + 1) as f64 * width, *s)], colour.mix(0.45).filled())),
            )?
            .label(format!("{name} ({} samples)", values.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.mix(0.45).filled()));
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for (p, dash) in [(0.50, 1u32), (0.95, 2), (0.99, 3)] {
            let at = quantile(&sorted, p).min(high);
            let style = ShapeStyle { color: colour.to_rgba(), filled: false, stroke_width: dash };
            chart
                .draw_series(LineSeries::new([(at, 0.0), (at, top * 1.05)], style))?
                .label(format!("{name} p{:.0} {} {unit}", p * 100.0, num(quantile(&sorted, p))))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], style));
        }
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK.mix(0.3)).position(SeriesLabelPosition::UpperRight).draw()?;
    root.present()?;
    Ok(())
}

/// One bar of the ratio chart: label, (min, median, max) and the target's ratio.
type RatioRow = (String, (f64, f64, f64), Option<f64>);

/// Median ratios to their baselines, with min–max whiskers, for the throughput figures.
fn ratio_chart(path: &Path, rows: &[RatioRow]) -> Result<()> {
    let high = rows.iter().map(|r| r.1.2).fold(1.0f64, f64::max) * 1.1;
    let n = rows.len();
    let root = SVGBackend::new(path, (1050, 60 + 34 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("Ours over the baseline of the same run (median; whiskers min–max; ◆ target)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(480)
        .build_cartesian_2d(0.0..high, -0.5..(n as f64 - 0.5))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() { labels[labels.len() - 1 - i as usize].clone() } else { String::new() }
        })
        .x_desc("× baseline")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let colour = RGBColor(31, 119, 180);
    for (i, (_, (lo, mid, hi), target)) in rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        chart.draw_series([Rectangle::new([(0.0, y - 0.3), (*mid, y + 0.3)], colour.mix(0.6).filled())])?;
        chart.draw_series(LineSeries::new([(*lo, y), (*hi, y)], BLACK.stroke_width(2)))?;
        if let Some(t) = target {
            chart.draw_series([Polygon::new(
                vec![(*t, y - 0.35), (*t + high * 0.008, y), (*t, y + 0.35), (*t - high * 0.008, y)],
                RGBColor(214, 39, 40).filled(),
            )])?;
        }
    }
    chart.draw_series(LineSeries::new([(1.0, -0.5), (1.0, n as f64 - 0.5)], BLACK.mix(0.5)))?;
    root.present()?;
    Ok(())
}

/// Members, and a figure's (min, median, max) at that many.
type GrowthPoint = (f64, (f64, f64, f64));

/// The growth bench's figures against members (log scale): the reminder pass, the read's
/// p99 and checkouts per second, one line per database with min–max whiskers. Returns
/// whether there was anything to draw.
fn growth_chart(path: &Path, growth: &Bench) -> Result<bool> {
    // (what, title, unit) per panel; series keys are growth.<db>.<members>.<what>.
    let panels = [
        ("idle_ms", "Reminder pass, 30 s apart (little or nothing due)", "ms"),
        ("read_p99", "GET /v1/subscriptions/{wallet} p99", "ms"),
        ("checkout", "POST /v1/checkouts", "req/s"),
    ];
    let colours = [("sqlite", "SQLite", RGBColor(31, 119, 180)), ("postgresql", "PostgreSQL", RGBColor(214, 39, 40))];
    let point = |key: &str| -> Option<(String, f64, String)> {
        let mut parts = key.splitn(4, '.');
        (parts.next()? == "growth").then_some(())?;
        let db = parts.next()?.to_string();
        let members: f64 = parts.next()?.parse().ok()?;
        Some((db, members, parts.next()?.to_string()))
    };
    let sizes: Vec<f64> = growth.order.iter().filter_map(|k| point(k).map(|p| p.1)).collect();
    let (Some(low), Some(high)) = (sizes.iter().copied().reduce(f64::min), sizes.iter().copied().reduce(f64::max)) else { return Ok(false) };
    let root = SVGBackend::new(path, (1200, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (what, title, unit)) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        let mut lines: Vec<(&str, RGBColor, Vec<GrowthPoint>)> = Vec::new();
        for (db, name, colour) in colours {
            let mut pts: Vec<GrowthPoint> = growth
                .order
                .iter()
                .filter_map(|k| {
                    let (d, members, w) = point(k)?;
                    (d == db && w == what).then_some(())?;
                    Some((members, spread(&growth.series[k].values)?))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !pts.is_empty() {
                lines.push((name, colour, pts));
            }
        }
        let top = lines.iter().flat_map(|l| l.2.iter().map(|p| p.1.2)).fold(0.0f64, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((low * 0.7..high * 1.4).log_scale(), 0.0..top.max(1e-3))?;
        chart.configure_mesh().x_desc("members (log scale)").y_desc(unit).x_label_formatter(&|v| num(*v)).light_line_style(WHITE.mix(0.0)).draw()?;
        for (name, colour, pts) in lines {
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1.1)), colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], colour.stroke_width(2)));
            chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1.1), 3, colour.filled())))?;
            for p in &pts {
                chart.draw_series(LineSeries::new([(p.0, p.1.0), (p.0, p.1.2)], colour.mix(0.6)))?;
            }
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK.mix(0.3)).position(SeriesLabelPosition::UpperLeft).draw()?;
    }
    root.present()?;
    Ok(true)
}

/// The ratio a "≥ 0.5× …" target names (the ratio chart's marker).
fn ratio_target(target: Option<&str>) -> Option<f64> {
    parse_target(target?).and_then(|(ge, bound, on_ratio)| (ge && on_ratio).then_some(bound))
}

fn main() -> Result<()> {
    let args = args()?;
    let benches = load(&args.runs)?;
    if benches.is_empty() {
        bail!("no bench records in {}", args.runs.display());
    }
    let pictures_dir = args.out.join("bench");
    std::fs::create_dir_all(&pictures_dir)?;
    let mut pictures = Vec::new();
    // (bench, [(series name, sample key)], file, title, what is counted, picture name)
    let histograms = [
        (
            "watcher",
            &[("live", "live")][..],
            "live-activation.svg",
            "Confirming block → activation committed (SQLite, websocket heads)",
            "payments",
            "Live activation latency",
        ),
        (
            "api",
            &[("SQLite", "sqlite.checkout"), ("PostgreSQL", "postgresql.checkout")][..],
            "checkout-latency.svg",
            "POST /v1/checkouts at half the maximum rate, open loop",
            "requests",
            "Checkout latency",
        ),
        (
            "webhooks",
            &[("SQLite", "steady.sqlite"), ("PostgreSQL", "steady.postgresql")][..],
            "webhook-latency.svg",
            "Webhook: commit → acknowledged, steady rate (whole ms)",
            "deliveries",
            "Webhook delivery latency",
        ),
    ];
    for (bench, series, file, title, of, name) in histograms {
        let sets: Vec<(&str, &[f64])> =
            series.iter().filter_map(|(n, k)| benches.get(bench).and_then(|b| b.samples.get(*k)).map(|s| (*n, s.2.as_slice()))).collect();
        if !sets.is_empty() {
            histogram(&pictures_dir.join(file), title, "ms", of, &sets)?;
            pictures.push((name.to_string(), format!("bench/{file}")));
        }
    }
    // Throughput ratios (higher is better) across benches.
    let mut rows = Vec::new();
    for name in ORDER.into_iter().filter(|n| *n != "growth") {
        let Some(bench) = benches.get(name) else { continue };
        for key in &bench.order {
            let s = &bench.series[key];
            if s.better == "higher"
                && !s.label.contains("alone")
                && let Some(r) = spread(&s.ratios)
            {
                let prefix = if name == "api" { format!("{}: ", s.group.as_deref().unwrap_or_default()) } else { String::new() };
                rows.push((format!("{prefix}{}", s.label), r, ratio_target(s.target.as_deref())));
            }
        }
    }
    if !rows.is_empty() {
        let file = "ratios.svg";
        ratio_chart(&pictures_dir.join(file), &rows)?;
        pictures.push(("Throughput against the same run's baselines".to_string(), format!("bench/{file}")));
    }
    if let Some(growth) = benches.get("growth") {
        let file = "growth.svg";
        if growth_chart(&pictures_dir.join(file), growth)? {
            pictures.push(("Cost against members already in the database".to_string(), format!("bench/{file}")));
        }
    }
    let md = render(&args, &benches, &pictures);
    let path = args.out.join("benchmarks.md");
    std::fs::write(&path, md)?;
    println!("report written to {}", path.display());
    if let Some(readme) = &args.readme {
        let header = format!(
            "Mode {}, {} runs, commit `{}`, {}.\n\n",
            args.mode,
            benches.values().map(|b| b.runs).min().unwrap_or(0),
            if args.commit.is_empty() { "?" } else { &args.commit },
            time::OffsetDateTime::now_utc().date()
        );
        update_readme(readme, &(header + &summary(&benches, Some("docs/benchmarks.md"))))?;
        println!("the table in {} updated", readme.display());
    }
    Ok(())
}
