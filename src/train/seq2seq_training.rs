//! Piano-roll seq2seq: each sequence cut into (window, next window) pairs; teacher
//! forcing decided per batch with a ratio that decays per epoch; precision, recall
//! and note density measured on the validation windows.

use tch::{Device, Kind, Tensor};

use super::{BatchLoss, KeyCounts};
use crate::model::seq2seq_net::Seq2Seq;
use crate::repr::pianoroll::{Frame, KEYS, to_binary};

pub struct PairBatch {
    pub source: Tensor,
    pub target: Tensor,
    pub teacher_forcing: bool,
}

/// Consecutive (window, next window) pairs of every sequence long enough for one.
pub fn pairs(sequences: &[Vec<Frame>], window: usize) -> Vec<(Vec<Frame>, Vec<Frame>)> {
    let window = window.max(1);
    sequences
        .iter()
        .flat_map(|sequence| {
            (0..sequence.len().saturating_sub(2 * window - 1)).step_by(window).map(move |start| {
                (
                    sequence[start..start + window].to_vec(),
                    sequence[start + window..start + 2 * window].to_vec(),
                )
            })
        })
        .collect()
}

fn frames_tensor(windows: &[&Vec<Frame>], device: Device) -> Tensor {
    let length = windows.first().map_or(0, |w| w.len());
    let data: Vec<f32> = windows.iter().flat_map(|w| w.iter().flat_map(|frame| to_binary(frame))).collect();
    Tensor::from_slice(&data).view([windows.len() as i64, length as i64, KEYS as i64]).to_device(device)
}

/// Batches in `order`; each uses teacher forcing with probability `ratio`, drawn
/// from libtorch's generator (seeded per epoch by the training loop).
pub fn batches(
    pairs: &[(Vec<Frame>, Vec<Frame>)],
    order: &[usize],
    batch_size: usize,
    ratio: f64,
    device: Device,
) -> Vec<PairBatch> {
    order
        .chunks(batch_size.max(1))
        .map(|chunk| {
            let sources: Vec<&Vec<Frame>> = chunk.iter().map(|&i| &pairs[i].0).collect();
            let targets: Vec<&Vec<Frame>> = chunk.iter().map(|&i| &pairs[i].1).collect();
            let draw = f64::try_from(Tensor::rand([1], (Kind::Float, Device::Cpu))).unwrap_or(1.0);
            PairBatch {
                source: frames_tensor(&sources, device),
                target: frames_tensor(&targets, device),
                teacher_forcing: draw < ratio,
            }
        })
        .collect()
}

pub fn loss(net: &Seq2Seq, batch: &PairBatch, train: bool) -> BatchLoss {
    let steps = batch.target.size()[1];
    let teacher = (train && batch.teacher_forcing).then_some(&batch.target);
    let logits = net.forward(&batch.source, steps, teacher, train);
    let predicted = logits.gt(0.0).to_kind(Kind::Float);
    let count = |t: &Tensor| t.sum(Kind::Int64).int64_value(&[]);
    let keys = KeyCounts {
        predicted: count(&predicted),
        actual: count(&batch.target),
        both: count(&(&predicted * &batch.target)),
    };
    let items = batch.target.size()[0] * steps;
    BatchLoss { sum: net.loss(&logits, &batch.target), items, correct: None, keys: Some(keys) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_consecutive_windows() {
        let sequence: Vec<Frame> = (0..9u8).map(|i| vec![60 + i]).collect();
        let cut = pairs(&[sequence, vec![vec![60]]], 4);
        assert_eq!(cut.len(), 1, "9 frames hold one pair of 4-frame windows");
        assert_eq!(cut[0].0[0], vec![60]);
        assert_eq!(cut[0].1[0], vec![64]);
    }
}
