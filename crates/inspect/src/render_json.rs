//! JSON output. Every document carries a `schema` name with a version; fields are only ever
//! added within a version (docs/cli.md lists them).

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::model::ObjectView;

/// The `schema` of `show --format json`.
pub const SHOW_SCHEMA: &str = "mtls-inspect.show/v1";
/// The `schema` of `verify --format json`.
pub const VERIFY_SCHEMA: &str = "mtls-inspect.verify/v1";
/// The `schema` of `lint --format json`.
pub const LINT_SCHEMA: &str = "mtls-inspect.lint/v1";
/// The `schema` of `remote --format json`.
pub const REMOTE_SCHEMA: &str = "mtls-inspect.remote/v1";
/// The `schema` of `needs-renewal --format json`.
pub const RENEWAL_SCHEMA: &str = "mtls-inspect.needs-renewal/v1";

/// An input that could not be read or parsed.
#[derive(Clone, Debug, Serialize)]
pub struct InputError {
    /// The file (`-` for stdin).
    pub file: String,
    /// What went wrong, naming the block and line when there is one.
    pub message: String,
}

/// The document `show --format json` prints.
#[derive(Debug, Serialize)]
pub struct ShowDocument<'a> {
    /// [`SHOW_SCHEMA`].
    pub schema: &'static str,
    /// The time relative values (status, percent used) refer to.
    pub checked_at: String,
    /// Every object read, in input order.
    pub objects: &'a [ObjectView],
    /// Blocks skipped on purpose, e.g. private keys.
    pub notes: &'a [String],
    /// Inputs that could not be read or parsed.
    pub errors: &'a [InputError],
}

/// Pretty JSON with a final newline.
pub fn to_json<T: Serialize>(value: &T) -> Result<String> {
    let mut s = serde_json::to_string_pretty(value).context("serialising JSON")?;
    s.push('\n');
    Ok(s)
}
