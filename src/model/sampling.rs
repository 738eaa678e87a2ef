//! Choosing the next token from logits: temperature, top-k, top-p (nucleus), or
//! greedy arg-max (the tutorials' way).
//!
//! Each stream draws from its own seeded [`Rng`], not libtorch's generator: that
//! one is global to the process, so streams sampled together (or tests running in
//! parallel) would take each other's numbers and a seed would not reproduce a piece.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f64,
    /// Keep only the k most likely tokens; 0 keeps all.
    pub top_k: i64,
    /// Keep the smallest set of tokens whose probability reaches p; 1 keeps all.
    pub top_p: f64,
    pub greedy: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature: 1.0, top_k: 0, top_p: 1.0, greedy: false }
    }
}

/// SplitMix64: a small, fast generator whose output is fixed by its seed forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One id per row of `logits` (batch, vocabulary), row i drawing from `rngs[i]`.
/// Masked tokens carry -inf.
pub fn sample(logits: &Tensor, sampling: &Sampling, rngs: &mut [Rng]) -> Vec<i64> {
    let rows = Vec::<Vec<f32>>::try_from(probabilities(logits, sampling).to_device(tch::Device::Cpu))
        .expect("probabilities are a float matrix: this is a bug");
    rows.iter().zip(rngs).map(|(row, rng)| draw(row, rng.next_f64())).collect()
}

/// One draw per key: 1 where the stream's generator falls below the key's
/// probability, else 0; same shape and device as `probabilities`.
pub fn draw_keys(probabilities: &Tensor, rng: &mut Rng) -> Tensor {
    let cpu = probabilities.to_kind(Kind::Float).to_device(tch::Device::Cpu);
    let values = Vec::<f32>::try_from(cpu.view([-1])).expect("probabilities are floats: this is a bug");
    let drawn: Vec<f32> =
        values.iter().map(|&p| if rng.next_f64() < f64::from(p) { 1.0 } else { 0.0 }).collect();
    Tensor::from_slice(&drawn).view(probabilities.size().as_slice()).to_device(probabilities.device())
}

/// Inverse CDF: the first id whose cumulative probability passes `u`.
fn draw(probabilities: &[f32], u: f64) -> i64 {
    let total: f64 = probabilities.iter().map(|&p| f64::from(p)).sum();
    let mut cumulative = 0.0;
    for (id, &p) in probabilities.iter().enumerate() {
        cumulative += f64::from(p);
        if p > 0.0 && cumulative > u * total {
            return id as i64;
        }
    }
    probabilities.iter().rposition(|&p| p > 0.0).unwrap_or(0) as i64
}

/// The distribution each row is drawn from; greedy puts all mass on the arg-max.
fn probabilities(logits: &Tensor, sampling: &Sampling) -> Tensor {
    if sampling.greedy {
        let best = logits.argmax(1, true);
        return logits.zeros_like().scatter_value(1, &best, 1.0);
    }
    let mut logits = logits / sampling.temperature.max(1e-6);
    let vocabulary = logits.size()[1];
    if sampling.top_k > 0 && sampling.top_k < vocabulary {
        let (kth, _) = logits.topk(sampling.top_k, 1, true, true);
        let threshold = kth.narrow(1, sampling.top_k - 1, 1);
        logits = logits.masked_fill(&logits.lt_tensor(&threshold), f64::NEG_INFINITY);
    }
    if sampling.top_p < 1.0 {
        let (sorted, indices) = logits.sort(1, true);
        let cumulative = sorted.softmax(1, Kind::Float).cumsum(1, Kind::Float);
        // Drop a token when the tokens before it already reach p; the first always stays.
        let before = &cumulative - sorted.softmax(1, Kind::Float);
        let drop_sorted = before.ge(sampling.top_p);
        let drop = drop_sorted.scatter(1, &indices, &drop_sorted);
        logits = logits.masked_fill(&drop, f64::NEG_INFINITY);
    }
    logits.softmax(1, Kind::Float)
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;

    fn logits() -> Tensor {
        Tensor::from_slice(&[0.1f32, 0.5, 0.3, 0.1]).log().view([1, 4]).to_device(Device::Cpu)
    }

    fn draws(sampling: Sampling) -> Vec<i64> {
        let mut rngs = [Rng::new(11)];
        (0..400).map(|_| sample(&logits(), &sampling, &mut rngs)[0]).collect()
    }

    #[test]
    fn greedy_takes_the_most_likely() {
        assert!(draws(Sampling { greedy: true, ..Sampling::default() }).iter().all(|&id| id == 1));
    }

    #[test]
    fn top_k_and_top_p_keep_only_the_likely() {
        let top2 = draws(Sampling { top_k: 2, ..Sampling::default() });
        assert!(top2.iter().all(|id| [1, 2].contains(id)) && top2.contains(&2));
        // 0.5 + 0.3 reaches 0.75: tokens 1 and 2 stay.
        let nucleus = draws(Sampling { top_p: 0.75, ..Sampling::default() });
        assert!(nucleus.iter().all(|id| [1, 2].contains(id)) && nucleus.contains(&2));
        let everything = draws(Sampling::default());
        assert!([0, 1, 2, 3].iter().all(|id| everything.contains(id)));
    }

    #[test]
    fn the_same_seed_draws_the_same() {
        assert_eq!(draws(Sampling::default()), draws(Sampling::default()));
    }

    #[test]
    fn each_row_draws_from_its_own_generator() {
        let batch = Tensor::cat(&[logits(), logits()], 0);
        let mut together = [Rng::new(1), Rng::new(2)];
        let mut alone = [Rng::new(2)];
        let pairs: Vec<Vec<i64>> =
            (0..50).map(|_| sample(&batch, &Sampling::default(), &mut together)).collect();
        let singles: Vec<i64> =
            (0..50).map(|_| sample(&logits(), &Sampling::default(), &mut alone)[0]).collect();
        assert_eq!(pairs.iter().map(|pair| pair[1]).collect::<Vec<_>>(), singles);
    }

    #[test]
    fn keys_are_drawn_from_their_own_probabilities() {
        let probabilities = Tensor::from_slice(&[0.0f32, 1.0, 0.5]).view([1, 3]);
        let mut rng = Rng::new(9);
        let draws: Vec<Vec<f32>> = (0..2000)
            .map(|_| Vec::<f32>::try_from(draw_keys(&probabilities, &mut rng).view([-1])).unwrap())
            .collect();
        assert!(draws.iter().all(|d| d[0] == 0.0 && d[1] == 1.0));
        let half = draws.iter().filter(|d| d[2] == 1.0).count() as f64 / 2000.0;
        assert!((half - 0.5).abs() < 0.05, "{half}");
        assert_eq!(draw_keys(&probabilities, &mut Rng::new(9)).size(), [1, 3]);
    }

    #[test]
    fn frequencies_follow_the_distribution() {
        let mut rngs = [Rng::new(3)];
        let counts = (0..20_000).fold([0usize; 4], |mut counts, _| {
            counts[sample(&logits(), &Sampling::default(), &mut rngs)[0] as usize] += 1;
            counts
        });
        for (count, expected) in counts.iter().zip([0.1, 0.5, 0.3, 0.1]) {
            assert!((*count as f64 / 20_000.0 - expected).abs() < 0.015, "{counts:?}");
        }
    }
}
