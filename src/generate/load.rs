//! Admission of realtime listeners by projected load. A listener needs the tokens
//! of a second of music every second; a worker writes so many tokens a second at
//! full batches. Both are measured as the engine runs, and a realtime session is
//! admitted only while the listeners already playing, and it, would need at most
//! [`LOAD_CEILING`] of what the running workers write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::admission::{Place, Places};
use crate::shared::LockSurvivingPanics;

/// The share of the measured capacity realtime listeners may be projected to
/// need; the rest absorbs a new listener's first lookahead and fast sessions.
pub const LOAD_CEILING: f64 = 0.7;

/// What a listener is assumed to need before any has been measured: tokens per
/// second of music (a four-part chorale of the default model needs about 24).
const DEFAULT_DEMAND: f64 = 32.0;

/// The fit of a round's cost is read at most this many times the largest round
/// seen: so far beyond what was measured, it would be a guess. A lightly loaded
/// worker steps small rounds; as admission lets more listeners in, its rounds,
/// and the reach of its measured capacity, grow together.
const EXTRAPOLATION: usize = 8;

/// Listeners each worker takes before its first round is measured.
const UNMEASURED_LISTENERS: usize = 64;

/// How much each new measurement moves a listener's estimate.
const SMOOTHING: f64 = 0.05;

/// How much each round moves the fit of a round's cost: rounds last a
/// millisecond or so, and the fit needs a few hundred of them to see both of its
/// parts.
const ROUND_SMOOTHING: f64 = 0.005;

/// The engine's load: what its workers write, what its listeners need, and how
/// many listeners play.
pub struct LoadGauge {
    /// The rows of the fullest round a worker steps (its batch limit).
    full_round: usize,
    rounds: Mutex<RoundCost>,
    /// Tokens per second of music a listener needs (f64 bits; 0 until measured).
    demand: AtomicU64,
    /// Realtime sessions admitted and not yet ended.
    listeners: Arc<Places>,
}

impl LoadGauge {
    /// A gauge for workers that step at most `full_round` rows at a time.
    pub fn new(full_round: usize) -> LoadGauge {
        LoadGauge {
            full_round,
            rounds: Mutex::new(RoundCost::default()),
            demand: AtomicU64::new(0),
            listeners: Arc::default(),
        }
    }

    /// A worker wrote `rows` tokens in a round of `seconds` (its steps and all
    /// the work around them).
    pub fn record_round(&self, rows: usize, seconds: f64) {
        if rows > 0 && seconds > 0.0 {
            self.rounds.lock_surviving_panics().record(rows, seconds);
        }
    }

    /// In one round, the listeners playing had needed so many tokens for so many
    /// seconds of music each. Their sum is what they need together, so each
    /// counts by its seconds (one that has played less than a second, not at all).
    pub fn record_listeners(&self, listeners: impl IntoIterator<Item = (u32, f64)>) {
        let (tokens, music_seconds) = listeners
            .into_iter()
            .filter(|&(_, music_seconds)| music_seconds >= 1.0)
            .fold((0.0, 0.0), |(tokens, seconds), (t, s)| (tokens + f64::from(t), seconds + s));
        if music_seconds > 0.0 {
            smooth(&self.demand, tokens / music_seconds);
        }
    }

    /// Tokens per second one worker writes at full rounds; 0 until measured.
    fn capacity(&self) -> f64 {
        self.rounds.lock_surviving_panics().tokens_per_second(self.full_round)
    }

    /// A place for one more listener, when the load projected with it fits under
    /// the ceiling of `workers` workers' capacity (before the first round is
    /// measured, while each worker has fewer than [`UNMEASURED_LISTENERS`]: a crowd
    /// arriving at a fresh server must not all be let in before the first
    /// measurement).
    pub fn try_reserve(&self, workers: usize) -> Option<Place> {
        let capacity = self.capacity() * workers as f64;
        let demand = match read(&self.demand) {
            measured if measured > 0.0 => measured,
            _ => DEFAULT_DEMAND,
        };
        self.listeners.try_take(|listeners| {
            if capacity == 0.0 {
                listeners < UNMEASURED_LISTENERS * workers
            } else {
                (listeners + 1) as f64 * demand <= LOAD_CEILING * capacity
            }
        })
    }

    /// (tokens/s one worker writes at full rounds, tokens/s a listener needs,
    /// listeners playing).
    pub fn figures(&self) -> (f64, f64, usize) {
        (self.capacity(), read(&self.demand), self.listeners.taken())
    }
}

/// What a worker's round costs, fitted as a part paid once per round (admitting,
/// controls, sending, the libraries' own overheads) plus a part per row, by
/// least squares over the recent rounds (each weighted by its recency).
///
/// A loaded worker steps rounds far fuller than a lightly loaded one, and writes
/// more tokens a second in them. Measured as a plain ratio at today's round
/// sizes, a worker that is mostly waiting for its listeners looks slow, and
/// admission queues listeners it has room for.
#[derive(Debug, Default)]
struct RoundCost {
    weight: f64,
    rows: f64,
    seconds: f64,
    rows_squared: f64,
    rows_seconds: f64,
    largest: usize,
}

impl RoundCost {
    fn record(&mut self, rows: usize, seconds: f64) {
        let keep = 1.0 - ROUND_SMOOTHING;
        let x = rows as f64;
        self.weight = keep * self.weight + 1.0;
        self.rows = keep * self.rows + x;
        self.seconds = keep * self.seconds + seconds;
        self.rows_squared = keep * self.rows_squared + x * x;
        self.rows_seconds = keep * self.rows_seconds + x * seconds;
        self.largest = self.largest.max(rows);
    }

    /// Tokens per second at rounds of `rows` rows (at most [`EXTRAPOLATION`]
    /// times the largest seen): as fitted where the rounds seen differ enough in
    /// size for a fit, never less than the tokens per second of the rounds seen;
    /// 0 before the first round.
    fn tokens_per_second(&self, rows: usize) -> f64 {
        if self.largest == 0 {
            return 0.0;
        }
        let (mean_rows, mean_seconds) = (self.rows / self.weight, self.seconds / self.weight);
        let seen = mean_rows / mean_seconds;
        let variance = self.rows_squared / self.weight - mean_rows * mean_rows;
        // Rows that hardly vary say nothing of the per-row part.
        if variance < 1.0 {
            return seen;
        }
        let per_row = (self.rows_seconds / self.weight - mean_rows * mean_seconds) / variance;
        let per_round = mean_seconds - per_row * mean_rows;
        if per_row <= 0.0 || per_round < 0.0 {
            return seen;
        }
        let rows = rows.min(EXTRAPOLATION * self.largest) as f64;
        (rows / (per_round + per_row * rows)).max(seen)
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
        let gauge = Arc::new(LoadGauge::new(8));
        // Nothing measured yet: a few listeners per worker.
        let unmeasured: Vec<Place> =
            (0..UNMEASURED_LISTENERS).map(|_| gauge.try_reserve(1).expect("room")).collect();
        assert!(gauge.try_reserve(1).is_none(), "too many before any measurement");
        let second_worker = gauge.try_reserve(2);
        assert!(second_worker.is_some(), "a second worker has room for as many");
        drop((unmeasured, second_worker));
        let first = gauge.try_reserve(1).expect("room again");
        gauge.record_round(8, 8.0 / 1000.0); // 1,000 tokens/s
        // 20 tokens/s of music in all (one that played half a second does not count).
        gauge.record_listeners([(80, 5.0), (120, 5.0), (100, 0.5)]);
        // 0.7 × 1,000 / 20 = 35 listeners fit; one plays already.
        let mut held: Vec<Place> = std::iter::from_fn(|| gauge.try_reserve(1)).collect();
        assert_eq!((held.len(), gauge.figures().2), (34, 35));
        // A second worker doubles the room.
        held.extend(gauge.try_reserve(2));
        assert_eq!(held.len(), 35);
        drop(first);
        drop(held);
        assert_eq!(gauge.figures().2, 0, "every share given back");
        // Short listens do not count.
        gauge.record_listeners([(1, 0.5)]);
        assert_eq!(gauge.figures().1, 20.0);
    }

    #[test]
    fn a_worker_is_judged_by_what_it_writes_at_full_rounds_not_at_the_small_ones_it_steps_when_idle() {
        // Each round costs 4 ms, plus 0.1 ms a row: 8 rows write 1,667 tokens/s,
        // a full round of 128 rows 7,619.
        let cost = |rows: usize| 0.004 + 0.0001 * rows as f64;
        let gauge = LoadGauge::new(128);
        for round in 0..2000 {
            let rows = 1 + round % 24;
            gauge.record_round(rows, cost(rows));
        }
        let full = 128.0 / cost(128);
        let measured = gauge.figures().0;
        assert!((measured - full).abs() < 0.01 * full, "{measured:.0} tokens/s, not {full:.0}");
        // Rounds of 1 to 4 rows are fitted as well, but read at 32 rows at most.
        let light = LoadGauge::new(128);
        (0..400).for_each(|round| light.record_round(1 + round % 4, cost(1 + round % 4)));
        let reach = 32.0 / cost(32);
        assert!((light.figures().0 - reach).abs() < 0.01 * reach, "{:.0}, not {reach:.0}", light.figures().0);
        // One fuller round, and the reach grows.
        light.record_round(16, cost(16));
        assert!((light.figures().0 - full).abs() < 0.02 * full, "{:.0}, not {full:.0}", light.figures().0);
        // Rounds all of one size cannot be fitted: their own rate counts.
        let even = LoadGauge::new(128);
        (0..100).for_each(|_| even.record_round(16, cost(16)));
        assert!((even.figures().0 - 16.0 / cost(16)).abs() < 1e-6);
    }
}
