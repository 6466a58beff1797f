//! Access reviews (`authorization.k8s.io/v1`): "may this user do that?",
//! answered by the authorizer without doing it. A SelfSubjectAccessReview
//! asks about the requesting user (`kubectl auth can-i`), a
//! SubjectAccessReview about the user its spec names. Both are only
//! created, never stored: the answer is the body with `status.allowed` and
//! `status.reason` filled in. RBAC never denies explicitly (it has "no
//! opinion" when no rule allows), so `status.denied` stays false, as in
//! Kubernetes.

use super::{Attributes, Authorizer, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview, SubjectAccessReview, SubjectAccessReviewStatus,
};
use rkube_api::error::Cause;
use rkube_api::manifest::{decode_strict, parse_object};
use rkube_api::validation::invalid;
use rkube_api::{ApiError, ResourceInfo, Result};
use serde_json::Value;

pub use rkube_api::resource::{SELF_SUBJECT_ACCESS_REVIEWS, SUBJECT_ACCESS_REVIEWS};

/// The review resources, which only take `create`.
pub static REVIEW_RESOURCES: [&ResourceInfo; 2] = [&SELF_SUBJECT_ACCESS_REVIEWS, &SUBJECT_ACCESS_REVIEWS];

/// The review resource `plural` of `api_version`, if it is one.
pub fn review_resource(api_version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    REVIEW_RESOURCES.iter().copied().find(|r| r.api_version == api_version && r.plural == plural)
}

/// Kubernetes' check that exactly one kind of attributes is given.
fn attributes_given(resource: &Option<ResourceAttributes>, non_resource: &Option<NonResourceAttributes>) -> Vec<Cause> {
    match (resource, non_resource) {
        (Some(_), Some(n)) => vec![Cause {
            kind: "FieldValueInvalid".into(),
            field: "spec.nonResourceAttributes".into(),
            message: format!(
                "Invalid value: authorization.NonResourceAttributes{{Path:{:?}, Verb:{:?}}}: cannot be specified in combination with resourceAttributes",
                n.path.as_deref().unwrap_or_default(),
                n.verb.as_deref().unwrap_or_default()
            ),
        }],
        (None, None) => vec![invalid(
            "spec.resourceAttributes",
            "null",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )],
        _ => Vec::new(),
    }
}

/// Asks the authorizer about `user` doing what the attributes say.
async fn decide(
    authorizer: &Authorizer,
    user: &UserInfo,
    resource: &Option<ResourceAttributes>,
    non_resource: &Option<NonResourceAttributes>,
) -> SubjectAccessReviewStatus {
    let decision = match (resource, non_resource) {
        (Some(r), _) => {
            let field = |f: &Option<String>| f.as_deref().unwrap_or_default().to_string();
            let (verb, group, version, res, sub, ns, name) = (
                field(&r.verb),
                field(&r.group),
                field(&r.version),
                field(&r.resource),
                field(&r.subresource),
                field(&r.namespace),
                field(&r.name),
            );
            let mut attrs = Attributes::resource(user, &verb, &group, &res, &ns, &name).with_subresource(&sub);
            attrs.api_version = &version;
            authorizer.authorize(&attrs).await
        }
        (None, Some(n)) => {
            let verb = n.verb.as_deref().unwrap_or_default();
            let path = n.path.as_deref().unwrap_or_default();
            authorizer.authorize(&Attributes::non_resource(user, verb, path)).await
        }
        (None, None) => unreachable!("validated: one kind of attributes is given"),
    };
    SubjectAccessReviewStatus {
        allowed: decision.allowed(),
        denied: None,
        reason: Some(decision.reason().to_string()).filter(|r| !r.is_empty()),
        evaluation_error: None,
    }
}

fn read(info: &ResourceInfo, body: &[u8]) -> Result<Value> {
    let mut obj = parse_object(body)?;
    rkube_api::kinds::stamp_type(info, &mut obj)?;
    Ok(obj)
}

fn encode<T: serde::Serialize>(review: &T) -> Result<Value> {
    serde_json::to_value(review).map_err(|e| ApiError::internal(format!("encoding the review: {e}")))
}

/// Answers a SelfSubjectAccessReview `body` made by `requester`.
pub async fn self_subject_access_review(authorizer: &Authorizer, requester: &UserInfo, body: &[u8]) -> Result<Value> {
    let info = &SELF_SUBJECT_ACCESS_REVIEWS;
    let obj = read(info, body)?;
    let mut review: SelfSubjectAccessReview =
        decode_strict(&obj, "SelfSubjectAccessReview in version \"v1\"", info.kind)?;
    let causes = attributes_given(&review.spec.resource_attributes, &review.spec.non_resource_attributes);
    if !causes.is_empty() {
        return Err(ApiError::invalid(info.kind, "", causes));
    }
    review.status = Some(
        decide(authorizer, requester, &review.spec.resource_attributes, &review.spec.non_resource_attributes).await,
    );
    encode(&review)
}

/// Answers a SubjectAccessReview `body`: about the user its spec names.
pub async fn subject_access_review(authorizer: &Authorizer, body: &[u8]) -> Result<Value> {
    let info = &SUBJECT_ACCESS_REVIEWS;
    let obj = read(info, body)?;
    let mut review: SubjectAccessReview = decode_strict(&obj, "SubjectAccessReview in version \"v1\"", info.kind)?;
    let spec = &review.spec;
    let mut causes = attributes_given(&spec.resource_attributes, &spec.non_resource_attributes);
    let user = UserInfo {
        name: spec.user.clone().unwrap_or_default(),
        uid: spec.uid.clone().unwrap_or_default(),
        groups: spec.groups.clone().unwrap_or_default(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        causes.push(invalid("spec.user", "", "at least one of user or group must be specified"));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(info.kind, "", causes));
    }
    review.status = Some(decide(authorizer, &user, &spec.resource_attributes, &spec.non_resource_attributes).await);
    encode(&review)
}

/// Answers a review of resource `info` (one of [`REVIEW_RESOURCES`]).
pub async fn create_review(
    authorizer: &Authorizer,
    info: &ResourceInfo,
    requester: &UserInfo,
    body: &[u8],
) -> Result<Value> {
    match info.kind {
        "SelfSubjectAccessReview" => self_subject_access_review(authorizer, requester, body).await,
        "SubjectAccessReview" => subject_access_review(authorizer, body).await,
        other => Err(ApiError::bad_request(format!("{other} is not an access review"))),
    }
}
