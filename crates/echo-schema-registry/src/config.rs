//! Command-line configuration of the server.

use std::path::PathBuf;

use clap::Parser;

use crate::compatibility::CompatibilityLevel;

/// How to run the registry: where to listen, where to keep data, the default level.
///
/// Parsed from the command line by the binary; tests build it directly.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "echo-schema-registry",
    version,
    about = "A small Confluent-compatible Schema Registry (Avro) for running echo without Docker",
    long_about = None
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8081)]
    pub port: u16,

    /// JSON file to persist subjects, schemas and config in: loaded at start, rewritten
    /// atomically after each change. Without it everything lives in memory only.
    #[arg(long, value_name = "PATH")]
    pub data_file: Option<PathBuf>,

    /// Compatibility level used when neither the subject nor `PUT /config` set one
    /// (NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE).
    #[arg(long, default_value = "BACKWARD", value_name = "LEVEL")]
    pub compatibility: CompatibilityLevel,
}

impl Default for Config {
    /// The same defaults as the command line: 127.0.0.1:8081, in memory, BACKWARD.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8081,
            data_file: None,
            compatibility: CompatibilityLevel::Backward,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_command_line() {
        let parsed = Config::parse_from(["echo-schema-registry"]);
        let default = Config::default();
        assert_eq!(parsed.host, default.host);
        assert_eq!(parsed.port, default.port);
        assert_eq!(parsed.data_file, default.data_file);
        assert_eq!(parsed.compatibility, default.compatibility);
    }

    #[test]
    fn parses_every_flag() {
        let config = Config::parse_from([
            "echo-schema-registry",
            "--host",
            "0.0.0.0",
            "--port",
            "18081",
            "--data-file",
            "/tmp/sr.json",
            "--compatibility",
            "full_transitive",
        ]);
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(config.port, 18081);
        assert_eq!(config.data_file, Some(PathBuf::from("/tmp/sr.json")));
        assert_eq!(config.compatibility, CompatibilityLevel::FullTransitive);
        assert!(Config::try_parse_from(["x", "--compatibility", "sideways"]).is_err());
    }
}
