//! Fields a feature spec looks up online, read from `wasi:keyvalue` stores.
//!
//! Only the `wafer-guest-lookup` build imports `wasi:keyvalue/store`; the plain guest refuses,
//! when the model is loaded, a spec that looks anything up.

use wafer_features::Spec;
use wafer_scoring::ScoringError;

/// A fetch that reads `wasi:keyvalue` stores, each opened once per call.
#[cfg(feature = "lookup")]
pub(crate) fn fetch() -> impl FnMut(&str, &str) -> Result<Option<Vec<u8>>, String> {
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
    move |name, key| {
        let bucket = match buckets.entry(name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(store::open(name).map_err(describe)?)
            }
        };
        bucket.get(key).map_err(describe)
    }
}

/// Without the store import there is nothing to fetch; `check` refused specs with lookups.
#[cfg(not(feature = "lookup"))]
pub(crate) fn fetch() -> impl FnMut(&str, &str) -> Result<Option<Vec<u8>>, String> {
    wafer_protocol::no_store
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
