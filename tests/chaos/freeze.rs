//! The fault run's fault: the local stack's object store frozen (SIGSTOP, which is how a hung
//! server or a partitioned network looks to its clients: connections accepted, no answer)
//! for minutes while uploads are in flight, then thawed. Nothing else is broken meanwhile,
//! so whatever the audit finds is the outage's doing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::Rng;

/// What the freeze did.
pub struct Frozen {
    /// Clients done when the store was frozen.
    pub at: usize,
    /// How long it stayed frozen.
    pub secs: u64,
    /// From the thaw to the next upload ending, s: the pipeline serving again.
    pub serving_again_secs: Option<f64>,
}

/// Freezes the object store for `secs` once 20–40 % of the `total` clients are done, thaws
/// it, and returns when every client is done.
pub async fn store(
    data_dir: &Path,
    secs: u64,
    rng: &mut StdRng,
    done: &AtomicUsize,
    total: usize,
) -> Result<Frozen> {
    let at = (total * rng.random_range(20..=40)).div_ceil(100);
    while done.load(Ordering::SeqCst) < at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid_file = data_dir.join("run").join("s3.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {} (is the local stack up?)", pid_file.display()))?
        .trim()
        .to_string();
    println!("  kill -STOP the object store for {secs} s ({at} of {total} clients done)");
    signal(&pid, "STOP").await?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let before = done.load(Ordering::SeqCst);
    signal(&pid, "CONT").await?;
    let thawed = Instant::now();
    println!("  kill -CONT the object store ({before} of {total} clients done)");
    let mut serving_again_secs = None;
    while done.load(Ordering::SeqCst) < total {
        if serving_again_secs.is_none() && done.load(Ordering::SeqCst) > before {
            serving_again_secs = Some(thawed.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Frozen {
        at,
        secs,
        serving_again_secs: serving_again_secs.or(Some(thawed.elapsed().as_secs_f64())),
    })
}

async fn signal(pid: &str, name: &str) -> Result<()> {
    let status = tokio::process::Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}
