//! The one shutdown signal of the long-running programs (`mtls-ca`, `mtls-server`).

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM. If the SIGTERM handler cannot be
/// installed, Ctrl-C alone still stops the program.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
