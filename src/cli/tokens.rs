//! `fugue tokens`: what a token preset makes of MIDI files, printed as JSON
//! (`{"preset", "files": {"<file name>": [tokens…]}, "rejected": {"<file name>": reason}}`),
//! so that it can be compared with the tutorials' own parse (`tests/tutorials/`) or
//! simply looked at. A file ingest would reject is rejected here, with the same reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::TokensArgs;
use crate::midi::read_usable;
use crate::model::presets::Family;
use crate::train::run::tokenize;

pub fn tokens(args: &TokensArgs) -> anyhow::Result<()> {
    let Family::Tokens(representation) = args.preset.family() else {
        bail!("`{}` is not a token preset (fugue, play-bach, classical-piano)", args.preset.name());
    };
    let (mut files, mut rejected) = (BTreeMap::new(), BTreeMap::new());
    for path in midi_paths(&args.paths)? {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        match read_usable(&bytes, false) {
            Ok(score) => {
                files.insert(name, tokenize(&representation, &score, &bytes));
            }
            Err(reason) => {
                rejected.insert(name, reason.to_string());
            }
        }
    }
    let report = serde_json::json!({"preset": args.preset.name(), "files": files, "rejected": rejected});
    println!("{report}");
    Ok(())
}

/// The paths given, with folders replaced by their MIDI files (sorted).
fn midi_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let is_midi = |path: &Path| {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "mid" | "midi"))
    };
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .map(|entry| entry.map(|entry| entry.path()))
                .collect::<Result<_, _>>()?;
            inside.retain(|p| is_midi(p));
            inside.sort();
            found.extend(inside);
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}
