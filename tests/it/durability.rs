//! What survives the process: interaction expiry fired by a later `weft resume` or
//! `weft answer`, and a run killed with SIGKILL in the middle of a plugin call.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::sync::mpsc;

/// An approval that expires after one second, then a step that shows how it ended.
fn expiring(on_expiry: &str) -> String {
    format!(
        r#"
id: expiring
steps:
  - name: Approve
    plugin: approval
    input: {{expires_in: 1s, on_expiry: {on_expiry}}}
  - name: After
    plugin: echo
    input: {{expired: "{{{{ steps.Approve.output.expired }}}}"}}
outputs:
  expired: "{{{{ steps.After.output.expired }}}}"
"#
    )
}

/// Starts `yaml` (which must wait), then sleeps until its waiting step's `expires_at` has
/// passed. Returns the run id.
fn start_and_let_expire(weft: &Weft, yaml: &str) -> String {
    let file = weft.write_workflow("expiring.yaml", yaml);
    let (out, run) = weft.start(&file, &["--as", "requester"]);
    out.expect_code(2);
    let expires_at = time(&step(&run, "Approve")["waiting"]["expires_at"]);
    let since = time(&step(&run, "Approve")["waiting"]["since"]);
    assert_eq!((expires_at - since).whole_seconds(), 1, "expires_in: 1s: {run:#}");
    sleep_past(expires_at);
    run_id(&run)
}

#[test]
fn an_expired_approval_fails_the_run_at_the_next_resume() {
    let weft = Weft::new();
    let id = start_and_let_expire(&weft, &expiring("fail"));
    // Nothing fires while no process runs.
    assert_eq!(state(&weft.record(&id)), "waiting");

    let out = weft.run(&["resume"]);
    out.expect_code(0);
    out.expect_stderr(&["fired 1 timer(s)"]);
    let shown = weft.show(&id);
    shown.expect_code(1);
    let run = shown.json();
    assert_eq!(state(&run), "failed", "{run:#}");
    let approval = step(&run, "Approve");
    assert_eq!(approval["state"], "failed");
    assert!(approval["waiting"].is_null());
    let error = approval["error"].as_str().expect("the step has an error");
    assert!(error.contains("expired with 0 of 1 approvals"), "{error}");
    assert!(
        run["error"].as_str().is_some_and(|e| e.contains("expired")),
        "{run:#}"
    );
    assert_eq!(step_state(&run, "After"), "canceled");

    // The timer is gone: a second resume fires nothing and changes nothing.
    let again = weft.run(&["resume"]);
    again.expect_code(0);
    again.expect_stderr(&["fired 0 timer(s)"]);
    assert_eq!(weft.show(&id).stdout, shown.stdout);
}

#[test]
fn an_expired_approval_with_on_expiry_approve_completes_the_run() {
    let weft = Weft::new();
    let id = start_and_let_expire(&weft, &expiring("approve"));

    let out = weft.run(&["resume"]);
    out.expect_code(0);
    out.expect_stderr(&["fired 1 timer(s)"]);
    let shown = weft.show(&id);
    let run: Value = shown.json();
    assert_eq!(state(&run), "completed", "{run:#}");
    shown.expect_code(0);
    let output = &step(&run, "Approve")["output"];
    assert_eq!(output["approved"], true);
    assert_eq!(output["expired"], true);
    assert_eq!(output["approvals"], json!([]));
    assert_eq!(step(&run, "After")["output"], json!({"expired": true}));
    assert_eq!(
        step(&run, "After")["attempt"],
        1,
        "After was never interrupted, so it ran once"
    );
    assert_eq!(run["outputs"], json!({"expired": true}));
}

#[test]
fn an_answer_after_expiry_is_refused() {
    let weft = Weft::new();
    let id = start_and_let_expire(&weft, &expiring("fail"));

    // `weft answer` fires due timers before it answers: the step has expired by then.
    let out = weft.answer(&id, "Approve.ApprovalStatus", r#"{"Approved":true}"#, "alice");
    out.expect_code(1);
    out.expect_stderr(&["step Approve is failed, not waiting", "the run is failed"]);
    let run = weft.record(&id);
    assert_eq!(state(&run), "failed", "{run:#}");
    assert_eq!(
        step(&run, "Approve")["answers"],
        json!([]),
        "the late answer was not recorded"
    );
}

/// Spawns `weft ARGS`, reads its stderr until a line contains `needle`, then kills it with
/// SIGKILL. Returns the lines read. The child is killed and reaped whatever happens.
fn kill_when(weft: &Weft, args: &[&str], needle: &str) -> Vec<String> {
    let mut child = weft.spawn(args);
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let found = loop {
        match lines.recv_timeout(HANG_GUARD) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    child.kill().expect("cannot kill weft");
    let status = child.wait().expect("cannot reap weft");
    drop(lines);
    reader.join().expect("stderr reader");
    assert!(
        found,
        "weft never printed {needle:?}; it printed:\n{}",
        seen.join("\n")
    );
    assert_eq!(
        status.code(),
        None,
        "weft exited on its own before the kill: {status:?}"
    );
    seen
}

#[test]
fn a_run_killed_mid_step_completes_after_resume() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "crash.yaml",
        r#"
id: crash
inputs:
  marker: {type: string}
steps:
  - {name: First, plugin: echo, input: {marker: "{{ inputs.marker }}"}}
  - {name: Sleepy, plugin: sleep, input: {ms: 3000, mode: timed}}
  - {name: Last, plugin: echo, input: {seen: "{{ steps.First.output.marker }}"}}
outputs:
  seen: "{{ steps.Last.output.seen }}"
"#,
    );
    let marker = "marker-7f3a9c";
    let input = format!("marker={marker}");
    let lines = kill_when(
        &weft,
        &["run", path_str(&file), "--input", &input, "--as", "tester"],
        "Sleepy started",
    );
    let id = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("run ")
                .and_then(|rest| rest.split_whitespace().next())
        })
        .unwrap_or_else(|| panic!("no `run ID ... started` line in {lines:?}"))
        .to_owned();

    // What the killed process left: First done, Sleepy marked running (committed before
    // its plugin was called).
    let shown = weft.show(&id);
    shown.expect_code(2);
    let before = shown.json();
    assert_eq!(state(&before), "running", "{before:#}");
    assert_eq!(step(&before, "First")["output"], json!({"marker": marker}));
    assert_eq!(
        step_state(&before, "Sleepy"),
        "running",
        "killed after Sleepy ended: {before:#}"
    );
    assert_eq!(step(&before, "Sleepy")["attempt"], 1);
    assert_eq!(step_state(&before, "Last"), "pending");
    let listed = weft.run(&["runs", "list", "--state", "running"]);
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);

    let out = weft.run(&["resume"]);
    out.expect_code(0);
    out.expect_stderr(&["resumed 1 run(s)"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&id) && l.contains("completed")),
        "resume did not report the run completed:\n{}",
        out.stdout
    );

    let shown = weft.show(&id);
    shown.expect_code(0);
    let run = shown.json();
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(
        step(&run, "First")["output"],
        json!({"marker": marker}),
        "First's output changed"
    );
    assert_eq!(step(&run, "First")["attempt"], 1, "First was called again");
    assert_eq!(
        step(&run, "First")["ended_at"],
        step(&before, "First")["ended_at"]
    );
    let sleepy = step(&run, "Sleepy");
    assert_eq!(sleepy["attempt"], 2, "Sleepy was mid-call, so it is called again");
    assert_eq!(sleepy["output"], json!({"slept_ms": 3000}));
    assert_eq!(step(&run, "Last")["output"], json!({"seen": marker}));
    assert_eq!(run["outputs"], json!({"seen": marker}));
    assert_eq!(run["started_by"], "tester");

    let logs = weft.run(&["runs", "show", &id, "--logs"]);
    assert!(
        logs.stdout
            .contains("was running when its runner stopped; calling it again"),
        "{}",
        logs.stdout
    );
    let list = weft.run(&["runs", "list"]);
    list.expect_code(0);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.contains(&id) && l.contains("completed")),
        "runs list does not show the run completed:\n{}",
        list.stdout
    );
    let completed = weft.json(&["runs", "list", "--state", "completed", "--json"]);
    assert_eq!(completed.as_array().map(|runs| runs.len()), Some(1));
    assert_eq!(completed[0]["id"], id.as_str());
}

#[test]
fn a_retry_scheduled_before_a_crash_happens_after_resume() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "retry-crash.yaml",
        r#"
id: retry-crash
steps:
  - name: Flaky
    plugin: fail
    input: {message: "not yet", retryable: true, until_attempt: 2}
    retry: {max_attempts: 3, backoff: 2s}
"#,
    );
    // Kill the process as soon as the first attempt's failure and its retry are committed.
    let lines = kill_when(&weft, &["run", path_str(&file)], "retrying in");
    let id = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("run ")
                .and_then(|rest| rest.split_whitespace().next())
        })
        .expect("a `run ID ... started` line")
        .to_owned();
    let before = weft.record(&id);
    assert_eq!(state(&before), "running", "{before:#}");
    let flaky = step(&before, "Flaky");
    assert_eq!(
        flaky["state"], "pending",
        "killed after the retry started: {before:#}"
    );
    assert_eq!(flaky["attempt"], 1);
    assert_eq!(flaky["error"], "not yet");
    assert!(flaky["retry_at"].is_string(), "{before:#}");

    // The retry's timer was stored: the resumed process fires it when it falls due.
    let out = weft.run(&["resume"]);
    out.expect_code(0);
    out.expect_stderr(&["resumed 1 run(s)"]);
    let run = weft.record(&id);
    assert_eq!(state(&run), "completed", "{run:#}");
    let flaky = step(&run, "Flaky");
    assert_eq!(flaky["attempt"], 2);
    assert_eq!(flaky["output"], json!({"attempt": 2}));
    assert!(
        time(&flaky["ended_at"]) >= time(&step(&before, "Flaky")["retry_at"]),
        "the retry ran before its backoff ended: {run:#}"
    );
}
