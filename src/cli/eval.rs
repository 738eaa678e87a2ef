//! `fugue eval`: the benchmark's frame-level NLL of a piano-roll model.

use anyhow::bail;

use crate::cli::args::{EvalArgs, Split};
use crate::devices::WeightFormat;
use crate::model::artifact::{LoadedModel, Net};
use crate::repr::pianoroll::BenchmarkSplits;
use crate::train::roll_training;

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let model = LoadedModel::load(&args.model, device, WeightFormat::Fp32)?;
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
