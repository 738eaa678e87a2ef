//! Following a job: a snapshot first, then every change (a state, a training
//! job's epochs and its running epoch's progress, an evaluation's progress) as
//! the database records it, until the job ends. Each kind of job view says what
//! its changes are ([`Followed`]).
//!
//! The stream reads the job's rows rather than listening to the worker, because
//! the worker may be another process on another machine; what a client sees is
//! exactly what was committed. It reads them when the job changed: on Postgres,
//! every write about a job notifies `fugue_job_events` with its id, and one
//! listener per node ([`JobChanges::listen`]) wakes that job's followers, which
//! otherwise read every [`FALLBACK_INTERVAL`] (a notification sent while the
//! listener's connection was down is lost). On SQLite, a single node whose
//! training processes write the rows themselves, followers read every
//! [`FOLLOW_INTERVAL`].

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use utoipa::ToSchema;

use super::{Jobs, TrainingJob};
use crate::model::search::TrialRecord;
use crate::store::{JobChannel, JobNotifications, JobState};
use crate::train::EpochMetrics;
use crate::train::progress::StepProgress;

/// How often a followed job is read without notifications (SQLite).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// How often a followed job is read with notifications (Postgres), in case one
/// was lost.
pub const FALLBACK_INTERVAL: Duration = Duration::from_secs(10);

/// The ids of jobs that changed, from this node's Postgres listener.
#[derive(Clone, Default)]
pub struct JobChanges {
    sender: Option<broadcast::Sender<String>>,
}

impl JobChanges {
    /// Listens on Postgres at `url` for as long as the process runs, reconnecting
    /// when the connection drops.
    pub fn listen(url: String) -> JobChanges {
        let (sender, _) = broadcast::channel(1024);
        let changes = sender.clone();
        tokio::spawn(async move {
            loop {
                match JobNotifications::connect(&url, JobChannel::Changed).await {
                    Ok(mut notifications) => loop {
                        match notifications.next().await {
                            Ok(id) => {
                                let _ = changes.send(id);
                            }
                            Err(error) => {
                                tracing::warn!(%error, "job event notifications interrupted; reconnecting");
                                break;
                            }
                        }
                    },
                    Err(error) => tracing::warn!(%error, "could not listen for job events; followers poll"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        JobChanges { sender: Some(sender) }
    }
}

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
    /// A search's trial moved: an epoch of it finished (`metrics`), or, with
    /// `metrics` null, its rung ended and it went on to the next or was stopped.
    /// `trial` is its record as it now stands (number, drawn hyperparameters,
    /// rung, best validation loss, `stopped`).
    Trial { attempt: i64, trial: Box<TrialRecord>, metrics: Option<EpochMetrics> },
    /// How far the running epoch is. The training process records it at most every
    /// 500 ms and a follower reads at most every 250 ms, so at most two a second;
    /// an epoch shorter than 500 ms sends none.
    Progress { attempt: i64, progress: StepProgress },
    /// The stream ends after this: the job reached a final state.
    End { state: JobState },
}

/// A view of a job that clients can follow: how to read it again, and the
/// events that say what changed between two reads.
pub trait Followed: Sized + Send + 'static {
    /// One message of the job's event stream.
    type Event: Serialize + Send + 'static;

    /// The job as it stands now; `None` once it is gone.
    fn read(jobs: &Jobs, id: &str) -> impl Future<Output = anyhow::Result<Option<Self>>> + Send;
    fn id(&self) -> &str;
    fn state(&self) -> JobState;
    /// What a follower is sent first.
    fn snapshot(&self) -> Self::Event;
    /// The events that take a follower from `before` to this, the end not included.
    fn changes(&self, before: &Self) -> Vec<Self::Event>;
    /// The last event, once the job has reached a final state.
    fn end(state: JobState) -> Self::Event;
}

/// Follows a job (as first read) into a channel; the task ends when the job does
/// or the receiver is dropped.
pub fn follow<J: Followed>(jobs: Jobs, first: J) -> mpsc::Receiver<J::Event> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let id = first.id().to_owned();
        let mut done = first.state().is_terminal();
        if sender.send(first.snapshot()).await.is_err() {
            return;
        }
        if done {
            let _ = sender.send(J::end(first.state())).await;
            return;
        }
        let mut last = first;
        let mut changes = jobs.changes.sender.as_ref().map(broadcast::Sender::subscribe);
        let interval = if changes.is_some() { FALLBACK_INTERVAL } else { FOLLOW_INTERVAL };
        // Read once at once: a change between the snapshot and the subscription
        // would otherwise wait for the fallback.
        let mut caught_up = false;
        while !done {
            let changed = async {
                if !std::mem::replace(&mut caught_up, true) {
                    return;
                }
                match &mut changes {
                    Some(changes) => loop {
                        match changes.recv().await {
                            Ok(changed) if changed == id => return,
                            Ok(_) => {}
                            // Missed some: read to be sure.
                            Err(broadcast::error::RecvError::Lagged(_)) => return,
                            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                        }
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(interval) => {}
                () = sender.closed() => return,
            }
            let job = match J::read(&jobs, &id).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "could not read a followed job");
                    continue;
                }
            };
            let mut events = job.changes(&last);
            if job.state().is_terminal() {
                events.push(J::end(job.state()));
                done = true;
            }
            last = job;
            for event in events {
                if sender.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    receiver
}

impl Followed for TrainingJob {
    type Event = JobEvent;

    async fn read(jobs: &Jobs, id: &str) -> anyhow::Result<Option<TrainingJob>> {
        jobs.view(id).await
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn state(&self) -> JobState {
        self.state
    }

    fn snapshot(&self) -> JobEvent {
        JobEvent::Snapshot { job: Box::new(self.clone()) }
    }

    fn changes(&self, before: &TrainingJob) -> Vec<JobEvent> {
        let mut events: Vec<JobEvent> = unsent(&self.epochs, &before.epochs)
            .map(|metrics| JobEvent::Epoch {
                attempt: self.attempt,
                metrics: metrics.clone(),
                eta_seconds: self.eta_seconds,
            })
            .collect();
        for trial in &self.trials {
            let known = before.trials.iter().find(|known| known.record.trial == trial.record.trial);
            let event = |metrics: Option<&EpochMetrics>| JobEvent::Trial {
                attempt: self.attempt,
                trial: Box::new(trial.record.clone()),
                metrics: metrics.cloned(),
            };
            let len = events.len();
            events.extend(
                unsent(&trial.epochs, known.map_or(&[], |known| &known.epochs)).map(|m| event(Some(m))),
            );
            if events.len() == len && known.map(|known| &known.record) != Some(&trial.record) {
                events.push(event(None));
            }
        }
        if self.progress.is_some() && self.progress != before.progress {
            events.extend(
                self.progress.clone().map(|progress| JobEvent::Progress { attempt: self.attempt, progress }),
            );
        }
        let state = state_of(self);
        if state != state_of(before) {
            events.push(state);
        }
        events
    }

    fn end(state: JobState) -> JobEvent {
        JobEvent::End { state }
    }
}

/// The epochs of `now` that `before` did not have as they are.
fn unsent<'a>(now: &'a [EpochMetrics], before: &[EpochMetrics]) -> impl Iterator<Item = &'a EpochMetrics> {
    let sent: HashMap<u32, &EpochMetrics> = before.iter().map(|metrics| (metrics.epoch, metrics)).collect();
    now.iter().filter(move |metrics| sent.get(&metrics.epoch) != Some(metrics))
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
