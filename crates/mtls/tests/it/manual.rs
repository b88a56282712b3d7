//! `PROGRAM completions SHELL` and `PROGRAM man [--dir DIR]` (issue 16, item 6) for every
//! program: the bash script completes the program's own subcommands and flags, and each page is
//! a roff page that `man` renders with the program's name and options.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::Command;

use crate::programs;

/// Each program with words its completion script and page must hold (subcommands, flags).
fn programs_and_words() -> Vec<(&'static str, PathBuf, &'static [&'static str])> {
    vec![
        (
            "mtls-ca",
            programs::ca(),
            &["token", "revoke", "audit", "--data-dir", "--admin-id"],
        ),
        (
            "mtls-server",
            programs::server(),
            &["--listen", "--admin-allow-remote", "--ca-url"],
        ),
        (
            "mtls-client",
            programs::client(),
            &["--server", "--server-id", "--ca-url"],
        ),
        ("mtls-inspect", programs::inspect(), &["lint", "verify"]),
        (
            "mtls-proxy",
            programs::proxy(),
            &["inbound", "outbound", "check"],
        ),
        ("mtls-agent", programs::agent(), &["serve", "write"]),
        ("mtls-bench", programs::bench(), &["--threads", "--mode"]),
    ]
}

fn run(program: &PathBuf, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(program).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_program_completes_its_own_subcommands_and_flags() {
    for (name, program, words) in programs_and_words() {
        let (code, script, stderr) = run(&program, &["completions", "bash"]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert!(
            script.contains(&format!("complete -F _{}", name.replace('-', "__")))
                && script.contains(name),
            "{name}: not a bash completion script for it:\n{script}"
        );
        for w in words.iter().chain(&["completions", "man", "--help"]) {
            assert!(script.contains(w), "{name}: the script lacks {w:?}");
        }
        let (code, zsh, stderr) = run(&program, &["completions", "zsh"]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert!(
            zsh.starts_with(&format!("#compdef {name}")),
            "{name}: {zsh}"
        );
        let (code, _, stderr) = run(&program, &["completions", "tcsh"]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains("invalid value 'tcsh'"), "{name}: {stderr}");
    }
}

#[test]
fn every_program_has_a_man_page_that_renders() {
    let dir = tempfile::tempdir().unwrap();
    for (name, program, words) in programs_and_words() {
        let (code, page, stderr) = run(&program, &["man"]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        let header = page
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_else(|| panic!("{name}: no .TH header:\n{page}"));
        assert!(
            header.starts_with(&format!(".TH {name} 1 ")),
            "{name}: {header}"
        );
        // Rendered by man(1) itself: the name section and every word, as a reader sees them.
        let file = dir.path().join(format!("{name}.1"));
        std::fs::write(&file, &page).unwrap();
        let out = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "200")
            .output()
            .expect("man(1) runs (.ci/run installs man-db)");
        let text = String::from_utf8_lossy(&out.stdout).replace(['\u{2010}', '\u{2212}'], "-");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("NAME") && text.contains(name),
            "{name}:\n{text}"
        );
        for w in words {
            assert!(
                text.contains(w),
                "{name}: the rendered page lacks {w:?}:\n{text}"
            );
        }
    }
    // --dir: one page per command, listed on stdout; a missing directory is an error.
    let pages = dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    let (code, listed, stderr) = run(&programs::ca(), &["man", "--dir", pages.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    for page in ["mtls-ca.1", "mtls-ca-token.1", "mtls-ca-audit.1"] {
        assert!(pages.join(page).is_file(), "{page} not written: {listed}");
        assert!(listed.contains(page), "{listed}");
    }
    let (code, _, stderr) = run(&programs::ca(), &["man", "--dir", "/nonexistent/pages"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("writing into /nonexistent/pages"),
        "{stderr}"
    );
}
