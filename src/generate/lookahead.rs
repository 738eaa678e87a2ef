//! Look-ahead harmonizing: several candidate harmonies written side by side and
//! weighed by how well each predicts the given notes that come next.
//!
//! A left-to-right decoder forced through a given melody writes each chord
//! knowing only the melody so far; it cannot prepare for the next note. Here the
//! session keeps [`CANDIDATES`] lines (a particle filter, or sequential Monte
//! Carlo). Between two onsets of the given part each line writes the other parts
//! freely; its weight gathers the model's probability of the given notes it is
//! then forced through, and of staying within the request's constraints. When
//! every line has written the given notes at the same onset, the lines are
//! redrawn in proportion to their weights: harmonies that made the melody likely
//! multiply, the others die out. What the model would have sung is thus chosen by
//! what it is about to sing, as a choir reads the tune before singing it; the
//! weights also estimate the model's probability of the given part, which
//! `fugue bench harmonize` reports.

use crate::generate::GeneratedNote;
use crate::model::sampling::Rng;

/// Candidate lines of a look-ahead session.
pub const CANDIDATES: usize = 8;

/// The weights of a session's lines since they were last redrawn.
#[derive(Debug)]
pub struct Lookahead {
    log_weights: Vec<f64>,
    rng: Rng,
    /// Given onsets every line had written when they were last redrawn.
    redrawn_at: usize,
    /// Sum of the log mean weight at each redraw: log p(given part) as estimated.
    log_likelihood: f64,
}

impl Lookahead {
    pub fn new(lines: usize, seed: u64) -> Lookahead {
        Lookahead { log_weights: vec![0.0; lines], rng: Rng::new(seed), redrawn_at: 0, log_likelihood: 0.0 }
    }

    /// Weighs line `line` by the token it took: for a forced token, the model's
    /// probability of it; otherwise the probability the model put on the tokens the
    /// constraints allowed (sampling among them alone is what the line did).
    /// `log_probabilities` are the model's, over the whole vocabulary; `mask` is 0
    /// for allowed ids.
    pub fn weigh(&mut self, line: usize, log_probabilities: &[f32], mask: &[f32], forced: Option<i64>) {
        let gained = match forced {
            Some(id) => f64::from(log_probabilities[id as usize]),
            None => log_sum_exp(
                log_probabilities.iter().zip(mask).filter(|(_, m)| **m == 0.0).map(|(lp, _)| f64::from(*lp)),
            ),
        };
        self.log_weights[line] += gained;
    }

    pub fn redrawn_at(&self) -> usize {
        self.redrawn_at
    }

    pub fn log_likelihood(&self) -> f64 {
        self.log_likelihood
    }

    /// The line with the largest weight.
    pub fn best(&self) -> usize {
        (0..self.log_weights.len())
            .max_by(|&a, &b| self.log_weights[a].total_cmp(&self.log_weights[b]))
            .unwrap_or(0)
    }

    /// Redraws the lines after every one wrote the given notes up to onset
    /// `progress`: returns, for each new line, the line it copies (systematic
    /// resampling, in proportion to the weights), and a fresh seed for it. The
    /// weights start again from even.
    pub fn redraw(&mut self, progress: usize) -> Vec<(usize, u64)> {
        let count = self.log_weights.len();
        let top = self.log_weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = self.log_weights.iter().map(|&lw| (lw - top).exp()).collect();
        let total: f64 = weights.iter().sum();
        self.log_likelihood += top + (total / count as f64).ln();
        let start = self.rng.next_f64() / count as f64;
        let mut ancestors = Vec::with_capacity(count);
        let (mut line, mut reached) = (0, weights[0] / total);
        for draw in 0..count {
            let point = start + draw as f64 / count as f64;
            while point > reached && line + 1 < count {
                line += 1;
                reached += weights[line] / total;
            }
            ancestors.push((line, self.rng.next_u64()));
        }
        self.log_weights.iter_mut().for_each(|lw| *lw = 0.0);
        self.redrawn_at = progress;
        ancestors
    }
}

/// How many notes, from the first, every line has in common: those are settled
/// whichever line wins, and can be sent.
pub fn settled<'a>(lines: impl IntoIterator<Item = &'a [GeneratedNote]>) -> usize {
    let mut lines = lines.into_iter();
    let Some(first) = lines.next() else { return 0 };
    lines.fold(first.len(), |common, other| {
        first.iter().zip(other).take(common).take_while(|(a, b)| a == b).count()
    })
}

fn log_sum_exp(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    let top = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY {
        return top;
    }
    top + values.iter().map(|v| (v - top).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_redrawn_in_proportion_to_their_weights() {
        let mut lookahead = Lookahead::new(4, 7);
        // Line 2 made the given notes 1,000 times likelier than the others.
        let probabilities = [0.5f32.ln(), 0.5f32.ln()];
        for line in 0..4 {
            lookahead.weigh(line, &probabilities, &[0.0, 0.0], Some(0));
        }
        lookahead.log_weights[2] += 1000f64.ln();
        let ancestors: Vec<usize> = lookahead.redraw(1).into_iter().map(|(line, _)| line).collect();
        assert_eq!(ancestors, [2, 2, 2, 2]);
        // The estimate of log p(given): the mean weight, 0.5 × (3 + 1000) / 4.
        let expected = (0.5 * 1003.0 / 4.0f64).ln();
        assert!((lookahead.log_likelihood() - expected).abs() < 1e-6, "{}", lookahead.log_likelihood());
        assert_eq!(lookahead.redrawn_at(), 1);

        // Even weights keep every line; an unforced step weighs what the mask allowed.
        let mut even = Lookahead::new(4, 7);
        even.weigh(1, &[0.25f32.ln(), 0.75f32.ln()], &[f32::NEG_INFINITY, 0.0], None);
        assert!((even.log_weights[1] - 0.75f64.ln()).abs() < 1e-6);
        even.log_weights.iter_mut().for_each(|lw| *lw = 0.0);
        let ancestors: Vec<usize> = even.redraw(1).into_iter().map(|(line, _)| line).collect();
        assert_eq!(ancestors, [0, 1, 2, 3]);
    }

    #[test]
    fn only_the_notes_every_line_shares_are_settled() {
        let note = |pitch| GeneratedNote {
            pitch,
            velocity: 80,
            program: 0,
            start_beat: 0.0,
            duration_beats: 1.0,
            start_seconds: 0.0,
            duration_seconds: 0.5,
            part: None,
        };
        let a = [note(60), note(62), note(64)];
        let b = [note(60), note(62), note(65), note(67)];
        let c = [note(60), note(62)];
        assert_eq!(settled([&a[..], &b[..], &c[..]]), 2);
        assert_eq!(settled([&a[..], &b[..]]), 2);
        assert_eq!(settled([&a[..]]), 3);
        assert_eq!(settled([&a[..], &[][..]]), 0);
    }
}
