//! Prometheus metrics: the election's state (read from the watch channel at
//! scrape time), renewal latency, and every S3 request by operation and
//! outcome (counted by [`MeteredStore`], a decorator around the real store).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::lease::election::{Event, State};
use crate::lease::store::{LeaseStore, Listed, Object, StoreError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct S3Labels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkLabels {
    work: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaderLabels {
    election: String,
    identity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The standard `process_*` metrics, read from /proc at scrape time.
struct Process {
    cpu: Counter<f64, AtomicU64>,
    resident: Gauge,
    virtual_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge<f64, AtomicU64>,
}

impl Process {
    fn register(r: &mut Registry) -> Process {
        let p = Process {
            cpu: Counter::default(),
            resident: Gauge::default(),
            virtual_bytes: Gauge::default(),
            open_fds: Gauge::default(),
            max_fds: Gauge::default(),
            start_time: Gauge::default(),
        };
        r.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            p.cpu.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            p.resident.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            p.virtual_bytes.clone(),
        );
        r.register(
            "process_open_fds",
            "Number of open file descriptors",
            p.open_fds.clone(),
        );
        r.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            p.max_fds.clone(),
        );
        r.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            p.start_time.clone(),
        );
        p
    }

    /// Read /proc/self; a value that cannot be read keeps its last one.
    fn update(&self) {
        // /proc reports times in USER_HZ, 100 on Linux whatever the kernel's HZ.
        const USER_HZ: f64 = 100.0;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // After "pid (comm) " comes field 3 (state); utime is field 14.
            let f: Vec<&str> = stat
                .rfind(')')
                .map(|i| stat[i + 2..].split(' ').collect())
                .unwrap_or_default();
            let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            if let (Some(u), Some(s)) = (num(14), num(15)) {
                let cpu = (u + s) as f64 / USER_HZ;
                self.cpu.inc_by((cpu - self.cpu.get()).max(0.0));
            }
            let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            });
            if let (Some(start), Some(boot)) = (num(22), boot) {
                self.start_time.set(boot + start as f64 / USER_HZ);
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kib = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            };
            if let Some(v) = kib("VmRSS:") {
                self.resident.set(v * 1024);
            }
            if let Some(v) = kib("VmSize:") {
                self.virtual_bytes.set(v * 1024);
            }
        }
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(d.count() as i64);
        }
        let max = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3)?.parse::<i64>().ok())
            });
        if let Some(m) = max {
            self.max_fds.set(m);
        }
    }
}

/// All metrics of one daemon.
pub struct Metrics {
    process: Process,
    registry: Registry,
    s3_requests: Family<S3Labels, Counter>,
    renew_latency: Histogram,
    is_leader: Gauge,
    /// `s3_elector_leader{election, identity}`: 1 on the copy that leads,
    /// 0 on the others; names the leader and carries the election, so a
    /// fleet's copies can be aggregated (as client-go's
    /// `leader_election_master_status{name}`).
    leader: Family<LeaderLabels, Gauge>,
    term: Gauge,
    transitions: Gauge,
    remaining: Gauge<f64, AtomicU64>,
    wakes: Counter,
    http_shed: Family<ShedLabels, Counter>,
    status_file_errors: Counter,
    pod_label_errors: Counter,
    work_failures: Family<WorkLabels, Counter>,
    health_ok: Gauge,
    health_transitions: Counter,
    /// Log lines dropped because stderr did not keep up; brought up to
    /// [`crate::surfaces::logging::dropped_lines`] at scrape time.
    log_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        // The process_* metrics every exporter has carry no prefix; ours do.
        let mut root = Registry::default();
        let process = Process::register(&mut root);
        let registry = root.sub_registry_with_prefix("s3_elector");
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the labels say which build runs",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let s3_requests = Family::<S3Labels, Counter>::default();
        registry.register(
            "s3_requests",
            "S3 requests by operation and outcome (ok, not_found, precondition_failed = 412, conflict = 409, transient, ...)",
            s3_requests.clone(),
        );
        let renew_latency = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "renew_latency_seconds",
            "Latency of successful lease renewals",
            renew_latency.clone(),
        );
        let is_leader = Gauge::default();
        registry.register(
            "is_leader",
            "1 while this copy holds a valid lease",
            is_leader.clone(),
        );
        let leader = Family::<LeaderLabels, Gauge>::default();
        registry.register(
            "leader",
            "1 on the copy that leads, 0 on the others; the labels name the election and this copy, for aggregating a fleet and alerting on no leader or two",
            leader.clone(),
        );
        let term = Gauge::default();
        registry.register(
            "term",
            "Term (fencing token) of the lease as last seen",
            term.clone(),
        );
        let transitions = Gauge::default();
        registry.register(
            "transitions",
            "Changes of holder recorded in the lease",
            transitions.clone(),
        );
        let remaining = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "lease_remaining_seconds",
            "Leader: time to its renew deadline; follower: time until the observed lease could expire",
            remaining.clone(),
        );
        let wakes = Counter::default();
        registry.register(
            "wake_ups_received",
            "POST /wake requests received (each causes at most one rate-limited read)",
            wakes.clone(),
        );
        let http_shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "http_connections_shed",
            "HTTP connections closed to keep the endpoint answering: evicted_fresh (no complete request yet) or evicted_idle (longest-idle keep-alive) for a newcomer past http.max_connections, refused (all busy), first_request_timeout",
            http_shed.clone(),
        );
        // Every known reason and work starts at 0, so that the series
        // exist (for rate() and the alert rules) before the first event.
        for reason in [
            "evicted_fresh",
            "evicted_idle",
            "refused",
            "first_request_timeout",
        ] {
            let _ = http_shed.get_or_create(&ShedLabels { reason });
        }
        let status_file_errors = Counter::default();
        registry.register(
            "status_file_write_errors",
            "Failed writes of the status file (its directory missing or not writable, a full disk); /readyz answers 503 while the last one failed",
            status_file_errors.clone(),
        );
        let pod_label_errors = Counter::default();
        registry.register(
            "pod_label_errors",
            "Failed Kubernetes API requests of the leader's pod label (kubernetes.leader_label), each retried; /leader's problem says why while they fail",
            pod_label_errors.clone(),
        );
        let work_failures = Family::<WorkLabels, Counter>::default();
        registry.register(
            "work_failures",
            "Failures of leader-only work that made this copy step down and back off (work: on_acquired, program = exited within a lease of starting); /leader's problem says how many in a row",
            work_failures.clone(),
        );
        for work in [
            crate::work::backoff::Work::OnAcquired,
            crate::work::backoff::Work::Program,
        ] {
            let _ = work_failures.get_or_create(&WorkLabels { work: work.name() });
        }
        let health_ok = Gauge::default();
        registry.register(
            "health_ok",
            "1 while this copy is healthy (its health check says so, or none is configured, and on_acquired is not failing), 0 while unhealthy or not yet checked; an unhealthy copy hands the lease over and takes it only when no healthy copy is live",
            health_ok.clone(),
        );
        let health_transitions = Counter::default();
        registry.register(
            "health_transitions",
            "Changes of this copy's health verdict (the first verdict counts)",
            health_transitions.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because stderr did not keep up (a stalled journald or pipe); logging never holds up the election",
            log_dropped.clone(),
        );
        Metrics {
            process,
            status_file_errors,
            pod_label_errors,
            work_failures,
            health_ok,
            health_transitions,
            wakes,
            http_shed,
            log_dropped,
            registry: root,
            s3_requests,
            renew_latency,
            is_leader,
            leader,
            term,
            transitions,
            remaining,
        }
    }

    /// Count one request.
    pub fn count(&self, operation: &'static str, outcome: &'static str) {
        self.s3_requests
            .get_or_create(&S3Labels { operation, outcome })
            .inc();
    }

    /// Count one HTTP connection shed (`reason`: see the metric's help).
    pub fn count_shed(&self, reason: &'static str) {
        self.http_shed.get_or_create(&ShedLabels { reason }).inc();
    }

    pub fn count_status_file_error(&self) {
        self.status_file_errors.inc();
    }

    pub fn count_pod_label_error(&self) {
        self.pod_label_errors.inc();
    }

    pub fn count_work_failure(&self, work: &'static str) {
        self.work_failures.get_or_create(&WorkLabels { work }).inc();
    }

    pub fn count_wake(&self) {
        self.wakes.inc();
    }

    pub fn observe_renewal(&self, d: Duration) {
        self.renew_latency.observe(d.as_secs_f64());
    }

    /// Record the election's [`Event`]s until it ends or `shutdown`.
    pub async fn observe(
        self: Arc<Self>,
        mut events: broadcast::Receiver<Event>,
        shutdown: CancellationToken,
    ) {
        loop {
            let e = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            match e {
                Ok(Event::Renewed { latency, .. }) => self.observe_renewal(latency),
                Ok(Event::Released { .. } | Event::Twin { .. })
                | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The metrics in `format`, with gauges from `state`.
    pub fn render(&self, state: &State, format: Format) -> String {
        let now = Instant::now();
        self.is_leader.set(i64::from(state.is_leader(now)));
        self.leader
            .get_or_create(&LeaderLabels {
                election: state.election.clone(),
                identity: state.identity.clone(),
            })
            .set(i64::from(state.is_leader(now)));
        self.term.set(i64::try_from(state.term).unwrap_or(i64::MAX));
        self.transitions
            .set(i64::try_from(state.transitions).unwrap_or(i64::MAX));
        self.remaining.set(
            state
                .valid_until
                .map_or(0.0, |d| d.saturating_duration_since(now).as_secs_f64()),
        );
        let healthy = state
            .health
            .as_ref()
            .is_none_or(|h| h.verdict == crate::health::Verdict::Healthy);
        self.health_ok.set(i64::from(healthy));
        let changes = state.health.as_ref().map_or(0, |h| h.transitions);
        self.health_transitions
            .inc_by(changes.saturating_sub(self.health_transitions.get()));
        self.process.update();
        let dropped = crate::surfaces::logging::dropped_lines();
        self.log_dropped
            .inc_by(dropped.saturating_sub(self.log_dropped.get()));
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode");
        match format {
            Format::OpenMetrics => out,
            Format::Prometheus => to_prometheus_text(&out),
        }
    }
}

/// The two exposition formats a scraper may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, for scrapers that ask for it.
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`), for everyone else.
    Prometheus,
}

impl Format {
    /// Content negotiation on an `Accept` header: OpenMetrics only when the
    /// scraper lists it (Prometheus does, with a higher weight than
    /// `text/plain`); the classic text format otherwise, as client_golang.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|part| {
                let mut params = part.split(';').map(str::trim);
                let media = params.next().unwrap_or("");
                let refused = params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text as the Prometheus text format: a counter family is named
/// by its samples (`x_total`), `info` and `unknown` families become `gauge`
/// and `untyped`, and `# UNIT` and `# EOF` go.
fn to_prometheus_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            let name = if counters.contains(name) {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            let tail = match (*tag, tail) {
                ("# TYPE ", "info") => "gauge",
                ("# TYPE ", "unknown") => "untyped",
                _ => tail,
            };
            Some(format!("{tag}{name} {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None if line.starts_with("# UNIT ") || line == "# EOF" => continue,
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn outcome<T>(r: &Result<T, StoreError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

/// A store that counts its requests into [`Metrics`].
#[derive(Clone)]
pub struct MeteredStore<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S: LeaseStore> MeteredStore<S> {
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }
}

impl<S: LeaseStore> LeaseStore for MeteredStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let r = self.inner.get(key).await;
        let o = match &r {
            Ok(None) => "not_found",
            other => outcome(other),
        };
        self.metrics.count("get", o);
        r
    }

    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<String, StoreError> {
        let r = self.inner.put_if_absent(key, body).await;
        self.metrics.count("put_if_none_match", outcome(&r));
        r
    }

    async fn put_if_match(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> Result<String, StoreError> {
        let r = self.inner.put_if_match(key, body, etag).await;
        self.metrics.count("put_if_match", outcome(&r));
        r
    }

    async fn delete_side_object(&self, key: &str) -> Result<(), StoreError> {
        let r = self.inner.delete_side_object(key).await;
        self.metrics.count("delete", outcome(&r));
        r
    }

    async fn put_side_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let r = self.inner.put_side_object(key, body).await;
        self.metrics.count("put", outcome(&r));
        r
    }

    async fn list(&self, prefix: &str, max: usize) -> Result<Vec<Listed>, StoreError> {
        let r = self.inner.list(prefix, max).await;
        self.metrics.count("list", outcome(&r));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_gives_openmetrics_only_to_who_asks() {
        use Format::*;
        // What Prometheus 2.x sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text")),
            OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Prometheus);
        assert_eq!(Format::negotiate(None), Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Prometheus
        );
        assert!(OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text"));
        assert!(Prometheus
            .content_type()
            .starts_with("text/plain; version=0.0.4"));
    }

    /// The known reasons and works exist at 0 before the first event, so
    /// rate() and the alert rules see them.
    #[test]
    fn known_series_start_at_zero() {
        let m = Metrics::new();
        let st =
            crate::work::hooks::tests::st(crate::lease::election::Role::Follower, None, 1, false);
        let text = m.render(&st, Format::Prometheus);
        for line in [
            "s3_elector_work_failures_total{work=\"on_acquired\"} 0",
            "s3_elector_work_failures_total{work=\"program\"} 0",
            "s3_elector_http_connections_shed_total{reason=\"evicted_fresh\"} 0",
            "s3_elector_http_connections_shed_total{reason=\"evicted_idle\"} 0",
            "s3_elector_http_connections_shed_total{reason=\"refused\"} 0",
            "s3_elector_http_connections_shed_total{reason=\"first_request_timeout\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }

    /// `s3_elector_leader` names the election and this copy: 1 while it
    /// leads, 0 otherwise (what the alert rules sum by election).
    #[test]
    fn the_leader_metric_is_one_only_while_leading() {
        use crate::lease::election::Role;
        let m = Metrics::new();
        let st = crate::work::hooks::tests::st;
        let line = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("s3_elector_leader{"))
                .map(String::from)
        };
        let lead = m.render(&st(Role::Leader, Some("me"), 3, true), Format::Prometheus);
        assert_eq!(
            line(&lead).as_deref(),
            Some("s3_elector_leader{election=\"e\",identity=\"me\"} 1")
        );
        let follow = m.render(&st(Role::Follower, Some("x"), 4, false), Format::Prometheus);
        assert_eq!(
            line(&follow).as_deref(),
            Some("s3_elector_leader{election=\"e\",identity=\"me\"} 0")
        );
        // An expired leadership is not leading.
        let expired = m.render(&st(Role::Leader, Some("me"), 3, false), Format::Prometheus);
        assert!(
            line(&expired).is_some_and(|l| l.ends_with(" 0")),
            "{expired}"
        );
    }

    /// docs/reference.md's table names every metric a daemon serves (each
    /// `# TYPE` of the Prometheus text), and names none it does not.
    #[test]
    fn the_reference_names_every_metric() {
        let m = Metrics::new();
        // A labelled family shows once it has a sample.
        m.count("get", "ok");
        let state =
            crate::work::hooks::tests::st(crate::lease::election::Role::Follower, None, 3, false);
        let text = m.render(&state, Format::Prometheus);
        let served: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(served.len() >= 15, "{served:?}");
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md"),
        )
        .unwrap();
        for name in &served {
            let named = [format!("`{name}`"), format!("`{name}{{")];
            assert!(
                named.iter().any(|n| doc.contains(n.as_str())),
                "docs/reference.md does not name the metric {name}"
            );
        }
        let documented: std::collections::BTreeSet<String> = doc
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| w.starts_with("s3_elector_"))
            .map(|w| w.split('{').next().unwrap().to_string())
            .collect();
        for name in &documented {
            assert!(
                served.contains(name.as_str()),
                "docs/reference.md names {name}, which no daemon serves"
            );
        }
    }

    #[test]
    fn prometheus_text_names_counters_by_their_samples() {
        let m = Metrics::new();
        m.count("get", "ok");
        m.count_wake();
        let state =
            crate::work::hooks::tests::st(crate::lease::election::Role::Follower, None, 3, false);
        let open = m.render(&state, Format::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(
            open.contains("# TYPE s3_elector_s3_requests counter"),
            "{open}"
        );
        let text = m.render(&state, Format::Prometheus);
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        assert!(
            text.contains("# HELP s3_elector_s3_requests_total S3 requests"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE s3_elector_s3_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("s3_elector_s3_requests_total{operation=\"get\",outcome=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE s3_elector_is_leader gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("s3_elector_wake_ups_received_total 1\n"),
            "{text}"
        );
        // Every sample's family is declared just before it, under its own name.
        let mut family = String::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| *b == family))
                    .unwrap_or(name);
                assert_eq!(base, family, "sample {l} outside its family");
            }
        }
        assert_eq!(
            to_prometheus_text("# TYPE a info\n# TYPE b unknown\n# UNIT c seconds\nb 1\n# EOF\n"),
            "# TYPE a gauge\n# TYPE b untyped\nb 1\n"
        );
    }
}
