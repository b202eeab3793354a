use clap::Parser;
use std::process::ExitCode;

/// Every HTTP message is a few small allocations made and freed within microseconds;
/// mimalloc's thread-local free lists serve them several times faster than the system
/// allocator (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = capdiag::cli::Cli::parse();
    let code = match &cli.command {
        capdiag::cli::Command::Http(args) => capdiag::commands::http(args),
        capdiag::cli::Command::Analyze(args) => capdiag::commands::analyze(args),
        capdiag::cli::Command::Watch(args) => capdiag::commands::watch(args),
        capdiag::cli::Command::Extract(args) => capdiag::commands::extract(args),
        capdiag::cli::Command::Rules => capdiag::commands::rules(),
        capdiag::cli::Command::Explain { id } => capdiag::commands::explain(id),
    };
    ExitCode::from(code)
}
