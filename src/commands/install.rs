//! `capdiag completions SHELL` and `capdiag man`: what an installation puts beside the binary,
//! made from the command-line definitions themselves (clap_complete, clap_mangen), so they
//! never disagree with it.

use super::{EXIT_ERROR, EXIT_OK, is_broken_pipe, report_error};
use clap::CommandFactory;
use std::io::{self, Write};

/// `capdiag completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> u8 {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::Cli::command(), "capdiag", &mut out);
    write_out(&out)
}

/// `capdiag man [COMMAND]`: the manual page, in roff: `capdiag(1)`, or a command's own page
/// (`capdiag-analyze(1)`, as git has `git-commit(1)`).
pub fn man(command: Option<&str>) -> u8 {
    let mut out = Vec::new();
    let cmd = crate::cli::Cli::command();
    let page = match command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone().name(format!("capdiag-{name}")),
            None => {
                let known: Vec<String> = cmd
                    .get_subcommands()
                    .map(|c| c.get_name().to_string())
                    .collect();
                report_error(
                    "man",
                    &format!(
                        "no command '{}' (commands: {})",
                        crate::text::printable(name),
                        known.join(", ")
                    ),
                );
                return EXIT_ERROR;
            }
        },
    };
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        report_error("man", &e);
        return EXIT_ERROR;
    }
    write_out(&out)
}

fn write_out(bytes: &[u8]) -> u8 {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => EXIT_OK,
        Err(e) if is_broken_pipe(&e) => EXIT_OK,
        Err(e) => {
            report_error("writing output", &e);
            EXIT_ERROR
        }
    }
}
