//! The command-line commands that run models outside the server: train,
//! generate and eval.

use std::path::Path;

use anyhow::{Context, bail};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::config::{
    EvalArgs, GenerateArgs, HyperparameterOverrides, MAX_GENERATE_LENGTH, Split, StorageArgs, TorchArgs,
    TrainArgs,
};
use crate::datasets::{self, BlobStore, IngestLimits, folder_uploads, sha256_hex};
use crate::devices::default_devices;
use crate::midi::{self, Score, TempoChange};
use crate::model::artifact::{self, ArtifactMeta, DataSource, LoadedModel, Net, Network, Representation};
use crate::model::melody::{MelodyNet, frame_id};
use crate::model::optim::Optimizer;
use crate::model::pianoroll::RollNet;
use crate::model::presets::{Family, Hyperparameters, Preset, TokenRepresentation};
use crate::model::sampling::{Rng, Sampling, sample};
use crate::model::seq2seq::Seq2Seq;
use crate::model::tokens::TokenNet;
use crate::repr::melody_chords::{self, Frame as MelodyFrame, MelodyChordsConfig};
use crate::repr::pianoroll::{self, BenchmarkSplits, Frame, KEYS, to_binary};
use crate::repr::{Vocabulary, events, note_chord};
use crate::store::Store;
use crate::train::checkpoint as artifact_io;
use crate::train::{
    self, EpochMetrics, FitOutcome, pianoroll as roll_training, seq2seq as seq2seq_training,
    tokens as token_training,
};

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
    let mut optimizer = Optimizer::new(&vs, hp.optimizer());
    let valid_batches = roll_training::batches(&valid_set, &in_order(valid_set.len()), hp.batch_size, device);
    let train_batches = |_epoch: u32| {
        roll_training::batches(&train_set, &train::shuffled(train_set.len()), hp.batch_size, device)
    };
    let loss = |batch: &roll_training::RollBatch, train: bool| roll_training::loss(&net, batch, train);
    let outcome = train::fit(
        &vs,
        &mut optimizer,
        &hp.fit(),
        &train_batches,
        &valid_batches,
        &loss,
        checkpoints,
        &mut |metrics| print_epoch(metrics, hp.epochs),
    )?;
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
    let mut optimizer = Optimizer::new(&vs, hp.optimizer());
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
    let outcome = train::fit(
        &vs,
        &mut optimizer,
        &hp.fit(),
        &train_batches,
        &valid_batches,
        &loss,
        checkpoints,
        &mut |metrics| print_epoch(metrics, hp.epochs),
    )?;
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
    let mut optimizer = Optimizer::new(vs, hp.optimizer());
    let valid_batches =
        token_training::batches(&valid_windows, &in_order(valid_windows.len()), hp.batch_size, device);
    let train_batches = |_epoch: u32| {
        token_training::batches(&train_windows, &train::shuffled(train_windows.len()), hp.batch_size, device)
    };
    train::fit(
        vs,
        &mut optimizer,
        &hp.fit(),
        &train_batches,
        &valid_batches,
        loss,
        checkpoints,
        &mut |metrics| print_epoch(metrics, hp.epochs),
    )
}

fn tokenize(representation: &TokenRepresentation, score: &Score) -> Vec<String> {
    match representation {
        TokenRepresentation::Events(config) => {
            events::encode(score, config).iter().map(ToString::to_string).collect()
        }
        TokenRepresentation::NoteChord(config) => note_chord::encode(score, config),
    }
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
    let sampling = Sampling { temperature: args.temperature, ..Sampling::default() };
    let mut rng = Rng::new(args.seed);
    let mut score = tch::no_grad(|| match (&model.net, &model.meta.representation) {
        (Net::Roll(net), Representation::Pianoroll { grid }) => {
            Ok(pianoroll::decode(&roll_training::sample(net, args.length, args.temperature, device), *grid))
        }
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

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let model = LoadedModel::load(&args.model, device)?;
    let Net::Roll(net) = &model.net else {
        bail!("{}: `fugue eval` scores piano-roll models on the benchmark", args.model.display());
    };
    let splits = BenchmarkSplits::load(&args.data)?;
    let sequences = match args.split {
        Split::Train => &splits.train,
        Split::Valid => &splits.valid,
        Split::Test => &splits.test,
    };
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
        embedding_size,
        window,
        dropout,
        patience,
        validation_fraction,
        seed
    );
    hp
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

/// The scores to train on, drums left out, and what identifies them: a local
/// folder, or an uploaded dataset from the store.
fn corpus(args: &TrainArgs) -> anyhow::Result<(Vec<Score>, DataSource)> {
    let (files, include_drums, source) = match (&args.data, &args.dataset) {
        (Some(folder), _) => {
            let uploads = folder_uploads(folder).with_context(|| format!("reading {}", folder.display()))?;
            let ingested = datasets::ingest(uploads, false, &IngestLimits::default())?;
            let files: Vec<(String, Vec<u8>)> =
                ingested.files.into_iter().map(|(file, bytes)| (file.sha256, bytes)).collect();
            (files, false, folder.display().to_string())
        }
        (None, Some(id)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (files, include_drums) = runtime.block_on(dataset_files(&args.storage, id))?;
            (files, include_drums, format!("dataset {id}"))
        }
        (None, None) => bail!("--data or --dataset is required"),
    };
    let hashes: Vec<&str> = files.iter().map(|(hash, _)| hash.as_str()).collect();
    let source = DataSource { source, sha256: sha256_hex(hashes.join("\n").as_bytes()) };
    let scores = files
        .iter()
        .map(|(_, bytes)| {
            let mut score = midi::read(bytes)?;
            score.parts.retain(|part| include_drums || !part.is_drum);
            Ok(score)
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((scores, source))
}

/// An uploaded dataset's files (hash and bytes), and whether it keeps drums.
async fn dataset_files(storage: &StorageArgs, id: &str) -> anyhow::Result<(Vec<(String, Vec<u8>)>, bool)> {
    let store = Store::open(&storage.database_url()).await?;
    let dataset = store.dataset(id).await?.with_context(|| format!("no dataset `{id}`"))?;
    let blobs = BlobStore::new(&storage.data_dir);
    let files = store
        .dataset_files(id)
        .await?
        .into_iter()
        .map(|file| {
            Ok((file.sha256.clone(), blobs.get(&file.sha256).with_context(|| file.file_name.clone())?))
        })
        .collect::<anyhow::Result<_>>()?;
    store.close().await;
    Ok((files, dataset.include_drums))
}

type Sequences = (Vec<Vec<Frame>>, Vec<Vec<Frame>>);

/// A benchmark JSON's own training and validation splits.
fn benchmark_splits(json: &Path) -> anyhow::Result<(Sequences, DataSource)> {
    let bytes = std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
    let splits = BenchmarkSplits::load(json)?;
    let source = DataSource { source: json.display().to_string(), sha256: sha256_hex(&bytes) };
    Ok(((splits.train, splits.valid), source))
}

/// Holds out `fraction` of the files (at least one), chosen by a seeded shuffle.
fn split_by_file<T>(items: Vec<T>, fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let held_out =
        ((items.len() as f64 * fraction).round() as usize).clamp(1, items.len().saturating_sub(1).max(1));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut take = |indices: &[usize]| indices.iter().filter_map(|&i| slots[i].take()).collect::<Vec<T>>();
    let valid = take(&order[..held_out]);
    let train = take(&order[held_out..]);
    (train, valid)
}
