//! `mtls-inspect show`: every certificate, CSR, CRL, OCSP response and SPIFFE bundle of the
//! inputs, as text, JSON or PEM.

use std::io::Write;

use anyhow::Result;
use time::OffsetDateTime;

use crate::input;
use crate::model::ObjectView;
use crate::render_json::{self, InputError, ShowDocument};
use crate::render_text;
use crate::{Exit, Format};
use x509_parser::prelude::FromDer;

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

/// In a file of several certificates (a chain: leaf, intermediate, root), names for each one
/// the certificate of the same file that issued it: same name and its key verifies the
/// signature.
fn link_issuers(objects: &[input::Object], views: &mut [ObjectView]) {
    let certs: Vec<(usize, &[u8])> = objects
        .iter()
        .zip(views.iter())
        .enumerate()
        .filter(|(_, (_, v))| matches!(v, ObjectView::Certificate(_)))
        .map(|(i, (o, _))| (i, o.der.as_slice()))
        .collect();
    if certs.len() < 2 {
        return;
    }
    let issuer_of = |i: usize, der: &[u8]| {
        let (_, child) = x509_parser::prelude::X509Certificate::from_der(der).ok()?;
        certs.iter().find_map(|(j, candidate)| {
            let (_, parent) = x509_parser::prelude::X509Certificate::from_der(candidate).ok()?;
            let named = parent.subject().as_raw() == child.issuer().as_raw();
            let signed =
                pki::verify::signature_verifies(der, parent.public_key().raw) == Some(true);
            (named && signed).then(|| match *j == i {
                true => "itself (self-signed)".to_string(),
                false => format!("#{} {}", objects[*j].index, parent.subject()),
            })
        })
    };
    let found: Vec<(usize, Option<String>)> = certs
        .iter()
        .map(|(i, der)| (*i, issuer_of(*i, der)))
        .collect();
    for (i, by) in found {
        if let ObjectView::Certificate(c) = &mut views[i] {
            c.issued_by = by;
        }
    }
    name_cross_certificates(objects, views, &certs);
}

/// A CA certificate that is not self-signed but names the subject and key of a self-signed
/// root of the same file is a cross-certificate (a trust bundle during a root rotation,
/// docs/operations.md): its role says which root it vouches for and who vouches.
fn name_cross_certificates(
    objects: &[input::Object],
    views: &mut [ObjectView],
    certs: &[(usize, &[u8])],
) {
    for (i, der) in certs {
        if pki::vouch::is_self_signed(der) {
            continue;
        }
        let Some((j, _)) = certs.iter().find(|(j, root)| {
            j != i
                && pki::vouch::is_self_signed(root)
                && pki::vouch::same_subject_and_key(der, root)
        }) else {
            continue;
        };
        if let ObjectView::Certificate(c) = &mut views[*i] {
            if !c.basic_constraints.as_ref().is_some_and(|bc| bc.ca) {
                continue;
            }
            c.role = format!(
                "cross-certificate for the root #{} {} (same subject and key), issued by {}: \
                 whoever trusts {} may accept that root through it; {}",
                objects[*j].index, c.subject, c.issuer, c.issuer, c.role
            );
        }
    }
}

fn load_views(file: &str, at: OffsetDateTime) -> Result<(Vec<ObjectView>, Vec<String>)> {
    let parsed = input::load(file)?;
    let mut views = Vec::with_capacity(parsed.objects.len());
    for obj in &parsed.objects {
        views.push(ObjectView::build(obj, at)?);
    }
    link_issuers(&parsed.objects, &mut views);
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
        ObjectView::SpiffeBundle(b) => &b.pem,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::verify::{self, VerifyArgs};

    /// A trust bundle during a root rotation: both roots and the cross-certificates both ways;
    /// `show` names each cross-certificate as such, with the root it vouches for.
    #[test]
    fn show_names_the_cross_certificates_of_a_rotation_bundle() {
        let now = time::OffsetDateTime::now_utc();
        let old = pki::CaMaterial::generate_root("Old Root", now).unwrap();
        let new = pki::CaMaterial::generate_root("New Root", now).unwrap();
        let old_signs_new = old.cross_sign(new.cert_der(), now).unwrap();
        let new_signs_old = new.cross_sign(old.cert_der(), now).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("bundle.pem");
        let pem = |der: &[u8]| pki::pem::encode("CERTIFICATE", der);
        std::fs::write(
            &bundle,
            [
                old.cert_pem(),
                new.cert_pem(),
                pem(&old_signs_new),
                pem(&new_signs_old),
            ]
            .concat(),
        )
        .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = ShowArgs {
            files: vec![bundle.display().to_string()],
            format: Format::Text,
            short: false,
            at: now,
        };
        run(&args, &mut out, &mut err).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "cross-certificate for the root #2 O=mtls-mesh, CN=New Root (same subject and \
                 key), issued by O=mtls-mesh, CN=Old Root"
            ),
            "{text}"
        );
        assert!(
            text.contains("cross-certificate for the root #1 O=mtls-mesh, CN=Old Root"),
            "{text}"
        );
        assert_eq!(text.matches("root CA (self-signed)").count(), 2, "{text}");
    }

    /// A chain file of a two-tier CA (leaf, intermediate, root): `show` names each one's role
    /// and issuer in the file; `verify` passes with the chain and names the missing link
    /// without it.
    #[test]
    fn show_explains_an_intermediate_chain_and_verify_names_the_missing_link() {
        let now = time::OffsetDateTime::now_utc();
        let (root, inter) = testkit::TestCa::two_tier("mesh.local");
        let leaf = inter.client("spiffe://mesh.local/service/api");
        let tmp = tempfile::tempdir().unwrap();
        let file = |name: &str, text: String| {
            let path = tmp.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let chain = file(
            "chain.pem",
            format!("{}{}{}", leaf.cert_pem, inter.cert_pem(), root.cert_pem()),
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = ShowArgs {
            files: vec![chain],
            format: Format::Text,
            short: false,
            at: now,
        };
        assert!(matches!(
            run(&args, &mut out, &mut err).unwrap(),
            Exit::Success
        ));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("end entity (not a CA)"), "{text}");
        assert!(
            text.contains(
                "intermediate CA, pathLenConstraint 0: signs end-entity certificates only"
            ),
            "{text}"
        );
        assert!(
            text.contains("root CA (self-signed), pathLenConstraint 1"),
            "{text}"
        );
        assert!(
            text.contains("#2 O=mtls-mesh, CN=mesh.local Intermediate CA"),
            "{text}"
        );
        assert!(text.contains("#3 O=mtls-mesh, CN=Offline Root"), "{text}");
        assert!(text.contains("itself (self-signed)"), "{text}");

        let roots = file("root.pem", root.cert_pem());
        let verify_args = |cert: String| VerifyArgs {
            cert,
            roots: vec![roots.clone()],
            intermediates: Vec::new(),
            crls: Vec::new(),
            purpose: pki::verify::Purpose::Client,
            hostname: None,
            spiffe_id: None,
            trust_domain: None,
            crl_check_chain: false,
            algorithms: Default::default(),
            strict: false,
            at: now,
            format: Format::Text,
        };
        let with_chain = file(
            "leaf-inter.pem",
            format!("{}{}", leaf.cert_pem, inter.cert_pem()),
        );
        let mut out = Vec::new();
        let verdict = verify::run(&verify_args(with_chain), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(matches!(verdict, Exit::Success), "{text}");
        assert!(text.contains("Intermediate CA"), "{text}");

        let leaf_only = file("leaf.pem", leaf.cert_pem.clone());
        let mut out = Vec::new();
        let verdict = verify::run(&verify_args(leaf_only), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(matches!(verdict, Exit::Failure), "{text}");
        assert!(
            text.contains("mesh.local Intermediate CA") && text.contains("--intermediates"),
            "the missing link is named: {text}"
        );
    }
}
