//! The command line without a store: config errors and usage.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::path::Path;

use support::*;

fn write(dir: &Path, yaml: &str) -> std::path::PathBuf {
    let p = dir.join("c.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Each rule gives its message, naming the field, and exit code 64, for
/// every command that reads the config.
#[test]
fn invalid_configs_exit_64_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("s3:\n  bucket: leases\n", "`election`", "required key `election` is missing"),
        ("election: e\ns3:\n  bucket: leases\n  regoin: x\n", "`s3.regoin`", "did you mean `region`"),
        ("election: e\ns3:\n  bucket: Leases_1\n", "`s3.bucket`", "not a valid bucket name"),
        ("election: e\ns3:\n  bucket: leases\n  key: k\n  prefix: p\n", "`s3.key`", "set only one"),
        ("election: e\ns3:\n  bucket: leases\n  endpoint_url: localhost\n", "`s3.endpoint_url`", "must start with http"),
        ("election: e\ns3:\n  bucket: leases\ntiming:\n  lease_duration: 10s\n", "`timing.renew_deadline`", "must be shorter than timing.lease_duration"),
        ("election: e\ns3:\n  bucket: leases\n  request_timeout: 1s\n  connect_timeout: 1s\ntiming:\n  renew_deadline: 2s\n  retry_period: 2s\n", "`timing.retry_period`", "renew_deadline / 1.2"),
        ("election: e\ns3:\n  bucket: leases\ntiming:\n  retry_period: 2\n", "`timing.retry_period`", "has no unit"),
        ("election: e\ns3:\n  bucket: leases\n  request_timeout: 12s\n", "`s3.request_timeout`", "shorter than timing.renew_deadline"),
        ("election: e\nidentity: 'a b'\ns3:\n  bucket: leases\n", "`identity`", "letters, digits"),
        ("election: [\n", "", "not valid YAML"),
    ];
    for (yaml, field, msg) in cases {
        let cfg = write(dir.path(), yaml);
        for cmd in ["run", "check", "status"] {
            let (code, out, err) = run_cmd(&cfg, &[cmd], &[]);
            assert_eq!(code, 64, "{cmd} {yaml:?}: {out}{err}");
            assert!(
                err.contains(field) && err.contains(msg),
                "{cmd} {yaml:?}: {err}"
            );
            assert!(err.contains("c.yaml"), "names the file: {err}");
        }
    }
    // All problems at once, one line each.
    let cfg = write(dir.path(), "election: ''\nbogus: 1\ns3:\n  bucket: x\n");
    let (code, _, err) = run_cmd(&cfg, &["check"], &[]);
    assert_eq!(code, 64);
    assert_eq!(err.lines().count(), 3, "{err}");
    // A missing file, and a bad identity from the environment.
    let (code, _, err) = run_cmd(&dir.path().join("nope.yaml"), &["check"], &[]);
    assert_eq!(code, 64);
    assert!(err.contains("cannot read the file"), "{err}");
    let cfg = write(dir.path(), "election: e\ns3:\n  bucket: leases\n");
    let (code, _, err) = run_cmd(&cfg, &["check"], &[("S3_ELECTOR_IDENTITY", "no/slash")]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("`identity`"), "{err}");
}

#[test]
fn every_shipped_config_passes_check_offline() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            let (code, out, err) = run_cmd(
                &p,
                &["check", "--offline"],
                &[("S3_ELECTOR_IDENTITY", "node-a")],
            );
            assert_eq!(code, 0, "{}: {out}{err}", p.display());
            assert!(out.contains("network checks: SKIPPED"), "{out}");
            n += 1;
        }
    }
    assert!(n >= 2, "found {n} configs");
}

/// `identity_from: ec2-instance-id` reads IMDSv2 (token, then instance id);
/// here from a fake metadata service on loopback.
#[test]
fn identity_from_the_ec2_instance_id() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().take(8).map_while(Result::ok) {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.to_ascii_lowercase().starts_with("content-length:") {
                    len = h[15..].trim().parse().unwrap_or(0);
                }
                if h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let reply = if first.starts_with("PUT /latest/api/token") {
                "token-123"
            } else if first.starts_with("GET /latest/meta-data/instance-id") {
                "i-0123456789abcdef0"
            } else {
                ""
            };
            let status = if reply.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let mut s = s;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "identity_from: ec2-instance-id\nelection: e\ns3:\n  bucket: leases\n",
    );
    let mut cmd = daemon_command(&cfg);
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .args(["check", "--offline"]);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("identity: i-0123456789abcdef0"), "{text}");
    // --identity still wins over the metadata.
    let (code, out, _) = run_cmd(
        &cfg,
        &["check", "--offline"],
        &[("S3_ELECTOR_IDENTITY", "node-x")],
    );
    assert_eq!(code, 0);
    assert!(out.contains("identity: node-x"), "{out}");
    // AWS_EC2_METADATA_DISABLED=true (set by daemon_command): the metadata
    // service is not asked at all (the fake one above would answer), and
    // the error says why, in one line.
    let mut cmd = daemon_command(&cfg);
    cmd.env(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    )
    .args(["check", "--offline"]);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains("AWS_EC2_METADATA_DISABLED=true forbids asking instance metadata")
            && err.lines().count() == 1,
        "{err}"
    );
}

/// A hook or program that could never start is refused at once, naming it,
/// instead of failing at every acquisition.
#[test]
fn missing_or_unexecutable_programs_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("job.sh");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let cfg = write(
        dir.path(),
        &format!(
            "election: e\ns3:\n  bucket: leases\nhooks:\n  on_acquired:\n    command: [no-such-hook-s3e]\n  on_lost:\n    command: [\"{}\"]\n",
            plain.display()
        ),
    );
    let (code, out, _) = run_cmd(&cfg, &["check", "--offline"], &[]);
    assert_eq!(code, 0, "--offline checks the config alone: {out}");
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("check: passed offline")),
        "the verdict comes last: {out}"
    );
    // A reader that goes away early (`check | head -1`): no panic.
    let mut early = daemon_command(&cfg)
        .args(["check", "--offline"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(early.stdout.take());
    let done = early.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(done.status.code(), Some(0), "{err}");
    assert!(
        out.contains("warning: config error: `hooks.on_acquired.command`"),
        "{out}"
    );
    for args in [&["check"][..], &["run"][..]] {
        let (code, out, err) = run_cmd(&cfg, args, &[]);
        assert_eq!(code, 64, "{args:?}: {out}{err}");
        assert!(
            err.contains("`hooks.on_acquired.command`") && err.contains("not found in PATH"),
            "{err}"
        );
        assert!(
            err.contains("`hooks.on_lost.command`") && err.contains("not executable"),
            "{err}"
        );
    }
    let cfg = write(dir.path(), "election: e\ns3:\n  bucket: leases\n");
    for cmd in ["run", "check"] {
        let (code, out, err) = run_cmd(&cfg, &[cmd, "--", "/no/such/job"], &[]);
        assert_eq!(code, 64, "{cmd}: {out}{err}");
        assert!(
            err.contains("the program after `--`") && err.contains("/no/such/job"),
            "{cmd}: {err}"
        );
    }
}

/// `check` looks at what `run` will need on this host: a status file it
/// can write and a free HTTP address (a warning: the running copy may hold
/// it).
#[test]
fn check_finds_an_unwritable_status_file_and_a_taken_address() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("state");
    std::fs::write(&blocker, "a file, not a directory").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let cfg = write(
        dir.path(),
        &format!(
            "election: e\ns3:\n  bucket: leases\nstatus_file: {}/status.json\nhttp:\n  listen: {addr}\n",
            blocker.display()
        ),
    );
    let (code, out, err) = run_cmd(&cfg, &["check"], &[]);
    assert_eq!(code, 64, "{out}{err}");
    assert!(
        err.contains("`status_file`") && err.contains("cannot create a file in"),
        "{err}"
    );
    assert!(
        out.contains(&format!("warning: `http.listen` {addr} cannot be bound")),
        "{out}"
    );
    // Offline (a config meant for another host): warnings only.
    let (code, out, err) = run_cmd(&cfg, &["check", "--offline"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning: config error: `status_file`"),
        "{out}"
    );
    // The flag replaces the file's path, as for `run`.
    let good = dir.path().join("status.json");
    let (code, out, err) = run_cmd(
        &cfg,
        &[
            "check",
            "--offline",
            "--status-file",
            good.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("`status_file`"), "{out}");
    assert!(!good.exists(), "check must not leave files behind");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "the blocker and the config only"
    );
    drop(taken);
}

/// `man --dir` writes a page per command, and each renders with `man -l`
/// with its ENVIRONMENT and EXIT STATUS sections.
#[test]
fn the_man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let written = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        written.lines().count(),
        13,
        "with fenced put, get and rm: {written}"
    );
    for page in written.lines() {
        let r = std::process::Command::new("man")
            .args(["-l", "-P", "cat", page])
            .env("MANWIDTH", "100")
            .env("LANG", "C.UTF-8")
            .output()
            .expect("man (Debian package man-db) is needed to check the pages");
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(
            r.status.success(),
            "{page}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        for section in ["NAME", "SYNOPSIS", "ENVIRONMENT", "EXIT STATUS", "SEE ALSO"] {
            assert!(
                text.lines().any(|l| l == section),
                "{page} has no {section}:\n{text}"
            );
        }
    }
    // Without --dir: the main page on stdout, as before.
    let main = std::process::Command::new(bin())
        .arg("man")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&main.stdout).contains(".TH s3-elector 1"));
}

/// A command line clap refuses exits 64 like any other bad command line
/// (clap's own code is 2); `is-leader` exits 255, which systemd's
/// `ExecCondition=` takes as a failure rather than "skip the job"; help
/// and version exit 0.
#[test]
fn usage_errors_exit_64_and_is_leader_255() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["run", "--no-such-flag"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    let (code, _, err) = run(&["no-such-command"]);
    assert_eq!(code, Some(64), "{err}");
    let (code, _, err) = run(&["is-leader", "--no-such-flag"]);
    assert_eq!(code, Some(255), "{err}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Usage"), "{out}");
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

/// `is-leader` counts the time its own request took against the lease the
/// daemon reported: an answer that says "3 s left" but took 2.8 s to
/// arrive leaves 0.2 s, less than `retry_period` (0.5 s): skip the job.
#[test]
fn is_leader_subtracts_the_time_its_answer_took() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            std::thread::sleep(std::time::Duration::from_millis(2_800));
            let body = r#"{"is_leader": true, "view_valid_for_seconds": 3.0, "term": 5, "leader": "a", "election": "e", "identity": "a"}"#;
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "election: e\ns3:\n  bucket: leases\n  request_timeout: 1s\n  connect_timeout: 500ms\ntiming:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n",
    );
    let listen = format!("127.0.0.1:{port}");
    let (code, out, err) = run_cmd(
        &cfg,
        &["is-leader"],
        &[("S3_ELECTOR_HTTP_LISTEN", listen.as_str())],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("but only 0."), "{out}");
    // --json: leading, but the answer is "skip", so no term to fence with.
    let (code, out, err) = run_cmd(
        &cfg,
        &["is-leader", "--json"],
        &[("S3_ELECTOR_HTTP_LISTEN", listen.as_str())],
    );
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v["leader"], true, "{v}");
    assert!(v["term"].is_null(), "{v}");
    drop(server);
}
