//! [`LeaseStore`] on a real S3 (or S3-compatible) store, through aws-sdk-s3.
//!
//! Invariants:
//! - SDK retries are off: a retried conditional PUT whose first attempt
//!   landed would come back 412 and look like a lost race. The election's
//!   own loop retries, and settles ambiguous outcomes by reading back;
//! - every request has a connect and a whole-request timeout (the SDK has no
//!   default read timeout), both inside the renew deadline (config checks);
//! - reads never download more than [`MAX_RECORD_BYTES`] + 1 bytes;
//! - credentials are resolved once at start with a time bound, so a machine
//!   without credentials gets a message instead of a hang on IMDS.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_smithy_async::time::{SharedTimeSource, TimeSource};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::{LeaseStore, Listed, Object, StoreError};
use crate::config::S3Config;
use crate::lease::record::MAX_RECORD_BYTES;

/// An error and its causes on one line, without any `Debug` output: each
/// cause's message once, joined with ": ", whitespace (the credential
/// chain's multi-line report) folded.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// How long start-up may spend finding credentials and a region.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Problems found while setting up the client, before any request.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no AWS region: set `s3.region` in the config or AWS_REGION in the environment")]
    NoRegion,
    #[error("no AWS credentials found ({0}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity token (IRSA), or run with an instance or task role")]
    NoCredentials(String),
    #[error("finding AWS credentials took longer than {}s; if this is not EC2 or ECS, set credentials in the environment or AWS_EC2_METADATA_DISABLED=true", RESOLVE_TIMEOUT.as_secs())]
    CredentialsTimeout,
}

/// The clock used to sign requests: the local wall clock plus the offset
/// to the store's clock, learnt from its `Date` header when it answers
/// `RequestTimeTooSkewed`. Wall-clock offset then costs one refused request
/// instead of every request (monotonic time, which decides leadership, is
/// never involved).
#[derive(Debug, Default)]
struct SkewedClock {
    offset_ms: AtomicI64,
}

impl TimeSource for SkewedClockHandle {
    fn now(&self) -> SystemTime {
        let o = self.0.offset_ms.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if o >= 0 {
            now + Duration::from_millis(o as u64)
        } else {
            now - Duration::from_millis(o.unsigned_abs())
        }
    }
}

#[derive(Debug, Clone, Default)]
struct SkewedClockHandle(Arc<SkewedClock>);

/// The S3 implementation of the store.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    clock: SkewedClockHandle,
}

impl S3Store {
    /// Build a client from the default AWS chain plus the config's overrides,
    /// and make sure credentials can be found.
    pub async fn connect(cfg: &S3Config) -> Result<S3Store, SetupError> {
        Self::connect_with(
            cfg,
            TimeoutConfig::builder()
                .connect_timeout(cfg.connect_timeout)
                .read_timeout(cfg.request_timeout)
                .operation_attempt_timeout(cfg.request_timeout)
                .operation_timeout(cfg.request_timeout)
                .build(),
        )
        .await
    }

    /// [`S3Store::connect`] for transfers of any size (`fenced`): the
    /// connect and read (stall) timeouts, no limit on the whole request.
    pub async fn connect_for_transfers(cfg: &S3Config) -> Result<S3Store, SetupError> {
        Self::connect_with(
            cfg,
            TimeoutConfig::builder()
                .connect_timeout(cfg.connect_timeout)
                .read_timeout(cfg.request_timeout)
                .build(),
        )
        .await
    }

    async fn connect_with(cfg: &S3Config, timeouts: TimeoutConfig) -> Result<S3Store, SetupError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(timeouts);
        if let Some(r) = &cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        } else if cfg.endpoint_url.is_some() {
            // S3-compatible stores rarely care about the region; don't go
            // looking for one on IMDS, but honour AWS_REGION if it is set.
            let env = std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|_| "us-east-1".into());
            loader = loader.region(aws_config::Region::new(env));
        }
        let sdk = tokio::time::timeout(RESOLVE_TIMEOUT, loader.load())
            .await
            .map_err(|_| SetupError::CredentialsTimeout)?;
        if sdk.region().is_none() {
            return Err(SetupError::NoRegion);
        }
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| SetupError::NoCredentials("no credential provider".into()))?;
        match tokio::time::timeout(RESOLVE_TIMEOUT, provider.provide_credentials()).await {
            Err(_) => return Err(SetupError::CredentialsTimeout),
            Ok(Err(e)) => return Err(SetupError::NoCredentials(one_line(&e))),
            Ok(Ok(_)) => {}
        }
        let clock = SkewedClockHandle::default();
        let mut b = aws_sdk_s3::config::Builder::from(&sdk)
            .time_source(SharedTimeSource::new(clock.clone()))
            .force_path_style(cfg.force_path_style)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
        if let Some(u) = &cfg.endpoint_url {
            b = b.endpoint_url(u);
        }
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            bucket: cfg.bucket.clone(),
            clock,
        })
    }

    /// Take the store's clock from a response's `Date` header; returns a
    /// message when the offset was updated.
    fn learn_skew(&self, raw: &HttpResponse) -> Option<String> {
        let date = raw.headers().get("date")?;
        let server = aws_smithy_types::DateTime::from_str(
            date,
            aws_smithy_types::date_time::Format::HttpDate,
        )
        .ok()?;
        let server = SystemTime::try_from(server).ok()?;
        let now = SystemTime::now();
        let offset_ms: i64 = match server.duration_since(now) {
            Ok(ahead) => ahead.as_millis() as i64,
            Err(behind) => -(behind.duration().as_millis() as i64),
        };
        self.clock.0.offset_ms.store(offset_ms, Ordering::Relaxed);
        tracing::warn!(offset_ms, "this machine's wall clock differs from the store's; signing requests with the store's time from now on (leadership does not use the wall clock)");
        Some(format!(
            "the store refused a request signed with this machine's wall clock ({:+.1}s off the store's); corrected, will retry",
            offset_ms as f64 / 1000.0
        ))
    }

    /// The bucket this store writes to.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The same client (credentials, endpoint, clock) on another bucket.
    pub fn with_bucket(&self, bucket: &str) -> S3Store {
        S3Store {
            client: self.client.clone(),
            bucket: bucket.into(),
            clock: self.clock.clone(),
        }
    }

    /// The SDK client, for the other users of the store ([`crate::fenced`]).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Classify an SDK error. `conditional` says whether the request carried
    /// an `If-Match`, so that a 404 means "not yours any more".
    pub(crate) fn classify<E>(
        &self,
        op: &'static str,
        key: &str,
        conditional: bool,
        e: SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = match &e {
            SdkError::ServiceError(se) => Some(raw_status(se.raw())),
            _ => None,
        };
        let Some(status) = status else {
            let hint = match &e {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                    "; check that the endpoint (`s3.endpoint_url`, else AWS S3 in `s3.region`) is right and reachable from here"
                }
                _ => "",
            };
            return StoreError::Transient(format!(
                "{op} on s3://{}/{key} failed: {}{hint}",
                self.bucket,
                one_line(&e)
            ));
        };
        let code = e.code().unwrap_or("").to_string();
        let message = e.message().unwrap_or("").to_string();
        if matches!(
            code.as_str(),
            "RequestTimeTooSkewed" | "RequestExpired" | "RequestInTheFuture"
        ) {
            if let SdkError::ServiceError(se) = &e {
                if let Some(msg) = self.learn_skew(se.raw()) {
                    return StoreError::Transient(msg);
                }
            }
        }
        match (status, code.as_str()) {
            (412, _) => StoreError::PreconditionFailed,
            (409, _) => StoreError::Conflict,
            (_, "NoSuchBucket") => StoreError::NoSuchBucket {
                bucket: self.bucket.clone(),
            },
            (404, _) if conditional => StoreError::PreconditionFailed,
            (404, "") => StoreError::NoSuchBucket {
                bucket: self.bucket.clone(),
            },
            (403, _)
            | (_, "AccessDenied")
            | (_, "InvalidAccessKeyId")
            | (_, "SignatureDoesNotMatch")
            | (_, "ExpiredToken")
            | (_, "InvalidToken") => StoreError::AccessDenied {
                op,
                bucket: self.bucket.clone(),
                key: key.into(),
                code: if code.is_empty() {
                    status.to_string()
                } else {
                    code
                },
                message,
            },
            (501, _) => StoreError::NotImplemented { op, message },
            (503, _)
            | (429, _)
            | (_, "SlowDown")
            | (_, "TooManyRequests")
            | (_, "Throttling")
            | (_, "ThrottlingException")
            | (_, "RequestLimitExceeded") => StoreError::Throttled(format!(
                "{op} on s3://{}/{key}: HTTP {status} {code} {message}",
                self.bucket
            )),
            (500..=599, _) => StoreError::Transient(format!(
                "{op} on s3://{}/{key}: HTTP {status} {code} {message}",
                self.bucket
            )),
            _ => StoreError::Other {
                op,
                status,
                code,
                message,
            },
        }
    }
}

fn raw_status(raw: &HttpResponse) -> u16 {
    raw.status().as_u16()
}

/// Does `e` say the key does not exist (not the bucket)? `typed` is the
/// operation's own not-found error (`NoSuchKey`, `NotFound`); some stores
/// answer a bare 404 instead.
pub(crate) fn is_missing_key<E: ProvideErrorMetadata>(
    e: &SdkError<E, HttpResponse>,
    typed: impl Fn(&E) -> bool,
) -> bool {
    match e {
        SdkError::ServiceError(se) => {
            typed(se.err())
                || (raw_status(se.raw()) == 404 && se.err().code() != Some("NoSuchBucket"))
        }
        _ => false,
    }
}

impl LeaseStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if is_missing_key(&e, |x| x.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.classify("GetObject", key, false, e)),
        };
        let etag = super::normalize_etag(out.e_tag().unwrap_or_default());
        let size = out.content_length().map(|n| n.max(0) as u64);
        if let Some(n) = size {
            if n > MAX_RECORD_BYTES as u64 {
                return Ok(Some(Object {
                    etag,
                    size: n,
                    body: Vec::new(),
                }));
            }
        }
        // The length header may be missing (chunked); cap the download anyway.
        let mut body = Vec::new();
        let mut stream = out.body;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                StoreError::Transient(format!(
                    "reading s3://{}/{key} failed: {}",
                    self.bucket,
                    one_line(&e)
                ))
            })?;
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RECORD_BYTES {
                return Ok(Some(Object {
                    etag,
                    size: body.len() as u64,
                    body: Vec::new(),
                }));
            }
        }
        if etag.is_empty() {
            return Err(StoreError::Other {
                op: "GetObject",
                status: 200,
                code: "NoETag".into(),
                message: "the store returned no ETag; conditional writes need one".into(),
            });
        }
        Ok(Some(Object {
            etag,
            size: body.len() as u64,
            body,
        }))
    }

    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<String, StoreError> {
        let r = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .if_none_match("*")
            .body(body.into())
            .send()
            .await;
        match r {
            Ok(o) => etag_or_ambiguous(o.e_tag()),
            Err(e) => Err(self.classify("PutObject(If-None-Match)", key, false, e)),
        }
    }

    async fn put_if_match(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> Result<String, StoreError> {
        let r = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .if_match(etag)
            .body(body.into())
            .send()
            .await;
        match r {
            Ok(o) => etag_or_ambiguous(o.e_tag()),
            Err(e) => Err(self.classify("PutObject(If-Match)", key, true, e)),
        }
    }

    async fn delete_side_object(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify("DeleteObject", key, false, e))
    }

    async fn put_side_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify("PutObject", key, false, e))
    }

    async fn list(&self, prefix: &str, max: usize) -> Result<Vec<Listed>, StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(i32::try_from(max).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| self.classify("ListObjectsV2", prefix, false, e))?;
        Ok(out
            .contents()
            .iter()
            .take(max)
            .map(|o| Listed {
                key: o.key().unwrap_or_default().to_string(),
                etag: super::normalize_etag(o.e_tag().unwrap_or_default()),
                size: o.size().unwrap_or(0).max(0) as u64,
            })
            .collect())
    }
}

/// A successful PUT without an ETag cannot be renewed from; treat it as
/// ambiguous so the caller reads the ETag back.
fn etag_or_ambiguous(e: Option<&str>) -> Result<String, StoreError> {
    match e {
        Some(e) if !e.is_empty() => Ok(super::normalize_etag(e)),
        _ => Err(StoreError::Transient(
            "the store accepted the write but returned no ETag".into(),
        )),
    }
}

/// This instance's id from EC2 instance metadata (IMDSv2), within 5 s.
/// Honours AWS_EC2_METADATA_SERVICE_ENDPOINT like the rest of the SDK.
pub async fn ec2_instance_id() -> Result<String, String> {
    // As the SDK's own credential and region providers do: never contact
    // the metadata address when told not to.
    if std::env::var("AWS_EC2_METADATA_DISABLED")
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Err("AWS_EC2_METADATA_DISABLED=true forbids asking instance metadata".into());
    }
    let client = aws_config::imds::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .max_attempts(2)
        .build();
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.get("/latest/meta-data/instance-id"),
    )
    .await
    {
        Ok(Ok(id)) => Ok(id.as_ref().trim().to_string()),
        Ok(Err(e)) => Err(format!(
            "cannot read the instance id from instance metadata ({})",
            one_line(&e)
        )),
        Err(_) => Err("instance metadata did not answer within 5s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_smithy_types::body::SdkBody;

    fn answer(status: u16, err: GetObjectError) -> SdkError<GetObjectError, HttpResponse> {
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    fn coded(code: &str) -> GetObjectError {
        GetObjectError::generic(ErrorMetadata::builder().code(code).build())
    }

    /// "The key is missing" is the typed error or a bare 404, never a
    /// missing bucket, a refusal or a failure to get an answer.
    #[test]
    fn a_missing_key_is_told_from_a_missing_bucket_and_other_errors() {
        let typed = |e: &GetObjectError| e.is_no_such_key();
        let no_such_key = || GetObjectError::NoSuchKey(NoSuchKey::builder().build());
        assert!(is_missing_key(&answer(404, no_such_key()), typed));
        // The typed error counts whatever status came with it.
        assert!(is_missing_key(&answer(400, no_such_key()), typed));
        assert!(is_missing_key(&answer(404, coded("")), typed));
        assert!(is_missing_key(&answer(404, coded("NotFound")), typed));
        assert!(!is_missing_key(&answer(404, coded("NoSuchBucket")), typed));
        assert!(!is_missing_key(&answer(403, coded("AccessDenied")), typed));
        assert!(!is_missing_key(&answer(500, coded("")), typed));
        let never: SdkError<GetObjectError, HttpResponse> =
            SdkError::timeout_error("no answer".to_string());
        assert!(!is_missing_key(&never, typed));
    }
}
