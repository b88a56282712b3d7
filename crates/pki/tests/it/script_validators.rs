//! The OpenSSL scripts validate SPIFFE IDs and DNS names in bash (scripts/lib/common.sh), so
//! they work with OpenSSL alone; `pki` validates them in Rust (`SpiffeId::parse`,
//! `rfc5280::dns_name_problem`, which the CA uses). Both run on the same table here and must
//! give the same verdict for every entry, in the C locale and in UTF-8.

use std::path::Path;
use std::process::Command;

/// Runs `validate_KIND` of scripts/lib/common.sh on each input (in a subshell each, since a
/// refusal exits) and returns true for each accepted one.
fn bash_verdicts(kind: &str, inputs: &[String], locale: &str) -> Vec<bool> {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lib/common.sh");
    let script = r#"
        . "$1"; kind=$2; shift 2
        for x in "$@"; do
            if ( "validate_$kind" "$x" ) >/dev/null 2>&1; then echo ok; else echo refused; fi
        done
    "#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(&lib)
        .arg(kind)
        .args(inputs)
        .env("LC_ALL", locale)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<bool> = String::from_utf8(out.stdout)
        .expect("ok/refused lines")
        .lines()
        .map(|l| l == "ok")
        .collect();
    assert_eq!(verdicts.len(), inputs.len(), "one verdict per input");
    verdicts
}

fn compare(kind: &str, table: &[String], rust: impl Fn(&str) -> bool) {
    for locale in ["C", "C.UTF-8"] {
        let bash = bash_verdicts(kind, table, locale);
        let disagreements: Vec<String> = table
            .iter()
            .zip(&bash)
            .filter(|(input, bash)| rust(input) != **bash)
            .map(|(input, bash)| {
                let short: String = input.chars().take(80).collect();
                format!(
                    "{short:?} ({} chars): bash {bash}, Rust {}",
                    input.len(),
                    rust(input)
                )
            })
            .collect();
        assert!(
            disagreements.is_empty(),
            "validate_{kind} and the Rust validator disagree (LC_ALL={locale}):\n{}",
            disagreements.join("\n")
        );
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn spiffe_ids_get_the_same_verdict_in_bash_and_rust() {
    let mut table = strings(&[
        // accepted
        "spiffe://mesh.local/service/api",
        "spiffe://a/b",
        "spiffe://td-1_x.y/a.b/c-d/e_f",
        "spiffe://mesh.local/Upper/Case_Path",
        "spiffe://192.168.0.1/x",
        "spiffe://mesh.local/..a/b..",
        "spiffe://mesh..local/a",
        "spiffe://mesh.local/ca",
        // refused
        "",
        "spiffe://",
        "spiffe:///a",
        "spiffe://mesh.local",
        "spiffe://mesh.local/",
        "SPIFFE://mesh.local/a",
        "Spiffe://mesh.local/a",
        "spiffe:/mesh.local/a",
        "http://mesh.local/a",
        "mesh.local/a",
        "spiffe://Mesh.local/a",
        "spiffe://mesh.local:8080/a",
        "spiffe://user@mesh.local/a",
        "spiffe://mesh.local/a//b",
        "spiffe://mesh.local//a",
        "spiffe://mesh.local/a/",
        "spiffe://mesh.local/./a",
        "spiffe://mesh.local/a/..",
        "spiffe://mesh.local/a?x=1",
        "spiffe://mesh.local/a#frag",
        "spiffe://mesh.local/a%20b",
        "spiffe://mes%41h/a",
        "spiffe://mesh.local/a b",
        "spiffe://mesh local/a",
        "spiffe://mesh.local/a\nb",
        "spiffe://mesh.local/é",
        "spiffe://méh.local/a",
        "spiffe://mesh.local/a+b",
        "spiffe://mesh.local/a:b",
        "spiffe://mesh.local/~a",
        "spiffe://mesh.local/\\a",
        "spiffe://mesh!/a",
        " spiffe://mesh.local/a",
        "spiffe://mesh.local/a ",
    ]);
    // Length limits: the whole ID (2048 bytes) and the trust domain (255 bytes).
    let path_to = |total: usize| {
        let head = "spiffe://mesh.local/";
        format!("{head}{}", "a".repeat(total - head.len()))
    };
    table.push(path_to(2048));
    table.push(path_to(2049));
    table.push(format!("spiffe://{}/a", "t".repeat(255)));
    table.push(format!("spiffe://{}/a", "t".repeat(256)));
    compare("spiffe_id", &table, |id| pki::SpiffeId::parse(id).is_ok());
}

#[test]
fn dns_names_get_the_same_verdict_in_bash_and_rust() {
    let label = |n: usize| "a".repeat(n);
    let mut table = strings(&[
        // accepted
        "localhost",
        "a",
        "a.example",
        "x-1.example.org",
        "*.example.org",
        "*.a",
        "A.B",
        "1.2.3.4",
        "0a-b.c",
        "xn--bcher-kva.example",
        // refused
        "",
        "*",
        "*.",
        ".",
        "a..b",
        "example.",
        ".example",
        "-a.example",
        "a-.example",
        "a.-b",
        "a_b.example",
        "a b",
        "é.example",
        "a.*.example",
        "**.example",
        "*a.example",
        "a*.example",
        "*.*.example",
        "a.example\n",
        "a/b",
        "a:443",
        "[::1]",
    ]);
    table.push(label(63));
    table.push(label(64));
    table.push(format!("{}.example", label(63)));
    table.push(format!("{}.example", label(64)));
    // 253 characters in all, then 254.
    let long = |total: usize| {
        let mut name = [label(63), label(63), label(63)].join(".");
        let rest = total - name.len() - 1;
        name.push('.');
        name.push_str(&label(rest));
        name
    };
    table.push(long(253));
    table.push(long(254));
    table.push(format!("*.{}", &long(251)));
    table.push(format!("*.{}", &long(252)));
    compare("dns", &table, |name| {
        pki::rfc5280::dns_name_problem(name).is_none()
    });
}
