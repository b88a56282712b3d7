//! `scripts/bench-agent.sh --smoke` runs end to end against this build (a real mtls-ca, entries
//! made with `mtls-ca entry create --from-file`, a real mtls-agent minting them, mtls-bench
//! --mode workload-fetch), so the agent benchmark cannot rot. No timing is asserted: figures
//! live in docs/performance.md.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

#[test]
fn bench_agent_smoke_run_mints_every_entry_and_fetches_with_zero_errors() {
    let stdout = super::smoke_script("bench-agent.sh", &[]);
    // | what | figure | target |
    let figure = |what: &str| -> String {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {what}")))
            .unwrap_or_else(|| panic!("no row {what:?}: {stdout}"));
        row.split('|').nth(2).unwrap().trim().to_string()
    };
    assert!(figure("entries created").starts_with("20 in "), "{stdout}");
    assert!(
        figure("SVIDs minted per second").ends_with("(0 failed)"),
        "{stdout}"
    );
    assert_eq!(figure("fetch errors"), "0", "{stdout}");
    let fetches: f64 = figure("fetches per second").parse().unwrap();
    assert!(fetches > 0.0, "{stdout}");
    assert!(
        figure("agent RSS, 20 entries").ends_with(" MiB"),
        "{stdout}"
    );
}
