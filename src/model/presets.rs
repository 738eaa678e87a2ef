//! Presets: named recipes of representation, network and hyperparameters, each
//! overridable by name.

use serde::{Deserialize, Serialize};

use super::melody_net::MelodyNetConfig;
use super::optim::{OptimizerConfig, OptimizerKind};
use super::roll_net::{RollNetConfig, RollOutput};
use super::seq2seq_net::{RollLoss, Seq2SeqConfig};
use super::token_net::{Head, TokenNetConfig};
use super::training_record::FitConfig;
use crate::midi::Score;
use crate::repr::events::{EventsConfig, PART_LIMIT};
use crate::repr::melody_chords::MelodyChordsConfig;
use crate::repr::note_chord::{NoteChordConfig, Parse};
use crate::repr::pianoroll::Grid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// fugue's default: `events` tokens (rhythm, velocity, polyphony, meter, tempo,
    /// and parts when a file of the corpus has more than one), embedding → 2×256
    /// LSTM → dense, gradient clipping, decaying learning rate.
    Fugue,
    /// The Bach note/chord tutorial: `note-chord` tokens, window 40, LSTM 300 ×2 →
    /// batch norm → ReLU → dropout → dense; Adam, batch 64.
    PlayBach,
    /// The classical-piano tutorial: normal-order `note-chord` tokens, window 100,
    /// LSTM 512 ×3 (dropout 0.3) → batch norm → dropout → dense 256 → ReLU → batch
    /// norm → dropout → dense; RMSprop, batch 128.
    ClassicalPiano,
    /// The folk-RNN style: `melody-chords` frames (8th notes), an LSTM with two
    /// softmax heads, one for the melody and one for the chord.
    FolkRnn,
    /// 88-key frames, a window in, the next window out: encoder LSTM 512 ×2 →
    /// decoder LSTM 512 ×2 → dense 256 → ReLU → dropout → 88 logits; BCE or focal
    /// loss; decaying teacher forcing.
    PianorollSeq2seq,
    /// 88-key frames → LSTM → 88 independent sigmoids (the benchmark's LSTM row).
    PianorollLstm,
    /// 88-key frames → LSTM → NADE over the keys (the benchmark's RNN-NADE row).
    PianorollNade,
}

/// Every knob a preset has, by the names users override them with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    pub epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub learning_rate_decay: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    pub clip_grad_norm: Option<f64>,
    /// Decay of the moving average of the weights that validation and the saved
    /// model use; 0 uses the last step's weights.
    #[serde(default)]
    pub weight_averaging: f64,
    pub layers: i64,
    pub hidden_size: i64,
    /// Hidden units of the NADE output layer (piano-roll NADE only).
    pub nade_hidden_size: i64,
    /// Token embedding width (token presets).
    pub embedding_size: i64,
    /// Tokens per training window (token presets).
    pub window: usize,
    pub dropout: f64,
    /// DropConnect on the LSTMs' recurrent weights, one mask per batch; 0 turns it
    /// off.
    #[serde(default)]
    pub recurrent_dropout: f64,
    /// Frames in the cycle whose position the piano-roll LSTM and NADE read beside
    /// the keys (16 quarter-note frames: four 4/4 bars); 0 for none.
    #[serde(default)]
    pub position_period: i64,
    /// Transpose each training sequence by a random shift of up to this many
    /// semitones every epoch (piano-roll presets); 0 leaves the data as it is.
    pub transpose: u8,
    /// Share of batches that start with teacher forcing (piano-roll seq2seq).
    pub teacher_forcing: f64,
    /// The teacher-forcing share is multiplied by this after every epoch.
    pub teacher_forcing_decay: f64,
    /// Focal loss γ; 0 trains with plain binary cross-entropy (piano-roll seq2seq).
    pub focal_gamma: f64,
    /// Focal loss α, the weight of keys that are on.
    pub focal_alpha: f64,
    pub patience: u32,
    pub validation_fraction: f64,
    pub seed: u64,
    pub grid: Grid,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Fugue => "fugue",
            Preset::PlayBach => "play-bach",
            Preset::ClassicalPiano => "classical-piano",
            Preset::FolkRnn => "folk-rnn",
            Preset::PianorollSeq2seq => "pianoroll-seq2seq",
            Preset::PianorollLstm => "pianoroll-lstm",
            Preset::PianorollNade => "pianoroll-nade",
        }
    }

    pub fn defaults(self) -> Hyperparameters {
        let roll = Hyperparameters {
            epochs: 200,
            batch_size: 8,
            learning_rate: 1e-3,
            learning_rate_decay: 0.99,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            clip_grad_norm: Some(1.0),
            weight_averaging: 0.0,
            layers: 2,
            hidden_size: 256,
            nade_hidden_size: 0,
            embedding_size: 0,
            window: 0,
            dropout: 0.5,
            recurrent_dropout: 0.0,
            position_period: 0,
            transpose: 0,
            teacher_forcing: 1.0,
            teacher_forcing_decay: 0.95,
            focal_gamma: 0.0,
            focal_alpha: 0.25,
            patience: 20,
            validation_fraction: 0.15,
            seed: 1,
            grid: Grid::Quarter,
        };
        let tokens = Hyperparameters {
            epochs: 50,
            batch_size: 64,
            learning_rate_decay: 1.0,
            clip_grad_norm: None,
            embedding_size: 64,
            window: 40,
            hidden_size: 300,
            dropout: 0.3,
            patience: 10,
            ..roll.clone()
        };
        match self {
            Preset::Fugue => Hyperparameters {
                epochs: 40,
                batch_size: 32,
                learning_rate: 2e-3,
                learning_rate_decay: 0.95,
                clip_grad_norm: Some(1.0),
                embedding_size: 128,
                window: 256,
                hidden_size: 256,
                patience: 5,
                ..tokens
            },
            Preset::PlayBach => tokens,
            Preset::ClassicalPiano => Hyperparameters {
                epochs: 200,
                batch_size: 128,
                optimizer: OptimizerKind::Rmsprop,
                layers: 3,
                hidden_size: 512,
                window: 100,
                ..tokens
            },
            Preset::FolkRnn => {
                Hyperparameters { batch_size: 32, embedding_size: 32, window: 64, hidden_size: 256, ..tokens }
            }
            Preset::PianorollSeq2seq => Hyperparameters {
                epochs: 50,
                batch_size: 32,
                hidden_size: 512,
                window: 16,
                dropout: 0.3,
                patience: 10,
                ..roll
            },
            // The recipe of models/jsb-pianoroll (see models/README.md): small batches,
            // heavy DropConnect on the recurrence, a moving average of the weights, and
            // the frame's place in a 16-frame cycle (four 4/4 bars of quarter notes).
            Preset::PianorollLstm => Hyperparameters {
                epochs: 400,
                batch_size: 4,
                learning_rate: 2e-3,
                weight_averaging: 0.999,
                dropout: 0.35,
                recurrent_dropout: 0.8,
                position_period: 16,
                patience: 30,
                ..roll
            },
            Preset::PianorollNade => Hyperparameters { nade_hidden_size: 150, ..roll },
        }
    }

    pub fn family(self) -> Family {
        match self {
            Preset::Fugue => Family::Tokens(TokenRepresentation::Events(EventsConfig::default())),
            Preset::PlayBach => Family::Tokens(TokenRepresentation::NoteChord(NoteChordConfig {
                parse: Parse::Music21Flat,
                ..NoteChordConfig::default()
            })),
            Preset::ClassicalPiano => Family::Tokens(TokenRepresentation::NoteChord(NoteChordConfig {
                normal_order: true,
                parse: Parse::Music21FirstInstrument,
                ..NoteChordConfig::default()
            })),
            Preset::FolkRnn => Family::MelodyChords(MelodyChordsConfig::default()),
            Preset::PianorollLstm | Preset::PianorollNade => Family::Pianoroll,
            Preset::PianorollSeq2seq => Family::PianorollSeq2seq,
        }
    }

    pub fn seq2seq_network(self, hp: &Hyperparameters) -> Seq2SeqConfig {
        let loss = if hp.focal_gamma > 0.0 {
            RollLoss::Focal { alpha: hp.focal_alpha, gamma: hp.focal_gamma }
        } else {
            RollLoss::Bce
        };
        Seq2SeqConfig {
            window: hp.window as i64,
            hidden: hp.hidden_size,
            layers: hp.layers,
            dropout: hp.dropout,
            recurrent_dropout: hp.recurrent_dropout,
            loss,
        }
    }

    pub fn melody_network(self, hp: &Hyperparameters) -> MelodyNetConfig {
        MelodyNetConfig {
            embedding: hp.embedding_size,
            hidden: hp.hidden_size,
            layers: hp.layers,
            dropout: hp.dropout,
            recurrent_dropout: hp.recurrent_dropout,
        }
    }

    pub fn token_network(self, hp: &Hyperparameters, vocabulary: usize) -> TokenNetConfig {
        let head = match self {
            Preset::PlayBach => Head::BatchnormRelu,
            Preset::ClassicalPiano => Head::Dense256,
            _ => Head::Linear,
        };
        TokenNetConfig {
            vocabulary: vocabulary as i64,
            embedding: hp.embedding_size,
            hidden: hp.hidden_size,
            layers: hp.layers,
            dropout: hp.dropout,
            recurrent_dropout: hp.recurrent_dropout,
            head,
        }
    }

    pub fn roll_network(self, hp: &Hyperparameters) -> RollNetConfig {
        let output = match self {
            Preset::PianorollNade => RollOutput::Nade { hidden: hp.nade_hidden_size },
            _ => RollOutput::Independent,
        };
        RollNetConfig {
            hidden: hp.hidden_size,
            layers: hp.layers,
            dropout: hp.dropout,
            recurrent_dropout: hp.recurrent_dropout,
            position_period: hp.position_period,
            output,
        }
    }
}

/// What kind of sequence a preset trains on.
pub enum Family {
    Tokens(TokenRepresentation),
    MelodyChords(MelodyChordsConfig),
    Pianoroll,
    PianorollSeq2seq,
}

/// How a token preset turns scores into tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenRepresentation {
    Events(EventsConfig),
    NoteChord(NoteChordConfig),
}

impl TokenRepresentation {
    /// The representation as trained on this corpus, which the artifact records:
    /// `events` keeps parts (up to [`PART_LIMIT`]) when any file has more than one,
    /// and merges them into one stream, as before parts, when none does.
    pub fn for_corpus(self, scores: &[Score]) -> TokenRepresentation {
        match self {
            TokenRepresentation::Events(config) => {
                let has_parts = scores.iter().any(|score| score.parts.len() > 1);
                let max_parts = if has_parts { PART_LIMIT } else { 0 };
                TokenRepresentation::Events(EventsConfig { max_parts, ..config })
            }
            other => other,
        }
    }
}

impl Hyperparameters {
    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            clip_grad_norm: self.clip_grad_norm,
            weight_averaging: self.weight_averaging,
        }
    }

    pub fn fit(&self) -> FitConfig {
        FitConfig {
            epochs: self.epochs,
            patience: self.patience,
            seed: self.seed,
            learning_rate_decay: self.learning_rate_decay,
        }
    }
}
