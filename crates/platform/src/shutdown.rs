//! Graceful shutdown.
//!
//! One [`Shutdown`] per process: it fires on SIGINT or SIGTERM (or when a test triggers it), and every
//! server and background task in the process waits on a clone of it. Servers stop accepting connections
//! and let in-flight requests finish (bounded by `http.shutdown_grace`).

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that fires on SIGINT (Ctrl-C) or SIGTERM.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
            trigger.trigger();
        });
        shutdown
    }

    /// Fires the shutdown (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once the shutdown has fired.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_observes_the_trigger() {
        let shutdown = Shutdown::new();
        let observer = shutdown.clone();
        assert!(!observer.is_triggered());
        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(1), observer.wait())
            .await
            .expect("observer woke up");
        assert!(observer.is_triggered());
    }
}
