//! Marks a benchmark's measured part for `scripts/bench-profile`, which runs the benchmark
//! under `perf record` started with its events off (`-D -1`) and a control fifo: a section
//! named in `PROFILE_SECTION` switches them on at its start and off at its end, so the
//! profile holds the measured work (the service's, and the node's and database's beside
//! it) and not the set-up before it. Without `PROFILE_SECTION` a section does nothing.

use std::io::Write;

/// A measured part being profiled; switches the profile off when dropped.
pub struct Section {
    control: Option<std::fs::File>,
}

impl Section {
    /// Starts section `name`: profiling is on until the returned value is dropped, when
    /// `PROFILE_SECTION` names it and `PERF_CTL_FIFO` is perf's control fifo.
    pub fn start(name: &str) -> Self {
        let control = if profiled(name) { std::env::var("PERF_CTL_FIFO").ok().and_then(|path| command(&path, "enable")) } else { None };
        Self { control }
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        if let Some(file) = self.control.as_mut() {
            let _ = file.write_all(b"disable\n");
            let _ = file.flush();
        }
    }
}

/// A database's name in section names (`SQLite` → `sqlite`, `PostgreSQL` → `postgres`).
pub fn database(kind: &str) -> &'static str {
    if kind == "SQLite" { "sqlite" } else { "postgres" }
}

/// Whether `name` is the section being profiled: the benchmark may stop after it.
pub fn profiled(name: &str) -> bool {
    std::env::var("PROFILE_SECTION").is_ok_and(|wanted| wanted == name)
}

/// Whether some section is being profiled (the benchmark may leave out other parts).
pub fn profiling() -> bool {
    std::env::var("PROFILE_SECTION").is_ok()
}

/// Writes `what` to perf's control fifo at `path`; returns the open fifo.
fn command(path: &str, what: &str) -> Option<std::fs::File> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).ok()?;
    file.write_all(format!("{what}\n").as_bytes()).ok()?;
    file.flush().ok()?;
    Some(file)
}
