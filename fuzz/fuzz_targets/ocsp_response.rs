//! OCSP responses as `mtls-inspect show` reads them from files (`openssl ocsp -respout`):
//! `pki::ocsp::read_response`, then the inspector's display model and its text, short and JSON
//! renderings. A response that reads must be shown, and a successful one has a responder,
//! a producedAt and at most as many answers as its DER has bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_inspect::input::{Kind, Object};
use mtls_inspect::model::ObjectView;
use mtls_inspect::{render_json, render_text};
use time::macros::datetime;

const AT: time::OffsetDateTime = datetime!(2026-01-01 0:30 UTC);

fuzz_target!(|data: &[u8]| {
    let Ok(summary) = pki::ocsp::read_response(data) else {
        return;
    };
    if let Some(answer) = &summary.answer {
        assert_eq!(summary.status.to_string(), "successful");
        assert!(answer.answers.len() <= data.len());
    }
    let obj = Object {
        kind: Kind::OcspResponse,
        der: data.to_vec(),
        source: "fuzz".into(),
        index: 1,
    };
    let view = ObjectView::build(&obj, AT)
        .unwrap_or_else(|e| panic!("a response read_response accepts is not shown: {e:#}"));
    let _ = render_text::render(&view);
    let _ = render_text::short(&view);
    render_json::to_json(&view).expect("the view serialises");
});
