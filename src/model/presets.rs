//! Presets: named recipes of representation, network and hyperparameters, each
//! overridable by name. The names themselves ([`Preset`]) are a leaf type in
//! `shared`, so rows in the store can carry them.

use serde::{Deserialize, Serialize};

pub use crate::shared::Preset;

use super::hyperparameters::{DEFAULT_BUDGET_MINUTES, Hyperparameters};
use super::melody_net::MelodyNetConfig;
use super::optim::OptimizerKind;
use super::roll_net::{RollNetConfig, RollOutput};
use super::seq2seq_net::{RollLoss, Seq2SeqConfig};
use super::token_net::{Head, TokenNetConfig};
use super::training_record::LearningRateSchedule;
use crate::midi::Score;
use crate::repr::events::{EventsConfig, PART_LIMIT};
use crate::repr::melody_chords::MelodyChordsConfig;
use crate::repr::note_chord::{NoteChordConfig, Parse};
use crate::repr::pianoroll::Grid;

impl Preset {
    pub fn defaults(self) -> Hyperparameters {
        let roll = Hyperparameters {
            epochs: 200,
            batch_size: 8,
            learning_rate: 1e-3,
            learning_rate_decay: 0.99,
            learning_rate_schedule: LearningRateSchedule::Exponential,
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
            key_input: false,
            members: 1,
            teacher_forcing: 1.0,
            teacher_forcing_decay: 0.95,
            focal_gamma: 0.0,
            focal_alpha: 0.25,
            patience: 20,
            learning_rate_drops: 0,
            validation_fraction: 0.15,
            budget_minutes: DEFAULT_BUDGET_MINUTES,
            seed: 1,
            grid: Grid::Quarter,
            recipe: None,
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
            key_input: hp.key_input,
            members: hp.members,
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

impl Family {
    /// A row of a training batch is a whole piece (`train_roll`), not a window of
    /// fixed length cut from every file, as in every other family: the number of
    /// rows an epoch has follows the pieces, not the music's length.
    pub fn batches_whole_pieces(&self) -> bool {
        matches!(self, Family::Pianoroll)
    }
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
