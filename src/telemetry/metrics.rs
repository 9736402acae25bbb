//! The process's Prometheus metrics, all named `weft_*`, served by `GET /metrics`.
//!
//! One registry per process (a process is one runner): the store writers run on threads of
//! their own and the plugin host is shared by every engine in the process, so they report
//! here rather than through a handle passed down to each. Counters count what this runner
//! did; the gauges of the shared database ([`Backlog`]) are read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkflowLabels {
    pub workflow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    pub workflow: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeletedLabels {
    pub workflow: String,
    /// `retention` (its time ran out), `purge` (`weft runs purge`) or `delete` (one run).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric; see the README's "Metrics" for what each means.
pub struct Metrics {
    registry: Registry,
    pub runs_started: Family<WorkflowLabels, Counter>,
    pub runs_finished: Family<FinishedLabels, Counter>,
    pub runs_deleted: Family<DeletedLabels, Counter>,
    pub step_duration: Histograms<PluginLabels>,
    pub answer_wait: Histogram,
    pub plugin_compile: Histogram,
    pub store_commit: Histograms<BackendLabels>,
    pub store_batch: Histograms<BackendLabels>,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Histograms<RouteLabels>,
    runs_waiting: Gauge,
    outbox_backlog: Gauge,
}

/// What waits in the database, read when the metrics are scraped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Backlog {
    /// Runs waiting for a person.
    pub waiting_runs: u64,
    /// Events in the outbox not delivered yet.
    pub outbox: u64,
}

fn step_buckets() -> Histogram {
    // 100 µs to about 26 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

fn commit_buckets() -> Histogram {
    // 100 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

fn batch_buckets() -> Histogram {
    // 1 to 16,384 writes.
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

fn request_buckets() -> Histogram {
    // 250 µs to about 8 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("weft");
        let runs_started = Family::<WorkflowLabels, Counter>::default();
        registry.register(
            "runs_started",
            "Runs started by this runner, by workflow",
            runs_started.clone(),
        );
        let runs_finished = Family::<FinishedLabels, Counter>::default();
        registry.register(
            "runs_finished",
            "Runs that finished on this runner, by workflow and final state",
            runs_finished.clone(),
        );
        let runs_deleted = Family::<DeletedLabels, Counter>::default();
        registry.register(
            "runs_deleted",
            "Finished runs this runner deleted with their logs, by workflow and reason",
            runs_deleted.clone(),
        );
        let step_duration: Histograms<PluginLabels> = Family::new_with_constructor(step_buckets);
        registry.register_with_unit(
            "step_duration",
            "How long step plugin calls (run and resume) took, by plugin",
            Unit::Seconds,
            step_duration.clone(),
        );
        // One second to a week: people answer in minutes or days.
        let answer_wait =
            Histogram::new([1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0, 604800.0]);
        registry.register_with_unit(
            "answer_wait",
            "Time from an interaction's creation to the answer that ended it",
            Unit::Seconds,
            answer_wait.clone(),
        );
        // 10 ms to about 40 s.
        let plugin_compile = Histogram::new(exponential_buckets(0.01, 2.0, 13));
        registry.register_with_unit(
            "plugin_compile",
            "How long compiling a plugin component took (cache misses only)",
            Unit::Seconds,
            plugin_compile.clone(),
        );
        let store_commit: Histograms<BackendLabels> = Family::new_with_constructor(commit_buckets);
        registry.register_with_unit(
            "store_commit",
            "How long one store transaction (a group commit) took, until durable",
            Unit::Seconds,
            store_commit.clone(),
        );
        let store_batch: Histograms<BackendLabels> = Family::new_with_constructor(batch_buckets);
        registry.register(
            "store_commit_writes",
            "Writes in one store transaction (a group commit)",
            store_batch.clone(),
        );
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let http_duration: Histograms<RouteLabels> = Family::new_with_constructor(request_buckets);
        registry.register_with_unit(
            "http_request_duration",
            "How long HTTP requests took to answer, by route",
            Unit::Seconds,
            http_duration.clone(),
        );
        let runs_waiting = Gauge::default();
        registry.register(
            "runs_waiting",
            "Runs waiting for a person (an interaction or approval), in the whole database",
            runs_waiting.clone(),
        );
        let outbox_backlog = Gauge::default();
        registry.register(
            "outbox_backlog",
            "Events committed but not yet delivered to action targets, in the whole database",
            outbox_backlog.clone(),
        );
        Metrics {
            registry,
            runs_started,
            runs_finished,
            runs_deleted,
            step_duration,
            answer_wait,
            plugin_compile,
            store_commit,
            store_batch,
            http_requests,
            http_duration,
            runs_waiting,
            outbox_backlog,
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads), with the
    /// database's `backlog` as of now.
    pub fn encode(&self, backlog: Backlog) -> String {
        self.runs_waiting
            .set(i64::try_from(backlog.waiting_runs).unwrap_or(i64::MAX));
        self.outbox_backlog
            .set(i64::try_from(backlog.outbox).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Records one store transaction of `writes` writes that took `elapsed`.
    pub fn store_committed(&self, backend: &str, writes: usize, elapsed: Duration) {
        let labels = BackendLabels {
            backend: backend.to_owned(),
        };
        self.store_commit
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.store_batch.get_or_create(&labels).observe(writes as f64);
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}
