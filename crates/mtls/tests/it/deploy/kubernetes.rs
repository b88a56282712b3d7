//! `deploy/kubernetes/`: the CA StatefulSet and the sidecar example.
//!
//! * Against the Kubernetes API schemas, offline: the PyPI package `kubernetes-validate` (it
//!   bundles the schemas) in a throwaway venv, `--strict` (unknown fields fail). The test fails,
//!   it does not skip, when the package cannot be installed: CI has pip access.
//! * Field by field, what mtls-mesh depends on: every mtls-mesh container runs a program of the
//!   image with arguments its parser accepts (after Kubernetes' `$(VAR)` expansion); ports agree
//!   between the listen flags, `containerPort`s, probes and Services; probes hit `/healthz` or
//!   `/readyz` where the program serves them; the restricted security context; the join token
//!   comes from a Secret file; the CA's data directory lives on its PersistentVolume.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::common::{assert_accepted, deploy_dir, flag_value, port_of, read, workspace_programs};
use super::container::{image_programs, image_user};
use crate::programs;

/// The manifests shipped.
const MANIFESTS: &[&str] = &["ca.yaml", "sidecar.yaml"];

/// The version installed; it bundles the schemas of Kubernetes up to 1.37.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

fn manifest_paths() -> Vec<PathBuf> {
    let dir = deploy_dir().join("kubernetes");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            MANIFESTS.contains(&name.as_str()),
            "deploy/kubernetes/{name} is not checked: add it to MANIFESTS"
        );
    }
    MANIFESTS.iter().map(|m| dir.join(m)).collect()
}

#[test]
fn the_manifests_pass_the_kubernetes_schemas() {
    let venv_dir = tempfile::tempdir().unwrap();
    let venv = crate::venv::with_package(venv_dir.path(), KUBERNETES_VALIDATE);
    let validate = |paths: &[PathBuf]| {
        let mut cmd = Command::new(venv.join("bin/kubernetes-validate"));
        cmd.args(["--strict", "--quiet"]).args(paths);
        testkit::process::run("kubernetes-validate", cmd, Duration::from_secs(120))
    };
    let (status, _, output) = validate(&manifest_paths());
    assert!(
        status.success(),
        "kubernetes-validate --strict: {status}\n{output}"
    );

    // It can fail: a misspelt field of a probe is refused.
    let bad = venv_dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        read("kubernetes/ca.yaml").replace("periodSeconds:", "periodSecond:"),
    )
    .unwrap();
    let (status, _, output) = validate(&[bad]);
    assert!(
        !status.success() && output.contains("periodSecond"),
        "{output}"
    );
}

/// Every document of a manifest.
fn documents(name: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&read(&format!("kubernetes/{name}")))
        .unwrap_or_else(|e| panic!("deploy/kubernetes/{name}: {e}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"))
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// A container's port by name or number (`port:` of a probe, `targetPort:` of a Service).
fn container_port(ports: &[(String, u16)], port: &Value, what: &str) -> u16 {
    let found = match port {
        Value::String(name) => ports.iter().find(|(n, _)| n == name),
        Value::Number(n) => ports
            .iter()
            .find(|(_, p)| Some(u64::from(*p)) == n.as_u64()),
        _ => None,
    };
    found
        .unwrap_or_else(|| panic!("{what}: port {port} is none of the container's {ports:?}"))
        .1
}

/// Kubernetes' `$(VAR)` expansion of a container's arguments, from its `env` (values and
/// ConfigMap keys of the same file).
fn expand(arg: &str, env: &BTreeMap<String, String>, what: &str) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let (var, after) = rest[i + 2..].split_once(')').unwrap();
        let value = env
            .get(var)
            .unwrap_or_else(|| panic!("{what}: $({var}) is not in the container's env"));
        out.push_str(value);
        rest = after;
    }
    out.push_str(rest);
    out
}

#[test]
fn the_manifests_run_our_programs_with_consistent_ports_and_a_restricted_security_context() {
    let programs = workspace_programs();
    let in_image = image_programs();
    let (image_uid, image_gid) = image_user();
    let mut seen_programs: Vec<String> = Vec::new();

    for name in MANIFESTS {
        let docs = documents(name);
        let config_maps: BTreeMap<String, &Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ConfigMap")
            .map(|d| (str_of(&d["metadata"]["name"], name).to_string(), &d["data"]))
            .collect();
        // (pod labels, container ports) of every workload, for the Services.
        let mut pods: Vec<(&Value, Vec<(String, u16)>)> = Vec::new();

        for doc in docs
            .iter()
            .filter(|d| d["kind"] == "StatefulSet" || d["kind"] == "Deployment")
        {
            let workload = format!("{name} {} {}", doc["kind"], doc["metadata"]["name"]);
            let pod = &doc["spec"]["template"]["spec"];
            let pod_security = &pod["securityContext"];
            assert_eq!(
                pod_security["runAsNonRoot"], true,
                "{workload}: runAsNonRoot"
            );
            assert_eq!(
                pod_security["seccompProfile"]["type"], "RuntimeDefault",
                "{workload}: seccompProfile"
            );
            assert_eq!(pod["automountServiceAccountToken"], false, "{workload}");
            let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
            assert!(
                grace >= 15,
                "{workload}: terminationGracePeriodSeconds {grace} < drain 10 s + 5 s"
            );
            let volumes: BTreeMap<&str, &Value> = items(&pod["volumes"])
                .map(|v| (str_of(&v["name"], &workload), v))
                .collect();
            let claims: Vec<&str> = items(&doc["spec"]["volumeClaimTemplates"])
                .map(|c| str_of(&c["metadata"]["name"], &workload))
                .collect();
            let mut ports: Vec<(String, u16)> = Vec::new();

            for container in items(&pod["containers"]) {
                let what = format!("{workload} container {}", container["name"]);
                let security = &container["securityContext"];
                assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
                assert_eq!(
                    security["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{what}"
                );
                let container_ports: Vec<(String, u16)> = items(&container["ports"])
                    .map(|p| {
                        let port = u16::try_from(p["containerPort"].as_u64().unwrap()).unwrap();
                        (str_of(&p["name"], &what).to_string(), port)
                    })
                    .collect();
                ports.extend(container_ports.iter().cloned());

                if !str_of(&container["image"], &what).contains("/mtls-mesh:") {
                    continue;
                }
                // Ours: the image's user, a program of the image, arguments it accepts.
                assert_eq!(
                    pod_security["runAsUser"], image_uid,
                    "{what}: the image's USER"
                );
                assert_eq!(
                    pod_security["runAsGroup"], image_gid,
                    "{what}: the image's USER"
                );
                let command: Vec<&str> = items(&container["command"])
                    .map(|c| str_of(c, &what))
                    .collect();
                let [path] = command.as_slice() else {
                    panic!("{what}: command {command:?}")
                };
                let program = path
                    .strip_prefix("/usr/local/bin/")
                    .unwrap_or_else(|| panic!("{what}: {path} is not a program of the image"));
                assert!(
                    programs.iter().any(|p| p == program),
                    "{what}: {program} is no [[bin]]"
                );
                assert!(
                    in_image.iter().any(|p| p == program),
                    "{what}: the image lacks {program}"
                );
                seen_programs.push(program.to_string());

                let mut env: BTreeMap<String, String> = BTreeMap::new();
                for var in items(&container["env"]) {
                    let key = str_of(&var["name"], &what).to_string();
                    assert_ne!(
                        key, "MTLS_JOIN_TOKEN",
                        "{what}: a join token in the environment"
                    );
                    let value = if let Some(v) = var["value"].as_str() {
                        v.to_string()
                    } else {
                        let r = &var["valueFrom"]["configMapKeyRef"];
                        let map = config_maps
                            .get(str_of(&r["name"], &what))
                            .unwrap_or_else(|| {
                                panic!("{what}: {key} from a ConfigMap not in {name}")
                            });
                        str_of(&map[str_of(&r["key"], &what)], &what).to_string()
                    };
                    env.insert(key, value);
                }
                let args: Vec<String> = items(&container["args"])
                    .map(|a| expand(str_of(a, &what), &env, &what))
                    .collect();
                assert_accepted(&programs::by_name(program), &args, &what);

                // Every listener is a containerPort and every containerPort a listener.
                let listen = flag_value(&args, "--listen").map(port_of);
                let admin = flag_value(&args, "--admin-listen");
                if let Some(admin) = admin {
                    assert!(
                        admin.starts_with("127.")
                            || args.iter().any(|a| a == "--admin-allow-remote"),
                        "{what}: --admin-listen {admin} needs --admin-allow-remote"
                    );
                    assert!(
                        admin.starts_with("0.0.0.0:"),
                        "{what}: probes reach the pod IP, not {admin}"
                    );
                }
                let admin = admin.map(port_of);
                let listeners: Vec<u16> = listen.into_iter().chain(admin).collect();
                let mut declared: Vec<u16> = container_ports.iter().map(|(_, p)| *p).collect();
                declared.sort_unstable();
                let mut sorted = listeners.clone();
                sorted.sort_unstable();
                assert_eq!(
                    declared, sorted,
                    "{what}: containerPorts vs --listen/--admin-listen"
                );

                // Probes: /healthz or /readyz where the program serves them: the CA on its
                // HTTPS API (it has no admin listener), the others on --admin-listen.
                for kind in ["readinessProbe", "livenessProbe"] {
                    let probe = &container[kind];
                    assert!(probe.is_object(), "{what}: no {kind}");
                    let (port, http) = if probe["httpGet"].is_object() {
                        (&probe["httpGet"]["port"], Some(&probe["httpGet"]))
                    } else {
                        (&probe["tcpSocket"]["port"], None)
                    };
                    let port = container_port(&container_ports, port, &format!("{what} {kind}"));
                    let Some(http) = http else {
                        assert_eq!(
                            Some(port),
                            listen,
                            "{what} {kind}: tcpSocket on no listener"
                        );
                        continue;
                    };
                    let path = str_of(&http["path"], &what);
                    assert!(
                        ["/healthz", "/readyz"].contains(&path),
                        "{what} {kind}: {path}"
                    );
                    if program == "mtls-ca" {
                        assert_eq!(path, "/healthz", "{what} {kind}: mtls-ca serves /healthz");
                        assert_eq!(http["scheme"], "HTTPS", "{what} {kind}");
                        assert_eq!(Some(port), listen, "{what} {kind}");
                    } else {
                        assert!(
                            http["scheme"].is_null() || http["scheme"] == "HTTP",
                            "{what}"
                        );
                        assert_eq!(Some(port), admin, "{what} {kind}: not the admin listener");
                    }
                }

                // The join token: a file from a Secret volume, never an argument.
                assert!(
                    !args.iter().any(|a| a == "--join-token"),
                    "{what}: --join-token"
                );
                let mounts: Vec<(&str, &str)> = items(&container["volumeMounts"])
                    .map(|m| (str_of(&m["name"], &what), str_of(&m["mountPath"], &what)))
                    .collect();
                let mounted_at = |path: &str| -> Option<&str> {
                    mounts
                        .iter()
                        .filter(|(_, at)| Path::new(path).starts_with(at))
                        .max_by_key(|(_, at)| at.len())
                        .map(|(volume, _)| *volume)
                };
                if let Some(token) = flag_value(&args, "--join-token-file") {
                    let volume = mounted_at(token)
                        .unwrap_or_else(|| panic!("{what}: {token} is on no volume"));
                    assert!(
                        volumes[volume]["secret"].is_object(),
                        "{what}: the join token's volume {volume} is not a Secret"
                    );
                }
                if program == "mtls-ca" {
                    // The keys live on the PersistentVolume, below its root (docs/deploy.md).
                    let data_dir = flag_value(&args, "--data-dir").expect("--data-dir");
                    let volume = mounted_at(data_dir)
                        .unwrap_or_else(|| panic!("{what}: {data_dir} is on no volume"));
                    assert!(
                        claims.contains(&volume),
                        "{what}: {data_dir} is not on a volumeClaimTemplate"
                    );
                    assert!(
                        mounts
                            .iter()
                            .all(|(v, at)| *v != volume || Path::new(at) != Path::new(data_dir)),
                        "{what}: --data-dir is the volume's root, which the CA cannot tighten"
                    );
                    assert_eq!(pod_security["fsGroup"], image_gid, "{what}: fsGroup");
                }
            }
            pods.push((&doc["spec"]["template"]["metadata"]["labels"], ports));
        }

        // Services select a pod of the file and target its ports.
        for service in docs.iter().filter(|d| d["kind"] == "Service") {
            let what = format!("{name} Service {}", service["metadata"]["name"]);
            let selector = service["spec"]["selector"].as_object().unwrap();
            let (_, ports) = pods
                .iter()
                .find(|(labels, _)| selector.iter().all(|(k, v)| &labels[k] == v))
                .unwrap_or_else(|| panic!("{what}: selects no pod of {name}"));
            for port in items(&service["spec"]["ports"]) {
                container_port(ports, &port["targetPort"], &what);
            }
        }
        // A StatefulSet's governing Service is in the file, headless.
        for set in docs.iter().filter(|d| d["kind"] == "StatefulSet") {
            let service = &set["spec"]["serviceName"];
            assert!(
                docs.iter().any(|d| d["kind"] == "Service"
                    && &d["metadata"]["name"] == service
                    && d["spec"]["clusterIP"] == "None"),
                "{name}: no headless Service {service}"
            );
        }
    }
    seen_programs.sort();
    assert_eq!(
        seen_programs,
        ["mtls-ca", "mtls-proxy"],
        "the manifests' programs"
    );
}
