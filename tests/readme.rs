//! The docs' examples are real: in the README, CONTRIBUTING.md and every
//! guide under docs/, the JSON parses, the YAML configs pass validation,
//! and every `s3-elector` command line parses. The reference names every
//! environment variable and exit code, the reference config every config
//! key, and CONTRIBUTING.md's layout every source file.

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, CONTRIBUTING.md and docs/*.md.
fn docs() -> Vec<PathBuf> {
    let mut v = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    guides.sort();
    assert!(guides.len() >= 8, "{guides:?}");
    v.extend(guides);
    v
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fenced blocks of `lang` in every doc, each with its file's name.
fn blocks(lang: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in docs() {
        let name = p.strip_prefix(root()).unwrap().display().to_string();
        let mut cur: Option<String> = None;
        for line in read(&p).lines() {
            match &mut cur {
                None if line.trim_start() == format!("```{lang}") => cur = Some(String::new()),
                Some(b) if line.trim_start() == "```" => {
                    out.push((name.clone(), std::mem::take(b)));
                    cur = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
                None => {}
            }
        }
    }
    out
}

#[test]
fn json_examples_parse() {
    let b = blocks("json");
    assert!(b.len() >= 3);
    for (doc, j) in b {
        serde_json::from_str::<serde_json::Value>(&j)
            .unwrap_or_else(|e| panic!("{doc}: {e}:\n{j}"));
    }
}

#[test]
fn yaml_config_examples_validate() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for (doc, y) in blocks("yaml") {
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
        assert_eq!(code, 0, "{doc}:\n{y}\n{out}{err}");
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn command_lines_parse() {
    let mut n = 0;
    for (doc, b) in blocks("sh") {
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
                "{doc}: a command line does not parse: {line}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 20, "{n} command lines found");
}

/// Every environment variable a flag reads (`env = "..."` in the CLI) is
/// named in the reference.
#[test]
fn every_environment_variable_is_documented() {
    let reference = read(&root().join("docs/reference.md"));
    let cli = read(&root().join("src/cli/mod.rs"));
    let vars: Vec<&str> = cli
        .split("env = \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(vars.len() >= 10, "{vars:?}");
    for v in vars {
        assert!(
            reference.contains(&format!("`{v}`")),
            "{v} is not in docs/reference.md"
        );
    }
}

/// Every exit code the code defines (`const EXIT_…: i32 = N`) has a row or
/// a sentence in the reference.
#[test]
fn every_exit_code_is_documented() {
    let reference = read(&root().join("docs/reference.md"));
    let mut codes = Vec::new();
    let mut stack = vec![root().join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                for line in read(&p).lines() {
                    let l = line.trim_start_matches("pub ").trim();
                    if let Some(rest) = l.strip_prefix("const EXIT_") {
                        if let Some((_, n)) = rest.split_once(": i32 = ") {
                            codes.push(n.trim_end_matches(';').to_string());
                        }
                    }
                }
            }
        }
    }
    assert!(codes.len() >= 10, "{codes:?}");
    for c in codes {
        assert!(
            reference.contains(&format!("| {c} |")) || reference.contains(&format!(" {c} ")),
            "exit code {c} is not in docs/reference.md"
        );
    }
}

/// Every key the config accepts appears in the reference config, commented
/// or not, under its section.
#[test]
fn the_reference_config_lists_every_key() {
    let text = read(&root().join("config/s3-elector.yaml"));
    // Keys as written: `key:` after optional `#` and indentation.
    let keys: std::collections::BTreeSet<String> = text
        .lines()
        .map(|l| l.trim_start_matches(|c: char| c == '#' || c.is_whitespace()))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    let schema = read(&root().join("src/config/schema.rs"));
    let mut n = 0;
    for list in schema.split("pub(super) const ").skip(1) {
        let Some((name, body)) = list.split_once(": &[&str] = &[") else {
            continue;
        };
        let body = body.split("];").next().unwrap();
        for k in body.split('"').skip(1).step_by(2) {
            n += 1;
            assert!(
                keys.contains(k),
                "config/s3-elector.yaml does not list `{k}` ({name})"
            );
        }
    }
    assert!(n >= 50, "{n} keys");
}

/// Every log event the code emits (`event = "..."`) is in the reference's
/// table of log events.
#[test]
fn every_log_event_is_documented() {
    let reference = read(&root().join("docs/reference.md"));
    let table = &reference[reference
        .find("## Log events")
        .expect("a Log events section")..];
    let mut n = 0;
    let mut stack = vec![root().join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            for ev in read(&p).split("event = \"").skip(1) {
                let ev = ev.split('"').next().unwrap();
                n += 1;
                assert!(
                    table.contains(&format!("`{ev}`")),
                    "the log event {ev} ({}) is not in docs/reference.md's Log events",
                    p.display()
                );
            }
        }
    }
    assert!(n >= 30, "{n} events");
}

/// CONTRIBUTING.md's layout names every source folder and file.
#[test]
fn the_layout_names_every_source_file() {
    let text = read(&root().join("CONTRIBUTING.md"));
    let layout = &text[text.find("## Layout").expect("a Layout section")..];
    let mut stack = vec![
        root().join("src"),
        root().join("tests"),
        root().join("scripts"),
    ];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root()).unwrap().display().to_string();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
                assert!(
                    layout.contains(&format!("`{name}/")) || layout.contains(&format!("`{rel}/")),
                    "CONTRIBUTING.md's layout does not name the folder {rel}/"
                );
            } else {
                n += 1;
                // A file is named by its name, or by its path below its folder.
                let parent = p
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                let named = [
                    format!("`{name}`"),
                    format!("`{rel}`"),
                    format!("`{parent}/{name}`"),
                ]
                .iter()
                .any(|n| layout.contains(n.as_str()));
                assert!(named, "CONTRIBUTING.md's layout does not name {rel}");
            }
        }
    }
    assert!(n >= 60, "{n} files");
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
