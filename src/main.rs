//! `kefu`: see `kefu --help`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    kefu::cli::main().await
}
