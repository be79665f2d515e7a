//! Layering: the file, then the environment, then the command line. The
//! environment and the flags arrive together (clap reads `S3_ELECTOR_*`
//! variables for flags not given) as an [`Overrides`]; the config applies
//! them and validates the result again as a whole.
//!
//! The identity is layered the same way: `--identity` / `S3_ELECTOR_IDENTITY`,
//! then `identity` in the file, then the EC2 instance id (when
//! `identity_from: ec2-instance-id`), then the hostname.

use std::path::PathBuf;

use super::validate::check_identity;
use super::{Config, ConfigError, IdentitySource, Problem};

/// Values from the environment or the command line that replace the file's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--http-listen` / `S3_ELECTOR_HTTP_LISTEN`: `http.listen`.
    pub http_listen: Option<String>,
    /// `--advertise-address` / `S3_ELECTOR_ADVERTISE_ADDRESS`: `advertise_address`.
    pub advertise_address: Option<String>,
    /// `--status-file` / `S3_ELECTOR_STATUS_FILE`: `status_file`.
    pub status_file: Option<PathBuf>,
}

impl Overrides {
    fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

impl Config {
    /// Apply `o` over the file's values and validate the result again; the
    /// problems name the field and say an override was involved.
    pub fn with_overrides(
        mut self,
        o: &Overrides,
        source_name: &str,
    ) -> Result<Config, ConfigError> {
        if o.is_empty() {
            return Ok(self);
        }
        if let Some(l) = &o.http_listen {
            self.http.listen = Some(l.clone());
        }
        if let Some(a) = &o.advertise_address {
            self.advertise_address = Some(a.clone());
        }
        if let Some(f) = &o.status_file {
            self.status_file = Some(f.clone());
        }
        let problems: Vec<Problem> = self
            .validate()
            .into_iter()
            .map(|p| Problem {
                message: format!("{} (with command-line or environment overrides)", p.message),
                ..p
            })
            .collect();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::new(source_name, problems))
        }
    }

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
