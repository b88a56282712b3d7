//! The file of `mtls-ca entry create --from-file`: one JSON object per line with the fields of
//! the flags (docs/cli.md), each value checked by the flag's own parser, so a line means what
//! the same `entry create` command line would.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use mtls_ca::registration::{NewEntry, DEFAULT_ENTRY_TTL};

use crate::cli::{parse_dns_name, parse_entry_ttl, parse_selector, parse_spiffe_id};

/// One line as written; unknown fields are refused (a misspelt `ttl` must not silently become
/// the default).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    parent: String,
    spiffe_id: String,
    selectors: Vec<String>,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    dns: Vec<String>,
}

/// The entries of `path` (`-`: stdin) with their line numbers, or the first line at fault.
pub fn read(path: &Path) -> anyhow::Result<Vec<(usize, NewEntry)>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("--from-file -: reading stdin")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("--from-file {}: reading it", path.display()))?
    };
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.trim().is_empty() {
            continue;
        }
        let entry = parse_line(line).map_err(|e| {
            anyhow::anyhow!(
                "--from-file {} line {number}: {e}; no entry of the file was stored",
                path.display()
            )
        })?;
        entries.push((number, entry));
    }
    if entries.is_empty() {
        anyhow::bail!(
            "--from-file {}: no entries in it (one JSON object per line; see `mtls-ca entry \
             create --help`)",
            path.display()
        );
    }
    Ok(entries)
}

fn parse_line(line: &str) -> Result<NewEntry, String> {
    let raw: Line = serde_json::from_str(line).map_err(|e| {
        format!("not an entry object ({e}); expected e.g. {{\"parent\": \"spiffe://mesh.local/agent/node1\", \"spiffe_id\": \"spiffe://mesh.local/service/web\", \"selectors\": [\"unix:uid:1000\"]}}")
    })?;
    let field = |name: &str, e: String| format!("{name}: {e}");
    let selectors = raw
        .selectors
        .iter()
        .map(|s| parse_selector(s).map_err(|e| field("selectors", e)))
        .collect::<Result<Vec<_>, _>>()?;
    if selectors.is_empty() {
        return Err(field(
            "selectors",
            "at least one is required, e.g. [\"unix:uid:1000\"]".into(),
        ));
    }
    Ok(NewEntry {
        parent: parse_spiffe_id(&raw.parent).map_err(|e| field("parent", e))?,
        spiffe_id: parse_spiffe_id(&raw.spiffe_id).map_err(|e| field("spiffe_id", e))?,
        selectors,
        ttl: match &raw.ttl {
            Some(t) => parse_entry_ttl(t).map_err(|e| field("ttl", e))?,
            None => DEFAULT_ENTRY_TTL,
        },
        dns: raw
            .dns
            .iter()
            .map(|d| parse_dns_name(d).map_err(|e| field("dns", e)))
            .collect::<Result<Vec<_>, _>>()?,
    })
}
