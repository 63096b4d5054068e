//! One registry per data file: an exclusive OS lock on `<data file>.lock`.
//!
//! Each instance keeps its state in memory and rewrites the whole file after a change, so
//! two instances on one file would hand out the same ids for different schemas and
//! overwrite each other's registrations. The lock is taken before the file is read and held
//! for the life of the process; the OS releases it when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases the data file.
#[derive(Debug)]
pub struct DataFileLock {
    /// The open, locked lock file (the lock lives as long as this handle).
    _file: File,
}

impl DataFileLock {
    /// Locks `data_file` for this process, or fails naming the file and, when it recorded
    /// itself, the process holding it.
    pub fn acquire(data_file: &Path) -> anyhow::Result<Self> {
        let path = lock_path(data_file);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| {
                anyhow::anyhow!("cannot open lock file {}: {error}", path.display())
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (process {pid})"),
                };
                anyhow::bail!(
                    "data file {} is in use by another echo-schema-registry{holder}: two instances must not share one data file (lock {})",
                    data_file.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                anyhow::bail!("cannot lock {}: {error}", path.display())
            }
        }
        // Who holds it, for the message of the next instance that tries.
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
    }
}

/// `<data file>.lock`, next to the data file.
fn lock_path(data_file: &Path) -> PathBuf {
    let mut name = data_file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}
