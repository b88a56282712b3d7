//! `PROGRAM completions SHELL` and `PROGRAM man [--dir DIR]` for every program, generated from
//! its clap definition (clap_complete, clap_mangen): one helper, so every binary offers both
//! alike and they can never disagree with `--help`.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Command, Parser};
use clap_complete::Shell;

/// Parses the command line of `T` like `T::parse()`, after answering `completions` and `man`,
/// which print (or write) and exit.
pub fn parse<T: Parser>() -> T {
    let mut cmd = with_generators(T::command());
    let matches = cmd.clone().get_matches();
    if let Some(code) = generate(&mut cmd, &matches) {
        std::process::exit(code);
    }
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// `cmd` with the two generator subcommands; they need none of the program's required options
/// (set only where there are some, so other programs' usage lines stay as they were).
fn with_generators(cmd: Command) -> Command {
    let has_required = cmd.get_arguments().any(|a| a.is_required_set());
    cmd.subcommand_negates_reqs(has_required)
        .subcommand(
            Command::new("completions")
                .about("Print a shell completion script (bash, zsh, fish, elvish, powershell)")
                .after_help("Example:\n  PROGRAM completions bash > /etc/bash_completion.d/PROGRAM")
                .arg(
                    Arg::new("shell")
                        .value_name("SHELL")
                        .required(true)
                        .value_parser(clap::value_parser!(Shell)),
                ),
        )
        .subcommand(
            Command::new("man")
                .about("Print the manual page (roff); with --dir, write one page per command")
                .arg(
                    Arg::new("dir")
                        .long("dir")
                        .value_name("DIR")
                        .value_parser(clap::value_parser!(PathBuf))
                        .help("Write PROGRAM.1 and PROGRAM-SUBCOMMAND.1 here (it must exist)"),
                ),
        )
}

/// Answers `completions` or `man`; None for any other command line. Some(exit status).
fn generate(cmd: &mut Command, matches: &ArgMatches) -> Option<i32> {
    let name = cmd.get_name().to_string();
    match matches.subcommand() {
        Some(("completions", m)) => {
            // Required by clap: parsing would have failed without it.
            let shell = *m.get_one::<Shell>("shell")?;
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, cmd, &name, &mut script);
            Some(print(&name, &script))
        }
        Some(("man", m)) => Some(match man(cmd, m.get_one::<PathBuf>("dir")) {
            Ok(page) => print(&name, &page),
            Err(e) => {
                eprintln!("{name}: error: {e}");
                1
            }
        }),
        _ => None,
    }
}

/// Writes `bytes` to stdout; exit status 0, or 1 when stdout is gone.
fn print(name: &str, bytes: &[u8]) -> i32 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: error: writing to stdout: {e}");
            1
        }
    }
}

/// The page of `cmd` (roff), or with `dir` the pages written there, listed one per line.
fn man(cmd: &Command, dir: Option<&PathBuf>) -> std::io::Result<Vec<u8>> {
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
            Ok(page)
        }
        Some(dir) => {
            clap_mangen::generate_to(cmd.clone(), dir).map_err(|e| {
                std::io::Error::new(e.kind(), format!("writing into {}: {e}", dir.display()))
            })?;
            list_pages(dir)
        }
    }
}

/// The pages now in `dir`, one per line.
fn list_pages(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect::<String>()
        .into_bytes())
}
