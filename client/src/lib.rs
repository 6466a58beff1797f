//! rkube-client: everything a component needs to talk to the apiserver.
//!
//! Start with [`Client`] (the generic gRPC client, lazily connected) and
//! [`Api`] (its typed view of one resource). [`config`] finds the server the
//! way rkubectl does; [`daemon`] holds what every daemon's `main` shares;
//! [`events`] records Events about objects, aggregated as Kubernetes does;
//! [`metrics`] is the Prometheus registry every daemon serves on `/metrics`.

pub mod backoff;
pub mod client;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod events;
pub mod informers;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod queue;
pub mod reflector;
pub mod store;
pub mod tls;

pub use client::{Api, Client, DeleteParams, ListParams, ObjectList, RawEvent, WatchEvent, WatchEventType, decode};
pub use config::ClientConfig;
pub use informers::SharedInformers;
pub use leader::LeaderElector;
pub use queue::WorkQueue;
pub use reflector::{Event, Informer, Reflector};
pub use rkube_api::{ApiError, Reason, Result};
pub use store::{ObjectKey, Store, Writer};
