//! Exit codes: every code the binary exits with, and the one table that
//! says which commands use it and what it means. The man pages' EXIT
//! STATUS sections are made from [`TABLE`], and a test checks that
//! `docs/reference.md` carries [`markdown`]'s rendering of it.
//!
//! The numbers follow sysexits.h where one fits (64 `EX_USAGE`, 65
//! `EX_DATAERR`, 66 `EX_NOINPUT`, 69 `EX_UNAVAILABLE`, 70 `EX_SOFTWARE`, 75
//! `EX_TEMPFAIL`, 77 `EX_NOPERM`); `is-leader` follows systemd's
//! `ExecCondition=` (255: fail, not skip).

/// Success.
pub const EXIT_OK: i32 = 0;
/// Anything else.
pub const EXIT_FAILURE: i32 = 1;
/// A bad config or command line (`EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;
/// A lease object (or a fenced object's stamp) that is not usable
/// (`EX_DATAERR`).
pub const EXIT_DATA: i32 = 65;
/// `fenced get`: the object does not exist or was removed; `fenced put`:
/// the body cannot be read or is empty (`EX_NOINPUT`).
pub const EXIT_ABSENT: i32 = 66;
/// The store cannot be used (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: i32 = 69;
/// The guard started nothing (`EX_SOFTWARE`).
pub const EXIT_SOFTWARE: i32 = 70;
/// `run --once --no-wait`: another copy leads; the program did not run
/// (`EX_TEMPFAIL`: try again later).
pub const EXIT_OTHER_LEADS: i32 = 75;
/// `fenced`: other writers kept landing in between (`EX_TEMPFAIL`).
pub const EXIT_CONTENDED: i32 = 75;
/// `run --once`: leadership ended while the program ran; it was stopped.
pub const EXIT_LEADERSHIP_LOST: i32 = 76;
/// `fenced put`/`rm`: a newer term has written the object (`EX_NOPERM`).
pub const EXIT_FENCED: i32 = 77;
/// `run --once`: `on_acquired` failed; the program did not run.
pub const EXIT_HOOK_FAILED: i32 = 79;
/// `run --once`: a stop signal came before the program ended (128 +
/// SIGTERM).
pub const EXIT_STOPPED: i32 = 143;
/// `is-leader`: the daemon could not be asked (systemd: the condition
/// failed, the job does not run).
pub const EXIT_UNKNOWN: i32 = 255;

/// One exit code of some commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The code as printed: a number, `N` or `128+n`.
    pub code: &'static str,
    /// The commands that exit with it, as their man pages are named
    /// (`run`, `fenced`, ...); `*` is every command that talks to the
    /// store or reads a config.
    pub commands: &'static [&'static str],
    pub meaning: &'static str,
}

const CONFIGURED: &[&str] = &["run", "check", "status", "reset", "step-down", "fenced"];
const STORE: &[&str] = &["run", "check", "status", "reset", "fenced"];

/// Every exit code, by command. The order is the man pages' order.
pub const TABLE: &[Row] = &[
    Row { code: "0", commands: &["run"], meaning: "Stopped by SIGTERM or SIGINT, after releasing the lease when it led." },
    Row { code: "0", commands: &["check"], meaning: "Every check passed." },
    Row { code: "0", commands: &["status"], meaning: "The lease object was read (or is absent)." },
    Row { code: "0", commands: &["reset"], meaning: "The object was replaced by a released record." },
    Row { code: "0", commands: &["step-down"], meaning: "The daemon accepted the request." },
    Row { code: "0", commands: &["is-leader"], meaning: "This copy leads, with more than retry_period of its lease left." },
    Row { code: "0", commands: &["fenced"], meaning: "Written, removed, or read." },
    Row { code: "0", commands: &["completions", "man"], meaning: "Written." },
    Row { code: "1", commands: &["run"], meaning: "Anything else, e.g. the HTTP address is taken." },
    Row { code: "1", commands: &["reset"], meaning: "Nothing written: the object is absent, changed since status printed its ETag, or is a valid record." },
    Row { code: "1", commands: &["step-down"], meaning: "The daemon refused the request (its answer is printed)." },
    Row { code: "1", commands: &["is-leader"], meaning: "This copy does not lead, or its lease has less than retry_period left." },
    Row { code: "1", commands: &["fenced"], meaning: "get -o: the file cannot be written." },
    Row { code: "1", commands: &["completions", "man"], meaning: "Cannot write." },
    Row { code: "64", commands: CONFIGURED, meaning: "Bad config or command line; one line per problem on stderr, each naming the field and, for a flag or variable, where it came from. fenced: also no term (not run under s3-elector run, no --term, or a hook other than on_acquired), a bad or reserved object name, a body over 5 GiB." },
    Row { code: "65", commands: &["status"], meaning: "The lease object is not a usable lease record (corrupt, another program's, a newer schema); see reset." },
    Row { code: "65", commands: &["fenced"], meaning: "The object is stamped by another election, or its stamp is unreadable." },
    Row { code: "66", commands: &["fenced"], meaning: "get: the object does not exist or was removed; put: the body cannot be read, or is empty." },
    Row { code: "69", commands: STORE, meaning: "The store cannot be used: no credentials, unreachable, missing bucket, access denied, or it failed the conformance probe. fenced: also an outcome that stayed unknown (timeouts)." },
    Row { code: "69", commands: &["step-down"], meaning: "The daemon cannot be reached; is it running?" },
    Row { code: "70", commands: &["guard"], meaning: "The guard (started by the daemon, never by hand) could not start what it guards." },
    Row { code: "N", commands: &["run"], meaning: "With --once: the program's own exit code (128 + n when a signal n ended it)." },
    Row { code: "128+n", commands: &["run"], meaning: "A second stop signal n came during a graceful stop; it exited at once." },
    Row { code: "75", commands: &["run"], meaning: "With --once --no-wait: another live copy leads; the program did not run." },
    Row { code: "75", commands: &["fenced"], meaning: "Other writers kept landing in between (16 tries); nothing was written. Try again." },
    Row { code: "76", commands: &["run"], meaning: "With --once: leadership ended while the program ran; it was stopped." },
    Row { code: "77", commands: &["fenced"], meaning: "Refused: a newer term has written the object (the message names both terms). This writer's leadership is over; stop writing." },
    Row { code: "79", commands: &["run"], meaning: "With --once: the on_acquired hook failed (non-zero exit or timeout); the program did not run, and the lease was released." },
    Row { code: "143", commands: &["run"], meaning: "With --once: a stop signal came before the program ended; it was stopped, and the lease released." },
    Row { code: "255", commands: &["is-leader"], meaning: "Its daemon cannot be asked (not running, bad config, another election's), or the command line is wrong: systemd's ExecCondition= then marks the job failed and does not run it." },
];

/// The exit codes of `command` (its man page's name), in order.
pub fn of(command: &str) -> Vec<Row> {
    TABLE
        .iter()
        .filter(|r| r.commands.contains(&command))
        .copied()
        .collect()
}

/// The table as Markdown, as `docs/reference.md` carries it.
pub fn markdown() -> String {
    let mut out = String::from("| exit code | commands | meaning |\n|---|---|---|\n");
    for r in TABLE {
        let commands: Vec<String> = r.commands.iter().map(|c| format!("`{c}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            r.code,
            commands.join(", "),
            r.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/reference.md carries the table as [`markdown`] renders it
    /// (between its two marker comments); on a change, paste the block
    /// this test prints.
    #[test]
    fn the_reference_carries_the_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md"),
        )
        .unwrap();
        let begin = "<!-- exit codes: from src/exit.rs; a test checks it -->\n";
        let end = "<!-- end of exit codes -->";
        let want = markdown();
        let got = doc
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(t, _)| t);
        assert_eq!(
            got,
            Some(want.as_str()),
            "docs/reference.md's exit codes differ from src/exit.rs; put this between the markers:\n{begin}{want}{end}"
        );
    }

    #[test]
    fn every_code_has_its_commands_and_every_constant_a_row() {
        for c in [
            EXIT_OK,
            EXIT_FAILURE,
            EXIT_CONFIG,
            EXIT_DATA,
            EXIT_ABSENT,
            EXIT_UNAVAILABLE,
            EXIT_SOFTWARE,
            EXIT_OTHER_LEADS,
            EXIT_CONTENDED,
            EXIT_LEADERSHIP_LOST,
            EXIT_FENCED,
            EXIT_HOOK_FAILED,
            EXIT_STOPPED,
            EXIT_UNKNOWN,
        ] {
            assert!(
                TABLE.iter().any(|r| r.code == c.to_string()),
                "exit code {c} has no row"
            );
        }
        let run: Vec<&str> = of("run").iter().map(|r| r.code).collect();
        assert_eq!(
            run,
            ["0", "1", "64", "69", "N", "128+n", "75", "76", "79", "143"]
        );
        assert_eq!(
            of("is-leader").iter().map(|r| r.code).collect::<Vec<_>>(),
            ["0", "1", "255"]
        );
        assert!(of("nonesuch").is_empty());
    }
}
