//! Who may start a generation session now. Two things must hold: a permit is free
//! (a count of live sessions, held by each session for its whole life and
//! released when it is dropped, on every path: finished, failed, cancelled, or
//! its worker restarted), and the device has headroom (the engine says so: no
//! realtime listener is falling behind, and the session's kind has room: see
//! [`Places`] and [`super::load`]). A request for which either fails waits in a
//! bounded queue, first come first served, for a bounded time; a refusal says
//! when to try again, from how fast sessions have lately ended.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::EngineMetrics;
use crate::shared::LockSurvivingPanics;

/// How far back the rate of ended sessions is read, for `Retry-After`.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How often a request at the head of the queue looks whether the device has
/// room again.
const HEADROOM_POLL: Duration = Duration::from_millis(5);
/// Longest `Retry-After` given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The queue's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueLimits {
    /// Most requests waiting at once; more are refused.
    pub max_waiting: usize,
    /// Longest a request waits before it is refused.
    pub max_wait: Duration,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// As many requests wait as the queue holds.
    QueueFull,
    /// It waited the longest a request may.
    WaitedTooLong,
    /// No worker is running (every one died).
    NoWorker,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::WaitedTooLong => "queue_timeout",
            Refusal::NoWorker => "no_worker",
        }
    }
}

/// A refusal and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub reason: Refusal,
    pub retry_after: Duration,
}

pub struct Admission {
    capacity: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: QueueLimits,
    /// Held by the request at the head of the queue while it waits for headroom.
    head: tokio::sync::Mutex<()>,
    /// When sessions ended, over the last [`RATE_WINDOW`].
    ended: Mutex<VecDeque<Instant>>,
    metrics: Arc<EngineMetrics>,
}

/// A session's share of the engine's capacity; dropping it frees the share.
pub struct Permit {
    admission: Arc<Admission>,
    _capacity: OwnedSemaphorePermit,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut ended = self.admission.ended.lock_surviving_panics();
        ended.push_back(now);
        while ended.front().is_some_and(|&at| now.duration_since(at) > RATE_WINDOW) {
            ended.pop_front();
        }
    }
}

/// The sessions of one kind holding a place, each given back when its [`Place`]
/// drops. Whether one more fits is the caller's rule: a fixed limit for the fast
/// sessions, the projected load for the realtime listeners ([`super::load`]).
#[derive(Default)]
pub struct Places {
    taken: AtomicUsize,
}

/// One of the [`Places`], given back when dropped.
pub struct Place(Arc<Places>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Places {
    /// A place, when `fits(taken)` says one more fits beside the `taken` held now.
    pub fn try_take(self: &Arc<Self>, fits: impl Fn(usize) -> bool) -> Option<Place> {
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| fits(taken).then_some(taken + 1))
            .ok()
            .map(|_| Place(self.clone()))
    }

    /// Places held now.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }
}

/// A place in the queue, given up when dropped (admitted, refused, or abandoned
/// by a client that left).
struct InQueue<'a>(&'a Admission);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.queue_size.dec();
    }
}

impl Admission {
    pub fn new(capacity: usize, limits: QueueLimits, metrics: Arc<EngineMetrics>) -> Arc<Admission> {
        Arc::new(Admission {
            capacity: Arc::new(Semaphore::new(capacity)),
            waiting: AtomicUsize::new(0),
            head: tokio::sync::Mutex::new(()),
            limits,
            ended: Mutex::new(VecDeque::new()),
            metrics,
        })
    }

    /// A permit now, or `Refused` when there is none free.
    pub fn try_admit(self: &Arc<Self>) -> Result<Permit, Refused> {
        match self.capacity.clone().try_acquire_owned() {
            Ok(permit) => Ok(self.permit(permit)),
            Err(_) => Err(self.refuse(Refusal::QueueFull)),
        }
    }

    /// A permit once one is free and `headroom` says the device can take another
    /// session, waiting in the queue (first come, first served) until both hold.
    ///
    /// `headroom` is asked last, once a permit is held, and admits the request when
    /// it answers with what it reserved for the request (its share of the device).
    pub async fn admit<S>(
        self: &Arc<Self>,
        headroom: impl Fn() -> Option<S>,
    ) -> Result<(Permit, S), Refused> {
        if self.waiting() == 0
            && let Ok(permit) = self.capacity.clone().try_acquire_owned()
        {
            // Nobody waits ahead of it.
            return match headroom() {
                Some(share) => Ok((self.permit(permit), share)),
                None => self.wait_in_queue(Some(permit), headroom).await,
            };
        }
        self.wait_in_queue(None, headroom).await
    }

    /// Waits for a permit (unless `held`), then for headroom, within the queue's bounds.
    async fn wait_in_queue<S>(
        self: &Arc<Self>,
        held: Option<OwnedSemaphorePermit>,
        headroom: impl Fn() -> Option<S>,
    ) -> Result<(Permit, S), Refused> {
        let in_queue = self.join_queue()?;
        let waited = Instant::now();
        let admitted = tokio::time::timeout(self.limits.max_wait, async {
            let permit = match held {
                Some(permit) => permit,
                None => self.capacity.clone().acquire_owned().await.ok()?,
            };
            // One request at a time looks for headroom, in the order they came: a
            // crowd polling at once would take the runtime from the sessions.
            let _head = self.head.lock().await;
            loop {
                match headroom() {
                    Some(share) => return Some((permit, share)),
                    None => tokio::time::sleep(HEADROOM_POLL).await,
                }
            }
        })
        .await;
        drop(in_queue);
        self.metrics.queue_seconds.observe(waited.elapsed().as_secs_f64());
        match admitted {
            Ok(Some((permit, share))) => Ok((self.permit(permit), share)),
            _ => Err(self.refuse(Refusal::WaitedTooLong)),
        }
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    fn join_queue(&self) -> Result<InQueue<'_>, Refused> {
        let joined = self.waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |waiting| {
            (waiting < self.limits.max_waiting).then_some(waiting + 1)
        });
        match joined {
            Ok(_) => {
                self.metrics.queue_size.inc();
                Ok(InQueue(self))
            }
            Err(_) => Err(self.refuse(Refusal::QueueFull)),
        }
    }

    fn permit(self: &Arc<Self>, capacity: OwnedSemaphorePermit) -> Permit {
        Permit { admission: self.clone(), _capacity: capacity }
    }

    pub fn refuse(&self, reason: Refusal) -> Refused {
        self.metrics.refusals.with_label_values(&[reason.as_str()]).inc();
        Refused { reason, retry_after: self.retry_after() }
    }

    /// When a request refused now could expect a place: the requests ahead of it
    /// (those waiting, and itself) at the rate sessions lately ended; the longest
    /// wait when none ended lately. Whole seconds, 1 to 60.
    fn retry_after(&self) -> Duration {
        let ended = {
            let ended = self.ended.lock_surviving_panics();
            ended.iter().filter(|at| at.elapsed() <= RATE_WINDOW).count()
        };
        let ahead = (self.waiting() + 1) as f64;
        let estimate = if ended == 0 {
            self.limits.max_wait
        } else {
            Duration::from_secs_f64(ahead * RATE_WINDOW.as_secs_f64() / ended as f64)
        };
        Duration::from_secs(estimate.as_secs_f64().ceil() as u64)
            .clamp(Duration::from_secs(1), MAX_RETRY_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(capacity: usize, max_waiting: usize, max_wait_ms: u64) -> Arc<Admission> {
        let limits = QueueLimits { max_waiting, max_wait: Duration::from_millis(max_wait_ms) };
        Admission::new(capacity, limits, Arc::new(EngineMetrics::unregistered()))
    }

    #[tokio::test]
    async fn a_queued_request_starts_once_a_permit_is_dropped() {
        let admission = admission(1, 4, 5_000);
        let first = admission.admit(|| Some(())).await.unwrap();
        let queued = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(|| Some(())).await.map(|_| ()) }
        });
        while admission.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!queued.is_finished());
        drop(first);
        assert_eq!(queued.await.unwrap(), Ok(()));
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_long_wait_refuses_at_its_bound() {
        let admission = admission(1, 1, 200);
        let _held = admission.admit(|| Some(())).await.unwrap();
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(|| Some(())).await.map(|_| ()) }
        });
        while admission.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = admission.admit(|| Some(())).await.map(|_| ()).unwrap_err();
        assert_eq!(refused.reason, Refusal::QueueFull);
        let started = Instant::now();
        assert_eq!(waiter.await.unwrap().unwrap_err().reason, Refusal::WaitedTooLong);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(admission.waiting(), 0, "a refused waiter leaves the queue");
    }

    #[tokio::test]
    async fn a_request_waits_while_the_device_has_no_headroom_though_a_permit_is_free() {
        let admission = admission(4, 4, 5_000);
        let headroom = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = tokio::spawn({
            let (admission, headroom) = (admission.clone(), headroom.clone());
            async move { admission.admit(|| headroom.load(Ordering::SeqCst).then_some(())).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(admission.waiting(), 1);
        assert!(!queued.is_finished());
        headroom.store(true, Ordering::SeqCst);
        assert_eq!(queued.await.unwrap(), Ok(()));
    }

    #[test]
    fn places_are_taken_up_to_their_limit_and_given_back_when_dropped() {
        let places = Arc::new(Places::default());
        let under_two = |taken: usize| taken < 2;
        let (first, second) = (places.try_take(under_two), places.try_take(under_two));
        assert!(first.is_some() && second.is_some());
        assert!(places.try_take(under_two).is_none(), "a third of two");
        drop(first);
        let third = places.try_take(under_two);
        assert!(third.is_some(), "the first's place, given back");
        drop((second, third));
        assert_eq!(places.taken(), 0);
    }

    #[tokio::test]
    async fn retry_after_follows_the_rate_sessions_end_at() {
        let admission = admission(1, 100, 7_000);
        assert_eq!(admission.try_admit().map(|_| ()), Ok(()), "the permit is dropped at once");
        let _held = admission.try_admit().unwrap();
        // One session ended in the last 10 s, nobody waits: about 10 s.
        assert_eq!(admission.try_admit().map(|_| ()).unwrap_err().retry_after, Duration::from_secs(10));
        for _ in 0..9 {
            admission.ended.lock().unwrap().push_back(Instant::now());
        }
        // Ten ended: one a second.
        assert_eq!(admission.refuse(Refusal::QueueFull).retry_after, Duration::from_secs(1));
        admission.ended.lock().unwrap().clear();
        // None ended lately: the longest wait.
        assert_eq!(admission.refuse(Refusal::QueueFull).retry_after, Duration::from_secs(7));
    }
}
