//! Semantic checks of a parsed config: every problem at once, each naming
//! its field and saying what to do. Never panics.

use std::time::Duration;

use super::{Config, Problem};

impl Config {
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
                if let Err(m) = check_key(k).and_then(|()| check_reserved(k)) {
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
        let max = self.backoff_max();
        if self.hooks.on_acquired_backoff_max.is_some()
            && (max < self.backoff_base() || max > Duration::from_secs(86400))
        {
            p.push(Problem {
                field: "hooks.on_acquired_backoff_max".into(),
                message: format!(
                    "{} is out of range; use timing.step_down_cooloff ({}, at least 1s) to 24h",
                    fmt(max),
                    fmt(self.backoff_base())
                ),
            });
        }
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
            if self.http.first_request_timeout.is_zero() {
                add("http.first_request_timeout", "must be more than 0s".into());
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
        self.validate_kubernetes(&mut add);
        self.validate_health(&mut add);
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
}

impl Config {
    fn validate_health(&self, add: &mut impl FnMut(&str, String)) {
        let h = &self.health;
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        match (&h.command, &h.http_url) {
            (Some(_), Some(_)) => add(
                "health.command",
                "both `health.command` and `health.http_url` are set; set only one".into(),
            ),
            (Some(c), None) if c.first().is_none_or(|c| c.is_empty()) => add(
                "health.command",
                "is empty; give the program and its arguments as a list, e.g. [\"/usr/local/bin/db-ok\", \"--quick\"]".into(),
            ),
            (None, Some(u)) => {
                if let Err(m) = crate::health::check::parse_url(u) {
                    add("health.http_url", m);
                }
            }
            _ => {}
        }
        if !h.enabled() {
            return;
        }
        if h.interval < Duration::from_millis(10) || h.interval > Duration::from_secs(3600) {
            add(
                "health.interval",
                format!("{} is out of range; use 10ms to 1h", fmt(h.interval)),
            );
        }
        let t = h.timeout();
        if t.is_zero() || t > h.interval {
            add(
                "health.timeout",
                format!(
                    "{} is out of range; use more than 0s and at most health.interval ({}), so that checks never overlap",
                    fmt(t),
                    fmt(h.interval)
                ),
            );
        }
        for (field, n) in [("health.rise", h.rise), ("health.fall", h.fall)] {
            if !(1..=100).contains(&n) {
                add(
                    field,
                    format!("{n} is out of range; use 1 to 100 results in a row"),
                );
            }
        }
        if let Some(d) = &h.working_dir {
            if !d.is_dir() {
                add(
                    "health.working_dir",
                    format!("`{}` is not a directory", d.display()),
                );
            }
        }
        if h.hold_down() > Duration::from_secs(86400) {
            add(
                "health.hold_down",
                format!("{} is out of range; use 0s to 24h", fmt(h.hold_down())),
            );
        }
    }

    fn validate_kubernetes(&self, add: &mut impl FnMut(&str, String)) {
        let k = &self.kubernetes;
        let Some(label) = &k.leader_label else {
            return;
        };
        if let Err(m) = check_label_key(label) {
            add("kubernetes.leader_label", m);
        }
        match &k.pod_selector {
            None => add(
                "kubernetes.pod_selector",
                "is required with `kubernetes.leader_label`: a label selector matching this election's pods and no others, e.g. app.kubernetes.io/instance=billing".into(),
            ),
            Some(s) => {
                if let Err(m) = check_selector(s) {
                    add("kubernetes.pod_selector", m);
                }
            }
        }
        if let Some(u) = &k.api_url {
            if let Err(m) = check_url(u) {
                add("kubernetes.api_url", m);
            }
        }
        if let Some(n) = &k.pod_name {
            if !is_dns_subdomain(n) {
                add(
                    "kubernetes.pod_name",
                    format!("`{n}` is not a pod name (lowercase letters, digits, '-' and '.'); remove it to use POD_NAME or the hostname"),
                );
            }
        }
        if let Some(n) = &k.namespace {
            if !is_dns_subdomain(n) || n.len() > 63 {
                add(
                    "kubernetes.namespace",
                    format!("`{n}` is not a namespace name; remove it to use POD_NAMESPACE or the service account's namespace"),
                );
            }
        }
        let t = k.request_timeout;
        if t < Duration::from_millis(100) || t > Duration::from_secs(60) {
            add(
                "kubernetes.request_timeout",
                format!(
                    "{} is out of range; use 100ms to 60s",
                    humantime::format_duration(t)
                ),
            );
        }
    }
}

/// A DNS subdomain (RFC 1123) as Kubernetes names objects: at most 253
/// lowercase letters, digits, '-' and '.', starting and ending with a
/// letter or digit.
fn is_dns_subdomain(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !s.is_empty()
        && s.len() <= 253
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A label name or value part: at most 63 of `[A-Za-z0-9._-]`, starting and
/// ending with a letter or digit.
fn is_label_name(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !s.is_empty()
        && s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
pub(crate) fn check_label_key(k: &str) -> Result<(), String> {
    let ok = match k.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(k),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{k}` is not a label key: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.', e.g. s3-elector/leader"
        ))
    }
}

/// An equality-based label selector: `key=value`, `key==value` or
/// `key!=value` terms joined by commas.
fn check_selector(s: &str) -> Result<(), String> {
    let term_ok = |t: &str| {
        let (key, value) = match t.split_once("!=").or_else(|| t.split_once("==")) {
            Some(kv) => kv,
            None => match t.split_once('=') {
                Some(kv) => kv,
                None => return false,
            },
        };
        check_label_key(key).is_ok() && (value.is_empty() || is_label_name(value))
    };
    if !s.is_empty() && s.split(',').all(term_ok) {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a label selector: write key=value terms joined by commas, e.g. app.kubernetes.io/name=s3-elector,app.kubernetes.io/instance=billing"
        ))
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

pub(super) fn check_name(name: &str) -> Result<(), String> {
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

/// Keys the daemon derives beside a lease key (term floor, candidate
/// entries, probe objects) must never be another election's lease key.
pub(crate) fn check_reserved(k: &str) -> Result<(), String> {
    let reserved = ["/term.json", ".term.json", ".candidate.json"];
    if let Some(end) = reserved.iter().find(|e| k.ends_with(*e)) {
        return Err(format!(
            "`{k}` ends with `{end}`, which s3-elector keeps for its own objects beside a lease; choose another key"
        ));
    }
    if k.contains(".probe/") {
        return Err(format!(
            "`{k}` contains `.probe/`, which s3-elector keeps for its conformance probe; choose another key"
        ));
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
