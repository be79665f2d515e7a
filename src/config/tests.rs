//! Unit tests of loading, validation and layering.

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
    assert!(
        p[0].message
            .starts_with("required key `election` is missing; set it in the config file"),
        "{}",
        p[0].message
    );
    assert_eq!(p[0].field, "election");
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
        vec!["hooks.on_lost.comand", "hooks.on_lost.command"]
    );
    assert_eq!(
        fields(&format!("{base}child:\n  kill_grace: 5s\n")),
        vec!["child.kill_grace"]
    );
    assert_eq!(
        fields(&format!("{base}hooks:\n  on_acquired_failure: maybe\n")),
        vec!["hooks.on_acquired_failure"]
    );
    // The back-off's cap is at least the cool-off it starts from.
    assert_eq!(
        fields(&format!("{base}hooks:\n  on_acquired_backoff_max: 5s\n")),
        vec!["hooks.on_acquired_backoff_max"]
    );
    assert_eq!(
        fields(&format!("{base}hooks:\n  on_acquired_backoff_max: 2d\n")),
        vec!["hooks.on_acquired_backoff_max"]
    );
    assert!(fields(&format!("{base}hooks:\n  on_acquired_backoff_max: 10s\n")).is_empty());
    // Unset, it follows a long cool-off: an old config stays valid.
    let c = Config::from_yaml(&format!("{base}timing:\n  step_down_cooloff: 15m\n"), "t").unwrap();
    assert_eq!(c.backoff_max(), Duration::from_secs(900));
    assert_eq!(
        Config::from_yaml(base, "t").unwrap().backoff_max(),
        Duration::from_secs(600)
    );
    // A cool-off of 0 s still backs off, from 1 s.
    let c = Config::from_yaml(&format!("{base}timing:\n  step_down_cooloff: 0s\n"), "t").unwrap();
    assert_eq!(c.backoff_base(), Duration::from_secs(1));
    let c = Config::from_yaml(base, "t").unwrap();
    assert_eq!(c.child_kill_grace(), Duration::from_millis(2500));
}

#[test]
fn several_problems_at_once() {
    let p = problems("election: ''\nbogus: 1\ns3:\n  bucket: x\ntiming:\n  lease_duration: 1s\n");
    let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
    assert!(f.contains(&"bogus"), "{f:?}");
    assert!(f.contains(&"election"), "{f:?}");
    assert!(f.contains(&"s3.bucket"), "{f:?}");
    assert!(f.contains(&"timing.renew_deadline"), "{f:?}");
}

/// Every value of the wrong type is reported at once, in the file's terms
/// (not Rust's), and the semantic checks still run on the rest.
#[test]
fn every_type_error_at_once() {
    let p = problems(
        "election: d\ns3:\n  bucket: x\nhttp:\n  max_connections: -1\n  step_down: maybe\n\
         timing:\n  lease_duration: 15\nhooks:\n  on_lost:\n    command: [a]\n    timeout: soon\n",
    );
    let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
    for field in [
        "http.max_connections",
        "http.step_down",
        "timing.lease_duration",
        "hooks.on_lost.timeout",
        "s3.bucket",
    ] {
        assert!(f.contains(&field), "{field} not reported: {p:?}");
    }
    let m = |field: &str| p.iter().find(|p| p.field == field).unwrap().message.clone();
    assert_eq!(
        m("http.max_connections"),
        "must be a whole number (got integer `-1`)"
    );
    assert!(
        m("http.step_down").contains("expected true or false"),
        "{p:?}"
    );
    assert!(!p.iter().any(|p| p.message.contains("usize")), "{p:?}");
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
        let yaml = format!("election: d\nadvertise_address: \"{bad}\"\ns3:\n  bucket: leases\n");
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
        let yaml = format!("election: d\nadvertise_address: \"{good}\"\ns3:\n  bucket: leases\n");
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
    assert_eq!(TOP_KEYS.len(), 15);
    assert_eq!(S3_KEYS.len(), 8);
    assert_eq!(TIMING_KEYS.len(), 4);
    let yaml = "election: d\ns3:\n  bucket: leases\nstatus_file: /tmp/s.json\n\
            http:\n  enabled: true\n  listen: 127.0.0.1:1\n  allow_non_loopback: false\n  step_down: true\n  wake: true\n  max_connections: 4\n  first_request_timeout: 500ms\n  header_timeout: 1s\n\
            registry:\n  enabled: true\n  refresh: 10m\n  list_interval: 30s\n\
            hooks:\n  on_acquired_failure: keep\n  on_acquired_backoff_max: 1m\n  on_acquired:\n    command: [a]\n    timeout: 1s\n    working_dir: /\n  on_lost:\n    command: [b]\n  on_leader_changed:\n    command: [c]\n\
            child:\n  on_exit: restart\n  kill_grace: 1s\ntiming:\n  step_down_cooloff: 3s\nfenced:\n  prefix: results/\n\
            kubernetes:\n  leader_label: s3-elector/leader\n  pod_selector: app=x\n  pod_name: p\n  namespace: n\n  api_url: http://127.0.0.1:1\n  service_account_dir: /tmp\n  request_timeout: 2s\n";
    Config::from_yaml(yaml, "t").unwrap();
    assert_eq!(KUBERNETES_KEYS.len(), 7);
    assert_eq!(HTTP_KEYS.len(), 8);
    assert_eq!(REGISTRY_KEYS.len(), 3);
    assert_eq!(HOOK_KEYS.len(), 3);
    assert_eq!(HOOKS_KEYS.len(), 5);
    assert_eq!(CHILD_KEYS.len(), 2);
    assert_eq!(FENCED_KEYS.len(), 1);
    let yaml = "election: d\ns3:\n  bucket: leases\n\
            health:\n  command: [/bin/true]\n  working_dir: /\n  interval: 2s\n  timeout: 1s\n  rise: 3\n  fall: 4\n  when_none_healthy: release\n  hold_down: 7s\n  fail_fast: true\n";
    let c = Config::from_yaml(yaml, "t").unwrap();
    assert_eq!(HEALTH_KEYS.len(), 10);
    assert_eq!(c.health.hold_down(), Duration::from_secs(7));
    assert_eq!(c.health.when_none_healthy, WhenNoneHealthy::Release);
    Config::from_yaml(
        "election: d\ns3:\n  bucket: leases\nhealth:\n  http_url: http://127.0.0.1:9/ok\n",
        "t",
    )
    .unwrap();
}

#[test]
fn health_has_keepalived_defaults_and_every_bad_value_is_named() {
    let base = "election: d\ns3:\n  bucket: leases\n";
    let c = Config::from_yaml(&format!("{base}health:\n  command: [/bin/true]\n"), "t").unwrap();
    assert!(c.health.enabled());
    assert_eq!(c.health.interval, Duration::from_secs(5));
    assert_eq!(
        c.health.timeout(),
        Duration::from_secs(5),
        "timeout defaults to the interval"
    );
    assert_eq!((c.health.rise, c.health.fall), (2, 3));
    assert_eq!(
        c.health.hold_down(),
        Duration::from_secs(10),
        "rise × interval"
    );
    assert_eq!(c.health.when_none_healthy, WhenNoneHealthy::Stay);
    assert!(!Config::from_yaml(base, "t").unwrap().health.enabled());
    let bad = |h: &str| -> String {
        Config::from_yaml(&format!("{base}health:\n{h}"), "t")
            .unwrap_err()
            .lines()
            .join("\n")
    };
    let e = bad("  command: [a]\n  http_url: http://h:1/\n");
    assert!(
        e.contains("health.command") && e.contains("set only one"),
        "{e}"
    );
    let e = bad("  command: []\n");
    assert!(
        e.contains("health.command") && e.contains("is empty"),
        "{e}"
    );
    let e = bad("  http_url: https://h/ok\n");
    assert!(
        e.contains("health.http_url") && e.contains("http://"),
        "{e}"
    );
    let e = bad("  http_url: \"not a url\"\n");
    assert!(e.contains("health.http_url"), "{e}");
    let e = bad("  command: [a]\n  interval: 1s\n  timeout: 2s\n");
    assert!(
        e.contains("health.timeout") && e.contains("never overlap"),
        "{e}"
    );
    let e = bad("  command: [a]\n  rise: 0\n  fall: 101\n");
    assert!(
        e.contains("health.rise") && e.contains("health.fall"),
        "{e}"
    );
    let e = bad("  command: [a]\n  interval: 5\n");
    assert!(
        e.contains("health.interval") && e.contains("no unit"),
        "{e}"
    );
    let e = bad("  command: [a]\n  when_none_healthy: maybe\n");
    assert!(e.contains("when_none_healthy"), "{e}");
    let e = bad("  comand: [a]\n");
    assert!(e.contains("comand"), "{e}");
}

#[test]
fn overrides_replace_the_file_and_are_validated_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(&file, GOOD).unwrap();
    let cfg = Config::load(&file).unwrap();
    let o = Overrides::default()
        .text("http.listen", Some("127.0.0.1:4999"))
        .text("advertise_address", Some("10.0.0.5:4999"))
        .text("status_file", Some("/run/s3e/status.json"))
        .text("s3.bucket", Some("123"))
        .text("timing.retry_period", Some("1s"))
        .flag("s3.force_path_style", Some(true))
        .text("s3.prefix", None);
    let c = Config::load_layered(Some(&file), &o).unwrap();
    assert_eq!(c.http.listen.as_deref(), Some("127.0.0.1:4999"));
    assert_eq!(c.advertise_address.as_deref(), Some("10.0.0.5:4999"));
    assert_eq!(
        c.status_file.as_deref(),
        Some(std::path::Path::new("/run/s3e/status.json"))
    );
    // Numeric-looking text stays text.
    assert_eq!(c.s3.bucket, "123");
    assert_eq!(c.timing.retry_period, std::time::Duration::from_secs(1));
    assert!(c.s3.force_path_style);
    assert_eq!(c.s3.prefix, cfg.s3.prefix);
    assert_eq!(c.election, cfg.election);
    assert_eq!(
        Config::load_layered(Some(&file), &Overrides::default()).unwrap(),
        cfg
    );
    let bad = Overrides::default()
        .text("http.listen", Some("0.0.0.0:4040"))
        .text("advertise_address", Some("no-port"))
        .text("timing.lease_duration", Some("soon"));
    let e = Config::load_layered(Some(&file), &bad).unwrap_err();
    let fields: Vec<&str> = e.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["timing.lease_duration", "advertise_address", "http.listen"],
        "{:?}",
        e.lines()
    );
    let lines = e.lines();
    assert!(
        lines[0].contains("(set by --lease-duration / S3_ELECTOR_LEASE_DURATION)"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("(set by --advertise-address / S3_ELECTOR_ADVERTISE_ADDRESS)"),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("(set by --http-listen / S3_ELECTOR_HTTP_LISTEN)"),
        "{lines:?}"
    );
}

#[test]
fn a_config_from_flags_and_environment_alone() {
    let o = Overrides::default()
        .text("election", Some("007"))
        .text("s3.bucket", Some("leases"))
        .text("s3.region", Some("eu-west-1"))
        .text("s3.endpoint_url", Some("http://127.0.0.1:8333"))
        .text("s3.key", Some("locks/x.json"))
        .text("identity_from", Some("ec2-instance-id"));
    let c = Config::load_layered(None, &o).unwrap();
    assert_eq!(c.election, "007");
    assert_eq!(c.lease_key(), "locks/x.json");
    assert_eq!(c.s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.identity_from, IdentitySource::Ec2InstanceId);
    // Without the required ones, each says where it can be set.
    let e = Config::load_layered(None, &Overrides::default()).unwrap_err();
    let lines = e.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("`election`")
                && l.contains("--election or with S3_ELECTOR_ELECTION")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("`s3.bucket`") && l.contains("--bucket or with S3_ELECTOR_BUCKET")),
        "{lines:?}"
    );
    assert!(
        e.source_name.contains("no config file") || e.source_name.contains("no --config"),
        "{}",
        e.source_name
    );
    // An unknown identity source names the variable.
    let bad = Overrides::default()
        .text("election", Some("e"))
        .text("s3.bucket", Some("b"))
        .text("identity_from", Some("dns"));
    let lines = Config::load_layered(None, &bad).unwrap_err().lines();
    assert!(
        lines[0].contains("identity_from") && lines[0].contains("S3_ELECTOR_IDENTITY_FROM"),
        "{lines:?}"
    );
}

#[test]
fn a_custom_lease_key_cannot_take_a_reserved_name() {
    for bad in [
        "a/term.json",
        "a/x.term.json",
        "a/b/web-1.candidate.json",
        "a/lease.json.probe/x",
    ] {
        let yaml = format!("election: d\ns3:\n  bucket: leases\n  key: {bad}\n");
        assert_eq!(fields(&yaml), vec!["s3.key"], "{bad}");
    }
    Config::from_yaml(
        "election: d\ns3:\n  bucket: leases\n  key: a/terms.json\n",
        "t",
    )
    .unwrap();
}

#[test]
fn every_setting_with_a_variable_is_a_known_key_and_a_flag() {
    let cli = include_str!("../cli/mod.rs");
    for (field, flag, var) in super::layering::SETTINGS {
        let (parent, key) = field.rsplit_once('.').unwrap_or(("", field));
        assert!(known_keys(parent).unwrap().contains(&key), "{field}");
        assert!(
            cli.contains(&format!("env = \"{var}\"")),
            "{var} is not a flag's variable"
        );
        let name = flag.trim_start_matches("--").replace('-', "_");
        assert!(
            cli.contains(&format!("pub {name}: Option<")),
            "{flag} is not a flag"
        );
    }
}

#[test]
fn the_leader_label_needs_a_valid_label_and_selector() {
    let base = "election: d\ns3:\n  bucket: leases\n";
    let ok = format!("{base}kubernetes:\n  leader_label: s3-elector/leader\n  pod_selector: \"app.kubernetes.io/instance=billing,tier!=web\"\n");
    let c = Config::from_yaml(&ok, "t").unwrap();
    assert_eq!(
        c.kubernetes.leader_label.as_deref(),
        Some("s3-elector/leader")
    );
    // Off by default, and the other keys alone need nothing.
    let c = Config::from_yaml(base, "t").unwrap();
    assert_eq!(c.kubernetes.leader_label, None);
    for (k8s, field, says) in [
        (
            "leader_label: s3-elector/leader",
            "kubernetes.pod_selector",
            "required",
        ),
        (
            "leader_label: \"-bad\"\n  pod_selector: a=b",
            "kubernetes.leader_label",
            "not a label key",
        ),
        (
            "leader_label: \"UPPER.example/x\"\n  pod_selector: a=b",
            "kubernetes.leader_label",
            "not a label key",
        ),
        (
            "leader_label: x\n  pod_selector: \"a=b,,c\"",
            "kubernetes.pod_selector",
            "not a label selector",
        ),
        (
            "leader_label: x\n  pod_selector: \"a=b c\"",
            "kubernetes.pod_selector",
            "not a label selector",
        ),
        (
            "leader_label: x\n  pod_selector: a=b\n  api_url: ftp://x",
            "kubernetes.api_url",
            "http",
        ),
        (
            "leader_label: x\n  pod_selector: a=b\n  request_timeout: 0s",
            "kubernetes.request_timeout",
            "range",
        ),
        (
            "leader_label: x\n  pod_selector: a=b\n  pod_name: \"Not_A_Pod\"",
            "kubernetes.pod_name",
            "not a pod name",
        ),
    ] {
        let yaml = format!("{base}kubernetes:\n  {k8s}\n");
        let e = Config::from_yaml(&yaml, "t").expect_err(k8s);
        assert!(
            e.lines()
                .iter()
                .any(|l| l.contains(field) && l.contains(says)),
            "{k8s}: {:?}",
            e.lines()
        );
    }
    for ns in ["Prod", &"n".repeat(64)] {
        let yaml = format!(
            "{base}kubernetes:\n  leader_label: x\n  pod_selector: a=b\n  namespace: \"{ns}\"\n"
        );
        let e = Config::from_yaml(&yaml, "t").expect_err(ns);
        assert!(
            e.lines().iter().any(|l| l.contains("kubernetes.namespace")),
            "{ns}: {:?}",
            e.lines()
        );
    }
    let yaml = format!(
        "{base}kubernetes:\n  leader_label: x\n  pod_selector: a=b\n  namespace: \"{}\"\n",
        "n".repeat(63)
    );
    Config::from_yaml(&yaml, "t").expect("a 63-character namespace");
    // Defaults that fit a pod; typos in the section are named with their path.
    let c = Config::from_yaml(base, "t").unwrap();
    assert_eq!(
        c.kubernetes.service_account_dir,
        std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount")
    );
    assert_eq!(
        c.kubernetes.request_timeout,
        std::time::Duration::from_secs(3)
    );
    let e = Config::from_yaml(&format!("{base}kubernetes:\n  leader_lable: x\n"), "t").unwrap_err();
    assert!(
        e.lines()
            .iter()
            .any(|l| l.contains("kubernetes.leader_lable") && l.contains("leader_label")),
        "{:?}",
        e.lines()
    );
    let long = "a".repeat(64);
    let yaml = format!("{base}kubernetes:\n  leader_label: {long}\n  pod_selector: a=b\n");
    assert!(Config::from_yaml(&yaml, "t").is_err());
}
