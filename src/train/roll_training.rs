//! Training and scoring piano-roll models on the JSB Chorales benchmark splits.
//!
//! The score is the benchmark's: frame-level negative log-likelihood in nats, the
//! sum over every predicted frame of a split (all but each sequence's first)
//! divided by the number of predicted frames.

use tch::{Device, Kind, Tensor};

use super::BatchLoss;
use crate::model::roll_net::RollNet;
use crate::model::sampling::Rng;
use crate::repr::pianoroll::{Frame, KEYS, LOWEST_KEY, from_binary, to_binary};

/// Sequences padded to one length: frames (batch, time, 88), the real lengths and
/// the semitones each sequence was transposed by.
pub struct RollBatch {
    pub frames: Tensor,
    pub lengths: Vec<i64>,
    pub shifts: Vec<i64>,
}

/// Sequences, each with the semitones it was moved by from the corpus's own.
pub struct Shifted {
    pub sequences: Vec<Vec<Frame>>,
    pub shifts: Vec<i64>,
}

impl Shifted {
    /// The sequences as the corpus has them.
    pub fn unmoved(sequences: Vec<Vec<Frame>>) -> Shifted {
        let shifts = vec![0; sequences.len()];
        Shifted { sequences, shifts }
    }
}

/// Batches of `batch_size` sequences, taken in `order`.
pub fn batches(shifted: &Shifted, order: &[usize], batch_size: usize, device: Device) -> Vec<RollBatch> {
    let sequences = &shifted.sequences;
    order
        .chunks(batch_size.max(1))
        .map(|chunk| {
            // Padding to a multiple of 32 keeps the set of tensor shapes small: oneDNN
            // builds (slowly) one LSTM primitive per shape.
            let longest = chunk.iter().map(|&i| sequences[i].len()).max().unwrap_or(0).next_multiple_of(32);
            let mut data = vec![0f32; chunk.len() * longest * KEYS];
            for (row, &index) in chunk.iter().enumerate() {
                for (t, frame) in sequences[index].iter().enumerate() {
                    let offset = (row * longest + t) * KEYS;
                    data[offset..offset + KEYS].copy_from_slice(&to_binary(frame));
                }
            }
            let frames = Tensor::from_slice(&data)
                .view([chunk.len() as i64, longest as i64, KEYS as i64])
                .to_device(device);
            RollBatch {
                frames,
                lengths: chunk.iter().map(|&i| sequences[i].len() as i64).collect(),
                shifts: chunk.iter().map(|&i| shifted.shifts[i]).collect(),
            }
        })
        .collect()
}

/// Each sequence moved by its own random shift of up to ±`semitones` (libtorch's
/// generator, seeded per epoch), dropping pitches that leave the keyboard: more
/// harmony to learn from the same chorales. For training only.
pub fn transposed(sequences: &[Vec<Frame>], semitones: u8) -> Shifted {
    let span = 2 * i64::from(semitones) + 1;
    let shifts =
        Tensor::randint(span, [sequences.len() as i64], (Kind::Int64, Device::Cpu)) - i64::from(semitones);
    let shifts = Vec::<i64>::try_from(shifts).unwrap_or_default();
    let sequences = sequences
        .iter()
        .zip(&shifts)
        .map(|(sequence, &shift)| {
            let moved = |pitch: &u8| u8::try_from(i64::from(*pitch) + shift).ok();
            let keyboard = |pitch: &u8| (LOWEST_KEY..LOWEST_KEY + KEYS as u8).contains(pitch);
            sequence.iter().map(|frame| frame.iter().filter_map(moved).filter(keyboard).collect()).collect()
        })
        .collect();
    Shifted { sequences, shifts }
}

/// Sequences with fewer than two frames predict nothing and are left out.
pub fn usable(sequences: &[Vec<Frame>]) -> Vec<Vec<Frame>> {
    sequences.iter().filter(|sequence| sequence.len() >= 2).cloned().collect()
}

pub fn loss(net: &RollNet, batch: &RollBatch, train: bool) -> BatchLoss {
    let (sum, items) = net.nll(&batch.frames, &batch.lengths, &batch.shifts, train);
    BatchLoss { sum, items, correct: None, keys: None }
}

/// The benchmark score of `net` on `sequences`.
pub fn frame_nll(net: &RollNet, sequences: &[Vec<Frame>], device: Device) -> anyhow::Result<f64> {
    let sequences = Shifted::unmoved(usable(sequences));
    let order: Vec<usize> = (0..sequences.shifts.len()).collect();
    let batches = batches(&sequences, &order, 16, device);
    crate::train::evaluate(&batches, &|batch, train| loss(net, batch, train))
}

/// Samples `length` frames, starting from silence.
pub fn sample(net: &RollNet, length: u32, temperature: f64, rng: &mut Rng, device: Device) -> Vec<Frame> {
    let mut frame = Tensor::zeros([1, KEYS as i64], (Kind::Float, device));
    let mut state = net.zero_state(device);
    let mut frames = Vec::with_capacity(length as usize);
    for position in 0..i64::from(length) {
        let (next, next_state) = net.sample_next(&frame, position, &state, temperature, rng);
        let keys = Vec::<f32>::try_from(next.get(0).to_device(Device::Cpu)).unwrap_or_default();
        frames.push(from_binary(&keys));
        (frame, state) = (next, next_state);
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repr::pianoroll::HIGHEST_KEY;

    #[test]
    fn transposition_moves_whole_sequences_within_the_keyboard() {
        tch::manual_seed(4);
        let sequences = vec![vec![vec![60, 64, 67], vec![107]]; 50];
        let moved = transposed(&sequences, 3);
        for (sequence, &said) in moved.sequences.iter().zip(&moved.shifts) {
            let shift = i16::from(sequence[0][0]) - 60;
            assert!((-3..=3).contains(&shift));
            assert_eq!(i64::from(shift), said, "each sequence's shift is the one it was moved by");
            assert_eq!(sequence[0], [60, 64, 67].map(|p: i16| (p + shift) as u8));
            assert!(sequence[1].iter().all(|&p| p <= HIGHEST_KEY), "pitches past the top are dropped");
        }
        assert!(moved.sequences.iter().any(|s| s[0][0] != 60), "some sequences move");
    }
}
