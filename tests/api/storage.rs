//! One storage suite, run against both databases.

use std::collections::HashSet;

use fugue::store::{Backend, DatasetDeletion, DatasetFileRow, DatasetRow, Store};

use crate::support::TestDatabase;

async fn each_backend<F, Fut>(suite: F)
where
    F: Fn(TestDatabase) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    suite(TestDatabase::sqlite()).await;
    suite(TestDatabase::postgres().await).await;
}

#[tokio::test]
async fn opening_migrates_to_the_current_schema() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), store.expected_schema_version());
        assert!(store.expected_schema_version() >= 1);
        store.ping().await.unwrap();
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_migrate_twice() {
    each_backend(|database| async move {
        let first = Store::open(database.url()).await.unwrap();
        first.put_setting("default_model", "\"bach\"").await.unwrap();
        let version = first.schema_version().await.unwrap();
        first.close().await;

        let second = Store::open(database.url()).await.unwrap();
        assert_eq!(second.schema_version().await.unwrap(), version);
        assert_eq!(second.setting("default_model").await.unwrap().as_deref(), Some("\"bach\""));
        second.close().await;
    })
    .await;
}

#[tokio::test]
async fn settings_are_absent_then_set_then_replaced() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        assert_eq!(store.setting("theme").await.unwrap(), None);
        store.put_setting("theme", "dark").await.unwrap();
        assert_eq!(store.setting("theme").await.unwrap().as_deref(), Some("dark"));
        store.put_setting("theme", "light").await.unwrap();
        assert_eq!(store.setting("theme").await.unwrap().as_deref(), Some("light"));
        // Values are stored verbatim, quotes and unicode included.
        store.put_setting("motto", "it's «fugue»; DROP TABLE settings").await.unwrap();
        assert_eq!(
            store.setting("motto").await.unwrap().as_deref(),
            Some("it's «fugue»; DROP TABLE settings")
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_writers_leave_exactly_one_of_their_values() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.put_setting("race", &format!("writer-{i}")).await })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let value = store.setting("race").await.unwrap().unwrap();
        assert!((0..8).any(|i| value == format!("writer-{i}")), "{value}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn backends_are_told_apart_by_url() {
    assert_eq!(Backend::of_url("postgres://h/db").unwrap(), Backend::Postgres);
    assert_eq!(Backend::of_url("postgresql://h/db").unwrap(), Backend::Postgres);
    assert_eq!(Backend::of_url("sqlite://data/fugue.db").unwrap(), Backend::Sqlite);
    let error = Store::open("mysql://h/db").await.unwrap_err().to_string();
    assert!(error.contains("unsupported database URL scheme"), "{error}");
}

fn dataset_row(id: &str) -> DatasetRow {
    DatasetRow {
        id: id.to_owned(),
        name: "chorales".to_owned(),
        include_drums: true,
        file_count: 2,
        note_count: 99,
        report: r#"{"accepted":[]}"#.to_owned(),
        created_at: 0,
    }
}

fn file_row(name: &str, sha256: &str) -> DatasetFileRow {
    DatasetFileRow { file_name: name.to_owned(), sha256: sha256.to_owned(), bytes: 10 }
}

#[tokio::test]
async fn datasets_and_their_files_round_trip() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        let files = [file_row("b.mid", "hash-b"), file_row("a.mid", "hash-a")];
        let inserted = store.insert_dataset(dataset_row("d1"), &files).await.unwrap();
        assert!(inserted.created_at > 0);
        assert_eq!(store.dataset("d1").await.unwrap(), Some(inserted.clone()));
        assert_eq!(store.datasets().await.unwrap(), vec![inserted]);
        assert_eq!(store.dataset_files("d1").await.unwrap(), files, "upload order is kept");
        assert_eq!(store.dataset("nope").await.unwrap(), None);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_dataset_reports_the_blobs_nobody_uses() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        store
            .insert_dataset(dataset_row("d1"), &[file_row("a", "shared"), file_row("b", "own")])
            .await
            .unwrap();
        store.insert_dataset(dataset_row("d2"), &[file_row("a", "shared")]).await.unwrap();
        assert_eq!(store.delete_dataset("d1").await.unwrap(), deleted(&["own"]));
        assert_eq!(store.dataset_files("d1").await.unwrap(), vec![]);
        assert_eq!(store.delete_dataset("d1").await.unwrap(), DatasetDeletion::NotFound);
        assert_eq!(store.delete_dataset("d2").await.unwrap(), deleted(&["shared"]));
        store.close().await;
    })
    .await;
}

fn deleted(orphans: &[&str]) -> DatasetDeletion {
    DatasetDeletion::Deleted { orphans: orphans.iter().map(|hash| hash.to_string()).collect() }
}

#[tokio::test]
async fn a_dataset_with_a_clashing_id_leaves_no_rows_behind() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        store.insert_dataset(dataset_row("d1"), &[file_row("a", "x")]).await.unwrap();
        // Same id again: the dataset insert fails, and none of its files are kept.
        assert!(
            store.insert_dataset(dataset_row("d1"), &[file_row("b", "y"), file_row("c", "z")]).await.is_err()
        );
        assert_eq!(store.dataset_files("d1").await.unwrap(), vec![file_row("a", "x")]);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_dataset_writes_all_succeed() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        let workers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    for round in 0..5 {
                        let id = format!("d{i}-{round}");
                        store.insert_dataset(dataset_row(&id), &[file_row("a", "shared")]).await?;
                        store.delete_dataset(&id).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap().expect("no write is refused for a busy database");
        }
        assert_eq!(store.datasets().await.unwrap(), vec![]);
        store.close().await;
    })
    .await;
}

fn new_job(id: &str, max_attempts: i64) -> fugue::store::NewJob {
    fugue::store::NewJob {
        id: id.to_owned(),
        name: "job".to_owned(),
        work: fugue::store::JobWork::Training {
            dataset_id: "d1".to_owned(),
            preset: fugue::shared::Preset::Fugue,
            overrides: Some("{}".to_owned()),
            search: None,
        },
        parameters: "{}".to_owned(),
        idempotency_key: None,
        request_sha256: "0".to_owned(),
        max_attempts,
    }
}

#[tokio::test]
async fn failed_attempts_back_off_by_the_formula_until_the_attempts_run_out() {
    use fugue::store::{Enqueued, JobKind, JobState};
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        store.insert_dataset(dataset_row("d1"), &[file_row("a", "x")]).await.unwrap();
        assert!(matches!(store.enqueue_job(new_job("poison", 3), 100).await.unwrap(), Enqueued::Created(_)));
        let config = crate::support::fast_queue();
        let mut waits = Vec::new();
        for attempt in 1..=3 {
            let claim = loop {
                if let Some(claim) =
                    store.claim_job(JobKind::Training, "w", "cpu", &format!("token-{attempt}")).await.unwrap()
                {
                    break claim;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            };
            assert_eq!(claim.job.attempt, attempt);
            let backoff = config.backoff_ms(attempt);
            let next = store.fail_attempt("poison", &claim.token, "boom", backoff).await.unwrap();
            let job = store.job("poison").await.unwrap().unwrap();
            assert_eq!(job.error.as_deref(), Some("boom"), "the error is recorded on every attempt");
            if attempt < 3 {
                assert_eq!(next, Some(JobState::Queued));
                waits.push(job.run_after - job.updated_at);
            } else {
                assert_eq!(next, Some(JobState::Failed));
                assert!(job.finished_at.is_some());
            }
            // A stale token writes nothing.
            assert_eq!(store.fail_attempt("poison", &claim.token, "late", 0).await.unwrap(), None);
        }
        assert_eq!(waits, [100, 200], "retry_backoff_ms doubled per attempt");
        assert_eq!(
            store.claim_job(JobKind::Training, "w", "cpu", "token-4").await.unwrap(),
            None,
            "a failed job is never claimed again"
        );
        store.close().await;
    })
    .await;
}

/// Blob collection across nodes: a deletion marks its orphans; a writer on
/// another node marks the same blob before it finds it stored, so a collector
/// leaves it; rows committed first keep it; only an old mark on an unreferenced
/// blob lets it go.
#[tokio::test]
async fn a_blob_is_collected_only_past_its_grace_and_never_from_under_a_writer() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        let removed = std::sync::Mutex::new(Vec::<String>::new());
        let remover = |hash: &str| {
            removed.lock().unwrap().push(hash.to_owned());
            std::future::ready(anyhow::Ok(()))
        };
        store.insert_dataset(dataset_row("d1"), &[file_row("a", "h")]).await.unwrap();
        store.delete_dataset("d1").await.unwrap();
        let orphaned_at = fugue::store::now_ms();
        // Within the grace period: nothing to collect.
        assert!(store.blobs_marked_before(orphaned_at - 60_000, 10).await.unwrap().is_empty());
        // A writer on another node marks it, then finds the blob stored and skips it.
        store.mark_blobs(&["h".to_owned()], orphaned_at + 1_000).await.unwrap();
        // A collector whose grace ended between the two marks leaves it alone.
        assert!(!store.collect_blob("h", orphaned_at + 500, || remover("h")).await.unwrap());
        // The writer's rows commit: the blob is in use; a later collection only unmarks it.
        store.insert_dataset(dataset_row("d2"), &[file_row("a", "h")]).await.unwrap();
        assert!(!store.collect_blob("h", orphaned_at + 2_000, || remover("h")).await.unwrap());
        assert!(store.blobs_marked_before(i64::MAX, 10).await.unwrap().is_empty());
        assert!(removed.lock().unwrap().is_empty());
        // Orphaned again and past the grace period: collected once.
        store.delete_dataset("d2").await.unwrap();
        let cutoff = fugue::store::now_ms() + 1;
        assert_eq!(store.blobs_marked_before(cutoff, 10).await.unwrap(), ["h"]);
        assert!(store.collect_blob("h", cutoff, || remover("h")).await.unwrap());
        assert!(!store.collect_blob("h", cutoff, || remover("h")).await.unwrap());
        assert_eq!(*removed.lock().unwrap(), ["h"]);
        // A removal that fails keeps the mark for the next collection.
        store.mark_blobs(&["g".to_owned()], 0).await.unwrap();
        let failing = || std::future::ready(Err(anyhow::anyhow!("the store is down")));
        assert!(store.collect_blob("g", 1, failing).await.is_err());
        assert_eq!(store.blobs_marked_before(1, 10).await.unwrap(), ["g"]);
        store.close().await;
    })
    .await;
}

/// A writer that marks a blob while a collector is removing it waits for the
/// collector to finish, and then finds the blob gone (and stores it again).
#[tokio::test]
async fn a_writer_waits_for_a_collector_that_holds_the_blob() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        store.mark_blobs(&["h".to_owned()], 0).await.unwrap();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (started, is_removing) = tokio::sync::oneshot::channel::<()>();
        let collector = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .collect_blob("h", 1, || async move {
                        let _ = started.send(());
                        let _ = released.await;
                        Ok(())
                    })
                    .await
                    .unwrap()
            })
        };
        is_removing.await.unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move { store.mark_blobs(&["h".to_owned()], fugue::store::now_ms()).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!writer.is_finished(), "the writer waited for the collector");
        release.send(()).unwrap();
        assert!(collector.await.unwrap(), "the collector removed the blob");
        writer.await.unwrap().unwrap();
        // The writer's mark is new: the blob it stores again is safe for a grace period.
        assert!(store.blobs_marked_before(fugue::store::now_ms() - 60_000, 10).await.unwrap().is_empty());
        assert_eq!(store.blobs_marked_before(i64::MAX, 10).await.unwrap(), ["h"]);
        store.close().await;
    })
    .await;
}

/// Migration 0008 rebuilds the training-job tables as the one job queue: a job
/// (and its epochs) written before it, with its progress and overrides, reads back
/// as the same training job after (and 0009's epochs keyed by trial too).
#[tokio::test]
async fn a_training_job_from_before_job_kinds_survives_the_migration() {
    use fugue::store::{JobState, JobWork};
    each_backend(|database| async move {
        sqlx::any::install_default_drivers();
        let url = match database.url().strip_prefix("sqlite://") {
            Some(path) => {
                std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
                format!("{}?mode=rwc", database.url())
            }
            None => database.url().to_owned(),
        };
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::migrate!("./migrations").run_to(7, &pool).await.unwrap();
        sqlx::query(
            "INSERT INTO training_jobs (id, name, dataset_id, preset, hyperparameters, idempotency_key, \
             request_sha256, state, attempt, max_attempts, run_after, cancel_requested, model_id, created_at, \
             finished_at, updated_at, progress, overrides) \
             VALUES ('old', 'chorales', 'd1', 'fugue', '{\"epochs\":2}', 'key-1', 'abc', 'succeeded', 1, 3, 0, 0, \
             'm1', 10, 20, 20, '{\"epoch\":2}', '{\"epochs\":2}')",
        )
        .execute(&pool)
        .await
        .unwrap();
        for epoch in [1, 2] {
            sqlx::query("INSERT INTO training_job_epochs (job_id, epoch, attempt, metrics) VALUES ('old', $1, 1, '{}')")
                .bind(epoch)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;

        let store = Store::open(database.url()).await.unwrap();
        let job = store.job("old").await.unwrap().expect("the job is still there");
        assert_eq!(
            job.work,
            JobWork::Training {
                dataset_id: "d1".to_owned(),
                preset: fugue::shared::Preset::Fugue,
                overrides: Some(r#"{"epochs":2}"#.to_owned()),
                search: None,
            }
        );
        assert_eq!(job.parameters, r#"{"epochs":2}"#);
        assert_eq!((job.state, job.attempt, job.model_id.as_deref()), (JobState::Succeeded, 1, Some("m1")));
        assert_eq!((job.created_at, job.finished_at), (10, Some(20)));
        assert_eq!((job.progress.as_deref(), job.pieces_done), (Some(r#"{"epoch":2}"#), 0));
        // Migration 0009 keys epochs by trial too: a job of one model's are trial 0's.
        let epochs: Vec<(i64, i64)> =
            store.job_epochs("old").await.unwrap().iter().map(|epoch| (epoch.trial, epoch.epoch)).collect();
        assert_eq!(epochs, [(0, 1), (0, 2)]);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_renewal_names_the_holds_of_its_node_that_are_still_there() {
    each_backend(|database| async move {
        let store = Store::open(database.url()).await.unwrap();
        let (now, later) = (fugue::store::now_ms(), fugue::store::now_ms() + 30_000);
        // Node a holds two bundled models; one of its holds lapsed (a could not
        // renew it in time), and node b's renewal clears it.
        assert!(store.hold_model("h1", "bach", "a", later, false).await.unwrap());
        assert!(store.hold_model("h2", "folk", "a", now - 1_000, false).await.unwrap());
        assert!(store.hold_model("h3", "bach", "b", later, false).await.unwrap());
        assert_eq!(store.renew_holds("b", later).await.unwrap(), HashSet::from(["h3".to_owned()]));
        assert_eq!(store.renew_holds("a", later).await.unwrap(), HashSet::from(["h1".to_owned()]));
        store.close().await;
    })
    .await;
}
