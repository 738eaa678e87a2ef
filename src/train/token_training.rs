//! Token models (and folk-RNN frames, which travel as ids): sequences cut into
//! windows, padded into batches, scored by next-token cross-entropy and accuracy.

use tch::{Device, Tensor};

use super::BatchLoss;
use crate::model::melody_net::MelodyNet;
use crate::model::token_net::{IGNORE, TokenNet, token_loss};

/// Inputs (batch, window) and targets (the inputs shifted by one; padding ignored).
pub struct TokenBatch {
    pub inputs: Tensor,
    pub targets: Tensor,
}

/// Each sequence cut into consecutive windows of `window` predictions (the last
/// one shorter); windows of one token predict nothing and are dropped.
pub fn windows(sequences: &[Vec<i64>], window: usize) -> Vec<Vec<i64>> {
    let window = window.max(1);
    sequences
        .iter()
        .flat_map(|sequence| {
            (0..sequence.len().saturating_sub(1))
                .step_by(window)
                .map(move |start| sequence[start..(start + window + 1).min(sequence.len())].to_vec())
        })
        .collect()
}

pub fn batches(windows: &[Vec<i64>], order: &[usize], batch_size: usize, device: Device) -> Vec<TokenBatch> {
    order
        .chunks(batch_size.max(1))
        .map(|chunk| {
            let longest = chunk.iter().map(|&i| windows[i].len() - 1).max().unwrap_or(0);
            let mut inputs = vec![0i64; chunk.len() * longest];
            let mut targets = vec![IGNORE; chunk.len() * longest];
            for (row, &index) in chunk.iter().enumerate() {
                let window = &windows[index];
                let offset = row * longest;
                inputs[offset..offset + window.len() - 1].copy_from_slice(&window[..window.len() - 1]);
                targets[offset..offset + window.len() - 1].copy_from_slice(&window[1..]);
            }
            let shape = [chunk.len() as i64, longest as i64];
            TokenBatch {
                inputs: Tensor::from_slice(&inputs).view(shape).to_device(device),
                targets: Tensor::from_slice(&targets).view(shape).to_device(device),
            }
        })
        .collect()
}

pub fn melody_loss(net: &MelodyNet, batch: &TokenBatch, train: bool) -> BatchLoss {
    let (sum, items, correct) = net.loss(&batch.inputs, &batch.targets, train);
    BatchLoss { sum, items, correct: Some(correct), keys: None }
}

pub fn loss(net: &TokenNet, batch: &TokenBatch, train: bool) -> BatchLoss {
    let logits = net.forward(&batch.inputs, train);
    let (sum, items, correct) = token_loss(&logits, &batch.targets);
    BatchLoss { sum, items, correct: Some(correct), keys: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_prediction_once() {
        let sequences = vec![(0..10).collect::<Vec<i64>>(), vec![7]];
        let cut = windows(&sequences, 4);
        assert_eq!(cut, vec![vec![0, 1, 2, 3, 4], vec![4, 5, 6, 7, 8], vec![8, 9]]);
        let batch = &batches(&cut, &[2, 0], 2, Device::Cpu)[0];
        assert_eq!(Vec::<i64>::try_from(batch.inputs.view([-1])).unwrap(), [8, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(
            Vec::<i64>::try_from(batch.targets.view([-1])).unwrap(),
            [9, IGNORE, IGNORE, IGNORE, 1, 2, 3, 4]
        );
    }
}
