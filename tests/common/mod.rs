//! Shared helpers for the integration tests: a `weft` binary bound to a fresh database in a
//! temporary directory, and small readers for the run record it prints.
//!
//! Each test file uses only some of these helpers.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The `weft` binary under test.
pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// The repository root, where `examples/` lives.
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The directory of every built plugin, test-only ones (`hostile.wasm`) included.
pub const PLUGIN_DIR: &str = env!("WEFT_PLUGIN_DIR");

/// How long any one `weft` command may run before the test calls it a hang. Far above what
/// any command here needs; it only keeps a hung command from hanging the test suite.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// Reads a child's pipe to the end on its own thread, so a full pipe never blocks the child.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// What one `weft` command did.
#[derive(Debug)]
pub struct Output {
    /// The exit code; -1 if the process was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics, showing everything the command printed, unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Output {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Stdout parsed as JSON (the run record of a `--json` command).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics unless stderr contains every one of `needles`.
    #[track_caller]
    pub fn expect_stderr(&self, needles: &[&str]) -> &Output {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr does not contain {needle:?}\n--- stderr\n{}\n--- stdout\n{}",
                self.stderr,
                self.stdout
            );
        }
        self
    }
}

/// A `weft` with its own database file in its own temporary directory.
pub struct Weft {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

impl Default for Weft {
    fn default() -> Self {
        Weft::new()
    }
}

impl Weft {
    pub fn new() -> Weft {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let db = dir.path().join("weft.redb");
        Weft { dir, db }
    }

    /// A `weft` command with `args`, then `--db` this database, stdin closed, run in the
    /// temporary directory. `WEFT_DB` and `WEFT_LOG` from the caller's environment are removed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(WEFT);
        command
            .args(args)
            .arg("--db")
            .arg(&self.db)
            .current_dir(self.dir.path())
            .env_remove("WEFT_DB")
            .env_remove("WEFT_LOG")
            .stdin(Stdio::null());
        command
    }

    /// Runs `weft ARGS --db DB` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(self.dir.path(), args)
    }

    /// Runs `weft ARGS --db DB` to completion in `cwd`. A command still running after
    /// [`HANG_GUARD`] is killed and the test fails: that is a hang, not a slow machine.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut child = self
            .command(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {WEFT}: {e}"));
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("cannot wait for weft") {
                break Some(status);
            }
            if started.elapsed() > HANG_GUARD {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = Output {
            code: status.and_then(|s| s.code()).unwrap_or(-1),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        };
        assert!(
            status.is_some(),
            "weft {args:?} hung: still running after {HANG_GUARD:?}, killed\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout,
            out.stderr
        );
        out
    }

    /// Runs `weft ARGS --db DB` and parses its stdout as JSON, whatever the exit code.
    pub fn json(&self, args: &[&str]) -> Value {
        self.run(args).json()
    }

    /// Spawns `weft ARGS --db DB` with stderr piped, for tests that watch it as it runs.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {WEFT}: {e}"))
    }

    /// Writes `yaml` to `name` in the temporary directory.
    pub fn write_workflow(&self, name: &str, yaml: &str) -> PathBuf {
        self.write_file(name, yaml.as_bytes())
    }

    /// Writes `bytes` to `name` in the temporary directory.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut file = std::fs::File::create(&path).expect("cannot create a file in the temporary directory");
        file.write_all(bytes)
            .expect("cannot write a file in the temporary directory");
        path
    }

    /// `weft run FILE --json EXTRA...`: the command's output and the run record it printed.
    pub fn start(&self, file: &Path, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["run", path_str(file), "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let record = out.json();
        (out, record)
    }

    /// `weft runs show ID --json`.
    pub fn show(&self, id: &str) -> Output {
        self.run(&["runs", "show", id, "--json"])
    }

    /// The run record as stored now.
    #[track_caller]
    pub fn record(&self, id: &str) -> Value {
        self.show(id).json()
    }

    /// `weft answer ID SIGNAL DATA --as WHO --json`.
    pub fn answer(&self, id: &str, signal: &str, data: &str, who: &str) -> Output {
        self.run(&["answer", id, signal, data, "--as", who, "--json"])
    }

    /// Adds the test-only `hostile` plugin as hostile@1.0.0.
    pub fn add_hostile(&self) -> Output {
        let file = hostile_wasm();
        self.run(&[
            "plugin",
            "add",
            path_str(&file),
            "--name",
            "hostile",
            "--version",
            "1.0.0",
        ])
    }
}

/// The hostile plugin's component file.
pub fn hostile_wasm() -> PathBuf {
    Path::new(PLUGIN_DIR).join("hostile.wasm")
}

/// A path as `&str` (test paths are always UTF-8).
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The run id of a record.
#[track_caller]
pub fn run_id(record: &Value) -> String {
    record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("record has no id: {record:#}"))
        .to_owned()
}

/// The record's state (`completed`, `waiting`, ...).
#[track_caller]
pub fn state(record: &Value) -> &str {
    record["state"]
        .as_str()
        .unwrap_or_else(|| panic!("record has no state: {record:#}"))
}

/// The step called `name` in a run record.
#[track_caller]
pub fn step<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in record {record:#}"))
}

/// A step's state.
#[track_caller]
pub fn step_state<'a>(record: &'a Value, name: &str) -> &'a str {
    step(record, name)["state"]
        .as_str()
        .expect("a step's state is a string")
}

/// An RFC 3339 time from a record.
#[track_caller]
pub fn time(value: &Value) -> OffsetDateTime {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time {text:?}: {e}"))
}

/// Sleeps until the wall clock is past `deadline`.
pub fn sleep_past(deadline: OffsetDateTime) {
    loop {
        let left = deadline - OffsetDateTime::now_utc();
        if left.is_negative() {
            return;
        }
        std::thread::sleep(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(20));
    }
}
