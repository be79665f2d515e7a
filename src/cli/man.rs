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

/// The exit codes of one command, as (code, meaning).
fn exit_status(command: &str) -> &'static [(&'static str, &'static str)] {
    const CONFIG: (&str, &str) = ("64", "Bad config or command line; one line per problem on stderr, each naming the field and, for a flag or variable, where it came from.");
    const STORE: (&str, &str) = ("69", "The store cannot be used: no credentials, unreachable, missing bucket, access denied, or it failed the conformance probe.");
    match command {
        "run" => &[
            ("0", "Stopped by SIGTERM or SIGINT after releasing the lease (when it led)."),
            CONFIG,
            STORE,
            ("1", "Anything else, e.g. the HTTP address is taken."),
            ("N", "With --once: the program's own exit code (128 + n when a signal n ended it)."),
            ("75", "With --once --no-wait: another live copy leads; the program did not run."),
            ("76", "With --once: leadership ended while the program ran; it was stopped."),
            ("79", "With --once: the on_acquired hook failed; the program did not run."),
            ("143", "With --once: a stop signal came before the program ended."),
        ],
        "check" => &[("0", "Every check passed."), CONFIG, STORE],
        "status" => &[
            ("0", "The lease object was read (or is absent)."),
            CONFIG,
            ("65", "The lease object is not a usable lease record (corrupt, another program's, a newer schema); see reset."),
            STORE,
        ],
        "reset" => &[
            ("0", "The object was replaced by a released record."),
            ("1", "Nothing written: the object is absent, changed since status printed its ETag, or is a valid record."),
            CONFIG,
            STORE,
        ],
        "step-down" => &[
            ("0", "The daemon accepted the request."),
            ("1", "The daemon refused it (its answer is printed)."),
            CONFIG,
            ("69", "The daemon cannot be reached; is it running?"),
        ],
        "is-leader" => &[
            ("0", "This copy leads, with more than retry_period of its lease left."),
            ("1", "It does not."),
            ("255", "Its daemon cannot be asked (not running, bad config), or the command line is wrong: systemd's ExecCondition= then skips the job and marks it failed."),
        ],
        "fenced" => &[
            ("0", "Written, removed, or read."),
            CONFIG,
            ("65", "The object is fenced by another election."),
            ("66", "get: the object does not exist or was removed; put: the body cannot be read."),
            STORE,
            ("75", "Other writers kept landing in between; nothing was written. Try again."),
            ("77", "Refused: a newer term has written the object. This writer's leadership is over; stop writing."),
        ],
        "completions" | "man" => &[("0", "Written."), ("1", "Cannot write.")],
        _ => &[
            ("0", "Success."),
            CONFIG,
            ("65", "status: the lease object is not a usable lease record."),
            STORE,
            ("1", "Anything else; each command's page has its own list."),
        ],
    }
}

/// Every page: (file name, roff).
pub(super) fn pages() -> Vec<(String, String)> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let subs: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let names: Vec<String> = std::iter::once("s3-elector".to_string())
        .chain(subs.iter().map(|s| format!("s3-elector-{}", s.get_name())))
        .collect();
    std::iter::once(("", root.clone()))
        .chain(subs.iter().map(|s| (s.get_name(), s.clone())))
        .map(|(name, cmd)| {
            let own = if name.is_empty() {
                "s3-elector".to_string()
            } else {
                format!("s3-elector-{name}")
            };
            let see_also: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| *n != own)
                .collect();
            (format!("{own}.1"), page(name, cmd, &see_also))
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
    for (code, meaning) in exit_status(name) {
        r.control("TP", [])
            .text([bold(*code)])
            .text([roman(*meaning)]);
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
