//! `fugue bench harmonize`: the harmonization table of `models/README.md`.
//!
//! Each held-out chorale (the files training left out, by the model's own split)
//! gives the model its soprano, and the model writes alto, tenor and bass, forced
//! left to right and looking ahead, side by side in one run. For each it reports:
//! - the per-note NLL of Bach's own alto, tenor and bass given his soprano: forced,
//!   the left-to-right conditional (each token given what precedes it); looking
//!   ahead, the posterior p(ATB | S) = p(S, ATB) / p(S), with p(S) as the
//!   look-ahead candidates estimate it (an underestimate, so the figure errs high);
//! - parallel fifths and octaves, voice crossings and notes out of the voices'
//!   usual ranges per 100 notes of the written pieces, beside Bach's own.

use std::time::Instant;

use anyhow::{Context, bail};
use tch::{Device, Kind};

use crate::analysis::AnalysisNote;
use crate::analysis::voice_leading::{SATB_RANGES, VoiceLeading};
use crate::cli::args::HarmonizeBenchArgs;
use crate::cli::corpus::folder_data;
use crate::generate::decoder::EventsGrammar;
use crate::generate::engine::{Engine, EngineConfig, SessionEvent, SessionRequest};
use crate::generate::request::{GenerateRequest, GivenDecoding, PartReference};
use crate::generate::{Piece, given, parts};
use crate::midi::Score;
use crate::model::artifact::{LoadedModel, Net, Representation};
use crate::model::hyperparameters::Hyperparameters;
use crate::repr::events::{self, Token};
use crate::train::run::file_split;

const VOICES: [&str; 4] = ["Soprano", "Alto", "Tenor", "Bass"];

pub fn run(args: &HarmonizeBenchArgs) -> anyhow::Result<()> {
    let _no_grad = tch::no_grad_guard();
    let model = LoadedModel::load(&args.model, Device::Cpu, args.weights)?;
    let (Net::Token(net), Representation::Events { config, vocabulary, .. }) =
        (&model.net, &model.meta.representation)
    else {
        bail!("{}: harmonizing needs an events model with parts", args.model.display());
    };
    let grammar = EventsGrammar::new(vocabulary, config);
    let chorales = held_out_chorales(args, &model)?;
    if chorales.is_empty() {
        bail!("no held-out file of {} has Soprano, Alto, Tenor and Bass", args.data.display());
    }

    let mut bach = VoiceLeading::default();
    // Per chorale: (Bach's ATB notes, log p of the soprano's tokens, of the rest).
    let mut likelihoods = Vec::new();
    for score in &chorales {
        bach.add(&VoiceLeading::of(&voices_of_score(score), &SATB_RANGES));
        let tokens = events::encode(score, config);
        let ids: Vec<i64> = tokens
            .iter()
            .map(|t| grammar.id_of(*t).context("a chorale token the model lacks"))
            .collect::<Result<_, _>>()?;
        let logits = net.logits_of(&ids, Device::Cpu);
        let log_probabilities: Vec<Vec<f32>> = Vec::try_from(logits.log_softmax(-1, Kind::Float))?;
        let header = tokens.iter().position(|t| *t == Token::Bar).unwrap_or(0);
        let (mut soprano, mut rest, mut atb_notes, mut part) = (0.0, 0.0, 0usize, None);
        for (at, token) in tokens.iter().enumerate().skip(header + 1) {
            match token {
                Token::Part(index) => part = Some(*index),
                Token::Bar | Token::Pos(_) => part = None,
                Token::Pitch(_) if part.is_some_and(|p| p > 0) => atb_notes += 1,
                _ => {}
            }
            let log_p = f64::from(log_probabilities[at - 1][ids[at] as usize]);
            let forced = part == Some(0) && matches!(token, Token::Pitch(_) | Token::Vel(_) | Token::Dur(_));
            if forced { soprano += log_p } else { rest += log_p }
        }
        likelihoods.push((atb_notes, soprano, rest));
    }
    let atb_notes: usize = likelihoods.iter().map(|l| l.0).sum();
    let forced_nll = -likelihoods.iter().map(|l| l.2).sum::<f64>() / atb_notes as f64;

    let engine = Engine::start(&EngineConfig::local(Device::Cpu, 4096, args.weights));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!(
        "harmonize: {} ({:?} weights) on {} held-out chorales (each given its own soprano), {} seed(s) each",
        args.model.display(),
        args.weights.on(Device::Cpu),
        chorales.len(),
        args.seeds
    );
    let mut figures = Vec::new();
    for decoding in [GivenDecoding::Forced, GivenDecoding::Lookahead] {
        let started = Instant::now();
        let pieces = runtime.block_on(harmonize_all(
            &engine,
            args,
            &model.meta.representation,
            &grammar,
            &chorales,
            decoding,
        ))?;
        let elapsed = started.elapsed().as_secs_f64();
        let mut faults = VoiceLeading::default();
        for piece in pieces.iter().flatten() {
            faults.add(&VoiceLeading::of(&voices_of_piece(piece), &SATB_RANGES));
        }
        let nll = match decoding {
            GivenDecoding::Forced => forced_nll,
            // −(log p(S, ATB) − log p(S)), with log p(S) the seeds' pooled estimate.
            GivenDecoding::Lookahead => {
                let mut log_joint_minus_marginal = 0.0;
                for ((_, soprano, rest), runs) in likelihoods.iter().zip(&pieces) {
                    let estimates: Vec<f64> =
                        runs.iter().filter_map(|piece| piece.given_log_likelihood).collect();
                    log_joint_minus_marginal += soprano + rest - log_mean_exp(&estimates);
                }
                -log_joint_minus_marginal / atb_notes as f64
            }
        };
        let tokens: u32 = pieces.iter().flatten().map(|piece| piece.tokens).sum();
        println!(
            "{decoding:?}: {} pieces in {elapsed:.1} s ({:.0} tokens/s of the chosen lines)",
            pieces.iter().flatten().count(),
            f64::from(tokens) / elapsed
        );
        figures.push((nll, faults));
    }
    println!("\n| per 100 notes unless stated | Bach | forced | look-ahead |\n|---|---|---|---|");
    let [(forced_nll, forced), (lookahead_nll, lookahead)] = [figures[0], figures[1]];
    println!(
        "| NLL of Bach's alto, tenor and bass (nats per note) | – | {forced_nll:.3} | {lookahead_nll:.3} |"
    );
    type Count = fn(&VoiceLeading) -> usize;
    let rows: [(&str, Count); 4] = [
        ("parallel fifths", |f| f.parallel_fifths),
        ("parallel octaves and unisons", |f| f.parallel_octaves),
        ("voice crossings", |f| f.crossings),
        ("notes out of the voice's range", |f| f.out_of_range),
    ];
    for (name, count) in rows {
        let rate = |faults: &VoiceLeading| faults.per_100_notes(count(faults));
        println!("| {name} | {:.2} | {:.2} | {:.2} |", rate(&bach), rate(&forced), rate(&lookahead));
    }
    Ok(())
}

/// The held-out files (the model's own split) that have exactly the four voices.
fn held_out_chorales(args: &HarmonizeBenchArgs, model: &LoadedModel) -> anyhow::Result<Vec<Score>> {
    let data = folder_data(&args.data)?;
    let (scores, source) = data.scores()?;
    if source.sha256 != model.meta.data.sha256 {
        bail!(
            "{} is not the corpus the model was trained on (its content hash differs)",
            args.data.display()
        );
    }
    let hyperparameters: Hyperparameters = serde_json::from_value(model.meta.hyperparameters.clone())
        .context("the model's hyperparameters do not read as this fugue's")?;
    let (_, held_out) = file_split(model.meta.preset, &hyperparameters, &scores, &data.file_bytes())
        .context("the corpus has fewer than two files the preset can use")?;
    Ok(held_out
        .into_iter()
        .map(|index| &scores[index])
        .filter(|score| {
            let names: Vec<&str> = score.parts.iter().filter_map(|part| part.name.as_deref()).collect();
            names == VOICES
        })
        .take(args.pieces)
        .cloned()
        .collect())
}

/// Every chorale harmonized from its soprano, `args.seeds` times, all at once.
async fn harmonize_all(
    engine: &Engine,
    args: &HarmonizeBenchArgs,
    representation: &Representation,
    grammar: &EventsGrammar,
    chorales: &[Score],
    decoding: GivenDecoding,
) -> anyhow::Result<Vec<Vec<Piece>>> {
    let mut receivers = Vec::new();
    for score in chorales {
        // The soprano alone, without its tempo, so that the model writes tempo as
        // Bach's own stream has it.
        let soprano = Score { parts: vec![score.parts[0].clone()], tempos: Vec::new(), ..score.clone() };
        let mut runs = Vec::new();
        for seed in 0..args.seeds {
            let request: GenerateRequest = serde_json::from_value(serde_json::json!({"seed": seed}))?;
            let mut validated = request.check(seed)?;
            let planned = parts::for_model(representation, &validated)?;
            let which = PartReference::Name(VOICES[0].into());
            let placed =
                given::prepare(&mut validated, &soprano, &which, decoding, &planned, grammar, "given")?;
            let session = SessionRequest {
                model_id: "bench".into(),
                model_dir: args.model.clone(),
                validated,
                parts: planned,
                given: Some(placed),
                primer: None,
                copy_guard: None,
                hold: None,
                controls: None,
                span: tracing::Span::none(),
            };
            runs.push(engine.submit(session).map_err(|_| anyhow::anyhow!("engine busy"))?);
        }
        receivers.push(runs);
    }
    let mut pieces = Vec::new();
    for runs in receivers {
        let mut finished = Vec::new();
        for mut receiver in runs {
            while let Some(event) = receiver.recv().await {
                match event {
                    SessionEvent::Finished(piece) => finished.push(piece),
                    SessionEvent::Failed(message) => bail!(message),
                    SessionEvent::Notes(_) => {}
                }
            }
        }
        pieces.push(finished);
    }
    Ok(pieces)
}

fn voices_of_score(score: &Score) -> Vec<Vec<AnalysisNote>> {
    score
        .parts
        .iter()
        .map(|part| {
            part.notes
                .iter()
                .map(|note| AnalysisNote {
                    pitch: note.pitch,
                    program: part.program,
                    start_beat: score.beats(note.start),
                    duration_beats: score.beats(note.duration),
                })
                .collect()
        })
        .collect()
}

fn voices_of_piece(piece: &Piece) -> Vec<Vec<AnalysisNote>> {
    let mut voices = vec![Vec::new(); VOICES.len()];
    for note in &piece.notes {
        if let Some(voice) = note.part.and_then(|part| voices.get_mut(usize::from(part.index))) {
            voice.push(AnalysisNote {
                pitch: note.pitch,
                program: note.program,
                start_beat: note.start_beat,
                duration_beats: note.duration_beats,
            });
        }
    }
    voices
}

fn log_mean_exp(values: &[f64]) -> f64 {
    let top = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    top + (values.iter().map(|v| (v - top).exp()).sum::<f64>() / values.len().max(1) as f64).ln()
}
