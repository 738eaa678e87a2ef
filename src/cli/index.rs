//! `fugue index`: a model's originality index and held-out statistics, made again
//! from the corpus it was trained on with the training run's own split, so that a
//! model trained before indexes existed (the bundled default) gets them without
//! retraining.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};

use super::corpus::folder_data;
use crate::cli::args::IndexArgs;
use crate::model::artifact::{Corpus, ORIGINALITY_FILE, read_meta, store_originality};
use crate::model::hyperparameters::Hyperparameters;
use crate::train::run::{HeldOut, file_split};

pub fn index(args: &IndexArgs) -> anyhow::Result<()> {
    let mut meta = read_meta(&args.model)?;
    let folder = match (&args.data, &meta.data.source) {
        (Some(folder), _) => folder.clone(),
        (None, Corpus::Path(path)) => PathBuf::from(path),
        (None, Corpus::Dataset(id)) => {
            bail!("the model was trained on dataset {id}: pass --data with a folder of its files")
        }
    };
    let data = folder_data(&folder)?;
    let (scores, source) = data.scores()?;
    if source.sha256 != meta.data.sha256 {
        bail!(
            "{} is not the corpus the model was trained on: its content hash is {}, the model's {}",
            folder.display(),
            source.sha256,
            meta.data.sha256
        );
    }
    let hyperparameters: Hyperparameters = serde_json::from_value(meta.hyperparameters.clone())
        .context("the model's hyperparameters do not read as this fugue's")?;
    let split = file_split(meta.preset, &hyperparameters, &scores, &data.file_bytes())
        .context("the corpus has fewer than two files the preset can use")?;
    let started = Instant::now();
    let held_out = HeldOut::of(&split, &scores, &data.piece_names());
    let corpus = held_out.apply(&mut meta).context("too many training notes for an originality index")?;
    store_originality(&args.model, &meta, &corpus)?;
    let bytes = std::fs::metadata(args.model.join(ORIGINALITY_FILE))?.len();
    let built = Instant::now();
    let index = corpus.index()?;
    println!(
        "{}: originality index of {} training pieces ({} held out), {} notes; {} {:.2} MB; \
         built from it in {:.3} s ({} states, {:.1} MB in memory); split and statistics in {:.3} s",
        args.model.display(),
        corpus.pieces(),
        split.1.len(),
        corpus.notes(),
        ORIGINALITY_FILE,
        bytes as f64 / 1e6,
        built.elapsed().as_secs_f64(),
        index.size().states,
        index.size().heap_bytes as f64 / 1e6,
        (built - started).as_secs_f64(),
    );
    Ok(())
}
