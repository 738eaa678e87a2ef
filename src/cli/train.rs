//! `fugue train`: every preset family, from a folder, a dataset or a benchmark JSON.

use std::path::Path;

use anyhow::{Context, bail};
use tch::Device;
use tch::nn::VarStore;

use crate::config::{HyperparameterOverrides, TrainArgs};
use crate::midi::Score;
use crate::model::artifact::{self, ArtifactMeta, Network, Representation};
use crate::model::melody::{MelodyNet, frame_id};
use crate::model::optim::Optimizer;
use crate::model::pianoroll::RollNet;
use crate::model::presets::{Family, Hyperparameters, Preset, TokenRepresentation};
use crate::model::seq2seq::Seq2Seq;
use crate::model::tokens::TokenNet;
use crate::repr::melody_chords::{self, MelodyChordsConfig};
use crate::repr::pianoroll::{self, Frame};
use crate::repr::{Vocabulary, events, note_chord};
use crate::train::{
    self, EpochMetrics, FitOutcome, pianoroll as roll_training, seq2seq as seq2seq_training,
    tokens as token_training,
};

use super::corpus::{Sequences, benchmark_splits, corpus, split_by_file};

/// What a training run produced, before it is written as an artifact.
struct Trained {
    vs: VarStore,
    representation: Representation,
    network: Network,
    outcome: FitOutcome,
}

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let hp = apply(args.preset.defaults(), &args.overrides);
    let checkpoints = args.checkpoint_dir.clone().unwrap_or_else(|| args.out.with_extension("checkpoint"));
    eprintln!(
        "fugue train: preset {} on {device:?}, checkpoints in {}",
        args.preset.name(),
        checkpoints.display()
    );
    // Seeds the initial weights; each epoch reseeds itself (see train::fit).
    tch::manual_seed(hp.seed as i64);
    let benchmark = args.data.as_deref().filter(|data| data.extension().is_some_and(|ext| ext == "json"));
    let (trained, data) = match args.preset.family() {
        family @ (Family::Pianoroll | Family::PianorollSeq2seq) => {
            let (splits, data) = match benchmark {
                Some(json) => benchmark_splits(json)?,
                None => {
                    let (scores, data) = corpus(args)?;
                    let rolls: Vec<Vec<Frame>> =
                        scores.iter().map(|score| pianoroll::encode(score, hp.grid)).collect();
                    (split_by_file(rolls, hp.validation_fraction, hp.seed), data)
                }
            };
            let trained = match family {
                Family::Pianoroll => train_roll(args.preset, &hp, splits, device, &checkpoints)?,
                _ => train_seq2seq(args.preset, &hp, splits, device, &checkpoints)?,
            };
            (trained, data)
        }
        _ if benchmark.is_some() => bail!("a benchmark JSON trains piano-roll presets only"),
        Family::Tokens(representation) => {
            let (scores, data) = corpus(args)?;
            (train_tokens(args.preset, &hp, representation, &scores, device, &checkpoints)?, data)
        }
        Family::MelodyChords(config) => {
            let (scores, data) = corpus(args)?;
            (train_melody(args.preset, &hp, config, &scores, device, &checkpoints)?, data)
        }
    };
    let mut evaluation = serde_json::Map::new();
    evaluation.insert("valid_loss".to_owned(), trained.outcome.best_valid_loss.into());
    let meta = ArtifactMeta {
        format: artifact::FORMAT,
        fugue_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        preset: args.preset.name().to_owned(),
        representation: trained.representation,
        network: trained.network,
        hyperparameters: serde_json::to_value(&hp)?,
        data,
        training: trained.outcome,
        evaluation,
    };
    artifact::save(&args.out, &meta, &trained.vs)?;
    std::fs::remove_dir_all(&checkpoints).with_context(|| format!("removing {}", checkpoints.display()))?;
    eprintln!(
        "fugue train: best validation loss {:.4} at epoch {}; model in {}",
        meta.training.best_valid_loss,
        meta.training.best_epoch,
        args.out.display()
    );
    Ok(())
}

fn train_roll(
    preset: Preset,
    hp: &Hyperparameters,
    (train_set, valid_set): Sequences,
    device: Device,
    checkpoints: &Path,
) -> anyhow::Result<Trained> {
    let (train_set, valid_set) = (roll_training::usable(&train_set), roll_training::usable(&valid_set));
    if train_set.is_empty() || valid_set.is_empty() {
        bail!("needs sequences of two frames or more in both training and validation");
    }
    let vs = VarStore::new(device);
    let net = RollNet::new(&vs.root(), preset.roll_network(hp));
    let valid_batches = roll_training::batches(&valid_set, &in_order(valid_set.len()), hp.batch_size, device);
    let train_batches = |_epoch: u32| {
        let order = train::shuffled(train_set.len());
        match hp.transpose {
            0 => roll_training::batches(&train_set, &order, hp.batch_size, device),
            semitones => {
                let moved = roll_training::transposed(&train_set, semitones);
                roll_training::batches(&moved, &order, hp.batch_size, device)
            }
        }
    };
    let loss = |batch: &roll_training::RollBatch, train: bool| roll_training::loss(&net, batch, train);
    let outcome = fit(&vs, hp, &train_batches, &valid_batches, &loss, checkpoints)?;
    let network = Network::Roll(net.config().clone());
    Ok(Trained { vs, representation: Representation::Pianoroll { grid: hp.grid }, network, outcome })
}

fn train_seq2seq(
    preset: Preset,
    hp: &Hyperparameters,
    (train_set, valid_set): Sequences,
    device: Device,
    checkpoints: &Path,
) -> anyhow::Result<Trained> {
    let (train_pairs, valid_pairs) =
        (seq2seq_training::pairs(&train_set, hp.window), seq2seq_training::pairs(&valid_set, hp.window));
    if train_pairs.is_empty() || valid_pairs.is_empty() {
        bail!(
            "needs sequences of at least two windows ({} frames) in training and validation",
            2 * hp.window
        );
    }
    let vs = VarStore::new(device);
    let net = Seq2Seq::new(&vs.root(), preset.seq2seq_network(hp));
    let valid_batches =
        seq2seq_training::batches(&valid_pairs, &in_order(valid_pairs.len()), hp.batch_size, 0.0, device);
    let train_batches = |epoch: u32| {
        let ratio = hp.teacher_forcing * hp.teacher_forcing_decay.powi(epoch as i32 - 1);
        seq2seq_training::batches(
            &train_pairs,
            &train::shuffled(train_pairs.len()),
            hp.batch_size,
            ratio,
            device,
        )
    };
    let loss = |batch: &seq2seq_training::PairBatch, train: bool| seq2seq_training::loss(&net, batch, train);
    let outcome = fit(&vs, hp, &train_batches, &valid_batches, &loss, checkpoints)?;
    let network = Network::Seq2seq(net.config().clone());
    Ok(Trained { vs, representation: Representation::Pianoroll { grid: hp.grid }, network, outcome })
}

fn train_tokens(
    preset: Preset,
    hp: &Hyperparameters,
    representation: TokenRepresentation,
    scores: &[Score],
    device: Device,
    checkpoints: &Path,
) -> anyhow::Result<Trained> {
    let sequences: Vec<Vec<String>> = scores.iter().map(|score| tokenize(&representation, score)).collect();
    let vocabulary = Vocabulary::build(sequences.iter().map(Vec::as_slice));
    let ids: Vec<Vec<i64>> = sequences
        .iter()
        .map(|sequence| vocabulary.encode(sequence).map(|ids| ids.into_iter().map(i64::from).collect()))
        .collect::<Result<_, _>>()
        .map_err(|token| anyhow::anyhow!("token `{token}` missing from its own vocabulary"))?;
    let vs = VarStore::new(device);
    let net = TokenNet::new(&vs.root(), preset.token_network(hp, vocabulary.len()));
    let loss = |batch: &token_training::TokenBatch, train: bool| token_training::loss(&net, batch, train);
    let outcome = fit_on_ids(hp, ids, &vs, &loss, checkpoints)?;
    let representation = match representation {
        TokenRepresentation::Events(config) => Representation::Events { config, vocabulary },
        TokenRepresentation::NoteChord(config) => Representation::NoteChord { config, vocabulary },
    };
    Ok(Trained { vs, representation, network: Network::Token(net.config().clone()), outcome })
}

fn train_melody(
    preset: Preset,
    hp: &Hyperparameters,
    config: MelodyChordsConfig,
    scores: &[Score],
    device: Device,
    checkpoints: &Path,
) -> anyhow::Result<Trained> {
    let ids: Vec<Vec<i64>> = scores
        .iter()
        .map(|score| melody_chords::encode(score, &config).into_iter().map(frame_id).collect())
        .collect();
    let vs = VarStore::new(device);
    let net = MelodyNet::new(&vs.root(), preset.melody_network(hp));
    let loss =
        |batch: &token_training::TokenBatch, train: bool| token_training::melody_loss(&net, batch, train);
    let outcome = fit_on_ids(hp, ids, &vs, &loss, checkpoints)?;
    let representation = Representation::MelodyChords { config };
    Ok(Trained { vs, representation, network: Network::Melody(net.config().clone()), outcome })
}

/// Splits id sequences by file, cuts them into windows and trains.
fn fit_on_ids(
    hp: &Hyperparameters,
    ids: Vec<Vec<i64>>,
    vs: &VarStore,
    loss: train::LossFn<'_, token_training::TokenBatch>,
    checkpoints: &Path,
) -> anyhow::Result<FitOutcome> {
    let ids: Vec<Vec<i64>> = ids.into_iter().filter(|sequence| sequence.len() >= 2).collect();
    if ids.len() < 2 {
        bail!("needs at least two files with two tokens or more");
    }
    let device = vs.device();
    let (train_ids, valid_ids) = split_by_file(ids, hp.validation_fraction, hp.seed);
    let train_windows = token_training::windows(&train_ids, hp.window);
    let valid_windows = token_training::windows(&valid_ids, hp.window);
    let valid_batches =
        token_training::batches(&valid_windows, &in_order(valid_windows.len()), hp.batch_size, device);
    let train_batches = |_epoch: u32| {
        token_training::batches(&train_windows, &train::shuffled(train_windows.len()), hp.batch_size, device)
    };
    fit(vs, hp, &train_batches, &valid_batches, loss, checkpoints)
}

fn tokenize(representation: &TokenRepresentation, score: &Score) -> Vec<String> {
    match representation {
        TokenRepresentation::Events(config) => {
            events::encode(score, config).iter().map(ToString::to_string).collect()
        }
        TokenRepresentation::NoteChord(config) => note_chord::encode(score, config),
    }
}

fn apply(mut hp: Hyperparameters, o: &HyperparameterOverrides) -> Hyperparameters {
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(value) = o.$field { hp.$field = value; })* };
    }
    set!(
        epochs,
        batch_size,
        learning_rate,
        learning_rate_decay,
        optimizer,
        weight_decay,
        layers,
        hidden_size,
        nade_hidden_size,
        embedding_size,
        window,
        dropout,
        transpose,
        patience,
        validation_fraction,
        seed
    );
    hp
}

/// The training loop with a fresh optimizer and a line per epoch on stderr.
fn fit<B>(
    vs: &VarStore,
    hp: &Hyperparameters,
    train_batches: &dyn Fn(u32) -> Vec<B>,
    valid_batches: &[B],
    loss: train::LossFn<'_, B>,
    checkpoints: &Path,
) -> anyhow::Result<FitOutcome> {
    let mut optimizer = Optimizer::new(vs, hp.optimizer());
    let progress = &mut |metrics: &EpochMetrics| print_epoch(metrics, hp.epochs);
    train::fit(vs, &mut optimizer, &hp.fit(), train_batches, valid_batches, loss, checkpoints, progress)
}

fn print_epoch(metrics: &EpochMetrics, epochs: u32) {
    let accuracy =
        metrics.valid_accuracy.map(|a| format!("  accuracy {:.1}%", a * 100.0)).unwrap_or_default();
    eprintln!(
        "epoch {:>3}/{epochs}  train {:.4}  valid {:.4}{accuracy}  {:>8.0} items/s  lr {:.2e}  {:.1}s",
        metrics.epoch,
        metrics.train_loss,
        metrics.valid_loss,
        metrics.samples_per_second,
        metrics.learning_rate,
        metrics.seconds
    );
}

fn in_order(n: usize) -> Vec<usize> {
    (0..n).collect()
}
