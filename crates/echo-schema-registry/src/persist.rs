//! Durable storage of the registry state in one JSON file.
//!
//! The whole state is rewritten after every mutation: write a temporary file next to the
//! target, fsync it, rename it over the target, fsync the directory. A crash therefore
//! leaves either the old or the new file, never a torn one. The state of a development
//! registry is small, so rewriting it whole is cheaper than being clever.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Reads and deserialises `path`; `Ok(None)` when the file does not exist yet.
pub fn load<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(
                anyhow::Error::new(error).context(format!("reading data file {}", path.display()))
            )
        }
    };
    let value = serde_json::from_slice(&bytes)
        .map_err(|error| anyhow::anyhow!("data file {} is not valid: {error}", path.display()))?;
    Ok(Some(value))
}

/// Serialises `value` and replaces `path` with it atomically (tmp + fsync + rename).
pub fn save<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        // Best effort: do not leave a half-written temporary file behind.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temporary file used while saving: same directory (so rename is atomic), hidden name.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Makes the rename itself durable by syncing the containing directory (Unix only).
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_leaves_no_tmp() {
        let dir = std::env::temp_dir().join(format!("echo-sr-persist-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(load::<Vec<u32>>(&path).unwrap(), None);
        save(&path, &vec![1u32, 2, 3]).unwrap();
        save(&path, &vec![4u32]).unwrap();
        assert_eq!(load::<Vec<u32>>(&path).unwrap(), Some(vec![4]));
        assert!(!tmp_path(&path).exists());
        fs::write(&path, b"{broken").unwrap();
        assert!(load::<Vec<u32>>(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
