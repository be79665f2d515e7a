//! Logs: `tracing` to stderr, as text or JSON, with a `target=level` filter.
//!
//! Every state change is one INFO/WARN line with a stable `event` field
//! (documented in the README); routine renewals are DEBUG.

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Set up `tracing`. The filter syntax is `target=level,...,default_level`
/// (e.g. `s3_elector=debug,info`); a bad filter is reported on stderr and
/// `info` is used instead.
pub fn init(format: LogFormat, filter: &str) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let targets: Targets = filter.parse().unwrap_or_else(|e| {
        eprintln!(
            "s3-elector: --log / S3_ELECTOR_LOG `{filter}` is not a log filter ({e}); write e.g. `info` or `s3_elector=debug,info`. Using `info`."
        );
        Targets::new().with_default(tracing::Level::INFO)
    });
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_filter(targets))
            .init(),
        LogFormat::Text => registry.with(layer.with_filter(targets)).init(),
    }
}
