//! Work on a thread of its own at a lower CPU priority.
//!
//! The pool's whisper runs keep every core busy while long files are transcribed. The express
//! worker's clip, and the pipeline's own hops (upload, validation, assembly), are the work
//! someone is waiting for: run at the process's priority beside a pool niced below it, the
//! scheduler gives them a core as soon as they are runnable, and the pool gets it back when
//! they are done. Nothing is lost to it: the cores stay busy, only the order changes.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `work` on a thread of its own whose niceness is raised by `nice` (Linux; elsewhere it
/// runs at the process's), and returns what it returns, or the message of its panic (the
/// work's fault); the outer error is the machine's: no thread could be started. The thread
/// ends with the work, so the lower priority never outlives it.
pub async fn run<T: Send + 'static>(
    nice: i32,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<Result<T, String>> {
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("whisper".into())
        .spawn(move || {
            lower_priority(nice);
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into())
            }));
        })?;
    Ok(outcome
        .await
        .unwrap_or_else(|_| Err("the thread ended without an answer".into())))
}

/// Raises the calling thread's niceness by `nice` (0: unchanged). On Linux a thread's
/// priority is its own (`setpriority` on its id); raising it needs no privilege.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: plain system calls on the calling thread's own id. `getpriority` may return
        // -1 as a niceness, so its failure is told by errno, cleared before the call.
        let raised = unsafe {
            let tid = libc::gettid() as libc::id_t;
            *libc::__errno_location() = 0;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            *libc::__errno_location() == 0
                && libc::setpriority(libc::PRIO_PROCESS, tid, now.saturating_add(nice)) == 0
        };
        if !raised {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(),
                "the pool's whisper runs at the process's priority: it could not be lowered");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's niceness.
    fn niceness() -> i32 {
        // SAFETY: as above.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn the_work_runs_niced_and_the_caller_stays_as_it_was() {
        let before = niceness();
        let inside = run(5, niceness).await.unwrap().unwrap();
        assert_eq!(inside, (before + 5).min(19));
        assert_eq!(niceness(), before);
        assert_eq!(run(0, niceness).await.unwrap().unwrap(), before);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_with_its_message() {
        let err = run(0, || -> () { panic!("whisper fell over") })
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, "whisper fell over");
    }
}
