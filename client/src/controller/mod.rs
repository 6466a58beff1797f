//! What every controller is made of (like kube-runtime's `Controller` and
//! client-go's `pkg/controller` helpers): the [`worker`] loop over a work
//! queue with its error policy, [`expectations`] of writes not yet seen in
//! the cache, [`owners`] (controller references, adoption and release), and
//! [`pod_control`] (pods from a template).
//!
//! The flow: informers (from [`crate::informers::SharedInformers`]) fill
//! stores and forward keys to a queue; workers call the controller's
//! level-triggered, idempotent `reconcile(key)`, which reads the stores and
//! writes through the client.

pub mod expectations;
pub mod owners;
pub mod pod_control;
pub mod status;
pub mod worker;

pub use expectations::{Expectations, Observations};
pub use owners::{ClaimPlan, claim, controller_ref, is_controlled_by, plan_claim};
pub use pod_control::{PodControl, pod_from_template};
pub use status::status_patch;
pub use worker::{Action, NoObserver, Observer, ReconcileError, spawn_workers};
