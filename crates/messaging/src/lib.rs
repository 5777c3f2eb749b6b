//! The message bus port and its in-process adapter.
//!
//! Module map:
//! - [`port`]: `MessageBus`, `Subscription`, `Delivery` and the semantics every adapter (in-process,
//!   RabbitMQ, SQS) must honour, stated once in the module docs.
//! - [`in_process`]: `InProcessBus`, queues in memory for running every service in one process.

pub mod in_process;
pub mod port;

pub use in_process::InProcessBus;
pub use port::{
    BusError, BusHealth, DEFAULT_DELIVERY_LIMIT, Delivery, MessageBus, OutgoingMessage, ReceivedMessage,
    Settle, Subscription, TraceHeaders, dead_letter_queue,
};
