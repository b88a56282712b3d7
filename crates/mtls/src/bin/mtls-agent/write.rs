//! `mtls-agent write`: a Workload API client that keeps one identity's files in a directory
//! (`mtls_agent::files` has the layout and how readers open it), then runs the hook, once per
//! new version.

use anyhow::Context;
use mtls_agent::client::WorkloadClient;
use mtls_agent::files::{FileWriter, SvidFiles};
use mtls_agent::proto::X509svidResponse;

use crate::args::WriteArgs;
use crate::Failure;

pub async fn run(a: WriteArgs) -> Result<(), Failure> {
    mtls::logging::init(mtls::logging::LogFormat::Text, "info");
    let mut writer = FileWriter::new(&a.dir).map_err(|e| Failure::Config(e.to_string()))?;
    let mut client = WorkloadClient::connect(&a.socket)
        .await
        .map_err(|e| Failure::Run(e.into()))?;
    let mut stream = client
        .x509_svids()
        .await
        .map_err(|e| Failure::Run(e.into()))?;
    let wanted = a.spiffe_id.to_string();
    let mut last: Option<SvidFiles> = None;
    loop {
        let message = tokio::select! {
            m = stream.message() => m.context("the Workload API stream").map_err(Failure::Run)?,
            _ = mtls::shutdown::signal() => return Ok(()),
        };
        let Some(message) = message else {
            return Err(Failure::Run(anyhow::anyhow!(
                "the agent closed the Workload API stream"
            )));
        };
        let files = files_for(&message, &wanted).map_err(Failure::Run)?;
        if last.as_ref() == Some(&files) {
            continue;
        }
        let version = writer.write(&files).map_err(|e| Failure::Run(e.into()))?;
        println!(
            "[WRITE] {} written to {} ({})",
            wanted,
            a.dir.display(),
            version.file_name().unwrap_or_default().to_string_lossy()
        );
        last = Some(files);
        if let Some(cmd) = &a.on_rotate {
            run_hook(cmd).await;
        }
        if a.once {
            return Ok(());
        }
    }
}

/// The files of `wanted` from one stream message.
fn files_for(message: &X509svidResponse, wanted: &str) -> anyhow::Result<SvidFiles> {
    let Some(svid) = message.svids.iter().find(|s| s.spiffe_id == wanted) else {
        let have: Vec<&str> = message.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
        anyhow::bail!(
            "this process is not entitled to {wanted}; the agent offers it: {} (check the \
             registration entries' selectors)",
            have.join(", ")
        );
    };
    let pem_certs = |der: &[u8], what: &str| -> anyhow::Result<String> {
        Ok(mtls_agent::files::split_der_certificates(der)
            .map_err(|e| anyhow::anyhow!("the {what} from the agent: {e}"))?
            .iter()
            .map(|c| pki::pem::encode("CERTIFICATE", c))
            .collect())
    };
    Ok(SvidFiles {
        svid_pem: pem_certs(&svid.x509_svid, "SVID")?,
        key_pem: pki::pem::encode("PRIVATE KEY", &svid.x509_svid_key),
        bundle_pem: pem_certs(&svid.bundle, "bundle")?,
        crl_pem: message
            .crl
            .iter()
            .map(|c| pki::pem::encode("X509 CRL", c))
            .collect(),
    })
}

/// Runs the hook with `sh -c` and waits for it; a failure is reported, not fatal (the files
/// are in place; the next rotation runs it again).
async fn run_hook(cmd: &str) {
    match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .await
    {
        Ok(status) if status.success() => println!("[WRITE] on-rotate hook ran: {status}"),
        Ok(status) => eprintln!("mtls-agent: warning: on-rotate hook {cmd:?} failed: {status}"),
        Err(e) => eprintln!("mtls-agent: warning: on-rotate hook {cmd:?} could not run: {e}"),
    }
}
