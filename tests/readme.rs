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
        if !y.contains("election:") {
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
