//! Views: structs that decode only part of a kind's objects (a controller's
//! or the scheduler's lean pods) yet name that kind's resource, so that
//! `Api<View>` lists and watches it and a reflector caches it.
//!
//! A cache keeps its objects for the life of the process, so views decode
//! lists at their exact length ([`exact`], [`exact_vec`], [`lean_metadata`]):
//! decoding from a byte stream, serde grows a `Vec` by doubling from four
//! elements, and one 752-byte `ContainerStatus` would hold 3 KB.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// Decodes an optional list with no spare capacity (`deserialize_with`).
pub fn exact<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Vec<T>>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.map(shrunk))
}

/// Decodes a list with no spare capacity (`deserialize_with`).
pub fn exact_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(shrunk(Vec::deserialize(d)?))
}

/// `v` without spare capacity.
pub fn shrunk<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

/// Decodes metadata for a cache: without managed fields (often the largest
/// part of an object, read by no cache's owner), lists at their exact length.
pub fn lean_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let mut meta = ObjectMeta::deserialize(d)?;
    meta.managed_fields = None;
    meta.owner_references = meta.owner_references.map(shrunk);
    meta.finalizers = meta.finalizers.map(shrunk);
    Ok(meta)
}

/// Makes `$view` (a struct with a `metadata: ObjectMeta` field) a view of
/// the k8s-openapi kind `$kind`: the same apiVersion, kind and resource
/// (`k8s_openapi::Resource`), and its metadata (`k8s_openapi::Metadata`).
#[macro_export]
macro_rules! view_of {
    ($view:ty, $kind:ty) => {
        impl $crate::k8s::Resource for $view {
            const API_VERSION: &'static str = <$kind as $crate::k8s::Resource>::API_VERSION;
            const GROUP: &'static str = <$kind as $crate::k8s::Resource>::GROUP;
            const KIND: &'static str = <$kind as $crate::k8s::Resource>::KIND;
            const VERSION: &'static str = <$kind as $crate::k8s::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str = <$kind as $crate::k8s::Resource>::URL_PATH_SEGMENT;
            type Scope = <$kind as $crate::k8s::Resource>::Scope;
        }

        impl $crate::k8s::Metadata for $view {
            type Ty = $crate::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::{Metadata, Resource};

    #[derive(Default)]
    struct Names {
        metadata: ObjectMeta,
    }

    crate::view_of!(Names, Pod);

    #[test]
    fn lists_decode_at_their_exact_length_and_managed_fields_go() {
        #[derive(serde::Deserialize)]
        struct Lists {
            #[serde(deserialize_with = "super::lean_metadata")]
            metadata: ObjectMeta,
            #[serde(default, deserialize_with = "super::exact")]
            some: Option<Vec<u64>>,
            #[serde(default, deserialize_with = "super::exact_vec")]
            all: Vec<String>,
        }
        let text = r#"{"metadata": {"name": "p", "finalizers": ["a"], "managedFields": [{"manager": "m"}],
            "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "uid": "u"}]},
            "some": [1], "all": ["x", "y", "z", "w", "v"]}"#;
        let lists: Lists = serde_json::from_str(text).unwrap();
        let some = lists.some.unwrap();
        assert_eq!((some.len(), some.capacity()), (1, 1));
        assert_eq!((lists.all.len(), lists.all.capacity()), (5, 5));
        let meta = lists.metadata;
        assert_eq!(meta.managed_fields, None);
        let owners = meta.owner_references.unwrap();
        assert_eq!((owners[0].name.as_str(), owners.capacity()), ("rc", 1));
        assert_eq!(meta.finalizers.unwrap().capacity(), 1);
    }

    #[test]
    fn a_view_names_its_kind_and_reaches_its_metadata() {
        assert_eq!((Names::API_VERSION, Names::KIND, Names::URL_PATH_SEGMENT), ("v1", "Pod", "pods"));
        let mut n = Names::default();
        n.metadata_mut().name = Some("web".into());
        assert_eq!(n.metadata().name.as_deref(), Some("web"));
    }
}
