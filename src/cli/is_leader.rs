//! `is-leader`: does this copy lead, with time to spare? Asks the local
//! daemon (`GET /leader`), so it costs no S3 request. Exit codes follow
//! systemd's `ExecCondition=`: 0 run the job, 1 skip it (this copy does not
//! lead, or its lease has less than `retry_period` left), 255 fail (the
//! daemon cannot be asked, or the one that answered runs another election
//! or identity: its answer is unknown, so nothing runs).

use std::time::Duration;

use hyper::Method;

use super::{load_for_daemon, local_daemon, same_daemon, IsLeaderArgs};
use crate::exit::EXIT_UNKNOWN;
use crate::peers::client;

/// How long the daemon may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

pub(super) async fn is_leader(a: IsLeaderArgs) -> i32 {
    let c = &a.daemon;
    let (cfg, identity) = match load_for_daemon(c).await {
        // Any config problem: the answer is unknown, never "skip quietly".
        Ok(x) => x,
        Err(_) => return EXIT_UNKNOWN,
    };
    if !cfg.http.enabled {
        eprintln!("s3-elector: is-leader asks the daemon over HTTP; set `http.enabled: true`");
        return EXIT_UNKNOWN;
    }
    let addr = local_daemon(&cfg);
    // The view says how long the lease had left when the daemon answered;
    // it is that much less by the time the answer is read here.
    let asked = tokio::time::Instant::now();
    let answer = match client::request(&addr.to_string(), Method::GET, "/leader", ANSWER_WITHIN)
        .await
    {
        Ok(a) if a.status == 200 => a,
        Ok(a) => {
            eprintln!(
                "s3-elector: the daemon at {addr} answered {}: {}",
                a.status,
                a.text()
            );
            return EXIT_UNKNOWN;
        }
        Err(e) => {
            eprintln!("s3-elector: cannot ask the daemon at http://{addr}: {e}; is it running?");
            return EXIT_UNKNOWN;
        }
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
        eprintln!(
            "s3-elector: the daemon at {addr} answered something that is not its /leader view"
        );
        return EXIT_UNKNOWN;
    };
    if let Err(m) = same_daemon(&cfg, identity.as_deref(), &addr, &v) {
        eprintln!("s3-elector: {m}");
        return EXIT_UNKNOWN;
    }
    let leads = v["is_leader"].as_bool().unwrap_or(false);
    let left = v["view_valid_for_seconds"].as_f64().unwrap_or(0.0) - asked.elapsed().as_secs_f64();
    let margin = cfg.timing.retry_period.as_secs_f64();
    let term = v["term"].as_u64().unwrap_or(0);
    if a.json {
        // The term only when the answer is "run" (exit 0): a job that
        // takes it while the lease is about to run out would fence with it.
        let run = leads && left > margin;
        let out = serde_json::json!({
            "leader": leads,
            "term": run.then_some(term),
            "valid_for_seconds": if leads { (left.max(0.0) * 1000.0).round() / 1000.0 } else { 0.0 },
            "election": cfg.election,
        });
        out!("{out}");
        return if run { 0 } else { 1 };
    }
    if leads && left > margin {
        out!("leader, term {term}, {left:.1}s of lease left");
        0
    } else if leads {
        out!(
            "leader, term {term}, but only {left:.1}s of lease left (less than retry_period): skip"
        );
        1
    } else {
        let who = v["leader"].as_str().unwrap_or("nobody");
        out!("not leader ({who} leads, term {term})");
        1
    }
}
