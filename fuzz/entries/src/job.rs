//! Job specs, as users write them (YAML or JSON text) and as peers send them
//! (canonical DAG-CBOR inside an announcement).

use protocol::id::{NodeKey, from_canonical, to_canonical};
use protocol::job::{JobSpec, MAX_JOB_FILE_BYTES};
use protocol::messages::{Announce, Gossip, GossipMessage, MAX_GOSSIP_BYTES, Message};

/// `JobSpec::parse` on a job file, YAML or JSON (targets `job_yaml` and
/// `job_json`: one reader, two corpora).
///
/// Invariants: errors are never an empty list; an accepted job passes
/// `validate` (both readers apply the same rules); its normalised JSON reads
/// back as the same job through both readers (`to_json_pretty` says it is
/// itself a valid job file); its canonical encoding decodes to it; peers
/// accept its announcement.
pub fn job_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = match JobSpec::parse(text) {
        Ok(spec) => spec,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refused job names no error");
            let _ = errors.to_string();
            return;
        }
    };
    if let Err(e) = spec.validate() {
        panic!("JobSpec::parse accepted a job that validate refuses:\n{e}\n{spec:#?}");
    }
    fixed_point(&spec);
    let bytes = to_canonical(&spec).expect("a valid job encodes");
    assert_eq!(
        from_canonical::<JobSpec>(&bytes, MAX_GOSSIP_BYTES).as_ref(),
        Ok(&spec),
        "the canonical encoding of a job does not decode to it"
    );
    announceable(spec);
}

/// A job as a peer sends it: canonical DAG-CBOR, read by the strict serde
/// reader, then `validate` (target `job_wire`), as `Announce::verify` does
/// once the signature and job id check out.
///
/// Invariants: a job the strict reader and `validate` accept is one a user
/// could have written: its normalised JSON reads back as the same job
/// through `JobSpec::parse` (both readers apply the same rules); peers
/// accept its announcement.
pub fn job_wire(data: &[u8]) {
    let Ok(spec) = from_canonical::<JobSpec>(data, MAX_GOSSIP_BYTES) else {
        return;
    };
    if spec.validate().is_err() {
        return;
    }
    fixed_point(&spec);
    announceable(spec);
}

/// What a requester submits, its peers accept: announced, signed, sent and
/// verified, the job arrives unchanged (unless it is too large for an
/// announcement, which the requester refuses at submission).
fn announceable(spec: JobSpec) {
    let key = NodeKey::from_secret_bytes([1; 32]);
    let announce = Announce::new(spec, key.node_id(), 1_700_000_000_000, vec![])
        .expect("a valid job has an id");
    let Ok(signed) = announce.sign(&key) else {
        return;
    };
    let Ok(bytes) = Gossip::from(signed).encode() else {
        return;
    };
    match Gossip::decode(&bytes).and_then(|g| g.verify()) {
        Ok(GossipMessage::Announce(received)) => assert_eq!(received, announce),
        Ok(other) => panic!("an announcement arrived as {other:?}"),
        Err(e) => panic!("peers refuse the announcement of a valid job: {e}"),
    }
}

/// The normalised JSON of `spec` reads back as `spec`, through the users'
/// reader and the strict one.
fn fixed_point(spec: &JobSpec) {
    let json = spec.to_json_pretty();
    if json.len() > MAX_JOB_FILE_BYTES {
        // Larger than any job file a user may submit: nothing to compare.
        return;
    }
    match JobSpec::parse(&json) {
        Ok(again) => assert_eq!(&again, spec, "normalised JSON reads back differently"),
        Err(e) => panic!("the normalised JSON of a valid job is refused:\n{e}\n{json}"),
    }
    let strict: JobSpec = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("the strict reader refuses normalised JSON: {e}\n{json}"));
    assert_eq!(
        &strict, spec,
        "the strict reader reads normalised JSON differently"
    );
}
