//! The local stack's S3 server: the file-system store of `s3s-fs` served by `s3s`, with both
//! keys read from the environment. `s3s-fs`'s own binary takes them only as `--access-key` and
//! `--secret-key` arguments, which every user of the machine can read in `ps`.

use anyhow::{Context, Result};
use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use std::path::PathBuf;
use tokio::net::TcpListener;

/// The variable holding the access key. Both keys are required: without them the server
/// would answer anonymous requests.
const ACCESS_KEY_VAR: &str = "ECHO_S3_ACCESS_KEY";
/// The variable holding the secret key every request must be signed with.
const SECRET_KEY_VAR: &str = "ECHO_S3_SECRET_KEY";

/// Where to listen and what to serve; nothing secret, since arguments are public.
#[derive(Parser)]
#[command(
    about,
    after_help = "Keys: ECHO_S3_ACCESS_KEY and ECHO_S3_SECRET_KEY in the environment (required)."
)]
struct Args {
    /// Address to listen on; the local stack keeps to loopback.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long)]
    port: u16,
    /// Directory holding the buckets (one subdirectory each).
    root: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let access_key = required_env(ACCESS_KEY_VAR)?;
    let secret_key = required_env(SECRET_KEY_VAR)?;

    // s3s-fs's error type is not a std error: only its debug form says what went wrong.
    let store = FileSystem::new(&args.root)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", args.root.display()))?;
    let mut builder = S3ServiceBuilder::new(store);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();

    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    tracing::info!(
        "serving {} on http://{}",
        args.root.display(),
        listener.local_addr()?
    );
    let http = Builder::new(TokioExecutor::new());
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let connection = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

/// A non-empty environment variable, or an error naming it.
fn required_env(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => anyhow::bail!("{name} must be set (the server never runs without keys)"),
    }
}
