//! Following a job: a snapshot first, then every state change and every epoch as
//! the database records them, until the job ends.
//!
//! The stream polls the job's rows rather than listening to the worker, because
//! the worker may be another process on another machine; what a client sees is
//! exactly what was committed.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::{Jobs, TrainingJob};
use crate::store::JobState;
use crate::train::EpochMetrics;

/// How often a followed job is read.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// One message of `GET /v1/training-jobs/{id}/events` (WebSocket text frame or SSE
/// `data:`), tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// The job as it stands when following starts.
    Snapshot { job: Box<TrainingJob> },
    /// The job changed state, attempt or device, or cancellation was asked for.
    State {
        state: JobState,
        attempt: i64,
        device: Option<String>,
        cancel_requested: bool,
        error: Option<String>,
        model_id: Option<String>,
    },
    /// An epoch finished (a resumed attempt that redoes an epoch sends it again).
    Epoch { attempt: i64, metrics: EpochMetrics, eta_seconds: Option<f64> },
    /// The stream ends after this: the job reached a final state.
    End { state: JobState },
}

/// Follows job `id` (which must exist) into a channel; the task ends when the job
/// does or the receiver is dropped.
pub fn follow(jobs: Jobs, first: TrainingJob) -> mpsc::Receiver<JobEvent> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut sent_epochs: HashMap<u32, EpochMetrics> =
            first.epochs.iter().map(|metrics| (metrics.epoch, metrics.clone())).collect();
        let mut last = state_of(&first);
        let mut done = first.state.is_terminal();
        if sender.send(JobEvent::Snapshot { job: Box::new(first.clone()) }).await.is_err() {
            return;
        }
        if done {
            let _ = sender.send(JobEvent::End { state: first.state }).await;
            return;
        }
        while !done {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                () = sender.closed() => return,
            }
            let job = match jobs.view(&first.id).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "could not read a followed job");
                    continue;
                }
            };
            let mut events = Vec::new();
            for metrics in &job.epochs {
                if sent_epochs.get(&metrics.epoch) != Some(metrics) {
                    sent_epochs.insert(metrics.epoch, metrics.clone());
                    let (attempt, eta_seconds) = (job.attempt, job.eta_seconds);
                    events.push(JobEvent::Epoch { attempt, metrics: metrics.clone(), eta_seconds });
                }
            }
            let state = state_of(&job);
            if state != last {
                events.push(state.clone());
                last = state;
            }
            if job.state.is_terminal() {
                events.push(JobEvent::End { state: job.state });
                done = true;
            }
            for event in events {
                if sender.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    receiver
}

fn state_of(job: &TrainingJob) -> JobEvent {
    JobEvent::State {
        state: job.state,
        attempt: job.attempt,
        device: job.device.clone(),
        cancel_requested: job.cancel_requested,
        error: job.error.clone(),
        model_id: job.model_id.clone(),
    }
}
