//! `status` and `reset`: read the lease object and print it; replace an
//! unusable one with a released record (conditionally, on its ETag).

use std::time::SystemTime;

use super::{
    connect, load, load_for_daemon, local_daemon, same_daemon, Common, ResetArgs, StatusArgs,
};
use crate::config::Config;
use crate::exit::{EXIT_CONFIG, EXIT_DATA, EXIT_UNAVAILABLE};

/// Terms from here on are refused by `reset`: far beyond any real count,
/// and room left so that `term + 1` never overflows.
const MAX_TERM: u64 = 1 << 62;
use crate::daemon::target;
use crate::lease::floor::{self, floor_key};
use crate::lease::record::{new_nonce, wall_now, LeaseRecord, RecordError, SCHEMA, VERSION};
use crate::lease::store::s3::S3Store;
use crate::lease::store::{normalize_etag, LeaseStore, Object, StoreError};

/// Load the config, connect, and read the lease object (for `status` and
/// `reset`); on failure, the message is printed and the exit code returned.
async fn read_lease(c: &Common) -> Result<(Config, String, S3Store, String, Option<Object>), i32> {
    let (cfg, identity) = load(c).await?;
    let (store, key, obj) = read_lease_of(&cfg).await?;
    Ok((cfg, identity, store, key, obj))
}

/// Connect and read the lease object `cfg` names.
async fn read_lease_of(cfg: &Config) -> Result<(S3Store, String, Option<Object>), i32> {
    let store = connect(cfg).await?;
    let key = cfg.lease_key();
    match get_retrying_once(&store, &key).await {
        Ok(o) => Ok((store, key, o)),
        Err(e) => {
            eprintln!("s3-elector: cannot read {}: {e}", target(cfg));
            Err(EXIT_UNAVAILABLE)
        }
    }
}

/// Read, retrying once after a transient failure (e.g. clock skew learnt).
async fn get_retrying_once(store: &S3Store, key: &str) -> Result<Option<Object>, StoreError> {
    match store.get(key).await {
        Err(StoreError::Transient(_) | StoreError::Throttled(_)) => store.get(key).await,
        other => other,
    }
}

/// What `status --json` prints.
#[derive(Debug, serde::Serialize)]
struct StatusJson {
    election: String,
    bucket: String,
    key: String,
    exists: bool,
    etag: Option<String>,
    record: Option<LeaseRecord>,
    /// Why the object is not a usable record, if it is not.
    problem: Option<String>,
    /// Seconds since the last write, by this machine's wall clock.
    age_seconds: Option<f64>,
    /// Held, not released, and written less than a lease ago (wall clock;
    /// off by the clock offset between hosts).
    looks_live: bool,
    /// This host's daemon's view (`GET /leader`), when one of this
    /// election answers.
    local: Option<serde_json::Value>,
    /// Where it was asked (`http.listen`, or `--http-listen`).
    local_address: String,
}

/// This host's daemon's `/leader` view, when it answers within a second
/// and runs this election (and identity, where one was set).
async fn local_view(cfg: &Config, identity: Option<&str>) -> Option<serde_json::Value> {
    if !cfg.http.enabled {
        return None;
    }
    let addr = local_daemon(cfg);
    let a = crate::peers::client::request(
        &addr.to_string(),
        hyper::Method::GET,
        "/leader",
        std::time::Duration::from_secs(1),
    )
    .await
    .ok()
    .filter(|a| a.status == 200)?;
    let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
    same_daemon(cfg, identity, &addr, &v).ok()?;
    Some(v)
}

pub(super) async fn status(a: StatusArgs) -> i32 {
    let (cfg, identity) = match load_for_daemon(&a.daemon).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if a.watch {
        let daemon = local_daemon(&cfg).to_string();
        return super::watch::watch(cfg, daemon).await;
    }
    let (_, key, obj) = match read_lease_of(&cfg).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut out = StatusJson {
        election: cfg.election.clone(),
        bucket: cfg.s3.bucket.clone(),
        key: key.clone(),
        exists: obj.is_some(),
        etag: obj.as_ref().map(|o| o.etag.clone()),
        record: None,
        problem: None,
        age_seconds: None,
        looks_live: false,
        local: local_view(&cfg, identity.as_deref()).await,
        local_address: local_daemon(&cfg).to_string(),
    };
    if let Some(o) = &obj {
        match o.record() {
            Ok(r) => {
                let age = r.wall_age(SystemTime::now());
                out.age_seconds = age.map(|d| d.as_secs_f64());
                out.looks_live = !r.released && age.is_some_and(|d| d < r.lease_duration());
                out.record = Some(r);
            }
            Err(e) => out.problem = Some(format!("the lease object {e}")),
        }
    }
    if a.json {
        // A struct of strings, numbers and options always serializes.
        out!(
            "{}",
            serde_json::to_string_pretty(&out).expect("status serializes")
        );
    } else {
        print_status(&out);
    }
    if out.problem.is_some() {
        EXIT_DATA
    } else {
        0
    }
}

fn print_status(s: &StatusJson) {
    print_lease(s);
    match &s.local {
        Some(v) => out!("this host:   {}", local_words(v)),
        None => out!(
            "this host:   no daemon of this election answers at {} (--http-listen to ask another)",
            s.local_address
        ),
    }
}

/// This host's daemon's view in a few words: `node-b (follower; sees
/// node-a lead, term 7; healthy)`.
fn local_words(v: &serde_json::Value) -> String {
    let id = v["identity"].as_str().unwrap_or("?");
    let role = v["role"].as_str().unwrap_or("?");
    let term = v["term"].as_u64().unwrap_or(0);
    let mut parts = vec![if v["is_leader"] == true {
        format!("leads, term {term}")
    } else {
        match v["leader"].as_str() {
            Some(l) => format!("{role}; sees {l} lead, term {term}"),
            None => format!("{role}; sees no leader"),
        }
    }];
    if let Some(h) = v["health"]["verdict"].as_str() {
        parts.push(h.to_string());
    }
    if let Some(p) = v["problem"].as_str() {
        parts.push(format!("problem: {p}"));
    }
    format!("{id} ({})", parts.join("; "))
}

fn print_lease(s: &StatusJson) {
    out!("election:    {}", s.election);
    out!("lease:       s3://{}/{}", s.bucket, s.key);
    if !s.exists {
        out!("state:       no lease object yet (nobody has led)");
        return;
    }
    out!("etag:        {}", s.etag.as_deref().unwrap_or(""));
    if let Some(p) = &s.problem {
        out!("problem:     {p}");
        out!("             the daemon will not touch it; after checking what wrote it, replace it with");
        out!(
            "             s3-elector reset --config FILE --etag '{}'",
            s.etag.as_deref().unwrap_or("")
        );
        return;
    }
    let Some(r) = &s.record else { return };
    let state = if r.released {
        "released (free to take)"
    } else if s.looks_live {
        "held, looks live"
    } else {
        "held, looks expired (no renewal within the lease)"
    };
    out!("holder:      {}", r.holder);
    if let Some(by) = &r.reset_by {
        out!("reset:       by {by} (an operator's `s3-elector reset`, not a holder)");
    }
    if let Some(a) = &r.holder_address {
        out!("address:     {a}");
    }
    out!("state:       {state}");
    out!("term:        {}", r.term);
    if !r.successors.is_empty() {
        out!(
            "successors:  {} (named by the holder, best first)",
            r.successors.join(", ")
        );
    }
    out!("transitions: {}", r.transitions);
    out!(
        "duration:    {} (the holder's lease_duration)",
        humantime::format_duration(r.lease_duration())
    );
    out!("acquired:    {}", r.acquired_at);
    match s.age_seconds {
        Some(a) => out!(
            "renewed:     {} ({a:.1}s ago by this machine's clock)",
            r.renewed_at
        ),
        None => out!(
            "renewed:     {} (in the future by this machine's clock)",
            r.renewed_at
        ),
    }
}

pub(super) async fn reset(a: ResetArgs) -> i32 {
    let (cfg, identity, store, key, obj) = match read_lease(&a.common).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(obj) = obj else {
        eprintln!(
            "s3-elector: {} does not exist; nothing to reset",
            target(&cfg)
        );
        return 1;
    };
    let want = normalize_etag(&a.etag);
    if obj.etag != want {
        eprintln!(
            "s3-elector: {} has ETag {}, not {}; it changed since you looked. Run `s3-elector status` again",
            target(&cfg),
            obj.etag,
            want
        );
        return 1;
    }
    if let Ok(r) = obj.record() {
        eprintln!(
            "s3-elector: {} is a valid lease record ({r}); reset only replaces unusable objects. Stop or step down the holder instead",
            target(&cfg)
        );
        return 1;
    }
    // The term must not go back: the highest of the term floor, the term
    // salvaged from the object and --term. Refuse to guess when none is known.
    let floor = match floor::read(&store, &floor_key(&key)).await {
        Ok(f) => f.term().filter(|t| *t > 0),
        Err(e) => {
            eprintln!(
                "s3-elector: cannot read the term floor of {}: {e}",
                target(&cfg)
            );
            return EXIT_UNAVAILABLE;
        }
    };
    let salvaged = RecordError::salvage_term(&obj.body);
    if let Some(t) = [salvaged, a.term]
        .into_iter()
        .flatten()
        .find(|t| *t >= MAX_TERM)
    {
        eprintln!(
            "s3-elector: term {t} is past the largest term s3-elector hands out ({MAX_TERM}); pass a smaller --term, after fencing your resources anew"
        );
        return EXIT_CONFIG;
    }
    let Some(term) = [floor, salvaged, a.term].into_iter().flatten().max() else {
        eprintln!(
            "s3-elector: cannot tell the last term of {}: there is no term floor and the object holds no readable term. \
             Pass --term N, with N at least the highest term any holder ever used (the last one your fenced resources accepted)",
            target(&cfg)
        );
        return EXIT_CONFIG;
    };
    // Raise the floor to it first, so that a later deletion of the key
    // cannot bring back a lower term either.
    if floor.unwrap_or(0) < term {
        let mut f = floor::Floor::Unknown;
        let raised = floor::reserve(
            &store,
            &floor_key(&key),
            &cfg.election,
            &identity,
            &mut f,
            term,
        )
        .await;
        if let Err(e) = raised {
            eprintln!(
                "s3-elector: cannot raise the term floor of {} to {term}: {e}; nothing written",
                target(&cfg)
            );
            return EXIT_UNAVAILABLE;
        }
    }
    let now = wall_now();
    // The operator is not a holder: the record names the last holder the
    // old object named, if any, and says who reset it.
    let operator = format!(
        "{}@{identity}",
        std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into())
    );
    let rec = LeaseRecord {
        schema: SCHEMA.into(),
        version: VERSION,
        election: cfg.election.clone(),
        holder: RecordError::salvage_holder(&obj.body).unwrap_or_else(|| "none".into()),
        term,
        lease_duration_ms: cfg.timing.lease_duration.as_millis() as u64,
        acquired_at: now.clone(),
        renewed_at: now,
        transitions: 0,
        nonce: new_nonce(),
        released: true,
        holder_address: None,
        successors: Vec::new(),
        successor_addresses: Vec::new(),
        reset_by: Some(operator.clone()),
        released_because: None,
        incarnation: None,
    };
    match store.put_if_match(&key, rec.to_body(), &want).await {
        Ok(_) => {
            out!(
                "replaced {} with a released lease record (term {term}, reset by {operator}); copies can now elect a leader",
                target(&cfg)
            );
            0
        }
        Err(StoreError::PreconditionFailed) => {
            eprintln!("s3-elector: {} changed while resetting; nothing written. Run `s3-elector status` again", target(&cfg));
            1
        }
        Err(e) => {
            eprintln!("s3-elector: reset of {} failed: {e}", target(&cfg));
            EXIT_UNAVAILABLE
        }
    }
}
