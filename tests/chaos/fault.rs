//! The fault run's faults, each inflicted for minutes while uploads are in flight, then
//! lifted: one of the local stack's servers (the object store or the schema registry) frozen
//! (SIGSTOP, which is how a hung server or a partitioned network looks to its clients:
//! connections accepted, no answer), or the object store's disk filled (every write it takes
//! fails for want of space). Nothing else is broken meanwhile, so whatever the audit finds is
//! the fault's doing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::Rng;

/// A fault the fault run can inflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// The S3 server frozen: validation, chunk downloads, transcript and report writes and
    /// deletes wait.
    Store,
    /// The schema registry frozen: every client's first request, and any processor meeting a
    /// schema it has not read yet.
    Registry,
    /// The S3 server's disk full: it answers, but every object written fails. Its data must
    /// be on a filesystem of its own (`scripts/faults.sh disk` mounts one), or the ballast
    /// would fill the broker's disk too.
    Disk,
}

impl Fault {
    /// How the run's output names it.
    pub fn label(self) -> &'static str {
        match self {
            Fault::Store => "the object store frozen",
            Fault::Registry => "the schema registry frozen",
            Fault::Disk => "the object store's disk full",
        }
    }

    /// Its name on the command line.
    pub fn arg(self) -> &'static str {
        match self {
            Fault::Store => "store",
            Fault::Registry => "registry",
            Fault::Disk => "disk",
        }
    }
}

/// What the fault did.
pub struct Inflicted {
    /// Clients done when it began.
    pub at: usize,
    /// How long it lasted.
    pub secs: u64,
    /// From its end to the next upload ending, s: the pipeline serving again.
    pub serving_again_secs: Option<f64>,
}

/// Inflicts `fault` for `secs` once 20–40 % of the `total` clients are done, lifts it, and
/// returns when every client is done.
pub async fn inflict(
    fault: Fault,
    data_dir: &Path,
    secs: u64,
    rng: &mut StdRng,
    done: &AtomicUsize,
    total: usize,
) -> Result<Inflicted> {
    let at = (total * rng.random_range(20..=40)).div_ceil(100);
    while done.load(Ordering::SeqCst) < at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let label = fault.label();
    println!("  {label} for {secs} s ({at} of {total} clients done)");
    let lift = match fault {
        Fault::Store => Lift::Thaw(freeze(data_dir, "s3").await?),
        Fault::Registry => Lift::Thaw(freeze(data_dir, "registry").await?),
        Fault::Disk => Lift::Remove(fill(data_dir).await?),
    };
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let before = done.load(Ordering::SeqCst);
    match lift {
        Lift::Thaw(pid) => signal(&pid, "CONT").await?,
        Lift::Remove(ballast) => std::fs::remove_file(&ballast)
            .with_context(|| format!("removing {}", ballast.display()))?,
    }
    let lifted = Instant::now();
    println!("  {label}: over ({before} of {total} clients done)");
    let mut serving_again_secs = None;
    while done.load(Ordering::SeqCst) < total {
        if serving_again_secs.is_none() && done.load(Ordering::SeqCst) > before {
            serving_again_secs = Some(lifted.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Inflicted {
        at,
        secs,
        serving_again_secs: serving_again_secs.or(Some(lifted.elapsed().as_secs_f64())),
    })
}

/// How a fault ends.
enum Lift {
    /// `kill -CONT` this pid.
    Thaw(String),
    /// Delete this file.
    Remove(PathBuf),
}

/// Stops the stack's server `name` (SIGSTOP); its pid.
async fn freeze(data_dir: &Path, name: &str) -> Result<String> {
    let pid_file = data_dir.join("run").join(format!("{name}.pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {} (is the local stack up?)", pid_file.display()))?
        .trim()
        .to_string();
    signal(&pid, "STOP").await?;
    Ok(pid)
}

/// Fills the filesystem of the S3 server's data with one file (a ballast of all the space
/// left), after checking that the filesystem is not the one the rest of the stack is on;
/// the ballast's path.
async fn fill(data_dir: &Path) -> Result<PathBuf> {
    let store = data_dir.join("s3");
    anyhow::ensure!(
        device(&store)? != device(data_dir)?,
        "{} is not on a filesystem of its own: filling it would fill the broker's disk too \
         (scripts/faults.sh disk mounts one)",
        store.display()
    );
    let ballast = store.join("ballast");
    // Written until the filesystem refuses more (dd then fails, which is the point); full
    // means less than a MiB left.
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#"dd if=/dev/zero of="$1/ballast" bs=1M 2>/dev/null; test "$(df --output=avail -B1 "$1" | tail -1)" -lt 1048576"#)
        .arg("fill")
        .arg(&store)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "filling {} failed", store.display());
    Ok(ballast)
}

/// The device a path's filesystem is on.
fn device(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .dev())
}

async fn signal(pid: &str, name: &str) -> Result<()> {
    let status = tokio::process::Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}
