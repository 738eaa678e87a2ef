//! Object storage: one interface for blobs, compositions, model artifacts and
//! training checkpoints, on the `object_store` crate.
//!
//! - The local filesystem by default: keys are paths under the data dir
//!   (`blobs/sha256/ab/abcd….mid`, `models/<id>/…`, `checkpoints/<job>/…`), the
//!   layout fugue always had. Each write goes to a temp file renamed into place.
//! - S3-compatible when `FUGUE_OBJECT_STORE=s3://bucket/prefix`: endpoint, region
//!   and credentials from the standard `AWS_*` variables (`AWS_ENDPOINT_URL`,
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`),
//!   with path-style requests unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
//!
//! Consistency, on either:
//! - a single object is never seen half-written (a rename locally, one PUT on S3);
//! - content-addressed blobs are written once ([`Objects::put_once`]);
//! - a directory of files (a model artifact, a checkpoint) is a *bundle*: its files
//!   first, then `manifest.json` naming each with its size and SHA-256. A bundle
//!   without a manifest does not exist for readers, and a reader takes only the
//!   files the manifest names, checked against their hashes ([`Objects::get_bundle`]).

mod cache;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

pub use self::cache::BundleCache;
use crate::shared::sha256_hex;

/// The file a bundle is committed by.
pub const MANIFEST: &str = "manifest.json";

/// Where objects live.
#[derive(Clone)]
pub struct Objects {
    inner: Arc<dyn ObjectStore>,
    /// `file:///…` or `s3://bucket/prefix`, for logs and `/v1/system`.
    location: String,
    /// The key prefix inside the bucket (empty locally).
    prefix: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.location)
    }
}

/// A bundle's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|file| file.bytes).sum()
    }
}

impl Objects {
    /// `url` unset: the local filesystem under `data_dir`. `s3://bucket[/prefix]`:
    /// S3, configured from the `AWS_*` environment variables.
    pub fn open(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Objects> {
        Objects::open_with(url, data_dir, &[])
    }

    /// [`Objects::open`], with S3 settings by name (`aws_endpoint_url`,
    /// `aws_region`, …) over the environment's: what tests use, which cannot set
    /// their own process's environment.
    pub fn open_with(
        url: Option<&str>,
        data_dir: &Path,
        options: &[(String, String)],
    ) -> anyhow::Result<Objects> {
        match url.filter(|url| !url.is_empty()) {
            None => Objects::local(data_dir),
            Some(url) if url.starts_with("file://") => Objects::local(Path::new(&url["file://".len()..])),
            Some(url) => {
                let Some(rest) = url.strip_prefix("s3://") else {
                    bail!("FUGUE_OBJECT_STORE must be s3://bucket/prefix or file:///dir, not `{url}`")
                };
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                anyhow::ensure!(!bucket.is_empty(), "FUGUE_OBJECT_STORE `{url}` names no bucket");
                let mut builder = object_store::aws::AmazonS3Builder::from_env();
                for (name, value) in options {
                    let key =
                        name.to_ascii_lowercase().parse().with_context(|| format!("S3 setting `{name}`"))?;
                    builder = builder.with_config(key, value);
                }
                let s3 = builder
                    .with_bucket_name(bucket)
                    .build()
                    .with_context(|| format!("configuring the object store {url}"))?;
                Ok(Objects {
                    inner: Arc::new(s3),
                    location: url.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
        }
    }

    pub fn local(dir: &Path) -> anyhow::Result<Objects> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening {} as an object store", dir.display()))?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Objects {
            inner: Arc::new(fs),
            location: format!("file://{}", dir.display()),
            prefix: String::new(),
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn key(&self, key: &str) -> Key {
        if self.prefix.is_empty() { Key::from(key) } else { Key::from(format!("{}/{key}", self.prefix)) }
    }

    /// Writes (or replaces) one object, whole.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.inner
            .put(&self.key(key), PutPayload::from(bytes))
            .await
            .with_context(|| format!("writing {key}"))?;
        Ok(())
    }

    /// Writes a content-addressed object unless it is there already; true when
    /// this call wrote it. A conditional write (`If-None-Match: *` on S3, a
    /// hard link locally) settles a race between two writers of the same bytes;
    /// a store without conditional writes gets the same bytes twice.
    pub async fn put_once(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<bool> {
        if self.exists(key).await? {
            return Ok(false);
        }
        let create = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.inner.put_opts(&self.key(key), PutPayload::from(bytes.clone()), create).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => self.put(key, bytes).await.map(|()| true),
            Err(error) => Err(anyhow::Error::from(error).context(format!("writing {key}"))),
        }
    }

    pub async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        match self.inner.head(&self.key(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(anyhow::Error::from(error).context(format!("looking up {key}"))),
        }
    }

    /// The object's bytes; `None` when there is no such object.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let got = match self.inner.get(&self.key(key)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(anyhow::Error::from(error).context(format!("reading {key}"))),
        };
        Ok(Some(got.bytes().await.with_context(|| format!("reading {key}"))?.to_vec()))
    }

    /// Removes one object; removing one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.inner.delete(&self.key(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(anyhow::Error::from(error).context(format!("removing {key}"))),
        }
    }

    /// Every object under `prefix/`, as keys relative to the store (not the
    /// prefix), with their sizes, sorted.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let under = self.key(prefix.trim_end_matches('/'));
        let metas: Vec<object_store::ObjectMeta> = match self.inner.list(Some(&under)).try_collect().await {
            Ok(metas) => metas,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(error) => return Err(anyhow::Error::from(error).context(format!("listing {prefix}"))),
        };
        let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        let mut found: Vec<(String, u64)> =
            metas.into_iter().map(|meta| (meta.location.as_ref()[strip..].to_owned(), meta.size)).collect();
        found.sort();
        Ok(found)
    }

    /// The bundle's manifest; `None` while it is incomplete or after it is gone.
    pub async fn manifest(&self, prefix: &str) -> anyhow::Result<Option<Manifest>> {
        let Some(bytes) = self.get(&format!("{prefix}/{MANIFEST}")).await? else { return Ok(None) };
        Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {prefix}/{MANIFEST}"))?))
    }

    /// Makes the bundle at `prefix` hold exactly the regular files of `dir` (dot
    /// files skipped): uploads the files the current manifest does not already
    /// hold with the same hash, then the new manifest, then removes the files only
    /// the old manifest named. A reader sees the old bundle or the new, whole.
    pub async fn put_bundle(&self, prefix: &str, dir: &Path) -> anyhow::Result<Manifest> {
        let old = self.manifest(prefix).await?.unwrap_or(Manifest { files: Vec::new() });
        let mut files = Vec::new();
        for path in bundle_files(dir)? {
            let name = path.file_name().and_then(|name| name.to_str()).context("a file name")?.to_owned();
            let bytes =
                tokio::fs::read(&path).await.with_context(|| format!("reading {}", path.display()))?;
            let file = ManifestFile { name, bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) };
            if !old.files.contains(&file) {
                self.put(&format!("{prefix}/{}", file.name), bytes).await?;
            }
            files.push(file);
        }
        let manifest = Manifest { files };
        self.put(&format!("{prefix}/{MANIFEST}"), serde_json::to_vec_pretty(&manifest)?).await?;
        for gone in old.files.iter().filter(|file| !manifest.files.iter().any(|kept| kept.name == file.name))
        {
            self.delete(&format!("{prefix}/{}", gone.name)).await?;
        }
        Ok(manifest)
    }

    /// Downloads the bundle into `dir` (created; files the manifest does not name
    /// are left alone), each file checked against its size and hash. False when
    /// there is no complete bundle at `prefix`.
    pub async fn get_bundle(&self, prefix: &str, dir: &Path) -> anyhow::Result<Option<Manifest>> {
        let Some(manifest) = self.manifest(prefix).await? else { return Ok(None) };
        tokio::fs::create_dir_all(dir).await?;
        for file in &manifest.files {
            anyhow::ensure!(valid_name(&file.name), "{prefix}/{MANIFEST} names `{}`", file.name);
            let key = format!("{prefix}/{}", file.name);
            let bytes = self
                .get(&key)
                .await?
                .with_context(|| format!("{key} is named by its manifest but missing"))?;
            anyhow::ensure!(
                bytes.len() as u64 == file.bytes && sha256_hex(&bytes) == file.sha256,
                "{key} does not match its manifest (size or SHA-256)"
            );
            write_file(&dir.join(&file.name), &bytes).await?;
        }
        Ok(Some(manifest))
    }

    /// Writes a manifest for files stored under `prefix` without one, as they are:
    /// for models and checkpoints written before bundles had manifests (each was
    /// made whole by a directory rename). Only for a bundle known to be complete
    /// (a registered model, a checkpoint whose state file is there): a bundle
    /// being written also has no manifest yet. False when there is nothing there.
    pub async fn adopt_bundle(&self, prefix: &str) -> anyhow::Result<bool> {
        if self.manifest(prefix).await?.is_some() {
            return Ok(true);
        }
        let mut files = Vec::new();
        for (key, _) in self.list(prefix).await? {
            let name = key.rsplit('/').next().unwrap_or_default().to_owned();
            if !valid_name(&name) || key != format!("{prefix}/{name}") {
                continue;
            }
            let Some(bytes) = self.get(&key).await? else { continue };
            files.push(ManifestFile { name, bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) });
        }
        if files.is_empty() {
            return Ok(false);
        }
        tracing::info!(bundle = prefix, files = files.len(), "adopted files stored without a manifest");
        self.put(&format!("{prefix}/{MANIFEST}"), serde_json::to_vec_pretty(&Manifest { files })?).await?;
        Ok(true)
    }

    /// Removes a bundle: its manifest first (readers stop seeing it at once), then
    /// everything else under the prefix.
    pub async fn delete_bundle(&self, prefix: &str) -> anyhow::Result<()> {
        self.delete(&format!("{prefix}/{MANIFEST}")).await?;
        for (key, _) in self.list(prefix).await? {
            self.delete(&key).await?;
        }
        Ok(())
    }
}

/// The regular files of `dir` a bundle is made of: dot files (temp files being
/// written) and the manifest itself left out; sorted by name.
fn bundle_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && valid_name(&name) && name != MANIFEST {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// A bundle's file names are plain names: no separators, no dot files.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/') && !name.contains('\\')
}

/// Writes through a temp file beside the target, renamed into place.
async fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let (path, bytes) = (path.to_owned(), bytes.to_vec());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let dir = path.parent().context("a file has a directory")?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        temp.write_all(&bytes)?;
        temp.as_file().sync_all()?;
        std::fs::set_permissions(temp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        temp.persist(&path).map_err(|error| error.error)?;
        anyhow::Ok(())
    })
    .await?
}
