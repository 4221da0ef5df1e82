//! The wire messages, as a peer can send them (R-P2P-2, R-P2P-3): what
//! `node/src/p2p/validate.rs` does with the bytes of a gossip message or a
//! direct request (the node's own framing around them is a length prefix,
//! checked before these bytes exist).

use std::fmt::Debug;

use protocol::id::{JobId, NodeKey, Signed, SignedKind, VerifyError};
use protocol::messages::{
    Announce, Award, Bid, Cancel, Decline, Direct, DirectMessage, Gossip, GossipMessage, Message,
    MessageError, NodeInfo, PROTOCOL_VERSION, Progress, Refuse, ResultMsg,
};

/// Bytes from a gossip topic (target `gossip`): `Gossip::decode`, then
/// `verify`.
///
/// Invariants: the decoder accepts only canonical bytes, so what it accepts
/// at this build's protocol version re-encodes to exactly the input (from a
/// newer version, what it keeps re-encodes to bytes that read back the
/// same); a verified message names its signer as its author.
pub fn gossip(data: &[u8]) {
    let Ok(gossip) = Gossip::decode(data) else {
        return;
    };
    let again = gossip.encode().expect("a decoded gossip message encodes");
    if gossip.version() <= PROTOCOL_VERSION {
        assert_eq!(again, data, "gossip decoding accepted non-canonical bytes");
    } else {
        assert_eq!(
            Gossip::decode(&again).as_ref(),
            Ok(&gossip),
            "a newer gossip message changed on re-encoding"
        );
    }
    match gossip.verify() {
        Ok(GossipMessage::Announce(a)) => assert_eq!(&a.requester, gossip.signer()),
        Ok(GossipMessage::NodeInfo(n)) => assert_eq!(&n.node, gossip.signer()),
        Ok(other) => panic!("unknown gossip message {other:?}"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Bytes of a direct request (target `direct`): `Direct::decode`, then
/// `verify`. Invariants as for [`gossip`].
pub fn direct(data: &[u8]) {
    let Ok(direct) = Direct::decode(data) else {
        return;
    };
    let again = direct.encode().expect("a decoded direct message encodes");
    if direct.version() <= PROTOCOL_VERSION {
        assert_eq!(again, data, "direct decoding accepted non-canonical bytes");
    } else {
        assert_eq!(
            Direct::decode(&again).as_ref(),
            Ok(&direct),
            "a newer direct message changed on re-encoding"
        );
    }
    let signer = *direct.signer();
    match direct.verify() {
        Ok(DirectMessage::Bid(m)) => assert_eq!(m.bidder, signer),
        Ok(DirectMessage::Refuse(m)) => assert_eq!(m.node, signer),
        Ok(DirectMessage::Decline(m)) => assert_eq!(m.node, signer),
        Ok(DirectMessage::Result(m)) => assert_eq!(m.node, signer),
        Ok(DirectMessage::Progress(m)) => assert_eq!(m.node, signer),
        Ok(DirectMessage::Award(_) | DirectMessage::Cancel(_)) => {}
        Ok(other) => panic!("unknown direct message {other:?}"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The message kinds, in the order of the `signed` target's first byte.
const KINDS: u8 = 9;

/// A payload well signed by the peer that sends it (target `signed`): what
/// a hostile node can send with its own key, past the signature check
/// that stops every mutation in the `gossip` and `direct` targets.
///
/// Input: one byte choosing the kind (modulo 8: announce, node info, bid,
/// refusal, award, decline, result, cancellation), one byte making the
/// signing key (`[b; 32]`), then the payload.
///
/// Invariants: a payload that verifies is exactly what the sender would
/// have signed (`Message::sign` of the decoded message gives the same
/// envelope, so `sign` and `verify` apply the same checks); it survives its
/// transport (encode, decode, verify gives the same message); its signature
/// is bound to its kind (the same envelope verified as another kind fails
/// on the signature). The same payload from a node of a newer protocol
/// version (`Message::verify_from`) is accepted whenever this build's own
/// version is, as the same message; what is accepted only from the newer
/// node (fields ignored) is a message this build could send. An announcement whose job id or requester is wrong is
/// also tried with them corrected, as a peer computing them would send it,
/// so that the spec's own checks are reached.
pub fn signed(data: &[u8]) {
    let [kind, key, payload @ ..] = data else {
        return;
    };
    let key = NodeKey::from_secret_bytes([*key; 32]);
    match kind % KINDS {
        0 => announce(&key, payload),
        1 => one::<NodeInfo>(&key, payload, |s| match gossip_trip(s) {
            GossipMessage::NodeInfo(m) => m,
            other => panic!("a node info came back as {other:?}"),
        }),
        2 => one::<Bid>(&key, payload, |s| match direct_trip(s) {
            DirectMessage::Bid(m) => m,
            other => panic!("a bid came back as {other:?}"),
        }),
        3 => one::<Refuse>(&key, payload, |s| match direct_trip(s) {
            DirectMessage::Refuse(m) => m,
            other => panic!("a refusal came back as {other:?}"),
        }),
        4 => one::<Award>(&key, payload, |s| match direct_trip(s) {
            DirectMessage::Award(m) => m,
            other => panic!("an award came back as {other:?}"),
        }),
        5 => one::<Decline>(&key, payload, |s| match direct_trip(s) {
            DirectMessage::Decline(m) => m,
            other => panic!("a decline came back as {other:?}"),
        }),
        6 => one::<ResultMsg>(&key, payload, |s| match direct_trip(s) {
            DirectMessage::Result(m) => m,
            other => panic!("a result came back as {other:?}"),
        }),
        7 => one::<Cancel>(&key, payload, |s| match direct_trip(s) {
            DirectMessage::Cancel(m) => m,
            other => panic!("a cancellation came back as {other:?}"),
        }),
        _ => one::<Progress>(&key, payload, |s| match direct_trip(s) {
            DirectMessage::Progress(m) => m,
            other => panic!("a progress came back as {other:?}"),
        }),
    }
}

fn announce(key: &NodeKey, payload: &[u8]) {
    let trip = |s: &Signed<Announce>| match gossip_trip(s) {
        GossipMessage::Announce(m) => m,
        other => panic!("an announcement came back as {other:?}"),
    };
    let signed = Signed::<Announce>::sign_payload(key, payload.to_vec());
    let exact = Announce::verify(&signed);
    newer(key, &signed, exact.as_ref().ok());
    match exact {
        Ok(message) => accepted(key, &signed, message, trip),
        Err(MessageError::JobIdMismatch { .. } | MessageError::SignerMismatch { .. }) => {
            // Decodes but names the wrong id or requester: correct them.
            let mut fixed = signed
                .verify(Announce::MAX_BYTES)
                .expect("it decoded a moment ago");
            fixed.requester = key.node_id();
            fixed.job_id =
                match JobId::compute(&fixed.spec, &fixed.requester, fixed.submitted_at_ms) {
                    Ok(id) => id,
                    Err(_) => return,
                };
            let Ok(signed) = Signed::sign(key, &fixed) else {
                return;
            };
            if let Ok(message) = Announce::verify(&signed) {
                accepted(key, &signed, message, trip);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn one<T>(key: &NodeKey, payload: &[u8], trip: fn(&Signed<T>) -> T)
where
    T: Message + PartialEq + Debug,
{
    let signed = Signed::<T>::sign_payload(key, payload.to_vec());
    let exact = T::verify(&signed);
    newer(key, &signed, exact.as_ref().ok());
    match exact {
        Ok(message) => accepted(key, &signed, message, trip),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `signed` as a node of a newer protocol version sends it; `exact` is what
/// this build's version made of it.
fn newer<T>(key: &NodeKey, signed: &Signed<T>, exact: Option<&T>)
where
    T: Message + PartialEq + Debug,
{
    match T::verify_from(signed, PROTOCOL_VERSION + 1) {
        Ok(message) => {
            if let Some(exact) = exact {
                assert_eq!(
                    exact,
                    &message,
                    "a {} reads otherwise from a newer node",
                    T::NAME
                );
            }
            // Re-signing may fail only if it grew past the limit (values
            // written out in their normal form).
            if let Ok(resigned) = message.sign(key) {
                assert_eq!(
                    T::verify(&resigned).as_ref(),
                    Ok(&message),
                    "a {} read from a newer node is not one this build sends",
                    T::NAME
                );
            }
        }
        Err(e) => assert!(
            exact.is_none(),
            "a {} this build accepts was refused from a newer node: {e}",
            T::NAME
        ),
    }
}

fn accepted<T>(key: &NodeKey, signed: &Signed<T>, message: T, trip: fn(&Signed<T>) -> T)
where
    T: Message + PartialEq + Debug,
{
    let resigned = message
        .sign(key)
        .unwrap_or_else(|e| panic!("verify accepted a {} that sign refuses: {e}", T::NAME));
    assert_eq!(
        &resigned,
        signed,
        "a verified {} signs to another envelope",
        T::NAME
    );
    assert_eq!(trip(signed), message, "a {} changed in transit", T::NAME);
    // The same envelope presented as another kind.
    let (signer, payload, signature) = signed.clone().into_parts();
    let bad = if T::KIND == Bid::KIND {
        Award::verify(&Signed::from_parts(signer, payload, signature)).map(|_| ())
    } else {
        Bid::verify(&Signed::from_parts(signer, payload, signature)).map(|_| ())
    };
    assert!(
        matches!(
            bad,
            Err(MessageError::Verify(VerifyError::BadSignature { .. }))
        ),
        "a {} verified as another kind: {bad:?}",
        T::NAME
    );
}

/// Encodes, decodes and verifies a gossip message, as sender and receiver.
fn gossip_trip<T: Message>(signed: &Signed<T>) -> GossipMessage
where
    Gossip: From<Signed<T>>,
{
    let bytes = Gossip::from(signed.clone())
        .encode()
        .expect("a payload within its kind's limit fits a gossip message");
    Gossip::decode(&bytes)
        .and_then(|g| g.verify())
        .expect("a sent gossip message is received")
}

/// Encodes, decodes and verifies a direct message, as sender and receiver.
fn direct_trip<T: Message>(signed: &Signed<T>) -> DirectMessage
where
    Direct: From<Signed<T>>,
{
    let bytes = Direct::from(signed.clone())
        .encode()
        .expect("a payload within its kind's limit fits a direct message");
    Direct::decode(&bytes)
        .and_then(|d| d.verify())
        .expect("a sent direct message is received")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::seeds;

    /// The wire seeds are messages a node accepts, so the fuzzers start from
    /// the accepted path (and the replay checks its invariants).
    #[test]
    fn wire_seeds_are_accepted_messages() {
        for (name, bytes) in seeds("gossip") {
            let g = Gossip::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            g.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in seeds("direct") {
            let d = Direct::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            d.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in seeds("signed") {
            let key = NodeKey::from_secret_bytes([bytes[1]; 32]);
            let payload = bytes[2..].to_vec();
            let ok = match bytes[0] {
                0 => Announce::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                1 => NodeInfo::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                2 => Bid::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                3 => Refuse::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                4 => Award::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                5 => Decline::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                6 => ResultMsg::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                7 => Cancel::verify(&Signed::sign_payload(&key, payload)).is_ok(),
                _ => Progress::verify(&Signed::sign_payload(&key, payload)).is_ok(),
            };
            assert!(ok, "signed seed {name} is refused");
        }
    }
}
