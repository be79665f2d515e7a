//! The README's examples are real: its JSON parses, its YAML configs pass
//! validation, and every `s3-elector` command line in it parses.

mod support;

use std::path::Path;

use support::*;

fn blocks(lang: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match &mut cur {
            None if line.trim_start() == format!("```{lang}") => cur = Some(String::new()),
            Some(b) if line.trim_start() == "```" => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn json_examples_parse() {
    let b = blocks("json");
    assert!(b.len() >= 2);
    for j in b {
        serde_json::from_str::<serde_json::Value>(&j).unwrap_or_else(|e| panic!("{e}:\n{j}"));
    }
}

#[test]
fn yaml_config_examples_validate() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for y in blocks("yaml") {
        // Helm files (a chart's values, templates) say so on their first
        // line; every other block with an election is a config.
        let helm = ["# values.yaml", "# Chart.yaml", "# templates/"]
            .iter()
            .any(|h| y.starts_with(h));
        if !y.contains("election:") || helm {
            continue;
        }
        let p = dir.path().join("readme.yaml");
        std::fs::write(&p, &y).unwrap();
        let (code, out, err) =
            run_cmd(&p, &["check", "--offline"], &[("S3_ELECTOR_IDENTITY", "a")]);
        assert_eq!(code, 0, "{y}\n{out}{err}");
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn command_lines_parse() {
    let mut n = 0;
    for b in blocks("sh") {
        for line in b.lines() {
            let line = line.split('#').next().unwrap().trim();
            let Some(rest) = line.strip_prefix("s3-elector ") else {
                continue;
            };
            let rest = rest.split('>').next().unwrap();
            // Placeholders are values; [optional] parts and `--` programs are dropped.
            let mut args: Vec<String> = Vec::new();
            let mut skip = false;
            for w in rest.split_whitespace() {
                if w.starts_with('[') || w == "--" {
                    skip = true;
                }
                if !skip {
                    args.push(w.trim_matches('\'').to_string());
                }
                if w.ends_with(']') {
                    skip = false;
                }
            }
            args.push("--help".into());
            let out = std::process::Command::new(bin())
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README line does not parse: {line}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 8, "{n} command lines found");
}

/// Every environment variable a flag reads (`env = "..."` in the CLI) is
/// named in the README.
#[test]
fn every_environment_variable_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let cli = std::fs::read_to_string(root.join("src/cli/mod.rs")).unwrap();
    let vars: Vec<&str> = cli
        .split("env = \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(vars.len() >= 10, "{vars:?}");
    for v in vars {
        assert!(
            readme.contains(&format!("`{v}`")),
            "{v} is not in the README"
        );
    }
}

/// The EC2 user-data example (packaging/ec2-user-data.yaml) is cloud-config
/// YAML, and the config it writes passes `s3-elector check` against the
/// test store (its bucket and endpoint replaced by flags, the identity
/// given, as off EC2).
#[test]
fn the_ec2_user_data_example_writes_a_config_that_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("packaging/ec2-user-data.yaml")).unwrap();
    assert!(text.starts_with("#cloud-config\n"));
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let files = doc["write_files"].as_sequence().expect("write_files");
    let content = files[0]["content"].as_str().expect("the config");
    // One script that stops at the first failure, the check before the start.
    let runcmd = doc["runcmd"].as_sequence().unwrap();
    assert_eq!(runcmd.len(), 1, "{runcmd:?}");
    let script = runcmd[0].as_str().expect("a shell script");
    assert!(script.starts_with("set -eu\n"), "{script}");
    let at = |s: &str| {
        script
            .find(s)
            .unwrap_or_else(|| panic!("runcmd lacks {s}: {script}"))
    };
    assert!(at("dnf install") < at("install -m 0640"));
    assert!(at("s3-elector check") < at("systemctl enable --now s3-elector.service"));
    assert!(
        content.contains("identity_from: ec2-instance-id"),
        "{content}"
    );
    // The listen address comes from instance metadata, before the config
    // is installed; here the line runs with a loopback address.
    let printf = script
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("printf 'http:"))
        .expect("the listen address is appended");
    assert!(at("latest/meta-data/local-ipv4") < at("printf 'http:"));
    assert!(at("printf 'http:") < at("install -m 0640"));
    let sw = Seaweed::start();
    sw.bucket("fleet");
    let cfg = sw.dir.path().join("s3-elector.yaml");
    std::fs::write(&cfg, content).unwrap();
    let appended = printf.replace(
        "/run/s3-elector-cloud-init.yaml",
        &cfg.display().to_string(),
    );
    let ok = std::process::Command::new("bash")
        .args(["-c", &format!("IP=127.0.0.1; {appended}")])
        .status()
        .unwrap();
    assert!(ok.success());
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(written.contains("listen: \"127.0.0.1:4040\""), "{written}");
    let (code, out, err) = run_cmd(
        &cfg,
        &[
            "check",
            "--bucket",
            "fleet",
            "--endpoint-url",
            &sw.endpoint,
            "--force-path-style",
            "true",
        ],
        &[("S3_ELECTOR_IDENTITY", "i-0123456789abcdef0")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("conformance probe: passed"), "{out}");
    assert!(!out.contains("is not a loopback address"), "{out}");
}
