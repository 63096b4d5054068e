//! `echo-chaos`: proves the pipeline's guarantees by breaking things on purpose.
//!
//! It submits a seeded batch of uploads (speech of one or several chunks, plus bad files)
//! while SIGKILLing and restarting processors and chunk workers at random and restarting the
//! Kafka broker once; then it reads every topic back and prints the figures: submitted /
//! terminal / stuck, `resource.ready` per resource, duplicate effects, lost events, time to
//! terminal. It exits non-zero unless nothing is stuck, lost or duplicated. Run it with
//! `scripts/chaos.sh` (the local stack must be up); the same seed gives the same uploads
//! and the same sequence of kills.

mod audit;
mod corpus;
mod fleet;
mod verdict;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use echo_tests::stack::{prune, TestEnv};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

use crate::corpus::Upload;
use crate::fleet::Fleet;

/// Command-line arguments.
#[derive(Parser)]
#[command(name = "echo-chaos", about = "Chaos run against the local stack")]
struct Args {
    /// Seed of the uploads and of the kill schedule; random (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Uploads to submit (every fifth is bad).
    #[arg(long, default_value = "60")]
    uploads: usize,
    /// Chunk workers in the consumer group.
    #[arg(long, default_value = "2")]
    chunk_workers: usize,
    /// Clients submitting at the same time (each waits for its upload's terminal event).
    #[arg(long, default_value = "4")]
    clients: usize,
    /// Chunk length, ms: short so that long uploads have several chunks.
    #[arg(long, default_value = "10000")]
    chunk_ms: u64,
    /// Longest pause between two kills, ms (the shortest is a fifth of it).
    #[arg(long, default_value = "8000")]
    kill_every_ms: u64,
    /// Do not restart the broker.
    #[arg(long)]
    no_broker_restart: bool,
    /// How long to wait, once the clients are done, for the last uploads to end.
    #[arg(long, default_value = "300")]
    settle_secs: u64,
}

/// Where chaos runs' topics and subjects start; a new run deletes the previous one's.
const CHAOS_PREFIX: &str = "chaos.";

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let seed = args.seed.unwrap_or_else(rand::random);
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let echoctl = sibling_binary("echoctl")?;

    let base = echo_runtime::EchoConfig::load(None)?;
    prune(&base, |name| name.starts_with(CHAOS_PREFIX)).await?;
    let env = TestEnv::at(&format!("{CHAOS_PREFIX}{seed}.")).await?;

    let work = std::env::temp_dir().join(format!("echo-chaos-{seed}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let uploads = corpus::generate(&work, args.uploads, &mut rng)?;
    println!(
        "{} uploads ({} bad), {} chunk workers, {} clients; files and logs in {}",
        uploads.len(),
        uploads
            .iter()
            .filter(|u| u.expect == audit::Expect::Rejected)
            .count(),
        args.chunk_workers,
        args.clients,
        work.display()
    );

    let settings = vec![
        (
            "ECHO_KAFKA__TOPIC_PREFIX".to_string(),
            env.config.kafka.topic_prefix.clone(),
        ),
        (
            "ECHO_VALIDATION__CHUNK_MS".into(),
            args.chunk_ms.to_string(),
        ),
        ("RUST_LOG".into(), "warn".into()),
    ];
    let mut fleet = Fleet::start(
        &echoctl,
        settings.clone(),
        &work.join("logs"),
        args.chunk_workers,
    )?;
    let started = Instant::now();

    let done = Arc::new(AtomicUsize::new(0));
    let clients = submit_all(&echoctl, &settings, &uploads, args.clients, done.clone());
    let chaos = unleash(&mut fleet, &args, &mut rng, &done, uploads.len()).await?;
    let client_failures = clients.await?;
    fleet.revive()?;
    println!(
        "clients done after {:.0} s: {} kills, {} processes exited on their own, broker restarted {} time(s), {} client(s) failed",
        started.elapsed().as_secs_f64(),
        chaos.kills,
        fleet.exits,
        chaos.broker_restarts,
        client_failures
    );

    let expected: HashMap<String, audit::Expect> =
        uploads.iter().map(|u| (u.filename(), u.expect)).collect();
    let figures = verdict::settle(&env, &expected, Duration::from_secs(args.settle_secs)).await?;
    println!("audited after {:.0} s", started.elapsed().as_secs_f64());
    let quality = verdict::artifacts(&env, &uploads).await?;
    fleet.stop();
    let dlq = verdict::dlq_counts(&env).await?;
    verdict::print(seed, &args_line(&args, seed), &figures, &quality, &dlq);
    Ok(figures.clean() && quality.mismatched.is_empty())
}

/// The command that repeats this run.
fn args_line(args: &Args, seed: u64) -> String {
    format!(
        "scripts/chaos.sh --seed {seed} --uploads {} --chunk-workers {} --clients {} --chunk-ms {} --kill-every-ms {}{}",
        args.uploads,
        args.chunk_workers,
        args.clients,
        args.chunk_ms,
        args.kill_every_ms,
        if args.no_broker_restart { " --no-broker-restart" } else { "" }
    )
}

/// A binary built next to this one.
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it first (cargo build -p echoctl)",
        path.display()
    );
    Ok(path)
}

/// Submits every upload with `echoctl submit --wait`, `clients` at a time; counts the
/// clients that failed (the audit, not the client, decides what happened to an upload).
fn submit_all(
    echoctl: &Path,
    settings: &[(String, String)],
    uploads: &[Upload],
    clients: usize,
    done: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<usize> {
    let slots = Arc::new(Semaphore::new(clients));
    let mut tasks = Vec::new();
    for upload in uploads {
        let slots = slots.clone();
        let done = done.clone();
        let mut command = tokio::process::Command::new(echoctl);
        command
            .args(["submit", "--wait", "--json", "--timeout-secs", "300"])
            .arg(&upload.path)
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        let name = upload.filename();
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore open");
            let output = command.output().await;
            done.fetch_add(1, Ordering::SeqCst);
            match output {
                Ok(o) if !o.stdout.is_empty() => false,
                Ok(o) => {
                    eprintln!(
                        "  client for {name} failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                    true
                }
                Err(e) => {
                    eprintln!("  client for {name} did not run: {e}");
                    true
                }
            }
        }));
    }
    tokio::spawn(async move {
        let mut failed = 0;
        for task in tasks {
            failed += usize::from(task.await.unwrap_or(true));
        }
        failed
    })
}

/// What the chaos did.
struct Chaos {
    /// Processes SIGKILLed.
    kills: usize,
    /// Broker restarts.
    broker_restarts: usize,
}

/// Kills and restarts processes at random until every client is done; restarts the broker
/// once, when a random share (30–60 %) of the clients are done.
async fn unleash(
    fleet: &mut Fleet,
    args: &Args,
    rng: &mut StdRng,
    done: &AtomicUsize,
    total: usize,
) -> Result<Chaos> {
    let mut chaos = Chaos {
        kills: 0,
        broker_restarts: 0,
    };
    let broker_at = (total * rng.random_range(30..=60)).div_ceil(100);
    let restart_broker =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack/restart-kafka.sh");
    while done.load(Ordering::SeqCst) < total {
        let pause = rng.random_range(args.kill_every_ms / 5..=args.kill_every_ms);
        let victim = rng.random_range(0..fleet.len());
        let down = rng.random_range(200..=3_000);
        let until = Instant::now() + Duration::from_millis(pause);
        while Instant::now() < until && done.load(Ordering::SeqCst) < total {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if done.load(Ordering::SeqCst) >= total {
            break;
        }
        fleet.revive()?;
        if !args.no_broker_restart
            && chaos.broker_restarts == 0
            && done.load(Ordering::SeqCst) >= broker_at
        {
            println!(
                "  restarting the broker ({} of {total} clients done)",
                done.load(Ordering::SeqCst)
            );
            let status = tokio::process::Command::new("bash")
                .arg(&restart_broker)
                .status()
                .await
                .context("restarting the broker")?;
            anyhow::ensure!(status.success(), "broker restart failed");
            chaos.broker_restarts += 1;
            continue;
        }
        println!(
            "  kill -9 {} (down {down} ms; {} of {total} clients done)",
            fleet.name(victim),
            done.load(Ordering::SeqCst)
        );
        fleet.kill(victim)?;
        chaos.kills += 1;
        tokio::time::sleep(Duration::from_millis(down)).await;
        fleet.restart(victim)?;
    }
    Ok(chaos)
}
