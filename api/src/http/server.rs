//! The HTTP server's accept loop: plain TCP or TLS, HTTP/1.1 and HTTP/2, and a graceful
//! shutdown.
//!
//! poem's own server cannot tell a request which client certificate its connection
//! presented, so connections are accepted and served here (with hyper, as poem does) and
//! each request gets the connection's [`Connection`] in its extensions before the poem
//! endpoint sees it. TLS handshakes run in each connection's own task, so a client that
//! stalls in the handshake holds up nobody else, and give up after
//! [`crate::tls::HANDSHAKE_TIMEOUT`].

use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Response};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What a request's connection is: the identity of the client certificate the TLS
/// handshake verified, if any. Put in every request's extensions by this server only.
#[derive(Clone, Debug, Default)]
pub(crate) struct Connection {
    pub(crate) certificate_subject: Option<String>,
}

/// The body poem's responses convert into.
type ResponseBody = http_body_util::combinators::BoxBody<hyper::body::Bytes, std::io::Error>;

/// Serve `endpoint` on `listener` (through TLS when `tls` is given) until `shutdown`
/// completes; then stop accepting, let the requests in flight finish for at most `grace`,
/// and drop what is left.
pub(crate) async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<()>
where
    E: Endpoint<Output = Response> + 'static,
{
    let endpoint = Arc::new(endpoint);
    let local = LocalAddr(poem::Addr::SocketAddr(listener.local_addr()?));
    let (stop_tx, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Cancel-safety: `accept` takes a connection only when it completes (tokio documents
        // it cancel-safe), and `shutdown` is pinned outside the loop.
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: say so, and give the system a
                        // moment rather than spin.
                        tracing::warn!(%error, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Without TCP_NODELAY the last partial segment of a large answer (or each
                // line of a stream) can wait ~40 ms for the client's delayed ACK.
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "could not set TCP_NODELAY");
                }
                connections.spawn(connection(
                    tcp,
                    Addresses {
                        local: local.clone(),
                        remote: RemoteAddr(poem::Addr::SocketAddr(remote)),
                    },
                    tls.clone(),
                    endpoint.clone(),
                    stop.clone(),
                ));
            }
            // Reap finished connections as they end (the set would grow otherwise).
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "HTTP requests still running after {grace:?}; dropping them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

#[derive(Clone)]
struct Addresses {
    local: LocalAddr,
    remote: RemoteAddr,
}

/// One connection: the TLS handshake if any, then HTTP until it closes or the server stops.
async fn connection<E>(
    tcp: TcpStream,
    addresses: Addresses,
    tls: Option<tokio_rustls::TlsAcceptor>,
    endpoint: Arc<E>,
    mut stop: watch::Receiver<bool>,
) where
    E: Endpoint<Output = Response> + 'static,
{
    let Some(acceptor) = tls else {
        let scheme = http::uri::Scheme::HTTP;
        return http_connection(
            tcp,
            Connection::default(),
            addresses,
            scheme,
            endpoint,
            stop,
        )
        .await;
    };
    let handshake = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    // Cancel-safety: a handshake dropped at shutdown drops a connection that carried no
    // request yet.
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, peer = %addresses.remote, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %addresses.remote, "TLS handshake timed out");
                return;
            }
        },
        _ = stop.wait_for(|stop| *stop) => return,
    };
    let connection = Connection {
        certificate_subject: stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| crate::tls::certificate_subject(cert)),
    };
    let scheme = http::uri::Scheme::HTTPS;
    http_connection(stream, connection, addresses, scheme, endpoint, stop).await;
}

/// Serve HTTP/1.1 or HTTP/2 on `io`, each request with `connection` in its extensions.
async fn http_connection<IO, E>(
    io: IO,
    connection: Connection,
    addresses: Addresses,
    scheme: http::uri::Scheme,
    endpoint: Arc<E>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    E: Endpoint<Output = Response> + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(connection.clone());
            let endpoint = endpoint.clone();
            let request: poem::Request = (
                request,
                addresses.local.clone(),
                addresses.remote.clone(),
                scheme.clone(),
            )
                .into();
            async move {
                let response: http::Response<ResponseBody> =
                    endpoint.get_response(request).await.into();
                Ok::<_, Infallible>(response)
            }
        });
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let serving = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(serving);
    // Cancel-safety: `serving` is pinned and polled again below (graceful shutdown), so no
    // request in flight is dropped when `stop` wins.
    tokio::select! {
        result = serving.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    // Shutting down: finish the requests in flight, take no new ones.
    serving.as_mut().graceful_shutdown();
    if let Err(error) = serving.await {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
