//! `fenced put|get|rm`: the [`crate::fenced`] protocol from the shell, for
//! the supervised program and hooks (which get `S3_ELECTOR_TERM`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{load, Common};
use crate::config::Config;
use crate::exit::{
    EXIT_ABSENT, EXIT_CONFIG, EXIT_CONTENDED, EXIT_DATA, EXIT_FENCED, EXIT_UNAVAILABLE,
};
use crate::fenced::{self, Body, FenceError, Stamp};
use crate::lease::probe;
use crate::lease::store::s3::S3Store;

#[derive(Debug, Args)]
pub struct FencedArgs {
    #[command(subcommand)]
    pub op: FencedOp,
}

#[derive(Debug, Subcommand)]
pub enum FencedOp {
    /// Write FILE (default: stdin) to OBJECT, unless a newer term has
    /// written it. Exit 77 when refused.
    Put {
        #[command(flatten)]
        target: Target,
        /// The body: a file, or `-` for stdin (spooled to a temporary file
        /// first, so a retry can send it again).
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Write an empty body too (refused by default: an empty stdin is
        /// more often a failed producer than a result).
        #[arg(long)]
        allow_empty: bool,
    },
    /// Print OBJECT's body (or write it to --output) and, on stderr, the
    /// term that wrote it. Exit 66 when absent or removed.
    Get {
        #[command(flatten)]
        common: Common,
        /// `s3://bucket/key`, or a key in `s3.bucket` (under `fenced.prefix`).
        object: String,
        /// Write the body here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Print the stamp (term, election, ETag, size) as JSON instead of
        /// the body (the body still goes to --output when given).
        #[arg(long)]
        json: bool,
    },
    /// Remove OBJECT with a tombstone that keeps its term (a real delete
    /// would let a stale writer recreate it). Exit 77 when refused.
    Rm {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub common: Common,
    /// The writer's term. Default: `S3_ELECTOR_TERM`, which the daemon
    /// sets for the supervised program and `on_acquired` (other hooks get
    /// the observed leader's term there, which is refused as a fencing term).
    #[arg(long)]
    pub term: Option<u64>,
    /// `s3://bucket/key`, or a key in `s3.bucket` (under `fenced.prefix`).
    pub object: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where OBJECT is: an `s3://` URL, or a key under `fenced.prefix`.
fn locate(cfg: &Config, object: &str) -> Result<(String, String), String> {
    if let Some(rest) = object.strip_prefix("s3://") {
        return match rest.split_once('/') {
            Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.into(), k.into())),
            _ => Err(format!("`{object}` is not s3://BUCKET/KEY")),
        };
    }
    if object.is_empty() {
        return Err("the object is empty; give s3://BUCKET/KEY or a KEY".into());
    }
    let key = match cfg
        .fenced
        .prefix
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
    {
        Some(p) if !p.is_empty() => format!("{p}/{object}"),
        _ => object.to_string(),
    };
    Ok((cfg.s3.bucket.clone(), key))
}

/// A client for bodies of any size: no limit on the whole request (an
/// upload of gigabytes takes minutes), but `s3.request_timeout` still
/// bounds connecting and each stall of the transfer.
async fn connect_transfers(cfg: &Config) -> Result<S3Store, i32> {
    S3Store::connect_for_transfers(&cfg.s3).await.map_err(|e| {
        eprintln!("s3-elector: {e}");
        EXIT_UNAVAILABLE
    })
}

/// Load, connect and locate; on failure the message is printed.
/// [`locate`], and for a write also [`reserved`]; on failure the message
/// is printed and exit code 64 returned.
fn target(cfg: &Config, object: &str, writing: bool) -> Result<(String, String), i32> {
    let found = locate(cfg, object).and_then(|(b, k)| {
        if writing {
            reserved(cfg, &b, &k)?;
        }
        Ok((b, k))
    });
    found.map_err(|e| {
        eprintln!("s3-elector: {e}");
        EXIT_CONFIG
    })
}

async fn open(common: &Common, object: &str) -> Result<(Config, String, S3Store, String), i32> {
    let (cfg, identity) = load(common).await?;
    let (bucket, key) = target(&cfg, object, false)?;
    let store = connect_transfers(&cfg).await?.with_bucket(&bucket);
    Ok((cfg, identity, store, key))
}

pub(super) async fn fenced(a: FencedArgs) -> i32 {
    match a.op {
        FencedOp::Put {
            target,
            file,
            allow_empty,
        } => write(target, Some((file, allow_empty))).await,
        FencedOp::Rm { target } => write(target, None).await,
        FencedOp::Get {
            common,
            object,
            output,
            json,
        } => get(&common, &object, output.as_deref(), json).await,
    }
}

/// The fencing term: `--term`, else `S3_ELECTOR_TERM` when this runs as
/// the supervised program or `on_acquired` (a hook for another event has
/// the observed leader's term there, not this copy's).
fn fencing_term(
    flag: Option<u64>,
    event: Option<String>,
    env_term: Option<String>,
) -> Result<u64, String> {
    if let Some(t) = flag {
        return Ok(t);
    }
    let event = event.unwrap_or_default();
    if !event.is_empty() && event != "acquired" {
        return Err(format!(
            "this runs in the `{event}` hook, whose S3_ELECTOR_TERM is the leader's term as observed, not a leadership of this copy; only the supervised program and `on_acquired` write fenced (or pass --term N deliberately)"
        ));
    }
    match env_term {
        Some(v) => v.trim().parse().map_err(|_| {
            format!("S3_ELECTOR_TERM is `{v}`, not a term (a whole number)")
        }),
        None => Err("no term: run this under `s3-elector run` (which sets S3_ELECTOR_TERM for the program and on_acquired) or pass --term N".into()),
    }
}

/// Keys that belong to the election itself (lease, term floor, registry,
/// probe scratch), in its bucket.
fn reserved(cfg: &Config, bucket: &str, key: &str) -> Result<(), String> {
    // Term floors (`…term.json`), registry entries and probe keys by name.
    crate::config::validate::check_reserved(key)?;
    if bucket == cfg.s3.bucket
        && (key == cfg.lease_key() || key.starts_with(&cfg.registry_prefix()))
    {
        return Err(format!(
            "`{key}` belongs to the election itself (its lease, term floor or candidate registry); fenced writes go to your own objects"
        ));
    }
    Ok(())
}

async fn write(t: Target, body: Option<(PathBuf, bool)>) -> i32 {
    let term = match fencing_term(
        t.term,
        std::env::var("S3_ELECTOR_EVENT").ok(),
        std::env::var("S3_ELECTOR_TERM").ok(),
    ) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("s3-elector: {e}");
            return EXIT_CONFIG;
        }
    };
    let (cfg, identity) = match load(&t.common).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (bucket, key) = match target(&cfg, &t.object, true) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let url = format!("s3://{bucket}/{key}");
    // The body first: stdin and anything that is not a regular file (a
    // pipe, /dev/stdin) is spooled to a temporary file, so its size is
    // known and a retry can send it again. Checked before any request.
    let mut spool = None;
    let body = match body {
        None => None,
        Some((path, allow_empty)) => {
            let regular =
                path != Path::new("-") && std::fs::metadata(&path).is_ok_and(|m| m.is_file());
            let file = if regular {
                path
            } else {
                match spool_input(&path).await {
                    Ok(tmp) => {
                        let p = tmp.to_path_buf();
                        spool = Some(tmp);
                        p
                    }
                    Err(e) => {
                        eprintln!("s3-elector: {url}: cannot read the body: {e}");
                        return EXIT_ABSENT;
                    }
                }
            };
            match std::fs::metadata(&file) {
                Ok(m) => {
                    if let Err((code, why)) = body_size_ok(m.len(), allow_empty) {
                        eprintln!("s3-elector: {url}: {why}");
                        return code;
                    }
                }
                Err(e) => {
                    eprintln!(
                        "s3-elector: {url}: cannot read the body: {}: {e}",
                        file.display()
                    );
                    return EXIT_ABSENT;
                }
            }
            Some(Body::File(file))
        }
    };
    let store = match connect_transfers(&cfg).await {
        Ok(s) => s.with_bucket(&bucket),
        Err(code) => return code,
    };
    // Fencing rests on conditional writes: refuse a store that ignores
    // them, as the daemon does. The probe works on a scratch key beside
    // the election's lease (in this bucket), never on the user's object.
    let probe_key = match cfg.lease_key().strip_suffix("/lease.json") {
        Some(dir) => format!("{dir}/fenced-probe.json"),
        None => format!("{}.fenced-probe.json", cfg.lease_key()),
    };
    match probe::run(&store, &probe_key, &identity).await {
        Ok(r) => {
            if let Some(w) = r.cleanup_warning {
                eprintln!("s3-elector: warning: {w}");
            }
        }
        Err(e) => {
            eprintln!("s3-elector: {url}: {e}");
            return EXIT_UNAVAILABLE;
        }
    }
    let r = match &body {
        Some(b) => fenced::put(&store, &key, &cfg.election, term, b).await,
        None => fenced::remove(&store, &key, &cfg.election, term).await,
    };
    drop(spool);
    match r {
        Ok(w) => {
            if t.json {
                out!("{}", serde_json::to_string(&w).expect("serializes"));
            } else {
                let what = if body.is_some() {
                    "wrote"
                } else {
                    "removed (tombstone)"
                };
                let replaced = w
                    .replaced_term
                    .map_or(String::new(), |r| format!(", replaced term {r}"));
                out!("{what} {url} at term {term}{replaced}");
            }
            0
        }
        Err(e) => {
            eprintln!("s3-elector: {url}: {e}");
            exit_code(&e)
        }
    }
}

fn exit_code(e: &FenceError) -> i32 {
    match e {
        FenceError::Stale { .. } => EXIT_FENCED,
        FenceError::OtherElection { .. } | FenceError::BadStamp { .. } => EXIT_DATA,
        FenceError::Contended { .. } => EXIT_CONTENDED,
        FenceError::TooLarge { .. } => EXIT_CONFIG,
        FenceError::Body(_) => EXIT_ABSENT,
        FenceError::Store(_) | FenceError::Unknown { .. } => EXIT_UNAVAILABLE,
    }
}

/// Is a body of `len` bytes one to send? Else the exit code and why.
fn body_size_ok(len: u64, allow_empty: bool) -> Result<(), (i32, String)> {
    if len == 0 && !allow_empty {
        return Err((EXIT_ABSENT, "the body is empty; not writing it (a failed producer in a pipe looks like this: use `set -o pipefail`), or pass --allow-empty".into()));
    }
    if len > fenced::MAX_PUT_BYTES {
        return Err((EXIT_CONFIG, FenceError::TooLarge { size: len }.to_string()));
    }
    Ok(())
}

/// Copy stdin (`-`) or a non-regular file into a temporary file (removed
/// when the returned path is dropped), at most one byte past the largest
/// PUT.
async fn spool_input(path: &Path) -> std::io::Result<tempfile::TempPath> {
    use tokio::io::AsyncReadExt;
    let tmp = tempfile::NamedTempFile::new()?.into_temp_path();
    let mut out = tokio::fs::File::create(&tmp).await?;
    let cap = fenced::MAX_PUT_BYTES + 1;
    if path == Path::new("-") {
        tokio::io::copy(&mut tokio::io::stdin().take(cap), &mut out).await?;
    } else {
        let f = tokio::fs::File::open(path).await?;
        tokio::io::copy(&mut f.take(cap), &mut out).await?;
    }
    Ok(tmp)
}

async fn get(common: &Common, object: &str, output: Option<&Path>, json: bool) -> i32 {
    let (_, _, store, key) = match open(common, object).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let url = format!("s3://{}/{key}", store.bucket());
    // --output: into a temporary file beside it, renamed over it only once
    // the whole body is in, so a failed read leaves the old file alone.
    let mut partial = None;
    let r: Result<Option<Stamp>, FenceError> = match (output, json) {
        (Some(p), _) => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = match tempfile::NamedTempFile::new_in(dir) {
                Ok(t) => t.into_temp_path(),
                Err(e) => {
                    eprintln!("s3-elector: cannot write in {}: {e}", dir.display());
                    return 1;
                }
            };
            let r = match tokio::fs::File::create(&tmp).await {
                Ok(mut f) => fenced::get(&store, &key, &mut f).await,
                Err(e) => {
                    eprintln!("s3-elector: cannot write {}: {e}", tmp.display());
                    return 1;
                }
            };
            partial = Some((tmp, p));
            r
        }
        (None, true) => fenced::get_stamp(&store, &key)
            .await
            .map(|s| s.filter(|s| !s.deleted)),
        (None, false) => fenced::get(&store, &key, &mut tokio::io::stdout()).await,
    };
    if let (Ok(Some(_)), Some((tmp, p))) = (&r, partial) {
        if let Err(e) = tmp.persist(p) {
            eprintln!("s3-elector: cannot write {}: {e}", p.display());
            return 1;
        }
    }
    match r {
        Ok(Some(stamp)) => {
            if json {
                out!("{}", serde_json::to_string(&stamp).expect("serializes"));
            } else {
                match (stamp.term, &stamp.election) {
                    (Some(t), Some(e)) => eprintln!("{url}: term {t} (election {e})"),
                    _ => eprintln!("{url}: no fencing stamp (the first fenced write adopts it)"),
                }
            }
            0
        }
        Ok(None) => {
            eprintln!("s3-elector: {url} does not exist (or was removed by `fenced rm`)");
            EXIT_ABSENT
        }
        Err(e) => {
            eprintln!("s3-elector: {url}: {e}");
            exit_code(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_urls_or_keys_under_the_prefix() {
        let mut cfg = Config::from_yaml("election: e\ns3:\n  bucket: leases\n", "t").unwrap();
        assert_eq!(
            locate(&cfg, "s3://other/a/b.json").unwrap(),
            ("other".to_string(), "a/b.json".to_string())
        );
        assert_eq!(
            locate(&cfg, "out.json").unwrap(),
            ("leases".to_string(), "out.json".to_string())
        );
        cfg.fenced.prefix = Some("results/".into());
        assert_eq!(locate(&cfg, "out.json").unwrap().1, "results/out.json");
        for empty in ["", "/"] {
            cfg.fenced.prefix = Some(empty.into());
            assert_eq!(locate(&cfg, "out.json").unwrap().1, "out.json");
        }
        for bad in ["s3://", "s3://b", "s3://b/", "s3:///k", ""] {
            assert!(locate(&cfg, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_term_comes_from_the_flag_or_a_leadership_s_environment() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(fencing_term(Some(9), s("lost"), s("3")), Ok(9));
        assert_eq!(fencing_term(None, None, s(" 4 ")), Ok(4));
        assert_eq!(fencing_term(None, s("acquired"), s("5")), Ok(5));
        for ev in ["lost", "leader_changed"] {
            let e = fencing_term(None, s(ev), s("5")).unwrap_err();
            assert!(e.contains(ev) && e.contains("--term"), "{e}");
        }
        assert!(fencing_term(None, None, s("x"))
            .unwrap_err()
            .contains("`x`"));
        assert!(fencing_term(None, None, None)
            .unwrap_err()
            .contains("S3_ELECTOR_TERM"));
    }

    #[test]
    fn the_election_s_own_objects_are_refused() {
        let cfg = Config::from_yaml("election: e\ns3:\n  bucket: leases\n", "t").unwrap();
        for key in [
            "s3-elector/e/lease.json",
            "s3-elector/e/term.json",
            "s3-elector/e/candidates/a.candidate.json",
            "s3-elector/e/candidates/notes.txt",
            "x/lease.json.probe/a",
            "data.term.json",
        ] {
            assert!(reserved(&cfg, "leases", key).is_err(), "{key}");
        }
        assert!(reserved(&cfg, "leases", "reports/daily.json").is_ok());
        // Reads may name them; writes are refused with 64.
        let lease = "s3://leases/s3-elector/e/lease.json";
        assert_eq!(
            target(&cfg, lease, false),
            Ok(("leases".into(), "s3-elector/e/lease.json".into()))
        );
        assert_eq!(target(&cfg, lease, true), Err(EXIT_CONFIG));
        assert_eq!(target(&cfg, "s3://", false), Err(EXIT_CONFIG));
        // Another bucket has no lease of this election.
        assert!(reserved(&cfg, "other", "s3-elector/e/lease.json").is_ok());
    }

    #[test]
    fn empty_and_oversized_bodies_are_refused_before_any_request() {
        assert_eq!(body_size_ok(0, false).unwrap_err().0, EXIT_ABSENT);
        assert!(body_size_ok(0, false)
            .unwrap_err()
            .1
            .contains("--allow-empty"));
        assert_eq!(body_size_ok(0, true), Ok(()));
        assert_eq!(body_size_ok(1, false), Ok(()));
        assert_eq!(body_size_ok(fenced::MAX_PUT_BYTES, false), Ok(()));
        assert_eq!(
            body_size_ok(fenced::MAX_PUT_BYTES + 1, true).unwrap_err().0,
            EXIT_CONFIG
        );
    }

    #[test]
    fn each_refusal_has_its_exit_code() {
        let stale = FenceError::Stale {
            key: "k".into(),
            stored: 5,
            ours: 4,
        };
        assert_eq!(exit_code(&stale), 77);
        assert_eq!(exit_code(&FenceError::Contended { key: "k".into() }), 75);
        assert_eq!(
            exit_code(&FenceError::OtherElection {
                key: "k".into(),
                stored: "a".into(),
                ours: "b".into()
            }),
            65
        );
        assert_eq!(exit_code(&FenceError::TooLarge { size: 1 }), 64);
        assert_eq!(exit_code(&FenceError::Body("x".into())), 66);
        assert_eq!(
            exit_code(&FenceError::BadStamp {
                key: "k".into(),
                problem: "p".into()
            }),
            65
        );
        assert_eq!(
            exit_code(&FenceError::Unknown {
                key: "k".into(),
                error: Box::new(crate::lease::store::StoreError::Transient("x".into()))
            }),
            69
        );
        assert_eq!(
            exit_code(&FenceError::Store(
                crate::lease::store::StoreError::Transient("x".into())
            )),
            69
        );
    }
}
