//! The in-process bus runs the bus contract suite.

use std::sync::Arc;

use galley_messaging::{InProcessBus, MessageBus};

async fn fresh_bus() -> Option<(Arc<dyn MessageBus>, ())> {
    let limit = galley_test_support::contracts::bus::DELIVERY_LIMIT;
    Some((Arc::new(InProcessBus::with_delivery_limit(limit)), ()))
}

galley_test_support::bus_contract_tests!(fresh_bus());
