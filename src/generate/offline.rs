//! Whole-piece generation, one stream at a time: what `fugue generate` runs, and
//! what the engine runs for model families it does not step in batches (piano-roll,
//! seq2seq and melody-chords models).

use anyhow::anyhow;
use tch::{Device, Tensor};

use crate::midi::Score;
use crate::model::artifact::{LoadedModel, Net, Representation};
use crate::model::melody_net::{MelodyNet, frame_id};
use crate::model::sampling::{Rng, Sampling, sample};
use crate::model::token_net::FrozenTokenNet;
use crate::repr::melody_chords::{self, Frame as MelodyFrame};
use crate::repr::pianoroll::{self, Frame, KEYS, to_binary};
use crate::repr::{Vocabulary, events, note_chord};
use crate::train::roll_training;

/// `steps` model steps (tokens or frames) of music, from nothing.
pub fn generate(
    model: &LoadedModel,
    steps: u32,
    sampling: &Sampling,
    rng: &mut Rng,
) -> anyhow::Result<Score> {
    let device = model.vs.device();
    tch::no_grad(|| match (&model.net, &model.meta.representation) {
        (Net::Roll(net), Representation::Pianoroll { grid }) => Ok(pianoroll::decode(
            &roll_training::sample(net, steps, sampling.temperature, rng, device),
            *grid,
        )),
        (Net::Seq2seq(net), Representation::Pianoroll { grid }) => {
            let window = net.config().window.max(1);
            let mut frames: Vec<Frame> = vec![Vec::new(); window as usize];
            while frames.len() < steps as usize + window as usize {
                let source: Vec<f32> =
                    frames[frames.len() - window as usize..].iter().flat_map(|f| to_binary(f)).collect();
                let source = Tensor::from_slice(&source).view([1, window, KEYS as i64]).to_device(device);
                frames.extend(net.sample(&source, window, sampling.temperature, rng));
            }
            frames.drain(..window as usize);
            frames.truncate(steps as usize);
            Ok(pianoroll::decode(&frames, *grid))
        }
        (Net::Token(net), Representation::Events { config, vocabulary, .. }) => {
            // A model with parts reads the header of the parts its corpus typically
            // has first, then writes freely from the first bar.
            let plain = super::request::GenerateRequest::default().check(0)?;
            let header: Vec<String> = super::parts::for_model(&model.meta.representation, &plain)?
                .iter()
                .zip(0..)
                .flat_map(|(part, index)| part.declared.header(index))
                .map(|token| token.to_string())
                .collect();
            let start: Vec<&str> = header.iter().map(String::as_str).chain(["Bar"]).collect();
            let tokens = sample_tokens(net, vocabulary, &start, steps, sampling, rng, device);
            let parsed: Vec<events::Token> = tokens.iter().filter_map(|token| token.parse().ok()).collect();
            Ok(events::decode(&parsed, config))
        }
        (Net::Token(net), Representation::NoteChord { config, vocabulary }) => {
            let tokens = sample_tokens(net, vocabulary, &[], steps, sampling, rng, device);
            Ok(note_chord::decode(&tokens, config)?)
        }
        (Net::Melody(net), Representation::MelodyChords { config }) => {
            let frames = sample_frames(net, steps, sampling, rng, device);
            Ok(melody_chords::decode(&frames, config))
        }
        _ => Err(anyhow!("the model's network does not match its representation")),
    })
}

/// Samples `length` tokens after `start` (or, when the vocabulary lacks it, after
/// a token drawn at random).
fn sample_tokens(
    net: &FrozenTokenNet,
    vocabulary: &Vocabulary,
    start: &[&str],
    length: u32,
    sampling: &Sampling,
    rng: &mut Rng,
    device: Device,
) -> Vec<String> {
    let known: Vec<i64> = start.iter().filter_map(|token| vocabulary.id(token)).map(i64::from).collect();
    let mut tokens =
        if known.is_empty() { vec![(rng.next_u64() % vocabulary.len() as u64) as i64] } else { known };
    let mut state = net.zero_state(1, device);
    // The start tokens but the last are read in; the last is the first input.
    for &id in &tokens[..tokens.len() - 1] {
        let input = Tensor::from_slice(&[id]).to_device(device);
        state = net.step(&input, &state).1;
    }
    for _ in 0..length {
        let input = Tensor::from_slice(&[*tokens.last().expect("starts non-empty")]).to_device(device);
        let (logits, next) = net.step(&input, &state);
        state = next;
        tokens.push(sample(&logits, sampling, std::slice::from_mut(rng))[0]);
    }
    tokens.iter().filter_map(|&id| vocabulary.token(id as u32)).map(str::to_owned).collect()
}

/// Samples `length` melody-and-chord frames after a silent one.
fn sample_frames(
    net: &MelodyNet,
    length: u32,
    sampling: &Sampling,
    rng: &mut Rng,
    device: Device,
) -> Vec<MelodyFrame> {
    let mut frame = MelodyFrame { melody: 0, chord: 0 };
    let mut state = net.zero_state(1, device);
    let mut frames = Vec::with_capacity(length as usize);
    for _ in 0..length {
        let input = Tensor::from_slice(&[frame_id(frame)]).to_device(device);
        let (melody, chord, next) = net.step(&input, &state);
        state = next;
        let melody = sample(&melody, sampling, std::slice::from_mut(rng))[0];
        let chord = sample(&chord, sampling, std::slice::from_mut(rng))[0];
        frame = MelodyFrame { melody: melody as u8, chord: chord as u8 };
        frames.push(frame);
    }
    frames
}
