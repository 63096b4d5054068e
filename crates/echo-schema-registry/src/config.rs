//! Configuration of the server: the command line, and the writer's credentials from the
//! environment.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use crate::auth::Credentials;
use crate::compatibility::CompatibilityLevel;

/// The environment variable holding the writer's `user:password`. Not a flag: the command
/// line of a process is visible to every user in `ps`, its environment is not.
pub const USER_INFO_VAR: &str = "ECHO_SCHEMA_REGISTRY_USER_INFO";

/// How to run the registry: where to listen, where to keep data, the default level, who
/// may write.
///
/// Parsed by the binary with [`Config::from_env`]; tests build it directly.
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

    /// The only user allowed to change the registry (register, config, deletes); `None`:
    /// nobody may. Read from [`USER_INFO_VAR`], never from the command line.
    #[arg(skip)]
    pub writer: Option<Credentials>,
}

impl Config {
    /// The command line, and the writer from [`USER_INFO_VAR`], which must be set: a
    /// registry nobody can write to is of no use to echo.
    pub fn from_env() -> anyhow::Result<Self> {
        let user_info = std::env::var(USER_INFO_VAR)
            .with_context(|| format!("{USER_INFO_VAR} must hold the writer's user:password"))?;
        let writer = user_info
            .parse()
            .map_err(|error| anyhow::anyhow!("{USER_INFO_VAR}: {error}"))?;
        Ok(Self {
            writer: Some(writer),
            ..Self::parse()
        })
    }
}

impl Default for Config {
    /// The same defaults as the command line: 127.0.0.1:8081, in memory, BACKWARD; no writer.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8081,
            data_file: None,
            compatibility: CompatibilityLevel::Backward,
            writer: None,
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
