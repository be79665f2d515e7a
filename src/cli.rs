//! The command line: `run`, `check`, `status` and `reset`.
//!
//! Exit codes (documented in the README):
//! - 0: success;
//! - 64: bad config or command line (one line per problem on stderr);
//! - 65: `status` found a lease object that is not a usable lease record;
//! - 69: the store cannot be used: unreachable, missing bucket, no
//!   permission, no credentials, or it fails the conformance probe;
//! - 1: anything else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, EXIT_CONFIG};
use crate::cost::Cost;
use crate::election::{Command as ElectionCommand, Election, ElectionConfig};
use crate::metrics::{MeteredStore, Metrics};
use crate::probe::{self, ProbeError};
use crate::record::{new_nonce, wall_now, LeaseRecord, RecordError, SCHEMA, VERSION};
use crate::signals::Signal;
use crate::store::s3::S3Store;
use crate::store::{LeaseStore, StoreError};

/// Exit code for a lease object that is not a usable record (`EX_DATAERR`).
pub const EXIT_DATA: i32 = 65;
/// Exit code when the store cannot be used (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: i32 = 69;

/// Leader election through one S3 object and conditional writes.
#[derive(Debug, Parser)]
#[command(name = "s3-elector", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "S3_ELECTOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `s3_elector=debug`.
    #[arg(long, global = true, env = "S3_ELECTOR_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    StepDown(Common),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `s3-elector man > s3-elector.1`.
    Man,
    /// Replace a lease object that is not a usable lease record (corrupt,
    /// another program's, a newer schema) with a released record. Needs the
    /// object's current ETag, as printed by `status`.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// Config file (YAML).
    #[arg(long, short, env = "S3_ELECTOR_CONFIG")]
    pub config: PathBuf,
    /// This copy's identity; overrides `identity` in the file.
    #[arg(long, env = "S3_ELECTOR_IDENTITY")]
    pub identity: Option<String>,
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
    /// A program to run only while this copy leads (after `--`).
    #[arg(last = true, value_name = "PROGRAM")]
    pub child: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: Common,
    /// Validate the config only; skip credentials, bucket and probe.
    #[arg(long, env = "S3_ELECTOR_CHECK_OFFLINE")]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print JSON instead of text.
    #[arg(long, env = "S3_ELECTOR_STATUS_JSON")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub common: Common,
    /// The ETag of the object to replace, exactly as `status` prints it.
    #[arg(long, env = "S3_ELECTOR_RESET_ETAG")]
    pub etag: String,
}

/// Set up `tracing` as the command line asks. The filter syntax is
/// `target=level,...,default_level` (e.g. `s3_elector=debug,info`).
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter: Targets = cli.log.parse().unwrap_or_else(|e| {
        eprintln!(
            "s3-elector: --log / S3_ELECTOR_LOG `{}` is not a log filter ({e}); write e.g. `info` or `s3_elector=debug,info`. Using `info`.",
            cli.log
        );
        Targets::new().with_default(tracing::Level::INFO)
    });
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    match cli.log_format {
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_filter(filter))
            .init(),
        LogFormat::Text => registry.with(layer.with_filter(filter)).init(),
    }
}

/// Run a command; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    // Commands that need no runtime.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "s3-elector", &mut std::io::stdout());
            return 0;
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("s3-elector: cannot write the man page: {e}");
                    1
                }
            };
        }
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
            Command::Check(c) => check(c).await,
            Command::Status(s) => status(s).await,
            Command::Reset(r) => reset(r).await,
            Command::StepDown(c) => step_down(c).await,
            Command::Completions { .. } | Command::Man => unreachable!("handled above"),
        }
    })
}

/// Load the config and identity, or print every problem and give exit 64.
async fn load(c: &Common) -> Result<(Config, String), i32> {
    let cfg = Config::load(&c.config).map_err(|e| {
        for l in e.lines() {
            eprintln!("s3-elector: {l}");
        }
        EXIT_CONFIG
    })?;
    let discovered = if cfg.needs_instance_id(c.identity.as_deref()) {
        Some(crate::store::s3::ec2_instance_id().await.map_err(|e| {
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

async fn connect(cfg: &Config) -> Result<S3Store, i32> {
    S3Store::connect(&cfg.s3).await.map_err(|e| {
        eprintln!("s3-elector: {e}");
        EXIT_UNAVAILABLE
    })
}

fn target(cfg: &Config) -> String {
    format!("s3://{}/{}", cfg.s3.bucket, cfg.lease_key())
}

async fn run(a: RunArgs) -> i32 {
    let (mut cfg, identity) = match load(&a.common).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if a.http_listen.is_some() || a.status_file.is_some() || a.advertise_address.is_some() {
        if let Some(l) = &a.http_listen {
            cfg.http.listen = Some(l.clone());
        }
        if let Some(l) = &a.advertise_address {
            cfg.advertise_address = Some(l.clone());
        }
        if let Some(f) = &a.status_file {
            cfg.status_file = Some(f.clone());
        }
        let problems = cfg.validate();
        if !problems.is_empty() {
            for p in problems {
                eprintln!("s3-elector: config error (with command-line overrides): {p}");
            }
            return EXIT_CONFIG;
        }
    }
    if a.child.first().is_some_and(|c| c.is_empty()) {
        eprintln!("s3-elector: the program after `--` is empty");
        return EXIT_CONFIG;
    }
    let mut signals = match crate::signals::listen() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("s3-elector: cannot install signal handlers: {e}");
            return 1;
        }
    };
    // Bind before anything else: a port in use is reported at once.
    let listener = if cfg.http.enabled {
        let listen = cfg.http.listen_addr();
        match tokio::net::TcpListener::bind(&listen).await {
            Ok(l) => {
                let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                if l.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
                    warn!(listen = %addr, "serving HTTP beyond loopback, as `http.allow_non_loopback` allows");
                } else {
                    info!(listen = %addr, "serving HTTP");
                }
                Some(l)
            }
            // A port the operator chose must be served: fail loudly.
            Err(e) if cfg.http.listen.is_some() => {
                eprintln!(
                    "s3-elector: cannot listen on `http.listen` {listen}: {e}; choose another address or set `http.enabled: false`"
                );
                return 1;
            }
            // The default port is often taken by another copy on the same
            // host (tests, demos): keep electing, say so clearly.
            Err(e) => {
                error!(
                    listen = %listen, error = %e,
                    "cannot listen on the default HTTP address; running WITHOUT the HTTP endpoint. Set `http.listen` to a free address (or --http-listen), or `http.enabled: false`"
                );
                None
            }
        }
    } else {
        None
    };
    let s3 = match connect(&cfg).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(MeteredStore::new(s3, metrics.clone()));
    let key = cfg.lease_key();

    // The probe: retry while the store is merely unreachable; give up on
    // anything only an operator can fix.
    let skip = a.unsafe_skip_conformance_check || cfg.unsafe_skip_conformance_check;
    let mut backoff = Duration::from_millis(500);
    loop {
        let attempt = tokio::select! {
            biased;
            Some(Signal::Stop) = signals.recv() => return 0,
            r = probe::run(&store, &key, &identity) => r,
        };
        match attempt {
            Ok(r) => {
                info!(target = %target(&cfg), steps = r.steps.len(), "store conformance probe passed");
                if let Some(w) = r.cleanup_warning {
                    warn!("{w}");
                }
                break;
            }
            Err(ProbeError::NonConforming(m)) if skip => {
                error!(problem = %m, "UNSAFE: the store fails the conformance probe and unsafe_skip_conformance_check is set; two leaders are possible");
                break;
            }
            Err(ProbeError::Store(StoreError::Transient(m))) => {
                warn!(error = %m, retry_in = ?backoff, "store unreachable; retrying the conformance probe");
                tokio::select! {
                    biased;
                    Some(Signal::Stop) = signals.recv() => return 0,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(cfg.timing.lease_duration);
            }
            Err(e) => {
                eprintln!(
                    "s3-elector: cannot join the election on {}: {e}",
                    target(&cfg)
                );
                return EXIT_UNAVAILABLE;
            }
        }
    }

    // Where other copies can reach our HTTP endpoint: the configured
    // address, else the bound one when it is a specific IP.
    let advertise = cfg.advertise_address.clone().or_else(|| {
        listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .filter(|a| !a.ip().is_unspecified())
            .map(|a| a.to_string())
    });
    if cfg.registry.enabled && advertise.is_none() {
        info!("no address to advertise (HTTP off, or bound to an unspecified address): other copies cannot wake this one; set `advertise_address`");
    }
    let ecfg = ElectionConfig {
        identity: identity.clone(),
        election: cfg.election.clone(),
        key,
        lease_duration: cfg.timing.lease_duration,
        renew_deadline: cfg.timing.renew_deadline,
        retry_period: cfg.timing.retry_period,
        advertise_address: advertise.clone(),
        jitter: true,
        step_down_cooloff: cfg.timing.step_down_cooloff,
        release_wait: cfg.child_kill_grace() + Duration::from_secs(1),
        rank_delay: crate::election::rank_delay_for(cfg.timing.retry_period),
    };
    let mut election = Election::new(store.clone(), ecfg);
    let commands = election.command_sender();
    let state = election.subscribe();
    let waker = election.waker();
    let registry_waker = Arc::new(tokio::sync::Notify::new());
    let stop_election = CancellationToken::new();
    let stop_surfaces = CancellationToken::new();
    let registry_task = if cfg.registry.enabled {
        let (succ_tx, succ_rx) = watch::channel(Vec::new());
        election.set_successors(succ_rx);
        let peers = crate::registry::Peers::default();
        {
            let peers = peers.clone();
            let me = identity.clone();
            election.set_on_released(Box::new(move |term| {
                let peers = peers.clone();
                let me = me.clone();
                Box::pin(async move {
                    let n = peers.wake_all(&me).await;
                    info!(term, woken = n, "woke the other candidates");
                })
            }));
        }
        let settings = crate::registry::Settings {
            prefix: cfg.registry_prefix(),
            election: cfg.election.clone(),
            identity: identity.clone(),
            address: advertise.clone(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            refresh: cfg.registry.refresh,
            list_interval: cfg.registry.list_interval,
            // HTTP only, no S3 cost: often enough that a dead candidate
            // is dropped before it matters.
            check_interval: (cfg.timing.retry_period * 2)
                .clamp(Duration::from_secs(1), Duration::from_secs(10))
                .min(cfg.registry.list_interval),
        };
        Some(tokio::spawn(crate::registry::run(
            store.clone(),
            settings,
            state.clone(),
            succ_tx,
            peers,
            registry_waker.clone(),
            stop_surfaces.clone(),
        )))
    } else {
        None
    };
    {
        let m = metrics.clone();
        election.set_renew_observer(move |d| m.observe_renewal(d));
    }
    let started = tokio::time::Instant::now();

    // Leader-only work first: the release barrier must exist before the
    // election can lead.
    let mut tasks = Vec::new();
    let child_task = if a.child.is_empty() {
        None
    } else {
        let (idle_tx, idle_rx) = watch::channel(true);
        election.set_release_barrier(idle_rx);
        let spec = crate::supervisor::ChildSpec {
            argv: a.child.clone(),
            on_exit: cfg.child.on_exit,
            kill_grace: cfg.child_kill_grace(),
            election: cfg.election.clone(),
            identity: identity.clone(),
        };
        Some(tokio::spawn(crate::supervisor::run(
            spec,
            state.clone(),
            idle_tx,
            commands.clone(),
            stop_election.clone(),
        )))
    };
    if let Some(l) = listener {
        let ctx = Arc::new(crate::http::Ctx {
            state: state.clone(),
            metrics: metrics.clone(),
            step_down: cfg.http.step_down.then(|| commands.clone()),
            wake: cfg
                .http
                .wake
                .then(|| (waker.clone(), registry_waker.clone())),
            lease_duration: cfg.timing.lease_duration,
            health_margin: cfg.timing.retry_period,
            started,
        });
        tasks.push(tokio::spawn(crate::http::serve(
            l,
            ctx,
            cfg.http.max_connections,
            cfg.http.header_timeout,
            stop_surfaces.clone(),
        )));
    }
    let status_task = cfg.status_file.clone().map(|p| {
        tokio::spawn(crate::status_file::run(
            p,
            state.clone(),
            cfg.timing.lease_duration / 2,
            stop_surfaces.clone(),
        ))
    });
    let hooks = &cfg.hooks;
    let hooks_task = (hooks.on_acquired.is_some()
        || hooks.on_lost.is_some()
        || hooks.on_leader_changed.is_some())
    .then(|| {
        tokio::spawn(crate::hooks::run(
            hooks.clone(),
            cfg.election.clone(),
            identity.clone(),
            state.clone(),
            commands.clone(),
            stop_surfaces.clone(),
        ))
    });
    tasks.push(tokio::spawn(crate::notify::run(
        state.clone(),
        cfg.timing.lease_duration,
        started,
        stop_surfaces.clone(),
    )));
    let election_task = tokio::spawn(election.run(stop_election.clone()));
    crate::notify::ready();

    // Until a stop signal (or the signal thread is gone).
    while let Some(Signal::StepDown) = signals.recv().await {
        let _ = commands
            .send(ElectionCommand::StepDown {
                reason: "SIGUSR1".into(),
            })
            .await;
    }
    crate::notify::stopping();
    // The child is stopped first; the election's release waits for it.
    stop_election.cancel();
    let mut code = 0;
    if let Some(t) = child_task {
        let _ = t.await;
    }
    // The release is one request bounded by s3.request_timeout; allow for
    // an acquire or renewal in flight before it.
    let bound = cfg.s3.request_timeout * 3 + cfg.child_kill_grace() + Duration::from_secs(2);
    match tokio::time::timeout(bound, election_task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            error!(error = %e, "election task failed");
            code = 1;
        }
        Err(_) => {
            error!(?bound, "graceful stop took too long; exiting");
            code = 1;
        }
    }
    stop_surfaces.cancel();
    if let Some(t) = hooks_task {
        // A running on_lost is allowed to finish, within its own timeout.
        let longest = [&hooks.on_acquired, &hooks.on_lost, &hooks.on_leader_changed]
            .iter()
            .filter_map(|h| h.as_ref().map(|h| h.timeout))
            .max()
            .unwrap_or_default();
        if tokio::time::timeout(longest * 2 + Duration::from_secs(5), t)
            .await
            .is_err()
        {
            warn!("hooks did not finish in time");
        }
    }
    if let Some(t) = status_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if let Some(t) = registry_task {
        // Removes our entry: bounded by its own 2 s timeout.
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    crate::procs::kill_all_now();
    code
}

/// Ask the local daemon to step down, through `POST /step-down`.
async fn step_down(c: Common) -> i32 {
    let (cfg, _) = match load(&c).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if !cfg.http.enabled || !cfg.http.step_down {
        eprintln!("s3-elector: step-down needs `http.enabled: true` and `http.step_down: true` in the config (or send SIGUSR1 to the daemon)");
        return EXIT_CONFIG;
    }
    // Validation guarantees the address parses.
    let mut addr: std::net::SocketAddr = cfg.http.listen_addr().parse().expect("validated address");
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    match post_step_down(addr).await {
        Ok((202, body)) => {
            println!("step-down requested: {}", body.trim());
            0
        }
        Ok((status, body)) => {
            eprintln!(
                "s3-elector: the daemon at {addr} answered {status}: {}",
                body.trim()
            );
            1
        }
        Err(e) => {
            eprintln!("s3-elector: cannot reach the daemon at http://{addr}: {e}; is it running?");
            EXIT_UNAVAILABLE
        }
    }
}

async fn post_step_down(addr: std::net::SocketAddr) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("POST /step-down HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.take(64 * 1024).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 10s"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

async fn check(a: CheckArgs) -> i32 {
    let c = a.common;
    let (cfg, identity) = match load(&c).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    println!("config: ok ({})", c.config.display());
    println!("identity: {identity}");
    println!("lease: {}", target(&cfg));
    if a.offline {
        println!("network checks: SKIPPED (--offline): credentials, bucket, permissions and the conformance probe were not checked");
        print_cost(&cfg);
        return 0;
    }
    let store = match connect(&cfg).await {
        Ok(s) => {
            println!("credentials: ok");
            s
        }
        Err(code) => return code,
    };
    // One retry for a transient failure: the first request may only have
    // taught the client the store's clock.
    let mut result = probe::run(&store, &cfg.lease_key(), &identity).await;
    if matches!(result, Err(ProbeError::Store(StoreError::Transient(_)))) {
        result = probe::run(&store, &cfg.lease_key(), &identity).await;
    }
    let code = match result {
        Ok(r) => {
            for s in &r.steps {
                println!("probe: {s}");
            }
            println!("conformance probe: passed");
            if let Some(w) = r.cleanup_warning {
                println!("warning: {w}");
            }
            0
        }
        Err(e) => {
            eprintln!("s3-elector: check failed for {}: {e}", target(&cfg));
            EXIT_UNAVAILABLE
        }
    };
    print_cost(&cfg);
    code
}

fn print_cost(cfg: &Config) {
    let t = &cfg.timing;
    let registry = cfg
        .registry
        .enabled
        .then_some(crate::cost::RegistrySchedule {
            list_interval: cfg.registry.list_interval,
            refresh: cfg.registry.refresh,
        });
    let cost = Cost::new(t.retry_period, registry);
    println!(
        "requests: leader {:.0} PUT/hour and {:.0} LIST/hour, each follower {:.0} GET/hour and {:.0} PUT/hour (retry_period {}{})",
        cost.leader_puts_per_hour,
        cost.leader_lists_per_hour,
        cost.follower_gets_per_hour,
        cost.follower_puts_per_hour,
        humantime::format_duration(t.retry_period),
        if registry.is_some() { ", candidate registry on" } else { "" }
    );
    println!(
        "cost (S3 Standard, us-east-1, 30 days): leader ${:.2}/month, each follower ${:.2}/month, 3 copies ${:.2}/month",
        cost.leader_usd_month,
        cost.follower_usd_month,
        cost.total_usd_month(3)
    );
}

/// Load the config, connect, and read the lease object (for `status` and
/// `reset`); on failure, the message is printed and the exit code returned.
async fn read_lease(
    c: &Common,
) -> Result<
    (
        Config,
        String,
        S3Store,
        String,
        Option<crate::store::Object>,
    ),
    i32,
> {
    let (cfg, identity) = load(c).await?;
    let store = connect(&cfg).await?;
    let key = cfg.lease_key();
    match get_retrying_once(&store, &key).await {
        Ok(o) => Ok((cfg, identity, store, key, o)),
        Err(e) => {
            eprintln!("s3-elector: cannot read {}: {e}", target(&cfg));
            Err(EXIT_UNAVAILABLE)
        }
    }
}

/// Read, retrying once after a transient failure (e.g. clock skew learnt).
async fn get_retrying_once(
    store: &S3Store,
    key: &str,
) -> Result<Option<crate::store::Object>, StoreError> {
    match store.get(key).await {
        Err(StoreError::Transient(_)) => store.get(key).await,
        other => other,
    }
}

/// What `status --json` prints.
#[derive(Debug, serde::Serialize)]
struct StatusJson {
    election: String,
    bucket: String,
    key: String,
    exists: bool,
    etag: Option<String>,
    record: Option<LeaseRecord>,
    /// Why the object is not a usable record, if it is not.
    problem: Option<String>,
    /// Seconds since the last write, by this machine's wall clock.
    age_seconds: Option<f64>,
    /// Held, not released, and written less than a lease ago (wall clock;
    /// off by the clock offset between hosts).
    looks_live: bool,
}

async fn status(a: StatusArgs) -> i32 {
    let (cfg, _, _, key, obj) = match read_lease(&a.common).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut out = StatusJson {
        election: cfg.election.clone(),
        bucket: cfg.s3.bucket.clone(),
        key: key.clone(),
        exists: obj.is_some(),
        etag: obj.as_ref().map(|o| o.etag.clone()),
        record: None,
        problem: None,
        age_seconds: None,
        looks_live: false,
    };
    if let Some(o) = &obj {
        match o.record() {
            Ok(r) => {
                let age = r.wall_age(SystemTime::now());
                out.age_seconds = age.map(|d| d.as_secs_f64());
                out.looks_live = !r.released && age.is_some_and(|d| d < r.lease_duration());
                out.record = Some(r);
            }
            Err(e) => out.problem = Some(format!("the lease object {e}")),
        }
    }
    if a.json {
        // A struct of strings, numbers and options always serializes.
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("status serializes")
        );
    } else {
        print_status(&out);
    }
    if out.problem.is_some() {
        EXIT_DATA
    } else {
        0
    }
}

fn print_status(s: &StatusJson) {
    println!("election:    {}", s.election);
    println!("lease:       s3://{}/{}", s.bucket, s.key);
    if !s.exists {
        println!("state:       no lease object yet (nobody has led)");
        return;
    }
    println!("etag:        {}", s.etag.as_deref().unwrap_or(""));
    if let Some(p) = &s.problem {
        println!("problem:     {p}");
        println!("             the daemon will not touch it; after checking what wrote it, replace it with");
        println!(
            "             s3-elector reset --config FILE --etag '{}'",
            s.etag.as_deref().unwrap_or("")
        );
        return;
    }
    let Some(r) = &s.record else { return };
    let state = if r.released {
        "released (free to take)"
    } else if s.looks_live {
        "held, looks live"
    } else {
        "held, looks expired (no renewal within the lease)"
    };
    println!("holder:      {}", r.holder);
    if let Some(a) = &r.holder_address {
        println!("address:     {a}");
    }
    println!("state:       {state}");
    println!("term:        {}", r.term);
    println!("transitions: {}", r.transitions);
    println!(
        "lease:       {}",
        humantime::format_duration(r.lease_duration())
    );
    println!("acquired:    {}", r.acquired_at);
    match s.age_seconds {
        Some(a) => println!(
            "renewed:     {} ({a:.1}s ago by this machine's clock)",
            r.renewed_at
        ),
        None => println!(
            "renewed:     {} (in the future by this machine's clock)",
            r.renewed_at
        ),
    }
}

async fn reset(a: ResetArgs) -> i32 {
    let (cfg, identity, store, key, obj) = match read_lease(&a.common).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(obj) = obj else {
        eprintln!(
            "s3-elector: {} does not exist; nothing to reset",
            target(&cfg)
        );
        return 1;
    };
    if obj.etag != a.etag {
        eprintln!(
            "s3-elector: {} has ETag {}, not {}; it changed since you looked. Run `s3-elector status` again",
            target(&cfg),
            obj.etag,
            a.etag
        );
        return 1;
    }
    if let Ok(r) = obj.record() {
        eprintln!(
            "s3-elector: {} is a valid lease record ({r}); reset only replaces unusable objects. Stop or step down the holder instead",
            target(&cfg)
        );
        return 1;
    }
    let term = RecordError::salvage_term(&obj.body).unwrap_or(0);
    let now = wall_now();
    let rec = LeaseRecord {
        schema: SCHEMA.into(),
        version: VERSION,
        election: cfg.election.clone(),
        holder: identity,
        term,
        lease_duration_ms: cfg.timing.lease_duration.as_millis() as u64,
        acquired_at: now.clone(),
        renewed_at: now,
        transitions: 0,
        nonce: new_nonce(),
        released: true,
        holder_address: None,
        successors: Vec::new(),
    };
    match store.put_if_match(&key, rec.to_body(), &a.etag).await {
        Ok(_) => {
            println!(
                "replaced {} with a released lease record (term {term}); copies can now elect a leader",
                target(&cfg)
            );
            0
        }
        Err(StoreError::PreconditionFailed) => {
            eprintln!("s3-elector: {} changed while resetting; nothing written. Run `s3-elector status` again", target(&cfg));
            1
        }
        Err(e) => {
            eprintln!("s3-elector: reset of {} failed: {e}", target(&cfg));
            EXIT_UNAVAILABLE
        }
    }
}
