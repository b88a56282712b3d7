//! `mtls-inspect show`: every certificate, CSR and CRL of the inputs, as text, JSON or PEM.

use std::io::Write;

use anyhow::Result;
use time::OffsetDateTime;

use crate::input;
use crate::model::ObjectView;
use crate::render_json::{self, InputError, ShowDocument};
use crate::render_text;
use crate::{Exit, Format};

/// What `mtls-inspect show` was asked to do.
#[derive(Clone, Debug)]
pub struct ShowArgs {
    /// Files to show (PEM or DER; `-` for stdin).
    pub files: Vec<String>,
    /// Text, JSON or PEM.
    pub format: Format,
    /// One line per object.
    pub short: bool,
    /// The time relative values refer to.
    pub at: OffsetDateTime,
}

/// Runs `show`: objects to `out`, problems to `err`. Exit 2 when any input failed.
pub fn run(args: &ShowArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<Exit> {
    let mut views = Vec::new();
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    for file in &args.files {
        match load_views(file, args.at) {
            Ok((v, n)) => {
                views.extend(v);
                notes.extend(n);
            }
            Err(e) => errors.push(InputError {
                file: file.clone(),
                message: format!("{e:#}"),
            }),
        }
    }
    match args.format {
        Format::Json => {
            let doc = ShowDocument {
                schema: render_json::SHOW_SCHEMA,
                checked_at: pki::timefmt::rfc3339(args.at),
                objects: &views,
                notes: &notes,
                errors: &errors,
            };
            out.write_all(render_json::to_json(&doc)?.as_bytes())?;
        }
        Format::Pem => {
            for v in &views {
                out.write_all(pem_of(v).as_bytes())?;
            }
        }
        Format::Text => {
            for (i, v) in views.iter().enumerate() {
                if args.short {
                    writeln!(out, "{}", render_text::short(v))?;
                } else {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    out.write_all(render_text::render(v).as_bytes())?;
                }
            }
        }
    }
    if args.format != Format::Json {
        for n in &notes {
            writeln!(err, "note: {n}")?;
        }
        for e in &errors {
            writeln!(err, "error: {}", e.message)?;
        }
    }
    Ok(if errors.is_empty() {
        Exit::Success
    } else {
        Exit::Error
    })
}

fn load_views(file: &str, at: OffsetDateTime) -> Result<(Vec<ObjectView>, Vec<String>)> {
    let parsed = input::load(file)?;
    let mut views = Vec::with_capacity(parsed.objects.len());
    for obj in &parsed.objects {
        views.push(ObjectView::build(obj, at)?);
    }
    let name = if file == "-" { "<stdin>" } else { file };
    let notes = parsed
        .notes
        .into_iter()
        .map(|n| format!("{name}: {n}"))
        .collect();
    Ok((views, notes))
}

fn pem_of(view: &ObjectView) -> &str {
    match view {
        ObjectView::Certificate(c) => &c.pem,
        ObjectView::Csr(c) => &c.pem,
        ObjectView::Crl(c) => &c.pem,
        ObjectView::OcspResponse(o) => &o.pem,
    }
}
