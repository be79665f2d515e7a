//! The command line: parses arguments, loads the config (through the
//! config module, which layers file < environment < flags), runs the daemon
//! or a one-shot command, and maps errors to exit codes. Nothing here
//! spawns a task or speaks a protocol.
//!
//! One-shot commands live in submodules: `check`, `status` and `reset`
//! (which read the lease object), `step-down` (which asks the local daemon),
//! `man` (the manual pages).
//!
//!
//! Exit codes (documented in docs/reference.md):
//! - 0: success;
//! - 64: bad config or command line (one line per problem on stderr);
//! - 65: `status` found a lease object that is not a usable lease record;
//! - 69: the store cannot be used: unreachable, missing bucket, no
//!   permission, no credentials, or it fails the conformance probe;
//! - `run --once`: the program's own exit code (128 + n for signal n);
//!   75 when `--no-wait` found another copy leading; 76 when leadership
//!   ended while the program ran (it was stopped); 79 when `on_acquired`
//!   failed (the program did not run); 143 when stopped by a signal first;
//! - `fenced`: 77 refused (a newer term has written the object), 66 the
//!   object is absent (`get`) or the body unreadable, 75 other writers kept
//!   landing in between, 65 the object belongs to another election;
//! - 1: anything else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::daemon::{self, DaemonError};
use crate::exit::{
    EXIT_CONFIG, EXIT_HOOK_FAILED, EXIT_LEADERSHIP_LOST, EXIT_OTHER_LEADS, EXIT_STOPPED,
    EXIT_UNAVAILABLE, EXIT_UNKNOWN,
};
use crate::lease::store::s3::S3Store;
use crate::surfaces::logging::{self, LogFormat};

/// `println!` for a command's own output: when the reader has gone away
/// (`s3-elector check | head -1`), the command ends quietly (exit 0)
/// instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod check;
mod fenced;
mod is_leader;
mod man;
mod status;
mod step_down;
mod watch;

/// Leader election through one S3 object and conditional writes.
#[derive(Debug, Parser)]
#[command(name = "s3-elector", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "S3_ELECTOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `s3_elector=debug` [default: info;
    /// warn under `run --once`, whose output is the job's, unless
    /// `--output log`]
    #[arg(long, global = true, env = "S3_ELECTOR_LOG")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: take part in the election until stopped.
    Run(RunArgs),
    /// Validate the config, credentials, bucket, permissions and the store's
    /// conditional-write support; print the implied request cost.
    Check(CheckArgs),
    /// Read the lease object and print holder, term and age.
    Status(StatusArgs),
    /// Ask the daemon running with this config to give up leadership
    /// (needs `http.step_down: true`; SIGUSR1 does the same).
    StepDown(DaemonArgs),
    /// Exit 0 when this copy leads with more than `retry_period` of its
    /// lease left, 1 when it does not, 255 when its daemon cannot be asked:
    /// systemd's `ExecCondition=` convention (run a timer's job only on the
    /// leader).
    IsLeader(IsLeaderArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (roff): the main page to stdout, e.g.
    /// `s3-elector man > s3-elector.1`, or one page per command into a
    /// directory with `--dir` (`s3-elector.1`, `s3-elector-run.1`, ...).
    Man {
        /// Write every page into this directory (made if missing).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Internal: the process between the daemon and its supervised program
    /// (started by `run -- PROGRAM`, not by users).
    #[command(hide = true)]
    Guard(GuardArgs),
    /// Fenced writes: S3 writes that refuse a stale term (for the
    /// supervised program and hooks, which get `S3_ELECTOR_TERM`).
    Fenced(fenced::FencedArgs),
    /// Replace a lease object that is not a usable lease record (corrupt,
    /// another program's, a newer schema) with a released record. Needs the
    /// object's current ETag, as printed by `status`.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// Config file (YAML). Optional when the settings below say enough (at
    /// least the election and the bucket), as for a container sidecar.
    #[arg(long, short, env = "S3_ELECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// This copy's identity; overrides `identity` in the file.
    #[arg(long, env = "S3_ELECTOR_IDENTITY")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub settings: OverrideFlags,
}

/// Settings that replace the file's (flag, else environment, else file).
#[derive(Debug, Args)]
#[command(next_help_heading = "Settings (each replaces the config file's)")]
pub struct OverrideFlags {
    /// `election`: the election's name.
    #[arg(long, env = "S3_ELECTOR_ELECTION")]
    pub election: Option<String>,
    /// `s3.bucket`: the bucket of the lease object.
    #[arg(long, env = "S3_ELECTOR_BUCKET")]
    pub bucket: Option<String>,
    /// `s3.prefix`: the lease key is PREFIX/ELECTION/lease.json.
    #[arg(long, env = "S3_ELECTOR_PREFIX")]
    pub prefix: Option<String>,
    /// `s3.key`: the lease object's whole key (instead of the prefix).
    #[arg(long, env = "S3_ELECTOR_KEY")]
    pub key: Option<String>,
    /// `s3.region`.
    #[arg(long, env = "S3_ELECTOR_REGION")]
    pub region: Option<String>,
    /// `s3.endpoint_url`: an S3-compatible store's URL.
    #[arg(long, env = "S3_ELECTOR_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// `s3.force_path_style`: true or false.
    #[arg(long, env = "S3_ELECTOR_FORCE_PATH_STYLE", value_name = "BOOL")]
    pub force_path_style: Option<bool>,
    /// `timing.lease_duration`, e.g. 15s.
    #[arg(long, env = "S3_ELECTOR_LEASE_DURATION", value_name = "DURATION")]
    pub lease_duration: Option<String>,
    /// `timing.renew_deadline`, e.g. 10s.
    #[arg(long, env = "S3_ELECTOR_RENEW_DEADLINE", value_name = "DURATION")]
    pub renew_deadline: Option<String>,
    /// `timing.retry_period`, e.g. 2s.
    #[arg(long, env = "S3_ELECTOR_RETRY_PERIOD", value_name = "DURATION")]
    pub retry_period: Option<String>,
    /// `s3.request_timeout`: one S3 request's limit, e.g. 1s.
    #[arg(long, env = "S3_ELECTOR_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// `s3.connect_timeout`, e.g. 500ms.
    #[arg(long, env = "S3_ELECTOR_CONNECT_TIMEOUT", value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// `identity_from`: hostname or ec2-instance-id.
    #[arg(long, env = "S3_ELECTOR_IDENTITY_FROM", value_name = "SOURCE")]
    pub identity_from: Option<String>,
    /// `health.http_url`: a URL whose 2xx answer means healthy, e.g.
    /// http://127.0.0.1:8080/healthz.
    #[arg(long, env = "S3_ELECTOR_HEALTH_URL", value_name = "URL")]
    pub health_url: Option<String>,
    /// `health.interval`: time between health checks, e.g. 5s.
    #[arg(long, env = "S3_ELECTOR_HEALTH_INTERVAL", value_name = "DURATION")]
    pub health_interval: Option<String>,
}

impl Common {
    /// The flags and variables given, as config overrides.
    fn overrides(&self) -> Overrides {
        let s = &self.settings;
        Overrides::default()
            .text("election", s.election.as_deref())
            .text("s3.bucket", s.bucket.as_deref())
            .text("s3.prefix", s.prefix.as_deref())
            .text("s3.key", s.key.as_deref())
            .text("s3.region", s.region.as_deref())
            .text("s3.endpoint_url", s.endpoint_url.as_deref())
            .flag("s3.force_path_style", s.force_path_style)
            .text("timing.lease_duration", s.lease_duration.as_deref())
            .text("timing.renew_deadline", s.renew_deadline.as_deref())
            .text("timing.retry_period", s.retry_period.as_deref())
            .text("s3.request_timeout", s.request_timeout.as_deref())
            .text("s3.connect_timeout", s.connect_timeout.as_deref())
            .text("identity_from", s.identity_from.as_deref())
            .text("health.http_url", s.health_url.as_deref())
            .text("health.interval", s.health_interval.as_deref())
    }

    /// The file's name, or where the settings came from without one.
    fn source(&self) -> String {
        match &self.config {
            Some(p) => p.display().to_string(),
            None => crate::config::NO_FILE.into(),
        }
    }
}

/// For the commands that ask the local daemon.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub common: Common,
    /// Where the daemon listens, when not `http.listen` (as given to `run`).
    #[arg(long, env = "S3_ELECTOR_HTTP_LISTEN")]
    pub http_listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct IsLeaderArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Print `{"leader": true, "term": 9, "valid_for_seconds": 4.0,
    /// "election": "batch"}` (`term` null when this copy does not lead)
    /// instead of a sentence; the exit codes are the same.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// Join even if the store fails the conformance probe. Two leaders at
    /// once are then possible.
    #[arg(long, env = "S3_ELECTOR_UNSAFE_SKIP_CONFORMANCE_CHECK")]
    pub unsafe_skip_conformance_check: bool,
    /// Overrides `http.listen` (e.g. a pod IP in Kubernetes).
    #[arg(long, env = "S3_ELECTOR_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Overrides `advertise_address` (e.g. `$(POD_IP):4040` in Kubernetes).
    #[arg(long, env = "S3_ELECTOR_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// Overrides `status_file`.
    #[arg(long, env = "S3_ELECTOR_STATUS_FILE")]
    pub status_file: Option<PathBuf>,
    /// Run the program one time: wait until this copy leads, run it,
    /// release, and exit with its exit code (consul lock, etcdctl lock).
    #[arg(long, env = "S3_ELECTOR_ONCE")]
    pub once: bool,
    /// With `--once`: when another live copy leads, exit 75 at once
    /// instead of waiting.
    #[arg(long, requires = "once", env = "S3_ELECTOR_NO_WAIT")]
    pub no_wait: bool,
    /// Where the program's stdout and stderr go: `inherit` (this
    /// command's own, so `run --once -- job > out.txt` works) or `log`
    /// (read and logged line by line, `source = "program"`) [default:
    /// inherit with `--once`, else log]
    #[arg(long, value_enum, env = "S3_ELECTOR_OUTPUT")]
    pub output: Option<crate::work::procs::Output>,
    /// A program to run only while this copy leads (after `--`).
    #[arg(last = true, value_name = "PROGRAM")]
    pub child: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// SIGTERM-to-SIGKILL grace for the program, in milliseconds.
    #[arg(long)]
    pub grace_ms: u64,
    /// The daemon's deadline at start, as a reading of CLOCK_MONOTONIC in
    /// nanoseconds (0: none yet).
    #[arg(long, default_value_t = 0)]
    pub until_ns: u64,
    /// The daemon's pid (the guard's parent).
    #[arg(long)]
    pub parent: i32,
    /// The program gets the guard's own stderr (the daemon's), not the
    /// pipe at 4 + LISTEN_FDS (`--output inherit`).
    #[arg(long)]
    pub inherit_stderr: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub program: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: Common,
    /// Validate the config only; skip credentials, bucket and probe (and
    /// only warn about what this host lacks: it may be meant for another).
    #[arg(long, env = "S3_ELECTOR_CHECK_OFFLINE")]
    pub offline: bool,
    /// Overrides `status_file`, as for `run`.
    #[arg(long, env = "S3_ELECTOR_STATUS_FILE")]
    pub status_file: Option<PathBuf>,
    /// Overrides `http.listen`, as for `run`.
    #[arg(long, env = "S3_ELECTOR_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// The program `run` would supervise (after `--`): checked to exist
    /// and be executable.
    #[arg(last = true, value_name = "PROGRAM")]
    pub program: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Print JSON instead of text.
    #[arg(long, env = "S3_ELECTOR_STATUS_JSON")]
    pub json: bool,
    /// Print one line per change of leader until stopped, from the local
    /// daemon while one answers (no S3 request), else by reading the lease
    /// every `retry_period`.
    #[arg(long, env = "S3_ELECTOR_STATUS_WATCH", conflicts_with = "json")]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub common: Common,
    /// The ETag of the object to replace, exactly as `status` prints it.
    #[arg(long, env = "S3_ELECTOR_RESET_ETAG")]
    pub etag: String,
    /// The term to write, when neither the term floor nor the object tells
    /// the last one (the highest is used when several are known).
    #[arg(long, env = "S3_ELECTOR_RESET_TERM")]
    pub term: Option<u64>,
}

/// Run a command; returns the process exit code.
/// The exit code for a command line clap refused: 0 for `--help` and
/// `--version` (printed to stdout), else 64 like any other bad command line
/// (clap's own would be 2), and for `is-leader` 255: under systemd's
/// `ExecCondition=` any code from 1 to 254 means "skip the job quietly", so
/// a mistyped condition would skip it forever without a failure.
pub fn usage_exit_code(e: &clap::Error, args: impl IntoIterator<Item = String>) -> i32 {
    if !e.use_stderr() {
        return 0;
    }
    if args.into_iter().skip(1).any(|a| a == "is-leader") {
        return EXIT_UNKNOWN;
    }
    EXIT_CONFIG
}

pub fn main(cli: Cli) -> i32 {
    if let Command::Guard(g) = &cli.command {
        // No logging, no runtime: a small process that only watches.
        return crate::work::guard::run(
            std::time::Duration::from_millis(g.grace_ms),
            g.until_ns,
            &g.program,
            g.parent,
            g.inherit_stderr,
        );
    }
    // Held until the command returns: dropping it flushes the log queue.
    // Under `run --once` the output is the job's: the daemon says only
    // what went wrong, unless told otherwise (--log, S3_ELECTOR_LOG).
    let quiet = matches!(&cli.command,
        Command::Run(r) if r.once && r.output != Some(crate::work::procs::Output::Log));
    let filter = cli
        .log
        .clone()
        .unwrap_or_else(|| if quiet { "warn" } else { "info" }.into());
    let _log = logging::init(cli.log_format, &filter);
    // Commands that need no runtime.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "s3-elector", &mut std::io::stdout());
            return 0;
        }
        Command::Man { dir } => return man::man(dir.as_deref()),
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3-elector: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(a).await,
            Command::Check(c) => check::check(c).await,
            Command::Status(s) => status::status(s).await,
            Command::Reset(r) => status::reset(r).await,
            Command::StepDown(c) => step_down::step_down(c).await,
            Command::IsLeader(c) => is_leader::is_leader(c).await,
            Command::Fenced(f) => fenced::fenced(f).await,
            Command::Completions { .. } | Command::Man { .. } | Command::Guard(_) => {
                unreachable!("handled above")
            }
        }
    })
}

/// Load the config and identity, or print every problem and give exit 64.
async fn load(c: &Common) -> Result<(Config, String), i32> {
    load_with(c, c.overrides()).await
}

/// [`load`] with `overrides` (the command's own and [`Common::overrides`]).
async fn load_with(c: &Common, overrides: Overrides) -> Result<(Config, String), i32> {
    let cfg = Config::load_layered(c.config.as_deref(), &overrides).map_err(|e| {
        for l in e.lines() {
            eprintln!("s3-elector: {l}");
        }
        EXIT_CONFIG
    })?;
    let discovered = if cfg.needs_instance_id(c.identity.as_deref()) {
        Some(crate::lease::store::s3::ec2_instance_id().await.map_err(|e| {
            eprintln!("s3-elector: `identity_from: ec2-instance-id`: {e}; set `identity` or S3_ELECTOR_IDENTITY off EC2");
            EXIT_UNAVAILABLE
        })?)
    } else {
        None
    };
    let id = cfg
        .resolve_identity(c.identity.as_deref(), discovered.as_deref())
        .map_err(|p| {
            eprintln!("s3-elector: config error: {p}");
            EXIT_CONFIG
        })?;
    Ok((cfg, id))
}

/// Load the config for a command that asks the local daemon, with the
/// listen address it was given (`--http-listen`, `S3_ELECTOR_HTTP_LISTEN`).
/// Also the identity set explicitly (`--identity`, `S3_ELECTOR_IDENTITY`,
/// or the file's `identity`), which the answering daemon must have; a
/// default identity (the hostname) is not compared.
async fn load_for_daemon(a: &DaemonArgs) -> Result<(Config, Option<String>), i32> {
    let overrides = a
        .common
        .overrides()
        .text("http.listen", a.http_listen.as_deref());
    let cfg = load_with(&a.common, overrides).await?.0;
    let explicit = a.common.identity.clone().or_else(|| cfg.identity.clone());
    Ok((cfg, explicit))
}

/// Where the daemon running with `cfg` on this host answers HTTP (an
/// unspecified listen address is reached on loopback).
fn local_daemon(cfg: &Config) -> std::net::SocketAddr {
    // Validation guarantees the address parses.
    let mut addr: std::net::SocketAddr = cfg.http.listen_addr().parse().expect("validated address");
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Is the daemon that answered at `addr` (its `/leader` view) the one
/// `cfg` configures? Its `election` must match, and its `identity` too
/// where one was set explicitly (see [`load_for_daemon`]). On a host with two elections, a command
/// pointed at the wrong port must not act on the other election's answer.
fn same_daemon(
    cfg: &Config,
    identity: Option<&str>,
    addr: &std::net::SocketAddr,
    view: &serde_json::Value,
) -> Result<(), String> {
    let theirs = view["election"].as_str().unwrap_or("");
    if theirs != cfg.election {
        return Err(format!(
            "the daemon at {addr} runs election {theirs}, not {}; point --http-listen (or http.listen) at this election's daemon",
            cfg.election
        ));
    }
    if let Some(mine) = identity {
        let id = view["identity"].as_str().unwrap_or("");
        if id != mine {
            return Err(format!(
                "the daemon at {addr} is {id}, not {mine} (election {theirs}); point --http-listen at this copy's daemon"
            ));
        }
    }
    Ok(())
}

/// Hooks that could never start (missing, not executable), one line each.
fn programs_problems(cfg: &Config) -> Vec<String> {
    let h = &cfg.hooks;
    [
        ("hooks.on_acquired", &h.on_acquired),
        ("hooks.on_lost", &h.on_lost),
        ("hooks.on_leader_changed", &h.on_leader_changed),
    ]
    .into_iter()
    .filter_map(|(name, hook)| {
        let hook = hook.as_ref()?;
        let program = hook.command.first()?;
        crate::work::procs::find_program(program, hook.working_dir.as_deref())
            .err()
            .map(|e| format!("config error: `{name}.command`: {e}"))
    })
    .chain(cfg.health.command.as_ref().and_then(|c| {
        let program = c.first()?;
        crate::work::procs::find_program(program, cfg.health.working_dir.as_deref())
            .err()
            .map(|e| format!("config error: `health.command`: {e}"))
    }))
    .collect()
}

async fn connect(cfg: &Config) -> Result<S3Store, i32> {
    S3Store::connect(&cfg.s3).await.map_err(|e| {
        eprintln!("s3-elector: {e}");
        EXIT_UNAVAILABLE
    })
}

/// `run`: the daemon, until a stop signal.
async fn run(a: RunArgs) -> i32 {
    let status_file = a.status_file.as_ref().map(|p| p.to_string_lossy());
    let overrides = a
        .common
        .overrides()
        .text("http.listen", a.http_listen.as_deref())
        .text("advertise_address", a.advertise_address.as_deref())
        .text("status_file", status_file.as_deref());
    let (cfg, identity) = match load_with(&a.common, overrides).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if a.once && a.child.is_empty() {
        eprintln!("s3-elector: `run --once` needs a program after `--`, e.g. `run --once -- /usr/local/bin/job`");
        return EXIT_CONFIG;
    }
    if a.child.first().is_some_and(|c| c.is_empty()) {
        eprintln!("s3-elector: the program after `--` is empty");
        return EXIT_CONFIG;
    }
    let mut problems = programs_problems(&cfg);
    if let Some(p) = a.child.first() {
        if let Err(e) = crate::work::procs::find_program(p, None) {
            problems.push(format!("the program after `--`: {e}"));
        }
    }
    if !problems.is_empty() {
        for p in problems {
            eprintln!("s3-elector: {p}");
        }
        return EXIT_CONFIG;
    }
    let signals = match crate::signals::listen() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("s3-elector: cannot install signal handlers: {e}");
            return 1;
        }
    };
    let config_file = a
        .common
        .config
        .as_deref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    let settings = daemon::DaemonSpec {
        config_file,
        config: cfg,
        identity,
        program: a.child,
        unsafe_skip_conformance_check: a.unsafe_skip_conformance_check,
        once: a.once.then_some(daemon::Once { no_wait: a.no_wait }),
        output: a.output.unwrap_or(if a.once {
            crate::work::procs::Output::Inherit
        } else {
            crate::work::procs::Output::Log
        }),
    };
    let once = a.once;
    match daemon::run(settings, signals).await {
        Ok(ended) => exit_code(ended, once),
        Err(e) => {
            eprintln!("s3-elector: {e}");
            match e {
                DaemonError::Store(_) | DaemonError::Probe { .. } => EXIT_UNAVAILABLE,
                DaemonError::Listen { .. } | DaemonError::Stop(_) => 1,
                // The pod label's setup: where the API is, who this pod is.
                DaemonError::Kube(_) => EXIT_CONFIG,
            }
        }
    }
}

/// The exit code for how the daemon ended.
fn exit_code(ended: daemon::Ended, once: bool) -> i32 {
    use crate::work::supervisor::Finished;
    match ended {
        daemon::Ended::Stopped if once => EXIT_STOPPED,
        daemon::Ended::Stopped => 0,
        daemon::Ended::Once(Finished::Exited(code)) => code,
        daemon::Ended::Once(Finished::Lost) => EXIT_LEADERSHIP_LOST,
        daemon::Ended::Once(Finished::HookFailed) => EXIT_HOOK_FAILED,
        daemon::Ended::OtherLeads => EXIT_OTHER_LEADS,
    }
}
