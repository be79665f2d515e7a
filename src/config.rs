//! Configuration: the YAML file, its defaults and its validation.
//!
//! This is the only module that knows the file is YAML (`serde_yaml` stays
//! behind [`Config::from_yaml`]), so the format can be swapped in one place.
//!
//! Invariants kept here, so that the rest of the program can rely on them:
//! - every key in the file is known (`deny_unknown_fields`), and every unknown
//!   key is reported with its full path, all at once;
//! - `lease_duration > renew_deadline > 1.2 × retry_period`, as in client-go,
//!   and the S3 request timeouts fit inside `renew_deadline`;
//! - the lease key, bucket, identity and election name are non-empty and
//!   well-formed.
//!
//! [`Config::load`] returns either a valid [`Config`] or *every* problem found,
//! each naming the field; the binary prints them one per line and exits 64.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Exit code for a bad config or bad command line (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// One problem with the configuration, naming the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `timing.renew_deadline`; empty for the file as a whole.
    pub field: String,
    /// What is wrong and what to do, lowercase.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one config file.
#[derive(Debug, thiserror::Error)]
#[error("invalid config {}: {} problem(s)", .source_name, .problems.len())]
pub struct ConfigError {
    /// The file (or `<string>`) the problems are in.
    pub source_name: String,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn new(source_name: &str, problems: Vec<Problem>) -> Self {
        Self {
            source_name: source_name.to_string(),
            problems,
        }
    }

    /// One line per problem, each prefixed with the file name.
    pub fn lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|p| format!("config error in {}: {p}", self.source_name))
            .collect()
    }
}

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
    /// Time a client gets to send its request head.
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
const TOP_KEYS: &[&str] = &[
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
];
const REGISTRY_KEYS: &[&str] = &["enabled", "refresh", "list_interval"];
const HTTP_KEYS: &[&str] = &[
    "enabled",
    "listen",
    "allow_non_loopback",
    "step_down",
    "wake",
    "max_connections",
    "header_timeout",
];
const HOOKS_KEYS: &[&str] = &[
    "on_acquired",
    "on_lost",
    "on_leader_changed",
    "on_acquired_failure",
];
const HOOK_KEYS: &[&str] = &["command", "timeout", "working_dir"];
const CHILD_KEYS: &[&str] = &["on_exit", "kill_grace"];

/// Known keys of each section, by dotted path.
fn known_keys(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => TOP_KEYS,
        "s3" => S3_KEYS,
        "timing" => TIMING_KEYS,
        "http" => HTTP_KEYS,
        "hooks" => HOOKS_KEYS,
        "hooks.on_acquired" | "hooks.on_lost" | "hooks.on_leader_changed" => HOOK_KEYS,
        "child" => CHILD_KEYS,
        "registry" => REGISTRY_KEYS,
        _ => return None,
    })
}
const S3_KEYS: &[&str] = &[
    "bucket",
    "key",
    "prefix",
    "region",
    "endpoint_url",
    "force_path_style",
    "connect_timeout",
    "request_timeout",
];
const TIMING_KEYS: &[&str] = &[
    "lease_duration",
    "renew_deadline",
    "retry_period",
    "step_down_cooloff",
];

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                &name,
                vec![Problem {
                    field: String::new(),
                    message: format!("cannot read the file: {e}; check the path given to --config"),
                }],
            )
        })?;
        Self::from_yaml(&text, &name)
    }

    /// Parse and validate YAML text. `source_name` is used in messages.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError::new(source_name, problems);
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            fail(vec![Problem {
                field: String::new(),
                message: format!("not valid YAML: {e}"),
            }])
        })?;
        if value.is_null() {
            return Err(fail(vec![Problem {
                field: String::new(),
                message: "the file is empty; see config/s3-elector.yaml for a reference".into(),
            }]));
        }
        let mut value = value;
        // Report every unknown key, then drop them so that the semantic
        // checks still run and their problems are reported too.
        let mut problems = unknown_keys(&mut value);
        match serde_path_to_error::deserialize::<_, Config>(value) {
            Ok(cfg) => {
                problems.extend(cfg.validate());
                if problems.is_empty() {
                    Ok(cfg)
                } else {
                    Err(fail(problems))
                }
            }
            Err(e) => {
                let field = e.path().to_string();
                let field = if field == "." { String::new() } else { field };
                let inner = e.into_inner().to_string();
                // Unknown keys were already reported, with suggestions.
                if !inner.starts_with("unknown field") {
                    problems.push(Problem {
                        field,
                        message: tidy_serde_message(&inner),
                    });
                }
                Err(fail(problems))
            }
        }
    }

    /// Every semantic problem, all at once. Never panics.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut add = |field: &str, message: String| {
            p.push(Problem {
                field: field.into(),
                message,
            })
        };
        if let Some(id) = &self.identity {
            if let Err(m) = check_identity(id) {
                add("identity", m);
            }
        }
        if let Err(m) = check_name(&self.election) {
            add("election", m);
        }
        if let Err(m) = check_bucket(&self.s3.bucket) {
            add("s3.bucket", m);
        }
        match (&self.s3.key, &self.s3.prefix) {
            (Some(_), Some(_)) => add(
                "s3.key",
                "both `s3.key` and `s3.prefix` are set; set only one".into(),
            ),
            (Some(k), None) => {
                if let Err(m) = check_key(k) {
                    add("s3.key", m);
                }
            }
            (None, Some(prefix)) => {
                if let Err(m) = check_key(prefix.trim_end_matches('/')) {
                    add("s3.prefix", m);
                }
            }
            (None, None) => {}
        }
        if let Some(r) = &self.s3.region {
            if r.trim().is_empty() || r.contains(char::is_whitespace) {
                add(
                    "s3.region",
                    format!("`{r}` is not a region name; write e.g. us-east-1 or remove the field"),
                );
            }
        }
        if let Some(u) = &self.s3.endpoint_url {
            if let Err(m) = check_url(u) {
                add("s3.endpoint_url", m);
            }
        }
        if let Some(a) = &self.advertise_address {
            let port_ok = a.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if a.trim().is_empty() || a.len() > 256 || a.contains(char::is_whitespace) || !port_ok {
                add(
                    "advertise_address",
                    format!("`{a}` is not a host:port address of at most 256 characters; write e.g. 10.0.0.5:4040 (other copies send POST /wake there)"),
                );
            }
        }

        let t = &self.timing;
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        for (name, d) in [
            ("timing.lease_duration", t.lease_duration),
            ("timing.renew_deadline", t.renew_deadline),
            ("timing.retry_period", t.retry_period),
        ] {
            if d < Duration::from_millis(10) {
                add(name, format!("{} is too short; use at least 10ms", fmt(d)));
            }
            if d > Duration::from_secs(3600) {
                add(name, format!("{} is too long; use at most 1h", fmt(d)));
            }
        }
        if t.lease_duration <= t.renew_deadline {
            add(
                "timing.renew_deadline",
                format!(
                    "must be shorter than timing.lease_duration ({} is not < {}); the gap is the safety margin against clock drift",
                    fmt(t.renew_deadline),
                    fmt(t.lease_duration)
                ),
            );
        }
        if t.renew_deadline.as_secs_f64() <= 1.2 * t.retry_period.as_secs_f64() {
            add(
                "timing.retry_period",
                format!(
                    "must be less than timing.renew_deadline / 1.2 ({} is too long for a renew deadline of {}); a leader needs room for more than one renewal attempt",
                    fmt(t.retry_period),
                    fmt(t.renew_deadline)
                ),
            );
        }
        if self.s3.request_timeout.is_zero() {
            add("s3.request_timeout", "must be more than 0s".into());
        } else if self.s3.request_timeout >= t.renew_deadline {
            add(
                "s3.request_timeout",
                format!(
                    "must be shorter than timing.renew_deadline ({} is not < {}); otherwise one stalled request uses up the whole deadline",
                    fmt(self.s3.request_timeout),
                    fmt(t.renew_deadline)
                ),
            );
        }
        if self.s3.connect_timeout.is_zero() {
            add("s3.connect_timeout", "must be more than 0s".into());
        } else if self.s3.connect_timeout > self.s3.request_timeout {
            add(
                "s3.connect_timeout",
                format!(
                    "must not be longer than s3.request_timeout ({} > {})",
                    fmt(self.s3.connect_timeout),
                    fmt(self.s3.request_timeout)
                ),
            );
        }
        self.validate_surfaces(&mut p);
        let r = &self.registry;
        if r.refresh < Duration::from_secs(1) || r.refresh > Duration::from_secs(86400) {
            p.push(Problem {
                field: "registry.refresh".into(),
                message: format!("{} is out of range; use 1s to 24h", fmt(r.refresh)),
            });
        }
        if r.list_interval < Duration::from_secs(1) || r.list_interval > Duration::from_secs(3600) {
            p.push(Problem {
                field: "registry.list_interval".into(),
                message: format!("{} is out of range; use 1s to 1h", fmt(r.list_interval)),
            });
        }
        p
    }

    /// Prefix of the candidate registry: next to the lease key.
    pub fn registry_prefix(&self) -> String {
        let key = self.lease_key();
        match key.strip_suffix("/lease.json") {
            Some(dir) => format!("{dir}/candidates/"),
            None => format!("{key}.candidates/"),
        }
    }

    fn validate_surfaces(&self, p: &mut Vec<Problem>) {
        let mut add = |field: &str, message: String| {
            p.push(Problem {
                field: field.into(),
                message,
            })
        };
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        if self.http.enabled {
            let listen = self.http.listen_addr();
            match listen.parse::<std::net::SocketAddr>() {
                Err(_) => add(
                    "http.listen",
                    format!(
                        "`{listen}` is not an IP:port address; write e.g. 127.0.0.1:4040"
                    ),
                ),
                Ok(a) if !a.ip().is_loopback() && !self.http.allow_non_loopback => add(
                    "http.listen",
                    format!(
                        "{a} is not a loopback address; set `http.allow_non_loopback: true` to serve beyond this host"
                    ),
                ),
                Ok(_) => {}
            }
            if self.http.max_connections == 0 || self.http.max_connections > 10_000 {
                add("http.max_connections", "must be between 1 and 10000".into());
            }
            if self.http.header_timeout.is_zero() {
                add("http.header_timeout", "must be more than 0s".into());
            }
        } else if self.http.step_down {
            add(
                "http.step_down",
                "needs the HTTP endpoint; set `http.enabled: true` or remove it".into(),
            );
        }
        if let Some(path) = &self.status_file {
            if path.as_os_str().is_empty() || path.file_name().is_none() {
                add(
                    "status_file",
                    format!("`{}` is not a file path", path.display()),
                );
            }
        }
        for (name, hook) in [
            ("hooks.on_acquired", &self.hooks.on_acquired),
            ("hooks.on_lost", &self.hooks.on_lost),
            ("hooks.on_leader_changed", &self.hooks.on_leader_changed),
        ] {
            let Some(h) = hook else { continue };
            if h.command.first().is_none_or(|c| c.is_empty()) {
                add(
                    &format!("{name}.command"),
                    "is empty; give the program and its arguments as a list, e.g. [\"/usr/local/bin/promote\", \"--now\"]".into(),
                );
            }
            if h.timeout.is_zero() || h.timeout > Duration::from_secs(3600) {
                add(
                    &format!("{name}.timeout"),
                    format!("{} is out of range; use between 1ms and 1h", fmt(h.timeout)),
                );
            }
            if let Some(d) = &h.working_dir {
                if !d.is_dir() {
                    add(
                        &format!("{name}.working_dir"),
                        format!("`{}` is not a directory", d.display()),
                    );
                }
            }
        }
        let gap = self
            .timing
            .lease_duration
            .saturating_sub(self.timing.renew_deadline);
        if let Some(g) = self.child.kill_grace {
            if g.is_zero() || g >= gap {
                add(
                    "child.kill_grace",
                    format!(
                        "must be more than 0s and shorter than lease_duration - renew_deadline ({}), so the child is dead before another copy can lead",
                        fmt(gap)
                    ),
                );
            }
        }
    }

    /// Grace between SIGTERM and SIGKILL for the supervised child.
    pub fn child_kill_grace(&self) -> Duration {
        self.child.kill_grace.unwrap_or_else(|| {
            self.timing
                .lease_duration
                .saturating_sub(self.timing.renew_deadline)
                / 2
        })
    }

    /// True when the identity must come from EC2 instance metadata.
    pub fn needs_instance_id(&self, override_id: Option<&str>) -> bool {
        self.identity_from == IdentitySource::Ec2InstanceId
            && override_id.is_none_or(|o| o.is_empty())
            && self.identity.is_none()
    }

    /// The object key of the lease.
    pub fn lease_key(&self) -> String {
        if let Some(k) = &self.s3.key {
            return k.clone();
        }
        let prefix = self
            .s3
            .prefix
            .as_deref()
            .unwrap_or(DEFAULT_PREFIX)
            .trim_end_matches('/');
        if prefix.is_empty() {
            format!("{}/lease.json", self.election)
        } else {
            format!("{prefix}/{}/lease.json", self.election)
        }
    }

    /// Resolve the identity: CLI/env override, then the file, then the hostname.
    ///
    /// With `identity_from: ec2-instance-id` and no explicit identity, the
    /// caller fetches the instance id (see [`Config::needs_instance_id`])
    /// and passes it as `discovered`.
    pub fn resolve_identity(
        &self,
        override_id: Option<&str>,
        discovered: Option<&str>,
    ) -> Result<String, Problem> {
        let id = match (override_id, &self.identity, discovered) {
            (Some(o), _, _) if !o.is_empty() => o.to_string(),
            (_, Some(i), _) => i.clone(),
            (_, _, Some(d)) => d.to_string(),
            _ => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        check_identity(&id).map_err(|message| Problem {
            field: "identity".into(),
            message,
        })?;
        Ok(id)
    }
}

/// Identities go into logs, object keys (candidate registry) and hook
/// environments, so they are kept to a safe alphabet.
pub fn check_identity(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty; set `identity`, --identity or S3_ELECTOR_IDENTITY".into());
    }
    if id.len() > 253 {
        return Err(format!("is {} characters long; use at most 253", id.len()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:@".contains(*c)))
    {
        return Err(format!(
            "`{id}` contains {c:?}; use letters, digits and . _ - : @ only"
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; name the election, e.g. `billing-cron`".into());
    }
    if name.len() > 128 {
        return Err(format!(
            "is {} characters long; use at most 128",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Err(format!(
            "`{name}` contains {c:?}; use letters, digits and . _ - only"
        ));
    }
    Ok(())
}

fn check_bucket(b: &str) -> Result<(), String> {
    let ok_chars = b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if b.len() < 3 || b.len() > 63 || !ok_chars {
        return Err(format!(
            "`{b}` is not a valid bucket name; use 3 to 63 lowercase letters, digits, dots and hyphens"
        ));
    }
    Ok(())
}

fn check_key(k: &str) -> Result<(), String> {
    if k.is_empty() {
        return Err("is empty; remove it to use the default or give a key".into());
    }
    if k.starts_with('/') {
        return Err(format!(
            "`{k}` starts with '/'; S3 keys have no leading slash"
        ));
    }
    if k.len() > 900 {
        return Err(format!("is {} bytes long; use at most 900", k.len()));
    }
    if k.chars().any(|c| c.is_control()) {
        return Err("contains control characters".into());
    }
    Ok(())
}

fn check_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(|| format!("`{u}` must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!(
            "`{u}` has no host; write e.g. http://127.0.0.1:8333"
        ));
    }
    Ok(())
}

/// Every key in the document that no struct knows, with a suggestion; the
/// unknown keys are removed so that the rest can still be checked.
fn unknown_keys(v: &mut serde_yaml::Value) -> Vec<Problem> {
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

fn walk(v: &mut serde_yaml::Value, path: &str, out: &mut Vec<Problem>) {
    let (Some(known), Some(map)) = (known_keys(path), v.as_mapping_mut()) else {
        return;
    };
    let mut unknown = Vec::new();
    for (k, child) in map.iter_mut() {
        let name = match k.as_str() {
            Some(s) => s.to_string(),
            None => format!("{k:?}"),
        };
        let field = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        if known.contains(&name.as_str()) {
            walk(child, &field, out);
        } else {
            let hint = match closest(&name, known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            out.push(Problem {
                field,
                message: format!("unknown key; {hint}"),
            });
            unknown.push(k.clone());
        }
    }
    for k in unknown {
        map.remove(&k);
    }
}

fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// serde's messages mention Rust types; say it in the file's terms.
fn tidy_serde_message(m: &str) -> String {
    let m = m
        .replace("invalid type: ", "wrong type: ")
        .replace("expected a string", "expected text")
        .replace("expected a boolean", "expected true or false");
    if let Some(field) = m.strip_prefix("missing field ") {
        format!("required key {field} is missing")
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "election: demo\ns3:\n  bucket: leases\n";

    fn problems(yaml: &str) -> Vec<Problem> {
        match Config::from_yaml(yaml, "t.yaml") {
            Ok(_) => vec![],
            Err(e) => e.problems,
        }
    }

    fn fields(yaml: &str) -> Vec<String> {
        problems(yaml).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn minimal_config_gets_client_go_defaults() {
        let c = Config::from_yaml(GOOD, "t").unwrap();
        assert_eq!(c.timing, Timing::default());
        assert_eq!(c.timing.lease_duration, Duration::from_secs(15));
        assert_eq!(c.lease_key(), "s3-elector/demo/lease.json");
    }

    #[test]
    fn key_and_prefix() {
        let c = Config::from_yaml(
            "election: demo\ns3:\n  bucket: leases\n  prefix: a/b/\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.lease_key(), "a/b/demo/lease.json");
        let c = Config::from_yaml(
            "election: demo\ns3:\n  bucket: leases\n  key: x.json\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.lease_key(), "x.json");
        assert_eq!(
            fields("election: demo\ns3:\n  bucket: leases\n  key: x\n  prefix: y\n"),
            vec!["s3.key"]
        );
    }

    #[test]
    fn every_unknown_key_is_reported_with_path_and_suggestion() {
        let p = problems(
            "election: demo\nelecton: x\ns3:\n  bucket: leases\n  regoin: x\ntiming:\n  lease_duraton: 3s\n",
        );
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(f, vec!["electon", "s3.regoin", "timing.lease_duraton"]);
        assert!(p[1].message.contains("did you mean `region`"), "{:?}", p[1]);
    }

    #[test]
    fn timing_rules_are_each_reported() {
        let base = |t: &str| {
            format!("election: d\ns3:\n  bucket: leases\n  request_timeout: 1s\n  connect_timeout: 500ms\ntiming:\n{t}")
        };
        assert_eq!(
            fields(&base("  lease_duration: 10s\n  renew_deadline: 10s\n")),
            vec!["timing.renew_deadline"]
        );
        assert_eq!(
            fields(&base("  renew_deadline: 2400ms\n  retry_period: 2s\n")),
            vec!["timing.retry_period"]
        );
        // 1.2 × 2s = 2.4s exactly is not enough.
        assert!(fields(&base("  renew_deadline: 2401ms\n  retry_period: 2s\n")).is_empty());
        assert!(fields(&base("  retry_period: 0s\n")).contains(&"timing.retry_period".to_string()));
        assert!(fields(&base("  lease_duration: 2h\n")).contains(&"timing.lease_duration".into()));
    }

    #[test]
    fn durations_need_units() {
        let p = problems("election: d\ns3:\n  bucket: leases\ntiming:\n  lease_duration: 15\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "timing.lease_duration");
        assert!(p[0].message.contains("\"15s\""), "{}", p[0].message);
        let p = problems("election: d\ns3:\n  bucket: leases\ntiming:\n  lease_duration: soon\n");
        assert!(p[0].message.contains("not a duration"), "{}", p[0].message);
    }

    #[test]
    fn missing_and_malformed_fields() {
        let p = problems("s3:\n  bucket: leases\n");
        assert_eq!(p[0].message, "required key `election` is missing");
        assert_eq!(
            fields("election: d\ns3:\n  bucket: Bad_Bucket\n"),
            vec!["s3.bucket"]
        );
        assert_eq!(
            fields("election: d\ns3:\n  bucket: leases\n  endpoint_url: localhost:9000\n"),
            vec!["s3.endpoint_url"]
        );
        assert_eq!(
            fields("election: 'a b'\ns3:\n  bucket: leases\n"),
            vec!["election"]
        );
        assert_eq!(
            fields("identity: 'x/y'\nelection: d\ns3:\n  bucket: leases\n"),
            vec!["identity"]
        );
        assert_eq!(
            fields("election: d\ns3:\n  bucket: leases\n  request_timeout: 20s\n"),
            vec!["s3.request_timeout"]
        );
        assert_eq!(problems("")[0].field, "");
        assert!(problems(": : :")[0].message.starts_with("not valid YAML"));
    }

    #[test]
    fn surfaces_are_validated() {
        let base = "election: d\ns3:\n  bucket: leases\n";
        assert_eq!(
            fields(&format!("{base}http:\n  listen: 0.0.0.0:4040\n")),
            vec!["http.listen"]
        );
        assert!(fields(&format!(
            "{base}http:\n  listen: 0.0.0.0:4040\n  allow_non_loopback: true\n"
        ))
        .is_empty());
        assert_eq!(
            fields(&format!("{base}http:\n  listen: nope\n")),
            vec!["http.listen"]
        );
        assert_eq!(
            fields(&format!("{base}hooks:\n  on_lost:\n    command: []\n")),
            vec!["hooks.on_lost.command"]
        );
        assert_eq!(
            fields(&format!("{base}hooks:\n  on_lost:\n    comand: [x]\n")),
            vec!["hooks.on_lost.comand", "hooks.on_lost"]
        );
        assert_eq!(
            fields(&format!("{base}child:\n  kill_grace: 5s\n")),
            vec!["child.kill_grace"]
        );
        assert_eq!(
            fields(&format!("{base}hooks:\n  on_acquired_failure: maybe\n")),
            vec!["hooks.on_acquired_failure"]
        );
        let c = Config::from_yaml(base, "t").unwrap();
        assert_eq!(c.child_kill_grace(), Duration::from_millis(2500));
    }

    #[test]
    fn several_problems_at_once() {
        let p =
            problems("election: ''\nbogus: 1\ns3:\n  bucket: x\ntiming:\n  lease_duration: 1s\n");
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert!(f.contains(&"bogus"), "{f:?}");
        assert!(f.contains(&"election"), "{f:?}");
        assert!(f.contains(&"s3.bucket"), "{f:?}");
        assert!(f.contains(&"timing.renew_deadline"), "{f:?}");
    }

    #[test]
    fn identity_resolution_order() {
        let c = Config::from_yaml(
            "identity: file-id\nelection: d\ns3:\n  bucket: leases\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.resolve_identity(Some("env-id"), None).unwrap(), "env-id");
        assert_eq!(c.resolve_identity(None, None).unwrap(), "file-id");
        assert!(c.resolve_identity(Some("bad id"), None).is_err());
        assert!(!c.needs_instance_id(None));
        let c = Config::from_yaml(GOOD, "t").unwrap();
        assert!(!c.resolve_identity(None, None).unwrap().is_empty());
        let c = Config::from_yaml(
            "identity_from: ec2-instance-id\nelection: d\ns3:\n  bucket: leases\n",
            "t",
        )
        .unwrap();
        assert!(c.needs_instance_id(None));
        assert!(!c.needs_instance_id(Some("x")));
        assert_eq!(c.resolve_identity(None, Some("i-0abc")).unwrap(), "i-0abc");
    }

    #[test]
    fn shipped_configs_are_valid() {
        for f in ["config/s3-elector.yaml", "config/local.yaml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            if let Err(e) = Config::load(&path) {
                panic!("{f}: {:?}", e.lines());
            }
        }
    }

    #[test]
    fn advertise_address_must_be_host_and_port() {
        for bad in ["10.0.0.5", "10.0.0.5:", ":4040", "host:99999", "a b:1"] {
            let yaml =
                format!("election: d\nadvertise_address: \"{bad}\"\ns3:\n  bucket: leases\n");
            let e = Config::from_yaml(&yaml, "t").expect_err(bad);
            assert!(
                e.lines()
                    .iter()
                    .any(|l| l.contains("advertise_address") && l.contains("host:port")),
                "{bad}: {:?}",
                e.lines()
            );
        }
        for good in ["10.0.0.5:4040", "pod.ns.svc:4040", "[::1]:4040"] {
            let yaml =
                format!("election: d\nadvertise_address: \"{good}\"\ns3:\n  bucket: leases\n");
            Config::from_yaml(&yaml, "t").expect(good);
        }
    }

    #[test]
    fn known_key_lists_match_the_structs() {
        // Each listed key must be accepted by serde (no unknown-field error).
        let yaml = "identity: a\nelection: d\nadvertise_address: x:1\nunsafe_skip_conformance_check: false\n\
            s3:\n  bucket: leases\n  key: k\n  region: r\n  endpoint_url: http://h\n  force_path_style: true\n  connect_timeout: 1s\n  request_timeout: 2s\n\
            timing:\n  lease_duration: 15s\n  renew_deadline: 10s\n  retry_period: 2s\n";
        Config::from_yaml(yaml, "t").unwrap();
        assert_eq!(TOP_KEYS.len(), 12);
        assert_eq!(S3_KEYS.len(), 8);
        assert_eq!(TIMING_KEYS.len(), 4);
        let yaml = "election: d\ns3:\n  bucket: leases\nstatus_file: /tmp/s.json\n\
            http:\n  enabled: true\n  listen: 127.0.0.1:1\n  allow_non_loopback: false\n  step_down: true\n  wake: true\n  max_connections: 4\n  header_timeout: 1s\n\
            registry:\n  enabled: true\n  refresh: 10m\n  list_interval: 30s\n\
            hooks:\n  on_acquired_failure: keep\n  on_acquired:\n    command: [a]\n    timeout: 1s\n    working_dir: /\n  on_lost:\n    command: [b]\n  on_leader_changed:\n    command: [c]\n\
            child:\n  on_exit: restart\n  kill_grace: 1s\ntiming:\n  step_down_cooloff: 3s\n";
        Config::from_yaml(yaml, "t").unwrap();
        assert_eq!(HTTP_KEYS.len(), 7);
        assert_eq!(REGISTRY_KEYS.len(), 3);
        assert_eq!(HOOK_KEYS.len(), 3);
        assert_eq!(HOOKS_KEYS.len(), 4);
        assert_eq!(CHILD_KEYS.len(), 2);
    }
}
