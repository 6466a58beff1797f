//! The [`Strategy`](crate::kinds::Strategy) of every kind: Kubernetes'
//! defaults and validation rules, one module per API area.

use crate::kinds::Strategy;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, ResourceQuota, Secret, Service, ServiceAccount,
};

impl Strategy for Namespace {}
impl Strategy for Node {}
impl Strategy for Pod {}
impl Strategy for Service {}
impl Strategy for Endpoints {}
impl Strategy for ReplicationController {}
impl Strategy for ConfigMap {}
impl Strategy for Secret {}
impl Strategy for ServiceAccount {}
impl Strategy for Event {}
impl Strategy for PersistentVolume {}
impl Strategy for PersistentVolumeClaim {}
impl Strategy for LimitRange {}
impl Strategy for ResourceQuota {}
impl Strategy for ReplicaSet {}
impl Strategy for Deployment {}
impl Strategy for DaemonSet {}
impl Strategy for Job {}
impl Strategy for HorizontalPodAutoscaler {}
impl Strategy for Lease {}
impl Strategy for Binding {}
