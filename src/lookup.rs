//! Fields a feature spec looks up online, read from `wasi:keyvalue` stores.
//!
//! Only the `wafer-guest-lookup` build imports `wasi:keyvalue/store`; the plain guest refuses,
//! when the model is loaded, a spec that looks anything up.

use wafer_features::{Record, Spec};
use wafer_scoring::ScoringError;

/// Fills the looked-up fields the records lack. Each store is opened once per call.
#[cfg(feature = "lookup")]
pub(crate) fn fill(spec: &Spec, records: &mut [Record]) -> Result<(), ScoringError> {
    use std::collections::HashMap;

    use crate::bindings::wasi::keyvalue::store;

    let describe = |e: store::Error| match e {
        store::Error::NoSuchStore => "no such store".to_owned(),
        store::Error::AccessDenied => {
            "access denied (is the store granted to this component?)".to_owned()
        }
        store::Error::Other(why) => why,
    };
    let mut buckets: HashMap<String, store::Bucket> = HashMap::new();
    // fill_lookups fails only on the store's side (`FeatureError::Lookup`): the server's fault.
    spec.fill_lookups(records, |name, key| {
        let bucket = match buckets.entry(name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(store::open(name).map_err(describe)?)
            }
        };
        bucket.get(key).map_err(describe)
    })
    .map_err(|e| ScoringError::Run(e.to_string()))
}

/// Without the store import there is nothing to fill; `check` refused specs with lookups.
#[cfg(not(feature = "lookup"))]
pub(crate) fn fill(_spec: &Spec, _records: &mut [Record]) -> Result<(), ScoringError> {
    Ok(())
}

/// Whether this build can serve `spec`'s lookups.
pub(crate) fn check(spec: &Spec) -> Result<(), ScoringError> {
    if cfg!(feature = "lookup") || !spec.has_lookups() {
        return Ok(());
    }
    Err(ScoringError::Load(
        "features.toml looks fields up in a key-value store, but this guest imports none; \
         build the model from wafer_guest_lookup.wasm"
            .into(),
    ))
}
