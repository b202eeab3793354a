use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = capdiag::cli::Cli::parse();
    let code = match &cli.command {
        capdiag::cli::Command::Http(args) => capdiag::commands::http(args),
    };
    ExitCode::from(code)
}
