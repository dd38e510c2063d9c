//! Serving the routes: this process's accept loop, one hyper connection per client, and a
//! graceful stop.
//!
//! The loop is ours rather than `warp::serve`'s so that connection-level concerns have one
//! place: a client that goes away mid-request is logged at debug level (it is no server
//! error), a failing `accept` (say, out of file descriptors) is a warning followed by a
//! short pause instead of a busy loop, and this is where a TLS handshake or a limit on
//! connections would wrap each accepted socket.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use warp::{Filter, Reply};

/// How long the loop waits after `accept` failed before it accepts again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves `routes` on `listener` until `stop` completes, then waits for the connections
/// being served to finish their current request (streams must be ended by `stop` itself).
pub async fn serve<F>(listener: TcpListener, routes: F, stop: impl Future<Output = ()>)
where
    F: Filter<Error = Infallible> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let service = warp::service(routes);
    let connections = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(stop);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(service.clone());
        let connection = builder
            .serve_connection(TokioIo::new(socket), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, "connection ended: {error}");
            }
        });
    }
    // No new connections; those open finish what they are doing.
    drop(listener);
    connections.shutdown().await;
}
