//! Serving with graceful shutdown: when the process's [`Shutdown`] fires, stop accepting connections, let
//! in-flight requests finish, and give up after `grace` so a stuck client cannot block a deploy.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use galley_platform::Shutdown;
use tokio::net::TcpListener;

pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    grace: Duration,
) -> std::io::Result<()> {
    let signal = shutdown.clone();
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { signal.wait().await });
    let grace_expired = async {
        shutdown.wait().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = grace_expired => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "in-flight requests did not finish in time; closing");
            Ok(())
        }
    }
}
