//! Random bytes through the real `mtls-inspect` program: an exit code of 0, 1 or 2, never a panic.
//! (The in-process property tests of every parser and renderer: crates/inspect/tests/it/fuzz.rs.)

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::common;

#[test]
fn random_bytes_through_the_binary() {
    // A few cases through the real binary too: exit 2 with a message, never a panic.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 1..512), |bytes| {
            for args in [
                &["show", "-"][..],
                &["lint", "-"][..],
                &["verify", "-", "--roots", "-"][..],
            ] {
                let r = common::run_stdin(args, &bytes);
                prop_assert!(r.code == 2 || r.code == 1 || r.code == 0, "{args:?}");
                prop_assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
            }
            Ok(())
        })
        .unwrap();
}
