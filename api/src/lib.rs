//! rkube-api: the object model every rkube component shares, with no I/O.
//!
//! Start with [`resource`] (the table of kinds rkube serves), then [`kinds`]
//! (strict decoding, defaulting and validation per kind, on every create and
//! update), [`selector`] (label and field selectors), [`manifest`] (reading
//! YAML/JSON documents) and [`error`] (errors shaped like Kubernetes' Status).
//! The objects themselves are the k8s-openapi types, re-exported as [`k8s`].
//! [`cidr`] parses and walks CIDR blocks for every component that needs them.
//! [`managed_fields`] keeps `metadata.managedFields`: who owns which field, for
//! server-side apply and its conflicts. [`metrics`] builds the
//! `metrics.k8s.io` NodeMetrics and PodMetrics from kubelet stats summaries.

pub mod cidr;
pub mod error;
pub mod intstr;
pub mod kinds;
pub mod managed_fields;
pub mod manifest;
pub mod metrics;
pub mod patch;
pub mod quantity;
pub mod quota;
pub mod resource;
pub mod scale;
pub mod scheduling;
pub mod selector;
pub mod strategy;
pub mod table;
pub mod validation;
pub mod versions;
pub mod view;

pub use error::{ApiError, Cause, Reason, Result};
pub use k8s_openapi as k8s;
pub use resource::ResourceInfo;
