//! A minimal client of the Kubernetes API, for the leader's pod label
//! ([`super::pod_label`]): patch one label of a pod, and list the pods
//! that carry a label. hyper's client over rustls, with the service
//! account's CA and token, as `kubectl` does in a pod.
//!
//! Invariants:
//! - every request is bounded as a whole by `kubernetes.request_timeout`;
//!   nothing here retries;
//! - the token is read again for every request (projected tokens rotate);
//! - an error names the request, the status and what to do (RBAC, the
//!   downward API), never only a code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::KubernetesConfig;

/// Largest answer read (a list of pods' metadata).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Why the client could not be set up, or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{0}")]
    Setup(String),
    #[error("{what}: cannot read the service account token {path}: {source}")]
    Token {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: no answer within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
    #[error("{what}: the API answered {status}{detail}; {hint}")]
    Status {
        what: String,
        status: u16,
        detail: String,
        hint: String,
    },
    #[error("{what}: the answer is not a list of pods: {message}")]
    Answer { what: String, message: String },
}

impl KubeError {
    /// The API answered 404: the pod (or namespace) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeError::Status { status: 404, .. })
    }
}

/// Where the API is and who this pod is, resolved from the config, the
/// environment and the service account directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub api_url: String,
    pub namespace: String,
    pub pod: String,
}

impl Target {
    /// Resolve with `env` (a lookup of environment variables) and `hostname`.
    pub fn resolve(
        k: &KubernetesConfig,
        env: impl Fn(&str) -> Option<String>,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Result<Target, KubeError> {
        let api_url = match &k.api_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => match (env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT")) {
                (Some(h), Some(p)) if !h.is_empty() && !p.is_empty() => {
                    let host = if h.contains(':') { format!("[{h}]") } else { h };
                    format!("https://{host}:{p}")
                }
                _ => {
                    return Err(KubeError::Setup(
                        "`kubernetes.leader_label` is set but the Kubernetes API is unknown: KUBERNETES_SERVICE_HOST/PORT are not set (not in a pod?); set `kubernetes.api_url`".into(),
                    ))
                }
            },
        };
        let ns_file = k.service_account_dir.join("namespace");
        let namespace = match k.namespace.clone().or_else(|| env("POD_NAMESPACE")) {
            Some(n) if !n.is_empty() => n,
            _ => match std::fs::read_to_string(&ns_file) {
                Ok(n) if !n.trim().is_empty() => n.trim().to_string(),
                _ => {
                    return Err(KubeError::Setup(format!(
                        "`kubernetes.leader_label` is set but this pod's namespace is unknown: POD_NAMESPACE is not set and {} cannot be read; set POD_NAMESPACE from the downward API (fieldRef metadata.namespace) or `kubernetes.namespace`",
                        ns_file.display()
                    )))
                }
            },
        };
        let pod = match k.pod_name.clone().or_else(|| env("POD_NAME")) {
            Some(p) if !p.is_empty() => p,
            _ => hostname().filter(|h| !h.is_empty()).ok_or_else(|| {
                KubeError::Setup(
                    "`kubernetes.leader_label` is set but this pod's name is unknown: set POD_NAME from the downward API (fieldRef metadata.name) or `kubernetes.pod_name`".into(),
                )
            })?,
        };
        Ok(Target {
            api_url,
            namespace,
            pod,
        })
    }
}

/// The API client of one pod.
#[derive(Clone)]
pub struct KubeApi {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    target: Arc<Target>,
    token: PathBuf,
    timeout: Duration,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("target", &self.target)
            .finish()
    }
}

/// The trust roots of an `https` API: the service account's CA.
fn roots(ca: &Path) -> Result<rustls::RootCertStore, KubeError> {
    let bad = |m: String| {
        KubeError::Setup(format!(
            "cannot use the Kubernetes API's CA {}: {m}; mount the service account (automountServiceAccountToken) or set `kubernetes.service_account_dir`",
            ca.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))?;
    for c in certs {
        let c = c.map_err(|e| bad(e.to_string()))?;
        roots.add(c).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("it holds no certificate".into()));
    }
    Ok(roots)
}

impl KubeApi {
    /// A client for `target`, with the token and CA from the service account
    /// directory (the CA only for an `https` API).
    pub fn new(k: &KubernetesConfig, target: Target) -> Result<KubeApi, KubeError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeError::Setup(format!("TLS setup failed: {e}")))?;
        let roots = if target.api_url.starts_with("https://") {
            roots(&k.service_account_dir.join("ca.crt"))?
        } else {
            rustls::RootCertStore::empty()
        };
        let tls = builder.with_root_certificates(roots).with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(k.request_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(KubeApi {
            client,
            target: Arc::new(target),
            token: k.service_account_dir.join("token"),
            timeout: k.request_timeout,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn pods_path(&self) -> String {
        format!("/api/v1/namespaces/{}/pods", self.target.namespace)
    }

    /// Set `key` to `value` on `pod`'s labels (`None` removes it), with a
    /// JSON merge patch.
    pub async fn set_label(
        &self,
        pod: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), KubeError> {
        self.patch_label(pod, key, value, false).await
    }

    /// What [`Self::set_label`] would do, checked by the API (RBAC, the pod
    /// exists) without changing anything (`dryRun=All`); for `check`.
    pub async fn try_set_label(&self, pod: &str, key: &str) -> Result<(), KubeError> {
        self.patch_label(pod, key, None, true).await
    }

    async fn patch_label(
        &self,
        pod: &str,
        key: &str,
        value: Option<&str>,
        dry_run: bool,
    ) -> Result<(), KubeError> {
        let ns = &self.target.namespace;
        let what = match value {
            Some(v) => format!("setting label {key}={v} on pod {ns}/{pod}"),
            None => format!("removing label {key} from pod {ns}/{pod}"),
        };
        let body = serde_json::json!({"metadata": {"labels": {key: value}}});
        let mut path = format!("{}/{pod}", self.pods_path());
        if dry_run {
            path.push_str("?dryRun=All");
        }
        self.call(&what, Method::PATCH, &path, Some(body.to_string()), "patch")
            .await
            .map(drop)
    }

    /// The names of the pods matching `selector`.
    pub async fn pods(&self, selector: &str) -> Result<Vec<String>, KubeError> {
        let what = format!(
            "listing pods {selector} in namespace {}",
            self.target.namespace
        );
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("labelSelector", selector)
            .finish();
        let path = format!("{}?{query}", self.pods_path());
        let body = self.call(&what, Method::GET, &path, None, "list").await?;
        let answer = |message: String| KubeError::Answer {
            what: what.clone(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| answer(e.to_string()))?;
        // An empty metadata list comes as `"items": null` (or without
        // `items`, on some distributions).
        let items = match v.get("items") {
            None | Some(serde_json::Value::Null) if v.get("kind").is_some() => {
                return Ok(Vec::new())
            }
            Some(serde_json::Value::Array(a)) => a,
            _ => return Err(answer("no `items` list".into())),
        };
        items
            .iter()
            .map(|i| {
                i.pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| answer("an item has no metadata.name".into()))
            })
            .collect()
    }

    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<String>,
        verb: &str,
    ) -> Result<Bytes, KubeError> {
        let token = std::fs::read_to_string(&self.token).map_err(|source| KubeError::Token {
            what: what.into(),
            path: self.token.clone(),
            source,
        })?;
        // A list asks for the pods' metadata only, where the API offers it.
        // Anything else asks for plain JSON: the API would apply a patch
        // and then answer 406, unable to turn one pod into a list.
        let accept = if method == Method::GET {
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
        } else {
            "application/json"
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.target.api_url))
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            )
            .header(
                hyper::header::USER_AGENT,
                concat!("s3-elector/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::ACCEPT, accept);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/merge-patch+json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| KubeError::Transport {
                what: what.into(),
                message: format!("bad request: {e}"),
            })?;
        let exchange = async {
            let res = self.client.request(req).await.map_err(|e| {
                let mut message = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    message = format!("{message}: {s}");
                    src = s.source();
                }
                KubeError::Transport {
                    what: what.into(),
                    message,
                }
            })?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| KubeError::Transport {
                    what: what.into(),
                    message: format!("answer unreadable or over {MAX_BODY} bytes: {e}"),
                })?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| KubeError::Timeout {
                what: what.into(),
                timeout: self.timeout,
            })??;
        if status.is_success() {
            return Ok(body);
        }
        Err(KubeError::Status {
            what: what.into(),
            status: status.as_u16(),
            detail: status_message(&body),
            hint: self.hint(status, verb),
        })
    }

    fn hint(&self, status: StatusCode, verb: &str) -> String {
        let t = &self.target;
        match status.as_u16() {
            401 => "the service account token was refused; check that it is mounted and current".into(),
            403 => format!(
                "the pod's service account may not {verb} pods in namespace {}: grant list and patch on pods with a Role and RoleBinding (the chart's `leaderRouting.enabled` creates them)",
                t.namespace
            ),
            404 => format!(
                "no pod {} in namespace {}: set POD_NAME and POD_NAMESPACE from the downward API, or `kubernetes.pod_name`/`namespace`",
                t.pod, t.namespace
            ),
            _ => "retrying".into(),
        }
    }
}

/// The `message` of a Kubernetes `Status` answer, as ` (message)`.
fn status_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> KubernetesConfig {
        KubernetesConfig {
            leader_label: Some("s3-elector/leader".into()),
            pod_selector: Some("app=x".into()),
            service_account_dir: dir.into(),
            ..KubernetesConfig::default()
        }
    }

    #[test]
    fn the_target_comes_from_the_config_the_environment_and_the_service_account() {
        let d = tempfile::tempdir().unwrap();
        let k = cfg(d.path());
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let pod_env: &[(&str, &str)] = &[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("POD_NAME", "web-0"),
            ("POD_NAMESPACE", "prod"),
        ];
        let t = Target::resolve(&k, env(pod_env), || None).unwrap();
        assert_eq!(
            t,
            Target {
                api_url: "https://10.96.0.1:443".into(),
                namespace: "prod".into(),
                pod: "web-0".into()
            }
        );
        let v6: &[(&str, &str)] = &[
            ("KUBERNETES_SERVICE_HOST", "fd00::1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("POD_NAMESPACE", "prod"),
        ];
        // IPv6 in brackets; the pod name falls back to the hostname.
        let t = Target::resolve(&k, env(v6), || Some("host-1".into())).unwrap();
        assert_eq!(t.api_url, "https://[fd00::1]:443");
        assert_eq!(t.pod, "host-1");
        // The namespace falls back to the service account's file.
        std::fs::write(d.path().join("namespace"), "team-a\n").unwrap();
        let only_api: &[(&str, &str)] = &[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ];
        let t = Target::resolve(&k, env(only_api), || Some("h".into())).unwrap();
        assert_eq!(t.namespace, "team-a");
        // The config wins over the environment.
        let mut k2 = k.clone();
        k2.api_url = Some("http://127.0.0.1:8001/".into());
        k2.pod_name = Some("p".into());
        k2.namespace = Some("n".into());
        let t = Target::resolve(&k2, env(pod_env), || None).unwrap();
        assert_eq!(
            (t.api_url.as_str(), t.pod.as_str(), t.namespace.as_str()),
            ("http://127.0.0.1:8001", "p", "n")
        );
        // Each missing part says what to set.
        std::fs::remove_file(d.path().join("namespace")).unwrap();
        let e = Target::resolve(&k, env(&[]), || None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("kubernetes.api_url"), "{e}");
        let e = Target::resolve(&k, env(only_api), || None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("POD_NAMESPACE"), "{e}");
        let e = Target::resolve(&k2_without_pod(&k), env(&[("POD_NAMESPACE", "n")]), || None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("POD_NAME"), "{e}");
    }

    fn k2_without_pod(k: &KubernetesConfig) -> KubernetesConfig {
        KubernetesConfig {
            api_url: Some("http://127.0.0.1:1".into()),
            ..k.clone()
        }
    }

    #[test]
    fn an_https_api_needs_a_readable_ca() {
        let d = tempfile::tempdir().unwrap();
        let k = cfg(d.path());
        let t = Target {
            api_url: "https://10.96.0.1:443".into(),
            namespace: "n".into(),
            pod: "p".into(),
        };
        let e = KubeApi::new(&k, t.clone()).unwrap_err().to_string();
        assert!(
            e.contains("ca.crt") && e.contains("service_account_dir"),
            "{e}"
        );
        std::fs::write(d.path().join("ca.crt"), "not a certificate\n").unwrap();
        let e = KubeApi::new(&k, t.clone()).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        // Plain http (a test API, `kubectl proxy`) needs no CA.
        let t = Target {
            api_url: "http://127.0.0.1:8001".into(),
            ..t
        };
        KubeApi::new(&k, t).unwrap();
    }

    #[test]
    fn status_messages_and_hints_name_the_fix() {
        assert_eq!(
            status_message(br#"{"kind":"Status","message":"pods \"x\" is forbidden"}"#),
            " (pods \"x\" is forbidden)"
        );
        assert_eq!(status_message(b"<html>"), "");
    }
}
