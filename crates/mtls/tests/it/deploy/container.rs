//! `deploy/container/Containerfile`, checked statically (nothing can pull a base image on this
//! machine, so it is not built here; docs/deploy.md says so): several stages, a runtime stage
//! that runs as a non-root numeric user and receives only programs of this workspace, built
//! with `--locked`, and no build tools in the runtime stage.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::{read, workspace_programs};

/// One instruction: the keyword (upper case) and its arguments, continuation lines joined.
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

/// One `FROM ... [AS name]` stage and its instructions.
pub struct Stage {
    pub image: String,
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// The Containerfile's stages.
pub fn stages() -> Vec<Stage> {
    let text = read("container/Containerfile");
    let mut logical: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.is_empty(),
        "Containerfile ends inside a continued line"
    );

    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.split_whitespace().collect::<Vec<_>>().join(" ");
        if keyword == "FROM" {
            let words: Vec<&str> = args.split(' ').collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                _ => panic!("Containerfile: FROM {args}: expected IMAGE [AS NAME]"),
            };
            stages.push(Stage {
                image: words[0].to_string(),
                name,
                instructions: Vec::new(),
            });
            continue;
        }
        let stage = stages
            .last_mut()
            .unwrap_or_else(|| panic!("Containerfile: {keyword} before the first FROM"));
        stage.instructions.push(Instruction { keyword, args });
    }
    stages
}

/// The runtime stage's `USER uid:gid`, numeric.
pub fn image_user() -> (u32, u32) {
    let stages = stages();
    let runtime = stages.last().unwrap();
    let users: Vec<&Instruction> = runtime
        .instructions
        .iter()
        .filter(|i| i.keyword == "USER")
        .collect();
    let [user] = users.as_slice() else {
        panic!("the runtime stage sets USER {} times", users.len())
    };
    let (uid, gid) = user
        .args
        .split_once(':')
        .unwrap_or((&user.args, &user.args));
    let number = |s: &str| -> u32 {
        s.parse().unwrap_or_else(|_| {
            panic!(
                "USER {}: not numeric (runAsNonRoot needs a number)",
                user.args
            )
        })
    };
    (number(uid), number(gid))
}

/// The programs the runtime stage copies from the build stage, by file name.
pub fn image_programs() -> Vec<String> {
    let stages = stages();
    let runtime = stages.last().unwrap();
    runtime
        .instructions
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| {
            let words: Vec<&str> = i.args.split(' ').collect();
            assert!(
                words[0].starts_with("--from="),
                "the runtime stage copies {} from outside a build stage",
                i.args
            );
            let source = words[1];
            let name = source.rsplit('/').next().unwrap();
            assert!(
                source.contains("/target/release/"),
                "COPY {}: not a release build output",
                i.args
            );
            assert_eq!(words.last().unwrap(), &format!("/usr/local/bin/{name}"));
            name.to_string()
        })
        .collect()
}

#[test]
fn the_containerfile_builds_locked_in_one_stage_and_runs_only_our_programs_as_non_root() {
    let stages = stages();
    assert!(
        stages.len() >= 2,
        "not a multi-stage build: {} stage(s)",
        stages.len()
    );
    let (build, runtime) = (&stages[0], stages.last().unwrap());
    let build_name = build
        .name
        .as_deref()
        .expect("the build stage is named (FROM ... AS build)");

    // The build: cargo with --locked, for programs that exist.
    let cargo: Vec<&Instruction> = build
        .instructions
        .iter()
        .filter(|i| i.keyword == "RUN" && i.args.contains("cargo "))
        .collect();
    assert!(!cargo.is_empty(), "the build stage runs no cargo");
    let programs = workspace_programs();
    let mut built: Vec<String> = Vec::new();
    for run in &cargo {
        assert!(
            run.args.contains("--locked"),
            "RUN {}: without --locked",
            run.args
        );
        assert!(
            run.args.contains("--release"),
            "RUN {}: not a release build",
            run.args
        );
        let words: Vec<&str> = run.args.split(' ').collect();
        for pair in words.windows(2) {
            if pair[0] == "--bin" {
                built.push(pair[1].to_string());
            }
        }
    }

    // The runtime: distroless or Debian slim, only programs, numeric non-root user.
    assert!(
        runtime.image.starts_with("gcr.io/distroless/")
            || runtime.image.contains("debian") && runtime.image.contains("slim"),
        "runtime image {} is neither distroless nor Debian slim",
        runtime.image
    );
    let copied = image_programs();
    assert!(!copied.is_empty(), "the runtime stage copies no program");
    for name in &copied {
        assert!(
            programs.contains(name),
            "{name} is not a [[bin]] of crates/mtls"
        );
        assert!(
            built.contains(name),
            "{name} is copied but not built (--bin {name})"
        );
    }
    for i in &runtime.instructions {
        if i.keyword == "COPY" {
            assert!(
                i.args.starts_with(&format!("--from={build_name} ")),
                "COPY {}",
                i.args
            );
        }
        assert!(
            !(i.keyword == "RUN" && (i.args.contains("apt") || i.args.contains("cargo"))),
            "the runtime stage installs or builds: RUN {}",
            i.args
        );
    }
    for program in ["mtls-ca", "mtls-server", "mtls-proxy", "mtls-agent"] {
        assert!(
            copied.iter().any(|c| c == program),
            "the image lacks {program}"
        );
    }
    let (uid, gid) = image_user();
    assert!(uid != 0 && gid != 0, "USER {uid}:{gid} is root");
}
