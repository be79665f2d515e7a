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
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, EXIT_CONFIG};
use crate::cost::Cost;
use crate::election::{Election, ElectionConfig};
use crate::probe::{self, ProbeError};
use crate::record::{new_nonce, wall_now, LeaseRecord, RecordError, SCHEMA, VERSION};
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
    Check(Common),
    /// Read the lease object and print holder, term and age.
    Status(StatusArgs),
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

/// Set up `tracing` as the command line asks.
pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => b.json().flatten_event(true).init(),
        LogFormat::Text => b.init(),
    }
}

/// Run a command; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
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
        }
    })
}

/// Load the config and identity, or print every problem and give exit 64.
fn load(c: &Common) -> Result<(Config, String), i32> {
    let cfg = Config::load(&c.config).map_err(|e| {
        for l in e.lines() {
            eprintln!("s3-elector: {l}");
        }
        EXIT_CONFIG
    })?;
    let id = cfg.resolve_identity(c.identity.as_deref()).map_err(|p| {
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
    let (cfg, identity) = match load(&a.common) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut stop_signals = match crate::signals::listen() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("s3-elector: cannot install signal handlers: {e}");
            return 1;
        }
    };
    let store = match connect(&cfg).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let key = cfg.lease_key();
    let shutdown = CancellationToken::new();

    // The probe: retry while the store is merely unreachable; give up on
    // anything only an operator can fix.
    let skip = a.unsafe_skip_conformance_check || cfg.unsafe_skip_conformance_check;
    let mut backoff = Duration::from_millis(500);
    loop {
        let attempt = tokio::select! {
            biased;
            _ = stop_signals.recv() => return 0,
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
                    _ = stop_signals.recv() => return 0,
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

    let ecfg = ElectionConfig {
        identity,
        election: cfg.election.clone(),
        key,
        lease_duration: cfg.timing.lease_duration,
        renew_deadline: cfg.timing.renew_deadline,
        retry_period: cfg.timing.retry_period,
        advertise_address: cfg.advertise_address.clone(),
        jitter: true,
        step_down_cooloff: cfg.timing.step_down_cooloff,
        release_wait: cfg.child_kill_grace() + Duration::from_secs(1),
    };
    let election = Election::new(store, ecfg);
    let task = tokio::spawn(election.run(shutdown.clone()));
    tokio::select! {
        _ = stop_signals.recv() => {
            shutdown.cancel();
        }
    }
    // The release is one request bounded by s3.request_timeout; allow for
    // an acquire or renewal in flight before it.
    let bound = cfg.s3.request_timeout * 3 + Duration::from_secs(1);
    match tokio::time::timeout(bound, task).await {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            error!(error = %e, "election task failed");
            1
        }
        Err(_) => {
            error!(?bound, "graceful stop took too long; exiting");
            1
        }
    }
}

async fn check(c: Common) -> i32 {
    let (cfg, identity) = match load(&c) {
        Ok(x) => x,
        Err(code) => return code,
    };
    println!("config: ok ({})", c.config.display());
    println!("identity: {identity}");
    println!("lease: {}", target(&cfg));
    let store = match connect(&cfg).await {
        Ok(s) => {
            println!("credentials: ok");
            s
        }
        Err(code) => return code,
    };
    let code = match probe::run(&store, &cfg.lease_key(), &identity).await {
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
    let t = &cfg.timing;
    let cost = Cost::for_retry_period(t.retry_period);
    println!(
        "requests: leader {:.0} PUT/hour, each follower {:.0} GET/hour (retry_period {})",
        cost.leader_puts_per_hour,
        cost.follower_gets_per_hour,
        humantime::format_duration(t.retry_period)
    );
    println!(
        "cost (S3 Standard, us-east-1, 30 days): leader ${:.2}/month, each follower ${:.2}/month, 3 copies ${:.2}/month",
        cost.leader_usd_month,
        cost.follower_usd_month,
        cost.total_usd_month(3)
    );
    code
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
    let (cfg, _) = match load(&a.common) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let store = match connect(&cfg).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let key = cfg.lease_key();
    let obj = match store.get(&key).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("s3-elector: cannot read {}: {e}", target(&cfg));
            return EXIT_UNAVAILABLE;
        }
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
        let parsed = if o.size > crate::record::MAX_RECORD_BYTES as u64 {
            Err(RecordError::TooLarge { size: o.size })
        } else {
            LeaseRecord::parse(&o.body)
        };
        match parsed {
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
    let (cfg, identity) = match load(&a.common) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let store = match connect(&cfg).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let key = cfg.lease_key();
    let obj = match store.get(&key).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            eprintln!(
                "s3-elector: {} does not exist; nothing to reset",
                target(&cfg)
            );
            return 1;
        }
        Err(e) => {
            eprintln!("s3-elector: cannot read {}: {e}", target(&cfg));
            return EXIT_UNAVAILABLE;
        }
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
    if obj.size <= crate::record::MAX_RECORD_BYTES as u64 {
        if let Ok(r) = LeaseRecord::parse(&obj.body) {
            eprintln!(
                "s3-elector: {} is a valid lease record ({r}); reset only replaces unusable objects. Stop or step down the holder instead",
                target(&cfg)
            );
            return 1;
        }
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
