//! The processors of a chaos run, one child process each, as Kubernetes would run them:
//! killed with SIGKILL at random, restarted under the same instance name (so the new
//! transactional producer fences the dead one's open transaction).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

/// One processor instance.
struct Member {
    /// `upload`, `chunk-worker-1`…: how the run's log names it.
    name: String,
    /// `echoctl run …` arguments.
    args: Vec<String>,
    /// The running process, if any.
    child: Option<Child>,
}

/// Every processor of the pipeline, each in its own process.
pub struct Fleet {
    echoctl: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    members: Vec<Member>,
    /// Processes that exited on their own (not killed by the run) and were restarted.
    pub exits: usize,
}

impl Fleet {
    /// Starts the pipeline's processors with `chunk_workers` workers.
    pub fn start(
        echoctl: &Path,
        env: Vec<(String, String)>,
        logs: &Path,
        chunk_workers: usize,
    ) -> Result<Fleet> {
        std::fs::create_dir_all(logs)?;
        // Every processor of the catalogue, the chunk workers apart (there are several).
        let catalogue = echo_catalog::Catalogue::load()?;
        let mut members: Vec<Member> = catalogue
            .processors
            .iter()
            .map(|p| p.name.as_str())
            .filter(|p| *p != CHUNK_WORKER)
            .map(|p| Member {
                name: p.to_string(),
                args: vec![
                    "run".into(),
                    p.to_string(),
                    "--instance".into(),
                    "chaos".into(),
                ],
                child: None,
            })
            .collect();
        for i in 1..=chunk_workers {
            members.push(chunk_worker(i));
        }
        let mut fleet = Fleet {
            echoctl: echoctl.to_path_buf(),
            env,
            logs: logs.to_path_buf(),
            members,
            exits: 0,
        };
        for i in 0..fleet.members.len() {
            fleet.spawn(i)?;
        }
        Ok(fleet)
    }

    /// Starts one more chunk worker, at the end of the fleet: the worker group rebalances.
    /// Returns its index.
    pub fn add_chunk_worker(&mut self) -> Result<usize> {
        let n = self
            .members
            .iter()
            .filter(|m| m.name.starts_with("chunk-worker-"))
            .count();
        self.members.push(chunk_worker(n + 1));
        let i = self.members.len() - 1;
        self.spawn(i)?;
        Ok(i)
    }

    /// Stops the last member with SIGTERM, as a scale-down would, and drops it from the
    /// fleet: its group rebalances again.
    pub fn remove_last(&mut self) -> Option<String> {
        let mut member = self.members.pop()?;
        if let Some(child) = member.child.take() {
            terminate(child);
        }
        Some(member.name)
    }

    /// How many processes the fleet has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Name of member `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let member = &mut self.members[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", member.name)))?;
        let child = Command::new(&self.echoctl)
            .args(&member.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", member.name))?;
        member.child = Some(child);
        Ok(())
    }

    /// SIGKILLs member `i`: no shutdown hook runs, an open transaction is left hanging.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(mut child) = self.members[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts member `i` again if it is not running.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.members[i].child.is_none() {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// Restarts members that exited on their own, as a supervisor would.
    pub fn revive(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            let exited = match self.members[i].child.as_mut() {
                Some(child) => child.try_wait()?.is_some(),
                None => false,
            };
            if exited {
                self.exits += 1;
                eprintln!("  {} exited on its own; restarting", self.members[i].name);
                self.members[i].child = None;
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Stops every member with SIGTERM (graceful shutdown) and waits for it.
    pub fn stop(&mut self) {
        for member in &mut self.members {
            if let Some(child) = member.child.take() {
                terminate(child);
            }
        }
    }
}

/// Chunk worker number `i` (from 1), under its own instance name.
/// The processor run as several members.
const CHUNK_WORKER: &str = "chunk-worker";

fn chunk_worker(i: usize) -> Member {
    Member {
        name: format!("{CHUNK_WORKER}-{i}"),
        args: vec![
            "run".into(),
            CHUNK_WORKER.into(),
            "--instance".into(),
            format!("chaos-w{i}"),
        ],
        child: None,
    }
}

/// SIGTERM (graceful shutdown), then waits for the process to end.
fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}
