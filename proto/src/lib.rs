//! rkube-proto: the gRPC definitions every rkube component speaks.
//!
//! Start with `proto/rkube/v1/api.proto`: one generic `Resources` service whose
//! messages carry Kubernetes objects as JSON in a typed envelope. This crate holds
//! only the generated code.

#![allow(missing_docs, clippy::all)]

/// Version 1 of the rkube API.
pub mod v1 {
    tonic::include_proto!("rkube.v1");
}
