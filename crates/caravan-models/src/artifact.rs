//! Model artifacts on disk, named by their content hash, so a model asset's `content` field is
//! enough to find (and check) the bytes it was registered with.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use caravan_core::Hash32;

/// A directory of artifacts, each stored as `<hash>.json`.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot use the model directory {dir}: {why}")]
    Io { dir: PathBuf, why: std::io::Error },
    #[error(
        "no artifact {hash} in {dir}; models are stored by the node that trained them (copy the file there)"
    )]
    Missing { hash: Hash32, dir: PathBuf },
    #[error("artifact {path} is damaged: its content hashes to {found}, not {hash}")]
    Damaged {
        hash: Hash32,
        found: Hash32,
        path: PathBuf,
    },
}

impl ArtifactStore {
    pub fn new(dir: impl Into<PathBuf>) -> ArtifactStore {
        ArtifactStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, hash: &Hash32) -> PathBuf {
        self.dir.join(format!("{hash}.json"))
    }

    fn io(&self, why: std::io::Error) -> ArtifactError {
        ArtifactError::Io {
            dir: self.dir.clone(),
            why,
        }
    }

    /// Stores `bytes` under their keccak-256 and returns it. Written to a temporary file and
    /// renamed, so a crash never leaves a half-written artifact under a valid name; storing the
    /// same bytes again is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<Hash32, ArtifactError> {
        let hash = caravan_core::keccak256(bytes);
        let path = self.path(&hash);
        if path.exists() {
            return Ok(hash);
        }
        fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let temporary = self.dir.join(format!(".{hash}.partial"));
        let mut file = fs::File::create(&temporary).map_err(|e| self.io(e))?;
        file.write_all(bytes).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        fs::rename(&temporary, &path).map_err(|e| self.io(e))?;
        Ok(hash)
    }

    /// Whether an artifact is stored under `hash` (without reading or checking it).
    pub fn contains(&self, hash: &Hash32) -> bool {
        self.path(hash).is_file()
    }

    /// The bytes stored under `hash`, checked against it.
    pub fn get(&self, hash: &Hash32) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::Missing {
                    hash: *hash,
                    dir: self.dir.clone(),
                });
            }
            Err(e) => return Err(self.io(e)),
        };
        let found = caravan_core::keccak256(&bytes);
        if found != *hash {
            return Err(ArtifactError::Damaged {
                hash: *hash,
                found,
                path,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_found_by_hash_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().join("models"));
        let hash = store.put(b"weights").unwrap();
        assert_eq!(hash, caravan_core::keccak256(b"weights"));
        assert_eq!(store.put(b"weights").unwrap(), hash);
        assert_eq!(store.get(&hash).unwrap(), b"weights");
        fs::write(store.path(&hash), b"tampered").unwrap();
        assert!(matches!(
            store.get(&hash),
            Err(ArtifactError::Damaged { .. })
        ));
        let unknown = caravan_core::keccak256(b"other");
        assert!(
            store
                .get(&unknown)
                .unwrap_err()
                .to_string()
                .contains("no artifact")
        );
    }
}
