//! `fugue evaluate`: pieces generated with a run of seeds against the model's
//! held-out files, feature by feature (MGEval-style), stored with the model.

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::cli::args::EvaluateArgs;
use crate::devices::WeightFormat;
use crate::generate::engine::{Engine, EngineConfig, SessionEvent, SessionRequest};
use crate::generate::evaluation::{music_evaluation, piece_request};
use crate::generate::request::GenerateRequest;
use crate::model::artifact::{read_meta, read_originality, rewrite_meta};

pub fn evaluate(args: &EvaluateArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let mut meta = read_meta(&args.model)?;
    let reference = meta.held_out_statistics.clone().with_context(|| {
        format!("{} has no held-out statistics: run `fugue index --model` first", args.model.display())
    })?;
    let index = read_originality(&args.model)?.map(Arc::new);
    let engine = Engine::start(&EngineConfig::local(device, 64, WeightFormat::default()));
    let seeds = args.seed..args.seed.checked_add(u64::from(args.pieces)).context("--seed is too large")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let pieces = runtime.block_on(async {
        let mut receivers = Vec::new();
        for seed in seeds {
            let request: GenerateRequest = serde_json::from_value(piece_request(None, args.notes, seed))?;
            let validated = request.check(seed)?;
            let parts = crate::generate::parts::for_model(&meta.representation, &validated)?;
            let session = SessionRequest {
                given: None,
                model_id: "evaluate".into(),
                model_dir: args.model.clone(),
                validated,
                parts,
                primer: None,
                copy_guard: None,
                hold: None,
                controls: None,
                span: tracing::Span::none(),
            };
            receivers.push(engine.submit(session).map_err(|_| anyhow::anyhow!("engine busy"))?);
        }
        let mut pieces = Vec::new();
        for mut receiver in receivers {
            while let Some(event) = receiver.recv().await {
                match event {
                    SessionEvent::Finished(piece) => pieces.push(piece),
                    SessionEvent::Failed(message) => bail!(message),
                    SessionEvent::Notes(_) => {}
                }
            }
        }
        anyhow::Ok(pieces)
    })?;
    let evaluation = music_evaluation(&pieces, reference, index.as_deref(), args.notes, args.seed);
    println!("{}", serde_json::to_string_pretty(&evaluation)?);
    if !args.dry_run {
        meta.music_evaluation = Some(evaluation);
        rewrite_meta(&args.model, &meta)?;
    }
    Ok(())
}
