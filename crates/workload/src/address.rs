//! Workload API socket addresses: the agent's `--socket` takes a path or the
//! `SPIFFE_ENDPOINT_SOCKET` form `unix:///path`; a service's `--workload-api` takes only the
//! latter (the form every SPIFFE library uses, so a value can be copied between them).

use std::path::PathBuf;

/// Parses a socket address: an absolute path, or `unix://` followed by one
/// (`unix:///run/mtls-mesh/agent.sock`).
pub fn parse_socket_address(s: &str) -> Result<PathBuf, String> {
    let path = match s.strip_prefix("unix://") {
        Some(rest) => rest,
        None if s.contains("://") => {
            return Err(format!(
                "socket address {s:?} is not a Unix socket: give /path/to/agent.sock or \
                 unix:///path/to/agent.sock"
            ))
        }
        None => s,
    };
    absolute(s, path)
}

/// Parses a Workload API endpoint, `unix:///path` only (the `SPIFFE_ENDPOINT_SOCKET` form).
pub fn parse_endpoint(s: &str) -> Result<PathBuf, String> {
    let Some(path) = s.strip_prefix("unix://") else {
        return Err(format!(
            "{s:?} is not a Workload API endpoint: give unix:///path/to/agent.sock (TCP \
             endpoints are not supported)"
        ));
    };
    absolute(s, path)
}

fn absolute(s: &str, path: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "socket address {s:?} must name an absolute path (/path/to/agent.sock or \
             unix:///path/to/agent.sock)"
        ));
    }
    if path.contains('?') || path.contains('#') {
        return Err(format!(
            "socket address {s:?} has a query or fragment; give only the path"
        ));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_socket_address("unix:///run/a.sock").unwrap(),
            PathBuf::from("/run/a.sock")
        );
        assert_eq!(
            parse_socket_address("/run/a.sock").unwrap(),
            PathBuf::from("/run/a.sock")
        );
        for bad in [
            "run/a.sock",
            "unix://run/a.sock",
            "tcp://127.0.0.1:1",
            "unix:///a?b",
        ] {
            assert!(parse_socket_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_unix_uris_only() {
        assert_eq!(
            parse_endpoint("unix:///run/a.sock").unwrap(),
            PathBuf::from("/run/a.sock")
        );
        for bad in [
            "/run/a.sock",
            "unix://run/a.sock",
            "tcp://127.0.0.1:1",
            "unix:///a#b",
            "",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
