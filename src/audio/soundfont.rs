//! Loading a SoundFont once per process: a General MIDI font is large (FluidR3 is
//! 148 MB of samples), and every render shares the loaded one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::shared::LockSurvivingPanics;

pub use rustysynth::SoundFont;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FontError {
    #[error(
        "no SoundFont at {path}: run `make setup` (scripts/setup-soundfont.sh installs FluidR3 GM) \
         or set FUGUE_SOUNDFONT to a General MIDI .sf2 file"
    )]
    Missing { path: PathBuf },
    #[error("the SoundFont at {path} cannot be read ({reason}); FUGUE_SOUNDFONT must name an .sf2 file")]
    Invalid { path: PathBuf, reason: String },
}

/// The loaded font, and which file (path, length, modification time) it came from.
type Cached = (PathBuf, u64, Option<SystemTime>, Arc<SoundFont>);

/// One loaded font per process: the last one asked for. A file replaced on disk
/// (another length or time) is loaded again.
static LOADED: Mutex<Option<Cached>> = Mutex::new(None);

/// The font at `path`, loaded or from the cache. Blocking: it reads the whole file
/// the first time (about a second for 148 MB).
pub fn load_font(path: &Path) -> Result<Arc<SoundFont>, FontError> {
    let metadata = std::fs::metadata(path)
        .ok()
        .filter(|metadata| metadata.is_file())
        .ok_or_else(|| FontError::Missing { path: path.to_owned() })?;
    let (len, modified) = (metadata.len(), metadata.modified().ok());
    let mut loaded = LOADED.lock_surviving_panics();
    if let Some((p, l, m, font)) = loaded.as_ref()
        && p == path
        && *l == len
        && *m == modified
    {
        return Ok(font.clone());
    }
    let invalid = |reason: String| FontError::Invalid { path: path.to_owned(), reason };
    let file = std::fs::File::open(path).map_err(|error| invalid(error.to_string()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let font = Arc::new(SoundFont::new(&mut reader).map_err(|error| invalid(error.to_string()))?);
    *loaded = Some((path.to_owned(), len, modified, font.clone()));
    Ok(font)
}
