//! The local HTTP endpoint (hyper). It only reads the published election
//! state; it never talks to S3, so no request can slow the election down.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /leader` | [`LeaderView`] JSON |
//! | `GET /healthz` | 200 while the election makes progress, 503 when wedged |
//! | `GET /readyz` | 200 once the lease has been read |
//! | `GET /leader/health` | 200 only while leading with more than a margin left |
//! | `GET /metrics` | Prometheus text |
//! | `POST /step-down` | 202 and a step-down, when `http.step_down` is on |
//! | `POST /wake` | 202; the copy reads the lease once, soon (`http.wake`) |
//!
//! `POST /wake` needs no token: the worst a forged or replayed wake-up can
//! do is one extra read of the lease, and the election serves at most one
//! wake-up read per quarter retry period, however many arrive.
//!
//! Limits: at most `max_connections` connections are served at once (more
//! are closed at once), the request head must arrive within
//! `header_timeout` and fit in 16 KiB, and a connection lives at most
//! five minutes. Errors are JSON: `{"error": "...", "status": N}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::lease::election::{Command, State};
use crate::surfaces::metrics::Metrics;
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
    pub step_down: Option<mpsc::Sender<Command>>,
    /// `Some` when `POST /wake` is enabled: the election's and the
    /// registry's wake-up handles.
    pub wake: Option<(Arc<Notify>, Arc<Notify>)>,
    pub lease_duration: Duration,
    /// `/leader/health` needs more than this much lease left.
    pub health_margin: Duration,
    pub started: Instant,
}

/// Serve until `shutdown`. `listener` is bound by the caller (tests bind
/// port 0).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    max_connections: usize,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%peer, "too many connections; closing");
            drop(stream);
            continue;
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEAD_BYTES);
            let conn = builder.serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(handle(&ctx, req, peer).await) }
                }),
            );
            tokio::select! {
                r = tokio::time::timeout(MAX_CONNECTION_LIFE, conn) => {
                    if let Ok(Err(e)) = r {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        });
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

fn health(ok: bool, detail: String) -> Response<Full<Bytes>> {
    let (code, status) = if ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    json(code, &Health { status, detail })
}

async fn handle(ctx: &Ctx, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let now = Instant::now();
    let state = ctx.state.borrow().clone();
    let path = req.uri().path();
    let allowed: &'static str = match path {
        "/leader" | "/healthz" | "/readyz" | "/leader/health" | "/metrics" => "GET, HEAD",
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
        "/leader" => json(StatusCode::OK, &LeaderView::new(&state, now)),
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
        "/readyz" => health(
            state.ready,
            if state.ready {
                "the lease has been read".into()
            } else {
                "the lease has not been read yet".into()
            },
        ),
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
            let mut r = Response::new(Full::new(Bytes::from(ctx.metrics.render(&state))));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/step-down" => match &ctx.step_down {
            None => error(
                StatusCode::FORBIDDEN,
                "step-down over HTTP is disabled; set `http.step_down: true` to enable it",
            ),
            Some(tx) => {
                let reason = format!("POST /step-down from {peer}");
                match tx.try_send(Command::StepDown { reason, term: None }) {
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
