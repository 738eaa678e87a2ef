//! Leaf types and helpers every layer may use: preset names, time stamps, content
//! hashes, the shutdown signal, locks that outlive a panic. This module imports nothing from the rest of the crate.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Milliseconds since the epoch as RFC 3339 with milliseconds, UTC (`…Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The SHA-256 of `bytes`, lowercase hex: the name of a blob, the identity of a corpus.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A mutex locked whether or not a thread panicked while holding it. For the
/// process's small shared tables (caches, counters, lists of ids): each critical
/// section leaves them whole, so a panic elsewhere in the holder (an engine
/// worker's, say, which restarts) must not take every later caller down with it.
pub trait LockSurvivingPanics<T> {
    fn lock_surviving_panics(&self) -> std::sync::MutexGuard<'_, T>;
}

impl<T> LockSurvivingPanics<T> for std::sync::Mutex<T> {
    fn lock_surviving_panics(&self) -> std::sync::MutexGuard<'_, T> {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        tokio::signal::ctrl_c().await.expect("installing the SIGINT handler");
    };
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler")
            .recv()
            .await;
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_hashes() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

/// A preset: a named recipe of representation, network and hyperparameters.
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
}

/// A preset name that is none of fugue's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset `{0}`")]
pub struct UnknownPreset(pub String);

impl std::str::FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(name: &str) -> Result<Preset, UnknownPreset> {
        <Preset as clap::ValueEnum>::value_variants()
            .iter()
            .copied()
            .find(|preset| preset.name() == name)
            .ok_or_else(|| UnknownPreset(name.to_owned()))
    }
}
