//! Test support for end-to-end tests: a real SeaweedFS on loopback, real
//! `s3-elector` processes, and a checker for leadership intervals.
//!
//! Everything binds 127.0.0.1 only, picks ports at run time, and is killed
//! when its handle drops (also when a test panics).

#![allow(dead_code, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub mod kube;

pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "testtest";

/// Path of the daemon under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_s3-elector")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned `weed` binary that scripts/test installs.
pub fn weed_path() -> PathBuf {
    if let Ok(p) = std::env::var("S3E_WEED") {
        return PathBuf::from(p);
    }
    let p = root().join(".tools/venv/bin/weed");
    assert!(
        p.exists(),
        "SeaweedFS is not installed at {}; run scripts/test, which installs it",
        p.display()
    );
    p
}

fn port_free(p: u16) -> bool {
    TcpListener::bind(("127.0.0.1", p)).is_ok()
}

/// A base port B with B..=B+11 free, and B+10+10000 free too (weed's worker
/// dials the admin gRPC port at admin.port + 10000).
fn free_base() -> u16 {
    for _ in 0..500 {
        // Below Linux's ephemeral range (32768+), where the many outgoing
        // connections of a test could take a port between this check and
        // weed's bind; b + 10010 stays below it too.
        let b: u16 = 10000 + (rand::random::<u16>() % 12700);
        if (b..=b + 11).all(port_free) && port_free(b + 10 + 10000) {
            return b;
        }
    }
    panic!("no 12 consecutive free loopback ports found");
}

/// A free loopback port for a single listener.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A running `weed mini`, on loopback only, telemetry off.
pub struct Seaweed {
    child: Child,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    base: u16,
}

impl Seaweed {
    pub fn start() -> Seaweed {
        Self::start_auth(true)
    }

    /// A store without authentication (requests are not verified), so that
    /// a proxy may rewrite signed headers.
    pub fn start_open() -> Seaweed {
        Self::start_auth(false)
    }

    fn start_auth(auth: bool) -> Seaweed {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let ids = dir.path().join("identities.json");
        if auth {
            std::fs::write(
            &ids,
            format!(
                r#"{{"identities":[{{"name":"test","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        }
        // A port can still be taken between the check and weed's bind:
        // then weed exits at once, and another base is tried.
        let mut last = String::new();
        for _ in 0..3 {
            let base = free_base();
            let child = spawn_weed(dir.path(), &data, &ids, base);
            let mut s = Seaweed {
                child,
                endpoint: format!("http://127.0.0.1:{base}"),
                dir,
                base,
            };
            match s.try_ready() {
                Ok(()) => return s,
                Err(e) => {
                    last = e;
                    dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
                }
            }
        }
        panic!("{last}");
    }

    fn wait_ready(&mut self) {
        if let Err(e) = self.try_ready() {
            panic!("{e}");
        }
    }

    fn try_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = self.client();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
                let tail: String = log
                    .chars()
                    .rev()
                    .take(1500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(format!(
                    "weed exited early ({status}); its log ends:\n{tail}"
                ));
            }
            let ok = rt.block_on(async { client.list_buckets().send().await.is_ok() });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("SeaweedFS did not become ready in 60s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An SDK client for test set-up (creating buckets, planting objects).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// The daemon's own store on `bucket` of this SeaweedFS, for tests that
    /// drive the library directly (sets the test credentials in this
    /// process's environment, as the SDK reads them from there).
    pub async fn store(&self, bucket: &str) -> s3_elector::lease::store::s3::S3Store {
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        let cfg = s3_elector::config::S3Config {
            bucket: bucket.into(),
            key: None,
            prefix: None,
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.endpoint.clone()),
            force_path_style: true,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
        };
        s3_elector::lease::store::s3::S3Store::connect(&cfg)
            .await
            .unwrap()
    }

    /// Create a bucket, retrying while the filer settles.
    pub fn bucket(&self, name: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = rt.block_on(async { client.create_bucket().bucket(name).send().await });
            match r {
                Ok(_) => return,
                Err(e) => {
                    let msg = format!("{:?}", e);
                    if msg.contains("BucketAlreadyOwnedByYou")
                        || msg.contains("BucketAlreadyExists")
                    {
                        return;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "cannot create bucket {name}: {msg}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Kill the store (S3 becomes unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop and start the same store again (same ports, same data).
    pub fn restart(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let data = self.dir.path().join("data");
        let ids = self.dir.path().join("identities.json");
        self.child = spawn_weed(self.dir.path(), &data, &ids, self.base);
        self.wait_ready();
    }

    /// Write a config for one daemon and return its path.
    pub fn config(&self, dir: &Path, name: &str, bucket: &str, extra: &str) -> PathBuf {
        self.config_via(dir, name, bucket, &self.endpoint, extra)
    }

    /// The same, talking to the store through `endpoint` (a proxy in front
    /// of this SeaweedFS).
    pub fn config_via(
        &self,
        dir: &Path,
        name: &str,
        bucket: &str,
        endpoint: &str,
        extra: &str,
    ) -> PathBuf {
        let p = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &p,
            format!(
                "election: e2e\ns3:\n  bucket: {bucket}\n  endpoint_url: {endpoint}\n  force_path_style: true\n  region: us-east-1\n  request_timeout: 1s\n  connect_timeout: 500ms\n{extra}"
            ),
        )
        .unwrap();
        p
    }
}

fn spawn_weed(dir: &Path, data: &Path, ids: &Path, b: u16) -> Child {
    let log = std::fs::File::create(dir.join("weed.log")).unwrap();
    let p = |n: u16| (b + n).to_string();
    Command::new(weed_path())
        .current_dir(dir)
        .arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-s3.port={}", p(0)))
        .arg(format!("-s3.port.grpc={}", p(1)))
        .arg(format!("-s3.port.iceberg={}", p(2)))
        .arg(format!("-s3.port.lance={}", p(3)))
        .arg(format!("-master.port={}", p(4)))
        .arg(format!("-master.port.grpc={}", p(5)))
        .arg(format!("-volume.port={}", p(6)))
        .arg(format!("-volume.port.grpc={}", p(7)))
        .arg(format!("-filer.port={}", p(8)))
        .arg(format!("-filer.port.grpc={}", p(9)))
        .arg(format!("-admin.port={}", p(10)))
        .arg(format!("-admin.port.grpc={}", p(10010)))
        .args(
            ids.exists()
                .then(|| format!("-s3.config={}", ids.display())),
        )
        .args([
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start weed")
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One log event of a daemon, as parsed from its JSON log.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: SystemTime,
    pub json: serde_json::Value,
}

impl Event {
    pub fn event(&self) -> &str {
        self.json
            .get("event")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }
    pub fn term(&self) -> Option<u64> {
        self.json.get("term").and_then(|v| v.as_u64())
    }
    pub fn str(&self, k: &str) -> Option<&str> {
        self.json.get(k).and_then(|v| v.as_str())
    }
}

/// A running `s3-elector run`, its stderr parsed into events.
pub struct Daemon {
    pub id: String,
    /// Its HTTP port on 127.0.0.1.
    pub http_port: u16,
    child: Option<Child>,
    pub events: Arc<Mutex<Vec<Event>>>,
    /// Set by the log reader when the daemon's stderr reaches end of file:
    /// every line the process wrote is in `events`.
    drained: Arc<std::sync::atomic::AtomicBool>,
    /// A value of `S3E_TEST_OWNER` unique to this copy; everything it
    /// starts (program, hooks, their children) inherits it, so that a copy
    /// killed with SIGKILL leaves nothing behind (see [`sweep`]).
    pub marker: String,
    pub exit: Option<std::process::ExitStatus>,
    /// Rate of the copy's clocks relative to the host's (libfaketime `x`);
    /// its `valid_ms` are divided by this to get host time.
    pub clock_rate: f64,
}

impl Daemon {
    pub fn start(id: &str, config: &Path) -> Daemon {
        Self::start_with(id, config, &[])
    }

    pub fn start_with(id: &str, config: &Path, env: &[(&str, &str)]) -> Daemon {
        Self::start_full(id, config, env, &[])
    }

    /// Start with extra environment and extra arguments after `run`
    /// (e.g. `["--", "program"]`).
    pub fn start_full(id: &str, config: &Path, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let mut cmd = daemon_command(config);
        let http_port = free_port();
        let marker = format!(
            "{}-{}-{:016x}",
            std::process::id(),
            id,
            rand::random::<u64>()
        );
        cmd.env("S3E_TEST_OWNER", &marker);
        cmd.args(["run"])
            .args(args)
            .env("S3_ELECTOR_IDENTITY", id)
            .env("S3_ELECTOR_HTTP_LISTEN", format!("127.0.0.1:{http_port}"));
        set_env(&mut cmd, env);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start s3-elector");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let ev = events.clone();
        let drained = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = drained.clone();
        let tag = id.to_string();
        // Under libfaketime the copy's own timestamps are fake: use the
        // host's clock at the moment each line arrives instead.
        let faked = env
            .iter()
            .find(|(k, _)| *k == "FAKETIME")
            .map(|(_, v)| v.to_string());
        let receipt_time = faked.is_some();
        let clock_rate = faked
            .as_deref()
            .and_then(|f| f.split('x').nth(1))
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(1.0);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("S3E_TEST_VERBOSE").is_some() {
                    eprintln!("[{tag}] {line}");
                }
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                    ev.lock().unwrap().push(Event {
                        at: SystemTime::now(),
                        json: serde_json::json!({ "raw": line }),
                    });
                    continue;
                };
                let at = json
                    .get("timestamp")
                    .and_then(|t| t.as_str())
                    .filter(|_| !receipt_time)
                    .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
                    .unwrap_or_else(SystemTime::now);
                ev.lock().unwrap().push(Event { at, json });
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Daemon {
            id: id.to_string(),
            http_port,
            child: Some(child),
            events,
            drained,
            marker,
            exit: None,
            clock_rate,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Is the process running (not killed or exited)?
    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// Is the process running, and does its last leadership event say it leads?
    pub fn believes_leader(&self) -> bool {
        self.alive()
            && self
                .events()
                .iter()
                .rev()
                .find(|e| matches!(e.event(), "acquired" | "lost"))
                .is_some_and(|e| e.event() == "acquired")
    }

    /// Wait until an event matches, up to `within`.
    pub fn wait_event(&self, within: Duration, f: impl Fn(&Event) -> bool) -> Option<Event> {
        let end = Instant::now() + within;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| f(e)) {
                return Some(e);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGKILL and reap. What it had started (its program, hooks) cannot be
    /// stopped by a killed daemon: those are killed too, and its log is
    /// read to the end.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.exit = c.wait().ok();
            sweep(&self.marker);
            self.wait_drained(Duration::from_secs(5));
        }
    }

    /// Wait for the process to exit by itself, up to `within`. On exit,
    /// waits until its log has been read to the end, so that every event
    /// it wrote before exiting is in [`Daemon::events`].
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    self.exit = Some(st);
                    self.wait_drained(Duration::from_secs(5));
                    return Some(st);
                }
            } else {
                return self.exit;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Wait (bounded) until the log reader has seen the end of stderr.
    /// Ends early only if a process the daemon left behind keeps the pipe
    /// open, which the no-orphan checks report on their own.
    fn wait_drained(&self, within: Duration) -> bool {
        let end = Instant::now() + within;
        while !self.drained.load(std::sync::atomic::Ordering::SeqCst) {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// The daemon's own answer on `GET /leader` (the leader view), or
    /// `None` while it does not answer 200.
    pub fn view(&self) -> Option<serde_json::Value> {
        let (st, v) = get_json(self.http_port, "/leader");
        (st == 200).then_some(v)
    }

    /// Does the daemon itself say (`GET /leader`) that it leads?
    pub fn says_leader(&self) -> bool {
        self.alive() && self.view().is_some_and(|v| v["is_leader"] == true)
    }

    /// Is this copy ready and competing (past its probe, lease read, not in
    /// a step-down cool-off), following `leader`? Asks the daemon.
    pub fn follows(&self, leader: &str) -> bool {
        self.alive()
            && self.view().is_some_and(|v| {
                v["ready"] == true
                    && v["candidate"] == true
                    && v["is_leader"] == false
                    && v["leader"] == leader
            })
    }

    pub fn log_text(&self) -> String {
        self.events()
            .iter()
            .map(|e| e.json.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        // Also after a graceful exit: a daemon bug must not leak processes
        // into the next test (the no-orphan checks run before this).
        sweep(&self.marker);
    }
}

/// The pids whose environment carries `S3E_TEST_OWNER=marker`.
pub fn pids_of(marker: &str) -> Vec<i32> {
    let needle = format!("S3E_TEST_OWNER={marker}").into_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_slice()))
        })
        .collect()
}

/// Send `sig` (e.g. `STOP`, `CONT`) to every process of `marker`.
pub fn signal_all(marker: &str, sig: &str) {
    for pid in pids_of(marker) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Is a process of `marker` but `except` running whose command line
/// contains `needle` (zombies do not count)?
pub fn process_with_env(marker: &str, except: u32, needle: &str) -> bool {
    pids_of(marker)
        .into_iter()
        .filter(|p| *p as u32 != except)
        .any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
                && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
        })
}

/// SIGKILL every process whose environment carries `S3E_TEST_OWNER=marker`
/// (what one test daemon started, however deep, even if reparented).
/// Processes of other users or other tests never match.
pub fn sweep(marker: &str) {
    let needle = format!("S3E_TEST_OWNER={marker}").into_bytes();
    for _ in 0..3 {
        let mut found = 0;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if env.split(|b| *b == 0).any(|v| v == needle.as_slice()) {
                found += 1;
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if found == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll `f` every 25 ms until it holds; panics naming `what` after `within`.
pub fn until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {within:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// libfaketime, which scripts/test installs from Debian (package faketime).
pub fn libfaketime() -> String {
    let p = std::env::var("S3E_LIBFAKETIME")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1".into());
    assert!(
        Path::new(&p).exists(),
        "libfaketime not found at {p}; run scripts/test, which installs the faketime package"
    );
    p
}

/// A `Command` for the binary with test credentials and no IMDS.
pub fn daemon_command(config: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // scripts/leftovers finds whatever outlives the suite by it.
        .env(
            "S3E_SUITE",
            std::env::var_os("S3E_SUITE").unwrap_or_default(),
        )
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("S3_ELECTOR_LOG_FORMAT", "json")
        .env("S3_ELECTOR_LOG", "s3_elector=debug,info")
        .env("S3_ELECTOR_CONFIG", config);
    cmd
}

/// Set `env` on `cmd`; a name starting with `-` removes the variable
/// (`("-S3_ELECTOR_CONFIG", "")`: no config file).
fn set_env(cmd: &mut Command, env: &[(&str, &str)]) {
    for (k, v) in env {
        match k.strip_prefix('-') {
            Some(k) => cmd.env_remove(k),
            None => cmd.env(k, v),
        };
    }
}

/// Run a one-shot command (`check`, `status`, ...) and capture it.
pub fn run_cmd(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = daemon_command(config);
    cmd.env("S3_ELECTOR_LOG_FORMAT", "text").args(args);
    set_env(&mut cmd, env);
    let out = cmd.output().expect("run s3-elector");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One believed-leadership interval of one copy.
#[derive(Debug, Clone)]
pub struct Interval {
    pub id: String,
    pub term: u64,
    pub from: SystemTime,
    /// `None`: still leading (or killed while leading; then `killed_at`).
    pub to: Option<SystemTime>,
}

/// When `d` sent its last logged lease write (acquisition or renewal), on
/// the host's clock: each such event carries `valid_ms`, the time left
/// until `sent + renew_deadline`, computed just before the event's
/// timestamp is taken: the result is the real send time (to the ms), or
/// later by however long the daemon was descheduled between the two.
pub fn last_write_sent(d: &Daemon, renew_deadline: Duration) -> Option<SystemTime> {
    d.events()
        .iter()
        .rev()
        .find(|e| matches!(e.event(), "acquired" | "renewed"))
        .and_then(|e| {
            let valid = Duration::from_millis(e.json.get("valid_ms")?.as_u64()?);
            Some(e.at + valid.div_f64(d.clock_rate) - renew_deadline.div_f64(d.clock_rate))
        })
}

/// Leadership intervals from a daemon's events. An interval ends at the
/// copy's "lost" event, or at its own deadline (the last acquisition or
/// renewal plus its `valid_ms`), whichever is first: past its deadline a
/// copy never acts as leader, even if it was frozen (SIGSTOP) and logs the
/// loss only later. A copy killed while leading stops at `killed_at`.
pub fn intervals(d: &Daemon, killed_at: Option<SystemTime>) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    let mut deadline: Option<SystemTime> = None;
    let valid = |e: &Event| {
        e.json
            .get("valid_ms")
            .and_then(|v| v.as_u64())
            .map(|ms| e.at + Duration::from_millis(ms).div_f64(d.clock_rate))
    };
    let close = |out: &mut Vec<Interval>, at: SystemTime, deadline: Option<SystemTime>| {
        if let Some(last) = out.last_mut() {
            if last.to.is_none() {
                last.to = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
    };
    for e in d.events() {
        match e.event() {
            "acquired" => {
                close(&mut out, e.at, deadline);
                deadline = valid(&e);
                out.push(Interval {
                    id: d.id.clone(),
                    term: e.term().expect("acquired has a term"),
                    from: e.at,
                    to: None,
                });
            }
            "renewed" => {
                if let Some(v) = valid(&e) {
                    deadline = Some(v);
                }
            }
            "lost" => {
                close(&mut out, e.at, deadline);
                deadline = None;
            }
            _ => {}
        }
    }
    if let Some(k) = killed_at {
        close(&mut out, k, deadline);
    }
    out
}

/// The checker: no two intervals overlap, no term has two holders, and
/// terms grow with each new leadership. Panics with the evidence.
/// Check the leadership intervals of every copy in `ds` (`killed_at[i]`:
/// when copy i was SIGKILLed, if it was); expects at least `min` intervals
/// and returns how many there were.
pub fn check_daemons<'a>(
    ds: impl IntoIterator<Item = &'a Daemon>,
    killed_at: &[Option<SystemTime>],
    min: usize,
) -> usize {
    let all: Vec<Interval> = ds
        .into_iter()
        .enumerate()
        .flat_map(|(i, d)| intervals(d, killed_at.get(i).copied().flatten()))
        .collect();
    assert!(all.len() >= min, "{all:#?}");
    let n = all.len();
    check_intervals(all);
    n
}

pub fn check_intervals(mut all: Vec<Interval>) {
    all.sort_by_key(|i| i.from);
    let far = SystemTime::now() + Duration::from_secs(3600);
    for w in all.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let a_end = a.to.unwrap_or(far);
        assert!(
            a_end <= b.from,
            "leadership overlap: {} (term {}) until {:?}, {} (term {}) from {:?}\n{all:#?}",
            a.id,
            a.term,
            a_end,
            b.id,
            b.term,
            b.from
        );
        assert!(
            b.term > a.term,
            "terms must grow: {} had term {} then {} got term {}\n{all:#?}",
            a.id,
            a.term,
            b.id,
            b.term
        );
    }
}

/// A running s3rver (npm), an S3 store that ignores conditional headers.
pub struct S3rver {
    child: Child,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

impl S3rver {
    /// Start it with one bucket. s3rver's fixed credentials are S3RVER/S3RVER.
    pub fn start(bucket: &str) -> S3rver {
        let bin = std::env::var("S3E_S3RVER")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join(".tools/node/node_modules/.bin/s3rver"));
        assert!(
            bin.exists(),
            "s3rver is not installed at {}; run scripts/test, which installs it",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("s3rver.log")).unwrap();
        let child = Command::new(bin)
            .args(["-d", &dir.path().join("data").display().to_string()])
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--configure-bucket",
                bucket,
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start s3rver");
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "s3rver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        S3rver {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl S3rver {
    /// s3rver's fixed credentials, as environment for [`run_cmd`].
    pub const CREDS: [(&'static str, &'static str); 2] = [
        ("AWS_ACCESS_KEY_ID", "S3RVER"),
        ("AWS_SECRET_ACCESS_KEY", "S3RVER"),
    ];

    /// A config for election `nc` on `bucket` of this s3rver.
    pub fn config(&self, bucket: &str) -> PathBuf {
        let cfg = self.dir.path().join("nc.yaml");
        std::fs::write(
            &cfg,
            format!(
                "election: nc\ns3:\n  bucket: {bucket}\n  endpoint_url: {}\n  force_path_style: true\n  region: us-east-1\n  request_timeout: 2s\n  connect_timeout: 1s\n",
                self.endpoint
            ),
        )
        .unwrap();
        cfg
    }
}

impl Drop for S3rver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 request to 127.0.0.1:`port`; returns status and body.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_with(port, method, path, "");
    (status, body)
}

/// [`http`] with extra request header lines (each ending in `\r\n`);
/// returns status, response head and body.
pub fn http_with(port: u16, method: &str, path: &str, headers: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    // The daemon may still be starting: retry a refused connection briefly.
    let end = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < end => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("connect to 127.0.0.1:{port}: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read response");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    (status, head.to_string(), body.to_string())
}

/// GET a JSON endpoint.
pub fn get_json(port: u16, path: &str) -> (u16, serde_json::Value) {
    let (st, body) = http(port, "GET", path);
    (
        st,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// A TCP proxy on loopback in front of an S3 endpoint that counts the HTTP
/// requests passing through it, by method. Used to check the daemon's own
/// request counters against what actually went over the wire.
pub struct CountingProxy {
    pub port: u16,
    pub counts: Arc<Mutex<std::collections::HashMap<String, u64>>>,
}

impl CountingProxy {
    pub fn start(upstream: &str) -> CountingProxy {
        let up = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts: Arc<Mutex<std::collections::HashMap<String, u64>>> = Arc::default();
        let c = counts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = std::net::TcpStream::connect(&up) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let counts = c.clone();
                std::thread::spawn(move || pump(client, server, Some(counts)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        CountingProxy { port, counts }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().values().sum()
    }
}

fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    counts: Option<Arc<Mutex<std::collections::HashMap<String, u64>>>>,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    let mut carry = Vec::new();
    let mut skip = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(c) = &counts {
            // Parse the request stream: a head up to a blank line, then
            // Content-Length bytes of body, then the next request.
            carry.extend_from_slice(&buf[..n]);
            loop {
                if skip > 0 {
                    let k = skip.min(carry.len());
                    carry.drain(..k);
                    skip -= k;
                    if skip > 0 {
                        break;
                    }
                }
                let Some(p) = carry.windows(4).position(|w| w == b"\r\n\r\n") else {
                    break;
                };
                let head = String::from_utf8_lossy(&carry[..p]).into_owned();
                carry.drain(..p + 4);
                let method = head.split(' ').next().unwrap_or("").to_string();
                *c.lock().unwrap().entry(method).or_default() += 1;
                skip = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// What a [`FaultProxy`] does to the requests passing through it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Forward after a delay of `base` plus up to `jitter`.
    Delay { base: Duration, jitter: Duration },
    /// Swallow requests: no answer until the mode changes (a partition).
    BlackHole,
    /// Answer with this status and S3 error code instead of forwarding.
    Respond(u16, &'static str),
    /// Forward, let the store apply it, then drop the answer (a lost ack).
    DropResponse,
    /// Close the connection without answering.
    Reset,
    /// Forward without `If-Match` / `If-None-Match`, like a store that
    /// ignores them (needs a store that does not verify signatures).
    StripConditional,
    /// Forward, but print the ETag of every GET answer differently from the
    /// store (`W/` prefix, no quotes, upper case), as some stores do.
    RewriteReadEtags,
    /// The next PUT of the lease object lands at the store, but its answer
    /// never comes back (the client times out); then the mode becomes
    /// [`Fault::HoldLeasePuts`]. Everything else passes.
    EatNextLeasePut,
    /// PUTs of the lease object are held, never forwarded (until the mode
    /// changes); everything else passes.
    HoldLeasePuts,
}

/// An HTTP-aware proxy in front of the store, one per daemon, whose
/// behaviour can be changed at run time. Counts requests by outcome.
pub struct FaultProxy {
    pub port: u16,
    mode: Arc<Mutex<Fault>>,
    pub seen: Arc<Mutex<u64>>,
    /// When the last PUT of a lease object was passed on to the store
    /// (taken just before forwarding it, so the write landed after it).
    last_lease_put: Arc<Mutex<Option<Instant>>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let up = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Fault::Pass));
        let seen = Arc::new(Mutex::new(0));
        let last_lease_put = Arc::new(Mutex::new(None));
        let (m, s, lp) = (mode.clone(), seen.clone(), last_lease_put.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (up, m, s, lp) = (up.clone(), m.clone(), s.clone(), lp.clone());
                std::thread::spawn(move || {
                    let _ = serve_faulty(client, &up, &m, &s, &lp);
                });
            }
        });
        FaultProxy {
            port,
            mode,
            seen,
            last_lease_put,
        }
    }

    /// When this proxy last forwarded a write of the lease object: no write
    /// through it can have landed at the store before this instant.
    pub fn last_lease_put(&self) -> Option<Instant> {
        *self.last_lease_put.lock().unwrap()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, f: Fault) {
        *self.mode.lock().unwrap() = f;
    }
}

/// Read one HTTP message (head + body by Content-Length or chunked) from `r`.
fn read_message(r: &mut impl std::io::BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut msg = Vec::new();
    let mut len = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        msg.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    if chunked {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            msg.extend_from_slice(size_line.as_bytes());
            let n = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            msg.extend_from_slice(&chunk);
            if n == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        msg.extend_from_slice(&body);
    }
    Ok(Some(msg))
}

/// The request without its If-Match / If-None-Match header lines.
fn strip_conditional(req: &[u8]) -> Vec<u8> {
    let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") else {
        return req.to_vec();
    };
    let head = String::from_utf8_lossy(&req[..end]).into_owned();
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("if-match:") && !l.starts_with("if-none-match:")
        })
        .collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(&req[end..]);
    out
}

/// The answer with its `ETag` header printed as `W/<UPPER HEX>`.
fn rewrite_etag(resp: &[u8]) -> Vec<u8> {
    let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return resp.to_vec();
    };
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|l| match l.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("etag") => {
                format!("{k}: W/{}", v.trim().trim_matches('"').to_uppercase())
            }
            _ => l.to_string(),
        })
        .collect();
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&resp[end..]);
    out
}

/// A PUT of the lease object (not of a registry entry or probe object).
fn is_lease_put(req: &[u8]) -> bool {
    let line = req.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let path = line.split(' ').nth(1).unwrap_or("");
    line.starts_with("PUT ")
        && path
            .split('?')
            .next()
            .unwrap_or("")
            .ends_with("/lease.json")
}

fn is_head_request(req: &[u8]) -> bool {
    req.starts_with(b"HEAD ")
}

fn serve_faulty(
    client: std::net::TcpStream,
    up: &str,
    mode: &Mutex<Fault>,
    seen: &Mutex<u64>,
    last_lease_put: &Mutex<Option<Instant>>,
) -> std::io::Result<()> {
    use std::io::{BufReader, Write};
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let mut upstream: Option<(std::net::TcpStream, BufReader<std::net::TcpStream>)> = None;
    while let Some(req) = read_message(&mut from_client)? {
        *seen.lock().unwrap() += 1;
        let fault = mode.lock().unwrap().clone();
        match fault {
            Fault::BlackHole => {
                // Hold the request until the mode changes (bounded).
                let end = Instant::now() + Duration::from_secs(120);
                while *mode.lock().unwrap() == Fault::BlackHole && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(());
            }
            Fault::Reset => return Ok(()),
            Fault::Respond(status, code) => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
                );
                write!(
                    to_client,
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                continue;
            }
            Fault::Delay { base, jitter } => {
                let j = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_millis(rand::random::<u64>() % jitter.as_millis().max(1) as u64)
                };
                std::thread::sleep(base + j);
            }
            Fault::Pass
            | Fault::DropResponse
            | Fault::StripConditional
            | Fault::RewriteReadEtags
            | Fault::EatNextLeasePut
            | Fault::HoldLeasePuts => {}
        }
        let req = if fault == Fault::StripConditional {
            strip_conditional(&req)
        } else {
            req
        };
        if upstream.is_none() {
            let s = std::net::TcpStream::connect(up)?;
            let r = BufReader::new(s.try_clone()?);
            upstream = Some((s, r));
        }
        let (up_w, up_r) = upstream.as_mut().unwrap();
        let hold_while = |f: Fault| {
            let end = Instant::now() + Duration::from_secs(60);
            while *mode.lock().unwrap() == f && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        if fault == Fault::HoldLeasePuts && is_lease_put(&req) {
            hold_while(Fault::HoldLeasePuts);
            return Ok(());
        }
        if is_lease_put(&req) {
            *last_lease_put.lock().unwrap() = Some(Instant::now());
        }
        up_w.write_all(&req)?;
        if fault == Fault::EatNextLeasePut && is_lease_put(&req) {
            // Landed: wait for the store's answer, then keep it.
            let _ = read_message(up_r)?;
            *mode.lock().unwrap() = Fault::HoldLeasePuts;
            hold_while(Fault::HoldLeasePuts);
            return Ok(());
        }
        let resp = if is_head_request(&req) {
            // A HEAD answer has no body whatever its Content-Length says.
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(up_r, &mut line)? == 0 || line == "\r\n" {
                    head.extend_from_slice(line.as_bytes());
                    break;
                }
                head.extend_from_slice(line.as_bytes());
            }
            head
        } else {
            match read_message(up_r)? {
                Some(r) => r,
                None => return Ok(()),
            }
        };
        if fault == Fault::DropResponse {
            return Ok(());
        }
        let resp = if fault == Fault::RewriteReadEtags && req.starts_with(b"GET ") {
            rewrite_etag(&resp)
        } else {
            resp
        };
        to_client.write_all(&resp)?;
    }
    Ok(())
}

/// Wait until exactly one of `ds` believes it leads; returns its index.
pub fn wait_single_leader(ds: &[&Daemon], within: Duration) -> usize {
    let end = Instant::now() + within;
    loop {
        let l: Vec<usize> = (0..ds.len()).filter(|i| ds[*i].believes_leader()).collect();
        if l.len() == 1 {
            return l[0];
        }
        assert!(
            Instant::now() < end,
            "no single leader within {within:?}: {l:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
