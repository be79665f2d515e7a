//! The daemon: assembles the tasks, and owns the startup and the shutdown
//! order. No other module spawns the daemon's long-running tasks.
//!
//! Data flows one way: config → store → probe → election → `State` (a
//! `watch` channel) → surfaces (HTTP, status file, metrics, systemd) and
//! work (hooks, the supervised program). The election is built with its
//! inputs ([`Links`]) and reports facts
//! ([`Event`](crate::lease::election::Event)s: renewals go to metrics,
//! releases to the registry); it knows nothing of
//! HTTP or processes. The channels back into it are drawn in
//! [`crate::lease::election`]'s docs.
//!
//! # Startup order
//! 1. Bind the HTTP port (a port in use is reported at once).
//! 2. Connect to the store, then run the conformance probe until it passes.
//! 3. Start the health check (its first check at once), build the
//!    election with its verdict, then the leader-only work *before* the
//!    election runs (the release barrier must exist before it can lead).
//! 4. Surfaces, the registry, then the election; then tell systemd READY.
//!
//! # Shutdown order ([`Running::shutdown`]), within the [`StopBudget`]
//! 1. The supervised program, then the release: one token stops both; the
//!    election publishes "not leader" first, and its release waits for the
//!    program and any hook started while leading to be gone, so no
//!    leader-only work runs while another copy can lead.
//! 2. Hooks (a running `on_lost` may finish within its own timeout).
//! 3. The status file (its last write says `stopped`) and the leader's pod
//!    label (removed, if this copy set it).
//! 4. The registry (wakes the successors after the release, removes our
//!    entry).
//! 5. HTTP, metrics, the health check and systemd notifications, last, so
//!    that the stop can be watched to the end.
//! 6. Any process group still alive is killed.

mod budget;
mod steps;

pub use budget::StopBudget;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::lease::election::{Control, Election, Links, State};
use crate::lease::probe::ProbeError;
use crate::lease::store::s3::{S3Store, SetupError};
use crate::peers::twins::Twins;
use crate::signals::Signal;
use crate::surfaces::metrics::{MeteredStore, Metrics};
use crate::surfaces::problems::Problems;
use crate::surfaces::{http, logging, notify, pod_label, status_file};
use crate::work::backoff::Backoff;
use crate::work::supervisor::OnceEvent;
use crate::work::{hooks, procs, supervisor};

pub use steps::{pod_label_api, target};

/// The executable that runs the program and hooks under their guard: this
/// very one, even if replaced on disk since (an upgrade while running).
const GUARD: &str = "/proc/self/exe";

/// OS signals, as [`crate::signals::listen`] delivers them.
pub type Signals = mpsc::UnboundedReceiver<Signal>;

/// Everything the daemon is started with.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// Validated, with overrides applied.
    pub config: Config,
    pub identity: String,
    /// The program to run only while leading (after `--`); empty for none.
    pub program: Vec<String>,
    /// Join even if the store fails the conformance probe.
    pub unsafe_skip_conformance_check: bool,
    /// `run --once`: run the program one time, then release and stop.
    pub once: Option<Once>,
    /// Where the program's stdout and stderr go (`--output`).
    pub output: crate::work::procs::Output,
    /// The config file (absolute), passed to the program and the hooks as
    /// `S3_ELECTOR_CONFIG`, so the `s3-elector` commands they run (e.g.
    /// `fenced put`) use the same settings.
    pub config_file: Option<std::path::PathBuf>,
}

/// `run --once [--no-wait]`.
#[derive(Debug, Clone, Copy)]
pub struct Once {
    /// Give up when another live copy leads, instead of waiting for it.
    pub no_wait: bool,
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A stop signal (or, with `--once`, a stop before the run ended).
    Stopped,
    /// `--once`: the run ended as said.
    Once(supervisor::Finished),
    /// `--once --no-wait`: another live copy leads; the program never ran.
    OtherLeads,
}

/// Why the daemon could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on `http.listen` {address}: {source}; choose another address or set `http.enabled: false`")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] SetupError),
    #[error(transparent)]
    Kube(Box<crate::surfaces::kube::KubeError>),
    #[error("cannot join the election on {target}: {source}")]
    Probe { target: String, source: ProbeError },
    #[error("{0}")]
    Stop(String),
}

/// Run until a stop signal (with `--once`: until the program has run); a
/// leader hands over before returning.
pub async fn run(s: DaemonSpec, mut signals: Signals) -> Result<Ended, DaemonError> {
    crate::surfaces::journal::set_election(&s.config.election);
    if let Some(f) = &s.config_file {
        crate::work::procs::set_child_env(vec![(
            "S3_ELECTOR_CONFIG".into(),
            f.to_string_lossy().into_owned(),
        )]);
    }
    let (identity, lease) = (s.identity.clone(), s.config.timing.lease_duration);
    let no_wait = s.once.is_some_and(|o| o.no_wait);
    let Some(mut running) = start(s, &mut signals).await? else {
        return Ok(Ended::Stopped); // stopped before joining
    };
    let mut once = running.once.take();
    let mut state = running.state.clone();
    // With --once: the program has started, so only its end decides.
    let mut started = false;
    let ended = loop {
        tokio::select! {
            // The run's own outcome first: a stop signal arriving at the
            // same moment does not hide the program's exit code.
            biased;
            ev = async { once.as_mut().expect("checked by the guard").recv().await }, if once.is_some() => match ev {
                Some(OnceEvent::Started) => started = true,
                Some(OnceEvent::Ended(f)) => break Ended::Once(f),
                None => once = None,
            },
            // Until a stop signal (or the signal thread is gone).
            sig = signals.recv() => match sig {
                Some(Signal::StepDown) => running.step_down("SIGUSR1").await,
                _ => break Ended::Stopped,
            },
            _ = steps::another_leads(&mut state, &identity, lease), if no_wait && !started => {
                info!(event = "not_run", leader = state.borrow().leader.as_deref().unwrap_or(""),
                    "another copy leads; not running the program (run --once --no-wait)");
                break Ended::OtherLeads;
            }
        }
    };
    match running.shutdown().await {
        Ok(()) => Ok(ended),
        // The run's outcome stands (the stop's own trouble is logged).
        Err(e) if ended != Ended::Stopped => {
            warn!(error = %e, "the stop after the run was not clean");
            Ok(ended)
        }
        Err(e) => Err(e),
    }
}

/// The running daemon: its tasks, and the two tokens that stop them.
pub struct Running {
    control: mpsc::Sender<Control>,
    /// Stops the election and the supervised program.
    stop_election: CancellationToken,
    /// Stops everything else, after the election has ended.
    stop_surfaces: CancellationToken,
    program: Option<JoinHandle<()>>,
    election: JoinHandle<()>,
    hooks: Option<JoinHandle<()>>,
    status_file: Option<JoinHandle<()>>,
    pod_label: Option<JoinHandle<()>>,
    registry: Option<JoinHandle<()>>,
    /// HTTP, metrics and systemd notifications.
    rest: Vec<JoinHandle<()>>,
    /// How long the stop may take, part by part.
    budget: StopBudget,
    /// The election's state.
    state: watch::Receiver<State>,
    /// `--once`: told when the program starts and how the run ends.
    once: Option<mpsc::UnboundedReceiver<OnceEvent>>,
}

/// Start every task, in the order the module docs give. `Ok(None)`: a stop
/// signal came before the store was ready.
pub async fn start(s: DaemonSpec, signals: &mut Signals) -> Result<Option<Running>, DaemonError> {
    let DaemonSpec {
        config: cfg,
        identity,
        program,
        unsafe_skip_conformance_check,
        once,
        output,
        config_file: _,
    } = s;
    // Descriptors inherited from whoever started us (but 0, 1, 2 and
    // LISTEN_FDS) reach no program or hook.
    crate::work::procs::no_strays();
    let listener = steps::bind_http(&cfg).await?;
    let kube = steps::pod_label_api(&cfg).map_err(DaemonError::Kube)?;
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(MeteredStore::new(
        S3Store::connect(&cfg.s3).await?,
        metrics.clone(),
    ));
    let skip = unsafe_skip_conformance_check || cfg.unsafe_skip_conformance_check;
    if !steps::probe_until_ready(&store, &cfg, &identity, skip, signals).await? {
        return Ok(None);
    }

    // This process start's incarnation: in its records, its registry entry
    // and /leader, so that another process with the same identity shows.
    let incarnation = crate::lease::record::new_incarnation();
    info!(identity = %identity, incarnation = %incarnation, "this process's incarnation");
    let problems = Problems::new();
    let twins = Twins::new(
        &identity,
        &incarnation,
        cfg.registry.refresh * 2,
        problems.clone(),
    );

    // The election, built with its inputs.
    let advertise = steps::advertise_address(&cfg, listener.as_ref());
    let (successors_tx, successors) = watch::channel(Vec::new());
    // Release barriers: the program, and hooks started while leading.
    let (idle_tx, idle) = watch::channel(true);
    let (hooks_idle_tx, hooks_idle) = watch::channel(true);
    let mut release_barriers = Vec::new();
    if !program.is_empty() {
        release_barriers.push(idle);
    }
    if cfg.hooks.any() {
        release_barriers.push(hooks_idle);
    }
    let (watched_tx, watched) = watch::channel(None);
    // The health check runs from before the election's first read (its
    // first check at once), in a task of its own; the election only reads
    // its verdict.
    let stop_surfaces = CancellationToken::new();
    if cfg.health.enabled()
        && !cfg.registry.enabled
        && cfg.health.when_none_healthy == crate::config::WhenNoneHealthy::Stay
    {
        warn!("health checks are on but the registry is off: a leader names no successors, so an unhealthy leader never hands over (set `registry.enabled: true`, or `health.when_none_healthy: release`)");
    }
    let (health_tx, health_rx) = watch::channel(if cfg.health.enabled() {
        crate::health::Report::new()
    } else {
        crate::health::Report::without_check()
    });
    let health = crate::health::check::spec_of(&cfg.health).map(|mut h| {
        h.env = vec![
            ("S3_ELECTOR_IDENTITY".into(), identity.clone()),
            ("S3_ELECTOR_ELECTION".into(), cfg.election.clone()),
        ];
        let task = tokio::spawn(crate::health::check::run(
            h,
            Some(GUARD.into()),
            health_tx.clone(),
            stop_surfaces.clone(),
        ));
        (health_rx.clone(), task)
    });
    // A failing on_acquired counts as unhealthy until it succeeds, with a
    // check or without one.
    let work_health = cfg.hooks.on_acquired.is_some()
        && cfg.hooks.on_acquired_failure == crate::config::FailurePolicy::Release;
    let health_link = (health.is_some() || work_health).then(|| health_rx.clone());
    let election = Election::new(
        store.clone(),
        steps::election_config(&cfg, &identity, &incarnation, advertise.clone()),
        Links {
            successors: cfg.registry.enabled.then_some(successors),
            release_barriers,
            watched: cfg.registry.enabled.then_some(watched),
            health: health_link.clone(),
            ..Links::default()
        },
    );
    let state = election.subscribe();
    let control = election.control_sender();
    let events = || election.events();
    let stop_election = CancellationToken::new();
    let started = Instant::now();

    // Leader-only work, before the election can lead. The program waits
    // for on_acquired to succeed, when there is one.
    let (acquired_tx, acquired_rx) = watch::channel(0u64);
    let ordered = !program.is_empty() && cfg.hooks.on_acquired.is_some();
    let (once_tx, once_rx) = match once {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let backoff = Backoff::reporting(
        cfg.backoff_base(),
        cfg.backoff_max(),
        problems.clone(),
        Some(metrics.clone()),
        health_link.is_some().then(|| health_tx.clone()),
    );
    let program = (!program.is_empty()).then(|| {
        let spec = supervisor::ChildSpec {
            argv: program,
            guard: Some(GUARD.into()),
            after: ordered.then_some(acquired_rx),
            on_exit: cfg.child.on_exit,
            kill_grace: cfg.child_kill_grace(),
            election: cfg.election.clone(),
            identity: identity.clone(),
            once: once_tx.clone(),
            backoff: Some(backoff.clone()),
            lease: cfg.timing.lease_duration,
            output,
        };
        let (state, control, stop) = (state.clone(), control.clone(), stop_election.clone());
        tokio::spawn(supervisor::run(spec, state, idle_tx, control, stop))
    });
    let hooks = cfg.hooks.any().then(|| {
        let spec = hooks::HooksSpec {
            hooks: cfg.hooks.clone(),
            election: cfg.election.clone(),
            identity: identity.clone(),
            guard: Some(GUARD.into()),
            acquired: ordered.then_some(acquired_tx),
            idle: Some(hooks_idle_tx),
            once: once_tx,
            kill_grace: cfg.child_kill_grace(),
            backoff: Some(backoff.clone()),
            only_to_healthy: cfg.registry.enabled,
        };
        let (state, control, stop) = (state.clone(), control.clone(), stop_surfaces.clone());
        tokio::spawn(hooks::run(spec, state, control, stop))
    });

    // Surfaces.
    let mut rest: Vec<_> = health.into_iter().map(|(_, task)| task).collect();
    let registry_waker = Arc::new(Notify::new());
    let (status_file_problem, status_file_problem_rx) = watch::channel(None);
    let status_file_problem_rx = cfg.status_file.is_some().then_some(status_file_problem_rx);
    let (pod_label_problem, pod_label_problem_rx) = watch::channel(None);
    let pod_label_problem_rx = kube.is_some().then_some(pod_label_problem_rx);
    if let Some(l) = listener {
        let ctx = Arc::new(http::Ctx {
            status_file_problem: status_file_problem_rx,
            pod_label_problem: pod_label_problem_rx,
            problems: problems.clone(),
            state: state.clone(),
            metrics: metrics.clone(),
            step_down: cfg.http.step_down.then(|| control.clone()),
            wake: cfg
                .http
                .wake
                .then(|| (election.waker(), registry_waker.clone())),
            lease_duration: cfg.timing.lease_duration,
            health_margin: cfg.timing.retry_period,
            started,
        });
        let limits = http::Limits {
            max_connections: cfg.http.max_connections,
            first_request_timeout: cfg.http.first_request_timeout,
            header_timeout: cfg.http.header_timeout,
        };
        rest.push(tokio::spawn(http::serve(
            l,
            ctx,
            limits,
            stop_surfaces.clone(),
        )));
    }
    rest.push(tokio::spawn(
        metrics.clone().observe(events(), stop_surfaces.clone()),
    ));
    rest.push(tokio::spawn(logging::report_drops(stop_surfaces.clone())));
    rest.push(tokio::spawn(
        twins.clone().run(events(), stop_surfaces.clone()),
    ));
    let status_file = cfg.status_file.clone().map(|p| {
        let every = cfg.timing.lease_duration / 2;
        tokio::spawn(status_file::run(
            p,
            state.clone(),
            every,
            problems.clone(),
            status_file_problem,
            metrics.clone(),
            stop_surfaces.clone(),
        ))
    });
    let pod_label = kube.map(|api| {
        let s = pod_label::PodLabelSpec {
            pod: api.api.target().pod.clone(),
            recheck: cfg.timing.lease_duration,
            retry: cfg.timing.retry_period,
            final_timeout: cfg.kubernetes.request_timeout,
        };
        tokio::spawn(pod_label::run(
            api,
            s,
            state.clone(),
            pod_label_problem,
            metrics.clone(),
            stop_surfaces.clone(),
        ))
    });
    let lease = cfg.timing.lease_duration;
    rest.push(tokio::spawn(notify::run(
        state.clone(),
        lease,
        started,
        stop_surfaces.clone(),
    )));

    // Hand-over hints.
    // This copy's entry goes out before its election's first read (see
    // `registry::announce`), bounded by one request.
    let registry_cfg = steps::registry_settings(&cfg, &identity, &incarnation, advertise);
    let announced = cfg.registry.enabled
        && tokio::time::timeout(
            cfg.s3.request_timeout,
            crate::peers::registry::announce(&store, &registry_cfg),
        )
        .await
        .unwrap_or(false);
    let registry = cfg.registry.enabled.then(|| {
        tokio::spawn(crate::peers::registry::run(
            store.clone(),
            registry_cfg,
            state.clone(),
            successors_tx,
            events(),
            registry_waker,
            stop_surfaces.clone(),
            announced,
            Some(twins.clone()),
        ))
    });

    // Far followers watch a named successor instead of reading the lease
    // at the renewal rate.
    if cfg.registry.enabled {
        rest.push(tokio::spawn(crate::peers::watch::run(
            state.clone(),
            watched_tx,
            election.waker(),
            crate::peers::watch::WatchSpec {
                election: cfg.election.clone(),
                retry_period: cfg.timing.retry_period,
                lease_duration: cfg.timing.lease_duration,
            },
            stop_surfaces.clone(),
        )));
    }
    let budget = StopBudget::of(&cfg, program.is_some());
    info!(budget = %budget.describe(), "a graceful stop takes at most {}", humantime::format_duration(budget.total()));
    let election = tokio::spawn(election.run(stop_election.clone()));
    notify::ready();
    Ok(Some(Running {
        control,
        stop_election,
        stop_surfaces,
        program,
        election,
        hooks,
        status_file,
        pod_label,
        registry,
        rest,
        budget,
        state,
        once: once_rx,
    }))
}

impl Running {
    /// Ask the election to give up leadership (if held).
    pub async fn step_down(&self, reason: &str) {
        let cmd = Control::StepDown {
            reason: reason.into(),
            term: None,
            cooloff: None,
            only_to_healthy: false,
        };
        let _ = self.control.send(cmd).await;
    }

    /// Stop in the order the module docs give, within the stop budget: one
    /// deadline, from which each step takes its time ([`StopBudget`]).
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        let budget = self.budget;
        let deadline = Instant::now() + budget.total();
        // systemd waits for the whole budget, whatever TimeoutStopSec says.
        notify::stopping(budget.total() + Duration::from_secs(1));
        let mut result = Ok(());
        let mut cut: Vec<&str> = Vec::new();
        // 1. The program, then the release (which waits for the program).
        self.stop_election.cancel();
        let until = deadline - budget.after_release();
        if let Some(t) = self.program {
            if timeout_at(until, t).await.is_err() {
                cut.push("the supervised program's stop");
            }
        }
        match timeout_at(until, self.election).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(error = %e, "election task failed");
                result = Err(DaemonError::Stop(format!("the election task failed: {e}")));
            }
            Err(_) => {
                cut.push("the release (the lease expires instead)");
                result = Err(DaemonError::Stop(format!(
                    "the release did not finish within the stop budget {}",
                    budget.describe()
                )));
            }
        }
        // 2.-5. Everything that only reads the state.
        self.stop_surfaces.cancel();
        if let Some(t) = self.hooks {
            // A running on_lost may finish, within its own timeout.
            if timeout_at(deadline - budget.after_hooks(), t)
                .await
                .is_err()
            {
                cut.push("hooks");
            }
        }
        if let Some(t) = self.status_file {
            if timeout_at(deadline - budget.registry, t).await.is_err() {
                cut.push("the status file's last write");
            }
        }
        if let Some(t) = self.pod_label {
            if timeout_at(deadline - budget.registry, t).await.is_err() {
                cut.push("the removal of the leader's pod label");
            }
        }
        if let Some(t) = self.registry {
            // Wakes the successors, then removes our entry.
            if timeout_at(deadline, t).await.is_err() {
                cut.push("the registry (wake-ups, entry removal)");
            }
        }
        for t in self.rest {
            let _ = timeout_at(deadline.max(Instant::now() + Duration::from_millis(100)), t).await;
        }
        if !cut.is_empty() {
            error!(event = "stop_cut", cut = ?cut, budget = %budget.describe(),
                "the graceful stop reached its budget; cut what remained: {}", cut.join(", "));
        }
        // 6. Nothing we started outlives us.
        procs::kill_all_now();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Running` whose election ends when told to (or never) and whose
    /// hooks never end, with a small budget.
    fn running(election_ends: bool) -> Running {
        let stop_election = CancellationToken::new();
        let stop = stop_election.clone();
        let election = tokio::spawn(async move {
            stop.cancelled().await;
            if !election_ends {
                std::future::pending::<()>().await;
            }
        });
        let (control, _rx) = mpsc::channel(1);
        Running {
            control,
            stop_election,
            stop_surfaces: CancellationToken::new(),
            program: None,
            election,
            hooks: Some(tokio::spawn(std::future::pending())),
            status_file: None,
            pod_label: None,
            registry: None,
            rest: Vec::new(),
            state: Election::new(
                crate::lease::store::memory::MemoryStore::new(),
                crate::work::supervisor::tests::ecfg("a"),
                Links::default(),
            )
            .subscribe(),
            once: None,
            budget: StopBudget {
                program: Duration::ZERO,
                release: Duration::from_secs(2),
                on_lost: Duration::from_secs(5),
                pod_label: Duration::ZERO,
                registry: Duration::ZERO,
                rest: Duration::from_secs(1),
            },
        }
    }

    /// A step still running when its time is up is cut: the stop ends
    /// within the budget, and only a cut release makes it an error.
    #[tokio::test(start_paused = true)]
    async fn the_stop_cuts_what_outlives_its_budget() {
        let t0 = Instant::now();
        let r = running(true).shutdown().await;
        let took = t0.elapsed();
        assert!(r.is_ok(), "{r:?}");
        assert!(
            took >= Duration::from_secs(7) && took <= Duration::from_secs(8),
            "{took:?}"
        );

        let t0 = Instant::now();
        let r = running(false).shutdown().await;
        let took = t0.elapsed();
        assert!(
            matches!(r, Err(DaemonError::Stop(ref m)) if m.contains("release")),
            "{r:?}"
        );
        // The release gets its 2 s, the hooks still their share after it.
        assert!(
            took >= Duration::from_secs(7) && took <= Duration::from_secs(8),
            "{took:?}"
        );
    }
}
