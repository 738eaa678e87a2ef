//! One storage suite, run against both databases.

use fugue::store::{Backend, Store};

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
