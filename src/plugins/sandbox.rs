//! One call's sandbox: a fresh wasmtime `Store` holding everything the call may touch on the
//! host, each bounded. The WASI context grants nothing unless the plugin's grant says so;
//! the resource table (streams, HTTP fields, requests) has a maximum size; HTTP header fields
//! and outgoing body chunks are capped; log lines are counted and cut by lines and bytes; and
//! outbound HTTP is refused unless a grant rule allows it. Memory and time are enforced by
//! the limiter and the epoch deadline set when the sandbox is built.

use super::bindings::step::weft::plugin::{host, types};
use super::grants::{self, Grant, HttpRule};
use super::limits::{CallLimiter, DeadlineExceeded};
use super::{Limits, Loaded, PluginLog};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::UpdateDeadline;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes of one log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 8 * 1024;
/// Bytes of each outgoing HTTP body write; with one chunk buffered, what a body can hold.
const HTTP_BODY_CHUNK: usize = 64 * 1024;

/// What one call may create on the host, from [`crate::limits::Limits`].
#[derive(Clone, Copy, Debug)]
pub struct HostCaps {
    pub resources: usize,
    pub http_fields_bytes: usize,
    pub log_lines: usize,
    pub log_bytes: usize,
}

impl HostCaps {
    pub fn from(limits: &crate::limits::Limits) -> HostCaps {
        HostCaps {
            resources: limits.plugin_resources,
            http_fields_bytes: limits.plugin_http_fields_kb << 10,
            log_lines: limits.plugin_log_lines,
            log_bytes: limits.plugin_log_kb << 10,
        }
    }
}

/// Per-call state inside a wasmtime `Store`.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: CallLimiter,
    logs: CallLog,
    /// Secrets granted to this plugin, by name.
    secrets: HashMap<String, String>,
    /// Secrets granted to this plugin that this runner has no value for.
    missing_secrets: Vec<String>,
    http: wasmtime_wasi_http::WasiHttpCtx,
    outbound: Outbound,
    /// The template engine's progress: the source it was reading last.
    pub(super) reading: Option<u32>,
}

impl CallState {
    /// A state with nothing granted, the caps given, and a memory cap of `memory_bytes`.
    pub fn new(grant: &Grant, caps: HostCaps, memory_bytes: usize) -> CallState {
        let mut wasi = WasiCtx::builder();
        wasi.envs(&grant.env);
        let mut table = ResourceTable::new();
        table.set_max_capacity(caps.resources);
        let mut http = wasmtime_wasi_http::WasiHttpCtx::new();
        http.set_field_size_limit(caps.http_fields_bytes);
        CallState {
            wasi: wasi.build(),
            table,
            limiter: CallLimiter::new(memory_bytes),
            logs: CallLog {
                lines: Vec::new(),
                bytes: 0,
                dropped: 0,
                caps,
            },
            secrets: grant.secrets.clone(),
            missing_secrets: grant.missing_secrets.clone(),
            http,
            outbound: Outbound {
                rules: grant.http.clone(),
                denied: Vec::new(),
            },
            reading: None,
        }
    }
}

/// The log lines of one call, within its caps.
struct CallLog {
    lines: Vec<PluginLog>,
    bytes: usize,
    /// Lines left out because a cap was reached.
    dropped: usize,
    caps: HostCaps,
}

impl CallLog {
    fn push(&mut self, level: &'static str, message: String) {
        // Copy the kept part: truncating in place would keep the whole allocation alive.
        let kept = if message.len() > MAX_LOG_LINE {
            crate::limits::clip_to(&message, MAX_LOG_LINE)
        } else {
            message
        };
        if self.lines.len() >= self.caps.log_lines || self.bytes + kept.len() > self.caps.log_bytes {
            self.dropped += 1;
            return;
        }
        self.bytes += kept.len();
        self.lines.push(PluginLog { level, message: kept });
    }
}

/// Outbound HTTP for one call: allowed only where the plugin's grant says.
struct Outbound {
    rules: Vec<HttpRule>,
    /// Requests refused, for the run's log.
    denied: Vec<String>,
}

impl wasmtime_wasi_http::WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = std::result::Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16();
        let method = request.method().clone();
        if !self.rules.iter().any(|r| r.allows(&method, &host, port)) {
            let target = format!("{method} {}", uri.authority().map(|a| a.as_str()).unwrap_or("?"));
            if self.denied.len() < 100 {
                self.denied.push(format!(
                    "outbound HTTP denied: {} is not in this plugin's grant",
                    crate::limits::clip(&target)
                ));
            }
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        HTTP_BODY_CHUNK
    }
}

impl wasmtime_wasi_http::WasiHttpView for CallState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for CallState {}

impl super::bindings::templates::weft::templates::progress::Host for CallState {
    fn reading(&mut self, index: u32) {
        self.reading = Some(index);
    }
}

impl host::Host for CallState {
    fn log(&mut self, level: host::Level, message: String) {
        let level = match level {
            host::Level::Trace => "trace",
            host::Level::Debug => "debug",
            host::Level::Info => "info",
            host::Level::Warn => "warn",
            host::Level::Error => "error",
        };
        self.logs.push(level, message);
    }

    fn secret(&mut self, name: String) -> Option<String> {
        if self.missing_secrets.contains(&name) {
            self.logs.push(
                "warn",
                format!(
                    "secret {name} is granted, but this runner has no value for it: add it under \
                     [secrets] in its weft.toml"
                ),
            );
        }
        self.secrets.get(&name).cloned()
    }
}

/// `weft:plugin/host@0.1.0`: the same functions as 0.2.0's.
impl super::bindings::v1::step::weft::plugin::host::Host for CallState {
    fn log(&mut self, level: super::bindings::v1::step::weft::plugin::host::Level, message: String) {
        use super::bindings::v1::step::weft::plugin::host::Level as V1;
        let level = match level {
            V1::Trace => host::Level::Trace,
            V1::Debug => host::Level::Debug,
            V1::Info => host::Level::Info,
            V1::Warn => host::Level::Warn,
            V1::Error => host::Level::Error,
        };
        host::Host::log(self, level, message);
    }

    fn secret(&mut self, name: String) -> Option<String> {
        host::Host::secret(self, name)
    }
}

/// One call's sandbox: a fresh wasmtime store with the grant, caps, memory cap and deadline,
/// and the permits the call counts against until it is dropped.
pub struct Sandbox<'host> {
    pub store: wasmtime::Store<CallState>,
    pub loaded: Arc<Loaded>,
    /// The call's limits, tightened by the plugin's grant.
    pub limits: Limits,
    /// Granted secrets, masked in everything the plugin returns.
    pub secrets: HashMap<String, String>,
    pub _permit: tokio::sync::SemaphorePermit<'host>,
    pub _plugin_permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Sandbox<'_> {
    /// Builds the store for one call of `loaded` under `grant`, `caps` and `limits`.
    pub fn build<'host>(
        engine: &wasmtime::Engine,
        loaded: Arc<Loaded>,
        grant: Grant,
        caps: HostCaps,
        limits: Limits,
        permit: tokio::sync::SemaphorePermit<'host>,
        plugin_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Sandbox<'host> {
        let limits = Limits {
            memory_bytes: grant
                .memory_bytes
                .map_or(limits.memory_bytes, |m| m.min(limits.memory_bytes)),
            max_output_bytes: grant
                .max_output_bytes
                .map_or(limits.max_output_bytes, |m| m.min(limits.max_output_bytes)),
            ..limits
        };
        let mut store = wasmtime::Store::new(engine, CallState::new(&grant, caps, limits.memory_bytes));
        store.limiter(|s| &mut s.limiter);
        let deadline = Instant::now() + limits.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(DeadlineExceeded.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Sandbox {
            store,
            loaded,
            limits,
            secrets: grant.secrets,
            _permit: permit,
            _plugin_permit: plugin_permit,
        }
    }

    /// The plugin's log lines, its refused requests and what was dropped, with granted
    /// secrets masked.
    pub fn logs(&mut self) -> Vec<PluginLog> {
        let state = self.store.data_mut();
        let denied = state.outbound.denied.drain(..).map(|message| PluginLog {
            level: "warn",
            message,
        });
        let mut logs: Vec<PluginLog> = std::mem::take(&mut state.logs.lines);
        logs.extend(denied);
        if state.logs.dropped > 0 {
            logs.push(PluginLog {
                level: "warn",
                message: format!(
                    "{} more log lines of this call were dropped: a call may log {} lines and {} KiB \
                     (limits.plugin_log_lines, limits.plugin_log_kb)",
                    state.logs.dropped,
                    state.logs.caps.log_lines,
                    state.logs.caps.log_bytes >> 10
                ),
            });
        }
        for line in &mut logs {
            line.message = grants::scrub(&line.message, &self.secrets);
        }
        logs
    }
}
