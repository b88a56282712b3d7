//! `mtls-ca init --offline-root` and `mtls-ca intermediate csr|sign|install|renew`: the
//! two-tier CA and the ceremony that renews its intermediate (docs/operations.md); and the
//! offline ceremony of its root rotation (`root rotate --root-key …`), which needs no data
//! directory either.

use std::path::Path;

use anyhow::Context;
use mtls_ca::datadir::DataDir;
use mtls_ca::datadir_hierarchy::{sign_intermediate, OfflineRoot};
use mtls_ca::datadir_token::intermediate_token_key;
use mtls_ca::pkcs11::{KeyUri, TokenAccess};
use mtls_ca::root_rotation_two_tier;
use mtls_ca::store::StoreLocation;
use pki::clock::{Clock, SystemClock};
use pki::sealed_key::Passphrase;
use pki::timefmt::rfc3339;

use crate::cli::{CeremonyArgs, Command, IntermediateAction, PassphraseArgs, RootAction};

/// Runs `cmd` when it is `init` or `intermediate`; gives it back otherwise.
pub fn run(
    dir: &DataDir,
    location: Option<&StoreLocation>,
    token_access: Option<&TokenAccess>,
    cmd: Command,
) -> anyhow::Result<Option<Command>> {
    let now = SystemClock.now();
    match cmd {
        Command::Init {
            offline_root,
            key,
            jwt_object,
            passphrase,
            trust_domain,
            intermediate_lifetime,
        } => {
            let sqlite = !matches!(location, Some(StoreLocation::Postgres(_)));
            let Some(offline_root) = offline_root else {
                // clap requires --offline-root or --key.
                let uri = key.context("init needs --offline-root or --key")?;
                let made =
                    dir.init_token_root(&uri, jwt_object.as_deref(), &trust_domain, sqlite, now)?;
                eprintln!(
                    "created a single-tier CA for {trust_domain} whose root key {} the token \
                     ({uri}); {} records it, no key file is written; JWT-SVIDs are signed by \
                     {} in the same token ({}). Start the CA with the same --pkcs11-module and \
                     --pkcs11-pin-file",
                    if made.generated {
                        "was generated in"
                    } else {
                        "is the existing key in"
                    },
                    dir.root_token_ref().display(),
                    made.jwt_key,
                    dir.jwt_token_ref().display()
                );
                println!("root fingerprint (SHA-256): {}", made.root_fingerprint);
                return Ok(None);
            };
            let pass = read_passphrase(&passphrase, true)?;
            dir.ensure()?;
            let offline = OfflineRoot::new(&offline_root);
            let open_token_key = |uri: &KeyUri| {
                let access = token_access
                    .context("--key pkcs11:… needs --pkcs11-module and --pkcs11-pin-file")?;
                intermediate_token_key(access, uri)
            };
            let token_key = key.as_ref().map(|uri| move || open_token_key(uri));
            let made = dir.init_two_tier_with(
                &offline,
                &pass,
                &trust_domain,
                intermediate_lifetime,
                sqlite,
                now,
                token_key
                    .as_ref()
                    .map(|f| f as &dyn Fn() -> anyhow::Result<_>),
            )?;
            let where_key = match &key {
                Some(uri) => {
                    let (jwt, _) = dir.token_jwt_key(uri, jwt_object.as_deref())?;
                    format!(
                        "its key in the token ({uri}); JWT-SVIDs are signed by {} in the same \
                         token",
                        jwt.device_name().unwrap_or_default()
                    )
                }
                None => "its key in the data directory".to_string(),
            };
            eprintln!(
                "created a two-tier CA for {trust_domain}: the root key is sealed in {} (keep \
                 it and the passphrase offline; the CA never reads them), the intermediate in \
                 {} is valid until {}, {where_key}",
                offline.key().display(),
                dir.intermediate_cert().display(),
                rfc3339(made.intermediate_not_after)
            );
            println!("root fingerprint (SHA-256): {}", made.root_fingerprint);
        }
        Command::Intermediate { action } => intermediate(dir, location, action, now)?,
        Command::Root {
            action: RootAction::Rotate { ceremony, .. },
        } if ceremony.root_key.is_some() => rotation_ceremony(ceremony, now)?,
        other => return Ok(Some(other)),
    }
    Ok(None)
}

/// `mtls-ca root rotate --root-key OLD …`: the offline ceremony of a two-tier CA's root
/// rotation (`mtls_ca::root_rotation_two_tier::ceremony`), writing the public file `--out`.
fn rotation_ceremony(args: CeremonyArgs, now: time::OffsetDateTime) -> anyhow::Result<()> {
    // clap requires these with --root-key.
    let (Some(root_key), Some(new_dir), Some(csr), Some(out)) =
        (args.root_key, args.new_offline_root, args.csr, args.out)
    else {
        anyhow::bail!("--root-key needs --new-offline-root, --csr and --out");
    };
    if out.try_exists()? {
        anyhow::bail!(
            "--out {} exists; give a new file (it is never overwritten)",
            out.display()
        );
    }
    let csr_pem = pki::files::read(&csr).with_context(|| format!("--csr {}", csr.display()))?;
    let old = open_root(&root_key, &args.passphrase)?;
    let new_pass = read_passphrase(
        &PassphraseArgs {
            passphrase_file: args.new_passphrase_file,
        },
        true,
    )
    .context("the new root's passphrase")?;
    let made = root_rotation_two_tier::ceremony(
        &old,
        &OfflineRoot::new(&new_dir),
        &new_pass,
        &csr_pem,
        args.lifetime,
        now,
    )
    .with_context(|| format!("--csr {}", csr.display()))?;
    pki::files::write_atomic(&out, made.file.as_bytes(), pki::files::PUBLIC_MODE)?;
    eprintln!(
        "made the new root {} in {} (its key sealed with the new passphrase), the \
         cross-certificates both ways with the old root {} and the intermediate certified by \
         the new root; {} holds them (certificates only). Next, on the CA host: `mtls-ca root \
         rotate --from {}`",
        made.new_fingerprint,
        new_dir.display(),
        old.fingerprint(),
        out.display(),
        out.display()
    );
    println!("new root fingerprint (SHA-256): {}", made.new_fingerprint);
    Ok(())
}

fn intermediate(
    dir: &DataDir,
    location: Option<&StoreLocation>,
    action: IntermediateAction,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    // The store's root rotation state says which root the intermediate is certified by.
    let store = || dir.open_existing(location);
    match action {
        IntermediateAction::Csr => print!("{}", dir.intermediate_csr(store()?.as_ref())?),
        IntermediateAction::Sign {
            root_key,
            csr,
            passphrase,
            lifetime,
        } => {
            let root = open_root(&root_key, &passphrase)?;
            let csr_pem =
                pki::files::read(&csr).with_context(|| format!("--csr {}", csr.display()))?;
            let (cert, td) = sign_intermediate(&root, &csr_pem, lifetime, now)
                .with_context(|| format!("--csr {}", csr.display()))?;
            eprintln!(
                "signed an intermediate for trust domain {td} with the root {}",
                root.fingerprint()
            );
            print!("{cert}");
        }
        IntermediateAction::Install { cert } => {
            let pem =
                pki::files::read(&cert).with_context(|| format!("--cert {}", cert.display()))?;
            let (old, new) = dir
                .install_intermediate(store()?.as_ref(), &pem, now)
                .with_context(|| format!("--cert {}", cert.display()))?;
            report_installed(dir, old, new);
        }
        IntermediateAction::Renew {
            root_key,
            passphrase,
            lifetime,
        } => {
            let root = open_root(&root_key, &passphrase)?;
            let store = store()?;
            let csr = dir.intermediate_csr(store.as_ref())?;
            let (cert, _) = sign_intermediate(&root, csr.as_bytes(), lifetime, now)?;
            let (old, new) = dir.install_intermediate(store.as_ref(), cert.as_bytes(), now)?;
            report_installed(dir, old, new);
        }
    }
    Ok(())
}

fn report_installed(dir: &DataDir, old: time::OffsetDateTime, new: time::OffsetDateTime) {
    eprintln!(
        "installed the renewed intermediate in {} (valid until {}, was {}); a running CA takes it \
         up within a second (copy the file to each other replica: install it there with \
         `install` or copy + `mv`, so it is never read half-written)",
        dir.intermediate_cert().display(),
        rfc3339(new),
        rfc3339(old)
    );
}

fn open_root(dir: &Path, passphrase: &PassphraseArgs) -> anyhow::Result<pki::CaMaterial> {
    let pass = read_passphrase(passphrase, false)?;
    OfflineRoot::new(dir)
        .open(&pass)
        .with_context(|| format!("--root-key {}", dir.display()))
}

/// The passphrase from `--passphrase-file`, else asked on the terminal (twice when `confirm`).
fn read_passphrase(args: &PassphraseArgs, confirm: bool) -> anyhow::Result<Passphrase> {
    let bytes = match &args.passphrase_file {
        Some(path) => pki::files::read(path)
            .with_context(|| format!("--passphrase-file {}", path.display()))?,
        None => {
            let ask = |prompt: &str| {
                rpassword::prompt_password(prompt).context(
                    "no --passphrase-file was given and there is no terminal to ask for the \
                     passphrase on",
                )
            };
            let first = ask("passphrase of the root key: ")?;
            if confirm && ask("the same passphrase again: ")? != first {
                anyhow::bail!("the two passphrases differ; nothing was created");
            }
            first.into_bytes()
        }
    };
    Passphrase::new(bytes).map_err(|e| match &args.passphrase_file {
        Some(path) => anyhow::anyhow!("--passphrase-file {}: {e}", path.display()),
        None => anyhow::anyhow!("{e}"),
    })
}
