//! The CLI acts the same on a database file (`--db`) and on a real `weft serve` (`--server`):
//! every command of one table runs on both, and each step must print the same thing (run
//! ids, places and times aside). Also: `--db` with `--server` is refused, and the `weft
//! answer` command that `start` prints works when pasted into a shell as printed.

use crate::common::{hostile_wasm, path_str, run_id, state, step, Output, Server, Weft};

/// A workflow whose approval is assigned to bob, so who answers matters.
const ASSIGNED: &str = "id: cli-approve
description: Ask bob, then finish.
steps:
  - name: Approve
    plugin: approval
    input: {prompt: \"Ship it?\", approvers: [bob]}
  - name: Done
    plugin: echo
    input: {shipped: true}
";

/// Where one column of the table acts.
struct Place {
    /// A directory for files, and the binary's environment.
    weft: Weft,
    /// `--db FILE`, or `--server URL --token TOKEN`.
    args: Vec<String>,
    /// `--as bob` on a database; nothing on a server, where bob's token names him.
    identity: Vec<String>,
    _server: Option<Server>,
}

impl Place {
    fn database() -> Place {
        let weft = Weft::new();
        let args = vec!["--db".to_owned(), weft.db.clone()];
        Place {
            weft,
            args,
            identity: vec!["--as".to_owned(), "bob".to_owned()],
            _server: None,
        }
    }

    /// A server whose database holds bob's admin token: the client sends it.
    fn server() -> Place {
        let data = Weft::new();
        let token = data.create_token("bob", "admin", &[]);
        let server = Server::on(data, &[]);
        let url = server.url("").trim_end_matches('/').to_owned();
        Place {
            weft: Weft::new(),
            args: vec!["--server".to_owned(), url, "--token".to_owned(), token],
            identity: Vec::new(),
            _server: Some(server),
        }
    }

    /// `weft ARGS` here; with `acting`, as bob.
    fn run(&self, args: &[&str], acting: bool) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        if acting {
            all.extend(self.identity.iter().map(String::as_str));
        }
        all.extend(self.args.iter().map(String::as_str));
        self.weft.run_without_db(&all)
    }

    /// What this place's output says that no other place's would: its option values.
    fn own_words(&self) -> Vec<&str> {
        self.args[1..].iter().map(String::as_str).collect()
    }
}

/// `text` with `words` (ids, places), RFC 3339 times and durations blanked, so two places
/// compare.
fn normalized(text: &str, words: &[&str]) -> String {
    let mut text = text.to_owned();
    for word in words.iter().filter(|w| !w.is_empty()) {
        text = text.replace(word, "<>");
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("20") {
        let candidate = &rest[at..];
        let is_time =
            candidate.len() > 11 && candidate.as_bytes()[4] == b'-' && candidate.as_bytes()[10] == b'T';
        out.push_str(&rest[..at]);
        if is_time {
            let end = candidate
                .find(|c: char| c.is_whitespace() || c == ')' || c == ',' || c == '"')
                .unwrap_or(candidate.len());
            out.push_str("<time>");
            rest = &candidate[end..];
        } else {
            out.push_str("20");
            rest = &candidate[2..];
        }
    }
    out.push_str(rest);
    // Durations (`completed in 1.2ms`) and ids not known yet are each place's own too.
    let duration = |word: &str| {
        let number = word.strip_suffix("ms").or_else(|| word.strip_suffix('s'));
        number.is_some_and(|n| n.parse::<f64>().is_ok())
    };
    out.lines()
        .map(|line| {
            line.split(' ')
                .map(|word| {
                    if duration(word) {
                        "<d>"
                    } else if word.parse::<uuid::Uuid>().is_ok() {
                        "<>"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What two places must agree on in a command's stdout: a run record's state, starter,
/// steps, answers and outputs (runner ids and plugin state are each place's own); the
/// `answer with:` hints up to the answer (the rest names the place, see
/// `the_printed_answer_command_works_as_printed`); everything else as printed.
fn comparable(stdout: &str, words: &[&str]) -> String {
    if let Ok(record) = serde_json::from_str::<serde_json::Value>(stdout) {
        if record.get("steps").is_some() {
            let steps: Vec<serde_json::Value> = record["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let by: Vec<&serde_json::Value> = s["answers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| &a["answered_by"])
                        .collect();
                    serde_json::json!([s["name"], s["state"], by])
                })
                .collect();
            let shown = serde_json::json!([
                record["state"],
                record["started_by"],
                steps,
                record["outputs"],
                record["error"]
            ]);
            return shown.to_string();
        }
    }
    normalized(stdout, words)
        .lines()
        .filter(|line| {
            !line
                .trim_start()
                .starts_with("(these commands leave out your token")
        })
        .map(|line| match (line.find("answer with: "), line.find("}' ")) {
            (Some(_), Some(end)) => &line[..end + 2],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one step of the table on both places (arguments per place, since run ids differ),
/// and asserts both exit alike and print the same once their own words are blanked.
#[track_caller]
fn both(
    places: &[Place; 2],
    ids: &[Vec<String>; 2],
    acting: bool,
    args: impl Fn(usize) -> Vec<String>,
) -> [Output; 2] {
    let outputs = [0, 1].map(|i| {
        let args = args(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        places[i].run(&args, acting)
    });
    let shown = |i: usize| {
        let mut words = places[i].own_words();
        words.extend(ids[i].iter().map(String::as_str));
        comparable(&outputs[i].stdout, &words)
    };
    assert_eq!(
        outputs[0].code,
        outputs[1].code,
        "{:?}: exit codes differ\n--- db\n{outputs0:?}\n--- server\n{outputs1:?}",
        args(0),
        outputs0 = outputs[0],
        outputs1 = outputs[1],
    );
    assert_eq!(
        shown(0),
        shown(1),
        "{:?}: --db and --server print differently",
        args(0)
    );
    outputs
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| w.to_string()).collect()
}

#[test]
fn every_command_acts_the_same_on_a_database_and_on_a_server() {
    let places = [Place::database(), Place::server()];
    let mut ids: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let definition = places[0].weft.write_workflow("cli approve.yaml", ASSIGNED);
    let definition = path_str(&definition).to_owned();
    let broken = places[0].weft.write_workflow(
        "broken.yaml",
        "id: broken\nsteps:\n  - name: A\n    plugin: no-such-plugin\n",
    );
    let broken = path_str(&broken).to_owned();
    let hostile = path_str(&hostile_wasm()).to_owned();

    // plugin add (and its old name, push), list, delete
    let [added, _] = both(&places, &ids, false, |_| {
        words(&[
            "plugin",
            "add",
            &hostile,
            "--name",
            "hostile",
            "--version",
            "1.0.0",
        ])
    });
    added.expect_code(0);
    assert!(
        added.stdout.starts_with("hostile@1.0.0 sha256:"),
        "{}",
        added.stdout
    );
    both(&places, &ids, false, |_| {
        words(&[
            "plugin",
            "push",
            &hostile,
            "--name",
            "hostile",
            "--version",
            "1.0.1",
        ])
    })[0]
        .expect_code(0);
    let [listed, _] = both(&places, &ids, false, |_| words(&["plugin", "list"]));
    assert!(
        listed.stdout.contains("hostile@1.0.1") && listed.stdout.contains("approval@"),
        "{}",
        listed.stdout
    );
    let [deleted, _] = both(&places, &ids, false, |_| {
        words(&["plugin", "delete", "hostile", "--version", "1.0.0"])
    });
    deleted.expect_code(0);
    let [listed, _] = both(&places, &ids, false, |_| words(&["plugin", "list"]));
    assert!(!listed.stdout.contains("hostile@1.0.0"), "{}", listed.stdout);
    both(&places, &ids, false, |_| {
        words(&["plugin", "delete", "hostile", "--version", "1.0.0"])
    })[0]
        .expect_code(1);

    // validate, against the plugins of each place
    let [valid, _] = both(&places, &ids, false, |_| words(&["validate", &definition]));
    valid.expect_code(0);
    assert!(
        valid.stdout.contains("cli-approve v1 is valid (2 steps)"),
        "{}",
        valid.stdout
    );
    let [invalid, on_server] = both(&places, &ids, false, |_| words(&["validate", &broken]));
    invalid.expect_code(1).expect_stderr(&["no-such-plugin"]);
    on_server.expect_stderr(&["no-such-plugin"]);

    // workflow apply, list, show
    let [applied, _] = both(&places, &ids, false, |_| {
        words(&["workflow", "apply", &definition])
    });
    applied.expect_code(0);
    assert!(
        applied.stdout.contains("cli-approve v1 created (published"),
        "{}",
        applied.stdout
    );
    let [listed, _] = both(&places, &ids, false, |_| words(&["workflow", "list"]));
    assert!(listed.stdout.contains("cli-approve  v1"), "{}", listed.stdout);
    let [shown, _] = both(&places, &ids, false, |_| {
        words(&["workflow", "show", "cli-approve"])
    });
    assert_eq!(shown.json()["definition"]["steps"][0]["name"], "Approve");

    // start: the run waits for bob
    let [started, on_server] = both(&places, &ids, true, |_| {
        words(&["start", "cli-approve", "--wait", "--json"])
    });
    started.expect_code(2);
    for (i, out) in [started, on_server].iter().enumerate() {
        let record = out.json();
        assert_eq!(state(&record), "waiting");
        assert_eq!(record["started_by"], "bob");
        ids[i].push(run_id(&record));
    }
    let started_first = [ids[0][0].clone(), ids[1][0].clone()];
    let first = |i: usize| started_first[i].clone();

    // inbox: what waits for bob, and the command that answers it
    let [inbox, _] = both(&places, &ids, true, |_| words(&["inbox"]));
    inbox.expect_code(0);
    assert!(
        inbox.stdout.contains(&format!(
            "answer with: weft answer {} Approve.ApprovalStatus",
            first(0)
        )),
        "{}",
        inbox.stdout
    );

    // runs list, runs show
    let [waiting, _] = both(&places, &ids, false, |_| {
        words(&["runs", "list", "--state", "waiting"])
    });
    assert!(waiting.stdout.contains(&first(0)), "{}", waiting.stdout);
    let [shown, _] = both(&places, &ids, false, |i| words(&["runs", "show", &first(i)]));
    shown.expect_code(2);
    assert!(
        shown.stdout.contains("Approve waits: Ship it?"),
        "{}",
        shown.stdout
    );

    // answer: the wrong step is refused alike, the right one completes the run
    let [wrong, _] = both(&places, &ids, true, |i| {
        words(&["answer", &first(i), "Done.ApprovalStatus", r#"{"Approved":true}"#])
    });
    wrong.expect_code(1);
    let [answered, on_server] = both(&places, &ids, true, |i| {
        words(&[
            "answer",
            &first(i),
            "Approve.ApprovalStatus",
            r#"{"Approved":true}"#,
            "--json",
        ])
    });
    answered.expect_code(0);
    for out in [&answered, &on_server] {
        let record = out.json();
        assert_eq!(state(&record), "completed");
        assert_eq!(step(&record, "Approve")["answers"][0]["answered_by"], "bob");
    }
    let [shown, _] = both(&places, &ids, false, |i| {
        words(&["runs", "show", &first(i), "--logs"])
    });
    shown.expect_code(0);
    assert!(
        shown.stdout.contains(": completed") && shown.stdout.contains("log:"),
        "{}",
        shown.stdout
    );
    let [empty, _] = both(&places, &ids, true, |_| words(&["inbox"]));
    assert!(empty.stdout.starts_with("nothing waits for"), "{}", empty.stdout);

    // cancel, retry, restart on a second run
    let [second, on_server] = both(&places, &ids, true, |_| words(&["start", "cli-approve"]));
    second.expect_code(0);
    ids[0].push(second.stdout.trim().to_owned());
    ids[1].push(on_server.stdout.trim().to_owned());
    let second = [ids[0][1].clone(), ids[1][1].clone()];
    let run2 = |i: usize| second[i].clone();
    let [canceled, _] = both(&places, &ids, true, |i| words(&["cancel", &run2(i)]));
    canceled.expect_code(0);
    assert!(canceled.stdout.contains(": canceled"), "{}", canceled.stdout);
    both(&places, &ids, true, |i| words(&["cancel", &run2(i)]))[0]
        .expect_code(1)
        .expect_stderr(&["already finished"]);
    let [retried, _] = both(&places, &ids, true, |i| words(&["retry", &run2(i)]));
    retried.expect_code(2);
    assert!(retried.stdout.contains(": waiting"), "{}", retried.stdout);
    both(&places, &ids, true, |i| words(&["cancel", &run2(i)]))[0].expect_code(0);
    let [restarted, on_server] = both(&places, &ids, true, |i| words(&["restart", &run2(i), "--json"]));
    restarted.expect_code(2);
    for (i, out) in [restarted, on_server].iter().enumerate() {
        let record = out.json();
        assert_eq!(state(&record), "waiting");
        assert_eq!(record["restarted_from"], run2(i).as_str());
        ids[i].push(run_id(&record));
    }

    // resume: nothing was left running
    let [resumed, _] = both(&places, &ids, false, |_| words(&["resume"]));
    resumed
        .expect_code(0)
        .expect_stderr(&["resumed 0 run(s), fired 0 timer(s)"]);

    // workflow delete: gone from the list, runs stay
    both(&places, &ids, false, |_| {
        words(&["workflow", "delete", "cli-approve"])
    })[0]
        .expect_code(0);
    let [listed, _] = both(&places, &ids, false, |_| words(&["workflow", "list"]));
    assert_eq!(listed.stdout, "", "{listed:?}");
    let [runs, _] = both(&places, &ids, false, |_| words(&["runs", "list"]));
    assert_eq!(runs.stdout.lines().count(), 3, "{}", runs.stdout);
}

#[test]
fn a_database_and_a_server_together_are_refused() {
    let weft = Weft::new();
    let both = weft.run(&["runs", "list", "--server", "http://127.0.0.1:9"]);
    both.expect_code(1).expect_stderr(&[
        "--db",
        "and --server http://127.0.0.1:9 name two places: give one",
    ]);
    let from_env = weft
        .command_without_db(&["runs", "list", "--db", &weft.db])
        .env("WEFT_SERVER", "http://127.0.0.1:9")
        .output()
        .expect("weft runs");
    assert_eq!(from_env.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&from_env.stderr).contains("(from $WEFT_SERVER) name two places"),
        "{from_env:?}"
    );
    let serve = weft.run_without_db(&["serve", "--server", "http://127.0.0.1:9"]);
    serve
        .expect_code(1)
        .expect_stderr(&["weft serve works on a database in this process and does not take --server"]);
    let token = weft.run(&["runs", "list", "--token", "weft_x"]);
    token.expect_code(1).expect_stderr(&["--token is for --server"]);
}

/// Starts a run assigned to bob as alice, and pastes the printed `answer with:` line into a
/// shell: it must answer as bob at the same place and complete the run.
#[track_caller]
fn follow_the_hint(weft: &Weft, place: &[&str], env: &[(&str, &str)], acting: &[&str]) {
    let file = weft.write_workflow("assigned.yaml", ASSIGNED);
    let mut apply = vec!["workflow", "apply", path_str(&file)];
    apply.extend_from_slice(place);
    weft.run_shell(&shell_line(&apply), env).expect_code(0);
    let mut start = vec!["start", "cli-approve", "--wait"];
    start.extend_from_slice(acting);
    start.extend_from_slice(place);
    let started = weft.run_shell(&shell_line(&start), env);
    started.expect_code(2);
    let hint = started
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("answer with: "))
        .unwrap_or_else(|| panic!("no hint printed\n{}", started.stdout));
    let answered = weft.run_shell(hint, env);
    answered.expect_code(0);
    assert!(answered.stdout.contains(": completed"), "{hint}\n{answered:?}");
    assert!(
        answered.stdout.contains("answered by bob"),
        "{hint}\n{answered:?}"
    );
}

/// `args` as a shell line, each word quoted.
fn shell_line(args: &[&str]) -> String {
    let mut line = "weft".to_owned();
    for arg in args {
        line.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
    }
    line
}

#[test]
fn the_printed_answer_command_works_as_printed() {
    // A database path with a space: the hint must quote it.
    let weft = Weft::new();
    let db = weft.dir.path().join("my data").join("weft.redb");
    std::fs::create_dir_all(db.parent().expect("a parent")).expect("cannot make the directory");
    follow_the_hint(&weft, &["--db", path_str(&db)], &[], &["--as", "alice"]);

    // A server with no token yet: --as names the caller, and the hint names bob.
    let server = Server::start();
    let url = server.url("").trim_end_matches('/').to_owned();
    follow_the_hint(&Weft::new(), &["--server", &url], &[], &["--as", "alice"]);

    // A server with tokens: the token (from WEFT_TOKEN) names the caller; no --as.
    let data = Weft::new();
    let token = data.create_token("bob", "admin", &[]);
    let server = Server::on(data, &[]);
    let url = server.url("").trim_end_matches('/').to_owned();
    follow_the_hint(&Weft::new(), &["--server", &url], &[("WEFT_TOKEN", &token)], &[]);
}
