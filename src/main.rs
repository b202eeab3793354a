use clap::Parser;
use clap::error::ErrorKind;
use std::io::Write;
use std::process::ExitCode;

/// Every HTTP message is a few small allocations made and freed within microseconds;
/// mimalloc's thread-local free lists serve them several times faster than the system
/// allocator (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match capdiag::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = cli.command.check() {
        capdiag::commands::report_error(&e.what, &e.why);
        return ExitCode::from(capdiag::commands::EXIT_ERROR);
    }
    let code = match &cli.command {
        capdiag::cli::Command::Http(args) => capdiag::commands::http(args),
        capdiag::cli::Command::Conns(args) => capdiag::commands::conns(args),
        capdiag::cli::Command::Analyze(args) => capdiag::commands::analyze(args),
        capdiag::cli::Command::Watch(args) => capdiag::commands::watch(args),
        capdiag::cli::Command::Extract(args) => capdiag::commands::extract(args),
        capdiag::cli::Command::Rules => capdiag::commands::rules(),
        capdiag::cli::Command::Explain { id } => capdiag::commands::explain(id),
        capdiag::cli::Command::Completions { shell } => capdiag::commands::completions(*shell),
        capdiag::cli::Command::Man { command } => capdiag::commands::man(command.as_deref()),
    };
    ExitCode::from(code)
}

/// Help and version as clap prints them; a usage error with the words it quotes from the
/// command line (a file name, a value) shown printable, as every capdiag message is.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let mut err = std::io::stderr().lock();
    for line in text.lines() {
        let _ = writeln!(err, "{}", capdiag::text::printable(line));
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}
