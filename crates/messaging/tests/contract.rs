//! The in-process bus runs the bus contract suite.

use std::sync::Arc;

use galley_messaging::{InProcessBus, MessageBus};

async fn fresh_bus() -> Option<(Arc<dyn MessageBus>, ())> {
    Some((Arc::new(InProcessBus::new()), ()))
}

galley_test_support::bus_contract_tests!(fresh_bus());
