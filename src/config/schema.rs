//! The config file's structs and their defaults. Every struct denies
//! unknown fields; durations are strings with a unit (humantime).
//!
//! The known keys of each section are listed next to the structs (serde
//! stops at the first unknown key; these lists let the loader report every
//! one at once). A unit test checks the lists against the structs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this copy is. Must differ between copies; defaults to the hostname.
    /// `--identity` / `S3_ELECTOR_IDENTITY` override it (e.g. from a pod name).
    #[serde(default)]
    pub identity: Option<String>,
    /// Where the identity comes from when neither `identity` nor
    /// `--identity` is set: `hostname` (default) or `ec2-instance-id` (read
    /// from instance metadata, IMDSv2).
    #[serde(default)]
    pub identity_from: IdentitySource,
    /// Name of the election; part of the default lease key.
    pub election: String,
    /// `host:port` where other copies reach this copy's HTTP endpoint: put
    /// in the lease record while leading and in the candidate registry, so
    /// that a leader that steps down can wake its successor. Defaults to the
    /// bound `http.listen` address when that is a specific IP (loopback
    /// addresses are only used by copies on the same host).
    /// `--advertise-address` / `S3_ELECTOR_ADVERTISE_ADDRESS` override it.
    #[serde(default)]
    pub advertise_address: Option<String>,
    pub s3: S3Config,
    #[serde(default)]
    pub timing: Timing,
    /// Run even if the conformance probe finds that the store ignores
    /// conditional writes. On such a store elections end with two leaders;
    /// the name is long on purpose.
    #[serde(default)]
    pub unsafe_skip_conformance_check: bool,
    #[serde(default)]
    pub http: HttpConfig,
    /// Where to keep a JSON copy of `GET /leader`, rewritten atomically.
    #[serde(default)]
    pub status_file: Option<PathBuf>,
    #[serde(default)]
    pub hooks: HooksConfig,
    #[serde(default)]
    pub child: ChildConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
    #[serde(default)]
    pub fenced: FencedConfig,
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    #[serde(default)]
    pub health: HealthConfig,
}

/// Leadership that follows health ([`crate::health`]): off unless
/// `command` or `http_url` is set. A verdict only decides who hands over
/// to whom; it never lets a copy write sooner than the lease allows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// An argument list, as hooks take it (no shell unless you write
    /// `sh -c`); exit 0 = healthy.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// `http://host:port/path`; any 2xx answer = healthy.
    #[serde(default)]
    pub http_url: Option<String>,
    /// The command's working directory.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Time between the starts of two checks.
    #[serde(default = "default_health_interval", deserialize_with = "de_duration")]
    pub interval: Duration,
    /// One check's limit (default: `interval`); a command that runs longer
    /// has its process group killed, and the check counts as failed.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Good results in a row that make an unhealthy copy healthy.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Bad results in a row that make a healthy copy unhealthy.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// An unhealthy leader with no healthy successor to name: `stay`
    /// (default: keep the lease) or `release` it.
    #[serde(default)]
    pub when_none_healthy: WhenNoneHealthy,
    /// A copy that just gained leadership is not handed away for health
    /// within this (default: `rise × interval`).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub hold_down: Option<Duration>,
    /// Hand over at once when the leader turns unhealthy, even within the
    /// hold-down.
    #[serde(default)]
    pub fail_fast: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            command: None,
            http_url: None,
            working_dir: None,
            interval: default_health_interval(),
            timeout: None,
            rise: default_rise(),
            fall: default_fall(),
            when_none_healthy: WhenNoneHealthy::default(),
            hold_down: None,
            fail_fast: false,
        }
    }
}

impl HealthConfig {
    /// Is a check configured?
    pub fn enabled(&self) -> bool {
        self.command.is_some() || self.http_url.is_some()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(self.interval)
    }

    pub fn hold_down(&self) -> Duration {
        self.hold_down
            .unwrap_or(self.interval.saturating_mul(self.rise))
    }
}

fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_rise() -> u32 {
    2
}

fn default_fall() -> u32 {
    3
}

/// What an unhealthy leader does when no healthy successor is known.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenNoneHealthy {
    #[default]
    Stay,
    Release,
}

/// Kubernetes: while this copy leads it sets a label on its own pod, so
/// that a Service selecting the label routes only to the leader while every
/// pod stays Ready (drains and rolling updates go on). Off unless
/// `leader_label` is set. The defaults fit a pod: the API, the token and the
/// CA come from the service account, the pod from `POD_NAME` and
/// `POD_NAMESPACE` (the downward API).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The label (e.g. `s3-elector/leader`) set to `"true"` on this copy's
    /// pod while it leads and removed otherwise. Needs `get`, `list` and
    /// `patch` on pods in the namespace.
    #[serde(default)]
    pub leader_label: Option<String>,
    /// A label selector (`key=value,...`) matching the pods of this
    /// election and no others: a new leader removes the label from them.
    /// Required with `leader_label`.
    #[serde(default)]
    pub pod_selector: Option<String>,
    /// This copy's pod. Default: `POD_NAME`, else the hostname.
    #[serde(default)]
    pub pod_name: Option<String>,
    /// The pod's namespace. Default: `POD_NAMESPACE`, else the service
    /// account's `namespace` file.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The API server. Default:
    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Where the service account's `token`, `ca.crt` and `namespace` are.
    #[serde(default = "default_service_account_dir")]
    pub service_account_dir: PathBuf,
    /// Timeout of one API request.
    #[serde(default = "default_kube_timeout", deserialize_with = "de_duration")]
    pub request_timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            leader_label: None,
            pod_selector: None,
            pod_name: None,
            namespace: None,
            api_url: None,
            service_account_dir: default_service_account_dir(),
            request_timeout: default_kube_timeout(),
        }
    }
}

fn default_service_account_dir() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount")
}
fn default_kube_timeout() -> Duration {
    Duration::from_secs(3)
}

/// `s3-elector fenced`: writes that refuse a stale term.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FencedConfig {
    /// Where a plain KEY (not `s3://bucket/key`) lives in `s3.bucket`:
    /// `PREFIX/KEY`. Default: none, the key as given.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// The candidate registry: each copy keeps a small object of its own next
/// to the lease, saying how to reach it. A hint for fast hand-over only;
/// never needed for safety.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Write this copy's entry and, while leading, read the others'.
    /// Needs `s3:PutObject`/`s3:DeleteObject` on the entry and
    /// `s3:ListBucket` on the prefix. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Rewrite this copy's entry this often (it is written at start and
    /// removed on a graceful stop).
    #[serde(default = "default_registry_refresh", deserialize_with = "de_duration")]
    pub refresh: Duration,
    /// While leading, list the registry this often (one LIST request).
    #[serde(
        default = "default_registry_list_interval",
        deserialize_with = "de_duration"
    )]
    pub list_interval: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            enabled: true,
            refresh: default_registry_refresh(),
            list_interval: default_registry_list_interval(),
        }
    }
}

fn default_registry_refresh() -> Duration {
    Duration::from_secs(600)
}
fn default_registry_list_interval() -> Duration {
    Duration::from_secs(300)
}

/// The local HTTP endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve HTTP at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address to bind; `None` means the default, 127.0.0.1:4040 (see
    /// [`HttpConfig::listen_addr`]). Kept optional so that a busy *default*
    /// port can be told apart from a busy port the operator chose.
    #[serde(default)]
    pub listen: Option<String>,
    /// Binding a non-loopback address must be asked for explicitly.
    #[serde(default)]
    pub allow_non_loopback: bool,
    /// Enable `POST /step-down` (and so `s3-elector step-down`). Default false.
    #[serde(default)]
    pub step_down: bool,
    /// Accept `POST /wake`: read the lease once, soon. A wake-up can cause
    /// at most one extra (rate-limited) read and never a write, so it needs
    /// no token. Default true.
    #[serde(default = "yes")]
    pub wake: bool,
    /// Connections served at once; more wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time a new connection gets to send its first complete request head
    /// (short: a connection that sends nothing holds a slot for no one).
    #[serde(
        default = "default_first_request_timeout",
        deserialize_with = "de_duration"
    )]
    pub first_request_timeout: Duration,
    /// Time a keep-alive connection gets to send each later request head.
    #[serde(default = "default_header_timeout", deserialize_with = "de_duration")]
    pub header_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: None,
            allow_non_loopback: false,
            step_down: false,
            wake: true,
            max_connections: default_max_connections(),
            first_request_timeout: default_first_request_timeout(),
            header_timeout: default_header_timeout(),
        }
    }
}

impl HttpConfig {
    /// The address to bind.
    pub fn listen_addr(&self) -> String {
        self.listen.clone().unwrap_or_else(default_listen)
    }
}

fn yes() -> bool {
    true
}
/// Loopback only by default.
pub fn default_listen() -> String {
    "127.0.0.1:4040".into()
}
fn default_max_connections() -> usize {
    64
}
fn default_first_request_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Hook scripts run on leadership events.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    #[serde(default)]
    pub on_acquired: Option<Hook>,
    #[serde(default)]
    pub on_lost: Option<Hook>,
    #[serde(default)]
    pub on_leader_changed: Option<Hook>,
    /// What a failing `on_acquired` does: `release` leadership (default) or `keep` it.
    #[serde(default)]
    pub on_acquired_failure: FailurePolicy,
    /// Longest cool-off after failing leader-only work: each failure of
    /// `on_acquired` in a row (or of a program that exits within a lease
    /// of starting, under `child.on_exit: release`) doubles the cool-off
    /// from `timing.step_down_cooloff` up to this. Default: 10 min, or the
    /// cool-off itself when that is longer
    /// ([`Config::backoff_max`](crate::config::Config::backoff_max)).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub on_acquired_backoff_max: Option<Duration>,
}

/// The default of `hooks.on_acquired_backoff_max` (at least the cool-off).
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(600);

impl HooksConfig {
    /// Is any hook configured?
    pub fn any(&self) -> bool {
        self.on_acquired.is_some() || self.on_lost.is_some() || self.on_leader_changed.is_some()
    }
}

/// One hook: an argv list (no shell unless you write `sh -c`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub command: Vec<String>,
    /// After this the hook's whole process group gets SIGTERM, then SIGKILL.
    #[serde(default = "default_hook_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    #[default]
    Release,
    Keep,
}

/// The supervised child (`s3-elector run -- program args`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChildConfig {
    /// When the child exits by itself: `release` leadership (default) or `restart` it.
    #[serde(default)]
    pub on_exit: ChildExit,
    /// Time between SIGTERM and SIGKILL to the child's process group.
    /// Default: half of lease_duration - renew_deadline; must be shorter
    /// than that gap, so the kill lands before another copy can lead.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub kill_grace: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChildExit {
    #[default]
    Release,
    Restart,
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// Source of the default identity.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IdentitySource {
    #[default]
    Hostname,
    Ec2InstanceId,
}

/// Where the lease lives and how to talk to the store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Full object key of the lease. Mutually exclusive with `prefix`.
    #[serde(default)]
    pub key: Option<String>,
    /// Key prefix; the lease key is then `<prefix>/<election>/lease.json`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// AWS region. When absent, the AWS default chain (env, profile, IMDS) decides.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store, e.g. `http://127.0.0.1:8333`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    #[serde(default)]
    pub force_path_style: bool,
    /// Time to open a TCP (and TLS) connection to the store.
    #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Time for one whole request, including reading the response. There is
    /// no SDK default: without it a stalled store would stall renewals.
    #[serde(default = "default_request_timeout", deserialize_with = "de_duration")]
    pub request_timeout: Duration,
}

/// Election timings; the meaning and defaults of client-go's leaderelection.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// How long a follower waits, on its own clock, after last seeing the
    /// record change before it may take over.
    #[serde(default = "default_lease_duration", deserialize_with = "de_duration")]
    pub lease_duration: Duration,
    /// How long a leader keeps acting as leader after it *sent* its last
    /// successful renewal. Must be shorter than `lease_duration`.
    #[serde(default = "default_renew_deadline", deserialize_with = "de_duration")]
    pub renew_deadline: Duration,
    /// Interval between renewals (leader) and polls (follower).
    #[serde(default = "default_retry_period", deserialize_with = "de_duration")]
    pub retry_period: Duration,
    /// After a manual step-down, how long to stay out of the race.
    #[serde(default = "default_cooloff", deserialize_with = "de_duration")]
    pub step_down_cooloff: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: default_lease_duration(),
            renew_deadline: default_renew_deadline(),
            retry_period: default_retry_period(),
            step_down_cooloff: default_cooloff(),
        }
    }
}

/// Long enough for another copy to notice the release and take over.
pub fn default_cooloff() -> Duration {
    Duration::from_secs(10)
}

/// client-go's default lease duration.
pub fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}
/// client-go's default renew deadline.
pub fn default_renew_deadline() -> Duration {
    Duration::from_secs(10)
}
/// client-go's default retry period.
pub fn default_retry_period() -> Duration {
    Duration::from_secs(2)
}
/// Connect timeout: a store on the same continent answers well inside this.
pub fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
/// Request timeout: leaves room for three renewal attempts inside the
/// default renew deadline.
pub fn default_request_timeout() -> Duration {
    Duration::from_secs(3)
}

/// Default key prefix when neither `s3.key` nor `s3.prefix` is set.
pub const DEFAULT_PREFIX: &str = "s3-elector";

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration with a unit, like \"15s\" or \"500ms\"")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
            humantime::parse_duration(s.trim()).map_err(|e| {
                E::custom(format_args!(
                    "`{s}` is not a duration ({e}); write it like \"15s\" or \"500ms\""
                ))
            })
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
            Err(E::custom(format_args!(
                "`{n}` has no unit; write it like \"{n}s\" or \"{n}ms\""
            )))
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
            self.visit_u64(n.unsigned_abs())
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Duration, E> {
            Err(E::custom(format_args!(
                "`{n}` has no unit; write it like \"{n}s\""
            )))
        }
    }
    d.deserialize_any(V)
}

/// Known keys per section, for reporting every unknown key at once (serde
/// stops at the first). Kept next to the structs; a unit test checks that
/// each listed key is accepted by serde and each struct field is listed.
pub(super) const TOP_KEYS: &[&str] = &[
    "identity",
    "identity_from",
    "election",
    "advertise_address",
    "s3",
    "timing",
    "unsafe_skip_conformance_check",
    "http",
    "status_file",
    "hooks",
    "child",
    "registry",
    "fenced",
    "kubernetes",
    "health",
];
pub(super) const HEALTH_KEYS: &[&str] = &[
    "command",
    "http_url",
    "working_dir",
    "interval",
    "timeout",
    "rise",
    "fall",
    "when_none_healthy",
    "hold_down",
    "fail_fast",
];
pub(super) const REGISTRY_KEYS: &[&str] = &["enabled", "refresh", "list_interval"];
pub(super) const HTTP_KEYS: &[&str] = &[
    "enabled",
    "listen",
    "allow_non_loopback",
    "step_down",
    "wake",
    "max_connections",
    "first_request_timeout",
    "header_timeout",
];
pub(super) const HOOKS_KEYS: &[&str] = &[
    "on_acquired",
    "on_lost",
    "on_leader_changed",
    "on_acquired_failure",
    "on_acquired_backoff_max",
];
pub(super) const HOOK_KEYS: &[&str] = &["command", "timeout", "working_dir"];
pub(super) const CHILD_KEYS: &[&str] = &["on_exit", "kill_grace"];
pub(super) const FENCED_KEYS: &[&str] = &["prefix"];
pub(super) const KUBERNETES_KEYS: &[&str] = &[
    "leader_label",
    "pod_selector",
    "pod_name",
    "namespace",
    "api_url",
    "service_account_dir",
    "request_timeout",
];

/// Known keys of each section, by dotted path.
pub(super) fn known_keys(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => TOP_KEYS,
        "s3" => S3_KEYS,
        "timing" => TIMING_KEYS,
        "http" => HTTP_KEYS,
        "hooks" => HOOKS_KEYS,
        "hooks.on_acquired" | "hooks.on_lost" | "hooks.on_leader_changed" => HOOK_KEYS,
        "child" => CHILD_KEYS,
        "registry" => REGISTRY_KEYS,
        "fenced" => FENCED_KEYS,
        "kubernetes" => KUBERNETES_KEYS,
        "health" => HEALTH_KEYS,
        _ => return None,
    })
}
pub(super) const S3_KEYS: &[&str] = &[
    "bucket",
    "key",
    "prefix",
    "region",
    "endpoint_url",
    "force_path_style",
    "connect_timeout",
    "request_timeout",
];
pub(super) const TIMING_KEYS: &[&str] = &[
    "lease_duration",
    "renew_deadline",
    "retry_period",
    "step_down_cooloff",
];
