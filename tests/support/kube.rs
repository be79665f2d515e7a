//! A stand-in Kubernetes API on loopback for the leader's pod label: pods
//! with labels, the two requests the daemon makes (a JSON merge patch of a
//! pod's labels, a list of pods by label selector), bearer-token checks, and
//! a record of every change. Served by hyper, over plain HTTP or over TLS
//! with a CA made by `openssl` (as a cluster's service account CA).
//!
//! Kubernetes itself cannot run here; the daemon's side of the exchange is
//! the real one (its hyper/rustls client), the API's side is this.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

pub const TOKEN: &str = "test-token-1";
pub const NAMESPACE: &str = "prod";

/// Pods by name, their labels.
pub type Pods = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Default)]
pub struct ApiState {
    pub pods: Pods,
    /// Every successful change: (pod, label key, new value or None).
    pub changes: Vec<(String, String, Option<String>)>,
    /// After each change, how many pods matched `watch` (see [`FakeKube::most`]).
    pub matched: Vec<usize>,
    /// The selector whose matches are counted after each change.
    pub watch: Vec<(String, String)>,
    /// Answer every request with this status, when set.
    pub fail_with: Option<u16>,
    pub requests: u64,
    /// Patches with `dryRun=All` (checked, not applied).
    pub dry_runs: u64,
}

pub struct FakeKube {
    pub port: u16,
    pub state: Arc<Mutex<ApiState>>,
    /// The service account directory (token, ca.crt, namespace).
    pub sa_dir: PathBuf,
    pub tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKube {
    /// Serve `pods` over HTTP (`tls: false`) or HTTPS; the service account
    /// directory goes under `dir`. `watch` is a selector of `k=v` pairs.
    pub fn start(dir: &Path, pods: Pods, watch: &[(&str, &str)], tls: bool) -> FakeKube {
        let sa_dir = dir.join("serviceaccount");
        std::fs::create_dir_all(&sa_dir).unwrap();
        std::fs::write(sa_dir.join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(sa_dir.join("namespace"), NAMESPACE).unwrap();
        let acceptor = tls.then(|| tls_acceptor(&sa_dir));
        let state = Arc::new(Mutex::new(ApiState {
            pods,
            watch: watch
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ApiState::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = tokio::select! {
                        _ = &mut stop_rx => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let st = st.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let st = st.clone();
                            async move { Ok::<_, Infallible>(handle(req, &st).await) }
                        });
                        let http = hyper::server::conn::http1::Builder::new();
                        match acceptor {
                            Some(a) => {
                                if let Ok(s) = a.accept(stream).await {
                                    let _ = http.serve_connection(TokioIo::new(s), svc).await;
                                }
                            }
                            None => {
                                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    });
                }
            });
        });
        FakeKube {
            port,
            state,
            sa_dir,
            tls,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Pods carrying `key=value`.
    pub fn with_label(&self, key: &str, value: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.pods
            .iter()
            .filter(|(_, l)| l.get(key).map(String::as_str) == Some(value))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The most pods that matched the watched selector at any one time.
    pub fn most(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .matched
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with
/// openssl; the CA goes to `sa_dir/ca.crt`.
fn tls_acceptor(sa_dir: &Path) -> tokio_rustls::TlsAcceptor {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(sa_dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-cluster-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=kube-apiserver",
    ]);
    std::fs::write(
        sa_dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(sa_dir.join("server.crt"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(sa_dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

fn answer(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status(code: u16, message: &str) -> Response<Full<Bytes>> {
    answer(
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}),
    )
}

/// `k=v,k!=v` terms.
fn matches(labels: &BTreeMap<String, String>, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|t| {
        if let Some((k, v)) = t.split_once("!=") {
            labels.get(k).map(String::as_str) != Some(v)
        } else {
            let (k, v) = t
                .split_once("==")
                .or_else(|| t.split_once('='))
                .unwrap_or((t, ""));
            labels.get(k).map(String::as_str) == Some(v)
        }
    })
}

async fn handle(req: Request<Incoming>, st: &Mutex<ApiState>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut st = st.lock().unwrap();
    st.requests += 1;
    if let Some(code) = st.fail_with {
        return status(code, "failing on purpose");
    }
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return status(401, "Unauthorized");
    }
    // As the API server: a metadata-only list where the client asks for it
    // (with `"items": null` when nothing matches), and a 406 for a request
    // that asks for a list form but is not a list (after a patch was
    // already applied, so the request is both done and failed).
    let metadata = parts
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadataList"));
    let prefix = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let path = parts.uri.path();
    let Some(rest) = path.strip_prefix(&prefix) else {
        return status(404, &format!("no such path {path}"));
    };
    match (parts.method.as_str(), rest) {
        ("GET", "") => {
            let selector = parts
                .uri
                .query()
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "labelSelector")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            let items: Vec<_> = st
                .pods
                .iter()
                .filter(|(_, l)| matches(l, &selector))
                .map(|(n, l)| serde_json::json!({"metadata": {"name": n, "namespace": NAMESPACE, "labels": l}}))
                .collect();
            if metadata {
                let items = if items.is_empty() {
                    serde_json::Value::Null
                } else {
                    items.into()
                };
                answer(
                    200,
                    serde_json::json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "items": items}),
                )
            } else {
                answer(
                    200,
                    serde_json::json!({"kind": "PodList", "apiVersion": "v1", "items": items}),
                )
            }
        }
        ("PATCH", name) if name.starts_with('/') => {
            let name = &name[1..];
            let ct = parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok());
            if ct != Some("application/merge-patch+json") {
                return status(415, &format!("unsupported patch type {ct:?}"));
            }
            let Ok(patch) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return status(400, "not JSON");
            };
            let Some(labels) = patch
                .pointer("/metadata/labels")
                .and_then(|l| l.as_object())
            else {
                return status(422, "only metadata.labels patches are expected here");
            };
            if !st.pods.contains_key(name) {
                return status(404, &format!("pods \"{name}\" not found"));
            }
            if parts.uri.query() == Some("dryRun=All") {
                st.dry_runs += 1;
                if metadata {
                    return status(406, "you requested PartialObjectMetadataList, but the requested object is not a list");
                }
                let l = st.pods[name].clone();
                return answer(
                    200,
                    serde_json::json!({"metadata": {"name": name, "labels": l}}),
                );
            }
            let mut changes = Vec::new();
            for (k, v) in labels {
                let v = v.as_str().map(str::to_string);
                let pod = st.pods.get_mut(name).unwrap();
                let before = pod.get(k).cloned();
                match &v {
                    Some(v) => pod.insert(k.clone(), v.clone()),
                    None => pod.remove(k),
                };
                if before != v {
                    changes.push((name.to_string(), k.clone(), v));
                }
            }
            for c in changes {
                st.changes.push(c);
                let watch = st.watch.clone();
                let n = st
                    .pods
                    .values()
                    .filter(|l| watch.iter().all(|(k, v)| l.get(k) == Some(v)))
                    .count();
                st.matched.push(n);
            }
            if metadata {
                return status(
                    406,
                    "you requested PartialObjectMetadataList, but the requested object is not a list",
                );
            }
            let l = st.pods[name].clone();
            answer(
                200,
                serde_json::json!({"metadata": {"name": name, "labels": l}}),
            )
        }
        _ => status(405, "not here"),
    }
}
