//! The storage interface's contract, checked on both backends: conditional writes (run
//! revisions, keys taken once, the rule set's revision), listings, logs, claims of timers,
//! events and orphaned runs, and notices. Every check runs against a redb file and against
//! a PostgreSQL database, through `Arc<dyn Store>` exactly as the engine uses it.

use crate::common::Backend;
use std::sync::Arc;
use std::time::Duration;
use weft::names::{Digest, RunId};
use weft::run::RunState;
use weft::store::*;

/// A fresh store of `backend` for runner `runner`, and where it is (for a second runner).
async fn open(backend: Backend, runner: &str) -> (Arc<dyn Store>, Location, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let location = match backend {
        Backend::Redb => Location::File(dir.path().join("store.redb")),
        Backend::Postgres => Location::Postgres(crate::postgres::database()),
    };
    let store = weft::store::open(&location, runner.into())
        .await
        .expect("open the store");
    (store, location, dir)
}

/// Each check, once per backend.
macro_rules! on_both {
    ($($check:ident),* $(,)?) => {
        mod on_redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(crate::common::Backend::Redb).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both!(
    runs_are_created_once_and_written_at_the_revision_read,
    one_callers_stale_write_does_not_stop_the_others,
    keys_are_taken_once,
    workflow_versions_are_taken_once_and_drafts_replaced_as_read,
    the_rule_set_moves_one_revision_at_a_time,
    listings_read_the_right_runs_newest_first,
    logs_follow_their_run,
    due_timers_are_claimed_and_fired_once,
    events_are_claimed_once,
    orphaned_runs_are_claimed_with_a_new_revision,
    commits_are_noticed,
    records_round_trip,
    every_record_is_copied_to_the_other_backend,
    items_and_the_input_index_follow_their_run,
    keyed_documents_keep_their_conditions_and_read_by_range,
    inboxes_read_the_runs_waiting_for_their_reader,
);

fn index(state: RunState) -> RunIndex {
    RunIndex {
        state,
        workflow: "wf".into(),
        started_by: "tester".into(),
        created_at: weft::run::now(),
        inputs: vec![("host".into(), "web01".into())],
        waiting_for: Vec::new(),
    }
}

fn doc(state: RunState) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "state": state,
        "workflow": {"id": "wf"},
        "started_by": "tester",
        "created_at": weft::run::rfc3339(weft::run::now()),
    }))
    .unwrap()
}

fn run_write(id: RunId, state: RunState, expect: Option<u64>, owner: Option<&str>) -> Write {
    Write::Run {
        id,
        doc: doc(state),
        index: index(state),
        expect,
        owner: owner.map(str::to_owned),
    }
}

async fn runs_are_created_once_and_written_at_the_revision_read(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let id = RunId::new();
    store
        .commit(vec![run_write(id, RunState::Running, None, Some("r1"))])
        .await
        .unwrap();
    let stored = store.run(id).await.unwrap().unwrap();
    assert_eq!((stored.revision, stored.owner.as_deref()), (1, Some("r1")));
    assert!(matches!(
        store
            .commit(vec![run_write(id, RunState::Running, None, None)])
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .commit(vec![run_write(id, RunState::Waiting, Some(1), None)])
        .await
        .unwrap();
    assert!(matches!(
        store
            .commit(vec![run_write(id, RunState::Running, Some(1), None)])
            .await,
        Err(StoreError::Stale(_))
    ));
    let stored = store.run(id).await.unwrap().unwrap();
    assert_eq!((stored.revision, stored.owner), (2, None));
    // Two writes of one run in one commit: the second is made from the first.
    store
        .commit(vec![
            run_write(id, RunState::Running, Some(2), Some("r1")),
            run_write(id, RunState::Completed, Some(3), None),
        ])
        .await
        .unwrap();
    assert_eq!(store.run(id).await.unwrap().unwrap().revision, 4);
}

async fn one_callers_stale_write_does_not_stop_the_others(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let (a, b) = (RunId::new(), RunId::new());
    store
        .commit(vec![
            run_write(a, RunState::Running, None, None),
            run_write(b, RunState::Running, None, None),
        ])
        .await
        .unwrap();
    // Committed at once: they may share a transaction; each gets its own answer.
    let stale = store.commit(vec![
        run_write(a, RunState::Completed, Some(7), None),
        Write::Log {
            run: a,
            seq: 0,
            doc: b"{\"seq\":0}".to_vec(),
        },
    ]);
    let fine = store.commit(vec![run_write(b, RunState::Completed, Some(1), None)]);
    let (stale, fine) = tokio::join!(stale, fine);
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    fine.unwrap();
    assert_eq!(store.run(a).await.unwrap().unwrap().revision, 1);
    assert!(
        store.logs(a, None, 10).await.unwrap().is_empty(),
        "a refused caller's log line was kept"
    );
    assert_eq!(store.run(b).await.unwrap().unwrap().revision, 2);
}

async fn keys_are_taken_once(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let (run, request) = (RunId::new(), Digest::of(b"request"));
    let take = || Write::Idempotency {
        key: "k".into(),
        run,
        request: request.clone(),
    };
    store.commit(vec![take()]).await.unwrap();
    assert!(matches!(
        store.commit(vec![take()]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.idempotent_run("k").await.unwrap(),
        Some((run, Some(request.clone())))
    );
    store
        .commit(vec![Write::DeleteIdempotency("k".into())])
        .await
        .unwrap();
    store.commit(vec![take()]).await.unwrap();

    let plugin = |bytes: &[u8]| Write::Plugin {
        name: "p".into(),
        version: "1".into(),
        digest: Digest::of(bytes),
        meta: serde_json::to_vec(
            &serde_json::json!({"name": "p", "version": "1", "digest": Digest::of(bytes)}),
        )
        .unwrap(),
        bytes: Arc::from(bytes.to_vec()),
    };
    store.commit(vec![plugin(b"one")]).await.unwrap();
    store.commit(vec![plugin(b"one")]).await.unwrap();
    assert!(matches!(
        store.commit(vec![plugin(b"two")]).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = store.plugin("p", "1").await.unwrap().unwrap();
    assert_eq!(stored.digest, Digest::of(b"one"));
    assert_eq!(
        store.plugin_bytes(&Digest::of(b"one")).await.unwrap().unwrap(),
        b"one"
    );
    assert!(store.plugin_bytes(&Digest::of(b"two")).await.unwrap().is_none());
}

async fn workflow_versions_are_taken_once_and_drafts_replaced_as_read(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let version = |digest: &str, replaces: Option<&str>| Write::Workflow {
        id: "w".into(),
        version: 1,
        digest: Digest::of(digest.as_bytes()),
        definition: digest.as_bytes().to_vec(),
        replaces: replaces.map(|r| Digest::of(r.as_bytes())),
    };
    store.commit(vec![version("a", None)]).await.unwrap();
    assert!(matches!(
        store.commit(vec![version("b", None)]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.commit(vec![version("b", Some("x"))]).await,
        Err(StoreError::Stale(_))
    ));
    store.commit(vec![version("b", Some("a"))]).await.unwrap();
    assert_eq!(
        store.workflow_version("w", Some(1)).await.unwrap().unwrap().1,
        Digest::of(b"b")
    );
    assert!(
        store.workflow_version("w", None).await.unwrap().is_none(),
        "nothing published yet"
    );
    store
        .commit(vec![Write::Publish {
            id: "w".into(),
            version: 1,
        }])
        .await
        .unwrap();
    assert_eq!(store.workflow_version("w", None).await.unwrap().unwrap().0, 1);
    assert_eq!(store.published_versions("w").await.unwrap(), vec![1]);
    assert_eq!(store.definition(&Digest::of(b"b")).await.unwrap().unwrap(), b"b");
}

async fn the_rule_set_moves_one_revision_at_a_time(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    assert_eq!(store.rules_revision().await.unwrap(), 0);
    let change = |expect| {
        vec![
            Write::Action(ActionWrite::Target {
                id: "t".into(),
                doc: b"{}".to_vec(),
            }),
            Write::Action(ActionWrite::RulesRevision { expect }),
        ]
    };
    store.commit(change(0)).await.unwrap();
    assert!(matches!(store.commit(change(0)).await, Err(StoreError::Stale(_))));
    let rules = store.action_rules().await.unwrap();
    assert_eq!((rules.revision, rules.targets.len()), (1, 1));
}

async fn listings_read_the_right_runs_newest_first(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let ids: Vec<RunId> = (0..5).map(|_| RunId::new()).collect();
    let states = [
        RunState::Completed,
        RunState::Running,
        RunState::Waiting,
        RunState::Pending,
        RunState::Failed,
    ];
    for (id, state) in ids.iter().zip(states) {
        store
            .commit(vec![run_write(*id, state, None, None)])
            .await
            .unwrap();
    }
    let listed = |scope, before| {
        let store = store.clone();
        async move {
            store
                .runs(scope, before, 10, &mut |_| true)
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(RunScope::All, None).await,
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(listed(RunScope::Live, None).await, vec![ids[3], ids[1]]);
    assert_eq!(listed(RunScope::Waiting, None).await, vec![ids[2]]);
    assert_eq!(listed(RunScope::All, Some(ids[2])).await, vec![ids[1], ids[0]]);
    assert_eq!(store.waiting_runs().await.unwrap(), vec![ids[2]]);
    let mut only_failed = |r: &StoredRun| r.id == ids[4];
    let kept = store
        .runs(RunScope::All, None, 1, &mut only_failed)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
}

async fn logs_follow_their_run(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let id = RunId::new();
    let line = |seq: u64| Write::Log {
        run: id,
        seq,
        doc: format!("{{\"seq\":{seq}}}").into_bytes(),
    };
    store
        .commit(vec![line(0), run_write(id, RunState::Running, None, None)])
        .await
        .unwrap();
    store
        .commit(vec![line(1), run_write(id, RunState::Waiting, Some(1), None)])
        .await
        .unwrap();
    store
        .commit(vec![line(2), run_write(id, RunState::Completed, Some(2), None)])
        .await
        .unwrap();
    let seqs = |lines: Vec<Vec<u8>>| -> Vec<String> {
        lines.into_iter().map(|l| String::from_utf8(l).unwrap()).collect()
    };
    assert_eq!(
        seqs(store.logs(id, None, 10).await.unwrap()),
        ["{\"seq\":0}", "{\"seq\":1}", "{\"seq\":2}"]
    );
    assert_eq!(seqs(store.logs(id, Some(0), 1).await.unwrap()), ["{\"seq\":1}"]);
    store.commit(vec![Write::DeleteRun(id)]).await.unwrap();
    assert!(store.run(id).await.unwrap().is_none());
    assert!(store.logs(id, None, 10).await.unwrap().is_empty());
}

async fn due_timers_are_claimed_and_fired_once(backend: Backend) {
    let (store, location, _dir) = open(backend, "r1").await;
    let now = weft::run::now();
    let timer = |step: &str, due| Timer {
        due,
        run: RunId::new(),
        step: step.into(),
        kind: TimerKind::Expire,
    };
    let due = timer("Due", now - time::Duration::seconds(1));
    let later = timer("Later", now + time::Duration::hours(1));
    store
        .commit(vec![Write::Timer(due.clone()), Write::Timer(later.clone())])
        .await
        .unwrap();
    let next = store.next_timer_due().await.unwrap().unwrap();
    assert!(
        (next - due.due).abs() < time::Duration::milliseconds(2),
        "{next} vs {}",
        due.due
    );
    let claimed = store
        .claim_due_timers("r1", now, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].step, "Due");
    if backend == Backend::Postgres {
        // Another runner does not get a timer while its claim holds.
        let other = weft::store::open(&location, "r2".into()).await.unwrap();
        assert!(other
            .claim_due_timers("r2", now, Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty());
    }
    // Firing deletes it, for good.
    store
        .commit(vec![Write::DeleteTimer(claimed[0].clone())])
        .await
        .unwrap();
    assert!(store
        .claim_due_timers("r1", now, Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn events_are_claimed_once(backend: Backend) {
    let (store, location, _dir) = open(backend, "r1").await;
    store
        .commit(vec![Write::Action(ActionWrite::Outbox(b"{\"e\":1}".to_vec()))])
        .await
        .unwrap();
    let claimed = store
        .claim_outbox("r1", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    if backend == Backend::Postgres {
        let other = weft::store::open(&location, "r2".into()).await.unwrap();
        assert!(other
            .claim_outbox("r2", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty());
        // A claim that lapses frees the event for another runner.
        let lapsed = other
            .claim_outbox("r2", Duration::from_millis(1), 10)
            .await
            .unwrap();
        assert!(lapsed.is_empty());
    }
    store
        .commit(vec![Write::Action(ActionWrite::DeleteOutbox(claimed[0].0))])
        .await
        .unwrap();
    assert!(store.outbox(10).await.unwrap().is_empty());
}

async fn orphaned_runs_are_claimed_with_a_new_revision(backend: Backend) {
    let (store, location, _dir) = open(backend, "r1").await;
    let orphan = RunId::new();
    let waiting = RunId::new();
    store
        .commit(vec![
            run_write(orphan, RunState::Running, None, Some("gone")),
            run_write(waiting, RunState::Waiting, None, None),
        ])
        .await
        .unwrap();
    let claimed = store.claim_orphans(10).await.unwrap();
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![orphan]);
    assert_eq!(
        (claimed[0].revision, claimed[0].owner.as_deref()),
        (2, Some("r1"))
    );
    // The old owner's write from revision 1 is refused now.
    assert!(matches!(
        store
            .commit(vec![run_write(orphan, RunState::Completed, Some(1), None)])
            .await,
        Err(StoreError::Stale(_))
    ));
    assert!(store.claim_orphans(10).await.unwrap().is_empty(), "claimed twice");
    if backend == Backend::Postgres {
        // A live runner's runs are its own; once it gives them up, another takes them.
        store.heartbeat(None, Duration::from_secs(60)).await.unwrap();
        let other = weft::store::open(&location, "r2".into()).await.unwrap();
        assert!(other.claim_orphans(10).await.unwrap().is_empty());
        let runners = other.runners().await.unwrap();
        assert_eq!(runners.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r1"]);
        assert_eq!(runners[0].runs, 1);
        store.release().await.unwrap();
        let taken = other.claim_orphans(10).await.unwrap();
        assert_eq!(taken.iter().map(|r| r.id).collect::<Vec<_>>(), vec![orphan]);
        assert_eq!(taken[0].owner.as_deref(), Some("r2"));
    }
}

async fn commits_are_noticed(backend: Backend) {
    let (store, location, _dir) = open(backend, "r1").await;
    let watcher = match backend {
        Backend::Redb => store.clone(),
        Backend::Postgres => weft::store::open(&location, "r2".into()).await.unwrap(),
    };
    let mut notices = watcher.subscribe();
    let id = RunId::new();
    store
        .commit(vec![
            run_write(id, RunState::Waiting, None, None),
            Write::Timer(Timer {
                due: weft::run::now(),
                run: id,
                step: "S".into(),
                kind: TimerKind::Retry,
            }),
        ])
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
            .await
            .expect("a notice within 10 s")
            .unwrap();
        seen.push(notice);
    }
    assert!(
        seen.contains(&Notice::Run {
            id,
            state: RunState::Waiting,
            owner: None,
            by: "r1".into(),
        }),
        "{seen:?}"
    );
    assert!(seen.contains(&Notice::Timers), "{seen:?}");
}

async fn records_round_trip(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    assert!(!store.has_tokens().await.unwrap());
    store
        .commit(vec![
            Write::Token {
                hash: "h".into(),
                doc: b"{\"t\":1}".to_vec(),
            },
            Write::Grant {
                plugin: "p".into(),
                doc: Some(b"{\"g\":1}".to_vec()),
            },
            Write::Session {
                id: "s".into(),
                doc: Some(b"{\"s\":1}".to_vec()),
            },
        ])
        .await
        .unwrap();
    store.enqueue(vec![Write::Audit(b"{\"a\":1}".to_vec())]);
    assert!(store.has_tokens().await.unwrap());
    assert_eq!(store.token("h").await.unwrap().unwrap(), b"{\"t\":1}");
    assert_eq!(
        store.grants().await.unwrap(),
        vec![("p".to_owned(), b"{\"g\":1}".to_vec())]
    );
    assert_eq!(store.session("s").await.unwrap().unwrap(), b"{\"s\":1}");
    // An enqueued record is there once the audit log is read (it flushes first).
    let audit = store.audit(None, 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    store
        .commit(vec![Write::Session {
            id: "s".into(),
            doc: None,
        }])
        .await
        .unwrap();
    assert!(store.session("s").await.unwrap().is_none());
}

/// Every record of `store`, in export order.
async fn export(store: &dyn Store) -> Vec<Record> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
    let collect = async {
        let mut all = Vec::new();
        while let Some(record) = receiver.recv().await {
            all.push(record);
        }
        all
    };
    let (read, all) = tokio::join!(store.export(sender), collect);
    read.expect("export");
    all
}

/// One record of each kind, copied to a store of the other backend: the copy reads the same,
/// record for record and through the ordinary reads, and numbering continues after it.
async fn every_record_is_copied_to_the_other_backend(backend: Backend) {
    let (source, _, _dir) = open(backend, "r1").await;
    let other = match backend {
        Backend::Redb => Backend::Postgres,
        Backend::Postgres => Backend::Redb,
    };
    let (target, _, _other_dir) = open(other, "r2").await;
    assert!(source.is_empty().await.unwrap() && target.is_empty().await.unwrap());

    let (live, waiting, done) = (RunId::new(), RunId::new(), RunId::new());
    let due = time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
    let timer = Timer {
        due,
        run: waiting,
        step: "Approve".into(),
        kind: TimerKind::Expire,
    };
    let mut writes = vec![
        run_write(live, RunState::Running, None, Some("r1")),
        waiting_write(waiting, &["alice"], &[], None),
        run_write(done, RunState::Completed, None, None),
        Write::Timer(timer.clone()),
        Write::Idempotency {
            key: "k".into(),
            run: done,
            request: Digest::of(b"request"),
        },
        Write::Plugin {
            name: "p".into(),
            version: "1.0.0".into(),
            digest: Digest::of(b"component"),
            meta: serde_json::to_vec(
                &serde_json::json!({"name": "p", "version": "1.0.0", "digest": Digest::of(b"component")}),
            )
            .unwrap(),
            bytes: Arc::from(b"component".to_vec()),
        },
        Write::Artifact {
            key: "a/b".into(),
            bytes: b"compiled".to_vec(),
        },
        Write::Workflow {
            id: "wf".into(),
            version: 1,
            digest: Digest::of(b"def"),
            definition: b"def".to_vec(),
            replaces: None,
        },
        Write::Publish {
            id: "wf".into(),
            version: 1,
        },
        Write::Token {
            hash: "h".into(),
            doc: b"{}".to_vec(),
        },
        Write::Grant {
            plugin: "p".into(),
            doc: Some(b"{}".to_vec()),
        },
        Write::Session {
            id: "s".into(),
            doc: Some(b"{}".to_vec()),
        },
        Write::Action(ActionWrite::Target {
            id: "t".into(),
            doc: b"{}".to_vec(),
        }),
        Write::Action(ActionWrite::Execution {
            key: "e".into(),
            doc: b"{}".to_vec(),
        }),
        Write::Action(ActionWrite::RulesRevision { expect: 0 }),
        Write::Action(ActionWrite::Outbox(b"{\"event\":1}".to_vec())),
        Write::Action(ActionWrite::Log(b"{\"log\":1}".to_vec())),
        Write::Audit(b"{\"audit\":1}".to_vec()),
        Write::Doc {
            kind: DocKind::Schedule,
            key: "nightly".into(),
            doc: Some(b"{}".to_vec()),
            condition: DocCondition::Absent,
        },
    ];
    for (i, run) in [live, waiting, done].into_iter().enumerate() {
        writes.push(Write::Log {
            run,
            seq: i as u64 + 1,
            doc: format!("{{\"line\":{i}}}").into_bytes(),
        });
    }
    source.commit(writes).await.unwrap();
    assert!(!source.is_empty().await.unwrap());

    let mut seen = Vec::new();
    let counts = weft::store::copy::copy(&*source, &*target, &mut |kind, n| seen.push((kind.to_owned(), n)))
        .await
        .expect("the copy");
    assert_eq!(counts.values().sum::<u64>(), export(&*source).await.len() as u64);
    assert_eq!(counts["runs"], 3);
    assert_eq!(counts["run log lines"], 3);
    assert!(!seen.is_empty(), "no progress was reported");

    let (mut a, mut b) = (export(&*source).await, export(&*target).await);
    let key = |r: &Record| format!("{r:?}");
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a, b);

    // The copy reads like the original.
    for id in [live, waiting, done] {
        assert_eq!(source.run(id).await.unwrap(), target.run(id).await.unwrap());
        assert_eq!(
            source.logs(id, None, 10).await.unwrap(),
            target.logs(id, None, 10).await.unwrap()
        );
    }
    assert_eq!(target.waiting_runs().await.unwrap(), vec![waiting]);
    let alice = target
        .runs_waiting_for(&["alice".to_owned()], None, 10)
        .await
        .unwrap();
    assert_eq!(alice.iter().map(|r| r.id).collect::<Vec<_>>(), vec![waiting]);
    assert_eq!(target.next_timer_due().await.unwrap(), Some(due));
    assert_eq!(
        target.idempotent_run("k").await.unwrap(),
        Some((done, Some(Digest::of(b"request"))))
    );
    assert_eq!(
        target
            .plugin_bytes(&Digest::of(b"component"))
            .await
            .unwrap()
            .unwrap(),
        b"component"
    );
    assert_eq!(target.workflow_version("wf", None).await.unwrap().unwrap().0, 1);
    assert_eq!(target.rules_revision().await.unwrap(), 1);
    assert!(target.has_tokens().await.unwrap());
    assert_eq!(
        target.doc(DocKind::Schedule, "nightly").await.unwrap(),
        source.doc(DocKind::Schedule, "nightly").await.unwrap()
    );

    // Numbered records continue after the copied ones.
    target.enqueue(vec![Write::Audit(b"{\"audit\":2}".to_vec())]);
    let audit = target.audit(None, 10).await.unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[1].0 > audit[0].0, "{audit:?}");
    target
        .commit(vec![Write::Action(ActionWrite::Outbox(
            b"{\"event\":2}".to_vec(),
        ))])
        .await
        .unwrap();
    let outbox = target.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert!(outbox[1].0 > outbox[0].0, "{outbox:?}");

    // A database that holds anything is refused.
    let refused = weft::store::copy::copy(&*source, &*target, &mut |_, _| {})
        .await
        .expect_err("a copy into a database that is not empty");
    assert!(refused.to_string().contains("is not empty"), "{refused:#}");
}

/// `for_each` items are read back in order from any index; runs are found by their inputs
/// (every pair must match), newest first and paged; deleting a run removes both.
async fn items_and_the_input_index_follow_their_run(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let mut ids = Vec::new();
    for host in ["web01", "web02", "web01"] {
        let id = RunId::new();
        let mut write = run_write(id, RunState::Completed, None, None);
        if let Write::Run { index, .. } = &mut write {
            index.inputs = vec![("host".into(), host.into()), ("port".into(), "443".into())];
        }
        store.commit(vec![write]).await.unwrap();
        ids.push(id);
    }
    let items: Vec<Write> = (0..5u64)
        .map(|k| Write::Item {
            run: ids[0],
            step: "Each".into(),
            index: k,
            doc: format!("{{\"value\":{k}}}").into_bytes(),
        })
        .collect();
    store.commit(items).await.unwrap();
    let read = store.items(ids[0], "Each", 2, 10).await.unwrap();
    assert_eq!(read.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert_eq!(read[0].1, b"{\"value\":2}");
    assert!(store.items(ids[0], "Other", 0, 10).await.unwrap().is_empty());
    // An item written again replaces its document.
    store
        .commit(vec![Write::Item {
            run: ids[0],
            step: "Each".into(),
            index: 2,
            doc: b"{\"value\":2,\"output\":true}".to_vec(),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.items(ids[0], "Each", 2, 1).await.unwrap()[0].1,
        b"{\"value\":2,\"output\":true}"
    );

    let pairs = |host: &str| {
        vec![
            ("host".to_owned(), host.to_owned()),
            ("port".to_owned(), "443".to_owned()),
        ]
    };
    let found: Vec<RunId> = store
        .runs_with_inputs(&pairs("web01"), None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, vec![ids[2], ids[0]], "newest first");
    let page: Vec<RunId> = store
        .runs_with_inputs(&pairs("web01"), Some(ids[2]), 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page, vec![ids[0]]);
    let wrong_port = vec![
        ("host".to_owned(), "web01".to_owned()),
        ("port".to_owned(), "80".to_owned()),
    ];
    assert!(store
        .runs_with_inputs(&wrong_port, None, 10)
        .await
        .unwrap()
        .is_empty());

    store.commit(vec![Write::DeleteRun(ids[0])]).await.unwrap();
    assert!(store.items(ids[0], "Each", 0, 10).await.unwrap().is_empty());
    let found: Vec<RunId> = store
        .runs_with_inputs(&pairs("web01"), None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, vec![ids[2]]);
}

fn doc_write(kind: DocKind, key: &str, doc: Option<&str>, condition: DocCondition) -> Write {
    Write::Doc {
        kind,
        key: key.into(),
        doc: doc.map(|d| d.as_bytes().to_vec()),
        condition,
    }
}

/// A keyed document is created once, changed only at the revision read, read back by key
/// range within its kind (keys compare as bytes, `\0` first), and removed.
async fn keyed_documents_keep_their_conditions_and_read_by_range(backend: Backend) {
    let (store, _, _dir) = open(backend, "r1").await;
    let (schedule, event) = (DocKind::Schedule, DocKind::Event);
    store
        .commit(vec![doc_write(schedule, "a", Some("1"), DocCondition::Absent)])
        .await
        .unwrap();
    let taken = store
        .commit(vec![doc_write(schedule, "a", Some("2"), DocCondition::Absent)])
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let first = store.doc(schedule, "a").await.unwrap().expect("stored");
    assert_eq!((first.revision, first.doc.as_slice()), (1, b"1".as_slice()));
    store
        .commit(vec![doc_write(schedule, "a", Some("2"), DocCondition::At(1))])
        .await
        .unwrap();
    let stale = store
        .commit(vec![doc_write(schedule, "a", Some("3"), DocCondition::At(1))])
        .await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    let second = store.doc(schedule, "a").await.unwrap().expect("stored");
    assert_eq!((second.revision, second.doc.as_slice()), (2, b"2".as_slice()));

    // Two writes of one key in one commit: the second sees the first.
    store
        .commit(vec![
            doc_write(schedule, "b", Some("x"), DocCondition::Absent),
            doc_write(schedule, "b", Some("y"), DocCondition::At(1)),
        ])
        .await
        .unwrap();
    assert_eq!(store.doc(schedule, "b").await.unwrap().unwrap().revision, 2);

    // Ranges stay within their kind and their bounds.
    let keys = [
        "pay\0A-1\x00001",
        "pay\0A-1\x00002",
        "pay\0A-10\x00001",
        "pay\0B\x00001",
        "pax",
    ];
    store
        .commit(
            keys.iter()
                .map(|k| doc_write(event, k, Some("{}"), DocCondition::Any))
                .collect(),
        )
        .await
        .unwrap();
    let found = store
        .docs(event, "pay\0A-1\0", "pay\0A-1\u{1}", 10)
        .await
        .unwrap();
    let found: Vec<&str> = found.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(found, vec!["pay\0A-1\x00001", "pay\0A-1\x00002"]);
    assert_eq!(
        store
            .docs(event, "pay\0A-1\0", "pay\0A-1\u{1}", 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.docs(event, "", "\u{10ffff}", 100).await.unwrap().len(),
        keys.len()
    );
    assert_eq!(
        store.docs(schedule, "", "\u{10ffff}", 100).await.unwrap().len(),
        2
    );

    // Removed at its revision, or whatever it is.
    let stale = store
        .commit(vec![doc_write(schedule, "a", None, DocCondition::At(1))])
        .await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    store
        .commit(vec![
            doc_write(schedule, "a", None, DocCondition::At(2)),
            doc_write(event, "pax", None, DocCondition::Any),
        ])
        .await
        .unwrap();
    assert!(store.doc(schedule, "a").await.unwrap().is_none());
    assert!(store.doc(event, "pax").await.unwrap().is_none());
}

/// A run waiting at one step for `assignees` (and at a `for_each` item for `item_assignees`),
/// written as the engine writes it: the document and the index agree.
fn waiting_write(id: RunId, assignees: &[&str], item_assignees: &[&str], expect: Option<u64>) -> Write {
    let waiting = |who: &[&str]| serde_json::json!({"state": "waiting", "waiting": {"assignees": who}});
    let mut step = waiting(assignees);
    if !item_assignees.is_empty() {
        step["map"] = serde_json::json!({"active": {"3": {"value": 3, "record": waiting(item_assignees)}}});
    }
    let doc = serde_json::to_vec(&serde_json::json!({
        "state": "waiting",
        "workflow": {"id": "wf"},
        "started_by": "tester",
        "created_at": weft::run::rfc3339(weft::run::now()),
        "steps": [{"state": "completed"}, step],
    }))
    .unwrap();
    let mut index = index(RunState::Waiting);
    index.waiting_for = weft::store::index_of(&doc).unwrap().waiting_for;
    Write::Run {
        id,
        doc,
        index,
        expect,
        owner: None,
    }
}

async fn inboxes_read_the_runs_waiting_for_their_reader(backend: Backend) {
    let (store, location, _dir) = open(backend, "r1").await;
    let ids: Vec<RunId> = (0..7).map(|_| RunId::new()).collect();
    let writes = vec![
        waiting_write(ids[0], &["alice"], &[], None),
        waiting_write(ids[1], &["group:ops"], &[], None),
        waiting_write(ids[2], &["bob", "group:ops"], &[], None),
        run_write(ids[3], RunState::Running, None, None),
        waiting_write(ids[4], &["alice"], &[], None),
        waiting_write(ids[5], &["carol"], &[], None),
        waiting_write(ids[6], &[], &["alice"], None),
    ];
    store.commit(writes).await.unwrap();
    // Answered (no longer waiting), handed to someone else, deleted.
    store
        .commit(vec![
            run_write(ids[4], RunState::Completed, Some(1), None),
            waiting_write(ids[5], &["alice", "alice"], &[], Some(1)),
            Write::DeleteRun(ids[1]),
        ])
        .await
        .unwrap();
    let store = &store;
    let found = |who: &'static [&'static str], before: Option<RunId>, limit: usize| async move {
        let who: Vec<String> = who.iter().map(|w| (*w).to_owned()).collect();
        store
            .runs_waiting_for(&who, before, limit)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(found(&["alice"], None, 10).await, vec![ids[6], ids[5], ids[0]]);
    assert_eq!(
        found(&["alice", "group:ops"], None, 10).await,
        vec![ids[6], ids[5], ids[2], ids[0]]
    );
    assert_eq!(
        found(&["alice", "group:ops"], None, 2).await,
        vec![ids[6], ids[5]]
    );
    assert_eq!(
        found(&["alice", "group:ops"], Some(ids[5]), 2).await,
        vec![ids[2], ids[0]]
    );
    assert_eq!(found(&["carol", "group:sec", "dave"], None, 10).await, vec![]);
    assert_eq!(found(&[], None, 10).await, vec![]);

    // A database written before the index existed gets it when opened.
    if let Location::Postgres(url) = &location {
        crate::postgres::execute(url, "UPDATE runs SET waiting_for = NULL");
        assert_eq!(found(&["alice"], None, 10).await, vec![]);
        let reopened = weft::store::open(&location, "r2".into()).await.unwrap();
        let alice = reopened
            .runs_waiting_for(&["alice".to_owned()], None, 10)
            .await
            .unwrap();
        assert_eq!(
            alice.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![ids[6], ids[5], ids[0]]
        );
    }
}
