//! Starting a proxy in two steps, so nothing reaches the CA for a configuration that cannot
//! run: [`Proxy::bind`] checks the configuration, loads the policy file and binds every
//! listener (a taken port fails here); only then does the program start the mesh (redeeming a
//! join token) and call [`Proxy::serve`], which runs the listeners until shutdown and drains
//! them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh::server::admin;
use mesh::{Mesh, MeshConnector};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wire::tls::{ALPN_HTTP, ALPN_NONE};

use crate::config::{Access, InboundConfig, ProxyConfig, RouteConfig};
use crate::error::{ConfigError, ProxyError};
use crate::inbound::{HttpInbound, InboundIdentify, L4};
use crate::metrics::ProxyMetrics;
use crate::outbound::Route;
use crate::policy::{Policy, PolicyHandle};

/// How often a policy file is checked for changes.
pub const POLICY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A checked configuration with its listeners bound.
pub struct Proxy {
    config: ProxyConfig,
    inbound: Option<(InboundConfig, TcpListener, Arc<PolicyHandle>)>,
    routes: Vec<(RouteConfig, TcpListener)>,
    admin: Option<TcpListener>,
}

fn bind_error(
    origin: &crate::config::Origin,
    addr: SocketAddr,
    error: std::io::Error,
) -> ConfigError {
    ConfigError::Bind {
        origin: origin.clone(),
        addr,
        error,
    }
}

/// The policy of the inbound side, checked against its mode.
pub(crate) fn policy_handle(inbound: &InboundConfig) -> Result<Arc<PolicyHandle>, ConfigError> {
    Ok(match &inbound.access {
        Access::Everyone => PolicyHandle::fixed(Policy::everyone(), inbound.http),
        Access::AllowIds(p) => PolicyHandle::fixed(p.value.clone(), inbound.http),
        Access::PolicyFile(file) => {
            PolicyHandle::from_file(&file.value, inbound.http).map_err(|message| {
                ConfigError::Invalid {
                    origin: file.origin.clone(),
                    message,
                }
            })?
        }
    })
}

impl Proxy {
    /// Checks `config` whole ([`ProxyConfig::validate`], the policy file) and binds every
    /// listener; nothing else is touched.
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, ConfigError> {
        config.validate()?;
        let inbound = match &config.inbound {
            Some(i) => {
                let policy = policy_handle(i)?;
                let tcp = TcpListener::bind(i.listen.value)
                    .await
                    .map_err(|e| bind_error(&i.listen.origin, i.listen.value, e))?;
                Some((i.clone(), tcp, policy))
            }
            None => None,
        };
        let mut routes = Vec::new();
        for r in &config.routes {
            let tcp = TcpListener::bind(r.listen.value)
                .await
                .map_err(|e| bind_error(&r.listen.origin, r.listen.value, e))?;
            routes.push((r.clone(), tcp));
        }
        let admin = match &config.admin_listen {
            Some(a) => Some(
                TcpListener::bind(a.value)
                    .await
                    .map_err(|e| bind_error(&a.origin, a.value, e))?,
            ),
            None => None,
        };
        Ok(Proxy {
            config,
            inbound,
            routes,
            admin,
        })
    }

    /// The inbound listener's address (the real port when 0 was asked).
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound
            .as_ref()
            .and_then(|(_, t, _)| t.local_addr().ok())
    }

    /// Each route's listener address, the remote address and SPIFFE ID, in order.
    pub fn route_addrs(&self) -> Vec<(SocketAddr, &RouteConfig)> {
        self.routes
            .iter()
            .filter_map(|(r, t)| t.local_addr().ok().map(|a| (a, r)))
            .collect()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|t| t.local_addr().ok())
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Serves every listener with `mesh`'s credentials until `shutdown` resolves, then drains
    /// them all (open connections get the drain time) and shuts the mesh down.
    pub async fn serve(
        self,
        mesh: Mesh,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ProxyError> {
        let Proxy {
            config,
            inbound,
            routes,
            admin,
        } = self;
        let mesh = Arc::new(mesh);
        let metrics = Arc::new(ProxyMetrics::default());
        let limits = &config.limits;
        let (stop, stopped) = watch::channel(false);
        let stop_signal = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut servers = JoinSet::new();
        let mut background = JoinSet::new();

        if let Some((inbound, tcp, policy)) = inbound {
            let listen = tcp.local_addr().map_err(|e| ProxyError::Io {
                what: "reading the inbound listener's address".into(),
                error: e,
            })?;
            if policy.file().is_some() {
                background.spawn(policy.clone().watch(POLICY_CHECK_INTERVAL, metrics.clone()));
            }
            // Callers of federated trust domains get through the handshake only when the policy
            // names them, and the policy in force decides (reloads included). Weak: the policy
            // handle must not keep the mesh alive past the shutdown below.
            let federation_mesh = Arc::downgrade(&mesh);
            policy.on_change(move |p| {
                if let Some(mesh) = federation_mesh.upgrade() {
                    mesh.accept_federated_callers(&p.named_ids());
                }
            });
            let signal = stop_signal();
            if inbound.http {
                let app = Arc::new(HttpInbound::new(
                    mesh.clone(),
                    policy,
                    metrics.clone(),
                    listen,
                    inbound.to.value.clone(),
                    limits.connect_timeout,
                ));
                let tls = Arc::new(mesh.server_config(ALPN_HTTP)?);
                let (inbound_limits, counters) = (limits.inbound(), mesh.connection_counters());
                servers.spawn(async move {
                    wire::http::serve(tcp, tls, inbound_limits, counters, app, signal).await;
                });
            } else {
                let listener = wire::Listener {
                    tcp,
                    tls: Arc::new(mesh.server_config(ALPN_NONE)?),
                    limits: limits.inbound(),
                    counters: mesh.connection_counters(),
                    identify: Arc::new(InboundIdentify {
                        mesh: mesh.identify(),
                        policy: policy.clone(),
                        metrics: metrics.clone(),
                        listener: listen,
                    }),
                    protocol: Arc::new(L4::new(
                        mesh.clone(),
                        policy,
                        listen,
                        inbound.to.value.clone(),
                        limits.connect_timeout,
                        limits.idle_timeout,
                        metrics.clone(),
                    )),
                };
                servers.spawn(async move {
                    wire::serve(listener, signal).await;
                });
            }
        }
        for (route, tcp) in routes {
            let listen = tcp.local_addr().map_err(|e| ProxyError::Io {
                what: "reading a route listener's address".into(),
                error: e,
            })?;
            let connector =
                MeshConnector::new(&mesh, Some(route.server_id.value.clone()), ALPN_NONE)?;
            let protocol = Arc::new(Route::new(
                connector,
                listen,
                route.to.value.clone(),
                route.server_name.value.clone(),
                limits.connect_timeout,
                limits.idle_timeout,
                metrics.clone(),
            ));
            let (route_limits, counters) =
                (limits.outbound(), metrics.outbound_connections.clone());
            let signal = stop_signal();
            servers.spawn(async move {
                wire::serve_plain(tcp, route_limits, counters, protocol, signal).await;
            });
        }
        if let Some(tcp) = admin {
            let metrics = metrics.clone();
            background.spawn(admin::serve_with_metrics(tcp, &mesh, move || {
                metrics.render()
            }));
        }

        shutdown.await;
        tracing::info!(event = "shutdown", "shutting down: draining the listeners");
        let _ = stop.send(true);
        while servers.join_next().await.is_some() {}
        background.abort_all();
        while background.join_next().await.is_some() {}
        // Every listener has returned, so the protocols that held the mesh are gone.
        if let Ok(mesh) = Arc::try_unwrap(mesh) {
            mesh.shutdown().await;
        }
        Ok(())
    }
}
