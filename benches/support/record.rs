//! What one benchmark run measured, written as JSON for `scripts/bench-report`.
//!
//! Each bench keeps printing its own table and also records its figures here: a figure is
//! one number with its unit, which way is better, and (where it has one) the key of the
//! baseline it is compared with; the report divides the two *within a run*, so a ratio
//! never mixes runs. Latency samples are kept whole for the report's histograms.
//!
//! The file goes to `$BENCH_JSON` when set (the report names one per run), else to
//! `target/bench/<bench>.json`.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// One run's figures.
pub struct Record {
    bench: String,
    params: Map<String, Value>,
    figures: Vec<Value>,
    samples: Map<String, Value>,
}

/// One figure being recorded; `Record::add` takes it.
pub struct Figure {
    value: Map<String, Value>,
}

/// A figure: `key` is stable across runs, `label` is what the report prints.
pub fn figure(key: &str, label: &str, unit: &str, value: f64) -> Figure {
    let mut map = Map::new();
    map.insert("key".into(), json!(key));
    map.insert("label".into(), json!(label));
    map.insert("unit".into(), json!(unit));
    map.insert("value".into(), json!(value));
    map.insert("better".into(), json!("higher"));
    Figure { value: map }
}

impl Figure {
    /// Compared with the figure `key` of the same run (the report shows value / baseline).
    pub fn baseline(mut self, key: &str) -> Self {
        self.value.insert("baseline".into(), json!(key));
        self
    }

    /// Smaller is better (gas, latency, blocks).
    pub fn lower(mut self) -> Self {
        self.value.insert("better".into(), json!("lower"));
        self
    }

    /// The direction the issue gives, as text (e.g. "≥ 0.35× raw").
    pub fn target(mut self, text: &str) -> Self {
        self.value.insert("target".into(), json!(text));
        self
    }

    /// The group the report puts it under (a database, a phase).
    pub fn group(mut self, text: &str) -> Self {
        self.value.insert("group".into(), json!(text));
        self
    }

    /// A sentence on what the figure counts.
    pub fn note(mut self, text: &str) -> Self {
        self.value.insert("note".into(), json!(text));
        self
    }
}

impl Record {
    /// An empty record for the bench `name`.
    pub fn new(bench: &str) -> Self {
        Self { bench: bench.into(), params: Map::new(), figures: Vec::new(), samples: Map::new() }
    }

    /// A parameter of the run (sizes, rates), shown beside the bench's table.
    pub fn param(&mut self, key: &str, value: impl Into<Value>) {
        self.params.insert(key.into(), value.into());
    }

    /// Adds a figure.
    pub fn add(&mut self, figure: Figure) {
        self.figures.push(Value::Object(figure.value));
    }

    /// Keeps every sample of a distribution (e.g. latencies in ms) for the histograms.
    pub fn samples(&mut self, key: &str, label: &str, unit: &str, values: &[f64]) {
        self.samples.insert(key.into(), json!({ "label": label, "unit": unit, "values": values }));
    }

    /// Writes the record (see the module documentation for where).
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = std::env::var_os("BENCH_JSON")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench").join(format!("{}.json", self.bench)));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let body = json!({
            "bench": self.bench,
            "params": self.params,
            "figures": self.figures,
            "samples": self.samples,
        });
        std::fs::write(&path, serde_json::to_vec(&body)?)?;
        eprintln!("figures written to {}", path.display());
        Ok(path)
    }
}
