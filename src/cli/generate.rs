//! `fugue generate`: a model's music as a MIDI file.

use anyhow::bail;
use tch::{Device, Tensor};

use crate::config::{GenerateArgs, MAX_GENERATE_LENGTH};
use crate::midi::{self, TempoChange};
use crate::model::artifact::{LoadedModel, Net, Representation};
use crate::model::melody::{MelodyNet, frame_id};
use crate::model::sampling::{Rng, Sampling, sample};
use crate::model::tokens::TokenNet;
use crate::repr::melody_chords::{self, Frame as MelodyFrame};
use crate::repr::pianoroll::{self, Frame, KEYS, to_binary};
use crate::repr::{Vocabulary, events, note_chord};
use crate::train::checkpoint as artifact_io;
use crate::train::pianoroll as roll_training;

pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    if args.length == 0 || args.length > MAX_GENERATE_LENGTH {
        bail!("--length must be 1 to {MAX_GENERATE_LENGTH}");
    }
    if !(args.temperature > 0.0 && args.temperature <= 10.0) {
        bail!("--temperature must be above 0 and at most 10");
    }
    if !(20.0..=400.0).contains(&args.tempo_bpm) {
        bail!("--tempo-bpm must be 20 to 400");
    }
    let device = args.torch.apply();
    let model = LoadedModel::load(&args.model, device)?;
    let sampling = Sampling { temperature: args.temperature, ..Sampling::default() };
    let mut rng = Rng::new(args.seed);
    let mut score = tch::no_grad(|| match (&model.net, &model.meta.representation) {
        (Net::Roll(net), Representation::Pianoroll { grid }) => Ok(pianoroll::decode(
            &roll_training::sample(net, args.length, args.temperature, &mut rng, device),
            *grid,
        )),
        (Net::Seq2seq(net), Representation::Pianoroll { grid }) => {
            let window = net.config().window.max(1);
            let mut frames: Vec<Frame> = vec![Vec::new(); window as usize];
            while frames.len() < args.length as usize + window as usize {
                let source: Vec<f32> =
                    frames[frames.len() - window as usize..].iter().flat_map(|f| to_binary(f)).collect();
                let source = Tensor::from_slice(&source).view([1, window, KEYS as i64]).to_device(device);
                frames.extend(net.sample(&source, window, args.temperature, &mut rng));
            }
            frames.drain(..window as usize);
            frames.truncate(args.length as usize);
            Ok(pianoroll::decode(&frames, *grid))
        }
        (Net::Token(net), Representation::Events { config, vocabulary }) => {
            let tokens = sample_tokens(net, vocabulary, "Bar", args.length, &sampling, &mut rng, device);
            let parsed: Vec<events::Token> = tokens.iter().filter_map(|token| token.parse().ok()).collect();
            Ok(events::decode(&parsed, config))
        }
        (Net::Token(net), Representation::NoteChord { config, vocabulary }) => {
            let tokens = sample_tokens(net, vocabulary, "", args.length, &sampling, &mut rng, device);
            Ok(note_chord::decode(&tokens, config)?)
        }
        (Net::Melody(net), Representation::MelodyChords { config }) => {
            let frames = sample_frames(net, args.length, &sampling, &mut rng, device);
            Ok(melody_chords::decode(&frames, config))
        }
        _ => Err(anyhow::anyhow!("{}: its network does not match its representation", args.model.display())),
    })?;
    if score.tempos.is_empty() {
        score.tempos =
            vec![TempoChange { tick: 0, micros_per_beat: (60_000_000.0 / args.tempo_bpm).round() as u32 }];
    }
    artifact_io::write_atomically(&args.out, &midi::write(&score))?;
    eprintln!("fugue generate: {} notes to {}", score.note_count(), args.out.display());
    Ok(())
}

/// Samples `length` tokens after `start` (or, when the vocabulary lacks it, after
/// a token drawn at random).
fn sample_tokens(
    net: &TokenNet,
    vocabulary: &Vocabulary,
    start: &str,
    length: u32,
    sampling: &Sampling,
    rng: &mut Rng,
    device: Device,
) -> Vec<String> {
    let first =
        vocabulary.id(start).map_or_else(|| (rng.next_u64() % vocabulary.len() as u64) as i64, i64::from);
    let mut tokens = vec![first];
    let mut state = net.zero_state(1, device);
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
