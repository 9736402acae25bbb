//! Every size, depth, time and count the server bounds, in one place, with its default.
//!
//! No input (a request, a definition, a template, a plugin, a slow client) may crash, stall
//! or bloat the server, so each kind of input has a limit here; the README's "Limits" section
//! lists them. `[limits]` in `weft.toml` changes any of them:
//!
//! ```toml
//! [limits]
//! steps = 2000
//! template_timeout = "2s"
//! compile_memory_mb = 4096
//! ```

use serde::Deserialize;
use std::time::Duration;

/// The server's limits. Field names are the `weft.toml` keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    // Requests and connections.
    /// Largest request body, MiB (also `weft serve --body-limit-mb`).
    pub body_mb: usize,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Time a connection may go without delivering a whole request head: a client sending
    /// its headers slowly, or a kept-alive connection sitting idle between requests.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Time a client has to send a request's body.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Time parsing and validating one definition or bundle may take.
    #[serde(with = "humantime_serde")]
    pub validation_timeout: Duration,

    // Workflow definitions.
    /// Largest definition text, KiB.
    pub definition_kb: usize,
    /// Deepest nesting of lists and maps in a definition (or any JSON body).
    pub nesting_depth: usize,
    /// Most steps in one workflow.
    pub steps: usize,
    /// Most declared inputs of one workflow.
    pub inputs: usize,
    /// Longest template string or expression, KiB.
    pub template_kb: usize,
    /// Most items one `for_each` step maps over.
    pub for_each_items: usize,
    /// Most items of one `for_each` step under way at once (its `concurrency`).
    pub for_each_concurrency: usize,
    /// Deepest chain of sub-workflows (a run, its child, the child's child, ...).
    pub workflow_depth: usize,

    // Events and schedules.
    /// How long a received event is kept for steps that start waiting later (the longest
    /// `lookback` a step may ask for).
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
    /// Largest `data` of one event, KiB.
    pub event_data_kb: usize,
    /// Most schedules in the database.
    pub schedules: usize,
    /// Shortest `every` of a schedule (a cron fires at most once a minute).
    #[serde(with = "humantime_serde")]
    pub schedule_min_interval: Duration,

    // Templates, evaluated in the sandbox.
    /// Time one template evaluation may take.
    #[serde(with = "humantime_serde")]
    pub template_timeout: Duration,
    /// Memory one template evaluation may use, MiB (bounds every value it builds).
    pub template_memory_mb: usize,
    /// Largest value a template may render (a step's input, a run's outputs), KiB.
    pub template_output_kb: usize,

    // Plugins.
    /// Host resources (streams, HTTP fields, requests) one plugin call may hold at once.
    pub plugin_resources: usize,
    /// Bytes of HTTP header fields in one wasi:http `fields`, KiB.
    pub plugin_http_fields_kb: usize,
    /// Log lines one plugin call may write; later ones are dropped and counted.
    pub plugin_log_lines: usize,
    /// Bytes of log one plugin call may write, KiB; each line is cut at 8 KiB.
    pub plugin_log_kb: usize,
    /// Time one plugin compile may take.
    #[serde(with = "humantime_serde")]
    pub compile_timeout: Duration,
    /// Memory one plugin compile may use, MiB.
    pub compile_memory_mb: usize,
    /// Plugin compiles under way at once; further uploads wait.
    pub compile_concurrency: usize,
    /// How long an upload waits for its compile before answering 202 and compiling on.
    #[serde(with = "humantime_serde")]
    pub upload_wait: Duration,
    /// Largest JSON Schema a plugin's `describe` may return (each of input, output,
    /// config), KiB; its nesting is bounded by `nesting_depth`.
    pub plugin_schema_kb: usize,

    // The browser UI.
    /// How long a browser session lasts after signing in, however active it is.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_mb: 50,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            validation_timeout: Duration::from_secs(10),
            definition_kb: 1024,
            nesting_depth: 128,
            steps: 1000,
            inputs: 256,
            template_kb: 64,
            for_each_items: 100_000,
            for_each_concurrency: 256,
            workflow_depth: 16,
            event_retention: Duration::from_secs(3600),
            event_data_kb: 64,
            schedules: 1000,
            schedule_min_interval: Duration::from_secs(1),
            template_timeout: Duration::from_secs(1),
            template_memory_mb: 64,
            template_output_kb: 4096,
            plugin_resources: 256,
            plugin_http_fields_kb: 32,
            plugin_log_lines: 1000,
            plugin_log_kb: 1024,
            compile_timeout: Duration::from_secs(300),
            compile_memory_mb: 4096,
            compile_concurrency: 2,
            upload_wait: Duration::from_secs(2),
            plugin_schema_kb: 256,
            session_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

impl Limits {
    /// Checks that every limit is usable; a zero would refuse everything.
    pub fn check(&self) -> Result<(), String> {
        let counts = [
            ("body_mb", self.body_mb),
            ("max_connections", self.max_connections),
            ("definition_kb", self.definition_kb),
            ("nesting_depth", self.nesting_depth),
            ("steps", self.steps),
            ("template_kb", self.template_kb),
            ("for_each_items", self.for_each_items),
            ("for_each_concurrency", self.for_each_concurrency),
            ("workflow_depth", self.workflow_depth),
            ("event_data_kb", self.event_data_kb),
            ("schedules", self.schedules),
            ("template_memory_mb", self.template_memory_mb),
            ("template_output_kb", self.template_output_kb),
            ("plugin_resources", self.plugin_resources),
            ("plugin_http_fields_kb", self.plugin_http_fields_kb),
            ("compile_memory_mb", self.compile_memory_mb),
            ("compile_concurrency", self.compile_concurrency),
            ("plugin_schema_kb", self.plugin_schema_kb),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(format!("limits.{name} must be at least 1"));
            }
        }
        let times = [
            ("idle_timeout", self.idle_timeout),
            ("body_timeout", self.body_timeout),
            ("validation_timeout", self.validation_timeout),
            ("template_timeout", self.template_timeout),
            ("compile_timeout", self.compile_timeout),
            ("session_lifetime", self.session_lifetime),
            ("event_retention", self.event_retention),
            ("schedule_min_interval", self.schedule_min_interval),
        ];
        for (name, value) in times {
            if value.is_zero() {
                return Err(format!("limits.{name} must be longer than 0s"));
            }
        }
        Ok(())
    }

    pub fn body_bytes(&self) -> usize {
        self.body_mb << 20
    }
}

/// Items one inbox page shows (the browser UI); older ones are on the next pages.
pub const INBOX_PAGE: usize = 50;

/// Waiting runs the inbox counts for its title; past this it says "100+".
pub const INBOX_COUNT: usize = 100;

/// Runs one page of the browser's run list shows.
pub const RUNS_PAGE: usize = 50;

/// Log lines a run page shows (the newest); the whole log is a download.
pub const RUN_PAGE_LOG_LINES: usize = 1000;

/// Steps a run page draws in its graph; a larger workflow is shown as a table only.
pub const GRAPH_STEPS: usize = 300;

/// How long one live-update stream of the browser UI stays open; the browser then opens
/// another.
pub const LIVE_STREAM: Duration = Duration::from_secs(600);

/// Longest text of one answered value kept in a run's record for showing who answered
/// what; longer text is cut there (the plugin got all of it).
pub const ANSWER_VALUE_BYTES: usize = 1024;

/// Longest message (or piece of input quoted in one) an error carries, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `text`, cut at [`MAX_MESSAGE_BYTES`] with a note of how much was left out: an error must
/// never echo more than a bounded part of its input.
pub fn clip(text: &str) -> String {
    clip_to(text, MAX_MESSAGE_BYTES)
}

/// `text`, cut at `max` bytes (on a character boundary) with a note of what was left out.
pub fn clip_to(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…({} more bytes)", &text[..cut], text.len() - cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_clipped_on_a_character_boundary() {
        let text = "é".repeat(1000);
        let clipped = clip(&text);
        assert!(clipped.len() < MAX_MESSAGE_BYTES + 40, "{}", clipped.len());
        assert!(clipped.ends_with("…(976 more bytes)"), "{clipped}");
        assert_eq!(clip("short"), "short");
    }
}
