//! `fugue tokens`: what a token preset makes of MIDI files, printed as JSON
//! (`{"preset", "files": {"<file name>": [tokens…]}, "rejected": {"<file name>": reason}}`),
//! so that it can be compared with the tutorials' own parse (`tests/tutorials/`) or
//! simply looked at. Files go through dataset ingest, so zips unpack and a file an
//! upload would reject is rejected here with the same reason.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};

use crate::cli::args::TokensArgs;
use crate::datasets::{IngestLimits, Upload, folder_uploads, ingest};
use crate::midi::read_usable;
use crate::model::presets::Family;
use crate::train::run::tokenize;

pub fn tokens(args: &TokensArgs) -> anyhow::Result<()> {
    let Family::Tokens(representation) = args.preset.family() else {
        bail!("`{}` is not a token preset (fugue, play-bach, classical-piano)", args.preset.name());
    };
    let mut uploads = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            uploads.extend(folder_uploads(path).with_context(|| format!("reading {}", path.display()))?);
        } else {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            uploads.push(Upload { file_name: path.display().to_string(), bytes });
        }
    }
    let ingested = ingest(uploads, false, &IngestLimits::default())?;
    let scores = ingested
        .files
        .iter()
        .map(|(accepted, bytes)| {
            read_usable(bytes, false).with_context(|| format!("{} read again", accepted.file))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The representation a model trained on these files would use.
    let representation = representation.for_corpus(&scores);
    let mut files = BTreeMap::new();
    for ((accepted, bytes), score) in ingested.files.iter().zip(&scores) {
        files.insert(file_name(&accepted.file), tokenize(&representation, score, bytes));
    }
    let rejected: BTreeMap<String, &str> =
        ingested.report.rejected.iter().map(|r| (file_name(&r.file), r.reason.as_str())).collect();
    let report = serde_json::json!({"preset": args.preset.name(), "files": files, "rejected": rejected});
    println!("{report}");
    Ok(())
}

/// The last component of an uploaded path (`folder/a.mid`, `songs.zip/b/c.mid`).
fn file_name(uploaded: &str) -> String {
    Path::new(uploaded)
        .file_name()
        .map_or_else(|| uploaded.to_owned(), |name| name.to_string_lossy().into_owned())
}
