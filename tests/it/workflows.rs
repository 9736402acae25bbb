//! Workflows without people: ordering, references, DAGs, `when`, retries, validation, and the
//! example from the documentation. Every test drives the real `weft` binary.

use crate::common::*;
use serde_json::json;
use std::path::Path;

#[test]
fn sequential_steps_pass_outputs_along() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "sequential.yaml",
        r#"
id: sequential
inputs:
  name: {type: string}
steps:
  - name: Greet
    plugin: echo
    input: {greeting: "hello {{ inputs.name }}", n: 3}
  - name: Shape
    plugin: transform
    input:
      data: {g: "{{ steps.Greet.output.greeting }}", n: "{{ steps.Greet.output.n }}"}
      template: {upper: "${ g | upper }", twice: "${ n * 2 }"}
  - name: Report
    plugin: echo
    input: {message: "{{ steps.Shape.output.upper }}", twice: "{{ steps.Shape.output.twice }}"}
outputs:
  message: "{{ steps.Report.output.message }}"
  twice: "{{ steps.Report.output.twice }}"
"#,
    );
    let (out, run) = weft.start(&file, &["--input", "name=world", "--as", "tester"]);
    out.expect_code(0);
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(run["outputs"], json!({"message": "HELLO WORLD", "twice": 6}));
    assert_eq!(
        step(&run, "Greet")["output"],
        json!({"greeting": "hello world", "n": 3})
    );
    assert_eq!(
        step(&run, "Shape")["output"],
        json!({"upper": "HELLO WORLD", "twice": 6})
    );
    for name in ["Greet", "Shape", "Report"] {
        assert_eq!(step_state(&run, name), "completed");
        assert_eq!(step(&run, name)["attempt"], 1, "{name}");
    }
    assert_eq!(run["started_by"], "tester");
    assert!(run["error"].is_null());
    // Without `needs`, each step starts only after the one before it ended.
    for (before, after) in [("Greet", "Shape"), ("Shape", "Report")] {
        assert!(
            time(&step(&run, after)["started_at"]) >= time(&step(&run, before)["ended_at"]),
            "{after} started before {before} ended: {run:#}"
        );
    }
    // The stored record is the one printed.
    assert_eq!(weft.record(&run_id(&run)), run);
}

#[test]
fn independent_branches_of_a_dag_run_at_once() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "dag.yaml",
        r#"
id: dag
steps:
  - {name: A, plugin: echo, input: {v: a}}
  - {name: B, plugin: sleep, needs: [A], input: {ms: 300, mode: timed}}
  - {name: C, plugin: sleep, needs: [A], input: {ms: 300, mode: timed}}
  - name: D
    plugin: echo
    needs: [B, C]
    input: {b: "{{ steps.B.output.slept_ms }}", c: "{{ steps.C.output.slept_ms }}"}
outputs:
  d: "{{ steps.D.output }}"
"#,
    );
    let (out, run) = weft.start(&file, &[]);
    out.expect_code(0);
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(run["outputs"], json!({"d": {"b": 300, "c": 300}}));

    let started = |name: &str| time(&step(&run, name)["started_at"]);
    let ended = |name: &str| time(&step(&run, name)["ended_at"]);
    // B and C waited for A; D waited for both.
    for branch in ["B", "C"] {
        assert!(
            started(branch) >= ended("A"),
            "{branch} started before A ended: {run:#}"
        );
        assert!(
            started("D") >= ended(branch),
            "D started before {branch} ended: {run:#}"
        );
    }
    // Each branch started before the other ended: neither waited for the other.
    assert!(
        started("B") < ended("C") && started("C") < ended("B"),
        "B and C did not overlap: {run:#}"
    );
    // The plugin calls themselves overlapped: each call lies inside its step's
    // [started_at, ended_at], so two calls one after the other would span at least the sum
    // of their busy times.
    let span = (ended("B").max(ended("C")) - started("B").min(started("C"))).as_seconds_f64() * 1000.0;
    let busy = |name: &str| step(&run, name)["busy_ms"].as_u64().expect("busy_ms is a number") as f64;
    assert!(
        busy("B") + busy("C") > span,
        "the calls of B and C did not overlap: busy {} + {} ms within a span of {span} ms",
        busy("B"),
        busy("C")
    );
}

#[test]
fn when_skips_a_step_and_later_steps_still_run() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "when.yaml",
        r#"
id: when
inputs:
  mode: {type: string, default: fast}
steps:
  - {name: Decide, plugin: echo, input: {mode: "{{ inputs.mode }}"}}
  - name: SlowPath
    plugin: echo
    when: "steps.Decide.output.mode == 'slow'"
    input: {path: slow}
  - name: FastPath
    plugin: echo
    needs: [Decide]
    when: "steps.Decide.output.mode == 'fast'"
    input: {path: fast}
  - name: Finish
    plugin: echo
    needs: [SlowPath, FastPath]
    input: {slow: "{{ steps.SlowPath.state }}", fast: "{{ steps.FastPath.state }}"}
outputs:
  finish: "{{ steps.Finish.output }}"
"#,
    );

    let (out, run) = weft.start(&file, &[]);
    out.expect_code(0);
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(step_state(&run, "SlowPath"), "skipped");
    assert_eq!(
        step(&run, "SlowPath")["attempt"],
        0,
        "a skipped step is never called"
    );
    assert!(step(&run, "SlowPath")["output"].is_null());
    assert_eq!(step_state(&run, "FastPath"), "completed");
    assert_eq!(step(&run, "FastPath")["output"], json!({"path": "fast"}));
    assert_eq!(
        run["outputs"],
        json!({"finish": {"slow": "skipped", "fast": "completed"}})
    );
    out.expect_stderr(&["SlowPath skipped"]);

    // The other way round: the same definition, the other branch.
    let (out, run) = weft.start(&file, &["--input", "mode=slow"]);
    out.expect_code(0);
    assert_eq!(step_state(&run, "SlowPath"), "completed");
    assert_eq!(step_state(&run, "FastPath"), "skipped");
    assert_eq!(
        run["outputs"],
        json!({"finish": {"slow": "completed", "fast": "skipped"}})
    );
}

#[test]
fn a_retryable_failure_is_retried_until_it_succeeds() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "retry.yaml",
        r#"
id: retry
steps:
  - name: Flaky
    plugin: fail
    input: {message: "not yet", retryable: true, until_attempt: 3}
    retry: {max_attempts: 3, backoff: 10ms}
outputs:
  attempt: "{{ steps.Flaky.output.attempt }}"
"#,
    );
    let (out, run) = weft.start(&file, &[]);
    out.expect_code(0);
    assert_eq!(state(&run), "completed", "{run:#}");
    let flaky = step(&run, "Flaky");
    assert_eq!(flaky["attempt"], 3);
    assert_eq!(flaky["output"], json!({"attempt": 3}), "the plugin saw attempt 3");
    assert!(
        flaky["error"].is_null(),
        "the success clears the earlier error: {flaky:#}"
    );
    assert!(flaky["retry_at"].is_null());
    assert_eq!(run["outputs"], json!({"attempt": 3}));
    out.expect_stderr(&[
        "attempt 1 failed, retrying",
        "attempt 2 failed, retrying",
        "Flaky started (attempt 3)",
    ]);
}

#[test]
fn a_step_that_keeps_failing_fails_the_run_after_its_retries() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "fails.yaml",
        r#"
id: fails
steps:
  - name: Broken
    plugin: fail
    input: {message: "the disk is on fire", retryable: true}
    retry: {max_attempts: 2, backoff: 10ms}
  - {name: Never, plugin: echo, input: {}}
"#,
    );
    let (out, run) = weft.start(&file, &[]);
    out.expect_code(1);
    assert_eq!(state(&run), "failed", "{run:#}");
    let broken = step(&run, "Broken");
    assert_eq!(broken["state"], "failed");
    assert_eq!(broken["attempt"], 2);
    assert_eq!(broken["error"], "the disk is on fire");
    let error = run["error"].as_str().expect("a failed run has an error");
    assert!(
        error.contains("Broken") && error.contains("the disk is on fire"),
        "{error}"
    );
    assert_eq!(step_state(&run, "Never"), "canceled");
    assert_eq!(step(&run, "Never")["attempt"], 0);
    assert!(run["outputs"].is_null());
    // `runs show` agrees, with the same exit code.
    let shown = weft.show(&run_id(&run));
    shown.expect_code(1);
    assert_eq!(shown.json(), run);
}

#[test]
fn a_non_retryable_failure_is_not_retried() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "final.yaml",
        r#"
id: final
steps:
  - name: Broken
    plugin: fail
    input: {message: "bad input", retryable: false}
    retry: {max_attempts: 5, backoff: 10ms}
"#,
    );
    let (out, run) = weft.start(&file, &[]);
    out.expect_code(1);
    assert_eq!(state(&run), "failed");
    assert_eq!(step(&run, "Broken")["attempt"], 1);
    assert_eq!(step(&run, "Broken")["error"], "bad input");
}

/// Runs `weft validate FILE` on `yaml` and returns its output.
fn validate(weft: &Weft, yaml: &str) -> Output {
    let file = weft.write_workflow("check.yaml", yaml);
    weft.run(&["validate", path_str(&file)])
}

#[test]
fn validate_accepts_a_good_definition() {
    let weft = Weft::new();
    let out = validate(
        &weft,
        "id: good\nversion: 3\nsteps:\n- {name: A, plugin: echo}\n- {name: B, plugin: echo, input: {x: '{{ steps.A.output }}'}}\n",
    );
    out.expect_code(0);
    assert!(
        out.stdout.contains("good v3 is valid (2 steps)"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_lists_naming_and_plugin_problems_with_their_paths() {
    let weft = Weft::new();
    let out = validate(
        &weft,
        r#"
id: broken
steps:
  - {name: A, plugin: echo}
  - {name: A, plugin: echo}
  - {name: C, plugin: nope}
"#,
    );
    out.expect_code(1);
    out.expect_stderr(&[
        "check.yaml",
        "steps[1].name: duplicate step name A",
        "steps[2].plugin: unknown plugin nope",
    ]);
}

#[test]
fn validate_names_a_cycle() {
    let weft = Weft::new();
    let out = validate(
        &weft,
        r#"
id: cycle
steps:
  - {name: A, plugin: echo, needs: [B]}
  - {name: B, plugin: echo, needs: [A]}
"#,
    );
    out.expect_code(1);
    out.expect_stderr(&["steps: cycle in needs: A -> B -> A"]);
}

#[test]
fn validate_lists_every_unknown_reference() {
    let weft = Weft::new();
    let out = validate(
        &weft,
        r#"
id: refs
steps:
  - {name: A, plugin: echo, input: {cn: "{{ steps.Foo.output.x }}"}}
  - {name: B, plugin: echo, input: {k: "{{ inputs.missing }}"}}
outputs:
  late: "{{ steps.Bar.output }}"
"#,
    );
    out.expect_code(1);
    out.expect_stderr(&[
        "steps[0].input.cn: unknown reference steps.Foo",
        "steps[1].input.k: unknown reference inputs.missing",
        "outputs.late: unknown reference steps.Bar",
    ]);
}

#[test]
fn validate_refuses_a_misspelt_field_naming_where_it_is() {
    let weft = Weft::new();
    let out = validate(&weft, "id: typo\nsteps:\n- {name: A, plugin: echo, nedds: [B]}\n");
    out.expect_code(1);
    out.expect_stderr(&["steps[0]", "unknown field `nedds`"]);
}

/// The module documentation of `src/workflow.rs` promises that validation "collects every
/// problem at once". It stops after the first stage that found any problem instead, so a
/// cycle or an unknown reference is only reported once the names and plugins are fixed.
#[test]
fn validate_reports_every_kind_of_problem_at_once() {
    let weft = Weft::new();
    let out = validate(
        &weft,
        r#"
id: everything
steps:
  - {name: A, plugin: echo, needs: [B]}
  - {name: B, plugin: echo, needs: [A]}
  - {name: C, plugin: echo, needs: []}
  - {name: C, plugin: echo, needs: []}
  - {name: D, plugin: nope, needs: [], input: {x: "{{ steps.Foo.output }}"}}
"#,
    );
    out.expect_code(1);
    out.expect_stderr(&[
        "steps[3].name: duplicate step name C",
        "steps[4].plugin: unknown plugin nope",
        "steps: cycle in needs: A -> B -> A",
        "unknown reference steps.Foo",
    ]);
}

#[test]
fn a_wrongly_typed_input_is_refused_before_the_run_starts() {
    let weft = Weft::new();
    let file = weft.write_workflow(
        "typed.yaml",
        r#"
id: typed
inputs:
  key_size: {type: integer}
steps:
  - {name: A, plugin: echo, input: {k: "{{ inputs.key_size }}"}}
"#,
    );
    let out = weft.run(&["run", path_str(&file), "--input", "key_size=abc"]);
    out.expect_code(1);
    out.expect_stderr(&["inputs.key_size", "expected an integer", "abc"]);
    let missing = weft.run(&["run", path_str(&file)]);
    missing.expect_code(1);
    missing.expect_stderr(&["inputs.key_size: required input is missing"]);
    let unknown = weft.run(&[
        "run",
        path_str(&file),
        "--input",
        "key_size=1",
        "--input",
        "colour=red",
    ]);
    unknown.expect_code(1);
    unknown.expect_stderr(&["inputs.colour: unknown input"]);
    // None of them started a run.
    let list = weft.run(&["runs", "list", "--json"]);
    list.expect_code(0);
    assert_eq!(list.json(), json!([]));

    // A good value is converted to the declared type.
    let (out, run) = weft.start(&file, &["--input", "key_size=4096"]);
    out.expect_code(0);
    assert_eq!(step(&run, "A")["output"], json!({"k": 4096}));
}

/// The README's first command, exactly as written there (with `--db` added).
#[test]
fn the_readme_example_runs() {
    let weft = Weft::new();
    let out = weft.run_in(
        Path::new(REPO),
        &[
            "run",
            "examples/certificate-request.yaml",
            "--input",
            "common_name=web01.example.com",
            "--answer",
            r#"RequireApproval1.ApprovalStatus={"Approved":true,"Comment":"ok"}"#,
        ],
    );
    out.expect_code(0);
    out.expect_stderr(&[
        "of certificate-request v1 started",
        "RequireApproval1 waiting for RequireApproval1.ApprovalStatus",
    ]);
    let id = out
        .stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("run "))
        .and_then(|l| l.strip_suffix(": completed"))
        .unwrap_or_else(|| panic!("the first line is not `run ID: completed`:\n{}", out.stdout))
        .to_owned();
    assert!(out.stdout.contains("CN=web01.example.com"), "{}", out.stdout);

    let run = weft.record(&id);
    assert_eq!(state(&run), "completed", "{run:#}");
    assert_eq!(run["outputs"]["subject"], "CN=web01.example.com");
    assert_eq!(run["outputs"]["serial"], id.as_str());
    let approval = step(&run, "RequireApproval1");
    assert_eq!(approval["output"]["approved"], true);
    assert_eq!(approval["output"]["approvals"][0]["comment"], "ok");
    assert_eq!(
        run["outputs"]["approved_by"],
        json!([approval["output"]["approvals"][0]["by"]])
    );
    assert_eq!(step(&run, "BuildRequest")["output"]["key"], "RSA-2048");
    // web01.example.com is not .internal, so the security team is told.
    assert_eq!(step_state(&run, "NotifySecurity"), "completed");
}
