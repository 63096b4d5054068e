//! ggml's tiled matrix kernels (llamafile's sgemm), compiled into whisper.cpp.
//!
//! OpenBLAS takes whisper.cpp's large products; ggml computes the rest itself, one dot
//! product at a time unless these kernels are compiled in. The largest of the rest is the
//! encoder's attention scores (their keys are a strided view, which OpenBLAS is not given):
//! with the kernels a chunk takes ~15–20 % less time (docs/PERFORMANCE.md, change 16). They
//! are a compile-time choice (`GGML_LLAMAFILE` in the workspace's cargo configuration), so
//! the chunk worker's start line and `echoctl transcribe --json` report whether a build has
//! them.

/// Whether whisper.cpp was compiled with the tiled kernels, as its own system report says.
pub fn compiled_in() -> bool {
    whisper_rs::print_system_info().contains("LLAMAFILE = 1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_cpp_is_compiled_with_the_tiled_kernels() {
        assert!(
            compiled_in(),
            "whisper.cpp's system report: {}",
            whisper_rs::print_system_info()
        );
    }
}
