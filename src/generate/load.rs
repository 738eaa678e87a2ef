//! Admission of realtime listeners by projected load. A listener needs the tokens
//! of a second of music every second; a worker writes so many tokens a second at
//! full batches. Both are measured as the engine runs, and a realtime session is
//! admitted only while the listeners already playing, and it, would need at most
//! [`LOAD_CEILING`] of what the running workers write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The share of the measured capacity realtime listeners may be projected to
/// need; the rest absorbs a new listener's first lookahead and fast sessions.
pub const LOAD_CEILING: f64 = 0.7;

/// What a listener is assumed to need before any has been measured: tokens per
/// second of music (a four-part chorale of the default model needs about 24).
const DEFAULT_DEMAND: f64 = 32.0;

/// Rounds of fewer rows say little of what a worker writes. Larger rounds write
/// more per second, so an estimate from small ones is low: admission starts
/// cautious, and the estimate rises as the listeners it lets in fill the rounds.
/// (Listeners parked ahead of their clocks leave rounds small: a larger minimum
/// was never reached by a crowd that arrives over seconds.)
const MEASURED_ROUND: usize = 8;

/// Listeners each worker takes before its capacity is measured.
const UNMEASURED_LISTENERS: usize = 64;

/// How much each new measurement moves an estimate.
const SMOOTHING: f64 = 0.05;

/// The engine's load: what its workers write, what its listeners need, and how
/// many listeners play.
#[derive(Default)]
pub struct LoadGauge {
    /// Tokens per second one worker writes at full batches (f64 bits; 0 until measured).
    capacity: AtomicU64,
    /// Tokens per second of music a listener needs (f64 bits; 0 until measured).
    demand: AtomicU64,
    /// Realtime sessions admitted and not yet ended.
    listeners: AtomicUsize,
}

/// A realtime session's place in the projected load, given back when dropped.
pub struct ListenerShare(Arc<LoadGauge>);

impl Drop for ListenerShare {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LoadGauge {
    /// A worker wrote `rows` tokens in a round of `seconds` (its steps and all
    /// the work around them).
    pub fn record_round(&self, rows: usize, seconds: f64) {
        if rows >= MEASURED_ROUND && seconds > 0.0 {
            smooth(&self.capacity, rows as f64 / seconds);
        }
    }

    /// A listener's session has needed `tokens` for `music_seconds` of music.
    pub fn record_listener(&self, tokens: u32, music_seconds: f64) {
        if music_seconds >= 1.0 {
            smooth(&self.demand, f64::from(tokens) / music_seconds);
        }
    }

    /// Reserves a place for one more listener when the load projected with it
    /// fits under the ceiling of `workers` workers' capacity (before the capacity
    /// is measured, while each worker has fewer than a measured round's worth of
    /// listeners: a crowd arriving at a fresh server must not all be let in before
    /// the first measurement); the caller turns a reservation into a
    /// [`ListenerShare`] at once.
    pub fn try_reserve(&self, workers: usize) -> bool {
        let capacity = read(&self.capacity) * workers as f64;
        let demand = match read(&self.demand) {
            measured if measured > 0.0 => measured,
            _ => DEFAULT_DEMAND,
        };
        self.listeners
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |listeners| {
                let fits = if capacity == 0.0 {
                    listeners < UNMEASURED_LISTENERS * workers
                } else {
                    (listeners + 1) as f64 * demand <= LOAD_CEILING * capacity
                };
                fits.then_some(listeners + 1)
            })
            .is_ok()
    }

    /// The share a reservation stands for.
    pub fn share(self: &Arc<Self>) -> ListenerShare {
        ListenerShare(self.clone())
    }

    /// (tokens/s one worker writes, tokens/s a listener needs, listeners playing).
    pub fn figures(&self) -> (f64, f64, usize) {
        (read(&self.capacity), read(&self.demand), self.listeners.load(Ordering::SeqCst))
    }
}

fn read(value: &AtomicU64) -> f64 {
    f64::from_bits(value.load(Ordering::SeqCst))
}

/// Moves the estimate toward `sample` (sets it, when there is none yet).
fn smooth(estimate: &AtomicU64, sample: f64) {
    let _ = estimate.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |bits| {
        let old = f64::from_bits(bits);
        let new = if old == 0.0 { sample } else { old + SMOOTHING * (sample - old) };
        Some(new.to_bits())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_admitted_while_their_projected_need_fits_under_the_ceiling() {
        let gauge = Arc::new(LoadGauge::default());
        // Nothing measured yet: a few listeners per worker.
        let unmeasured: Vec<ListenerShare> = (0..UNMEASURED_LISTENERS)
            .map(|_| {
                assert!(gauge.try_reserve(1));
                gauge.share()
            })
            .collect();
        assert!(!gauge.try_reserve(1), "too many before any measurement");
        assert!(gauge.try_reserve(2), "a second worker has room for as many");
        drop((unmeasured, gauge.share()));
        assert!(gauge.try_reserve(1));
        let first = gauge.share();
        gauge.record_round(8, 8.0 / 1000.0); // 1,000 tokens/s
        gauge.record_listener(200, 10.0); // 20 tokens/s of music
        // 0.7 × 1,000 / 20 = 35 listeners fit; one plays already.
        let mut held = Vec::new();
        while gauge.try_reserve(1) {
            held.push(gauge.share());
        }
        assert_eq!((held.len(), gauge.figures().2), (34, 35));
        // A second worker doubles the room.
        assert!(gauge.try_reserve(2));
        held.push(gauge.share());
        drop(first);
        drop(held);
        assert_eq!(gauge.figures().2, 0, "every share given back");
        // Small rounds and short listens do not count.
        gauge.record_round(7, 1.0);
        gauge.record_listener(1, 0.5);
        assert_eq!((gauge.figures().0, gauge.figures().1), (1000.0, 20.0));
    }
}
