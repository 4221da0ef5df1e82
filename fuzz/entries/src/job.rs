//! Job specs, as users write them (YAML or JSON text) and as peers send them
//! (canonical DAG-CBOR inside an announcement).

use protocol::id::{JobId, NodeKey, from_canonical, to_canonical};
use protocol::job::{JobSpec, MAX_JOB_FILE_BYTES};
use protocol::messages::MAX_GOSSIP_BYTES;

/// `JobSpec::parse` on a job file, YAML or JSON (targets `job_yaml` and
/// `job_json`: one reader, two corpora).
///
/// Invariants: errors are never an empty list; an accepted job passes
/// `validate` (both readers apply the same rules); its normalised JSON reads
/// back as the same job through both readers (`to_json_pretty` says it is
/// itself a valid job file); its canonical encoding decodes to it; it has a
/// job id.
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
    let requester = NodeKey::from_secret_bytes([1; 32]).node_id();
    JobId::compute(&spec, &requester, 1).expect("a valid job has an id");
}

/// A job as a peer sends it: canonical DAG-CBOR, read by the strict serde
/// reader, then `validate` (target `job_wire`), as `Announce::verify` does
/// once the signature and job id check out.
///
/// Invariant: a job the strict reader and `validate` accept is one a user
/// could have written: its normalised JSON reads back as the same job
/// through `JobSpec::parse` (both readers apply the same rules).
pub fn job_wire(data: &[u8]) {
    let Ok(spec) = from_canonical::<JobSpec>(data, MAX_GOSSIP_BYTES) else {
        return;
    };
    if spec.validate().is_err() {
        return;
    }
    fixed_point(&spec);
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
