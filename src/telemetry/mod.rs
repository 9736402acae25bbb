//! What an operator sees of a running Weft: logs on stderr (text on a terminal, JSON lines
//! with `--log-format json`), Prometheus metrics ([`metrics`]) and OpenTelemetry traces over
//! OTLP ([`traces`]).
//!
//! It owns the process's log subscriber, the metrics registry and the trace exporter. The
//! engine, the store writers, the plugin host and the API report to it; it reads nothing of
//! theirs, reaches no store and decides nothing.

pub mod metrics;
pub mod traces;

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event (colored only on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The format chosen at start-up, for [`announce`].
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Keeps the trace exporter alive; dropping it sends the spans still buffered.
pub struct Guard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: cannot send the last trace spans: {e}");
            }
        }
    }
}

/// Installs the log subscriber: events pass the `WEFT_LOG` filter (`EnvFilter` syntax, such
/// as `info` or `warn,weft::api=debug`), or `default_filter` without it. With an OTLP
/// endpoint, spans at info and above of this crate are also exported as traces (whatever
/// `WEFT_LOG` says). Call before the async runtime starts.
pub fn init(format: LogFormat, default_filter: &str, otlp_endpoint: Option<&str>) -> anyhow::Result<Guard> {
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::stderr().is_terminal();
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_filter(filter)
            .boxed(),
    };
    let (spans, provider) = match otlp_endpoint {
        Some(endpoint) => {
            let provider = traces::start(endpoint)?;
            let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "weft");
            let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(
                tracing_subscriber::filter::Targets::new().with_target("weft", tracing::Level::INFO),
            );
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))?;
    Ok(Guard { provider })
}

/// Writes a line meant for whoever started the process (where the server listens, that it
/// runs in local mode), whatever `WEFT_LOG` filters: as is in text, as an event in JSON.
pub fn announce(level: tracing::Level, message: &str) {
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => eprintln!("{message}"),
        LogFormat::Json => {
            let at = crate::run::rfc3339(crate::run::now());
            let line = serde_json::json!({
                "timestamp": at,
                "level": level.as_str(),
                "message": message,
                "target": "weft",
            });
            eprintln!("{line}");
        }
    }
}
