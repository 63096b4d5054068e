//! OpenBLAS kernels that fit the CPU echo runs on.
//!
//! whisper.cpp hands its large matrix products (the encoder's) to OpenBLAS, which picks its
//! kernels once, while the library loads, from the CPU's model number. A release older than
//! the CPU, or a hypervisor that hides the model (cloud VMs report "Intel(R) Xeon(R)
//! Processor"), leaves it on its most generic x86-64 kernels, Prescott's (SSE3): on an
//! AVX-512 machine whisper then took 1.5–2× as long. OpenBLAS reads `OPENBLAS_CORETYPE` only
//! while it loads, before `main`, so [`use_kernels_for_this_cpu`] restarts the process once
//! with the kernels the CPU's features allow. It costs one call into OpenBLAS at start, and
//! the restart only where OpenBLAS fell back.

use std::ffi::{c_char, CStr, OsString};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The variable OpenBLAS takes its kernels' name from, instead of detecting the CPU.
const CORETYPE: &str = "OPENBLAS_CORETYPE";

/// What OpenBLAS falls back to when it does not recognise an x86-64 CPU.
const FALLBACK: &str = "Prescott";

extern "C" {
    /// The name of the kernels OpenBLAS chose (exported by every OpenBLAS build).
    fn openblas_get_corename() -> *const c_char;
}

/// The kernels OpenBLAS runs with, e.g. `Haswell`, `SkylakeX`, `Prescott`.
pub fn kernels() -> String {
    // SAFETY: OpenBLAS returns a pointer to a static, NUL-terminated name.
    unsafe { CStr::from_ptr(openblas_get_corename()) }
        .to_string_lossy()
        .into_owned()
}

/// The best kernels this CPU's features allow, when OpenBLAS fell back below them; `None`
/// when it recognised the CPU (its choice is kept) or nothing better is available.
pub fn better_kernels(chosen: &str) -> Option<&'static str> {
    if chosen != FALLBACK {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl");
        if avx512 {
            return Some("SkylakeX");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some("Haswell");
        }
    }
    None
}

/// Restarts this process with OpenBLAS on the kernels its CPU allows, when OpenBLAS fell
/// back to generic ones and `OPENBLAS_CORETYPE` is not set (a set value is the operator's
/// choice, and stops a second restart). Call first in `main`, before any thread starts;
/// returns when there is nothing to do or the restart failed (then it runs as it is).
pub fn use_kernels_for_this_cpu() {
    if std::env::var_os(CORETYPE).is_some() {
        return;
    }
    let Some(better) = better_kernels(&kernels()) else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from(&exe));
    let error = Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env(CORETYPE, better)
        .exec();
    eprintln!("warning: could not restart with OpenBLAS's {better} kernels: {error}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recognised_cpu_keeps_what_openblas_chose() {
        assert_eq!(better_kernels("Haswell"), None);
        assert_eq!(better_kernels("Zen"), None);
        assert_eq!(better_kernels("SkylakeX"), None);
    }
}
