//! Store writes that ride out a database restart, for the worker and the training
//! process alike.

use std::time::{Duration, Instant};

/// Retries a store write through database outages for up to `patience`; `None`
/// when it never got through.
pub async fn retry<T, F, Fut>(patience: Duration, mut write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(value) => return Some(value),
            Err(error) if started.elapsed() < patience => {
                tracing::warn!(error = format!("{error:#}"), "database write failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "database write failed; giving up");
                return None;
            }
        }
    }
}
