//! `step-down`: ask the daemon running with this config to give up
//! leadership, through its `POST /step-down`.

use std::time::Duration;

use hyper::Method;

use super::{load_for_daemon, local_daemon, same_daemon, DaemonArgs};
use crate::exit::{EXIT_CONFIG, EXIT_UNAVAILABLE};
use crate::peers::client;

/// How long the daemon may take to accept the request.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

pub(super) async fn step_down(c: DaemonArgs) -> i32 {
    let (cfg, identity) = match load_for_daemon(&c).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if !cfg.http.enabled || !cfg.http.step_down {
        eprintln!("s3-elector: step-down needs `http.enabled: true` and `http.step_down: true` in the config (or send SIGUSR1 to the daemon)");
        return EXIT_CONFIG;
    }
    let addr = local_daemon(&cfg);
    // Ask who answers first, for a clear message; the request itself names
    // the election too, and a daemon of another one refuses it (409), so
    // nothing can slip in between the two.
    if let Ok(a) = client::request(&addr.to_string(), Method::GET, "/leader", ANSWER_WITHIN).await {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&a.body) {
            if let Err(m) = same_daemon(&cfg, identity.as_deref(), &addr, &v) {
                eprintln!("s3-elector: {m}; not stepping it down");
                return EXIT_UNAVAILABLE;
            }
        }
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("election", &cfg.election);
    if let Some(id) = &identity {
        query.append_pair("identity", id);
    }
    let path = format!("/step-down?{}", query.finish());
    match client::request(&addr.to_string(), Method::POST, &path, ANSWER_WITHIN).await {
        Ok(a) if a.status == 202 => {
            out!("step-down requested: {}", a.text());
            0
        }
        Ok(a) if a.status == 409 => {
            eprintln!("s3-elector: the daemon at {addr} refused: {}", a.text());
            EXIT_UNAVAILABLE
        }
        Ok(a) => {
            eprintln!(
                "s3-elector: the daemon at {addr} answered {}: {}",
                a.status,
                a.text()
            );
            1
        }
        Err(e) => {
            eprintln!("s3-elector: cannot reach the daemon at http://{addr}: {e}; is it running?");
            EXIT_UNAVAILABLE
        }
    }
}
