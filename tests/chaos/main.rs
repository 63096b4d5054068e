//! `echo-chaos`: proves the pipeline's guarantees by breaking things on purpose.
//!
//! It submits a seeded batch of uploads (speech of one or several chunks, plus bad files)
//! while SIGKILLing and restarting processors and chunk workers at random and restarting the
//! Kafka broker once; then it reads every topic back and prints the figures: submitted /
//! terminal / stuck, `resource.ready` per resource, duplicate effects, lost events, time to
//! terminal. It exits non-zero unless nothing is stuck, lost or duplicated. Run it with
//! `scripts/chaos.sh` (the local stack must be up); the same seed gives the same uploads
//! and the same sequence of kills.
//!
//! With `--brokers N` (a cluster started by `echoctl dev up --brokers N`, whose settings the
//! environment carries) it SIGKILLs the broker leading the busiest partition instead of
//! restarting the only one, starts it again after a while, and makes the chunk workers'
//! group rebalance by adding a worker and later removing it.
//!
//! With `--fault store|registry|disk --fault-secs N` (the fault run, `scripts/faults.sh`) it
//! kills nothing: it freezes the object store or the schema registry, or fills the object
//! store's disk, for N seconds while uploads are in flight, then lifts the fault.

mod audit;
mod cluster;
mod corpus;
mod fault;
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
#[command(
    name = "echo-chaos",
    about = "Chaos run against the local stack",
    args_override_self = true
)]
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
    /// Do not restart the broker (with --brokers N: do not kill one).
    #[arg(long)]
    no_broker_restart: bool,
    /// Brokers of the cluster the run uses: 1 restarts the broker; more kills the leader of
    /// the busiest partition and rebalances the chunk workers once.
    #[arg(long, default_value = "1")]
    brokers: usize,
    /// How long the killed broker stays down, s (above Kafka's 9 s broker session timeout,
    /// so its partitions move to other leaders meanwhile).
    #[arg(long, default_value = "15")]
    broker_down_secs: u64,
    /// How long to wait, once the clients are done, for the last uploads to end.
    #[arg(long, default_value = "300")]
    settle_secs: u64,
    /// Instead of kills and broker restarts: inflict this fault once 20–40 % of the clients
    /// are done, then lift it.
    #[arg(long, value_enum)]
    fault: Option<fault::Fault>,
    /// How long the fault lasts, s.
    #[arg(long, default_value = "180")]
    fault_secs: u64,
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
    if args.brokers > 1 {
        check_cluster(&base, args.brokers).await?;
    }
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
    if let Some(fault) = args.fault {
        let (secs, total) = (args.fault_secs, uploads.len());
        let inflicted = fault::inflict(fault, &base.data_dir, secs, &mut rng, &done, total).await?;
        let client_failures = clients.await?;
        fleet.revive()?;
        println!(
            "clients done after {:.0} s: {} for {} s from {} of {} clients done, an upload \
             ended {:.1} s after it, {} processes exited on their own, {} client(s) failed",
            started.elapsed().as_secs_f64(),
            fault.label(),
            inflicted.secs,
            inflicted.at,
            uploads.len(),
            inflicted.serving_again_secs.unwrap_or_default(),
            fleet.exits,
            client_failures
        );
        return audit_run(&env, &args, seed, &uploads, started, fleet).await;
    }
    let chaos = unleash(&mut fleet, &env, &args, &mut rng, &done, uploads.len()).await?;
    let client_failures = clients.await?;
    fleet.revive()?;
    let brokers = if args.brokers > 1 {
        format!(
            "{} leader broker(s) killed, {} worker(s) added and removed",
            chaos.broker_kills, chaos.rebalances
        )
    } else {
        format!("broker restarted {} time(s)", chaos.broker_restarts)
    };
    println!(
        "clients done after {:.0} s: {} kills, {} processes exited on their own, {brokers}, {} client(s) failed",
        started.elapsed().as_secs_f64(),
        chaos.kills,
        fleet.exits,
        client_failures
    );

    audit_run(&env, &args, seed, &uploads, started, fleet).await
}

/// Waits for the last uploads to end, reads the run back and prints its figures; whether it
/// is clean.
async fn audit_run(
    env: &TestEnv,
    args: &Args,
    seed: u64,
    uploads: &[Upload],
    started: Instant,
    mut fleet: Fleet,
) -> Result<bool> {
    let expected: HashMap<String, audit::Expect> =
        uploads.iter().map(|u| (u.filename(), u.expect)).collect();
    let figures = verdict::settle(env, &expected, Duration::from_secs(args.settle_secs)).await?;
    println!("audited after {:.0} s", started.elapsed().as_secs_f64());
    let quality = verdict::artifacts(env, uploads).await?;
    fleet.stop();
    let dlq = verdict::dlq_counts(env).await?;
    verdict::print(seed, &args_line(args, seed), &figures, &quality, &dlq);
    Ok(figures.clean() && quality.mismatched.is_empty())
}

/// The command that repeats this run.
fn args_line(args: &Args, seed: u64) -> String {
    let cluster = if args.brokers > 1 {
        format!(
            " --brokers {} --broker-down-secs {}",
            args.brokers, args.broker_down_secs
        )
    } else {
        String::new()
    };
    if let Some(fault) = args.fault {
        return format!(
            "scripts/faults.sh {} --seed {seed} --uploads {} --chunk-workers {} --clients {} --chunk-ms {} --fault-secs {}",
            fault.arg(), args.uploads, args.chunk_workers, args.clients, args.chunk_ms, args.fault_secs
        );
    }
    format!(
        "scripts/chaos.sh --seed {seed} --uploads {} --chunk-workers {} --clients {} --chunk-ms {} --kill-every-ms {}{}{cluster}",
        args.uploads,
        args.chunk_workers,
        args.clients,
        args.chunk_ms,
        args.kill_every_ms,
        if args.no_broker_restart { " --no-broker-restart" } else { "" }
    )
}

/// A run with several brokers needs a cluster of that size, and topics that outlive a broker.
async fn check_cluster(config: &echo_runtime::EchoConfig, brokers: usize) -> Result<()> {
    let ids = cluster::brokers(config).await?;
    anyhow::ensure!(
        ids.len() == brokers,
        "the cluster at {} has {} broker(s) ({ids:?}), not {brokers}: start it with `echoctl dev up --brokers {brokers}` and export the settings it prints (scripts/chaos.sh --brokers {brokers} does both)",
        config.kafka.bootstrap_servers,
        ids.len()
    );
    anyhow::ensure!(
        config.kafka.replication_factor > 1,
        "kafka.replication_factor is {}: killing a broker would lose its partitions (set ECHO_KAFKA__REPLICATION_FACTOR as `echoctl dev up --brokers {brokers}` prints)",
        config.kafka.replication_factor
    );
    println!(
        "cluster: brokers {ids:?} at {}, replication factor {}, min.insync.replicas {}",
        config.kafka.bootstrap_servers,
        config.kafka.replication_factor,
        config.kafka.min_insync_replicas
    );
    Ok(())
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
    /// Brokers SIGKILLed (and started again), in a cluster.
    broker_kills: usize,
    /// Chunk workers added to the group and removed again, in a cluster.
    rebalances: usize,
}

/// Kills and restarts processes at random until every client is done; restarts the broker
/// once, when a random share (30–60 %) of the clients are done. In a cluster it kills the
/// leader of the busiest partition at that point instead, and adds a chunk worker when
/// 10–25 % are done, removing it again at 65–85 %.
async fn unleash(
    fleet: &mut Fleet,
    env: &TestEnv,
    args: &Args,
    rng: &mut StdRng,
    done: &AtomicUsize,
    total: usize,
) -> Result<Chaos> {
    let mut chaos = Chaos {
        kills: 0,
        broker_restarts: 0,
        broker_kills: 0,
        rebalances: 0,
    };
    let broker_at = (total * rng.random_range(30..=60)).div_ceil(100);
    // Drawn only in a cluster, so a single-broker run keeps its seed's schedule.
    let (join_at, leave_at) = if args.brokers > 1 {
        (
            (total * rng.random_range(10..=25)).div_ceil(100),
            (total * rng.random_range(65..=85)).div_ceil(100),
        )
    } else {
        (usize::MAX, usize::MAX)
    };
    let mut joined: Option<usize> = None;
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
        let finished = done.load(Ordering::SeqCst);
        if joined.is_none() && chaos.rebalances == 0 && finished >= join_at {
            let i = fleet.add_chunk_worker()?;
            println!(
                "  {} joins the chunk workers' group ({finished} of {total} clients done)",
                fleet.name(i)
            );
            joined = Some(i);
            continue;
        }
        if joined.is_some() && finished >= leave_at {
            if let Some(name) = fleet.remove_last() {
                println!("  {name} leaves the group ({finished} of {total} clients done)");
            }
            joined = None;
            chaos.rebalances += 1;
            continue;
        }
        if args.brokers > 1
            && !args.no_broker_restart
            && chaos.broker_kills == 0
            && finished >= broker_at
        {
            kill_leader(env, args, &restart_broker, finished, total).await?;
            chaos.broker_kills += 1;
            continue;
        }
        if args.brokers == 1
            && !args.no_broker_restart
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
    if joined.is_some() {
        // The clients finished before the extra worker's time to leave: it leaves now.
        if let Some(name) = fleet.remove_last() {
            println!("  {name} leaves the group (all clients done)");
        }
        chaos.rebalances += 1;
    }
    Ok(chaos)
}

/// SIGKILLs the broker leading the run's busiest partition, keeps it down for
/// `--broker-down-secs` and starts it again (`restart-kafka.sh --kill`); says where the
/// partition's leadership went meanwhile.
async fn kill_leader(
    env: &TestEnv,
    args: &Args,
    script: &Path,
    finished: usize,
    total: usize,
) -> Result<()> {
    let busiest = cluster::busiest(&env.config, &env.config.kafka.topic_prefix).await?;
    anyhow::ensure!(
        busiest.leader >= 0,
        "{}[{}] has no leader",
        busiest.topic,
        busiest.partition
    );
    println!(
        "  kill -9 broker {} (leader of the busiest partition, {}[{}] with {} records; down {} s; {finished} of {total} clients done)",
        busiest.leader,
        busiest.topic,
        busiest.partition,
        busiest.records,
        args.broker_down_secs
    );
    let mut restart = tokio::process::Command::new("bash")
        .arg(script)
        .args(["--kill", "--down", &args.broker_down_secs.to_string()])
        .arg(busiest.leader.to_string())
        .spawn()
        .context("killing the broker")?;
    // Past the broker session timeout (9 s) the controller has fenced the dead broker and
    // moved its leaderships.
    let look = Duration::from_secs(args.broker_down_secs.saturating_sub(2).max(1));
    tokio::time::sleep(look).await;
    match cluster::leader_of(&env.config, &busiest.topic, busiest.partition).await {
        Ok(leader) => println!(
            "  {}[{}] is led by broker {leader} after {} s",
            busiest.topic,
            busiest.partition,
            look.as_secs()
        ),
        Err(e) => println!("  could not read the new leader: {e:#}"),
    }
    let status = restart.wait().await.context("restarting the broker")?;
    anyhow::ensure!(
        status.success(),
        "restarting broker {} failed",
        busiest.leader
    );
    Ok(())
}
