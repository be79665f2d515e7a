//! `fenced put|get|rm`: the [`crate::fenced`] protocol from the shell, for
//! the supervised program and hooks (which get `S3_ELECTOR_TERM`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{connect, load, Common, EXIT_DATA, EXIT_UNAVAILABLE};
use crate::config::{Config, EXIT_CONFIG};
use crate::fenced::{self, Body, FenceError, Stamp};
use crate::lease::probe;
use crate::lease::store::s3::S3Store;

/// `fenced put`/`rm`: a newer term has written the object (`EX_NOPERM`).
pub const EXIT_FENCED: i32 = 77;
/// `fenced get`: the object does not exist or was removed (`EX_NOINPUT`).
pub const EXIT_ABSENT: i32 = 66;
/// Other writers kept landing in between (`EX_TEMPFAIL`): try again.
pub const EXIT_CONTENDED: i32 = 75;

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
    /// The writer's term: `S3_ELECTOR_TERM`, which the daemon sets for the
    /// supervised program and the hooks.
    #[arg(long, env = "S3_ELECTOR_TERM")]
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

/// Load, connect and locate; on failure the message is printed.
async fn open(common: &Common, object: &str) -> Result<(Config, String, S3Store, String), i32> {
    let (cfg, identity) = load(common).await?;
    let (bucket, key) = locate(&cfg, object).map_err(|e| {
        eprintln!("s3-elector: {e}");
        EXIT_CONFIG
    })?;
    let store = connect(&cfg).await?.with_bucket(&bucket);
    Ok((cfg, identity, store, key))
}

pub(super) async fn fenced(a: FencedArgs) -> i32 {
    match a.op {
        FencedOp::Put { target, file } => write(target, Some(file)).await,
        FencedOp::Rm { target } => write(target, None).await,
        FencedOp::Get {
            common,
            object,
            output,
            json,
        } => get(&common, &object, output.as_deref(), json).await,
    }
}

async fn write(t: Target, file: Option<PathBuf>) -> i32 {
    let Some(term) = t.term else {
        eprintln!("s3-elector: no term: run this under `s3-elector run` (which sets S3_ELECTOR_TERM for the program and the hooks) or pass --term N");
        return EXIT_CONFIG;
    };
    let (cfg, identity, store, key) = match open(&t.common, &t.object).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let url = format!("s3://{}/{key}", store.bucket());
    // Fencing rests on conditional writes: refuse a store that ignores
    // them, as the daemon does.
    if let Err(e) = probe::run(&store, &key, &identity).await {
        eprintln!("s3-elector: {url}: {e}");
        return EXIT_UNAVAILABLE;
    }
    // stdin is spooled to an unnamed temporary file: the body may be
    // sent twice (a refused condition), and it streams from disk.
    let mut spool = None;
    let body = match file.as_deref() {
        None => None,
        Some(p) if p == Path::new("-") => match spool_stdin().await {
            Ok((f, path)) => {
                spool = Some(f);
                Some(Body::File(path))
            }
            Err(e) => {
                eprintln!("s3-elector: cannot read stdin: {e}");
                return EXIT_ABSENT;
            }
        },
        Some(p) => Some(Body::File(p.to_path_buf())),
    };
    let r = match &body {
        Some(b) => fenced::put(&store, &key, &cfg.election, term, b).await,
        None => fenced::remove(&store, &key, &cfg.election, term).await,
    };
    drop(spool);
    match r {
        Ok(w) => {
            if t.json {
                println!("{}", serde_json::to_string(&w).expect("serializes"));
            } else {
                let what = if body.is_some() {
                    "wrote"
                } else {
                    "removed (tombstone)"
                };
                let replaced = w
                    .replaced_term
                    .map_or(String::new(), |r| format!(", replaced term {r}"));
                println!("{what} {url} at term {term}{replaced}");
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
        FenceError::OtherElection { .. } => EXIT_DATA,
        FenceError::Contended { .. } => EXIT_CONTENDED,
        FenceError::TooLarge { .. } => EXIT_CONFIG,
        FenceError::Body(_) => EXIT_ABSENT,
        FenceError::Store(_) => EXIT_UNAVAILABLE,
    }
}

async fn spool_stdin() -> std::io::Result<(tempfile::TempPath, PathBuf)> {
    let tmp = tempfile::NamedTempFile::new()?.into_temp_path();
    let path = tmp.to_path_buf();
    let mut f = tokio::fs::File::create(&path).await?;
    tokio::io::copy(&mut tokio::io::stdin(), &mut f).await?;
    f.sync_all().await?;
    Ok((tmp, path))
}

async fn get(common: &Common, object: &str, output: Option<&Path>, json: bool) -> i32 {
    let (_, _, store, key) = match open(common, object).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let url = format!("s3://{}/{key}", store.bucket());
    let r: Result<Option<Stamp>, FenceError> = match (output, json) {
        (Some(p), _) => match tokio::fs::File::create(p).await {
            Ok(mut f) => fenced::get(&store, &key, &mut f).await,
            Err(e) => {
                eprintln!("s3-elector: cannot write {}: {e}", p.display());
                return 1;
            }
        },
        (None, true) => fenced::get_stamp(&store, &key)
            .await
            .map(|s| s.filter(|s| !s.deleted)),
        (None, false) => fenced::get(&store, &key, &mut tokio::io::stdout()).await,
    };
    match r {
        Ok(Some(stamp)) => {
            if json {
                println!("{}", serde_json::to_string(&stamp).expect("serializes"));
            } else {
                match (stamp.term, &stamp.election) {
                    (Some(t), Some(e)) => eprintln!("{url}: term {t} (election {e})"),
                    _ => eprintln!("{url}: not fenced (no term; the first fenced write adopts it)"),
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
        for bad in ["s3://", "s3://b", "s3://b/", "s3:///k", ""] {
            assert!(locate(&cfg, bad).is_err(), "{bad}");
        }
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
            exit_code(&FenceError::Store(
                crate::lease::store::StoreError::Transient("x".into())
            )),
            69
        );
    }
}
