//! The processes the campaign runs and kills: `tmai-pay run` instances (their log lines
//! kept in files, leadership changes timed) and the webhook receiver.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A leadership gained: which instance, which lock, when.
#[derive(Debug, Clone)]
pub(crate) struct Led {
    pub(crate) instance: usize,
    pub(crate) lock: i64,
    pub(crate) at: Instant,
}

/// One `tmai-pay run` process, restartable; every line it prints goes to `log`.
pub(crate) struct Instance {
    pub(crate) index: usize,
    pub(crate) base: String,
    config: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// Leaderships gained by any instance (shared by all).
    led: Arc<Mutex<Vec<Led>>>,
    pub(crate) starts: u32,
    /// Starts that exited before serving (refused on an RPC fault).
    pub(crate) failed_starts: u32,
}

impl Instance {
    pub(crate) fn new(index: usize, base: String, config: PathBuf, env: Vec<(String, String)>, log: PathBuf, led: Arc<Mutex<Vec<Led>>>) -> Self {
        Self { index, base, config, env, log, child: None, led, starts: 0, failed_starts: 0 }
    }

    pub(crate) fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tmai-pay"))
            .args(["run", "--config", self.config.to_str().unwrap()])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tmai-pay run starts");
        self.starts += 1;
        for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
            let (led, index) = (self.led.clone(), self.index);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("became leader")
                        && let Some(lock) = lock_of(&line)
                    {
                        led.lock().unwrap().push(Led { instance: index, lock, at: Instant::now() });
                    }
                    let _ = writeln!(file, "{line}");
                }
            });
        }
        self.child = Some(child);
    }

    /// SIGKILL, no warning; returns when the process is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits until the public listener answers /healthz; returns how long that took. Like a
    /// supervisor (systemd's Restart=always), starts the process again when it exits: its
    /// start-up checks read the chain once and refuse to start on an RPC fault.
    pub(crate) async fn wait_healthy(&mut self, client: &reqwest::Client, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if !self.running() {
                self.failed_starts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.start();
                continue;
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The lock number in a `became leader lock=…` line.
fn lock_of(line: &str) -> Option<i64> {
    let at = line.find("lock")? + 4;
    let digits: String = line[at..].chars().skip_while(|c| !c.is_ascii_digit()).take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The webhook receiver (tests/receiver/receiver.mjs) on a fixed port with a durable log.
pub(crate) struct Receiver {
    pub(crate) port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Receiver {
    pub(crate) fn new(port: u16, log: &Path) -> Self {
        Self { port, log: log.to_path_buf(), child: None }
    }

    pub(crate) async fn start(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/receiver/receiver.mjs");
        let mut child = Command::new("node")
            .args([script, "--port", &self.port.to_string(), "--log", self.log.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the receiver");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(first.starts_with("listening"), "receiver did not start: {first:?}");
        self.child = Some(child);
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}
