//! The local HTTP endpoint (hyper). It only reads the published election
//! state; it never talks to S3, so no request can slow the election down.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /` | `{"name": "<leader>"}`, as the contrib `leader-elector` sidecar |
//! | `GET /leader` | [`LeaderView`] JSON |
//! | `GET /healthz` | 200 while the election makes progress, 503 when wedged |
//! | `GET /readyz` | 200 once the lease has been read (503 while a configured status file cannot be written) |
//! | `GET /leader/health` | 200 only while leading with more than a margin left |
//! | `GET /metrics` | Prometheus text |
//! | `POST /step-down` | 202 and a step-down, when `http.step_down` is on; 409 when `?election=` or `&identity=` names another daemon |
//! | `POST /wake` | 202; the copy reads the lease once, soon (`http.wake`) |
//!
//! `POST /wake` needs no token: the worst a forged or replayed wake-up can
//! do is one extra read of the lease, and the election serves at most one
//! wake-up read per quarter retry period, however many arrive.
//!
//! Limits ([`Limits`]): at most `max_connections` connections are served
//! at once; past it a newcomer is served and the least useful connection
//! closed instead (one with no complete request yet, else the longest
//! idle; never one being answered: see [`conns`](crate::surfaces::conns)),
//! so a prompt client is always answered. A new connection must send its
//! first request head within `first_request_timeout`, later heads on a
//! keep-alive connection within `header_timeout`; a head fits in 16 KiB,
//! and a connection lives at most five minutes. Shed connections are
//! counted (`s3_elector_http_connections_shed_total`) and logged at warn
//! level at most once a minute. Errors are JSON: `{"error": "...",
//! "status": N}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::lease::election::{Control, State};
use crate::surfaces::conns::{Conns, Phase, Shed};
use crate::surfaces::metrics::{Format, Metrics};
use crate::surfaces::problems::{append, Problems};
use crate::surfaces::view::LeaderView;

/// Largest request head accepted (hyper's minimum buffer is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest a single connection may stay open.
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);

/// What the handlers need.
pub struct Ctx {
    pub state: watch::Receiver<State>,
    pub metrics: Arc<Metrics>,
    /// `Some` when `POST /step-down` is enabled.
    pub step_down: Option<mpsc::Sender<Control>>,
    /// `Some` when `POST /wake` is enabled: the election's and the
    /// registry's wake-up handles.
    pub wake: Option<(Arc<Notify>, Arc<Notify>)>,
    pub lease_duration: Duration,
    /// `/leader/health` needs more than this much lease left.
    pub health_margin: Duration,
    pub started: Instant,
    /// Why the status file cannot be written, when one is configured.
    pub status_file_problem: Option<watch::Receiver<Option<String>>>,
    /// Why the leader's pod label cannot be kept in step, when configured.
    /// Shown in `/leader`'s `problem`; it does not make the pod not Ready
    /// (readiness must not block drains, and routing goes by the label).
    pub pod_label_problem: Option<watch::Receiver<Option<String>>>,
    /// Problems of other parts (failing leader-only work, a duplicate
    /// identity), shown in `/leader`'s `problem`; `/healthz` ignores them.
    pub problems: Problems,
}

impl Ctx {
    fn status_file_problem(&self) -> Option<String> {
        self.status_file_problem.as_ref()?.borrow().clone()
    }
}

/// The listener's limits (from `http.*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; past it the least useful one is closed
    /// for a newcomer ([`conns`](crate::surfaces::conns)).
    pub max_connections: usize,
    /// Time a new connection gets to send its first complete request head.
    pub first_request_timeout: Duration,
    /// Time a keep-alive connection gets to send each later request head.
    pub header_timeout: Duration,
}

/// How often shed connections are reported in the log, at most.
const SHED_LOG_EVERY: Duration = Duration::from_secs(60);

/// Serve until `shutdown`. `listener` is bound by the caller (tests bind
/// port 0).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let table = Conns::new(limits.max_connections);
    let mut shed_log = ShedLog::default();
    let mut report = tokio::time::interval(SHED_LOG_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = report.tick() => {
                // Counts that came after the last line, a minute on.
                shed_log.flush(Instant::now(), limits.max_connections);
                continue;
            }
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let now = Instant::now();
        let admitted = table.admit(now);
        if let Some(why) = admitted
            .as_ref()
            .map_or_else(|w| Some(*w), |(_, shed)| *shed)
        {
            ctx.metrics.count_shed(why.label());
            shed_log.add(now, why, limits.max_connections);
        }
        let Ok((conn, _)) = admitted else {
            drop(stream); // refused: every connection is busy
            continue;
        };
        let conn = Arc::new(conn);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD_BYTES);
            let in_service = conn.clone();
            let metrics = ctx.metrics.clone();
            let served = builder.serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(move |req| {
                    let (ctx, conn) = (ctx.clone(), in_service.clone());
                    async move {
                        conn.set(Phase::Busy);
                        let r = handle(&ctx, req, peer).await;
                        conn.set(Phase::Idle(Instant::now()));
                        Ok::<_, Infallible>(r)
                    }
                }),
            );
            let served = tokio::time::timeout(MAX_CONNECTION_LIFE, served);
            tokio::pin!(served);
            let first_deadline = tokio::time::sleep_until(now + limits.first_request_timeout);
            tokio::pin!(first_deadline);
            let mut watching_first = true;
            loop {
                tokio::select! {
                    r = &mut served => {
                        if let Ok(Err(e)) = r {
                            debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = shutdown.cancelled() => break,
                    _ = conn.closed.cancelled() => {
                        debug!(%peer, "connection closed to make room for a newcomer");
                        break;
                    }
                    _ = &mut first_deadline, if watching_first => {
                        watching_first = false;
                        if conn.phase() == Some(Phase::Fresh) {
                            metrics.count_shed("first_request_timeout");
                            debug!(%peer, "no complete request within http.first_request_timeout; closing");
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// Shed connections, reported at warn level at most once per
/// [`SHED_LOG_EVERY`], with the counts since the last report.
#[derive(Debug, Default)]
struct ShedLog {
    last: Option<Instant>,
    pending: [u64; 3],
}

impl ShedLog {
    fn add(&mut self, now: Instant, why: Shed, max: usize) {
        self.pending[why as usize] += 1;
        self.flush(now, max);
    }

    /// Log the counts since the last line, if any, unless a line was
    /// logged less than a minute ago. True when it logged.
    fn flush(&mut self, now: Instant, max: usize) -> bool {
        let [fresh, idle, refused] = self.pending;
        let due = self.last.is_none_or(|t| now >= t + SHED_LOG_EVERY);
        if fresh + idle + refused == 0 || !due {
            return false;
        }
        warn!(
            event = "http_connections_shed",
            evicted_fresh = fresh,
            evicted_idle = idle,
            refused,
            max_connections = max,
            "HTTP connections past http.max_connections: closed {} that had sent no request and {} idle keep-alive ones, refused {} (all busy); \
             a client pooling connections or someone holding the port; at most one such line a minute",
            fresh, idle, refused
        );
        self.pending = [0; 3];
        self.last = Some(now);
        true
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    // Our view types always serialize.
    let b = serde_json::to_vec_pretty(body).expect("serializable body");
    let mut r = Response::new(Full::new(Bytes::from(b)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    status: u16,
}

fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &ErrorBody {
            error: msg,
            status: status.as_u16(),
        },
    )
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    detail: String,
}

/// `GET /`, as the contrib `leader-elector` sidecar answers it.
#[derive(Serialize)]
struct ContribView {
    name: String,
}

fn health(ok: bool, detail: String) -> Response<Full<Bytes>> {
    let (code, status) = if ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    json(code, &Health { status, detail })
}

/// Why a request that names an election or an identity (`?election=NAME`,
/// `&identity=ID`) is not about this daemon; `None` when it is (or names
/// neither: then it is about whichever daemon answers).
fn not_ours(query: Option<&str>, s: &State) -> Option<String> {
    let named = |key: &str| {
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(e) = named("election").filter(|e| *e != s.election) {
        return Some(format!("this daemon runs election {}, not {e}", s.election));
    }
    if let Some(i) = named("identity").filter(|i| *i != s.identity) {
        return Some(format!("this daemon is {}, not {i}", s.identity));
    }
    None
}

async fn handle(ctx: &Ctx, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let now = Instant::now();
    let state = ctx.state.borrow().clone();
    let path = req.uri().path();
    let allowed: &'static str = match path {
        "/" | "/leader" | "/healthz" | "/readyz" | "/leader/health" | "/metrics" => "GET, HEAD",
        "/step-down" | "/wake" => "POST",
        _ => return error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
    };
    let method_ok = match allowed {
        "POST" => req.method() == Method::POST,
        _ => req.method() == Method::GET || req.method() == Method::HEAD,
    };
    if !method_ok {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} is not allowed on {path}; use {allowed}", req.method()),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed));
        return r;
    }
    match path {
        // The Kubernetes contrib `leader-elector` sidecar's whole API, so
        // applications written for it work unchanged.
        "/" => json(
            StatusCode::OK,
            &ContribView {
                name: LeaderView::new(&state, now).leader.unwrap_or_default(),
            },
        ),
        "/leader" => {
            let mut view = LeaderView::new(&state, now);
            let label = ctx
                .pod_label_problem
                .as_ref()
                .and_then(|p| p.borrow().clone());
            for p in [ctx.status_file_problem(), label, ctx.problems.current()] {
                view.problem = append(view.problem, p);
            }
            json(StatusCode::OK, &view)
        }
        "/healthz" => {
            let since = state.last_progress.unwrap_or(ctx.started);
            let age = now.saturating_duration_since(since);
            health(
                age <= ctx.lease_duration,
                format!(
                    "last completed poll or renewal {:.1}s ago (limit {}s)",
                    age.as_secs_f64(),
                    ctx.lease_duration.as_secs_f64()
                ),
            )
        }
        "/readyz" => match ctx.status_file_problem() {
            Some(p) => health(false, p),
            None => health(
                state.ready,
                if state.ready {
                    "the lease has been read".into()
                } else {
                    "the lease has not been read yet".into()
                },
            ),
        },
        "/leader/health" => {
            let left = state
                .valid_until
                .filter(|_| state.is_leader(now))
                .map(|d| d.saturating_duration_since(now));
            match left {
                Some(l) if l > ctx.health_margin => health(
                    true,
                    format!("leader, {:.1}s of lease left", l.as_secs_f64()),
                ),
                Some(l) => health(
                    false,
                    format!("leader, but only {:.1}s of lease left", l.as_secs_f64()),
                ),
                None => health(false, "not the leader".into()),
            }
        }
        "/metrics" => {
            let format = Format::negotiate(req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
            let mut r = Response::new(Full::new(Bytes::from(ctx.metrics.render(&state, format))));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            r
        }
        "/step-down" => match &ctx.step_down {
            None => error(
                StatusCode::FORBIDDEN,
                "step-down over HTTP is disabled; set `http.step_down: true` to enable it",
            ),
            Some(_) if not_ours(req.uri().query(), &state).is_some() => error(
                StatusCode::CONFLICT,
                &format!(
                    "{}; nothing was stepped down",
                    not_ours(req.uri().query(), &state).unwrap_or_default()
                ),
            ),
            Some(tx) => {
                let reason = format!("POST /step-down from {peer}");
                match tx.try_send(Control::StepDown {
                    reason,
                    term: None,
                    cooloff: None,
                    only_to_healthy: false,
                }) {
                    Ok(()) => json(
                        StatusCode::ACCEPTED,
                        &serde_json::json!({
                            "accepted": true,
                            "was_leader": state.is_leader(now),
                        }),
                    ),
                    Err(_) => error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the election is busy; try again",
                    ),
                }
            }
        },
        "/wake" => match &ctx.wake {
            None => error(
                StatusCode::FORBIDDEN,
                "wake-ups are disabled; set `http.wake: true` to enable them",
            ),
            Some((election, registry)) => {
                debug!(%peer, "wake-up received");
                ctx.metrics.count_wake();
                election.notify_one();
                registry.notify_one();
                json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({ "accepted": true }),
                )
            }
        },
        _ => unreachable!("paths were matched above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most one line a minute, each with the counts since the last one;
    /// nothing to say, nothing logged.
    #[test]
    fn shed_connections_are_logged_at_most_once_a_minute() {
        let t = Instant::now();
        let mut log = ShedLog::default();
        assert!(!log.flush(t, 64));
        log.add(t, Shed::Fresh, 64);
        assert_eq!(log.last, Some(t));
        assert_eq!(log.pending, [0; 3]);
        log.add(t + Duration::from_secs(1), Shed::Idle, 64);
        log.add(t + Duration::from_secs(59), Shed::Refused, 64);
        assert_eq!(log.pending, [0, 1, 1]);
        assert!(!log.flush(t + Duration::from_secs(59), 64));
        assert!(log.flush(t + SHED_LOG_EVERY, 64));
        assert_eq!(log.pending, [0; 3]);
        assert!(!log.flush(t + 3 * SHED_LOG_EVERY, 64));
    }
}
