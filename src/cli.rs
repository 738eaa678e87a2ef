//! The command-line commands that run outside the server: train and eval.

use std::path::Path;

use anyhow::{Context, bail};
use tch::Device;
use tch::nn::VarStore;

use crate::config::{
    EvalArgs, GenerateArgs, HyperparameterOverrides, MAX_GENERATE_LENGTH, Split, TorchArgs, TrainArgs,
};
use crate::datasets::{self, IngestLimits, folder_uploads, sha256_hex};
use crate::devices::default_devices;
use crate::midi::{self, TempoChange};
use crate::model::artifact::{self, ArtifactMeta, DataSource, LoadedModel, Net, Network, Representation};
use crate::model::optim::Optimizer;
use crate::model::pianoroll::RollNet;
use crate::model::presets::Hyperparameters;
use crate::repr::pianoroll::{self, BenchmarkSplits, Frame};
use crate::train::checkpoint as artifact_io;
use crate::train::{self, EpochMetrics, pianoroll as roll_training};

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let hp = apply(args.preset.defaults(), &args.overrides);
    let checkpoints = args.checkpoint_dir.clone().unwrap_or_else(|| args.out.with_extension("checkpoint"));
    eprintln!(
        "fugue train: preset {} on {device:?}, checkpoints in {}",
        args.preset.name(),
        checkpoints.display()
    );
    let (splits, data) = roll_splits(&args.data, &hp)?;
    let (train_set, valid_set) = (roll_training::usable(&splits.0), roll_training::usable(&splits.1));
    if train_set.is_empty() || valid_set.is_empty() {
        bail!(
            "{}: needs sequences of two frames or more in both training and validation",
            args.data.display()
        );
    }
    let vs = VarStore::new(device);
    let net = RollNet::new(&vs.root(), args.preset.roll_network(&hp));
    let mut optimizer = Optimizer::new(&vs, hp.optimizer());
    let valid_order: Vec<usize> = (0..valid_set.len()).collect();
    let valid_batches = roll_training::batches(&valid_set, &valid_order, hp.batch_size, device);
    let train_batches = |_epoch: u32| {
        roll_training::batches(&train_set, &roll_training::shuffled(train_set.len()), hp.batch_size, device)
    };
    let outcome = train::fit(
        &vs,
        &mut optimizer,
        &hp.fit(),
        &train_batches,
        &valid_batches,
        &|batch, train| roll_training::loss(&net, batch, train),
        &checkpoints,
        &mut |metrics| print_epoch(metrics, hp.epochs),
    )?;
    let mut evaluation = serde_json::Map::new();
    evaluation.insert("valid_nll".to_owned(), outcome.best_valid_loss.into());
    let meta = ArtifactMeta {
        format: artifact::FORMAT,
        fugue_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        preset: args.preset.name().to_owned(),
        representation: Representation::Pianoroll { grid: hp.grid },
        network: Network::Roll(net.config().clone()),
        hyperparameters: serde_json::to_value(&hp)?,
        data,
        training: outcome,
        evaluation,
    };
    artifact::save(&args.out, &meta, &vs)?;
    std::fs::remove_dir_all(&checkpoints).with_context(|| format!("removing {}", checkpoints.display()))?;
    eprintln!(
        "fugue train: best validation loss {:.4} at epoch {}; model in {}",
        meta.training.best_valid_loss,
        meta.training.best_epoch,
        args.out.display()
    );
    Ok(())
}

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
    tch::manual_seed(args.seed as i64);
    let (Net::Roll(net), Representation::Pianoroll { grid }) = (&model.net, &model.meta.representation);
    let frames = tch::no_grad(|| roll_training::sample(net, args.length, args.temperature, device));
    let mut score = pianoroll::decode(&frames, *grid);
    score.tempos =
        vec![TempoChange { tick: 0, micros_per_beat: (60_000_000.0 / args.tempo_bpm).round() as u32 }];
    let bytes = midi::write(&score);
    artifact_io::write_atomically(&args.out, &bytes)?;
    eprintln!(
        "fugue generate: {} notes in {} frames to {}",
        score.note_count(),
        frames.len(),
        args.out.display()
    );
    Ok(())
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let model = LoadedModel::load(&args.model, device)?;
    let splits = BenchmarkSplits::load(&args.data)?;
    let sequences = match args.split {
        Split::Train => &splits.train,
        Split::Valid => &splits.valid,
        Split::Test => &splits.test,
    };
    let Net::Roll(net) = &model.net;
    let nll = roll_training::frame_nll(net, sequences, device)?;
    let frames: usize = sequences.iter().map(|s| s.len().saturating_sub(1)).sum();
    let report = serde_json::json!({
        "model": args.model.display().to_string(),
        "preset": model.meta.preset,
        "split": format!("{:?}", args.split).to_lowercase(),
        "nll": nll,
        "frames": frames,
    });
    println!("{report}");
    Ok(())
}

impl TorchArgs {
    /// Sets the thread count and returns the device to use.
    fn apply(&self) -> Device {
        tch::set_num_threads(self.threads.max(1));
        let cuda = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        self.device.unwrap_or_else(|| default_devices(cuda)[0]).0
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
        dropout,
        patience,
        validation_fraction,
        seed
    );
    hp
}

fn print_epoch(metrics: &EpochMetrics, epochs: u32) {
    eprintln!(
        "epoch {:>3}/{epochs}  train {:.4}  valid {:.4}  {:>8.0} items/s  lr {:.2e}  {:.1}s",
        metrics.epoch,
        metrics.train_loss,
        metrics.valid_loss,
        metrics.samples_per_second,
        metrics.learning_rate,
        metrics.seconds
    );
}

type Sequences = (Vec<Vec<Frame>>, Vec<Vec<Frame>>);

/// Training and validation rolls: a benchmark JSON's own splits, or a folder of
/// MIDI files split by file (never by window), seeded.
fn roll_splits(data: &Path, hp: &Hyperparameters) -> anyhow::Result<(Sequences, DataSource)> {
    if data.extension().is_some_and(|ext| ext == "json") {
        let bytes = std::fs::read(data).with_context(|| format!("reading {}", data.display()))?;
        let splits = BenchmarkSplits::load(data)?;
        let source = DataSource { source: data.display().to_string(), sha256: sha256_hex(&bytes) };
        return Ok(((splits.train, splits.valid), source));
    }
    let uploads = folder_uploads(data).with_context(|| format!("reading {}", data.display()))?;
    let ingested = datasets::ingest(uploads, false, &IngestLimits::default())?;
    let hashes: Vec<&str> = ingested.report.accepted.iter().map(|file| file.sha256.as_str()).collect();
    let source =
        DataSource { source: data.display().to_string(), sha256: sha256_hex(hashes.join("\n").as_bytes()) };
    let rolls: Vec<Vec<Frame>> = ingested
        .files
        .iter()
        .map(|(_, bytes)| Ok(pianoroll::encode(&midi::read(bytes)?, hp.grid)))
        .collect::<anyhow::Result<_>>()?;
    Ok((split_by_file(rolls, hp.validation_fraction, hp.seed), source))
}

/// Holds out `fraction` of the files (at least one), chosen by a seeded shuffle.
fn split_by_file<T>(items: Vec<T>, fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    tch::manual_seed(seed as i64);
    let order = roll_training::shuffled(items.len());
    let held_out =
        ((items.len() as f64 * fraction).round() as usize).clamp(1, items.len().saturating_sub(1).max(1));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut take = |indices: &[usize]| indices.iter().filter_map(|&i| slots[i].take()).collect::<Vec<T>>();
    let valid = take(&order[..held_out]);
    let train = take(&order[held_out..]);
    (train, valid)
}
