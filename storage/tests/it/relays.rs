//! What a store tells others of itself, and which relays it contacts
//! (issue 14: data through NAT).

use iroh::{EndpointAddr, RelayUrl, SecretKey, TransportAddr};
use storage::store::{Store, StoreConfig};

fn relay(url: &str) -> RelayUrl {
    url.parse().unwrap()
}

#[tokio::test]
async fn a_store_off_loopback_gives_no_private_address_but_its_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(tmp.path());
    config.private_addrs = false;
    // Never reached: the test only reads what the store says of itself.
    config.relays = vec![relay("https://relay.invalid:8443")];
    let store = Store::open(config).await.unwrap();
    let addr = store.addr();
    assert_eq!(addr.ip_addrs().count(), 0, "loopback given out: {addr:?}");
    let relays: Vec<&RelayUrl> = addr.relay_urls().collect();
    assert_eq!(relays, [&relay("https://relay.invalid:8443")]);
    assert!(
        !store.local_addrs().is_empty(),
        "the bound socket is still known to the node"
    );

    assert!(store.add_relay(relay("https://other.invalid")).await);
    assert!(!store.add_relay(relay("https://other.invalid")).await);
    assert_eq!(store.relays().len(), 2);
    store.shutdown().await;
}

#[tokio::test]
async fn a_loopback_store_gives_its_socket_address() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).await.unwrap();
    let addr = store.addr();
    assert!(
        addr.ip_addrs().all(|a| a.ip().is_loopback()) && addr.ip_addrs().count() > 0,
        "{addr:?}"
    );
    assert_eq!(addr.relay_urls().count(), 0);
    store.shutdown().await;
}

#[tokio::test]
async fn relays_a_provider_names_are_contacted_only_if_known() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(tmp.path());
    config.relays = vec![relay("https://known.invalid")];
    let store = Store::open(config).await.unwrap();
    let id = SecretKey::from_bytes(&[7; 32]).public();
    let named = EndpointAddr::from_parts(
        id,
        [
            TransportAddr::Relay(relay("https://known.invalid")),
            TransportAddr::Relay(relay("https://stranger.invalid")),
            TransportAddr::Ip("192.0.2.1:4433".parse().unwrap()),
        ],
    );
    let kept = store.known_relays_only(&named);
    let relays: Vec<&RelayUrl> = kept.relay_urls().collect();
    assert_eq!(relays, [&relay("https://known.invalid")]);
    assert_eq!(kept.ip_addrs().count(), 1);
    store.shutdown().await;
}
