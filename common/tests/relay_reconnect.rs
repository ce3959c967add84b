//! The client survives an upstream restart: it reconnects with backoff, resubscribes from
//! the segment it was in, and the edge window continues with identical bytes.

mod relay_support;

use std::net::SocketAddr;
use std::time::Duration;

use relay_support::*;
use skyrelay_common::hub::Hub;
use skyrelay_common::relay::tls::NodeIdentity;

/// Restarts a server on the same address (the old socket may take a moment to go).
async fn restart(hub: std::sync::Arc<Hub>, id: &NodeIdentity, addr: SocketAddr) -> TestServer {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match TestServer::try_start(hub.clone(), id, Some(addr)) {
            Ok(s) => return s,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("rebind {addr}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reconnects_and_resumes_after_server_restart() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "ch");
    feed.segment(0, 3);
    feed.part(1, 0, 2, false);
    let server = TestServer::start(origin.clone(), &pki.server, None);
    let addr = server.addr;

    let edge = hub();
    let (client, metrics) = client(&pki, addr, edge.clone());
    let sub = client.subscribe("ch", "source").await.unwrap();
    let local = sub.rendition().clone();
    wait_window(&local, "part 1.0", |w| w.part(1, 0).filter(|p| p.complete)).await;

    server.stop().await;
    wait_until("client notices the loss", || !client.is_connected()).await;

    // The origin goes on while the relay is down: the rest of segment 1 and more.
    feed.part(1, 1, 2, false);
    feed.part(1, 2, 1, true);
    feed.segment(2, 2);
    feed.chunk(3, 0, 0);

    let _server2 = restart(origin.clone(), &pki.server, addr).await;
    wait_window(&local, "segment 2 after the restart", |w| w.segment(2)).await;
    wait_window(&local, "open part 3.0", |w| w.part(3, 0)).await;
    assert!(metrics.reconnects.get() >= 1);
    assert_same_parts(&origin.rendition("ch", "source").unwrap(), &local, 0..=2);
    // Nothing was applied twice or lost: the edge's segment 1 is whole.
    assert_eq!(local.read(|w| w.segment(1)).unwrap().part_count, 3);
    assert_eq!(metrics.subscriptions.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_follows_an_upstream_that_restarted_further_on() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "ch");
    feed.segment(0, 2);
    feed.part(1, 0, 1, false);
    let server = TestServer::start(origin.clone(), &pki.server, None);
    let addr = server.addr;
    let (client, _) = client(&pki, addr, hub());
    let sub = client.subscribe("ch", "source").await.unwrap();
    let local = sub.rendition().clone();
    wait_window(&local, "part 1.0", |w| w.part(1, 0).filter(|p| p.complete)).await;
    server.stop().await;
    wait_until("client notices the loss", || !client.is_connected()).await;

    // A new upstream whose window starts later (segment 1 is gone for good).
    let origin2 = hub();
    let feed2 = Feeder::new(&origin2, "ch");
    feed2.segment(7, 2);
    let _server2 = restart(origin2.clone(), &pki.server, addr).await;
    feed2.segment(8, 2);
    wait_window(&local, "segment 8 from the new upstream", |w| w.segment(8)).await;
    assert_same_parts(&origin2.rendition("ch", "source").unwrap(), &local, 7..=8);
    // The abandoned segment 1 is gone and the jump is a discontinuity.
    assert!(local.read(|w| w.segment(1)).is_none());
    assert!(local.read(|w| w.segment(7)).unwrap().discontinuity);
    assert!(sub.is_active());
}
