//! `hermod`: the command line (see [`hermod::cli`]), run with an owner-only umask.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc, not the system allocator: while a large backlog drains, sled replaces and
/// frees pages at a high rate, and glibc's heap kept that memory (a one-million drain
/// peaked at 255 MB with glibc, 185-192 MB with jemalloc as set below; intake was 27,000
/// msg/s against 21,000). See docs/BENCHMARKS.md. Its options are built in from
/// .cargo/config.toml (`JEMALLOC_SYS_WITH_MALLOC_CONF`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Everything hermod creates (the spool, the user store, the admin socket, state
    // files) is its user's alone, whatever umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    hermod::cli::Cli::parse().run()
}
