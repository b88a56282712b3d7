//! The inspector's input: `mtls_inspect::input::parse` (PEM with any number of blocks, or DER,
//! telling certificates, CSRs, CRLs and OCSP responses apart, or a SPIFFE bundle as JSON), then
//! what `show` and `lint` do with each object
//! (the display model, the text, short and JSON renderings, the lint rules). Every object found
//! must parse again from its own DER (a bundle: its JSON) as the same kind of object.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_inspect::input::{self, Kind};
use mtls_inspect::lint::{self, Policy};
use mtls_inspect::model::ObjectView;
use mtls_inspect::{render_json, render_text};
use time::macros::datetime;

const AT: time::OffsetDateTime = datetime!(2026-01-01 0:30 UTC);

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = input::parse("fuzz", data) else {
        return;
    };
    assert!(!parsed.objects.is_empty(), "parse succeeded with no object");
    let policy = Policy {
        trust_domain: None,
        max_lifetime: time::Duration::hours(24),
        max_ca_lifetime: time::Duration::days(3660),
        profile: lint::ProfileChoice::Auto,
    };
    for (i, obj) in parsed.objects.iter().enumerate() {
        assert_eq!(obj.index, i + 1);
        let alone = input::parse("again", &obj.der).unwrap_or_else(|e| {
            panic!(
                "the DER of {} #{} does not parse alone: {e:#}",
                obj.kind, obj.index
            )
        });
        assert_eq!(alone.objects.len(), 1);
        assert_eq!(
            alone.objects[0].kind, obj.kind,
            "DER read as another kind of object"
        );
        assert_eq!(alone.objects[0].der, obj.der);
        if let Ok(view) = ObjectView::build(obj, AT) {
            let _ = render_text::render(&view);
            let _ = render_text::short(&view);
            let _ = render_json::to_json(&view);
        }
        if obj.kind == Kind::Certificate {
            let index = lint::IssuerIndex::new([obj.der.as_slice()]);
            let _ = lint::lint_certificate(&obj.der, &index, &policy);
        }
    }
});
