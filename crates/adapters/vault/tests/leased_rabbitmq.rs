//! The RabbitMQ bus on leased credentials: OpenBao's RabbitMQ secrets engine creates short-lived users
//! on a private node with the management plugin; publishing and consuming go on across credential
//! rotations, and the leased users are gone once the lease is revoked.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use galley_messaging::{MessageBus, OutgoingMessage, Settle};
use galley_rabbitmq::{RabbitMqBus, RabbitMqOptions};
use galley_test_support::openbao::{DEV_ROOT_TOKEN, OpenBao};
use galley_test_support::rabbitmq::RabbitMqNode;
use galley_vault::{LeasedCredentials, RotationTimings, VaultAuthMethod, VaultClient, VaultSettings};

async fn broker_users(management: &str) -> Vec<String> {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let users: Vec<serde_json::Value> = client
        .get(format!("{management}/api/users"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("management API answers")
        .json()
        .await
        .expect("users json");
    users.iter().filter_map(|user| user["name"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn the_bus_keeps_delivering_across_two_rotations_and_revocation_removes_the_users() {
    let node = RabbitMqNode::start_with_management();
    let management = node.management_url().expect("management port");
    let bao = OpenBao::dev();
    bao.bao(&["secrets", "enable", "rabbitmq"]);
    bao.bao(&[
        "write",
        "rabbitmq/config/connection",
        &format!("connection_uri={management}"),
        "username=guest",
        "password=guest",
    ]);
    bao.bao(&["write", "rabbitmq/config/lease", "ttl=6", "max_ttl=12"]);
    bao.bao(&[
        "write",
        "rabbitmq/roles/bus",
        r#"vhosts={"/": {"configure": "^galley\\..*", "write": "^(galley\\..*|amq\\.default)$", "read": "^galley\\..*"}}"#,
    ]);
    let settings = VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Token,
        token: Some(DEV_ROOT_TOKEN.into()),
        ..VaultSettings::default()
    };
    let vault = Arc::new(VaultClient::connect(&settings).await.expect("connects"));
    let leased = LeasedCredentials::obtain(vault, "rabbitmq/creds/bus", RotationTimings::default())
        .await
        .expect("leases credentials");
    let bus = RabbitMqBus::connect_following(&node.bare_url(), RabbitMqOptions::default(), leased.feed())
        .await
        .expect("connects as the leased user");
    let mut subscription = bus.subscribe("rotation", 10).await.expect("subscribes");

    let started = Instant::now();
    let (mut sent, mut publish_failures) = (0u32, Vec::new());
    let mut received = BTreeSet::new();
    let mut users_seen = BTreeSet::new();
    while leased.rotations() < 2 {
        assert!(started.elapsed() < Duration::from_secs(90), "two rotations within 90 s");
        let id = format!("m-{sent}");
        let message = OutgoingMessage {
            message_id: id.clone(),
            correlation_id: None,
            reply_to: None,
            trace: None,
            body: Bytes::from_static(b"{}"),
        };
        match bus.publish("rotation", message).await {
            Ok(()) => {}
            Err(error) => publish_failures.push(format!("{:?} {id}: {error}", started.elapsed())),
        }
        sent += 1;
        // Take what has arrived so far (bounded wait), acknowledging each delivery.
        while let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_millis(150), subscription.next()).await
        {
            received.insert(delivery.message.message_id.clone());
            let _ = delivery.settle(Settle::Ack).await;
        }
        users_seen.extend(broker_users(&management).await.into_iter().filter(|u| u.starts_with("token-")));
    }
    // Everything published arrives (redeliveries of unsettled messages included), within a bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.len() < sent as usize - publish_failures.len() && Instant::now() < deadline {
        if let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(1), subscription.next()).await {
            received.insert(delivery.message.message_id.clone());
            let _ = delivery.settle(Settle::Ack).await;
        }
    }
    eprintln!(
        "{sent} published over {:?}, {} received, {} users seen, publish failures: {publish_failures:?}",
        started.elapsed(),
        received.len(),
        users_seen.len()
    );
    assert!(publish_failures.is_empty(), "no publish failed across the rotations: {publish_failures:?}");
    assert_eq!(received.len(), sent as usize, "every published message was delivered");
    assert!(users_seen.len() >= 2, "the credentials changed: {users_seen:?}");

    drop(subscription);
    bus.close().await;
    leased.revoke().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let users = broker_users(&management).await;
        if users.iter().all(|user| !user.starts_with("token-")) {
            break;
        }
        assert!(Instant::now() < deadline, "leased users left after revocation: {users:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
