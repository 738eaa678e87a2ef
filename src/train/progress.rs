//! Progress within an epoch: how far the running epoch is, how fast it goes and
//! when it ends. [`super::fit`] reports it after every step; each consumer keeps
//! its own pace with a [`Throttle`] (a terminal redraws often, a job writes to
//! the database at most every [`JOB_PROGRESS_INTERVAL`]).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How often a training job records its progress within an epoch, at most: its
/// event streams send at most one `progress` message per write.
pub const JOB_PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Where the running epoch stands after a training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepProgress {
    /// The search's trial the epoch belongs to; absent outside a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<u32>,
    /// The epoch running (it has not finished).
    pub epoch: u32,
    /// Steps (batches) done in this epoch, and how many it has.
    pub step: usize,
    pub steps: usize,
    /// Steps per second in this epoch so far.
    pub steps_per_second: f64,
    /// Seconds until this epoch's last step at that pace (validation not included).
    pub eta_seconds: f64,
    /// Mean training loss per item over this epoch's steps so far.
    pub train_loss: f64,
}

impl StepProgress {
    /// Step `step` of `steps` of `epoch`, `elapsed` after the epoch began.
    pub fn of(epoch: u32, step: usize, steps: usize, elapsed: Duration, train_loss: f64) -> StepProgress {
        let steps_per_second = step as f64 / elapsed.as_secs_f64().max(1e-9);
        let eta_seconds = steps.saturating_sub(step) as f64 / steps_per_second.max(1e-9);
        StepProgress { trial: None, epoch, step, steps, steps_per_second, eta_seconds, train_loss }
    }

    /// The same progress, as trial `trial`'s.
    pub fn of_trial(self, trial: u32) -> StepProgress {
        StepProgress { trial: Some(trial), ..self }
    }

    /// Done, as a share of the epoch's steps.
    pub fn fraction(&self) -> f64 {
        self.step as f64 / self.steps.max(1) as f64
    }
}

/// Lets an event through at most once per interval.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle { interval, last: None }
    }

    /// True when an interval has passed since the last `true` (the first call waits
    /// one interval too: an epoch shorter than that reports no progress).
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        let last = *self.last.get_or_insert(now);
        if now.duration_since(last) >= self.interval {
            self.last = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_the_pace_and_what_is_left() {
        let progress = StepProgress::of(3, 25, 100, Duration::from_secs(5), 2.5);
        assert_eq!(progress.steps_per_second, 5.0);
        assert_eq!(progress.eta_seconds, 15.0);
        assert_eq!(progress.fraction(), 0.25);
    }

    #[test]
    fn a_throttle_lets_one_event_through_per_interval() {
        let mut throttle = Throttle::new(Duration::from_millis(40));
        let started = Instant::now();
        let mut passed = 0;
        while started.elapsed() < Duration::from_millis(200) {
            passed += u32::from(throttle.due());
        }
        // 200 ms hold at most five 40 ms intervals, and the first waits one.
        assert!((1..=5).contains(&passed), "{passed}");
    }
}
