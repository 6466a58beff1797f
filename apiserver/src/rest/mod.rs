//! The Kubernetes REST API (what kubectl and client-go speak), on the same registry as gRPC.
