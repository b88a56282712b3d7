//! `run --config FILE` and `check --config FILE`: the library reads the file
//! (`mtls_proxy::file`); its `[credentials]` table is read here with the very parsers of the
//! credential flags (`mtls::credentials::CredentialArgs`): each key is a flag without its
//! dashes (`ca_url` for `--ca-url`), a list repeats the flag, and relative paths are relative
//! to the configuration file.

use std::path::Path;

use clap::{CommandFactory, Parser};
use mtls::credentials::CredentialArgs;
use mtls_proxy::file::ConfigFile;
use mtls_proxy::ProxyConfig;

use crate::Failure;

/// Keys whose value is a file.
const PATH_KEYS: &[&str] = &[
    "join_token_file",
    "cert",
    "key",
    "ca_cert",
    "crl",
    "trust_pins_file",
];

#[derive(Parser, Debug)]
#[command(
    name = "[credentials]",
    no_binary_name = true,
    disable_help_flag = true
)]
struct Credentials {
    #[command(flatten)]
    creds: CredentialArgs,
}

/// Reads `path`: the proxy's configuration and its credential settings.
pub fn load(path: &Path) -> Result<(ProxyConfig, CredentialArgs), Failure> {
    let file = ConfigFile::load(path)?;
    let creds = credentials(&file)?;
    Ok((file.proxy, creds))
}

fn credentials(file: &ConfigFile) -> Result<CredentialArgs, Failure> {
    let fail = |message: String| Failure::Config(format!("{}: {message}", file.credentials_origin));
    let known: Vec<String> = Credentials::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
        .collect();
    let base = file.path.parent().unwrap_or(Path::new("."));
    let mut argv: Vec<String> = Vec::new();
    for (key, value) in &file.credentials {
        if !known.iter().any(|k| k == key) {
            return Err(fail(format!(
                "unknown key `{key}`; expected one of: {}",
                known.join(", ")
            )));
        }
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    return Err(fail(format!(
                        "{key}: {other} is not a string (write it in quotes)"
                    )))
                }
            };
            let text = if PATH_KEYS.contains(&key.as_str()) && Path::new(&text).is_relative() {
                base.join(&text).display().to_string()
            } else {
                text
            };
            argv.push(format!("--{}", key.replace('_', "-")));
            argv.push(text);
        }
    }
    match Credentials::try_parse_from(&argv) {
        Ok(c) => Ok(c.creds),
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            Err(fail(first.trim_start_matches("error: ").to_string()))
        }
    }
}
