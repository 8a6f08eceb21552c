//! `kefu`: see `kefu --help`.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: under load the suite spent a fifth of its CPU allocating and
/// freeing with glibc's (`docs/benchmarks.md`, "Where the CPU goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    kefu::cli::main().await
}
