//! Layering: the file, then the environment, then the command line. The
//! environment and the flags arrive together (clap reads `S3_ELECTOR_*`
//! variables for flags not given) as an [`Overrides`]; the config writes
//! them into the document before reading it, so every check applies to
//! them as to the file, and no file is needed when they say enough.
//!
//! The identity is layered the same way: `--identity` / `S3_ELECTOR_IDENTITY`,
//! then `identity` in the file, then the EC2 instance id (when
//! `identity_from: ec2-instance-id`), then the hostname.

use super::validate::check_identity;
use super::{Config, IdentitySource, Problem};

/// Values from the environment or the command line that replace the
/// file's, each with the flag and variable it came from (for messages).
///
/// They are applied to the document before it is read, so a value given
/// this way is checked exactly as the same value in the file would be, and
/// a copy can run with no file at all (a container sidecar configured by
/// its environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    values: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Override {
    /// Dotted path of the field, e.g. `s3.bucket`.
    field: &'static str,
    /// Where it came from, e.g. `--bucket / S3_ELECTOR_BUCKET`.
    source: String,
    value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Bool(bool),
}

/// Every setting that has a flag and an environment variable: the field,
/// the flag, the variable. `docs/reference.md` and the man pages list the same.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("election", "--election", "S3_ELECTOR_ELECTION"),
    ("s3.bucket", "--bucket", "S3_ELECTOR_BUCKET"),
    ("s3.prefix", "--prefix", "S3_ELECTOR_PREFIX"),
    ("s3.key", "--key", "S3_ELECTOR_KEY"),
    ("s3.region", "--region", "S3_ELECTOR_REGION"),
    (
        "s3.endpoint_url",
        "--endpoint-url",
        "S3_ELECTOR_ENDPOINT_URL",
    ),
    (
        "s3.force_path_style",
        "--force-path-style",
        "S3_ELECTOR_FORCE_PATH_STYLE",
    ),
    (
        "timing.lease_duration",
        "--lease-duration",
        "S3_ELECTOR_LEASE_DURATION",
    ),
    (
        "timing.renew_deadline",
        "--renew-deadline",
        "S3_ELECTOR_RENEW_DEADLINE",
    ),
    (
        "timing.retry_period",
        "--retry-period",
        "S3_ELECTOR_RETRY_PERIOD",
    ),
    (
        "s3.request_timeout",
        "--request-timeout",
        "S3_ELECTOR_REQUEST_TIMEOUT",
    ),
    (
        "s3.connect_timeout",
        "--connect-timeout",
        "S3_ELECTOR_CONNECT_TIMEOUT",
    ),
    (
        "identity_from",
        "--identity-from",
        "S3_ELECTOR_IDENTITY_FROM",
    ),
    ("http.listen", "--http-listen", "S3_ELECTOR_HTTP_LISTEN"),
    (
        "advertise_address",
        "--advertise-address",
        "S3_ELECTOR_ADVERTISE_ADDRESS",
    ),
    ("status_file", "--status-file", "S3_ELECTOR_STATUS_FILE"),
    ("health.http_url", "--health-url", "S3_ELECTOR_HEALTH_URL"),
    (
        "health.interval",
        "--health-interval",
        "S3_ELECTOR_HEALTH_INTERVAL",
    ),
];

fn source_of(field: &str) -> String {
    SETTINGS.iter().find(|(f, _, _)| *f == field).map_or_else(
        || field.to_string(),
        |(_, flag, var)| format!("{flag} / {var}"),
    )
}

impl Overrides {
    /// Set `field` (one of [`SETTINGS`]) to a text value, when given.
    pub fn text(mut self, field: &'static str, v: Option<&str>) -> Self {
        if let Some(v) = v {
            self.values.push(Override {
                field,
                source: source_of(field),
                value: Value::Text(v.to_string()),
            });
        }
        self
    }

    /// Set `field` (one of [`SETTINGS`]) to true or false, when given.
    pub fn flag(mut self, field: &'static str, v: Option<bool>) -> Self {
        if let Some(v) = v {
            self.values.push(Override {
                field,
                source: source_of(field),
                value: Value::Bool(v),
            });
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Write the values into the document, making the sections they need.
    pub(super) fn apply(&self, doc: &mut serde_yaml::Value) {
        for o in &self.values {
            let value = match &o.value {
                Value::Text(t) => serde_yaml::Value::String(t.clone()),
                Value::Bool(b) => serde_yaml::Value::Bool(*b),
            };
            let mut cur = &mut *doc;
            let parts: Vec<&str> = o.field.split('.').collect();
            let (last, parents) = parts.split_last().expect("a field has a name");
            for p in parents {
                if !cur.is_mapping() {
                    *cur = serde_yaml::Value::Mapping(Default::default());
                }
                let m = cur.as_mapping_mut().expect("a mapping");
                cur = m
                    .entry(serde_yaml::Value::String((*p).into()))
                    .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
            }
            if !cur.is_mapping() {
                *cur = serde_yaml::Value::Mapping(Default::default());
            }
            cur.as_mapping_mut()
                .expect("a mapping")
                .insert(serde_yaml::Value::String((*last).into()), value);
        }
    }

    /// Say where a problem's value came from, or how else to set it.
    pub(super) fn annotate(&self, mut p: Problem) -> Problem {
        if let Some(o) = self.values.iter().rev().find(|o| p.field == o.field) {
            p.message = format!("{} (set by {})", p.message, o.source);
        } else if p.message.starts_with("required key") {
            if let Some((_, flag, var)) = SETTINGS.iter().find(|(f, _, _)| *f == p.field) {
                p.message = format!(
                    "{}; set it in the config file, with {flag} or with {var}",
                    p.message
                );
            }
        }
        p
    }
}

impl Config {
    /// True when the identity must come from EC2 instance metadata.
    pub fn needs_instance_id(&self, override_id: Option<&str>) -> bool {
        self.identity_from == IdentitySource::Ec2InstanceId
            && override_id.is_none_or(|o| o.is_empty())
            && self.identity.is_none()
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
