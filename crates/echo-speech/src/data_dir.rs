//! Location of echo's local data (prepared models, download caches).

use std::path::PathBuf;

/// Environment variable that overrides the data dir.
pub const DATA_DIR_ENV: &str = "ECHO_DATA_DIR";

/// The data dir to use when none is configured explicitly: `$ECHO_DATA_DIR`
/// if set and non-empty, else `$HOME/.local/share/echo`.
///
/// Without `HOME` (some service sandboxes) it falls back to `echo` under the
/// system temp dir, so callers always get a usable path.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/echo"),
        None => std::env::temp_dir().join("echo"),
    }
}
