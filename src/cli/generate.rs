//! `fugue generate`: a model's music as a MIDI file.

use anyhow::bail;

use crate::cli::args::{GenerateArgs, MAX_GENERATE_LENGTH};
use crate::devices::WeightFormat;
use crate::generate::offline;
use crate::midi::{self, TempoChange};
use crate::model::artifact::LoadedModel;
use crate::model::sampling::{Rng, Sampling};
use crate::model::weights::write_atomically;

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
    let model = LoadedModel::load(&args.model, device, WeightFormat::default())?;
    let sampling = Sampling { temperature: args.temperature, ..Sampling::default() };
    let mut score = offline::generate(&model, args.length, &sampling, &mut Rng::new(args.seed))
        .map_err(|error| anyhow::anyhow!("{}: {error:#}", args.model.display()))?;
    if score.tempos.is_empty() {
        score.tempos =
            vec![TempoChange { tick: 0, micros_per_beat: (60_000_000.0 / args.tempo_bpm).round() as u32 }];
    }
    write_atomically(&args.out, &midi::write(&score))?;
    eprintln!("fugue generate: {} notes to {}", score.note_count(), args.out.display());
    Ok(())
}
