//! The `qrlogin` binary; everything it does is in [`server::cli`].

use std::process::ExitCode;

// glibc's malloc took about a tenth of the server's CPU in the benchmark's
// whole flow (many small short-lived allocations across worker threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    server::cli::run().await
}
