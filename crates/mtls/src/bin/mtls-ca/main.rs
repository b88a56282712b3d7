//! `mtls-ca`: the certificate authority service and its admin subcommands.

mod cli;
mod commands;
mod copy;
mod entry;
mod entry_file;
mod federation;
mod federation_refresh;
mod hierarchy;
mod root;
mod serve;
mod tokens;

fn main() -> std::process::ExitCode {
    let cli: cli::Cli = mtls::manual::parse();
    if let Err(e) = cli.check() {
        e.exit();
    }
    mtls::logging::init(cli.log_format, "info");
    let store = cli.store_location();
    let result = cli
        .pkcs11
        .token_access()
        .and_then(|token| match cli.command {
            None => serve::run(&cli.data_dir, store.as_ref(), token, cli.serve),
            Some(cmd) => commands::run(&cli.data_dir, store.as_ref(), token, cmd),
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtls-ca: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
