//! `man`: the manual pages, one per subcommand (`s3-elector.1`,
//! `s3-elector-run.1`, ...), from the same clap definitions as `--help`,
//! each with ENVIRONMENT (every variable a flag reads, and the ones the
//! command itself uses) and EXIT STATUS sections.

use std::path::Path;

use clap::CommandFactory;
use roff::{bold, roman, Roff};

use super::Cli;

/// Variables read by every command that talks to the store (the AWS SDK's).
const AWS_VARS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN", "Static credentials, read by the AWS SDK's default chain (which also reads AWS_PROFILE, web identity tokens, ECS and EC2 instance roles)."),
    ("AWS_REGION", "The region, when s3.region is not set."),
    ("AWS_EC2_METADATA_DISABLED", "When true, nothing contacts the EC2 instance metadata service: not the credentials chain, not the region lookup, not identity_from: ec2-instance-id."),
    ("NO_COLOR", "When set and not empty, logs carry no colour even on a terminal (they never do when stderr is not a terminal)."),
];

/// Read by `run` and `check` with `kubernetes.leader_label` (the leader's
/// pod label).
const KUBE_VARS: &[(&str, &str)] = &[
    ("POD_NAME, POD_NAMESPACE", "With kubernetes.leader_label: this copy's pod and its namespace (set them from the downward API), unless kubernetes.pod_name / kubernetes.namespace are set; the pod name defaults to the hostname, the namespace to the service account's namespace file."),
    ("KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT", "With kubernetes.leader_label: the API server (set by Kubernetes in every pod), unless kubernetes.api_url is set."),
];

/// What `run` sets for the supervised program and the hooks.
const CHILD_VARS: &[(&str, &str)] = &[
    (
        "S3_ELECTOR_EVENT",
        "For hooks: acquired, lost or leader_changed.",
    ),
    (
        "S3_ELECTOR_TERM",
        "For the program and the hooks: the term (fencing token) of the leadership they run under.",
    ),
    (
        "S3_ELECTOR_ELECTION, S3_ELECTOR_IDENTITY",
        "For the program and the hooks: the election and this copy's identity.",
    ),
    (
        "S3_ELECTOR_LEADER, S3_ELECTOR_PREVIOUS_LEADER",
        "For hooks: the leader after and before the event (empty when unknown).",
    ),
    (
        "S3_ELECTOR_REASON",
        "For on_acquired and the program: why this copy leads (created, released, expired, retaken); for on_lost: why it stopped (deadline, taken, step_down, unhealthy, shutdown); empty for another copy's change.",
    ),
];

/// The exit codes of one command, as (code, meaning), from the one table
/// ([`crate::exit::TABLE`]); the overview page lists each code once, with
/// the commands that use it.
fn exit_status(command: &str) -> Vec<(String, String)> {
    let rows = crate::exit::of(command);
    if !rows.is_empty() {
        return rows
            .iter()
            .map(|r| (r.code.to_string(), r.meaning.to_string()))
            .collect();
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for r in crate::exit::TABLE {
        if r.commands == ["guard"] || out.iter().any(|(c, _)| c == r.code) {
            continue;
        }
        let mut commands: Vec<&str> = Vec::new();
        for c in crate::exit::TABLE
            .iter()
            .filter(|o| o.code == r.code)
            .flat_map(|o| o.commands.iter().copied())
        {
            if !commands.contains(&c) {
                commands.push(c);
            }
        }
        out.push((
            r.code.to_string(),
            format!(
                "Used by {}; see each command's page for what it means there.",
                commands.join(", ")
            ),
        ));
    }
    out
}

/// Every page: (file name, roff). A command with subcommands of its own
/// (`fenced`) has a page for each of them too (`s3-elector-fenced-put.1`).
pub(super) fn pages() -> Vec<(String, String)> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut cmds: Vec<(String, clap::Command)> = vec![(String::new(), root.clone())];
    for s in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmds.push((s.get_name().to_string(), s.clone()));
        for n in s.get_subcommands().filter(|n| !n.is_hide_set()) {
            let name = format!("{}-{}", s.get_name(), n.get_name());
            let display = format!("s3-elector-{name}");
            // A page's title is its command's name; `man` runs once, so
            // the few names it makes may live to the end.
            let title: &'static str = Box::leak(display.clone().into_boxed_str());
            cmds.push((name, n.clone().name(title).display_name(display)));
        }
    }
    let file = |name: &str| {
        if name.is_empty() {
            "s3-elector".to_string()
        } else {
            format!("s3-elector-{name}")
        }
    };
    let names: Vec<String> = cmds.iter().map(|(n, _)| file(n)).collect();
    cmds.into_iter()
        .map(|(name, cmd)| {
            let own = file(&name);
            let see_also: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| *n != own)
                .collect();
            (format!("{own}.1"), page(&name, cmd, &see_also))
        })
        .collect()
}

fn page(name: &str, cmd: clap::Command, see_also: &[&str]) -> String {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out: Vec<u8> = Vec::new();
    man.render_title(&mut out).expect("writing to memory");
    man.render_name_section(&mut out)
        .expect("writing to memory");
    man.render_synopsis_section(&mut out)
        .expect("writing to memory");
    man.render_description_section(&mut out)
        .expect("writing to memory");
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)
            .expect("writing to memory");
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)
            .expect("writing to memory");
    }
    let mut r = Roff::new();
    r.control("SH", ["ENVIRONMENT"]);
    let flags = cmd.get_arguments().filter_map(|a| {
        let var = a.get_env()?.to_string_lossy().into_owned();
        let flag = a
            .get_long()
            .map_or_else(|| a.get_id().to_string(), |l| format!("--{l}"));
        Some((var, format!("Same as {flag}.")))
    });
    let mut vars: Vec<(String, String)> = flags.collect();
    let extra = if name.is_empty() || name == "run" {
        [AWS_VARS, KUBE_VARS, CHILD_VARS].concat()
    } else if name == "check" {
        [AWS_VARS, KUBE_VARS].concat()
    } else if matches!(name, "completions" | "man") {
        Vec::new()
    } else {
        AWS_VARS.to_vec()
    };
    vars.extend(extra.iter().map(|(v, h)| (v.to_string(), h.to_string())));
    if vars.is_empty() {
        r.text([roman("None.")]);
    }
    for (var, help) in vars {
        r.control("TP", []).text([bold(var)]).text([roman(help)]);
    }
    r.control("SH", ["EXIT STATUS"]);
    // `fenced put` exits as `fenced` does.
    let table_name = name
        .split_once('-')
        .filter(|(top, _)| *top == "fenced")
        .map_or(name, |(top, _)| top);
    for (code, meaning) in exit_status(table_name) {
        r.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    r.control("SH", ["SEE ALSO"]);
    let refs: Vec<String> = see_also.iter().map(|n| format!("{n}(1)")).collect();
    r.text([roman(format!(
        "{}; README.md and the guides in docs/ in the source tree (installed under /usr/share/doc/s3-elector/ by the packages).",
        refs.join(", ")
    ))]);
    r.control("SH", ["VERSION"]);
    r.text([roman(format!("v{}", env!("CARGO_PKG_VERSION")))]);
    let mut text = String::from_utf8(out).expect("roff is text");
    text.push_str(&r.to_roff());
    text
}

/// `man`: the main page on stdout, or every page into `dir`.
pub(super) fn man(dir: Option<&Path>) -> i32 {
    let pages = pages();
    let Some(dir) = dir else {
        print!("{}", pages[0].1);
        return 0;
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("s3-elector: cannot create {}: {e}", dir.display());
        return 1;
    }
    for (file, text) in &pages {
        let path = dir.join(file);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("s3-elector: cannot write {}: {e}", path.display());
            return 1;
        }
        println!("{}", path.display());
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_command_with_environment_and_exit_status() {
        let pages = pages();
        let files: Vec<&str> = pages.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "s3-elector.1",
            "s3-elector-run.1",
            "s3-elector-check.1",
            "s3-elector-status.1",
            "s3-elector-step-down.1",
            "s3-elector-is-leader.1",
            "s3-elector-reset.1",
            "s3-elector-completions.1",
            "s3-elector-man.1",
            "s3-elector-fenced.1",
            "s3-elector-fenced-put.1",
            "s3-elector-fenced-get.1",
            "s3-elector-fenced-rm.1",
        ] {
            assert!(files.contains(&want), "{want} missing from {files:?}");
        }
        assert!(!files.iter().any(|f| f.contains("guard")), "{files:?}");
        for (file, text) in &pages {
            assert!(text.contains(".SH ENVIRONMENT"), "{file}");
            assert!(text.contains(".SH \"EXIT STATUS\""), "{file}");
            assert!(text.contains(".SH \"SEE ALSO\""), "{file}");
        }
        let run = &pages
            .iter()
            .find(|(f, _)| f == "s3-elector-run.1")
            .unwrap()
            .1;
        for s in [
            "S3_ELECTOR_BUCKET",
            "S3_ELECTOR_HTTP_LISTEN",
            "S3_ELECTOR_TERM",
            "AWS_EC2_METADATA_DISABLED",
            "POD_NAMESPACE",
            "KUBERNETES_SERVICE_HOST",
            "\\-\\-once",
        ] {
            assert!(run.contains(s), "{s} not in s3-elector-run.1");
        }
        for code in ["75", "76", "79", "143"] {
            assert!(
                run.contains(&format!("\\fB{code}\\fR")),
                "{code} not in run's exit status"
            );
        }
        let check = &pages
            .iter()
            .find(|(f, _)| f == "s3-elector-check.1")
            .unwrap()
            .1;
        assert!(check.contains("POD_NAMESPACE"), "{check}");
        let status = &pages
            .iter()
            .find(|(f, _)| f == "s3-elector-status.1")
            .unwrap()
            .1;
        assert!(!status.contains("POD_NAMESPACE"), "{status}");
        let leader = &pages
            .iter()
            .find(|(f, _)| f == "s3-elector-is-leader.1")
            .unwrap()
            .1;
        assert!(leader.contains("\\fB255\\fR"), "{leader}");
    }
}
