//! Configuration: the YAML file, its defaults, its validation and the
//! layering of file < environment < command line.
//!
//! This is the only module that knows the file is YAML (`serde_yaml` stays
//! behind [`Config::from_yaml`]), so the format can be swapped in one place.
//!
//! - [`schema`]: the structs, their defaults and the known keys;
//! - [`validate`]: every semantic check, all problems at once;
//! - [`layering`]: overrides from the environment and flags, the identity.
//!
//! Invariants kept here, so that the rest of the program can rely on them:
//! - every key in the file is known (`deny_unknown_fields`), and every unknown
//!   key is reported with its full path, all at once;
//! - `lease_duration > renew_deadline > 1.2 × retry_period`, as in client-go,
//!   and the S3 request timeouts fit inside `renew_deadline`;
//! - the lease key, bucket, identity and election name are non-empty and
//!   well-formed;
//! - a config with overrides applied is validated again as a whole.
//!
//! [`Config::load`] returns either a valid [`Config`] or *every* problem found,
//! each naming the field; the binary prints them one per line and exits 64.

pub mod layering;
pub mod schema;
#[cfg(test)]
mod tests;
pub mod validate;

pub use layering::Overrides;
pub use schema::*;

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// What messages call the config when there is no file.
pub const NO_FILE: &str = "flags and environment (no config file)";

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
    pub(crate) fn new(source_name: &str, problems: Vec<Problem>) -> Self {
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

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_layered(Some(path), &Overrides::default())
    }

    /// Read the file (if any), write the overrides over it, and validate
    /// the result. Without a file the overrides must say everything needed
    /// (at least the election and the bucket).
    pub fn load_layered(path: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            let empty = serde_yaml::Value::Mapping(Default::default());
            return Self::from_value(empty, NO_FILE, o);
        };
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
        Self::from_yaml_with(&text, &name, o)
    }

    /// Parse and validate YAML text. `source_name` is used in messages.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        Self::from_yaml_with(text, source_name, &Overrides::default())
    }

    fn from_yaml_with(text: &str, source_name: &str, o: &Overrides) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError::new(source_name, problems);
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            fail(vec![Problem {
                field: String::new(),
                message: format!("not valid YAML: {e}"),
            }])
        })?;
        if value.is_null() && o.is_empty() {
            return Err(fail(vec![Problem {
                field: String::new(),
                message: "the file is empty; see config/s3-elector.yaml for a reference".into(),
            }]));
        }
        Self::from_value(value, source_name, o)
    }

    fn from_value(
        value: serde_yaml::Value,
        source_name: &str,
        o: &Overrides,
    ) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<Problem>| {
            ConfigError::new(
                source_name,
                problems.into_iter().map(|p| o.annotate(p)).collect(),
            )
        };
        let mut value = value;
        o.apply(&mut value);
        // Report every unknown key, then drop them so that the semantic
        // checks still run and their problems are reported too.
        let mut problems = unknown_keys(&mut value);
        // Every value of the wrong type: report it, drop the key (its
        // default takes its place) and look again, so all are reported at
        // once; the semantic checks then run on the rest.
        let mut wrong: Vec<String> = Vec::new();
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
                Ok(cfg) => {
                    problems.extend(
                        cfg.validate()
                            .into_iter()
                            .filter(|p| !wrong.iter().any(|w| p.field.starts_with(w.as_str()))),
                    );
                    return if problems.is_empty() {
                        Ok(cfg)
                    } else {
                        Err(fail(problems))
                    };
                }
                Err(e) => {
                    let field = e.path().to_string();
                    let field = if field == "." { String::new() } else { field };
                    let inner = e.into_inner().to_string();
                    // A missing key: report it on its own path and put a
                    // stand-in there (an empty section or text), so the
                    // other missing keys are found too.
                    if let Some(name) = inner
                        .strip_prefix("missing field `")
                        .and_then(|r| r.strip_suffix('`'))
                    {
                        let path = if field.is_empty() {
                            name.to_string()
                        } else {
                            format!("{field}.{name}")
                        };
                        // A missing section is reported by its missing keys.
                        let stand_in = if known_keys(&path).is_some() {
                            serde_yaml::Value::Mapping(Default::default())
                        } else {
                            problems.push(Problem {
                                field: path.clone(),
                                message: tidy_serde_message(&inner),
                            });
                            serde_yaml::Value::String(String::new())
                        };
                        let parent = if field.is_empty() {
                            Some(&mut value)
                        } else {
                            value.get_mut(field.as_str())
                        };
                        match parent.and_then(|p| p.as_mapping_mut()) {
                            Some(m) => {
                                m.insert(serde_yaml::Value::String(name.into()), stand_in);
                            }
                            None => break,
                        }
                        wrong.push(path);
                        continue;
                    }
                    // Unknown keys were already reported, with suggestions;
                    // a stand-in for a missing key is not the user's value.
                    if !inner.starts_with("unknown field") && !wrong.contains(&field) {
                        problems.push(Problem {
                            field: field.clone(),
                            message: tidy_serde_message(&inner),
                        });
                    }
                    if field.is_empty() || !remove_path(&mut value, &field) {
                        break;
                    }
                    wrong.push(field);
                }
            }
        }
        Err(fail(problems))
    }

    /// Prefix of the candidate registry: next to the lease key.
    pub fn registry_prefix(&self) -> String {
        let key = self.lease_key();
        match key.strip_suffix("/lease.json") {
            Some(dir) => format!("{dir}/candidates/"),
            None => format!("{key}.candidates/"),
        }
    }

    /// Grace between SIGTERM and SIGKILL for the supervised child.
    /// The longest cool-off of failing leader-only work: the configured
    /// `hooks.on_acquired_backoff_max`, else 10 min, or the cool-off when
    /// that is longer (an old config with a long cool-off stays valid).
    pub fn backoff_max(&self) -> Duration {
        self.hooks
            .on_acquired_backoff_max
            .unwrap_or(schema::DEFAULT_BACKOFF_MAX.max(self.timing.step_down_cooloff))
    }

    /// The first cool-off of failing leader-only work: `step_down_cooloff`,
    /// but at least a second, so that the back-off doubles something even
    /// when the cool-off is 0 s.
    pub fn backoff_base(&self) -> Duration {
        self.timing.step_down_cooloff.max(Duration::from_secs(1))
    }

    pub fn child_kill_grace(&self) -> Duration {
        self.child.kill_grace.unwrap_or_else(|| {
            self.timing
                .lease_duration
                .saturating_sub(self.timing.renew_deadline)
                / 2
        })
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

/// Remove the key at a dotted path (`a.b`, `a.b[2]` removes `a.b`);
/// false when there is none.
fn remove_path(v: &mut serde_yaml::Value, path: &str) -> bool {
    let parts: Vec<&str> = path
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .collect();
    let Some((last, parents)) = parts.split_last() else {
        return false;
    };
    let mut cur = v;
    for p in parents {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    cur.as_mapping_mut()
        .is_some_and(|m| m.remove(*last).is_some())
}

/// serde's messages mention Rust types; say it in the file's terms.
fn tidy_serde_message(m: &str) -> String {
    let m = m
        .replace("invalid type: ", "wrong type: ")
        .replace("expected a string", "expected text")
        .replace("expected a boolean", "expected true or false");
    // "invalid value: integer `-1`, expected usize": a whole number.
    for t in ["usize", "u64", "u32", "u16", "u8"] {
        if let Some(rest) = m.strip_suffix(&format!("expected {t}")) {
            let got = rest
                .trim_start_matches("invalid value: ")
                .trim_start_matches("wrong type: ")
                .trim_end_matches(", ");
            return format!("must be a whole number (got {got})");
        }
    }
    if let Some(field) = m.strip_prefix("missing field ") {
        format!("required key {field} is missing")
    } else {
        m
    }
}
