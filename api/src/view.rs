//! Views: structs that decode only part of a kind's objects (a controller's
//! or the scheduler's lean pods) yet name that kind's resource, so that
//! `Api<View>` lists and watches it and a reflector caches it.

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
    fn a_view_names_its_kind_and_reaches_its_metadata() {
        assert_eq!((Names::API_VERSION, Names::KIND, Names::URL_PATH_SEGMENT), ("v1", "Pod", "pods"));
        let mut n = Names::default();
        n.metadata_mut().name = Some("web".into());
        assert_eq!(n.metadata().name.as_deref(), Some("web"));
    }
}
